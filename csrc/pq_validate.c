/* The rules for each field of a pre-qualification request. Messages name the
 * rule and, where it helps, the offset and a hint; callers add the field. */
#include "pq_prefix.h"

#include "pq_validate.h"
#include "pq_common.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int pq_fail(char *msg, size_t cap, const char *text)
{
    if (msg && cap) snprintf(msg, cap, "%s", text);
    return -1;
}

int pq_utf8_check(const char *str, size_t n, size_t *bad_offset)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len, k;
        unsigned long cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
        else goto bad;
        if (n - i < len) goto bad;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) goto bad;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            goto bad;
        i += len;
    }
    return 0;
bad:
    if (bad_offset) *bad_offset = i;
    return -1;
}

/* Whether the eight bytes at s are all printable ASCII (0x20..0x7e), tested
 * at once: no byte has its top bit, is below 0x20 or is 0x7f. The tests
 * say whether any byte is such, exactly (not which one). */
static int pq_printable8(const unsigned char *s)
{
    const uint64_t ones = 0x0101010101010101ULL, top = 0x8080808080808080ULL;
    uint64_t w, del;
    memcpy(&w, s, 8);
    del = w ^ (ones * 0x7f);
    return ((w | ((w - ones * 0x20) & ~w) | ((del - ones) & ~del)) & top) == 0;
}

/* Shared text rules: no NUL, no control characters (unless allowed), UTF-8.
 * One pass: printable ASCII, nearly every byte of a request, costs one
 * compare; the rest is checked as it comes. As before the pass was merged,
 * a NUL or control character anywhere is reported ahead of bad UTF-8, and
 * bad UTF-8 at the offset of the first bad sequence. */
static int pq_check_text(const char *str, size_t n, int allow_tab_newline, char *msg, size_t cap)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, bad, first_bad = 0;
    int have_bad = 0;
    while (i < n) {
        unsigned char c;
        if (n - i >= 8 && pq_printable8(s + i)) {
            i += 8;
            continue;
        }
        c = s[i];
        if ((unsigned char)(c - 0x20) < 0x5f) { /* 0x20..0x7e */
            i++;
            continue;
        }
        if (c >= 0x80) {
            /* A multi-byte sequence: validated on its own. */
            size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (len > n - i) len = n - i;
            if (pq_utf8_check(str + i, len, &bad) != 0) {
                if (!have_bad) first_bad = i + bad;
                have_bad = 1;
                i++; /* keep looking for a NUL or control character */
                continue;
            }
            i += len;
            continue;
        }
        if (c == 0) {
            if (msg) snprintf(msg, cap, "must not contain a NUL byte (offset %lu)", (unsigned long)i);
            return -1;
        }
        if (!(allow_tab_newline && (c == '\t' || c == '\n' || c == '\r'))) {
            if (msg) snprintf(msg, cap, "must not contain control character 0x%02x (offset %lu)",
                              c, (unsigned long)i);
            return -1;
        }
        i++;
    }
    if (have_bad) {
        if (msg) snprintf(msg, cap, "must be valid UTF-8 (bad sequence at offset %lu)", (unsigned long)first_bad);
        return -1;
    }
    return 0;
}

int pq_check_dn(const char *s, size_t n, char *msg, size_t cap)
{
    size_t i;
    if (n == 0) return pq_fail(msg, cap, "must not be empty; expected e.g. \\VED\\Code Signing\\Projects\\P\\Env");
    if (n > PQ_DN_MAX) {
        if (msg) snprintf(msg, cap, "is %lu bytes; at most %d are allowed", (unsigned long)n, PQ_DN_MAX);
        return -1;
    }
    if (pq_check_text(s, n, 0, msg, cap) != 0) return -1;
    if (n >= 2 && s[0] == '\\' && s[1] == '\\')
        return pq_fail(msg, cap,
            "looks JSON-escaped (starts with \\\\VED\\\\): write single backslashes, "
            "e.g. Lua [[\\VED\\Code Signing\\...]]; the JSON encoder escapes them");
    if (n < 5 || memcmp(s, "\\VED\\", 5) != 0)
        return pq_fail(msg, cap, "must start with \\VED\\ (a TPP distinguished name)");
    for (i = 0; i + 1 < n; i++)
        if (s[i] == '\\' && s[i + 1] == '\\')
            return pq_fail(msg, cap, "must not contain an empty component (two backslashes in a row)");
    if (s[n - 1] == '\\')
        return pq_fail(msg, cap, "must not end with a backslash");
    return 0;
}

int pq_check_comment(const char *s, size_t n, char *msg, size_t cap)
{
    size_t i;
    if (n == 0) return pq_fail(msg, cap, "must not be empty: say why the hash is approved");
    if (n > PQ_COMMENT_MAX) {
        if (msg) snprintf(msg, cap, "is %lu bytes; at most %d are allowed", (unsigned long)n, PQ_COMMENT_MAX);
        return -1;
    }
    if (pq_check_text(s, n, 1, msg, cap) != 0) return -1;
    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return 0;
    return pq_fail(msg, cap, "must not be only whitespace: say why the hash is approved");
}

int pq_is_guid(const char *s, size_t n)
{
    static const int groups[5] = {8, 4, 4, 4, 12};
    size_t i = 1;
    int g, k;
    if (n != 38 || s[0] != '{' || s[37] != '}') return 0;
    for (g = 0; g < 5; g++) {
        for (k = 0; k < groups[g]; k++, i++) {
            char c = s[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                return 0;
        }
        if (g < 4 && s[i++] != '-') return 0;
    }
    return 1;
}

int pq_check_user(const char *s, size_t n, char *msg, size_t cap)
{
    const char *colon;
    size_t plen, i;
    if (n == 0) return pq_fail(msg, cap, "must not be empty; expected prefix:name, e.g. local:sample-cs-user");
    if (n > PQ_USER_MAX) {
        if (msg) snprintf(msg, cap, "is %lu bytes; at most %d are allowed", (unsigned long)n, PQ_USER_MAX);
        return -1;
    }
    if (pq_check_text(s, n, 0, msg, cap) != 0) return -1;
    colon = memchr(s, ':', n);
    if (!colon)
        return pq_fail(msg, cap,
            "must be a PrefixedName (prefix:name, e.g. local:sample-cs-user) or a "
            "PrefixedUniversal (prefix:{guid}); no ':' found");
    plen = (size_t)(colon - s);
    if (plen == 0) return pq_fail(msg, cap, "has an empty prefix before ':' (e.g. local: or AD+corp:)");
    for (i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '{' || c == '}' || c == '\\')
            return pq_fail(msg, cap, "has an invalid character in its prefix (spaces, braces and backslashes are not allowed)");
    }
    if (plen + 1 == n) return pq_fail(msg, cap, "has an empty name after the prefix");
    if (colon[1] == '{' || s[n - 1] == '}') {
        if (!pq_is_guid(colon + 1, n - plen - 1))
            return pq_fail(msg, cap,
                "has a malformed PrefixedUniversal: expected prefix:{8-4-4-4-12 hex digits}");
    }
    return 0;
}

int pq_check_hours(long long hours, char *msg, size_t cap)
{
    if (hours < 1 || hours > PQ_HOURS_MAX) {
        if (msg) snprintf(msg, cap, "must be an integer from 1 to %d (got %lld)", PQ_HOURS_MAX, hours);
        return -1;
    }
    return 0;
}

const char *pq_algorithm_for_length(size_t n)
{
    switch (n) {
    case 20: return "sha1";
    case 32: return "sha256";
    case 48: return "sha384";
    case 64: return "sha512";
    default: return NULL;
    }
}
