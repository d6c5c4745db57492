/* Unit test of pq_wire (the JSON body of PreQualify/Create): field order and
 * omission, Hours digits, the escapes lua-cjson makes (quote, backslash,
 * slash, control characters, DEL) at every place of a long string, UTF-8
 * passed through, and the
 * snprintf-like contract on a short buffer. Prints one line per failed
 * check and a total. */
#include "pq_prefix.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "pq_wire.h"
#include "test_check.h"

/* Sets field i of r to the first n bytes of s. */
static void test_set(pq_wire_req *r, int i, const char *s, size_t n)
{
    r->str[i] = s;
    r->len[i] = n;
}

static void test_req(pq_wire_req *r, const char *dn, const char *data)
{
    memset(r, 0, sizeof *r);
    test_set(r, PQ_WIRE_DN, dn, strlen(dn));
    test_set(r, PQ_WIRE_DATA, data, strlen(data));
}

/* 1 when the body of r is exactly want (and its length is returned). */
static int test_body_is(const pq_wire_req *r, const char *want)
{
    char out[512];
    size_t n = pq_wire_body(r, out, sizeof out);
    if (n == strlen(want) && memcmp(out, want, n) == 0) return 1;
    printf("  got  %.*s\n  want %s\n", (int)(n < sizeof out ? n : sizeof out), out, want);
    return 0;
}

static void test_fields(void)
{
    pq_wire_req r;
    test_req(&r, "\\VED\\x", "q83v");
    CHECK(test_body_is(&r, "{\"Dn\":\"\\\\VED\\\\x\",\"Data\":\"q83v\"}"));
    test_set(&r, PQ_WIRE_USER, "local:u", 7);
    CHECK(test_body_is(&r, "{\"Dn\":\"\\\\VED\\\\x\",\"Data\":\"q83v\",\"User\":\"local:u\"}"));
    test_set(&r, PQ_WIRE_COMMENT, "", 0);
    r.has_hours = 1;
    r.hours = 8;
    r.has_single = 1;
    r.single_use = 1;
    CHECK(test_body_is(&r, "{\"Dn\":\"\\\\VED\\\\x\",\"Data\":\"q83v\",\"Comment\":\"\","
                           "\"User\":\"local:u\",\"Hours\":8,\"SingleUse\":true}"));
    r.single_use = 0;
    r.hours = 8760;
    CHECK(test_body_is(&r, "{\"Dn\":\"\\\\VED\\\\x\",\"Data\":\"q83v\",\"Comment\":\"\","
                           "\"User\":\"local:u\",\"Hours\":8760,\"SingleUse\":false}"));
}

static void test_hours(void)
{
    pq_wire_req r;
    test_req(&r, "d", "AA==");
    r.has_hours = 1;
    r.hours = 0;
    CHECK(test_body_is(&r, "{\"Dn\":\"d\",\"Data\":\"AA==\",\"Hours\":0}"));
    r.hours = -42;
    CHECK(test_body_is(&r, "{\"Dn\":\"d\",\"Data\":\"AA==\",\"Hours\":-42}"));
    r.hours = LLONG_MAX;
    CHECK(test_body_is(&r, "{\"Dn\":\"d\",\"Data\":\"AA==\",\"Hours\":9223372036854775807}"));
    r.hours = LLONG_MIN;
    CHECK(test_body_is(&r, "{\"Dn\":\"d\",\"Data\":\"AA==\",\"Hours\":-9223372036854775808}"));
}

/* Whether lua-cjson escapes byte c, and how (for the bytes the tests use). */
static int pq_test_escaped(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '/' || c == '\\' || c == 0x7f;
}

static const char *pq_test_escape(unsigned char c)
{
    switch (c) {
    case '"': return "\\\"";
    case '/': return "\\/";
    case '\\': return "\\\\";
    case 0x00: return "\\u0000";
    case 0x1f: return "\\u001f";
    default: return "\\u007f";
    }
}

static void test_escapes(void)
{
    static const char ctl[] = "a\0b\001\037\b\f\n\r\t\177z";
    pq_wire_req r;
    test_req(&r, "say \"hi\"", "x/y\\z");
    CHECK(test_body_is(&r, "{\"Dn\":\"say \\\"hi\\\"\",\"Data\":\"x\\/y\\\\z\"}"));
    test_set(&r, PQ_WIRE_COMMENT, ctl, sizeof ctl - 1);
    CHECK(test_body_is(&r, "{\"Dn\":\"say \\\"hi\\\"\",\"Data\":\"x\\/y\\\\z\","
                           "\"Comment\":\"a\\u0000b\\u0001\\u001f\\b\\f\\n\\r\\t\\u007fz\"}"));
    /* Only the escaped bytes change: a whole string of them, and one at each end. */
    test_req(&r, "\"\"", "\\");
    test_set(&r, PQ_WIRE_USER, "\x1b[0m", 4);
    CHECK(test_body_is(&r, "{\"Dn\":\"\\\"\\\"\",\"Data\":\"\\\\\",\"User\":\"\\u001b[0m\"}"));
}

