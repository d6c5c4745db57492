/* Header lines from the server are hostile input: they may be long, lack a
 * line ending, hold control bytes or invalid UTF-8. This file owns turning
 * one such line into a short printable value that an error message may
 * quote, and never reads or writes outside the buffers it is given. It also
 * owns the check of the request headers a caller supplies (no injection). */
#include "pq_prefix.h"

#include "pq_http.h"

#include <string.h>

static int pq_http_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int pq_http_ows(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int pq_http_is_status_line(const char *line, size_t n)
{
    return n >= 5 && memcmp(line, "HTTP/", 5) == 0;
}

int pq_http_header_match(const char *line, size_t n, const char *name, char *out, size_t outcap)
{
    size_t k = strlen(name), i, len, o;
    const char *v;
    if (k == 0 || n <= k || line[k] != ':') return 0;
    for (i = 0; i < k; i++)
        if (pq_http_lower((unsigned char)line[i]) != pq_http_lower((unsigned char)name[i])) return 0;
    if (outcap == 0) return 1;
    v = line + k + 1;
    len = n - k - 1;
    while (len > 0 && pq_http_ows(*v)) { v++; len--; }
    while (len > 0 && pq_http_ows(v[len - 1])) len--;
    if (len > outcap - 1) {
        len = outcap - 1;
        /* Do not end on half a UTF-8 sequence: drop its leading bytes too. */
        while (len > 0 && ((unsigned char)v[len] & 0xc0) == 0x80) len--;
        while (len > 0 && pq_http_ows(v[len - 1])) len--;
    }
    for (o = 0; o < len; o++) {
        unsigned char c = (unsigned char)v[o];
        out[o] = (char)(c == '\t' ? ' ' : c < 0x20 || c == 0x7f ? '?' : c);
    }
    out[len] = '\0';
    return 1;
}

int pq_http_valid_header_name(const char *s, size_t n)
{
    size_t i;
    if (n == 0) return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || c == ':') return 0;
    }
    return 1;
}

int pq_http_valid_header_value(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
    return 1;
}
