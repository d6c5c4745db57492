/* Unit test of the plain-C core without Lua: the field rules, strict Base64,
 * the .dig parser and the header parser, on the documented example and the
 * edge cases next to each rule. Prints one line per failed check and a
 * total; exits non-zero on any failure. Built by spec/fuzz/CMakeLists.txt
 * under ASan+UBSan; the fuzz seed corpus is made from the same vectors. */
#include "pq_prefix.h"

#include <stdio.h>
#include <string.h>

#include "pq_base64.h"
#include "pq_common.h"
#include "pq_dig.h"
#include "pq_http.h"
#include "pq_validate.h"
#include "test_check.h"


#define S(lit) lit, sizeof lit - 1

static const char test_dn[] = "\\VED\\Code Signing\\Projects\\Sample\\Production Environment";
static const char test_data[] = "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=";

/* The message of a rejection holds phrase. */
static int test_says(int (*check)(const char *, size_t, char *, size_t),
                     const char *s, size_t n, const char *phrase)
{
    char msg[PQ_MSG_MAX] = "";
    return check(s, n, msg, sizeof msg) == -1 && strstr(msg, phrase) != NULL;
}

static void test_utf8(void)
{
    size_t bad = 99;
    CHECK(pq_utf8_check(S("plain ascii"), NULL) == 0);
    CHECK(pq_utf8_check(S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x8f"), NULL) == 0);
    CHECK(pq_utf8_check(S("ab\xc0\xaf"), &bad) == -1 && bad == 2);      /* overlong '/' */
    CHECK(pq_utf8_check(S("\xed\xa0\x80"), &bad) == -1 && bad == 0);    /* surrogate */
    CHECK(pq_utf8_check(S("x\xf4\x90\x80\x80"), &bad) == -1 && bad == 1); /* past U+10FFFF */
    CHECK(pq_utf8_check(S("xy\xe2\x82"), &bad) == -1 && bad == 2);      /* truncated */
    CHECK(pq_utf8_check(S("\xe0\x9f\xbf"), NULL) == -1);                /* overlong 3-byte */
    CHECK(pq_utf8_check("", 0, NULL) == 0);
}

static void test_dn_rule(void)
{
    char msg[4];
    CHECK(pq_check_dn(test_dn, strlen(test_dn), NULL, 0) == 0);
    CHECK(test_says(pq_check_dn, "", 0, "must not be empty"));
    CHECK(test_says(pq_check_dn, S("VED\\Code Signing"), "must start with \\VED\\"));
    CHECK(test_says(pq_check_dn, S("\\\\VED\\\\Code Signing"), "JSON-escaped"));
    CHECK(test_says(pq_check_dn, S("\\VED\\Code Signing\\\\Projects"), "empty component"));
    CHECK(test_says(pq_check_dn, S("\\VED\\Code Signing\\"), "end with a backslash"));
    CHECK(test_says(pq_check_dn, S("\\VED\\Code\nSigning"), "control character 0x0a"));
    CHECK(test_says(pq_check_dn, S("\\VED\\Co\0de"), "NUL byte"));
    CHECK(test_says(pq_check_dn, S("\\VED\\Caf\xc3"), "valid UTF-8"));
    {
        char big[PQ_DN_MAX + 2];
        memset(big, 'd', sizeof big);
        memcpy(big, "\\VED\\", 5);
        CHECK(pq_check_dn(big, PQ_DN_MAX, NULL, 0) == 0);
        CHECK(test_says(pq_check_dn, big, PQ_DN_MAX + 1, "at most"));
    }
    /* A tiny message buffer is truncated, never overrun. */
    CHECK(pq_check_dn(S("nope"), msg, sizeof msg) == -1 && strlen(msg) == sizeof msg - 1);
}

static void test_comment_rule(void)
{
    CHECK(pq_check_comment(S("File pre-authorized on 03/09/2021 19:23:19"), NULL, 0) == 0);
    CHECK(pq_check_comment(S("line one\r\n\tline two"), NULL, 0) == 0);
    CHECK(test_says(pq_check_comment, "", 0, "must not be empty"));
    CHECK(test_says(pq_check_comment, S(" \t\r\n"), "only whitespace"));
    CHECK(test_says(pq_check_comment, S("bell\a"), "control character 0x07"));
    CHECK(test_says(pq_check_comment, S("del\x7f"), "control character 0x7f"));
    CHECK(test_says(pq_check_comment, S("\xff"), "valid UTF-8"));
}

static void test_user_rule(void)
{
    CHECK(pq_check_user(S("local:sample-cs-user"), NULL, 0) == 0);
    CHECK(pq_check_user(S("local:{064cbe34-b46e-48c9-b65b-ea8dcda167d4}"), NULL, 0) == 0);
    CHECK(pq_check_user(S("AD+corp:jdoe"), NULL, 0) == 0);
    CHECK(test_says(pq_check_user, "", 0, "must not be empty"));
    CHECK(test_says(pq_check_user, S("sample-cs-user"), "no ':' found"));
    CHECK(test_says(pq_check_user, S(":name"), "empty prefix"));
    CHECK(test_says(pq_check_user, S("local:"), "empty name"));
    CHECK(test_says(pq_check_user, S("lo cal:x"), "invalid character in its prefix"));
    CHECK(test_says(pq_check_user, S("local:{064cbe34-b46e-48c9-b65b-ea8dcda167d}"), "malformed PrefixedUniversal"));
    CHECK(test_says(pq_check_user, S("local:name}"), "malformed PrefixedUniversal"));
    CHECK(test_says(pq_check_user, S("local:a\tb"), "control character 0x09"));
}

static void test_guid(void)
{
    CHECK(pq_is_guid(S("{064cbe34-b46e-48c9-b65b-ea8dcda167d4}")) == 1);
    CHECK(pq_is_guid(S("{064CBE34-B46E-48C9-B65B-EA8DCDA167D4}")) == 1);
    CHECK(pq_is_guid(S("064cbe34-b46e-48c9-b65b-ea8dcda167d4")) == 0);
    CHECK(pq_is_guid(S("{064cbe34-b46e-48c9-b65b-ea8dcda167dg}")) == 0);
    CHECK(pq_is_guid(S("{064cbe34b-46e-48c9-b65b-ea8dcda167d4}")) == 0);
    CHECK(pq_is_guid("", 0) == 0);
}

static void test_hours_rule(void)
{
    char msg[PQ_MSG_MAX];
    CHECK(pq_check_hours(1, NULL, 0) == 0);
    CHECK(pq_check_hours(PQ_HOURS_MAX, NULL, 0) == 0);
    CHECK(pq_check_hours(0, msg, sizeof msg) == -1 && strstr(msg, "got 0"));
    CHECK(pq_check_hours(PQ_HOURS_MAX + 1, msg, sizeof msg) == -1 && strstr(msg, "from 1 to 8760"));
    CHECK(pq_check_hours(-9223372036854775807LL - 1, msg, sizeof msg) == -1 &&
          strstr(msg, "-9223372036854775808"));
}

static void test_base64(void)
{
    static const char *const vec[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    char enc[16], msg[PQ_MSG_MAX];
    unsigned char dec[64];
    size_t i, n;
    for (i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        size_t len = strlen(vec[i][0]);
        CHECK(pq_b64_encode((const unsigned char *)vec[i][0], len, enc) == strlen(vec[i][1]));
        CHECK(strcmp(enc, vec[i][1]) == 0);
        CHECK(pq_b64_decode(vec[i][1], strlen(vec[i][1]), dec, &n, msg, sizeof msg) == 0);
        CHECK(n == len && memcmp(dec, vec[i][0], len) == 0);
    }
    CHECK(pq_b64_decode(test_data, strlen(test_data), dec, &n, msg, sizeof msg) == 0 && n == 32);
    CHECK(strcmp(pq_algorithm_for_length(n), "sha256") == 0);
    CHECK(pq_algorithm_for_length(31) == NULL);
    CHECK(pq_b64_decode(S("Zh=="), dec, &n, msg, sizeof msg) == -1 && strstr(msg, "nonzero pad bits"));
    CHECK(pq_b64_decode(S("Zm9"), dec, &n, msg, sizeof msg) == -1 && strstr(msg, "multiple of 4"));
    CHECK(pq_b64_decode(S("Zm-v"), dec, &n, msg, sizeof msg) == -1 && strstr(msg, "base64url"));
    CHECK(pq_b64_decode(S("Zm 9v"), dec, &n, msg, sizeof msg) == -1 && strstr(msg, "whitespace"));
    CHECK(pq_b64_decode(S("Zg=a"), dec, &n, msg, sizeof msg) == -1 && strstr(msg, "padding"));
    CHECK(pq_b64_decode(S("Z==="), dec, &n, msg, sizeof msg) == -1);
    CHECK(pq_b64_decode(S("===="), dec, &n, msg, sizeof msg) == -1);
}

static void test_dig(void)
{
    static char big[PQ_DIG_MAX + 1];
    unsigned char out[PQ_DIG_MAX];
    char msg[320];
    size_t n = 0, start = 0, len = 0;
    CHECK(pq_dig_parse(S("\xEF\xBB\xBF  q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=\r\n"),
                       out, &n, &start, &len, msg, sizeof msg) == 0);
    CHECK(n == 32 && start == 5 && len == strlen(test_data));
    CHECK(pq_dig_parse(test_data, strlen(test_data), out, &n, &start, &len, msg, sizeof msg) == 0 && start == 0);
    CHECK(pq_dig_parse(S("\xEF\xBB\xBF \n"), out, &n, NULL, NULL, msg, sizeof msg) == -1 &&
          strstr(msg, "is empty"));
    CHECK(pq_dig_parse("", 0, out, &n, NULL, NULL, msg, sizeof msg) == -1 && strstr(msg, "is empty"));
    CHECK(pq_dig_parse(S("q2rF Z7Tq"), out, &n, NULL, NULL, msg, sizeof msg) == -1 &&
          strstr(msg, "content is not strict Base64"));
    /* A BOM is skipped only at the very start. */
    CHECK(pq_dig_parse(S(" \xEF\xBB\xBFq2rF"), out, &n, NULL, NULL, msg, sizeof msg) == -1);
    memset(big, 'A', sizeof big);
    CHECK(pq_dig_parse(big, PQ_DIG_MAX, out, &n, NULL, NULL, msg, sizeof msg) == 0);
    CHECK(pq_dig_parse(big, sizeof big, out, &n, NULL, NULL, msg, sizeof msg) == -1 &&
          strstr(msg, "too large"));
}

static void test_header(void)
{
    char out[16] = "untouched", small[8];
    CHECK(pq_http_is_status_line(S("HTTP/1.1 100 Continue\r\n")) == 1);
    CHECK(pq_http_is_status_line(S("HTTP")) == 0);
    CHECK(pq_http_header_match(S("Content-Type: application/json\r\n"), "content-type", out, sizeof out) == 1);
    CHECK(strcmp(out, "application/jso") == 0);
    CHECK(pq_http_header_match(S("RETRY-AFTER:\t 120 \r\n"), "retry-after", out, sizeof out) == 1);
    CHECK(strcmp(out, "120") == 0);
    CHECK(pq_http_header_match(S("Retry-After : 5\r\n"), "retry-after", out, sizeof out) == 0);
    CHECK(strcmp(out, "120") == 0);
    CHECK(pq_http_header_match(S("Retry-After-X: 5\r\n"), "retry-after", out, sizeof out) == 0);
    CHECK(pq_http_header_match(S("Retry-After"), "retry-after", out, sizeof out) == 0);
    CHECK(pq_http_header_match(S("Retry-After:"), "retry-after", out, sizeof out) == 1 && out[0] == '\0');
    /* Control bytes never reach an error message. */
    CHECK(pq_http_header_match(S("Content-Type: a\x1b[31mb\0c\tz\r\n"), "content-type", out, sizeof out) == 1);
    CHECK(strcmp(out, "a?[31mb?c z") == 0);
    /* Cut to the buffer, but not inside the 3-byte euro sign. */
    CHECK(pq_http_header_match(S("Content-Type: abcde\xe2\x82\xac\r\n"), "content-type", small, sizeof small) == 1);
    CHECK(strcmp(small, "abcde") == 0);
    CHECK(pq_http_header_match(S("Content-Type: abcd \xe2\x82\xac\r\n"), "content-type", small, sizeof small) == 1);
    CHECK(strcmp(small, "abcd") == 0);
    CHECK(pq_http_header_match(S("Content-Type: x"), "content-type", small, 0) == 1);
}

int main(void)
{
    test_utf8();
    test_dn_rule();
    test_comment_rule();
    test_user_rule();
    test_guid();
    test_hours_rule();
    test_base64();
    test_dig();
    test_header();
    return test_total();
}
