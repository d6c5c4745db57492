/* pq_idset: see pq_idset.h. The hashes are split by their top byte into
 * 256 parts, each an open-addressing table (linear probing) of 64-bit
 * hashes beside the 32-bit item numbers. A part grows on its own, so that
 * growing never holds two copies of the whole set (the run's peak memory),
 * and a slot costs 12 bytes. */
#include "pq_prefix.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pq_idset.h"

#define PQ_ID_PARTS 256
/* A part grows past this load (in eighths): 7/8, as linear probing keeps
 * the probes short enough for 64-bit compares in one array. */
#define PQ_ID_LOAD 7

typedef struct pq_id_part {
    uint64_t *hash;   /* 0: empty; one allocation with index */
    uint32_t *index;  /* just past hash[cap] */
    uint32_t cap, n;  /* cap: 0 or a power of two */
} pq_id_part;

struct pq_idset {
    pq_id_part part[PQ_ID_PARTS];
    uint64_t seed;
};

static uint64_t pq_id_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

pq_idset *pq_idset_new(void)
{
    pq_idset *s = (pq_idset *)calloc(1, sizeof *s);
    struct timespec ts;
    if (!s) return NULL;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->seed = pq_id_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)s);
    return s;
}

void pq_idset_free(pq_idset *s)
{
    int i;
    if (!s) return;
    for (i = 0; i < PQ_ID_PARTS; i++) free(s->part[i].hash);
    free(s);
}

/* One step of the hash: a word in, multiplied and shifted through. */
static uint64_t pq_id_step(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

/* ASCII letters of the eight bytes of w to lower case, all at once: a byte
 * without its top bit that is from 'A' to 'Z' gains 0x20. */
static uint64_t pq_id_fold8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, top = 0x8080808080808080ULL;
    uint64_t low = w & ~top;
    uint64_t from_a = low + ones * (0x80 - 'A'), past_z = low + ones * (0x80 - 'Z' - 1);
    return w | (((from_a & ~past_z) & ~w & top) >> 2);
}

/* The length-prefixed field (so that no two identities share their bytes),
 * eight bytes a step; the DN's ASCII letters folded to lower case. */
static uint64_t pq_id_field(uint64_t h, const char *s, size_t n, int fold)
{
    size_t i;
    h = pq_id_step(h, (uint64_t)n);
    for (i = 0; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, s + i, n - i < 8 ? n - i : 8);
        h = pq_id_step(h, fold ? pq_id_fold8(w) : w);
    }
    return h;
}

static int pq_id_grow(pq_id_part *p)
{
    uint32_t cap = p->cap ? p->cap * 2 : 16, i;
    uint64_t *hash = cap > p->cap ? (uint64_t *)calloc(cap, sizeof *hash + sizeof(uint32_t)) : NULL;
    uint32_t *index;
    if (!hash) return -1;
    index = (uint32_t *)(hash + cap);
    for (i = 0; i < p->cap; i++) {
        uint32_t j;
        if (!p->hash[i]) continue;
        for (j = (uint32_t)p->hash[i] & (cap - 1); hash[j]; j = (j + 1) & (cap - 1)) {}
        hash[j] = p->hash[i];
        index[j] = p->index[i];
    }
    free(p->hash);
    p->hash = hash;
    p->index = index;
    p->cap = cap;
    return 0;
}

/* The slot of h in part p: where it is, or the empty slot where it goes. */
static uint32_t pq_id_slot(const pq_id_part *p, uint64_t h)
{
    uint32_t j;
    for (j = (uint32_t)h & (p->cap - 1); p->hash[j] && p->hash[j] != h; j = (j + 1) & (p->cap - 1)) {}
    return j;
}

static long long pq_id_claim_hash(pq_idset *s, uint64_t h, long long index)
{
    pq_id_part *p;
    uint32_t j;
    if (!h) h = 1;
    p = &s->part[h >> 56];
    if ((uint64_t)(p->n + 1) * 8 > (uint64_t)p->cap * PQ_ID_LOAD && pq_id_grow(p) != 0) return -1;
    j = pq_id_slot(p, h);
    if (p->hash[j]) return (long long)p->index[j];
    p->hash[j] = h;
    p->index[j] = index > (long long)UINT32_MAX ? UINT32_MAX : (uint32_t)index;
    p->n++;
    return 0;
}

long long pq_idset_claim(pq_idset *s, const char *dn, size_t dnlen, const char *data, size_t datalen,
                         const char *user, size_t userlen, long long index)
{
    uint64_t h = s->seed;
    h = pq_id_field(h, dn, dnlen, 1);
    h = pq_id_field(h, data, datalen, 0);
    return pq_id_claim_hash(s, pq_id_mix(pq_id_field(h, user, userlen, 0)), index);
}

/* A key is a digest already: mixed with the seed only, so that its slots
 * are not chosen by whoever chose the inputs. */
static uint64_t pq_id_key_hash(const pq_idset *s, uint64_t key)
{
    uint64_t h = pq_id_mix(key ^ s->seed);
    return h ? h : 1;
}

long long pq_idset_claim_key(pq_idset *s, uint64_t key, long long index)
{
    return pq_id_claim_hash(s, pq_id_key_hash(s, key), index);
}

long long pq_idset_find_key(const pq_idset *s, uint64_t key)
{
    uint64_t h = pq_id_key_hash(s, key);
    const pq_id_part *p = &s->part[h >> 56];
    uint32_t j;
    if (!p->cap) return 0;
    j = pq_id_slot(p, h);
    return p->hash[j] ? (long long)p->index[j] : 0;
}
