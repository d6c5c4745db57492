/* Fuzzes the identity rule (pq_check_user): PrefixedName (prefix:name) or
 * PrefixedUniversal (prefix:{guid}), checked against a restatement, and the
 * GUID parser through it. */
#include "pq_prefix.h"

#include "fuzz_common.h"
#include "pq_common.h"
#include "pq_validate.h"

static int fuzz_user_ref(const unsigned char *s, size_t n)
{
    const unsigned char *colon;
    size_t plen, i;
    if (n == 0 || n > PQ_USER_MAX) return 0;
    for (i = 0; i < n; i++)
        if (fuzz_is_ctrl(s[i])) return 0;
    if (fuzz_utf8_ref(s, n, NULL) != 0) return 0;
    colon = memchr(s, ':', n);
    if (!colon) return 0;
    plen = (size_t)(colon - s);
    if (plen == 0 || plen + 1 == n) return 0;
    for (i = 0; i < plen; i++)
        if (s[i] == ' ' || s[i] == '{' || s[i] == '}' || s[i] == '\\') return 0;
    if (colon[1] == '{' || s[n - 1] == '}')
        return pq_is_guid((const char *)colon + 1, n - plen - 1);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    size_t small = fuzz_small_cap(size);
    char *msg = fuzz_msgbuf(PQ_MSG_MAX), *tiny = fuzz_msgbuf(small);
    int rc = pq_check_user(s, size, msg, PQ_MSG_MAX);
    FUZZ_CHECK((rc == 0) == fuzz_user_ref(data, size));
    if (rc != 0) fuzz_check_msg(msg, PQ_MSG_MAX);
    FUZZ_CHECK(pq_check_user(s, size, tiny, small) == rc);
    if (rc != 0) fuzz_check_msg(tiny, small);
    FUZZ_CHECK(pq_check_user(s, size, NULL, 0) == rc);
    free(s); free(msg); free(tiny);
    return 0;
}
