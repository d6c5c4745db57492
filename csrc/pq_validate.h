/* Field rules for a PreQualify/Create request, in plain C so they can be unit
 * tested and fuzzed without Lua or curl. Each checker returns 0 when the value
 * is acceptable, or -1 and writes the broken rule (without the field name)
 * into msg. */
#ifndef PQ_VALIDATE_H
#define PQ_VALIDATE_H

#include <stddef.h>

/* 0 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF); otherwise -1 with the byte offset of the first bad sequence. */
int pq_utf8_check(const char *s, size_t n, size_t *bad_offset);

int pq_check_dn(const char *s, size_t n, char *msg, size_t cap);
int pq_check_comment(const char *s, size_t n, char *msg, size_t cap);
int pq_check_user(const char *s, size_t n, char *msg, size_t cap);
int pq_check_hours(long long hours, char *msg, size_t cap);
/* A braced GUID: {8-4-4-4-12 hex digits}. */
int pq_is_guid(const char *s, size_t n);

/* The usual hash for a digest of n bytes ("sha256" for 32), or NULL. */
const char *pq_algorithm_for_length(size_t n);

#endif
