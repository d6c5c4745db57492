/* Strict standard Base64: the alphabet of RFC 4648 section 4, '=' padding to a
 * multiple of four, and zero pad bits, so that each digest has exactly one
 * accepted spelling. Rejections say what was wrong and where. */
#include "pq_prefix.h"

#include "pq_base64.h"

#include <stdio.h>

static const char pq_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of each byte in the alphabet, -1 for any other byte. */
static const signed char pq_b64_values[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static int pq_b64_value(unsigned char c)
{
    return pq_b64_values[c];
}

size_t pq_b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t pq_b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0, o = 0;
    for (; i + 2 < n; i += 3) {
        unsigned long v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
        out[o++] = pq_b64_alphabet[v >> 18 & 63];
        out[o++] = pq_b64_alphabet[v >> 12 & 63];
        out[o++] = pq_b64_alphabet[v >> 6 & 63];
        out[o++] = pq_b64_alphabet[v & 63];
    }
    if (i < n) {
        unsigned long v = (unsigned long)in[i] << 16;
        if (i + 1 < n) v |= (unsigned long)in[i + 1] << 8;
        out[o++] = pq_b64_alphabet[v >> 18 & 63];
        out[o++] = pq_b64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? pq_b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int pq_b64_fail(char *msg, size_t cap, const char *why, size_t at)
{
    if (msg && cap) snprintf(msg, cap, why, (unsigned long)at);
    return -1;
}

int pq_b64_decode(const char *s, size_t n, unsigned char *out, size_t *decoded_len,
                  char *msg, size_t msgcap)
{
    size_t i, pad = 0, o = 0;
    unsigned long acc = 0;

    /* Classify bad characters first: the hint matters more than the length. */
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (pq_b64_values[c] >= 0 && !pad) continue; /* the common case first */
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            return pq_b64_fail(msg, msgcap,
                "is not strict Base64: whitespace at offset %lu (remove spaces and line breaks)", i);
        if (c == '-' || c == '_')
            return pq_b64_fail(msg, msgcap,
                "is not standard Base64: '-' or '_' at offset %lu looks like base64url "
                "(RFC 4648 section 5); use '+' and '/'", i);
        if (c == '=') {
            pad++;
            continue;
        }
        if (pq_b64_value(c) < 0)
            return pq_b64_fail(msg, msgcap,
                "is not Base64: invalid character at offset %lu", i);
        if (pad)
            return pq_b64_fail(msg, msgcap,
                "is not Base64: '=' padding before offset %lu; padding may only end the text", i);
    }
    if (n % 4 != 0)
        return pq_b64_fail(msg, msgcap,
            "is not padded Base64: length %lu is not a multiple of 4 (missing '=' padding?)", n);
    if (pad > 2)
        return pq_b64_fail(msg, msgcap, "is not Base64: %lu '=' characters; at most 2 may pad", pad);

    /* The empty text is valid Base64 of zero bytes (RFC 4648 section 10);
     * a field that needs at least one byte checks the decoded length. */
    for (i = 0; i + 4 <= n - pad; i += 4) {
        acc = (unsigned long)pq_b64_values[(unsigned char)s[i]] << 18 |
              (unsigned long)pq_b64_values[(unsigned char)s[i + 1]] << 12 |
              (unsigned long)pq_b64_values[(unsigned char)s[i + 2]] << 6 |
              (unsigned long)pq_b64_values[(unsigned char)s[i + 3]];
        if (out) {
            out[o] = (unsigned char)(acc >> 16);
            out[o + 1] = (unsigned char)(acc >> 8);
            out[o + 2] = (unsigned char)acc;
        }
        o += 3;
    }
    acc = 0;
    for (; i < n - pad; i++) acc = acc << 6 | (unsigned long)pq_b64_values[(unsigned char)s[i]];
    if (pad == 2) {
        if (acc & 0x0f)
            return pq_b64_fail(msg, msgcap,
                "is not canonical Base64: the character before '==' at offset %lu has nonzero pad bits", n - 3);
        if (out) out[o] = (unsigned char)(acc >> 4);
        o += 1;
    } else if (pad == 1) {
        if (acc & 0x03)
            return pq_b64_fail(msg, msgcap,
                "is not canonical Base64: the character before '=' at offset %lu has nonzero pad bits", n - 2);
        if (out) {
            out[o] = (unsigned char)(acc >> 10);
            out[o + 1] = (unsigned char)(acc >> 2);
        }
        o += 2;
    }
    if (decoded_len) *decoded_len = o;
    return 0;
}
