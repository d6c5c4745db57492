/* Unit test of pq_spool (the report's binary record): the size and bytes of
 * a record with every field absent, the bytes of a few present fields at
 * their places, and records of every combination of present fields against
 * a reference packer that walks pq_spool_layout one field at a time (the
 * layout string.unpack reads back in report.lua). Prints one line per failed
 * check and a total. */
#include "pq_prefix.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pq_spool.h"
#include "test_check.h"

static uint32_t u32_at(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* The record as the layout describes it, field by field; returns its size. */
static size_t reference_pack(const pq_spool_value v[PQ_SP_NFIELDS], char *out)
{
    size_t i, n = 9;
    uint32_t mask = 0;
    for (i = 0; i < PQ_SP_NFIELDS; i++) {
        const pq_spool_value *f = &v[i];
        uint32_t len = (uint32_t)(f->present ? f->len : 0);
        double d = f->present ? f->num : 0.0;
        uint64_t bits;
        int k;
        if (f->present) mask |= (uint32_t)1 << i;
        switch (pq_spool_layout[i].kind) {
        case 'n':
            memcpy(&bits, &d, 8);
            for (k = 0; k < 8; k++) out[n + (size_t)k] = (char)(bits >> (8 * k) & 0xff);
            n += 8;
            break;
        case 's':
            out[n] = (char)(len & 0xff);
            out[n + 1] = (char)(len >> 8 & 0xff);
            out[n + 2] = (char)(len >> 16 & 0xff);
            out[n + 3] = (char)(len >> 24 & 0xff);
            if (len) memcpy(out + n + 4, f->str, len);
            n += 4 + len;
            break;
        case 'b':
            out[n++] = (char)(f->present ? (int)f->num : 0);
            break;
        default:
            break;
        }
    }
    out[0] = (char)((n - 4) & 0xff);
    out[1] = (char)((n - 4) >> 8 & 0xff);
    out[2] = (char)((n - 4) >> 16 & 0xff);
    out[3] = (char)((n - 4) >> 24 & 0xff);
    out[4] = 0;
    out[5] = (char)(mask & 0xff);
    out[6] = (char)(mask >> 8 & 0xff);
    out[7] = (char)(mask >> 16 & 0xff);
    out[8] = (char)(mask >> 24 & 0xff);
    return n;
}

static void test_empty_record(void)
{
    pq_spool_value v[PQ_SP_NFIELDS];
    char out[256];
    memset(v, 0, sizeof v);
    /* 10 numbers, 12 strings, 2 booleans, 2 nested tables. */
    CHECK(pq_spool_size(v) == 9 + 10 * 8 + 12 * 4 + 2);
    memset(out, '#', sizeof out);
    pq_spool_pack(v, out);
    CHECK(u32_at(out) == pq_spool_size(v) - 4 && out[4] == 0 && u32_at(out + 5) == 0);
    CHECK(out[pq_spool_size(v)] == '#');
}

static void test_fields_at_their_places(void)
{
    pq_spool_value v[PQ_SP_NFIELDS];
    char out[256];
    uint64_t bits = 0;
    double d;
    int k;
    memset(v, 0, sizeof v);
    v[PQ_SP_INDEX].present = 1;
    v[PQ_SP_INDEX].num = 7;
    v[PQ_SP_KEY].present = 1;
    v[PQ_SP_KEY].str = "abc";
    v[PQ_SP_KEY].len = 3;
    v[PQ_SP_RESUMED].present = 1;
    v[PQ_SP_RESUMED].num = 2;
    CHECK(pq_spool_size(v) == 9 + 10 * 8 + 12 * 4 + 2 + 3);
    pq_spool_pack(v, out);
    CHECK(u32_at(out + 5) == ((1u << PQ_SP_INDEX) | (1u << PQ_SP_KEY) | (1u << PQ_SP_RESUMED)));
    for (k = 7; k >= 0; k--) bits = bits << 8 | (unsigned char)out[9 + k];
    memcpy(&d, &bits, 8);
    CHECK(d == 7.0);
    /* index, line (8 bytes each), file and source (4 each), then key. */
    CHECK(u32_at(out + 9 + 16 + 8) == 3 && memcmp(out + 9 + 16 + 8 + 4, "abc", 3) == 0);
}

/* Every combination of a number, a string and a boolean present, in every
 * field of those kinds: the same bytes as the reference. */
static void test_against_reference(void)
{
    static const char *const words[] = {"", "x", "approved", "\\VED\\Code Signing\\Projects\\Sample"};
    int ok = 1;
    unsigned round;
    for (round = 0; round < 64; round++) {
        pq_spool_value v[PQ_SP_NFIELDS];
        char got[1024], want[1024];
        size_t i, n;
        memset(v, 0, sizeof v);
        for (i = 0; i < PQ_SP_NFIELDS; i++) {
            if ((i + round) % 3 == 0) continue; /* absent */
            v[i].present = 1;
            v[i].num = pq_spool_layout[i].kind == 'b' ? 1 + (double)((i + round) % 2) : (double)i * 1.5 - round;
            v[i].str = words[(i + round) % 4];
            v[i].len = strlen(v[i].str);
        }
        n = reference_pack(v, want);
        memset(got, '#', sizeof got);
        pq_spool_pack(v, got);
        if (pq_spool_size(v) != n || memcmp(got, want, n) != 0 || got[n] != '#') ok = 0;
    }
    CHECK(ok);
}

int main(void)
{
    test_empty_record();
    test_fields_at_their_places();
    test_against_reference();
    return test_total();
}
