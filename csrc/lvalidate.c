/* Lua binding of the request rules: walks a Lua table, rejects unknown or
 * mistyped fields, runs the plain-C checkers and builds the normalized
 * request and its wire body (lwire.c). */
#include "pq_prefix.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "lvalidate.h"
#include "lwire.h"
#include "pq_base64.h"
#include "pq_validate.h"

static const char *const lvalidate_fields[] = {
    "dn", "data", "digest", "comment", "user", "hours", "single_use", NULL
};
static const size_t lvalidate_field_len[] = {2, 4, 6, 7, 4, 5, 10};
enum { F_DN, F_DATA, F_DIGEST, F_COMMENT, F_USER, F_HOURS, F_SINGLE_USE, F_COUNT };

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

int lvalidate_meta(lua_State *L, int t)
{
    int req;
    if (!lua_getmetatable(L, t)) return LVALIDATE_PLAIN;
    luaL_getmetatable(L, LVALIDATE_REQUEST_MT);
    req = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return req ? LVALIDATE_REQUEST : LVALIDATE_OTHER;
}

/* One walk of the table at t: each known field's value into its slot (from
 * `slots`, in lvalidate_fields order). 0, or the error of a key that is not
 * a known field's name. */
static int lvalidate_walk(lua_State *L, int t, int slots)
{
    int i;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        char quoted[4 * 48 + 4], buf[PQ_MSG_MAX + sizeof quoted];
        size_t n;
        const char *key;
        int known = 0;
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(buf, sizeof buf, "request fields must be named by strings (got a %s key%s)",
                     luaL_typename(L, -2), lua_type(L, -2) == LUA_TNUMBER ? ": an array item?" : "");
            lua_pop(L, 2);
            return lvalidate_fail(L, NULL, buf);
        }
        key = lua_tolstring(L, -2, &n);
        /* Compare lengths too: "dn\0x" is not "dn". */
        for (i = 0; lvalidate_fields[i]; i++)
            if (n == lvalidate_field_len[i] && memcmp(key, lvalidate_fields[i], n) == 0) {
                known = 1;
                lua_replace(L, slots + i);
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

/* Checks the keys of the table at t and pushes the known fields' values in
 * lvalidate_fields order (nil when absent) from one walk of the table; by
 * name when it has a metatable (__index). A normalized request (core.Request)
 * is read by name only: its keys were checked when it was made, and it also
 * holds what validation derived (digest_length, algorithm). 0, or the error
 * of an unknown key. */
static int lvalidate_keys(lua_State *L, int t)
{
    int slots = lua_gettop(L) + 1, i, rc, meta = lvalidate_meta(L, t);
    for (i = 0; i < F_COUNT; i++) lua_pushnil(L);
    if (meta != LVALIDATE_REQUEST && (rc = lvalidate_walk(L, t, slots)) != 0) return rc;
    if (meta != LVALIDATE_PLAIN) {
        for (i = 0; i < F_COUNT; i++) {
            lua_getfield(L, t, lvalidate_fields[i]);
            lua_replace(L, slots + i);
        }
    }
    return 0;
}

/* Pushes known field f (a slot lvalidate_keys pushed); its type. */
static int lvalidate_get(lua_State *L, int slots, int f)
{
    lua_pushvalue(L, slots + f);
    return lua_type(L, -1);
}

typedef int (*lvalidate_checker)(const char *, size_t, char *, size_t);

/* A request as validation leaves it: what core.validate's table, the wire
 * body and the batch pipeline's item are made from. Strings point into
 * values the validation left on the Lua stack (so they stay anchored). */
typedef struct lvalidate_req {
    pq_wire_req w;      /* dn, data (Base64), comment, user; hours, single_use */
    int at[4];          /* the strings' stack index: tables reuse them */
    lua_Integer digest_length;
    const char *algorithm; /* NULL for an unusual length */
} lvalidate_req;

enum { LV_DN = PQ_WIRE_DN, LV_DATA = PQ_WIRE_DATA, LV_COMMENT = PQ_WIRE_COMMENT, LV_USER = PQ_WIRE_USER };

/* Checks a required string field into r->w.str[i] (the value stays on the
 * stack); 0, or the 3 results of a failure. */
static int lvalidate_string(lua_State *L, int slots, int f, lvalidate_checker check, lvalidate_req *r, int i)
{
    char msg[PQ_MSG_MAX];
    const char *field = lvalidate_fields[f];
    int ty = lvalidate_get(L, slots, f);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return lvalidate_failf(L, field, "is required");
    }
    if (ty != LUA_TSTRING) return lvalidate_type(L, lua_gettop(L), field, "a string");
    r->w.str[i] = lua_tolstring(L, -1, &r->w.len[i]);
    r->at[i] = lua_gettop(L);
    if (check(r->w.str[i], r->w.len[i], msg, sizeof msg) != 0) {
        lua_pop(L, 1);
        return lvalidate_failf(L, field, msg);
    }
    return 0;
}

