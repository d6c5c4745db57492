/* Lua binding of the request rules: walks a Lua table, rejects unknown or
 * mistyped fields, runs the plain-C checkers and builds the normalized
 * request. Also exposes Base64 for the Lua layer. */
#include "pq_prefix.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "pq_base64.h"
#include "pq_validate.h"

#define LVALIDATE_REQUEST_MT "prequalify.request"

static const char *const lvalidate_fields[] = {
    "dn", "data", "digest", "comment", "user", "hours", "single_use", NULL
};
static const size_t lvalidate_field_len[] = {2, 4, 6, 7, 4, 5, 10};

/* Lowercase with underscores removed: "SingleUse" and "single_use" meet. */
static void lvalidate_fold(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0, i;
    for (i = 0; i < n && o + 1 < cap; i++)
        if (s[i] != '_' && s[i] != '-') out[o++] = (char)tolower((unsigned char)s[i]);
    out[o] = '\0';
}

static const char *lvalidate_suggest(const char *key, size_t n)
{
    char a[64], b[64];
    int i;
    lvalidate_fold(key, n, a, sizeof a);
    for (i = 0; lvalidate_fields[i]; i++) {
        lvalidate_fold(lvalidate_fields[i], strlen(lvalidate_fields[i]), b, sizeof b);
        if (strcmp(a, b) == 0) return lvalidate_fields[i];
    }
    return NULL;
}

/* Returns nil, message, field: the calling convention of core.validate. The
 * field is nil when the error is about no field in particular. */
static int lvalidate_fail(lua_State *L, const char *field, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    if (field) lua_pushstring(L, field);
    else lua_pushnil(L);
    return 3;
}

static int lvalidate_failf(lua_State *L, const char *field, const char *rule)
{
    char buf[PQ_MSG_MAX + 64];
    snprintf(buf, sizeof buf, "%s %s", field, rule);
    return lvalidate_fail(L, field, buf);
}

static int lvalidate_type(lua_State *L, int idx, const char *field, const char *want)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s must be %s, got %s", field, want, luaL_typename(L, idx));
    return lvalidate_fail(L, field, buf);
}

/* Copies a key for a message: at most 48 bytes, anything outside printable
 * ASCII as \xNN, so that tostring(err) stays one readable line. */
static void lvalidate_quote(const char *s, size_t n, char *out, size_t cap)
{
    size_t i, o = 0;
    for (i = 0; i < n && i < 48 && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    if (i < n && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Checks the unknown keys; returns 0 when all are known, else pushes the error. */
static int lvalidate_keys(lua_State *L, int t)
{
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        char quoted[4 * 48 + 4], buf[PQ_MSG_MAX + sizeof quoted];
        size_t n;
        const char *key;
        int i, known = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            int number = lua_type(L, -1) == LUA_TNUMBER;
            snprintf(buf, sizeof buf, "request fields must be named by strings (got a %s key%s)",
                     luaL_typename(L, -1), number ? ": an array item?" : "");
            lua_pop(L, 1);
            return lvalidate_fail(L, NULL, buf);
        }
        key = lua_tolstring(L, -1, &n);
        /* Compare lengths too: "dn\0x" is not "dn". */
        for (i = 0; lvalidate_fields[i]; i++)
            if (n == lvalidate_field_len[i] && memcmp(key, lvalidate_fields[i], n) == 0) {
                known = 1;
                break;
            }
        if (!known) {
            const char *hint = lvalidate_suggest(key, n);
            lvalidate_quote(key, n, quoted, sizeof quoted);
            if (hint)
                snprintf(buf, sizeof buf, "unknown field '%s' (did you mean '%s'?)", quoted, hint);
            else
                snprintf(buf, sizeof buf, "unknown field '%s' (known: dn, data, digest, comment, user, hours, single_use)", quoted);
            lua_pushnil(L);
            lua_pushstring(L, buf);
            lua_pushlstring(L, key, n);
            return 3;
        }
    }
    return 0;
}

typedef int (*lvalidate_checker)(const char *, size_t, char *, size_t);

/* Checks a required string field and stores it in the result table at -1. */
static int lvalidate_string(lua_State *L, int t, const char *field, lvalidate_checker check)
{
    char msg[PQ_MSG_MAX];
    size_t n;
    const char *s;
    int ty = lua_getfield(L, t, field);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return lvalidate_failf(L, field, "is required");
    }
    if (ty != LUA_TSTRING) {
        int r = lvalidate_type(L, lua_gettop(L), field, "a string");
        return r;
    }
    s = lua_tolstring(L, -1, &n);
    if (check(s, n, msg, sizeof msg) != 0) {
        lua_pop(L, 1);
        return lvalidate_failf(L, field, msg);
    }
    lua_setfield(L, -2, field);
    return 0;
}

