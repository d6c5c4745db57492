/* Unit test of pq_idset (the per-run set of item identities): a repeated
 * identity returns the first item's index; the DN compares without regard to
 * ASCII letter case (as batch_identity_spec expects of the Lua side) while the
 * data and the user compare exactly; fields cannot borrow bytes from each
 * other; the set grows far past its first table, holding few bytes per
 * identity at every size; keys that are digests already; long fields; and out of
 * memory (calloc is wrapped at link time, -Wl,--wrap=calloc) is -1 or NULL,
 * with the set still usable. Prints one line per failed check and a total. */
#include "pq_prefix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pq_idset.h"
#include "test_check.h"

/* calloc, failing once `calloc_fail_in` more calls have passed (-1: never). */
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
static long calloc_fail_in = -1;

void *__wrap_calloc(size_t n, size_t size)
{
    if (calloc_fail_in == 0) {
        calloc_fail_in = -1;
        return NULL;
    }
    if (calloc_fail_in > 0) calloc_fail_in--;
    return __real_calloc(n, size);
}

static long long claim(pq_idset *s, const char *dn, const char *data, const char *user, long long index)
{
    return pq_idset_claim(s, dn, strlen(dn), data, strlen(data), user, strlen(user), index);
}

static void test_repeat_and_case(void)
{
    pq_idset *s = pq_idset_new();
    CHECK(s != NULL);
    if (!s) return;
    CHECK(claim(s, "\\VED\\Policy\\Prod", "q83vEjRWeJA=", "local:bot", 1) == 0);
    /* The same identity again: the first item's index, every time. */
    CHECK(claim(s, "\\VED\\Policy\\Prod", "q83vEjRWeJA=", "local:bot", 2) == 1);
    CHECK(claim(s, "\\VED\\Policy\\Prod", "q83vEjRWeJA=", "local:bot", 3) == 1);
    /* The DN without regard to ASCII letter case. */
    CHECK(claim(s, "\\ved\\POLICY\\prod", "q83vEjRWeJA=", "local:bot", 4) == 1);
    /* Data and user compare exactly: a letter's case makes them new. */
    CHECK(claim(s, "\\VED\\Policy\\Prod", "Q83vEjRWeJA=", "local:bot", 5) == 0);
    CHECK(claim(s, "\\VED\\Policy\\Prod", "q83vEjRWeJA=", "local:Bot", 6) == 0);
    /* Only ASCII letters fold: "É" (C3 89) and "é" (C3 A9) differ. */
    CHECK(claim(s, "\\VED\\Policy\\\xc3\x89t\xc3\xa9", "q83v", "u", 7) == 0);
    CHECK(claim(s, "\\VED\\Policy\\\xc3\xa9t\xc3\xa9", "q83v", "u", 8) == 0);
    CHECK(claim(s, "\\ved\\policy\\\xc3\x89T\xc3\xa9", "q83v", "u", 9) == 7);
    /* Bytes that move from one field to the next make another identity. */
    /* Only ASCII letters fold: '@' and '[' (next to 'A' and 'Z'), '`' and
     * '{' (next to 'a' and 'z') stay apart from each other's case. */
    CHECK(claim(s, "x@[", "q83v", "u", 100) == 0);
    CHECK(claim(s, "x`{", "q83v", "u", 101) == 0);
    CHECK(claim(s, "ab", "c", "d", 10) == 0);
    CHECK(claim(s, "a", "bc", "d", 11) == 0);
    CHECK(claim(s, "a", "b", "cd", 12) == 0);
    CHECK(claim(s, "", "", "", 13) == 0);
    CHECK(claim(s, "", "", "", 14) == 13);
    /* Fields with NUL bytes are counted by length, not cut at the NUL. */
    CHECK(pq_idset_claim(s, "x\0y", 3, "d", 1, "u", 1, 15) == 0);
    CHECK(pq_idset_claim(s, "x\0z", 3, "d", 1, "u", 1, 16) == 0);
    CHECK(pq_idset_claim(s, "X\0Y", 3, "d", 1, "u", 1, 17) == 15);
    pq_idset_free(s);
    pq_idset_free(NULL); /* as free(NULL) */
}

/* Many identities: well past the first tables, each claimed
 * once as new and then found again with its own index. */
static void test_growth(void)
{
    enum { N = 20000 };
    pq_idset *s = pq_idset_new();
    char data[32];
    long long i, fresh = 0, found = 0;
    CHECK(s != NULL);
    if (!s) return;
    for (i = 1; i <= N; i++) {
        snprintf(data, sizeof data, "item-%lld", i);
        fresh += claim(s, "\\VED\\Policy\\Prod", data, "local:bot", i) == 0;
    }
    CHECK(fresh == N);
    for (i = 1; i <= N; i++) {
        snprintf(data, sizeof data, "item-%lld", i);
        found += claim(s, "\\VED\\POLICY\\PROD", data, "local:bot", N + i) == i;
    }
    CHECK(found == N);
    pq_idset_free(s);
}

/* What the set holds, per identity, as it grows from 10,000 to 300,000:
 * a part's table grows by an eighth (at least a block), and the blocks it
 * gives up are reused by the next part that grows, so the bytes per
 * identity stay near 12 bytes a slot at 3/4 to 7/8 load, whatever the size,
 * and every identity is still found with its own index. */
