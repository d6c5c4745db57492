/* prequalify.core engine: the Lua binding of pq_engine (pq_engine.h). A
 * userdata owns one engine and the header list of the last request; this
 * file reads and checks options and requests, and turns finished transfers
 * into result tables. Lua is never entered from inside libcurl. */
#include "pq_prefix.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "pq_engine.h"

#define LENGINE_MT "prequalify.engine"

/* Longest wait a poll or a request timeout may ask for, in seconds. */
#define LENGINE_SECONDS_MAX 86400

typedef struct lengine {
    pq_engine *e;        /* NULL once closed */
    pq_headers *headers; /* list of the last request, reused while equal */
} lengine;

static lengine *lengine_check(lua_State *L, int idx)
{
    lengine *le = (lengine *)luaL_checkudata(L, idx, LENGINE_MT);
    if (!le->e) luaL_error(L, "attempt to use a closed engine");
    return le;
}

/* ---- typed option readers ------------------------------------------------
 * Each pushes the field and leaves it on the stack, so that a string stays
 * anchored while C holds a pointer into it (an __index may return a fresh
 * one). Absent fields keep their default. */

static int lengine_field(lua_State *L, int t, const char *name)
{
    luaL_checkstack(L, 2, "engine options");
    return lua_getfield(L, t, name);
}

static long lengine_opt_ms(lua_State *L, int t, const char *name, long def, double lo, double hi)
{
    double v;
    int ty = lengine_field(L, t, name);
    if (ty == LUA_TNIL) return def;
    v = lua_tonumber(L, -1);
    if (ty != LUA_TNUMBER || !(v >= lo && v <= hi))
        luaL_error(L, "engine option '%s': expected seconds from %f to %f", name, (lua_Number)lo, (lua_Number)hi);
    return (long)(v * 1000.0 + 0.5);
}

static lua_Integer lengine_opt_int(lua_State *L, int t, const char *name, lua_Integer def, lua_Integer lo,
                                   lua_Integer hi)
{
    lua_Integer v = 0;
    int isint = 0;
    if (lengine_field(L, t, name) == LUA_TNIL) return def;
    if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < lo || v > hi)
        luaL_error(L, "engine option '%s': expected an integer from %I to %I", name, lo, hi);
    return v;
}

static int lengine_opt_bool(lua_State *L, int t, const char *name)
{
    int ty = lengine_field(L, t, name);
    if (ty == LUA_TNIL) return 0;
    if (ty != LUA_TBOOLEAN) luaL_error(L, "engine option '%s': expected true or false", name);
    return lua_toboolean(L, -1);
}

static const char *lengine_opt_str(lua_State *L, int t, const char *name)
{
    int ty = lengine_field(L, t, name);
    if (ty == LUA_TNIL) return NULL;
    if (ty != LUA_TSTRING) luaL_error(L, "engine option '%s': expected a string", name);
    return lua_tostring(L, -1);
}

/* ---- requests ------------------------------------------------------------ */

/* Reads the headers table at t into hs; returns the count, or -1 with a
 * message pushed. lua_next calls no metamethod, so nothing here raises. */
static int lengine_read_headers(lua_State *L, int t, pq_header *hs)
{
    int n = 0;
    if (lua_type(L, t) != LUA_TTABLE) return 0;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 2);
            lua_pushliteral(L, "header names and values must be strings");
            return -1;
        }
        if (n == PQ_HEADERS_MAX) {
            lua_pop(L, 2);
            lua_pushfstring(L, "more than %d headers", PQ_HEADERS_MAX);
            return -1;
        }
        hs[n].name = lua_tolstring(L, -2, &hs[n].name_len);
        hs[n].value = lua_tolstring(L, -1, &hs[n].value_len);
        n++;
        lua_pop(L, 1);
    }
    return n;
}

/* Reads and checks the whole request table at index 2 before the engine
 * takes a transfer, so that an error raised meanwhile (a bad field, a
 * raising __index) leaves nothing behind. Returns 1 with r filled, or 0
 * with a refusal message pushed (a request that was never sent). The fields
 * read stay on the stack until the submit. */
