/* Fuzzes the Hours rule (pq_check_hours) with integers parsed from the input
 * as decimal text and, for inputs of 8 bytes or more, as raw bits, so that
 * both ends of long long are reached. */
#include "pq_prefix.h"

#include <errno.h>
#include <limits.h>

#include "fuzz_common.h"
#include "pq_common.h"
#include "pq_validate.h"

static void fuzz_hours_one(long long h, size_t small)
{
    char msg[PQ_MSG_MAX], num[32];
    char *tiny = fuzz_msgbuf(small);
    int rc = pq_check_hours(h, msg, sizeof msg);
    FUZZ_CHECK((rc == 0) == (h >= 1 && h <= PQ_HOURS_MAX));
    if (rc != 0) {
        fuzz_check_msg(msg, sizeof msg);
        /* The message quotes the rejected value. */
        snprintf(num, sizeof num, "%lld", h);
        FUZZ_CHECK(strstr(msg, num) != NULL);
    }
    FUZZ_CHECK(pq_check_hours(h, tiny, small) == rc);
    if (rc != 0) fuzz_check_msg(tiny, small);
    FUZZ_CHECK(pq_check_hours(h, NULL, 0) == rc);
    free(tiny);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[64], *end;
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    long long h;
    memcpy(text, data, n);
    text[n] = '\0';
    errno = 0;
    h = strtoll(text, &end, 10);
    if (end != text) fuzz_hours_one(h, fuzz_small_cap(size));
    if (size >= sizeof h) {
        memcpy(&h, data, sizeof h);
        fuzz_hours_one(h, fuzz_small_cap(size));
    }
    fuzz_hours_one(LLONG_MIN, fuzz_small_cap(size));
    return 0;
}