static void test_bytes_per_identity(void)
{
    enum { N = 300000 };
    pq_idset *s = pq_idset_new();
    char data[32];
    long long i, found = 0;
    double worst = 0, sum = 0;
    int points = 0;
    CHECK(s != NULL);
    if (!s) return;
    for (i = 1; i <= N; i++) {
        snprintf(data, sizeof data, "bytes-%lld", i);
        if (claim(s, "\\VED\\Policy\\Prod", data, "local:bot", i) != 0) break;
        if (i >= 10000 && i % 2500 == 0) {
            double per = (double)pq_idset_bytes(s) / (double)i;
            if (per > worst) worst = per;
            sum += per;
            points++;
        }
    }
    CHECK(i == N + 1);
    for (i = 1; i <= N; i++) {
        snprintf(data, sizeof data, "bytes-%lld", i);
        found += claim(s, "\\VED\\Policy\\Prod", data, "local:bot", N + i) == i;
    }
    CHECK(found == N);
    printf("bytes per identity, 10k to 300k: worst %.1f, average %.1f\n", worst, sum / points);
    CHECK(worst < 22.0); /* the first blocks of 256 parts, at 10,000 items */
    CHECK(sum / points < 16.0);
    pq_idset_free(s);
}

/* Keys that are digests already (a journal's short keys): found after
 * they are claimed, not before, and apart from identities. */
static void test_keys(void)
{
    pq_idset *s = pq_idset_new();
    long long i, found = 0, absent = 0;
    CHECK(s != NULL);
    if (!s) return;
    CHECK(pq_idset_find_key(s, 42) == 0); /* an empty set */
    for (i = 1; i <= 5000; i++) CHECK(pq_idset_claim_key(s, (uint64_t)i * 0x9e3779b97f4a7c15ULL, i) == 0);
    for (i = 1; i <= 5000; i++) found += pq_idset_find_key(s, (uint64_t)i * 0x9e3779b97f4a7c15ULL) == i;
    for (i = 5001; i <= 10000; i++) absent += pq_idset_find_key(s, (uint64_t)i * 0x9e3779b97f4a7c15ULL) == 0;
    CHECK(found == 5000 && absent == 5000);
    CHECK(pq_idset_claim_key(s, 0x9e3779b97f4a7c15ULL, 7) == 1); /* a repeat: the first index */
    CHECK(pq_idset_find_key(s, 0) == 0);
    CHECK(pq_idset_claim_key(s, 0, 9) == 0); /* key 0 is a key like another */
    CHECK(pq_idset_find_key(s, 0) == 9);
    pq_idset_free(s);
}

/* Fields of a megabyte: compared in full, the DN still folded. */
static void test_long_fields(void)
{
    size_t n = 1u << 20;
    char *a = (char *)malloc(n), *b = (char *)malloc(n);
    pq_idset *s = pq_idset_new();
    CHECK(a && b && s);
    if (a && b && s) {
        memset(a, 'A', n);
        memset(b, 'a', n);
        CHECK(pq_idset_claim(s, a, n, a, n, "u", 1, 1) == 0);
        CHECK(pq_idset_claim(s, b, n, a, n, "u", 1, 2) == 1);  /* DN folded */
        CHECK(pq_idset_claim(s, a, n, b, n, "u", 1, 3) == 0);  /* data exact */
        b[n - 1] = 'b'; /* the last byte alone differs */
        CHECK(pq_idset_claim(s, a, n, a, n - 1, "u", 1, 4) == 0);
        CHECK(pq_idset_claim(s, b, n, a, n, "u", 1, 5) == 0);
        CHECK(pq_idset_claim(s, a, n, a, n, "u", 1, 6) == 1);
    }
    pq_idset_free(s);
    free(a);
    free(b);
}

/* Out of memory: a set that cannot be made is NULL; a claim whose table
 * cannot be made or grown is -1, nothing is claimed, the identities taken
 * before are intact, and a later claim works. */
static void test_out_of_memory(void)
{
    pq_idset *s;
    char data[32];
    long long i, r = 0, ok = 0;
    calloc_fail_in = 0;
    CHECK(pq_idset_new() == NULL);
    s = pq_idset_new();
    CHECK(s != NULL);
    if (!s) return;
    calloc_fail_in = 0; /* the first table */
    CHECK(claim(s, "dn", "d", "u", 1) == -1);
    CHECK(claim(s, "dn", "d", "u", 2) == 0); /* not taken by the failed claim */
    CHECK(claim(s, "dn", "d", "u", 3) == 2);
    for (i = 1; i <= 5000; i++) {
        snprintf(data, sizeof data, "d%lld", i);
        ok += claim(s, "dn", data, "u", 10 + i) == 0;
    }
    CHECK(ok == 5000);
    /* More identities, each with calloc failing: the first one that needs
     * a table to grow is refused. */
    for (i = 5001; i <= 1000000 && r != -1; i++) {
        snprintf(data, sizeof data, "d%lld", i);
        calloc_fail_in = 0;
        r = claim(s, "dn", data, "u", 10 + i);
    }
    calloc_fail_in = -1;
    CHECK(r == -1);
    CHECK(claim(s, "dn", data, "u", 9000000) == 0); /* not taken before, taken now */
    CHECK(claim(s, "dn", data, "u", 9000001) == 9000000);
    CHECK(claim(s, "dn", "d1", "u", 9000002) == 11); /* the old ones are intact */
    CHECK(claim(s, "dn", "d5000", "u", 9000003) == 5010);
    pq_idset_free(s);
}

/* Item numbers past 2^32 - 1 are kept as 2^32 - 1. */
static void test_big_index(void)
{
    pq_idset *s = pq_idset_new();
    CHECK(s != NULL);
    if (!s) return;
    CHECK(claim(s, "\\VED\\Big", "AAAA", "u", 5000000000LL) == 0);
    CHECK(claim(s, "\\VED\\Big", "AAAA", "u", 5000000001LL) == 4294967295LL);
    pq_idset_free(s);
}

int main(void)
{
    test_repeat_and_case();
    test_growth();
    test_bytes_per_identity();
    test_keys();
    test_long_fields();
    test_out_of_memory();
    test_big_index();
    return test_total();
}