/* data (Base64 text) or digest (raw bytes): exactly one of them. Leaves the
 * Base64 text on the stack. */
static int lvalidate_data(lua_State *L, int slots, lvalidate_req *r)
{
    char msg[PQ_MSG_MAX];
    size_t n, dlen = 0;
    const char *s;
    int tdata = lvalidate_get(L, slots, F_DATA);
    int tdig = lvalidate_get(L, slots, F_DIGEST);
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
        if (tdig != LUA_TSTRING) return lvalidate_type(L, lua_gettop(L), "digest", "a string of raw bytes");
        s = lua_tolstring(L, -1, &n);
        if (n == 0 || n > PQ_DATA_MAX) {
            snprintf(msg, sizeof msg, "digest must be 1 to %d bytes long (got %lu)", PQ_DATA_MAX, (unsigned long)n);
            lua_pop(L, 2);
            return lvalidate_fail(L, "digest", msg);
        }
        out = luaL_buffinitsize(L, &b, pq_b64_encoded_len(n) + 1);
        luaL_pushresultsize(&b, pq_b64_encode((const unsigned char *)s, n, out));
        lua_replace(L, -3); /* the Base64 text where data was */
        lua_pop(L, 1);
        dlen = n;
    } else {
        if (tdata != LUA_TSTRING) return lvalidate_type(L, lua_gettop(L) - 1, "data", "a Base64 string");
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
    }
    r->w.str[LV_DATA] = lua_tolstring(L, -1, &r->w.len[LV_DATA]);
    r->at[LV_DATA] = lua_gettop(L);
    r->digest_length = (lua_Integer)dlen;
    r->algorithm = pq_algorithm_for_length(dlen);
    return 0;
}

static int lvalidate_hours(lua_State *L, int slots, lvalidate_req *r)
{
    char msg[PQ_MSG_MAX];
    lua_Integer h;
    int ty = lvalidate_get(L, slots, F_HOURS);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (ty != LUA_TNUMBER) return lvalidate_type(L, lua_gettop(L), "hours", "an integer number of hours");
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
    r->w.has_hours = 1;
    r->w.hours = h;
    return 0;
}

static int lvalidate_single_use(lua_State *L, int slots, lvalidate_req *r)
{
    int ty = lvalidate_get(L, slots, F_SINGLE_USE);
    if (ty != LUA_TNIL && ty != LUA_TBOOLEAN)
        return lvalidate_type(L, lua_gettop(L), "single_use", "a boolean");
    r->w.has_single = ty != LUA_TNIL;
    r->w.single_use = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return 0;
}

/* Validates the request table at t into r; 0, or the 3 results of a
 * failure (nil, message, field). Leaves the field values on the stack. */
static int lvalidate_check_req(lua_State *L, int t, lvalidate_req *r)
{
    int rc, slots = lua_gettop(L) + 1;
    memset(r, 0, sizeof *r);
    luaL_checkstack(L, 12 + F_COUNT, "request validation");
    if ((rc = lvalidate_keys(L, t)) != 0) return rc;
    if ((rc = lvalidate_string(L, slots, F_DN, pq_check_dn, r, LV_DN)) != 0) return rc;
    if ((rc = lvalidate_data(L, slots, r)) != 0) return rc;
    if ((rc = lvalidate_string(L, slots, F_COMMENT, pq_check_comment, r, LV_COMMENT)) != 0) return rc;
    if ((rc = lvalidate_string(L, slots, F_USER, pq_check_user, r, LV_USER)) != 0) return rc;
    if ((rc = lvalidate_hours(L, slots, r)) != 0) return rc;
    return lvalidate_single_use(L, slots, r);
}