static int lengine_read_request(lua_State *L, lengine *le, pq_request *r)
{
    pq_header hs[PQ_HEADERS_MAX];
    const char *method;
    int n;
    char err[PQ_ENGINE_ERR_MAX];
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    memset(r, 0, sizeof *r);
    lua_getfield(L, 2, "method");
    method = luaL_optstring(L, 3, "POST");
    r->is_post = strcmp(method, "POST") == 0;
    if (!r->is_post && strcmp(method, "GET") != 0) luaL_argerror(L, 2, "expected method POST or GET");
    lua_getfield(L, 2, "url");
    r->url = lua_tostring(L, 4);
    luaL_argcheck(L, r->url != NULL, 2, "expected a url string");
    if (lua_getfield(L, 2, "body") == LUA_TSTRING) r->body = lua_tolstring(L, 5, &r->body_len);
    r->timeout_ms = -1;
    if (lua_getfield(L, 2, "timeout") != LUA_TNIL) {
        lua_Number t = lua_tonumber(L, 6);
        if (lua_type(L, 6) != LUA_TNUMBER || !(t >= 0 && t <= LENGINE_SECONDS_MAX))
            luaL_argerror(L, 2, "field 'timeout': expected seconds from 0 (no limit) to 86400");
        r->timeout_ms = (long)(t * 1000.0 + 0.5);
        if (t > 0 && r->timeout_ms == 0) r->timeout_ms = 1; /* 0 would mean no limit */
    }
    lua_getfield(L, 2, "headers");
    n = lengine_read_headers(L, 7, hs);
    if (n < 0) return 0;
    if (!pq_headers_same(le->headers, hs, (size_t)n)) {
        pq_headers *hl = pq_headers_new(hs, (size_t)n, err, sizeof err);
        if (!hl) {
            lua_pushstring(L, err);
            return 0;
        }
        pq_headers_unref(le->headers);
        le->headers = hl;
    }
    r->headers = le->headers;
    return 1;
}

/* engine:submit{method=, url=, headers={name=value}, body=, timeout=} -> id
 * | nil, message. Header names and values are checked for CR, LF and NUL
 * before anything is sent; the message never repeats a header value. */
