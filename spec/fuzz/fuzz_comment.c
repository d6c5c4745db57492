/* Fuzzes the Comment rule (pq_check_comment): printable UTF-8 where tab, CR
 * and LF are allowed, not empty and not only whitespace, within the limit. */
#include "pq_prefix.h"

#include "fuzz_common.h"
#include "pq_common.h"
#include "pq_validate.h"

static int fuzz_comment_ref(const unsigned char *s, size_t n)
{
    size_t i;
    int visible = 0;
    if (n == 0 || n > PQ_COMMENT_MAX) return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        int ws = c == ' ' || c == '\t' || c == '\n' || c == '\r';
        if (fuzz_is_ctrl(c) && !ws) return 0;
        if (!ws) visible = 1;
    }
    return visible && fuzz_utf8_ref(s, n, NULL) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    size_t small = fuzz_small_cap(size);
    char *msg = fuzz_msgbuf(PQ_MSG_MAX), *tiny = fuzz_msgbuf(small);
    int rc = pq_check_comment(s, size, msg, PQ_MSG_MAX);
    FUZZ_CHECK((rc == 0) == fuzz_comment_ref(data, size));
    if (rc != 0) fuzz_check_msg(msg, PQ_MSG_MAX);
    FUZZ_CHECK(pq_check_comment(s, size, tiny, small) == rc);
    if (rc != 0) fuzz_check_msg(tiny, small);
    FUZZ_CHECK(pq_check_comment(s, size, NULL, 0) == rc);
    free(s); free(msg); free(tiny);
    return 0;
}
