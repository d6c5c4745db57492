/* Fuzzes the .dig reader's parser (pq_dig_parse): only an optional BOM and
 * whitespace may surround the digest, the reported span is inside the input
 * and is exactly what strict Base64 accepted, and failures say why. */
#include "pq_prefix.h"

#include "fuzz_common.h"
#include "pq_base64.h"
#include "pq_common.h"
#include "pq_dig.h"

static int fuzz_dig_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    size_t room = size / 4 * 3, small = fuzz_small_cap(size);
    unsigned char *out = (unsigned char *)malloc(room ? room : 1);
    char *msg = fuzz_msgbuf(PQ_MSG_MAX), *tiny = fuzz_msgbuf(small);
    size_t outlen = (size_t)-1, start = (size_t)-1, len = (size_t)-1, i, lo = 0, hi = size, rlen;
    int rc, expect;
    FUZZ_CHECK(out != NULL);

    /* Reference: strip BOM and whitespace, then strict Base64. */
    if (size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) lo = 3;
    while (lo < hi && fuzz_dig_space(data[lo])) lo++;
    while (hi > lo && fuzz_dig_space(data[hi - 1])) hi--;
    expect = size <= PQ_DIG_MAX && hi > lo && pq_b64_decode(s + lo, hi - lo, NULL, &rlen, NULL, 0) == 0;

    rc = pq_dig_parse(s, size, out, &outlen, &start, &len, msg, PQ_MSG_MAX);
    FUZZ_CHECK((rc == 0) == expect);
    if (rc == 0) {
        FUZZ_CHECK(start == lo && len == hi - lo && start + len <= size);
        FUZZ_CHECK(outlen == rlen && outlen <= room);
        for (i = 0; i < len; i++) FUZZ_CHECK(!fuzz_dig_space(data[start + i]));
        {
            char *enc = (char *)malloc(pq_b64_encoded_len(outlen) + 1);
            FUZZ_CHECK(enc != NULL);
            pq_b64_encode(out, outlen, enc);
            FUZZ_CHECK(strlen(enc) == len && memcmp(enc, s + start, len) == 0);
            free(enc);
        }
    } else {
        fuzz_check_msg(msg, PQ_MSG_MAX);
    }
    FUZZ_CHECK(pq_dig_parse(s, size, NULL, NULL, NULL, NULL, tiny, small) == rc);
    if (rc != 0) fuzz_check_msg(tiny, small);
    free(s); free(out); free(msg); free(tiny);
    return 0;
}
