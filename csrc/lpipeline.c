/* prequalify.core pipeline: the binding of pq_pipeline (the batch's per-item
 * hot path; contract in pq_pipeline.h). Used only by lua/prequalify/batch/.
 *
 *   core.pipeline(engine, {concurrency=, url=, journal=, spool=, success_name=,
 *                          t0=, events=}) -> pipeline
 *   p:headers(headers, epoch) -> true | nil, message
 *   p:add(index, body, key, request, keep, line, file, source, previous) -> slot
 *   p:add_inputs(items, metas, from, to, first, ids, keys) -> problems | nil, stop | nil
 *     (a chunk of input tables, validated and queued in C; ids: core.idset, or
 *     false for items the caller has claimed and looked up itself; keys: the
 *     journal keys the caller made for them, or nil)
 *   p:step(timeout) -> decisions | nil, failure | nil, sent | nil
 *   p:resend(slot, attempts), p:drop(slot), p:unqueue() -> slot | nil,
 *   p:entry(slot) -> spool record body, p:room(), p:counts(), p:close()
 *
 * A decision: the engine's result table plus slot, attempts, epoch, t_first; or
 * {slot=, refused=message}. A failure (sending has stopped): {what = "journal"
 * | "spool" | "transfer", message =, cause = the error of the write (a
 * strerror text)}. `sent` (events = true): slot, attempt pairs, flat.
 * add and add_inputs, the items going in, are in lpipeline_inputs.c. */
#include "pq_prefix.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lcore.h"
#include "ljournal.h"
#include "pq_pipeline.h"
#include "lpipeline_impl.h"

lpipeline *lpipeline_check(lua_State *L)
{
    lpipeline *lp = (lpipeline *)luaL_checkudata(L, 1, LPIPELINE_MT);
    if (!lp->p) luaL_error(L, "attempt to use a closed pipeline");
    lua_getiuservalue(L, 1, 1);
    if (!lengine_peek(L, -1)) luaL_error(L, "attempt to use a pipeline whose client is closed");
    lua_pop(L, 1);
    return lp;
}

static int lpipeline_new(lua_State *L)
{
    pq_engine *e = lengine_get(L, 1);
    pq_pipeline_opts o;
    pq_pipeline_journal j;
    lpipeline *lp;
    char err[PQ_PIPELINE_ERR_MAX];
    lua_Integer c;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    memset(&o, 0, sizeof o);
    lua_getfield(L, 2, "concurrency");
    c = luaL_checkinteger(L, -1);
    luaL_argcheck(L, c >= 1 && c <= 1024, 2, "expected concurrency 1 to 1024");
    o.concurrency = (int)c;
    lua_getfield(L, 2, "url");
    o.url = luaL_checkstring(L, -1);
    lua_getfield(L, 2, "success_name");
    o.success_name = luaL_checkstring(L, -1);
    lua_getfield(L, 2, "t0");
    o.t0 = luaL_checknumber(L, -1);
    if (lua_getfield(L, 2, "journal") != LUA_TNIL) {
        ljournal_sink(L, -1, &j);
        o.journal = &j;
    }
    if (lua_getfield(L, 2, "spool") != LUA_TNIL) {
        luaL_Stream *st = (luaL_Stream *)luaL_checkudata(L, -1, LUA_FILEHANDLE);
        if (st->closef == NULL) return luaL_error(L, "attempt to use a closed file");
        o.spool = st->f;
    }
    lua_getfield(L, 2, "events");
    /* Created closed: an allocation error below leaves it consistent. The
     * engine, journal and spool are kept alive as user values. */
    lp = (lpipeline *)lua_newuserdatauv(L, sizeof *lp, 3);
    lp->p = NULL;
    lp->engine = e;
    lp->events = lua_toboolean(L, 9);
    lp->keys = NULL;
    luaL_setmetatable(L, LPIPELINE_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, 7); /* journal */
    lua_setiuservalue(L, -2, 2);
    lua_pushvalue(L, 8); /* spool */
    lua_setiuservalue(L, -2, 3);
    lp->p = pq_pipeline_new(e, &o, err, sizeof err);
    if (!lp->p) return luaL_error(L, "%s", err);
    return 1;
}