static int lengine_submit(lua_State *L)
{
    lengine *le = lengine_check(L, 1);
    pq_request r;
    long long id;
    char err[PQ_ENGINE_ERR_MAX];
    if (!lengine_read_request(L, le, &r)) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    id = pq_engine_submit(le->e, &r, err, sizeof err);
    if (id == 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* ---- results ------------------------------------------------------------- */

static void lengine_set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void lengine_set_str(lua_State *L, const char *k, const char *v)
{
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* Pushes the result table of a finished transfer (also the batch
 * pipeline's decisions, lpipeline.c). */
void lengine_push_res(lua_State *L, const pq_result *res)
{
    lua_createtable(L, 0, 16);
    lua_pushinteger(L, (lua_Integer)res->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, res->status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, res->body, res->body_len);
    lua_setfield(L, -2, "body");
    lengine_set_str(L, "content_type", res->content_type);
    lengine_set_str(L, "retry_after", res->retry_after);
    lua_pushinteger(L, res->curl_code);
    lua_setfield(L, -2, "curl_code");
    lengine_set_str(L, "curl_error", res->curl_error);
    lua_pushboolean(L, res->sent);
    lua_setfield(L, -2, "sent");
    lua_pushboolean(L, res->oversized);
    lua_setfield(L, -2, "oversized");
    lua_pushinteger(L, res->new_connections);
    lua_setfield(L, -2, "new_connections");
    lengine_set_num(L, "elapsed", res->elapsed);
    lengine_set_num(L, "connect_time", res->connect_time);
    lengine_set_num(L, "tls_time", res->tls_time);
    lengine_set_num(L, "first_byte_time", res->first_byte_time);
}

/* Pushes the result table of a finished transfer, then gives the transfer
 * back to the pool. The push may raise on OOM, so the transfer leaves the
 * done list only once the table is complete. */
static void lengine_push_result(lua_State *L, pq_engine *e, pq_xfer *x)
{
    pq_result res;
    pq_engine_result(x, &res);
    lengine_push_res(L, &res);
    pq_engine_release(e, pq_engine_take_done(e, res.id));
}

/* The engine of the userdata at idx (raises when closed), for the batch
 * pipeline, which drives it from C. */
pq_engine *lengine_get(lua_State *L, int idx)
{
    return lengine_check(L, idx)->e;
}

/* The engine of the userdata at idx, or NULL once closed (never raises). */
pq_engine *lengine_peek(lua_State *L, int idx)
{
    lengine *le = (lengine *)luaL_testudata(L, idx, LENGINE_MT);
    return le ? le->e : NULL;
}

static void lengine_drive(lua_State *L, pq_engine *e, long timeout_ms, long long want)
{
    char err[PQ_ENGINE_ERR_MAX];
    if (pq_engine_drive(e, timeout_ms, want, err, sizeof err) != 0) luaL_error(L, "%s", err);
}

/* engine:poll([timeout]) -> array of finished results (possibly empty).
 * Waits up to timeout seconds for at least one transfer to finish. */
static int lengine_poll(lua_State *L)
{
    lengine *le = lengine_check(L, 1);
    lua_Number t = luaL_optnumber(L, 2, 0);
    pq_xfer *x;
    lua_Integer i = 0;
    luaL_argcheck(L, t >= 0 && t <= LENGINE_SECONDS_MAX, 2, "expected a timeout in seconds (0 to 86400)");
    if (pq_engine_find_owned(le->e, NULL) == NULL && pq_engine_running(le->e) > 0)
        lengine_drive(L, le->e, (long)(t * 1000.0), 0);
    lua_createtable(L, pq_engine_done(le->e), 0);
    while ((x = pq_engine_find_owned(le->e, NULL)) != NULL) {
        lengine_push_result(L, le->e, x);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

/* engine:perform(request) -> result | nil, message: one blocking call on the
 * same path as submit/poll. Other transfers finishing meanwhile stay queued
 * for the next poll. */
static int lengine_perform(lua_State *L)
{
    lengine *le = lengine_check(L, 1);
    long long id;
    pq_xfer *x;
    if (lengine_submit(L) == 2) return 2;
    id = (long long)lua_tointeger(L, -1);
    while ((x = pq_engine_find_done(le->e, id)) == NULL) lengine_drive(L, le->e, 1000, id);
    lengine_push_result(L, le->e, x);
    return 1;
}

/* engine:take(id) -> result | nil: does the ready work without waiting,
 * then takes transfer `id` if it has finished (others stay queued). */
static int lengine_take(lua_State *L)
{
    lengine *le = lengine_check(L, 1);
    long long id = (long long)luaL_checkinteger(L, 2);
    pq_xfer *x = pq_engine_find_done(le->e, id);
    if (!x && pq_engine_running(le->e) > 0) {
        lengine_drive(L, le->e, 0, id);
        x = pq_engine_find_done(le->e, id);
    }
    if (!x) return 0;
    lengine_push_result(L, le->e, x);
    return 1;
}

/* engine:pending() -> transfers in flight, finished ones not yet polled,
 * and every transfer the engine holds (idle ones in its pool included) */
static int lengine_pending(lua_State *L)
{
    lengine *le = lengine_check(L, 1);
    lua_pushinteger(L, pq_engine_running(le->e));
    lua_pushinteger(L, pq_engine_done(le->e));
    lua_pushinteger(L, pq_engine_transfers(le->e));
    return 3;
}

/* engine:pollfd() -> the epoll descriptor following the engine's sockets */
static int lengine_pollfd(lua_State *L)
{
    lua_pushinteger(L, pq_engine_pollfd(lengine_check(L, 1)->e));
    return 1;
}

/* engine:timeout() -> seconds until libcurl's timer is due, or nil */
static int lengine_timeout(lua_State *L)
{
    long ms = pq_engine_timeout_ms(lengine_check(L, 1)->e);
    if (ms < 0) lua_pushnil(L);
    else lua_pushnumber(L, (double)ms / 1000.0);
    return 1;
}

/* One idempotent closer for close(), __close and __gc. */
static int lengine_gc(lua_State *L)
{
    lengine *le = (lengine *)luaL_checkudata(L, 1, LENGINE_MT);
    pq_engine_free(le->e);
    pq_headers_unref(le->headers);
    le->e = NULL;
    le->headers = NULL;
    return 0;
}

static int lengine_close(lua_State *L)
{
    lengine_gc(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int lengine_tostring(lua_State *L)
{
    lengine *le = (lengine *)luaL_checkudata(L, 1, LENGINE_MT);
    if (!le->e) lua_pushliteral(L, "prequalify.engine (closed)");
    else lua_pushfstring(L, "prequalify.engine (%p, %d in flight)", (void *)le, pq_engine_running(le->e));
    return 1;
}

/* core.engine([options]) -> engine. Options (all optional): timeout and
 * connect_timeout in seconds, max_response in bytes, max_connections,
 * max_host_connections, http2, ca_file, ca_path, ca_replace, client_cert,
 * client_key, key_password, pinned_pubkey, proxy, noproxy, user_agent. */
static int lengine_new(lua_State *L)
{
    lengine *le;
    pq_engine_opts o;
    char err[PQ_ENGINE_ERR_MAX];
    int t = 1;
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    if (!lua_istable(L, 1))
        luaL_typeerror(L, 1, "an options table");
    lua_settop(L, 1);
    pq_engine_opts_default(&o);
    o.timeout_ms = lengine_opt_ms(L, t, "timeout", o.timeout_ms, 0.001, LENGINE_SECONDS_MAX);
    o.connect_timeout_ms = lengine_opt_ms(L, t, "connect_timeout", o.connect_timeout_ms, 0.001, LENGINE_SECONDS_MAX);
    o.max_response = (size_t)lengine_opt_int(L, t, "max_response", PQ_MAX_RESPONSE, 1024, 1 << 30);
    o.max_connections = (long)lengine_opt_int(L, t, "max_connections", 16, 1, 4096);
    o.max_host_connections = (long)lengine_opt_int(L, t, "max_host_connections", o.max_connections, 1, 4096);
    o.http2 = lengine_opt_bool(L, t, "http2");
    o.ca_replace = lengine_opt_bool(L, t, "ca_replace");
    o.ca_file = lengine_opt_str(L, t, "ca_file");
    o.ca_path = lengine_opt_str(L, t, "ca_path");
    o.client_cert = lengine_opt_str(L, t, "client_cert");
    o.client_key = lengine_opt_str(L, t, "client_key");
    o.key_password = lengine_opt_str(L, t, "key_password");
    o.pinned_pubkey = lengine_opt_str(L, t, "pinned_pubkey");
    o.proxy = lengine_opt_str(L, t, "proxy");
    o.noproxy = lengine_opt_str(L, t, "noproxy");
    o.user_agent = lengine_opt_str(L, t, "user_agent");

    /* Created closed: an allocation error below leaves a consistent object. */
    le = (lengine *)lua_newuserdatauv(L, sizeof *le, 0);
    le->e = NULL;
    le->headers = NULL;
    luaL_setmetatable(L, LENGINE_MT);
    le->e = pq_engine_new(&o, err, sizeof err);
    if (!le->e) return luaL_error(L, "%s", err);
    return 1;
}

/* core.curl_version() -> version string, has_http2, TLS library */
static int lengine_curl_version(lua_State *L)
{
    curl_version_info_data *v;
    pq_engine_global_init();
    v = curl_version_info(CURLVERSION_NOW);
    lua_pushstring(L, v->version);
    lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
    lua_pushstring(L, v->ssl_version ? v->ssl_version : "");
    return 3;
}

void lengine_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"submit", lengine_submit},
        {"poll", lengine_poll},
        {"perform", lengine_perform},
        {"pending", lengine_pending},
        {"take", lengine_take},
        {"pollfd", lengine_pollfd},
        {"timeout", lengine_timeout},
        {"close", lengine_close},
        {NULL, NULL}
    };
    static const luaL_Reg meta[] = {
        {"__gc", lengine_gc},
        {"__close", lengine_gc},
        {"__tostring", lengine_tostring},
        {NULL, NULL}
    };
    static const luaL_Reg fns[] = {
        {"engine", lengine_new},
        {"curl_version", lengine_curl_version},
        {NULL, NULL}
    };
    if (luaL_newmetatable(L, LENGINE_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, fns, 0);
}
