/* Fuzzes pq_http.c: the request header checks, and the response header
 * parser with whole header lines as a server could send them: the match is
 * the case-insensitive name followed by ':', the value never overruns its
 * buffer, is NUL-terminated, has no control bytes or surrounding whitespace,
 * is the trimmed value when it fits and otherwise a prefix cut on a UTF-8
 * boundary. */
#include "pq_prefix.h"

#include "fuzz_common.h"
#include "pq_http.h"


static int fuzz_header_ows(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void fuzz_header_one(const uint8_t *data, size_t size, const char *name, size_t cap)
{
    size_t k = strlen(name), i, lo, hi, olen;
    char *line = fuzz_dup(data, size);
    char *out = fuzz_msgbuf(cap);
    int expect = size > k && data[k] == ':';
    int rc;
    for (i = 0; expect && i < k; i++) {
        unsigned char c = data[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        expect = c == (unsigned char)name[i];
    }
    rc = pq_http_header_match(line, size, name, out, cap);
    FUZZ_CHECK(rc == expect);
    if (!rc) {
        /* No match leaves the buffer alone. */
        for (i = 0; i < (cap ? cap : 1); i++) FUZZ_CHECK(out[i] == 0x5a);
    } else if (cap > 0) {
        lo = k + 1;
        hi = size;
        while (lo < hi && fuzz_header_ows(data[lo])) lo++;
        while (hi > lo && fuzz_header_ows(data[hi - 1])) hi--;
        FUZZ_CHECK(memchr(out, '\0', cap) != NULL);
        olen = strlen(out);
        FUZZ_CHECK(olen < cap && olen <= hi - lo);
        for (i = 0; i < olen; i++) {
            unsigned char c = (unsigned char)out[i], src = data[lo + i];
            FUZZ_CHECK(!fuzz_is_ctrl(c));
            FUZZ_CHECK(c == src || (c == ' ' && src == '\t') || (c == '?' && fuzz_is_ctrl(src)));
        }
        if (olen > 0) FUZZ_CHECK(out[0] != ' ' && out[olen - 1] != ' ');
        if (hi - lo < cap) FUZZ_CHECK(olen == hi - lo);
        else FUZZ_CHECK(olen == 0 || (data[lo + olen] & 0xc0) != 0x80);
    }
    free(line);
    free(out);
}

/* The request header checks: a value is refused exactly when it holds CR,
 * LF or NUL; a name exactly when it is empty or holds a byte outside
 * visible ASCII, or ':'. */
static void fuzz_header_checks(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    int value_ok = 1, name_ok = size > 0;
    size_t i;
    for (i = 0; i < size; i++) {
        if (data[i] == '\r' || data[i] == '\n' || data[i] == 0) value_ok = 0;
        if (data[i] <= 32 || data[i] >= 127 || data[i] == ':') name_ok = 0;
    }
    FUZZ_CHECK(pq_http_valid_header_value(s, size) == value_ok);
    FUZZ_CHECK(pq_http_valid_header_name(s, size) == name_ok);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = fuzz_dup(data, size);
    FUZZ_CHECK(pq_http_is_status_line(line, size) == (size >= 5 && memcmp(data, "HTTP/", 5) == 0));
    free(line);
    fuzz_header_one(data, size, "content-type", PQ_HEADER_VALUE_MAX);
    fuzz_header_one(data, size, "retry-after", PQ_HEADER_VALUE_MAX);
    fuzz_header_one(data, size, "content-type", 1 + size % 11);
    fuzz_header_one(data, size, "retry-after", size % 7);
    fuzz_header_checks(data, size);
    return 0;
}
