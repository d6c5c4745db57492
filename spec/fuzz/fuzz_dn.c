/* Fuzzes the DN rule (pq_check_dn) against a restatement of DESIGN.md's
 * rules: accepted exactly when it is a \VED\ path with non-empty components
 * of printable UTF-8; a rejection always carries a message, even in a
 * message buffer too small for it. */
#include "pq_prefix.h"

#include "fuzz_common.h"
#include "pq_common.h"
#include "pq_validate.h"

static int fuzz_dn_ref(const unsigned char *s, size_t n)
{
    size_t i;
    if (n < 5 || n > PQ_DN_MAX || memcmp(s, "\\VED\\", 5) != 0) return 0;
    if (s[n - 1] == '\\') return 0;
    for (i = 0; i < n; i++) {
        if (fuzz_is_ctrl(s[i])) return 0;
        if (i + 1 < n && s[i] == '\\' && s[i + 1] == '\\') return 0;
    }
    return fuzz_utf8_ref(s, n, NULL) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    size_t small = fuzz_small_cap(size);
    char *msg = fuzz_msgbuf(PQ_MSG_MAX), *tiny = fuzz_msgbuf(small);
    int rc = pq_check_dn(s, size, msg, PQ_MSG_MAX);
    FUZZ_CHECK((rc == 0) == fuzz_dn_ref(data, size));
    if (rc != 0) fuzz_check_msg(msg, PQ_MSG_MAX);
    FUZZ_CHECK(pq_check_dn(s, size, tiny, small) == rc);
    if (rc != 0) fuzz_check_msg(tiny, small);
    FUZZ_CHECK(pq_check_dn(s, size, NULL, 0) == rc);
    free(s); free(msg); free(tiny);
    return 0;
}
