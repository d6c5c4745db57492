/* pq_key: the journal key of a pre-qualification's identity (see
 * lua/prequalify/journal.lua): Base64 without padding of the SHA-256 of
 * "prequalify-key-v2\0" and the length-prefixed DN (ASCII letters folded to
 * lower case, as the server compares it), data and user, each length 4 bytes
 * big-endian; and the digest's first 8 bytes as a little-endian integer, the
 * short key the journal's index is held by. Plain C over OpenSSL's EVP. */
#ifndef PQ_KEY_H
#define PQ_KEY_H

#include <stddef.h>
#include <stdint.h>

/* Characters of a key (43: 32 bytes in Base64, no padding). */
#define PQ_KEY_LEN 43

/* What making keys reuses: a digest context and SHA-256, fetched once. */
typedef struct pq_key_maker pq_key_maker;

pq_key_maker *pq_key_new(void); /* NULL: out of memory */
void pq_key_free(pq_key_maker *k);

/* Writes the key of an identity into out (PQ_KEY_LEN + 1 bytes,
 * NUL-terminated) and its short key into *shortkey. 0, or -1 when OpenSSL
 * fails. */
int pq_key_make(pq_key_maker *k, const char *dn, size_t dnlen, const char *data, size_t datalen,
                const char *user, size_t userlen, char *out, uint64_t *shortkey);

#endif
