/* Unit test of pq_format.h: every number is written as snprintf writes it
 * ("%lld", "%.14g"), byte for byte, over edge values, integers, times of
 * day with every fraction, values whose rounding is an exact tie, and
 * random doubles of every size and sign. Built under ASan+UBSan by
 * .ci/extra; prints the first mismatches and a total. */
#include "pq_prefix.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pq_format.h"
#include "test_check.h"

static long mismatches, compared;

/* A fixed-seed generator (xorshift64*): the same values every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Counts a comparison of what pq_format wrote (n bytes and a NUL) with
 * what snprintf wrote; prints the first mismatches. */
static void compare(const char *format, const char *want, const char *got, size_t n)
{
    compared++;
    if (n != strlen(want) || memcmp(got, want, n + 1) != 0) {
        if (++mismatches <= 10) printf("%s: want \"%s\", got \"%.*s\"\n", format, want, (int)n, got);
    }
}

static void same_g14(double d)
{
    char want[64], got[PQ_FORMAT_MAX + 8];
    memset(got, 'x', sizeof got);
    snprintf(want, sizeof want, "%.14g", d);
    compare("%.14g", want, got, pq_format_g14(d, got));
}

static void same_int(long long v)
{
    char want[64], got[PQ_FORMAT_MAX + 8];
    memset(got, 'x', sizeof got);
    snprintf(want, sizeof want, "%lld", v);
    compare("%lld", want, got, pq_format_int(v, got));
}

/* d and -d. */
static void same_both(double d)
{
    same_g14(d);
    same_g14(-d);
}

static void test_edges(void)
{
    static const double edges[] = {
        0.0, 1.0, 2.0, 9.0, 10.0, 0.5, 0.1, 1e-4, 1e-5, 0.99999999999999994, 1.5, 2.5,
        9.99999999999999, 9.999999999999999, 19.99999999999997, 99.99999999999999,
        1e13, 1e14 - 1, 1e14, 1e14 + 1, 99999999999999.5, 99999999999999.4, 99999999999999.6,
        1234567890123.25, 1234567890123.75, 1234567890123.5, 123456789012.125, 12345678901.0625,
        4503599627370495.5, 9007199254740992.0, 1e15, 1e16, 1e21, 1e22, 1e300,
        DBL_MAX, DBL_MIN, DBL_MIN / 4, DBL_EPSILON, 1.0 + DBL_EPSILON, 2.0 - DBL_EPSILON / 2,
        1764788984.0, 1764788984.5, 1764788984.00005, 1764788984.99995, 1764788984.99999,
        9999999999.99995, 1000000000.00005, 8.0, 24.0, 168.0,
    };
    size_t i;
    for (i = 0; i < sizeof edges / sizeof edges[0]; i++) same_both(edges[i]);
    same_g14(-0.0);
    same_g14(HUGE_VAL);
    same_g14(-HUGE_VAL);
    same_g14(nan(""));
}

static void test_integers(void)
{
    long long v;
    int i;
    for (v = -1000; v <= 100000; v++) same_int(v);
    for (v = 1; v <= 100000; v++) same_both((double)v);
    same_int(LLONG_MAX);
    same_int(LLONG_MIN);
    same_int(LLONG_MIN + 1);
    for (i = 0; i < 200000; i++) {
        same_int((long long)rng());
        same_both((double)(rng() % 100000000000000ULL));
        same_both((double)(rng() % 1000000000000000ULL));
    }
}

/* Unix times as the pipeline makes them (seconds + nanoseconds / 1e9), over
 * every nanosecond pattern, and times with few fraction bits (exact ties). */
static void test_times(void)
{
    int i;
    for (i = 0; i < 400000; i++) {
        double sec = (double)(1000000000 + rng() % 4000000000ULL);
        same_both(sec + (double)(rng() % 1000000000ULL) / 1e9);
        same_both(sec + (double)(rng() % 100000ULL) / 1e5);
        same_both(sec + (double)(rng() % 64) / 64);
    }
}

/* Random doubles: any bits; any size from 1e-6 to 1e20; decimal fractions. */
static void test_random(void)
{
    int i;
    for (i = 0; i < 400000; i++) {
        uint64_t bits = rng();
        double d;
        memcpy(&d, &bits, sizeof d);
        same_g14(d);
        same_both(pow(10, (double)(rng() % 26000) / 1000.0 - 6));
        same_both((double)(rng() % 10000000ULL) / (double)(1ULL << (rng() % 40)));
        same_both((double)(rng() % 100000000000000ULL) / pow(10, (double)(rng() % 15)));
    }
}

int main(void)
{
    test_edges();
    test_integers();
    test_times();
    test_random();
    printf("%ld numbers compared with snprintf, %ld differ\n", compared, mismatches);
    CHECK(compared > 5000000);
    CHECK(mismatches == 0);
    return test_total();
}
