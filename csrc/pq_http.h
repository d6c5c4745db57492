/* HTTP header lines: reading response header lines as libcurl hands them to
 * the header callback (one line at a time, CRLF included), and checking the
 * request headers a caller supplies. Plain C, no curl, so that the parsing of
 * server-controlled bytes can be fuzzed. */
#ifndef PQ_HTTP_H
#define PQ_HTTP_H

#include <stddef.h>

/* Room for one response header value the engine keeps (Content-Type,
 * Retry-After), NUL included; longer values are cut. */
#ifndef PQ_HEADER_VALUE_MAX
#define PQ_HEADER_VALUE_MAX 128
#endif

/* 1 when line[0..n) starts a new response ("HTTP/..."), else 0. */
int pq_http_is_status_line(const char *line, size_t n);

/* When line[0..n) is the header `name` (compared without regard to ASCII
 * case; no space allowed before the colon, per RFC 9112 section 5.1), copies
 * its value into out and returns 1. The value has surrounding whitespace and
 * the line ending removed, tabs turned into spaces and other control bytes
 * into '?', and is cut to at most outcap - 1 bytes (never inside a UTF-8
 * sequence); out is always NUL-terminated when outcap > 0. Returns 0, leaving
 * out alone, otherwise. */
int pq_http_header_match(const char *line, size_t n, const char *name, char *out, size_t outcap);

/* Request headers the caller supplies: a name is 1+ visible ASCII bytes
 * without ':'; a value holds no CR, LF or NUL (no header injection). */
int pq_http_valid_header_name(const char *s, size_t n);
int pq_http_valid_header_value(const char *s, size_t n);

#endif
