/* Standard Base64 (RFC 4648 section 4): strict decoding with a reason on
 * failure, and encoding. Plain C, no Lua, no curl. */
#ifndef PQ_BASE64_H
#define PQ_BASE64_H

#include <stddef.h>

/* Bytes needed to encode n bytes, not counting a terminating NUL. */
size_t pq_b64_encoded_len(size_t n);
/* Encodes n bytes of in into out (pq_b64_encoded_len(n) + 1 bytes); NUL-terminates.
 * Returns the encoded length. */
size_t pq_b64_encode(const unsigned char *in, size_t n, char *out);
/* Checks that s[0..n) is strict, canonical, padded standard Base64. On success
 * returns 0 and stores the decoded length; on failure returns -1 and writes a
 * reason (no field name) into msg. If out is not NULL it receives the decoded
 * bytes (at least n / 4 * 3 bytes). */
int pq_b64_decode(const char *s, size_t n, unsigned char *out, size_t *decoded_len,
                  char *msg, size_t msgcap);

#endif
