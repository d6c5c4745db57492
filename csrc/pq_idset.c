/* pq_idset: see pq_idset.h. An open-addressing table of (hash, index). */
#include "pq_prefix.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pq_idset.h"

typedef struct pq_id_entry {
    uint64_t hash;   /* 0: empty */
    long long index;
} pq_id_entry;

struct pq_idset {
    pq_id_entry *t;
    size_t cap, n;   /* cap: a power of two */
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
    if (!s) return;
    free(s->t);
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

static int pq_id_grow(pq_idset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024, i;
    pq_id_entry *t = (pq_id_entry *)calloc(cap, sizeof *t);
    if (!t) return -1;
    for (i = 0; i < s->cap; i++) {
        size_t j;
        if (!s->t[i].hash) continue;
        for (j = (size_t)s->t[i].hash & (cap - 1); t[j].hash; j = (j + 1) & (cap - 1)) {}
        t[j] = s->t[i];
    }
    free(s->t);
    s->t = t;
    s->cap = cap;
    return 0;
}

long long pq_idset_claim(pq_idset *s, const char *dn, size_t dnlen, const char *data, size_t datalen,
                         const char *user, size_t userlen, long long index)
{
    uint64_t h = s->seed;
    size_t j;
    h = pq_id_field(h, dn, dnlen, 1);
    h = pq_id_field(h, data, datalen, 0);
    h = pq_id_mix(pq_id_field(h, user, userlen, 0));
    if (!h) h = 1;
    if ((s->n + 1) * 4 > s->cap * 3 && pq_id_grow(s) != 0) return -1;
    for (j = (size_t)h & (s->cap - 1); s->t[j].hash; j = (j + 1) & (s->cap - 1))
        if (s->t[j].hash == h) return s->t[j].index;
    s->t[j].hash = h;
    s->t[j].index = index;
    s->n++;
    return 0;
}
