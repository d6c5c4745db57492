/* Shared by the libFuzzer harnesses: the entry point's prototype, a check
 * that aborts with a readable line (libFuzzer then reports a crash and saves
 * the input), and helpers that hand the code under test buffers of exactly
 * the size it was promised, so that AddressSanitizer sees any overrun. */
#ifndef PQ_FUZZ_COMMON_H
#define PQ_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "property failed at %s:%d: %s\n", __FILE__, __LINE__, \
                    #cond);                                                     \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* A heap copy of n bytes, so that reads past the end are caught. */
static inline char *fuzz_dup(const uint8_t *data, size_t n)
{
    char *p = (char *)malloc(n ? n : 1);
    FUZZ_CHECK(p != NULL);
    if (n) memcpy(p, data, n);
    return p;
}

/* A message buffer of exactly cap bytes (at least 1 allocated). */
static inline char *fuzz_msgbuf(size_t cap)
{
    char *p = (char *)malloc(cap ? cap : 1);
    FUZZ_CHECK(p != NULL);
    memset(p, 0x5a, cap ? cap : 1);
    return p;
}

/* A rejection must say why: a NUL-terminated, non-empty message. */
static inline void fuzz_check_msg(const char *msg, size_t cap)
{
    FUZZ_CHECK(cap == 0 || memchr(msg, '\0', cap) != NULL);
    FUZZ_CHECK(cap <= 1 || msg[0] != '\0');
}

/* A small message capacity picked from the input, to exercise truncation. */
static inline size_t fuzz_small_cap(size_t size)
{
    return size % 23;
}

static inline int fuzz_is_ctrl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* An independent UTF-8 check following the Unicode standard's table 3-7 of
 * well-formed byte sequences (not the decoder in pq_validate.c). */
static inline int fuzz_utf8_ref(const unsigned char *s, size_t n, size_t *bad)
{
    size_t i = 0, k, len;
    while (i < n) {
        unsigned char c = s[i], lo = 0x80, hi = 0xbf;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c == 0xe0) { len = 3; lo = 0xa0; }
        else if (c >= 0xe1 && c <= 0xec) len = 3;
        else if (c == 0xed) { len = 3; hi = 0x9f; }
        else if (c >= 0xee && c <= 0xef) len = 3;
        else if (c == 0xf0) { len = 4; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) len = 4;
        else if (c == 0xf4) { len = 4; hi = 0x8f; }
        else goto fail;
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) goto fail;
        for (k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) goto fail;
        i += len;
    }
    return 0;
fail:
    if (bad) *bad = i;
    return -1;
}

#endif
