/* The .dig reader's parsing half: strips a UTF-8 BOM and surrounding
 * whitespace, then insists on strict Base64 for what is left. The file I/O
 * stays in ldigest.c; this part only sees bytes, so it can be fuzzed. */
#include "pq_prefix.h"

#include "pq_dig.h"
#include "pq_base64.h"

#include <stdio.h>
#include <string.h>

static int pq_dig_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int pq_dig_parse(const char *text, size_t n, unsigned char *out, size_t *outlen,
                 size_t *b64_start, size_t *b64_len, char *msg, size_t cap)
{
    char why[256];
    size_t start = 0, end = n, len = 0;
    if (n > PQ_DIG_MAX) {
        if (msg && cap) snprintf(msg, cap, "too large for a .dig file (expected one Base64 digest)");
        return -1;
    }
    if (n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) start = 3;
    while (start < end && pq_dig_space(text[start])) start++;
    while (end > start && pq_dig_space(text[end - 1])) end--;
    if (end == start) {
        if (msg && cap) snprintf(msg, cap, "is empty (expected a Base64 digest)");
        return -1;
    }
    if (pq_b64_decode(text + start, end - start, out, &len, why, sizeof why) != 0) {
        if (msg && cap) snprintf(msg, cap, "content %s", why);
        return -1;
    }
    if (outlen) *outlen = len;
    if (b64_start) *b64_start = start;
    if (b64_len) *b64_len = end - start;
    return 0;
}
