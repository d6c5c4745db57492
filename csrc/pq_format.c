/* pq_format: see pq_format.h. glibc's snprintf took 13.7k instructions an
 * item for the seven numbers (and five strings) of an intent and a done
 * record, most of it in its general conversion. The double path takes the
 * exact binary value apart (an IEEE 754 double, as on every host the core
 * builds for: a 53-bit integer over a power of two) and rounds it in 64-bit
 * integers as glibc does, to the nearest and ties to even (test_format.c
 * compares the two). */
#include "pq_prefix.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pq_format.h"

static const uint64_t pq_pow10[15] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
    1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL,
};

/* Writes the decimal digits of u at out, at least `width` of them (zeros in
 * front); their count. */
static size_t pq_format_digits(uint64_t u, size_t width, char *out)
{
    char tmp[20];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0 || n < width);
    for (i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

size_t pq_format_int(long long v, char *out)
{
    size_t n = 0;
    if (v < 0) out[n++] = '-';
    n += pq_format_digits(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, 1, out + n);
    out[n] = '\0';
    return n;
}

size_t pq_format_g14(double d, char *out)
{
    double a = d < 0 ? -d : d;
    uint64_t bits, k, whole, frac, rest, half, n14;
    int s, digits, m;
    size_t n = 0;
    /* %.14g writes 14 significant digits, here digits before the point and
     * m = 14 - digits after it; NaN fails this test too. */
    if (!(a >= 1 && a < 1e14)) return (size_t)snprintf(out, PQ_FORMAT_MAX, "%.14g", d);
    memcpy(&bits, &a, sizeof bits);
    k = (bits & ((1ULL << 52) - 1)) | 1ULL << 52;
    s = 1075 - (int)(bits >> 52); /* a = k / 2^s exactly, s from 6 to 52 */
    whole = k >> s;
    frac = k & ((1ULL << s) - 1);
    for (digits = 1; digits < 14 && whole >= pq_pow10[digits]; digits++) continue;
    m = 14 - digits;
    /* frac / 2^s to m decimals: frac * 10^m / 2^s, after dropping the
     * trailing zero bits of frac so that the product fits 64 bits (it does
     * for every Unix time and line number; otherwise snprintf). */
    while (frac > 0 && (frac & 1) == 0) {
        frac >>= 1;
        s--;
    }
    if (frac > UINT64_MAX / pq_pow10[m]) return (size_t)snprintf(out, PQ_FORMAT_MAX, "%.14g", d);
    frac *= pq_pow10[m];
    n14 = whole * pq_pow10[m] + (frac >> s);
    rest = frac & ((1ULL << s) - 1); /* s >= 1: frac < 2^s was odd or 0 */
    half = 1ULL << (s - 1);
    if (rest > half || (rest == half && (n14 & 1))) n14++;
    /* Rounded up to 10^14 (all nines): a digit more, which snprintf writes. */
    if (n14 >= pq_pow10[14]) return (size_t)snprintf(out, PQ_FORMAT_MAX, "%.14g", d);
    if (d < 0) out[n++] = '-';
    n += pq_format_digits(n14 / pq_pow10[m], 1, out + n);
    if (n14 % pq_pow10[m] > 0) {
        out[n++] = '.';
        n += pq_format_digits(n14 % pq_pow10[m], (size_t)m, out + n);
        while (out[n - 1] == '0') n--; /* %g drops trailing zeros */
    }
    out[n] = '\0';
    return n;
}