/* data (Base64 text) or digest (raw bytes): exactly one of them. */
static int lvalidate_data(lua_State *L, int t)
{
    char msg[PQ_MSG_MAX];
    size_t n, dlen = 0;
    const char *s, *alg;
    int tdata = lua_getfield(L, t, "data");
    int tdig = lua_getfield(L, t, "digest");
    if (tdata != LUA_TNIL && tdig != LUA_TNIL) {
        lua_pop(L, 2);
        return lvalidate_fail(L, "data", "data and digest are exclusive: give the Base64 text as data or the raw bytes as digest, not both");
    }
    if (tdata == LUA_TNIL && tdig == LUA_TNIL) {
        lua_pop(L, 2);
        return lvalidate_fail(L, "data", "data is required (Base64 of the hash), or digest (its raw bytes)");
    }
    if (tdig != LUA_TNIL) {
        luaL_Buffer b;
        char *out;
        if (tdig != LUA_TSTRING) {
            int r = lvalidate_type(L, lua_gettop(L), "digest", "a string of raw bytes");
            return r;
        }
        s = lua_tolstring(L, -1, &n);
        if (n == 0 || n > PQ_DATA_MAX) {
            snprintf(msg, sizeof msg, "digest must be 1 to %d bytes long (got %lu)", PQ_DATA_MAX, (unsigned long)n);
            lua_pop(L, 2);
            return lvalidate_fail(L, "digest", msg);
        }
        out = luaL_buffinitsize(L, &b, pq_b64_encoded_len(n) + 1);
        luaL_pushresultsize(&b, pq_b64_encode((const unsigned char *)s, n, out));
        lua_setfield(L, -4, "data");
        lua_pop(L, 2);
        dlen = n;
    } else {
        if (tdata != LUA_TSTRING) {
            int r = lvalidate_type(L, lua_gettop(L) - 1, "data", "a Base64 string");
            return r;
        }
        s = lua_tolstring(L, -2, &n);
        if (pq_b64_decode(s, n, NULL, &dlen, msg, sizeof msg) != 0) {
            lua_pop(L, 2);
            return lvalidate_failf(L, "data", msg);
        }
        if (dlen == 0) {
            lua_pop(L, 2);
            return lvalidate_fail(L, "data", "data is empty; it must encode at least 1 byte");
        }
        if (dlen > PQ_DATA_MAX) {
            snprintf(msg, sizeof msg, "data decodes to %lu bytes; at most %d are allowed", (unsigned long)dlen, PQ_DATA_MAX);
            lua_pop(L, 2);
            return lvalidate_fail(L, "data", msg);
        }
        lua_pop(L, 1);
        lua_setfield(L, -2, "data");
    }
    lua_pushinteger(L, (lua_Integer)dlen);
    lua_setfield(L, -2, "digest_length");
    alg = pq_algorithm_for_length(dlen);
    if (alg) {
        lua_pushstring(L, alg);
        lua_setfield(L, -2, "algorithm");
    }
    return 0;
}

