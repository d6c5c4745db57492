/* pq_idset: see pq_idset.h. The hashes are split by their top byte into
 * 256 parts, each an open-addressing table (linear probing) of 64-bit
 * hashes beside the 32-bit item numbers: 12 bytes a slot. A part's table is
 * made of blocks of PQ_ID_BLOCK slots and grows on its own, by an eighth
 * (at least a block), so that growing never holds two copies of the whole
 * set (the run's peak memory) and the load stays between about 3/4 and 7/8
 * once a part has a few blocks. The blocks a part gives up when it grows go
 * to the set's pool, where the next part to grow takes them; new blocks are
 * cut from slabs of about 128 KiB. So the heap is not left with the freed
 * tables of every size the parts went through, nor are the set's blocks
 * strewn among the Lua objects of the run. */
#include "pq_prefix.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pq_idset.h"

#define PQ_ID_PARTS 256
/* Slots of a block (a power of two). */
#ifndef PQ_ID_BLOCK
#define PQ_ID_BLOCK 32
#endif
/* A part grows past this load (in eighths): 7/8, as linear probing keeps
 * the probes short enough for 64-bit compares. */
#define PQ_ID_LOAD 7

typedef struct pq_id_block {
    uint64_t hash[PQ_ID_BLOCK]; /* 0: empty */
    uint32_t index[PQ_ID_BLOCK];
} pq_id_block;

typedef struct pq_id_part {
    pq_id_block **block; /* nblocks of them */
    uint32_t nblocks, n;
} pq_id_part;

/* Blocks of a slab: 128 KiB less the header. */
#define PQ_ID_SLAB_BLOCKS ((128 * 1024 - 16) / sizeof(pq_id_block))

typedef struct pq_id_slab {
    struct pq_id_slab *next;
    size_t used;
    pq_id_block block[PQ_ID_SLAB_BLOCKS];
} pq_id_slab;

struct pq_idset {
    pq_id_part part[PQ_ID_PARTS];
    pq_id_block *pool; /* blocks given up by parts that grew, linked through
                          their first word */
    size_t nheld;      /* blocks cut from the slabs */
    pq_id_slab *slab;  /* the newest first */
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
    size_t i;
    if (!s) return;
    for (i = 0; i < PQ_ID_PARTS; i++) free(s->part[i].block);
    while (s->slab) {
        pq_id_slab *next = s->slab->next;
        free(s->slab);
        s->slab = next;
    }
    free(s);
}

size_t pq_idset_bytes(const pq_idset *s)
{
    size_t i, bytes = sizeof *s + s->nheld * sizeof(pq_id_block);
    for (i = 0; i < PQ_ID_PARTS; i++) bytes += s->part[i].nblocks * sizeof *s->part[i].block;
    return bytes;
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

/* Where h is, or the empty slot where it goes, in a table of nblocks
 * blocks: its first probe is the low 32 bits of h scaled to the table (the
 * top byte chose the part). */
static uint64_t *pq_id_slot(pq_id_block *const *block, uint32_t nblocks, uint64_t h, uint32_t **index)
{
    uint32_t cap = nblocks * PQ_ID_BLOCK, j = (uint32_t)(((h & 0xffffffffu) * (uint64_t)cap) >> 32);
    for (;;) {
        pq_id_block *b = block[j / PQ_ID_BLOCK];
        uint32_t k = j % PQ_ID_BLOCK;
        if (!b->hash[k] || b->hash[k] == h) {
            *index = &b->index[k];
            return &b->hash[k];
        }
        if (++j == cap) j = 0;
    }
}

/* A zeroed block: from the pool, else cut from a slab; NULL when out of
 * memory. */
static pq_id_block *pq_id_take(pq_idset *s)
{
    if (s->pool) {
        pq_id_block *b = s->pool;
        memcpy(&s->pool, b->hash, sizeof s->pool);
        memset(b, 0, sizeof *b);
        return b;
    }
    if (!s->slab || s->slab->used == PQ_ID_SLAB_BLOCKS) {
        pq_id_slab *slab = (pq_id_slab *)calloc(1, sizeof *slab);
        if (!slab) return NULL;
        slab->next = s->slab;
        s->slab = slab;
    }
    s->nheld++;
    return &s->slab->block[s->slab->used++];
}

/* Puts a block back in the pool. */
static void pq_id_give(pq_idset *s, pq_id_block *b)
{
    memcpy(b->hash, &s->pool, sizeof s->pool);
    s->pool = b;
}

/* Grows part p by an eighth of its blocks (at least one) and moves its
 * entries over; 0, or -1 when out of memory (p is as it was). */
static int pq_id_grow(pq_idset *s, pq_id_part *p)
{
    uint32_t add = p->nblocks / 8 ? p->nblocks / 8 : 1, nb = p->nblocks + add, i, k;
    pq_id_block **block = (pq_id_block **)calloc(nb, sizeof *block);
    if (!block) return -1;
    for (i = 0; i < nb; i++) {
        if (!(block[i] = pq_id_take(s))) {
            while (i-- > 0) pq_id_give(s, block[i]);
            free(block);
            return -1;
        }
    }
    for (i = 0; i < p->nblocks; i++) {
        pq_id_block *b = p->block[i];
        for (k = 0; k < PQ_ID_BLOCK; k++) {
            uint32_t *index;
            if (!b->hash[k]) continue;
            *pq_id_slot(block, nb, b->hash[k], &index) = b->hash[k];
            *index = b->index[k];
        }
        pq_id_give(s, b);
    }
    free(p->block);
    p->block = block;
    p->nblocks = nb;
    return 0;
}

static long long pq_id_claim_hash(pq_idset *s, uint64_t h, long long index)
{
    pq_id_part *p;
    uint64_t *slot;
    uint32_t *at;
    if (!h) h = 1;
    p = &s->part[h >> 56];
    if ((uint64_t)(p->n + 1) * 8 > (uint64_t)p->nblocks * PQ_ID_BLOCK * PQ_ID_LOAD && pq_id_grow(s, p) != 0)
        return -1;
    slot = pq_id_slot(p->block, p->nblocks, h, &at);
    if (*slot) return (long long)*at;
    *slot = h;
    *at = index > (long long)UINT32_MAX ? UINT32_MAX : (uint32_t)index;
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
    uint32_t *at;
    if (!p->nblocks) return 0;
    return *pq_id_slot(p->block, p->nblocks, h, &at) ? (long long)*at : 0;
}