/* p:headers(table, epoch): the headers of the next requests. */
static int lpipeline_headers(lua_State *L)
{
    lpipeline *lp = lpipeline_check(L);
    pq_header h[PQ_HEADERS_MAX];
    size_t n = 0;
    pq_headers *hl;
    char err[PQ_ENGINE_ERR_MAX];
    lua_Integer epoch = luaL_checkinteger(L, 3);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 3);
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING || n == PQ_HEADERS_MAX) {
            lua_pushnil(L);
            lua_pushstring(L, n == PQ_HEADERS_MAX ? "too many headers" : "header names and values must be strings");
            return 2;
        }
        h[n].name = lua_tolstring(L, -2, &h[n].name_len);
        h[n].value = lua_tolstring(L, -1, &h[n].value_len);
        n++;
        lua_pop(L, 1); /* the value stays anchored by the table */
    }
    hl = pq_headers_new(h, n, err, sizeof err);
    if (!hl) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    pq_pipeline_set_headers(lp->p, hl, (int)epoch);
    pq_headers_unref(hl);
    lua_pushboolean(L, 1);
    return 1;
}

static void lpipeline_set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* The engine's result table plus the item's slot, attempts, epoch and
 * t_first; or those and `refused`. */
static void lpipeline_push_decision(lua_State *L, const pq_pipeline_decision *d)
{
    if (d->why == PQ_DECIDE_REFUSED) {
        lua_createtable(L, 0, 5);
        lua_pushstring(L, d->message);
        lua_setfield(L, -2, "refused");
    } else {
        lengine_push_res(L, &d->result);
    }
    lpipeline_set_int(L, "slot", d->slot);
    lpipeline_set_int(L, "attempts", d->attempts);
    lpipeline_set_int(L, "epoch", d->epoch);
    lua_pushnumber(L, d->t_first);
    lua_setfield(L, -2, "t_first");
}

/* The failure of the last step (pq_pipeline_failure), as a table. */
static void lpipeline_push_failure(lua_State *L, const pq_pipeline *p, const char *message)
{
    static const char *const what[] = {"none", "journal", "spool", "transfer"};
    int errnum, kind = pq_pipeline_failure(p, &errnum);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, what[kind]);
    lua_setfield(L, -2, "what");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    if (errnum) {
        lua_pushstring(L, strerror(errnum));
        lua_setfield(L, -2, "cause");
    }
}

static long lpipeline_timeout_arg(lua_State *L, int idx)
{
    double t = luaL_optnumber(L, idx, 0);
    luaL_argcheck(L, t >= 0 && t <= 86400, idx, "expected a timeout in seconds (0 to 86400)");
    return (long)(t * 1000.0);
}

/* p:step(timeout) -> decisions | nil, failure | nil, sent | nil */
static int lpipeline_step(lua_State *L)
{
    lpipeline *lp = lpipeline_check(L);
    long timeout_ms = lpipeline_timeout_arg(L, 2);
    char err[PQ_PIPELINE_ERR_MAX];
    int n, i, slot, attempt;
    n = pq_pipeline_step(lp->p, timeout_ms, err, sizeof err);
    if (n > 0) {
        lua_createtable(L, n, 0);
        for (i = 0; i < n; i++) {
            lpipeline_push_decision(L, pq_pipeline_decision_at(lp->p, i));
            lua_rawseti(L, -2, i + 1);
        }
    } else {
        lua_pushnil(L);
    }
    if (err[0]) lpipeline_push_failure(L, lp->p, err);
    else lua_pushnil(L);
    if (lp->events && pq_pipeline_sent_at(lp->p, 0, &slot, &attempt)) {
        lua_newtable(L);
        for (i = 0; pq_pipeline_sent_at(lp->p, i, &slot, &attempt); i++) {
            lua_pushinteger(L, slot);
            lua_rawseti(L, -2, 2 * i + 1);
            lua_pushinteger(L, attempt);
            lua_rawseti(L, -2, 2 * i + 2);
        }
        return 3;
    }
    return 2;
}

static int lpipeline_ok(lua_State *L, int rc, const char *what)
{
    if (rc != 0) return luaL_error(L, "pipeline: slot %d holds no %s item", (int)lua_tointeger(L, 2), what);
    lua_pushboolean(L, 1);
    return 1;
}

static int lpipeline_resend(lua_State *L)
{
    lpipeline *lp = lpipeline_check(L);
    int slot = (int)luaL_checkinteger(L, 2), attempts = (int)luaL_checkinteger(L, 3);
    return lpipeline_ok(L, pq_pipeline_resend(lp->p, slot, attempts), "decided");
}