static int lvalidate_hours(lua_State *L, int t)
{
    char msg[PQ_MSG_MAX];
    lua_Integer h;
    int ty = lua_getfield(L, t, "hours");
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (ty != LUA_TNUMBER) {
        int r = lvalidate_type(L, lua_gettop(L), "hours", "an integer number of hours");
        return r;
    }
    if (!lua_isinteger(L, -1)) {
        lua_Number x = lua_tonumber(L, -1);
        lua_pop(L, 1);
        /* Range first (also catches nan, inf and 1e300, which are not
         * fractions); then 8.0 is an integer value and 8.5 is not. */
        if (!(x >= 1 && x <= PQ_HOURS_MAX)) {
            snprintf(msg, sizeof msg, "hours must be an integer from 1 to %d (got %.14g)", PQ_HOURS_MAX, (double)x);
            return lvalidate_fail(L, "hours", msg);
        }
        if (!lua_numbertointeger(x, &h) || (lua_Number)h != x)
            return lvalidate_fail(L, "hours", "hours must be a whole number of hours (got a fraction)");
    } else {
        h = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    if (pq_check_hours((long long)h, msg, sizeof msg) != 0)
        return lvalidate_failf(L, "hours", msg);
    lua_pushinteger(L, h);
    lua_setfield(L, -2, "hours");
    return 0;
}

static int lvalidate_single_use(lua_State *L, int t)
{
    int ty = lua_getfield(L, t, "single_use");
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (ty != LUA_TBOOLEAN) {
        int r = lvalidate_type(L, lua_gettop(L), "single_use", "a boolean");
        return r;
    }
    lua_setfield(L, -2, "single_use");
    return 0;
}

/* core.validate(t) -> normalized table | nil, message, field */
static int lvalidate_validate(lua_State *L)
{
    int r;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if ((r = lvalidate_keys(L, 1)) != 0) return r;
    lua_createtable(L, 0, 8);
    if ((r = lvalidate_string(L, 1, "dn", pq_check_dn)) != 0) return r;
    if ((r = lvalidate_data(L, 1)) != 0) return r;
    if ((r = lvalidate_string(L, 1, "comment", pq_check_comment)) != 0) return r;
    if ((r = lvalidate_string(L, 1, "user", pq_check_user)) != 0) return r;
    if ((r = lvalidate_hours(L, 1)) != 0) return r;
    if ((r = lvalidate_single_use(L, 1)) != 0) return r;
    return 1;
}

/* Bytes that lua-cjson escapes in a string: control characters, ", /, \\ and DEL. */
static const unsigned char lvalidate_json_escaped[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Appends s as a JSON string. Escapes what lua-cjson escapes (", \\, /,
 * control characters, DEL), so that bodies are byte for byte what the cjson
 * encoder made before; UTF-8 was validated and passes through. */
static void lvalidate_json_string(luaL_Buffer *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;
    luaL_addchar(b, '"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
        if (!lvalidate_json_escaped[c]) continue;
        luaL_addlstring(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '/': esc = "\\/"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            luaL_addlstring(b, u, 6);
            continue;
        }
        luaL_addstring(b, esc);
    }
    luaL_addlstring(b, s + run, n - run);
    luaL_addchar(b, '"');
}

/* Pushes the JSON body of PreQualify/Create for the normalized request at
 * absolute index t: Dn, Data, Comment, User, Hours, SingleUse in that order,
 * absent optional fields left out (never null), Hours an integer. Leaves only
 * the body on top of what was there; raises for a field of the wrong type. */
static void lvalidate_push_wire(lua_State *L, int t)
{
    static const char *const names[] = {"dn", "data", "comment", "user"};
    static const char *const wire[] = {"{\"Dn\":", ",\"Data\":", ",\"Comment\":", ",\"User\":"};
    static const size_t wire_len[] = {6, 8, 11, 8};
    const char *str[4];
    size_t len[4], i;
    int base = lua_gettop(L), hours_type, single_type, single = 0, isint;
    lua_Integer hours = 0;
    luaL_Buffer b;
    for (i = 0; i < 4; i++) {
        int type = lua_getfield(L, t, names[i]);
        str[i] = NULL;
        if (type == LUA_TSTRING) str[i] = lua_tolstring(L, -1, &len[i]);
        else if (type != LUA_TNIL || i < 2) luaL_error(L, "wire: field '%s' is not a string", names[i]);
    }
    hours_type = lua_getfield(L, t, "hours");
    if (hours_type != LUA_TNIL) {
        hours = lua_tointegerx(L, -1, &isint);
        if (!isint) luaL_error(L, "wire: field 'hours' is not an integer");
    }
    single_type = lua_getfield(L, t, "single_use");
    if (single_type != LUA_TNIL && single_type != LUA_TBOOLEAN)
        luaL_error(L, "wire: field 'single_use' is not a boolean");
    single = lua_toboolean(L, -1);
    luaL_buffinit(L, &b);
    for (i = 0; i < 4; i++) {
        if (!str[i]) continue;
        luaL_addlstring(&b, wire[i], wire_len[i]);
        lvalidate_json_string(&b, str[i], len[i]);
    }
    if (hours_type != LUA_TNIL) {
        /* Digits by hand: snprintf was a third of the body's cost. */
        char num[32], *p = num + sizeof num;
        lua_Unsigned u = hours < 0 ? 0u - (lua_Unsigned)hours : (lua_Unsigned)hours;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (hours < 0) *--p = '-';
        luaL_addlstring(&b, ",\"Hours\":", 9);
        luaL_addlstring(&b, p, (size_t)(num + sizeof num - p));
    }
    if (single_type != LUA_TNIL) {
        if (single) luaL_addlstring(&b, ",\"SingleUse\":true", 17);
        else luaL_addlstring(&b, ",\"SingleUse\":false", 18);
    }
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
}

/* core.wire(req) -> the JSON body of a normalized request */
static int lvalidate_wire(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lvalidate_push_wire(L, 1);
    return 1;
}

/* core.prepare(t [, lite]) -> normalized table, summary, body | nil,
 * message, field: what the batch runner needs of each item in one call. The
 * summary is a plain table of the fields a report shows (single_use false
 * when absent); the body is core.wire of the normalized table. With `lite`
 * the normalized table is not returned (false in its place): a batch with no
 * policy, journal or audit log has no use for it. Otherwise the normalized
 * table carries core.Request, the metatable of normalized requests. */
static int lvalidate_prepare(lua_State *L)
{
    static const char *const fields[] = {
        "dn", "user", "data", "algorithm", "digest_length", "hours", "comment"};
    size_t i;
    int lite = lua_toboolean(L, 2), req, r = lvalidate_validate(L);
    if (r != 1) return r;
    req = lua_gettop(L);
    if (lite) {
        /* The normalized table becomes the summary once the body is
         * written (the body leaves out an absent single_use). */
        lua_pushboolean(L, 0);
        lua_insert(L, req);          /* false, req */
        lvalidate_push_wire(L, req + 1);
        if (lua_getfield(L, req + 1, "single_use") == LUA_TNIL) {
            lua_pushboolean(L, 0);
            lua_setfield(L, req + 1, "single_use");
        }
        lua_pop(L, 1);
        return 3;
    }
    luaL_setmetatable(L, LVALIDATE_REQUEST_MT);
    lua_createtable(L, 0, 8);
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        lua_getfield(L, req, fields[i]);
        lua_setfield(L, req + 1, fields[i]);
    }
    lua_getfield(L, req, "single_use");
    lua_pushboolean(L, lua_toboolean(L, -1));
    lua_setfield(L, req + 1, "single_use");
    lua_pop(L, 1);
    lvalidate_push_wire(L, req);
    return 3;
}

/* core.check(kind, value) -> true | nil, rule: one checker, for other endpoints. */
static int lvalidate_check(lua_State *L)
{
    static const char *const kinds[] = {"dn", "comment", "user", "base64", "guid", NULL};
    char msg[PQ_MSG_MAX];
    size_t n;
    int kind = luaL_checkoption(L, 1, NULL, kinds), ok;
    const char *s = luaL_checklstring(L, 2, &n);
    switch (kind) {
    case 0: ok = pq_check_dn(s, n, msg, sizeof msg) == 0; break;
    case 1: ok = pq_check_comment(s, n, msg, sizeof msg) == 0; break;
    case 2: ok = pq_check_user(s, n, msg, sizeof msg) == 0; break;
    case 3: {
        size_t dlen = 0;
        ok = pq_b64_decode(s, n, NULL, &dlen, msg, sizeof msg) == 0;
        if (ok && dlen == 0) {
            ok = 0;
            snprintf(msg, sizeof msg, "is empty; it must encode at least 1 byte");
        }
        break;
    }
    default:
        ok = pq_is_guid(s, n);
        snprintf(msg, sizeof msg, "is not a braced GUID {8-4-4-4-12}");
        break;
    }
    if (ok) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

static int lvalidate_b64encode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, pq_b64_encoded_len(n) + 1);
    luaL_pushresultsize(&b, pq_b64_encode((const unsigned char *)s, n, out));
    return 1;
}

