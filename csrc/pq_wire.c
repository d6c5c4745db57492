/* The JSON body of PreQualify/Create: Dn, Data, Comment, User, Hours,
 * SingleUse in that order, absent optional fields left out (never null),
 * Hours an integer, strings escaped byte for byte as lua-cjson escapes them
 * (the encoder that made the bodies before). */
#include "pq_prefix.h"

#include <stdint.h>
#include <string.h>

#include "pq_format.h"
#include "pq_wire.h"

/* SSE2 (every x86-64) looks at sixteen bytes at a time; PQ_WIRE_PORTABLE
 * builds the portable code alone (spec/c tests both). */
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__)) && !defined(PQ_WIRE_PORTABLE)
#define PQ_WIRE_SSE2 1
#include <emmintrin.h>
#endif

/* Where the body goes: bytes past cap are counted, not written. */
typedef struct pq_wire_out {
    char *p;
    size_t n, cap;
} pq_wire_out;

static void pq_wire_put(pq_wire_out *o, const char *s, size_t n)
{
    if (o->n <= o->cap && n <= o->cap - o->n) memcpy(o->p + o->n, s, n);
    o->n += n;
}

/* Bytes that lua-cjson escapes in a string: control characters, ", /, \\ and DEL. */
static const unsigned char pq_wire_escaped[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Whether none of the eight bytes at s is escaped (see the table above),
 * tested at once: no byte is below 0x20 and none equals ", /, \\ or DEL.
 * Each test says exactly whether any byte is such (not which one). */
static int pq_wire_plain8(const unsigned char *s)
{
    const uint64_t ones = 0x0101010101010101ULL, top = 0x8080808080808080ULL;
    uint64_t w, q, sl, bs, del;
    memcpy(&w, s, 8);
    q = w ^ (ones * '"');
    sl = w ^ (ones * '/');
    bs = w ^ (ones * '\\');
    del = w ^ (ones * 0x7f);
    return ((((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((sl - ones) & ~sl) | ((bs - ones) & ~bs) |
             ((del - ones) & ~del)) & top) == 0;
}

#ifdef PQ_WIRE_SSE2
/* A bit for each of the sixteen bytes at s that is escaped (bit i: byte i). */
static unsigned pq_wire_escaped16(const char *s)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i hit = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
    hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
    hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, _mm_set1_epi8('/')));
    hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)));
    return (unsigned)_mm_movemask_epi8(hit);
}
#endif

/* The place of the first escaped byte of s[i..n), or n. Text with nothing
 * to escape, nearly all of a request, is passed over a block at a time. */
static size_t pq_wire_next(const char *s, size_t i, size_t n)
{
#ifdef PQ_WIRE_SSE2
    while (n - i >= 16) {
        unsigned hits = pq_wire_escaped16(s + i);
        if (hits) return i + (size_t)__builtin_ctz(hits);
        i += 16;
    }
#endif
    while (n - i >= 8 && pq_wire_plain8((const unsigned char *)s + i)) i += 8;
    /* Within eight bytes when a block held one; else to the end. */
    while (i < n && !pq_wire_escaped[(unsigned char)s[i]]) i++;
    return i;
}

/* Appends s as a JSON string. UTF-8 was validated and passes through. */
static void pq_wire_string(pq_wire_out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, run = 0;
    pq_wire_put(o, "\"", 1);
    while ((i = pq_wire_next(s, i, n)) < n) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
        pq_wire_put(o, s + run, i - run);
        run = ++i;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '/': esc = "\\/"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            pq_wire_put(o, u, 6);
            continue;
        }
        pq_wire_put(o, esc, 2);
    }
    pq_wire_put(o, s + run, n - run);
    pq_wire_put(o, "\"", 1);
}

size_t pq_wire_json_string(const char *s, size_t n, char *out, size_t cap)
{
    pq_wire_out o;
    o.p = out;
    o.n = 0;
    o.cap = out ? cap : 0;
    pq_wire_string(&o, s, n);
    return o.n;
}

size_t pq_wire_body(const pq_wire_req *r, char *out, size_t cap)
{
    static const char *const names[] = {"{\"Dn\":", ",\"Data\":", ",\"Comment\":", ",\"User\":"};
    static const size_t names_len[] = {6, 8, 11, 8};
    pq_wire_out o;
    size_t i;
    o.p = out;
    o.n = 0;
    o.cap = out ? cap : 0;
    for (i = 0; i < 4; i++) {
        if (!r->str[i]) continue;
        pq_wire_put(&o, names[i], names_len[i]);
        pq_wire_string(&o, r->str[i], r->len[i]);
    }
    if (r->has_hours) {
        char num[PQ_FORMAT_MAX];
        size_t len = pq_format_int(r->hours, num); /* snprintf was a third of the body's cost */
        pq_wire_put(&o, ",\"Hours\":", 9);
        pq_wire_put(&o, num, len);
    }
    if (r->has_single) {
        if (r->single_use) pq_wire_put(&o, ",\"SingleUse\":true", 17);
        else pq_wire_put(&o, ",\"SingleUse\":false", 18);
    }
    pq_wire_put(&o, "}", 1);
    return o.n;
}