/* Pushes the normalized table of r: dn, data, comment, user, digest_length,
 * algorithm (when known), hours and single_use (when given); with
 * `summary`, single_use is false when absent (the report's shape). */
static void lvalidate_push_table(lua_State *L, const lvalidate_req *r, int summary)
{
    static const char *const names[] = {"dn", "data", "comment", "user"};
    int i;
    lua_createtable(L, 0, 8);
    for (i = 0; i < 4; i++) {
        lua_pushvalue(L, r->at[i]);
        lua_setfield(L, -2, names[i]);
    }
    lua_pushinteger(L, r->digest_length);
    lua_setfield(L, -2, "digest_length");
    if (r->algorithm) {
        lua_pushstring(L, r->algorithm);
        lua_setfield(L, -2, "algorithm");
    }
    if (r->w.has_hours) {
        lua_pushinteger(L, r->w.hours);
        lua_setfield(L, -2, "hours");
    }
    if (r->w.has_single || summary) {
        lua_pushboolean(L, r->w.single_use);
        lua_setfield(L, -2, "single_use");
    }
}

/* core.validate(t) -> normalized table | nil, message, field */
static int lvalidate_validate(lua_State *L)
{
    lvalidate_req r;
    int rc;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if ((rc = lvalidate_check_req(L, 1, &r)) != 0) return rc;
    lvalidate_push_table(L, &r, 0);
    return 1;
}

/* core.prepare(t [, lite]) -> normalized table, summary, body | nil,
 * message, field: what the batch runner needs of each item in one call. The
 * summary is a plain table of the fields a report shows (single_use false
 * when absent); the body is core.wire of the normalized table. With `lite`
 * the normalized table is not made (false in its place): a batch with no
 * policy, journal or audit log has no use for it. Otherwise the normalized
 * table carries core.Request, the metatable of normalized requests. */
static int lvalidate_prepare(lua_State *L)
{
    lvalidate_req r;
    int lite = lua_toboolean(L, 2), rc;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if ((rc = lvalidate_check_req(L, 1, &r)) != 0) return rc;
    if (lite) {
        lua_pushboolean(L, 0);
    } else {
        lvalidate_push_table(L, &r, 0);
        luaL_setmetatable(L, LVALIDATE_REQUEST_MT);
    }
    lvalidate_push_table(L, &r, 1);
    lwire_push_body(L, &r.w);
    return 3;
}

int lvalidate_item(lua_State *L, int idx, pq_pipeline_item *it, char *buf, size_t cap)
{
    lvalidate_req r;
    int rc = lvalidate_check_req(L, idx, &r);
    if (rc != 0) return rc;
    it->body_len = pq_wire_body(&r.w, buf, cap);
    if (it->body_len <= cap) {
        it->body = buf;
    } else {
        lwire_push_body(L, &r.w);
        it->body = lua_tolstring(L, -1, &it->body_len);
    }
    it->dn.s = r.w.str[LV_DN];
    it->dn.n = r.w.len[LV_DN];
    it->data.s = r.w.str[LV_DATA];
    it->data.n = r.w.len[LV_DATA];
    it->comment.s = r.w.str[LV_COMMENT];
    it->comment.n = r.w.len[LV_COMMENT];
    it->user.s = r.w.str[LV_USER];
    it->user.n = r.w.len[LV_USER];
    it->algorithm.s = r.algorithm;
    it->algorithm.n = r.algorithm ? strlen(r.algorithm) : 0;
    it->digest_length = (double)r.digest_length;
    it->hours = r.w.has_hours ? (double)r.w.hours : -1;
    it->single_use = r.w.single_use;
    return 0;
}

void lvalidate_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"validate", lvalidate_validate},
        {"prepare", lvalidate_prepare},
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