static int lvalidate_b64decode(lua_State *L)
{
    char msg[PQ_MSG_MAX];
    size_t n, dlen;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, n / 4 * 3 + 1);
    if (pq_b64_decode(s, n, out, &dlen, msg, sizeof msg) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    luaL_pushresultsize(&b, dlen);
    return 1;
}

void lvalidate_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"validate", lvalidate_validate},
        {"check", lvalidate_check},
        {"wire", lvalidate_wire},
        {"prepare", lvalidate_prepare},
        {"b64encode", lvalidate_b64encode},
        {"b64decode", lvalidate_b64decode},
        {NULL, NULL}
    };
    luaL_setfuncs(L, fns, 0);
    lua_pushinteger(L, PQ_DN_MAX);
    lua_setfield(L, -2, "DN_MAX");
    lua_pushinteger(L, PQ_COMMENT_MAX);
    lua_setfield(L, -2, "COMMENT_MAX");
    lua_pushinteger(L, PQ_DATA_MAX);
    lua_setfield(L, -2, "DATA_MAX");
    lua_pushinteger(L, PQ_USER_MAX);
    lua_setfield(L, -2, "USER_MAX");
    lua_pushinteger(L, PQ_HOURS_MAX);
    lua_setfield(L, -2, "HOURS_MAX");
    /* core.Request: the metatable of normalized requests, which prepare
     * sets (request.lua adds the methods). */
    luaL_newmetatable(L, LVALIDATE_REQUEST_MT);
    lua_setfield(L, -2, "Request");
}
