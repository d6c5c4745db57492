/* The JSON body of PreQualify/Create, in plain C (no Lua, no curl) so that
 * its bytes can be unit tested: the fields of a validated request in, the
 * body out, escaped as lua-cjson escapes. */
#ifndef PQ_WIRE_H
#define PQ_WIRE_H

#include <stddef.h>

enum { PQ_WIRE_DN, PQ_WIRE_DATA, PQ_WIRE_COMMENT, PQ_WIRE_USER };

/* The fields of a body. A NULL string is left out; the strings need not be
 * NUL-terminated and are not copied. */
typedef struct pq_wire_req {
    const char *str[4]; /* dn, data (Base64), comment, user: PQ_WIRE_* */
    size_t len[4];
    long long hours;
    int has_hours, has_single, single_use;
} pq_wire_req;

/* Writes the body of r into out[0..cap) and returns its length, like
 * snprintf without the NUL: when the result is larger than cap, nothing
 * past out[cap) was written and the caller calls again with a buffer of
 * that size. out may be NULL when cap is 0. */
size_t pq_wire_body(const pq_wire_req *r, char *out, size_t cap);

/* Writes s[0..n) as one JSON string, quoted and escaped the same way, into
 * out[0..cap) and returns its length, as pq_wire_body does; at most 6n + 2
 * bytes. The journal records the batch pipeline writes use it too. */
size_t pq_wire_json_string(const char *s, size_t n, char *out, size_t cap);

#endif
