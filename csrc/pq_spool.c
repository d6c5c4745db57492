/* pq_spool: packing of compact report records (layout in pq_spool.h). */
#include "pq_prefix.h"

#include <stdint.h>
#include <string.h>

#include "pq_common.h"
#include "pq_spool.h"

/* Each field has one bit of the record's 32-bit mask. */
PQ_STATIC_ASSERT(PQ_SP_NFIELDS <= 32, spool_fields_fit_the_mask);

const pq_spool_field pq_spool_layout[PQ_SP_NFIELDS] = {
    {"index", 'n'}, {"line", 'n'}, {"file", 's'}, {"source", 's'}, {"key", 's'},
    {"outcome", 's'}, {"reason", 's'}, {"previous", 's'}, {"resumed", 'b'},
    {"attempts", 'n'}, {"started", 'n'}, {"elapsed", 'n'}, {"server_time", 'n'},
    {"request", 't'},
    {"dn", 's'}, {"user", 's'}, {"data", 's'}, {"algorithm", 's'},
    {"digest_length", 'n'}, {"hours", 'n'}, {"single_use", 'b'}, {"comment", 's'},
    {"server", 't'},
    {"status", 'n'}, {"result", 'n'}, {"result_name", 's'},
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

size_t pq_spool_size(const pq_spool_value v[PQ_SP_NFIELDS])
{
    size_t i, size = 4 + 1 + 4;
    for (i = 0; i < PQ_SP_NFIELDS; i++) {
        switch (pq_spool_layout[i].kind) {
        case 'n': size += 8; break;
        case 's': size += 4 + (v[i].present ? v[i].len : 0); break;
        case 'b': size += 1; break;
        default: break;
        }
    }
    return size;
}

void pq_spool_pack(const pq_spool_value v[PQ_SP_NFIELDS], char *out)
{
    size_t i;
    uint32_t mask = 0;
    char *p = out + 9;
    for (i = 0; i < PQ_SP_NFIELDS; i++) {
        const pq_spool_value *f = &v[i];
        if (f->present) mask |= (uint32_t)1 << i;
        switch (pq_spool_layout[i].kind) {
        case 'n':
            pq_spool_put_double(p, f->present ? f->num : 0.0);
            p += 8;
            break;
        case 's':
            pq_spool_put_u32(p, (uint32_t)(f->present ? f->len : 0));
            if (f->present && f->len) memcpy(p + 4, f->str, f->len);
            p += 4 + (f->present ? f->len : 0);
            break;
        case 'b':
            *p++ = (char)(f->present ? (int)f->num : 0);
            break;
        default:
            break;
        }
    }
    pq_spool_put_u32(out, (uint32_t)(p - out - 4));
    out[4] = 0;
    pq_spool_put_u32(out + 5, mask);
}
