/* Fuzzes strict Base64 both ways. For any input text: accepted exactly when
 * an independent lenient decoder's result re-encodes to the same text (strict
 * means canonical), and then encode(decode(s)) == s. For any input bytes:
 * decode(encode(x)) == x. Output buffers have exactly the documented size. */
#include "pq_prefix.h"

#include "fuzz_common.h"
#include "pq_base64.h"
#include "pq_common.h"
#include "pq_validate.h"

static int fuzz_b64_val(unsigned char c)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

/* Lenient reference: any 4-aligned text of alphabet characters ending in at
 * most two '=' decodes, pad bits ignored. Returns the length or -1. */
static long fuzz_b64_lenient(const unsigned char *s, size_t n, unsigned char *out)
{
    size_t i, pad = 0, o = 0, bits = 0;
    unsigned long acc = 0;
    if (n % 4) return -1;
    while (pad < n && pad < 3 && s[n - 1 - pad] == '=') pad++;
    if (pad > 2) return -1;
    for (i = 0; i < n - pad; i++) {
        int v = fuzz_b64_val(s[i]);
        if (v < 0) return -1;
        acc = (acc << 6 | (unsigned long)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

static void fuzz_b64_text(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    size_t room = size / 4 * 3, dlen = (size_t)-1, small = fuzz_small_cap(size);
    unsigned char *out = (unsigned char *)malloc(room ? room : 1);
    unsigned char *ref = (unsigned char *)malloc(room + 3);
    char *msg = fuzz_msgbuf(PQ_MSG_MAX), *tiny = fuzz_msgbuf(small);
    long rlen = fuzz_b64_lenient(data, size, ref);
    int canonical = 0, rc;
    FUZZ_CHECK(out && ref);
    if (rlen >= 0) {
        char *re = (char *)malloc(pq_b64_encoded_len((size_t)rlen) + 1);
        FUZZ_CHECK(re != NULL);
        canonical = pq_b64_encode(ref, (size_t)rlen, re) == size && memcmp(re, s, size) == 0;
        free(re);
    }
    rc = pq_b64_decode(s, size, out, &dlen, msg, PQ_MSG_MAX);
    FUZZ_CHECK((rc == 0) == canonical);
    if (rc == 0) {
        char *again = (char *)malloc(pq_b64_encoded_len(dlen) + 1);
        FUZZ_CHECK(again != NULL);
        FUZZ_CHECK(dlen <= room && (long)dlen == rlen);
        FUZZ_CHECK(memcmp(out, ref, dlen) == 0);
        FUZZ_CHECK(pq_b64_encoded_len(dlen) == size);
        FUZZ_CHECK(pq_b64_encode(out, dlen, again) == size);
        FUZZ_CHECK(memcmp(again, s, size) == 0 && again[size] == '\0');
        free(again);
        /* Without an output buffer it must agree and write nothing. */
        FUZZ_CHECK(pq_b64_decode(s, size, NULL, &dlen, NULL, 0) == 0 && (long)dlen == rlen);
    } else {
        fuzz_check_msg(msg, PQ_MSG_MAX);
        FUZZ_CHECK(pq_b64_decode(s, size, NULL, NULL, tiny, small) == -1);
        fuzz_check_msg(tiny, small);
    }
    free(s); free(out); free(ref); free(msg); free(tiny);
}

static void fuzz_b64_bytes(const uint8_t *data, size_t size)
{
    size_t elen = pq_b64_encoded_len(size), dlen = (size_t)-1;
    char *enc = (char *)malloc(elen + 1);
    unsigned char *back = (unsigned char *)malloc(elen / 4 * 3 + 1);
    char msg[PQ_MSG_MAX];
    FUZZ_CHECK(enc && back);
    FUZZ_CHECK(pq_b64_encode(data, size, enc) == elen);
    FUZZ_CHECK(strlen(enc) == elen);
    FUZZ_CHECK(pq_b64_decode(enc, elen, back, &dlen, msg, sizeof msg) == 0);
    FUZZ_CHECK(dlen == size);
    FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0);
    free(enc); free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *alg = pq_algorithm_for_length(size);
    FUZZ_CHECK(alg == NULL || size == 20 || size == 32 || size == 48 || size == 64);
    fuzz_b64_text(data, size);
    fuzz_b64_bytes(data, size);
    return 0;
}
