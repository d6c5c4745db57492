/* pq_spool: packing of compact report records (layout in pq_spool.h). */
#include "pq_prefix.h"

#include <stdint.h>
#include <string.h>

#include "pq_common.h"
#include "pq_spool.h"

/* Each field has one bit of the record's 32-bit mask. */
PQ_STATIC_ASSERT(PQ_SP_NFIELDS <= 32, spool_fields_fit_the_mask);

const pq_spool_field pq_spool_layout[PQ_SP_NFIELDS] = {
#define PQ_SPOOL_ROW(id, name, kind) {name, kind},
    PQ_SPOOL_FIELDS(PQ_SPOOL_ROW)
#undef PQ_SPOOL_ROW
};

static void pq_spool_put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v & 0xff);
    p[1] = (char)((v >> 8) & 0xff);
    p[2] = (char)((v >> 16) & 0xff);
    p[3] = (char)((v >> 24) & 0xff);
}

static void pq_spool_put_double(char *p, double d)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &d, 8); /* already the record's byte order */
#else
    uint64_t u;
    int i;
    memcpy(&u, &d, sizeof u);
    for (i = 0; i < 8; i++) p[i] = (char)((u >> (8 * i)) & 0xff);
#endif
}

/* Bytes of one field. The size and the packing below are written out field
 * by field from PQ_SPOOL_FIELDS, so that each kind is known where it is
 * used (a loop over the layout looked it up and switched on it per field). */
static inline size_t pq_spool_bytes(char kind, const pq_spool_value *f)
{
    switch (kind) {
    case 'n': return 8;
    case 's': return 4 + (f->present ? f->len : 0);
    case 'b': return 1;
    default: return 0;
    }
}

size_t pq_spool_size(const pq_spool_value v[PQ_SP_NFIELDS])
{
    size_t size = 4 + 1 + 4;
#define PQ_SPOOL_SIZE(id, name, kind) size += pq_spool_bytes(kind, &v[PQ_SP_##id]);
    PQ_SPOOL_FIELDS(PQ_SPOOL_SIZE)
#undef PQ_SPOOL_SIZE
    return size;
}

/* Writes one field at p; returns where the next one goes. */
static inline char *pq_spool_put(char kind, const pq_spool_value *f, char *p)
{
    switch (kind) {
    case 'n':
        pq_spool_put_double(p, f->present ? f->num : 0.0);
        return p + 8;
    case 's':
        pq_spool_put_u32(p, (uint32_t)(f->present ? f->len : 0));
        if (f->present && f->len) memcpy(p + 4, f->str, f->len);
        return p + 4 + (f->present ? f->len : 0);
    case 'b':
        *p = (char)(f->present ? (int)f->num : 0);
        return p + 1;
    default:
        return p;
    }
}

void pq_spool_pack(const pq_spool_value v[PQ_SP_NFIELDS], char *out)
{
    uint32_t mask = 0;
    char *p = out + 9;
#define PQ_SPOOL_PUT(id, name, kind)                                        \
    if (v[PQ_SP_##id].present) mask |= (uint32_t)1 << PQ_SP_##id;           \
    p = pq_spool_put(kind, &v[PQ_SP_##id], p);
    PQ_SPOOL_FIELDS(PQ_SPOOL_PUT)
#undef PQ_SPOOL_PUT
    pq_spool_put_u32(out, (uint32_t)(p - out - 4));
    out[4] = 0;
    pq_spool_put_u32(out + 5, mask);
}
