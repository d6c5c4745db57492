/* pq_idset: the identities of the items of one run, so that an identity goes
 * on the wire at most once. The identity of a pre-qualification is what the
 * server matches at signing time: the environment DN (compared without
 * regard to ASCII letter case, as the server does), the data and the user.
 * Hours, single-use and comment are its terms, not its identity.
 *
 * The set keeps a 64-bit keyed hash of each identity (seeded per set) and the
 * number of the first item that had it: 12 bytes a slot, about 14 to 16
 * bytes an item past a few thousand items, and growing it never copies the
 * whole set at once. A false match (odds about 1 in 3 x 10^7 for a
 * million-item run) shows as a reported skip, never as a second request. */
#ifndef PQ_IDSET_H
#define PQ_IDSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct pq_idset pq_idset;

pq_idset *pq_idset_new(void);
void pq_idset_free(pq_idset *s);

/* ASCII letters to lower case, other bytes as they are: how DNs compare. */
static inline unsigned char pq_id_fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Claims the identity for item `index` (> 0). Returns 0 when it is new (and
 * now taken), the index of the earlier item that took it (numbers past
 * 2^32 - 1 are kept as 2^32 - 1), or -1 when out of memory. */
long long pq_idset_claim(pq_idset *s, const char *dn, size_t dnlen, const char *data, size_t datalen,
                         const char *user, size_t userlen, long long index);

/* Bytes the set holds: its tables and the blocks kept for reuse (the
 * newest slab's uncut rest, under 128 KiB, is not counted). */
size_t pq_idset_bytes(const pq_idset *s);

/* The same for a key that is a digest already (a journal's short key,
 * pq_key.h), claimed without hashing fields: a set holds keys or
 * identities, not both. */
long long pq_idset_claim_key(pq_idset *s, uint64_t key, long long index);
/* The index a key was claimed with, or 0 when it was not. */
long long pq_idset_find_key(const pq_idset *s, uint64_t key);

#endif
