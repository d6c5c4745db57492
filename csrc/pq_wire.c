/* The JSON body of PreQualify/Create: Dn, Data, Comment, User, Hours,
 * SingleUse in that order, absent optional fields left out (never null),
 * Hours an integer, strings escaped byte for byte as lua-cjson escapes them
 * (the encoder that made the bodies before). */
#include "pq_prefix.h"

#include <stdint.h>
#include <string.h>

#include "pq_wire.h"

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

/* Appends s as a JSON string. UTF-8 was validated and passes through. Text
 * with nothing to escape, nearly all of a request, is passed over eight
 * bytes at a time; a block that holds an escaped byte is looked at up to
 * that byte, and the next block starts after it. */
static void pq_wire_string(pq_wire_out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, run = 0;
    pq_wire_put(o, "\"", 1);
    while (i < n) {
        size_t end = n - i >= 8 ? i + 8 : n;
        unsigned char c;
        const char *esc = NULL;
        char u[6];
        if (end - i == 8 && pq_wire_plain8((const unsigned char *)s + i)) {
            i = end;
            continue;
        }
        while (i < end && !pq_wire_escaped[(unsigned char)s[i]]) i++;
        if (i == end) continue;
        c = (unsigned char)s[i];
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
        /* Digits by hand: snprintf was a third of the body's cost. */
        char num[32], *p = num + sizeof num;
        unsigned long long u = r->hours < 0 ? 0u - (unsigned long long)r->hours
                                            : (unsigned long long)r->hours;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (r->hours < 0) *--p = '-';
        pq_wire_put(&o, ",\"Hours\":", 9);
        pq_wire_put(&o, p, (size_t)(num + sizeof num - p));
    }
    if (r->has_single) {
        if (r->single_use) pq_wire_put(&o, ",\"SingleUse\":true", 17);
        else pq_wire_put(&o, ",\"SingleUse\":false", 18);
    }
    pq_wire_put(&o, "}", 1);
    return o.n;
}
