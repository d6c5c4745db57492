/* Unit test of pq_idset (the identities of one run's items): a new identity
 * is taken, the same one again names the first item, the DN compares without
 * regard to ASCII letter case (also across the eight-byte steps of the
 * hash) while data and user compare exactly, and the set keeps every
 * identity as it grows. Prints one line per failed check and a total. */
#include "pq_prefix.h"

#include <stdio.h>
#include <string.h>

#include "pq_idset.h"
#include "test_check.h"

static long long test_claim(pq_idset *s, const char *dn, const char *data, const char *user, long long index)
{
    return pq_idset_claim(s, dn, strlen(dn), data, strlen(data), user, strlen(user), index);
}

static void test_case_and_bytes(void)
{
    pq_idset *s = pq_idset_new();
    const char *dn = "\\VED\\Code Signing\\Projects\\Sample\\Production Environment";
    CHECK(s != NULL);
    CHECK(test_claim(s, dn, "AAAA", "local:u", 1) == 0);
    CHECK(test_claim(s, dn, "AAAA", "local:u", 2) == 1);
    /* Every letter of the DN in the other case: the same identity. */
    CHECK(test_claim(s, "\\ved\\code signing\\projects\\sample\\production environment", "AAAA", "local:u", 3) == 1);
    CHECK(test_claim(s, "\\VED\\CODE SIGNING\\PROJECTS\\SAMPLE\\PRODUCTION ENVIRONMENT", "AAAA", "local:u", 4) == 1);
    /* Data and user compare exactly. */
    CHECK(test_claim(s, dn, "aaaa", "local:u", 5) == 0);
    CHECK(test_claim(s, dn, "AAAA", "local:U", 6) == 0);
    /* Only ASCII letters fold: '@' and '[' (next to 'A' and 'Z'), '`' and
     * '{' (next to 'a' and 'z') and bytes with the top bit stay apart. */
    CHECK(test_claim(s, "x@[", "AAAA", "u", 7) == 0);
    CHECK(test_claim(s, "x`{", "AAAA", "u", 8) == 0);
    CHECK(test_claim(s, "\xc3\x84", "AAAA", "u", 9) == 0);
    CHECK(test_claim(s, "\xc3\xa4", "AAAA", "u", 10) == 0);
    CHECK(test_claim(s, "\xc3\x84", "AAAA", "u", 11) == 9);
    /* Fields do not run into each other. */
    CHECK(test_claim(s, "ab", "c", "u", 12) == 0);
    CHECK(test_claim(s, "a", "bc", "u", 13) == 0);
    pq_idset_free(s);
}

/* Every part of the set grows several times over 200,000 identities;
 * each is still found with the number of its first item. */
static void test_growth(void)
{
    pq_idset *s = pq_idset_new();
    char data[32];
    long long i, again = 0, fresh = 0, n = 200000;
    for (i = 1; i <= n; i++) {
        snprintf(data, sizeof data, "item-%lld", i);
        fresh += test_claim(s, "\\VED\\Env", data, "local:u", i) == 0;
    }
    for (i = 1; i <= n; i++) {
        snprintf(data, sizeof data, "item-%lld", i);
        again += test_claim(s, "\\ved\\env", data, "local:u", n + i) == i;
    }
    CHECK(fresh == n);
    CHECK(again == n);
    /* Numbers past 2^32 - 1 are kept as 2^32 - 1. */
    CHECK(test_claim(s, "\\VED\\Big", "AAAA", "u", 5000000000LL) == 0);
    CHECK(test_claim(s, "\\VED\\Big", "AAAA", "u", 5000000001LL) == 4294967295LL);
    pq_idset_free(s);
}

int main(void)
{
    test_case_and_bytes();
    test_growth();
    return test_total();
}