/* Long text is looked at eight bytes at a time: every byte that is escaped
 * (and a byte on each side of each, UTF-8 and the last printable ones) is
 * found at every place in a 40-byte string, and a string of 17 with none
 * is left as it is. */
static void test_escapes_at_every_place(void)
{
    static const unsigned char special[] = {'"', '/', '\\', 0x00, 0x1f, 0x7f, 0x20, 0x7e, 0x80, 0xff, '!', '0', '.', ']'};
    size_t k, at;
    int ok = 1;
    for (k = 0; k < sizeof special; k++) {
        for (at = 0; at < 40; at++) {
            char text[40], want[128];
            size_t n = 0;
            int escaped = pq_test_escaped(special[k]);
            pq_wire_req r;
            memset(text, 'a', sizeof text);
            text[at] = (char)special[k];
            n += (size_t)snprintf(want + n, sizeof want - n, "{\"Dn\":\"d\",\"Data\":\"%.*s", (int)at, text);
            if (escaped) n += (size_t)snprintf(want + n, sizeof want - n, "%s", pq_test_escape(special[k]));
            else want[n++] = (char)special[k];
            n += (size_t)snprintf(want + n, sizeof want - n, "%.*s\"}", (int)(39 - at), text + at + 1);
            test_req(&r, "d", "");
            test_set(&r, PQ_WIRE_DATA, text, sizeof text);
            if (!test_body_is(&r, want)) ok = 0;
        }
    }
    CHECK(ok);
    {
        pq_wire_req r;
        test_req(&r, "d", "0123456789abcdefg");
        CHECK(test_body_is(&r, "{\"Dn\":\"d\",\"Data\":\"0123456789abcdefg\"}"));
    }
}

static void test_utf8(void)
{
    /* e-acute, euro sign, a 4-byte emoji, and U+2028 (which cjson leaves alone). */
    static const char text[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8";
    pq_wire_req r;
    test_req(&r, "d", "AA==");
    test_set(&r, PQ_WIRE_COMMENT, text, sizeof text - 1);
    CHECK(test_body_is(&r, "{\"Dn\":\"d\",\"Data\":\"AA==\",\"Comment\":\"caf\xc3\xa9 \xe2\x82\xac "
                           "\xf0\x9f\x98\x80 \xe2\x80\xa8\"}"));
}

/* Like snprintf: the full length whatever the room, and nothing written past it. */
static void test_short_buffer(void)
{
    static const char want[] = "{\"Dn\":\"a\\\"b\",\"Data\":\"AA==\",\"SingleUse\":true}";
    char out[64];
    size_t cap, n = sizeof want - 1;
    pq_wire_req r;
    test_req(&r, "a\"b", "AA==");
    r.has_single = 1;
    r.single_use = 1;
    CHECK(pq_wire_body(&r, NULL, 0) == n);
    for (cap = 0; cap <= n; cap++) {
        memset(out, '#', sizeof out);
        CHECK(pq_wire_body(&r, out, cap) == n);
        CHECK(out[cap] == '#');
    }
    CHECK(memcmp(out, want, n) == 0);
}

/* One string alone (what the journal's records use): escaped as in a body,
 * at most 6n + 2 bytes, and like snprintf with a short buffer. */
static void test_json_string(void)
{
    static const char in[] = "\\VED\\a/b\"c\n\x7f\x01";
    static const char want[] = "\"\\\\VED\\\\a\\/b\\\"c\\n\\u007f\\u0001\"";
    char out[64];
    size_t cap, n = sizeof want - 1;
    CHECK(pq_wire_json_string(in, sizeof in - 1, NULL, 0) == n);
    CHECK(n <= 6 * (sizeof in - 1) + 2);
    for (cap = 0; cap <= n; cap++) {
        memset(out, '#', sizeof out);
        CHECK(pq_wire_json_string(in, sizeof in - 1, out, cap) == n);
        CHECK(out[cap] == '#');
    }
    CHECK(memcmp(out, want, n) == 0);
    CHECK(pq_wire_json_string("", 0, out, sizeof out) == 2 && memcmp(out, "\"\"", 2) == 0);
}

int main(void)
{
    test_fields();
    test_hours();
    test_escapes();
    test_escapes_at_every_place();
    test_utf8();
    test_short_buffer();
    test_json_string();
    return test_total();
}