static int lpipeline_drop(lua_State *L)
{
    lpipeline *lp = lpipeline_check(L);
    return lpipeline_ok(L, pq_pipeline_drop(lp->p, (int)luaL_checkinteger(L, 2)), "decided");
}

static int lpipeline_unqueue(lua_State *L)
{
    lpipeline *lp = lpipeline_check(L);
    int slot = pq_pipeline_unqueue(lp->p);
    if (slot < 0) return 0;
    lua_pushinteger(L, slot);
    return 1;
}

static int lpipeline_entry(lua_State *L)
{
    lpipeline *lp = lpipeline_check(L);
    size_t len;
    const char *rec = pq_pipeline_entry(lp->p, (int)luaL_checkinteger(L, 2), &len);
    if (!rec) return luaL_error(L, "pipeline: no item in slot %d", (int)lua_tointeger(L, 2));
    lua_pushlstring(L, rec, len);
    return 1;
}

static int lpipeline_room(lua_State *L)
{
    lua_pushinteger(L, pq_pipeline_room(lpipeline_check(L)->p));
    return 1;
}

/* p:counts() -> approved, requests, syncs, in_flight, ready */
static int lpipeline_counts(lua_State *L)
{
    pq_pipeline_counts c;
    pq_pipeline_counts_get(lpipeline_check(L)->p, &c);
    lua_pushinteger(L, (lua_Integer)c.approved);
    lua_pushinteger(L, (lua_Integer)c.requests);
    lua_pushinteger(L, (lua_Integer)c.syncs);
    lua_pushinteger(L, c.in_flight);
    lua_pushinteger(L, c.ready);
    return 5;
}

/* p:pollfd() -> the engine's epoll descriptor */
static int lpipeline_pollfd(lua_State *L)
{
    lpipeline *lp = lpipeline_check(L);
    lua_pushinteger(L, pq_engine_pollfd(lp->engine));
    return 1;
}

/* p:timeout() -> seconds until timed work, or nil */
static int lpipeline_timeout(lua_State *L)
{
    long ms = pq_pipeline_timeout_ms(lpipeline_check(L)->p);
    if (ms < 0) lua_pushnil(L);
    else lua_pushnumber(L, (double)ms / 1000.0);
    return 1;
}

/* One idempotent closer for close(), __close and __gc. */
static int lpipeline_gc(lua_State *L)
{
    lpipeline *lp = (lpipeline *)luaL_checkudata(L, 1, LPIPELINE_MT);
    if (!lp->p) return 0;
    /* Requests still in flight go back to the engine's pool, unless the
     * engine is gone (closed: it freed them). */
    lua_getiuservalue(L, 1, 1);
    if (lengine_peek(L, -1)) pq_pipeline_abandon(lp->p);
    pq_pipeline_free(lp->p);
    pq_key_free(lp->keys);
    lp->p = NULL;
    lp->keys = NULL;
    return 0;
}

static int lpipeline_close(lua_State *L)
{
    lpipeline_gc(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int lpipeline_tostring(lua_State *L)
{
    lpipeline *lp = (lpipeline *)luaL_checkudata(L, 1, LPIPELINE_MT);
    if (!lp->p) lua_pushliteral(L, "prequalify.pipeline (closed)");
    else lua_pushfstring(L, "prequalify.pipeline (%p)", (void *)lp->p);
    return 1;
}

void lpipeline_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"headers", lpipeline_headers}, {"add", lpipeline_add}, {"add_inputs", lpipeline_add_inputs},
        {"step", lpipeline_step},
        {"resend", lpipeline_resend}, {"drop", lpipeline_drop}, {"unqueue", lpipeline_unqueue},
        {"entry", lpipeline_entry}, {"room", lpipeline_room}, {"counts", lpipeline_counts},
        {"pollfd", lpipeline_pollfd}, {"timeout", lpipeline_timeout},
        {"close", lpipeline_close}, {NULL, NULL}
    };
    static const luaL_Reg meta[] = {
        {"__gc", lpipeline_gc}, {"__close", lpipeline_gc}, {"__tostring", lpipeline_tostring},
        {NULL, NULL}
    };
    if (luaL_newmetatable(L, LPIPELINE_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, lpipeline_new);
    lua_setfield(L, -2, "pipeline");
}
