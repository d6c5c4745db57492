/* prequalify.core pipeline, the items going in: p:add (one item Lua has
 * looked at: its body, key and report fields) and p:add_inputs (a chunk of
 * plain input tables or normalized requests, validated, keyed for the
 * journal and queued in C).
 * The rest of the binding, and the method list, is lpipeline.c. */
#include "pq_prefix.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "ljournal.h"
#include "lpipeline_impl.h"
#include "lvalidate.h"
#include "pq_idset.h"
#include "pq_pipeline.h"

static pq_text lpipeline_text(lua_State *L, int idx)
{
    pq_text t = {NULL, 0};
    if (lua_type(L, idx) == LUA_TSTRING) t.s = lua_tolstring(L, idx, &t.n);
    return t;
}

static pq_text lpipeline_field_text(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    return lpipeline_text(L, -1);
}

static double lpipeline_field_num(lua_State *L, int t, const char *name)
{
    return lua_getfield(L, t, name) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
}

/* p:add(index, body, key, request, keep, line, file, source, previous) */
int lpipeline_add(lua_State *L)
{
    lpipeline *lp = lpipeline_check(L);
    pq_pipeline_item it;
    int slot;
    memset(&it, 0, sizeof it);
    it.index = (long long)luaL_checkinteger(L, 2);
    it.body = luaL_checklstring(L, 3, &it.body_len);
    it.key = lpipeline_text(L, 4);
    luaL_checktype(L, 5, LUA_TTABLE);
    it.keep = lua_toboolean(L, 6);
    it.line = lua_type(L, 7) == LUA_TNUMBER ? (double)lua_tonumber(L, 7) : -1;
    it.file = lpipeline_text(L, 8);
    it.source = lpipeline_text(L, 9);
    it.previous = lpipeline_text(L, 10);
    lua_settop(L, 10);
    luaL_checkstack(L, 12, "pipeline item");
    it.dn = lpipeline_field_text(L, 5, "dn");
    it.user = lpipeline_field_text(L, 5, "user");
    it.data = lpipeline_field_text(L, 5, "data");
    it.algorithm = lpipeline_field_text(L, 5, "algorithm");
    it.comment = lpipeline_field_text(L, 5, "comment");
    it.digest_length = lpipeline_field_num(L, 5, "digest_length");
    it.hours = lpipeline_field_num(L, 5, "hours");
    lua_getfield(L, 5, "single_use");
    it.single_use = lua_toboolean(L, -1);
    slot = pq_pipeline_add(lp->p, &it);
    if (slot < 0) return luaL_error(L, "out of memory (pipeline item)");
    lua_pushinteger(L, slot);
    return 1;
}

/* Bodies of add_inputs are built here first (larger ones as a string). */
#ifndef LPIPELINE_BODY
#define LPIPELINE_BODY 2048
#endif

/* Appends {at = k} to the problems table at idx; leaves it on the top. */
static void lpipeline_problem(lua_State *L, int idx, lua_Integer k)
{
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, -1);
    lua_rawseti(L, idx, (lua_Integer)lua_rawlen(L, idx) + 1);
    lua_pushinteger(L, k);
    lua_setfield(L, -2, "at");
}

/* How add_inputs treats the chunk: claims in ids (NULL: the caller has
 * claimed the items and looked them up itself); with a journal, makes each
 * item's key (unless the caller gave it) and stops at one an earlier run
 * recorded (known). */
typedef struct lpipeline_chunk {
    pq_idset *ids;
    int journal;
    const pq_idset *known;
} lpipeline_chunk;

/* Queues input k (its table on the top, its fields in *it), or adds a
 * problem; 1 when the journal knows the item (not queued: Lua decides). */
static int lpipeline_add_one(lua_State *L, lpipeline *lp, pq_pipeline_item *it, const lpipeline_chunk *c,
                             int idx, int k)
{
    char body[LPIPELINE_BODY], key[PQ_KEY_LEN + 1];
    long long first = 0;
    uint64_t shortkey;
    if (lvalidate_item(L, lua_gettop(L), it, body, sizeof body) != 0) { /* nil, message, field */
        lpipeline_problem(L, idx, k);
        lua_rotate(L, -3, 1);
        lua_setfield(L, -3, "field");
        lua_setfield(L, -2, "message");
        return 0;
    }
    if (c->journal && !it->key.s) {
        if (!lp->keys && !(lp->keys = pq_key_new())) luaL_error(L, "out of memory (journal key)");
        if (pq_key_make(lp->keys, it->dn.s, it->dn.n, it->data.s, it->data.n, it->user.s, it->user.n, key,
                        &shortkey) != 0)
            luaL_error(L, "digest computation failed in OpenSSL");
        if (c->ids && c->known && pq_idset_find_key(c->known, shortkey)) return 1;
        it->key.s = key;
        it->key.n = PQ_KEY_LEN;
    }
    if (c->ids)
        first = pq_idset_claim(c->ids, it->dn.s, it->dn.n, it->data.s, it->data.n, it->user.s, it->user.n,
                               it->index);
    if (first < 0) luaL_error(L, "out of memory (identity set)");
    if (first > 0) {
        lpipeline_problem(L, idx, k);
        lua_pushinteger(L, (lua_Integer)first);
        lua_setfield(L, -2, "duplicate_of");
        return 0;
    }
    if (pq_pipeline_add(lp->p, it) < 0) luaL_error(L, "out of memory (pipeline item)");
    return 0;
}

/* p:add_inputs(items, metas, from, to, first, ids, keys) -> problems | nil, stop:
 * input tables that nothing needs to see one by one in Lua, validated and
 * queued with no Lua table made. items[k] (k = from..to) is item first + k
 * - 1 of the run, metas[k] its source's {line, file, source} or false. An
 * input is queued here when it is a plain table or a normalized request
 * (core.Request, what a manifest reader yields: its fields are read by
 * name); add_inputs stops before any other input (one with another
 * metatable, or `false` for a bad line) and returns its k as `stop`. With a
 * journal each item's key is made here, and add_inputs also stops before an
 * item an earlier run recorded (the journal's `know`): the resume rules are
 * Lua's.
 * ids: the run's core.idset, which each item claims; or false when the
 * caller has claimed the items and looked them up in the journal itself (a
 * policy decided each): an entry that is not a table is then an item the
 * caller finished, passed over.
 * keys (optional, with a journal): keys[k] is the journal key the caller
 * made already for items[k] (core.request_key), used as it is; an entry
 * that is not such a key is made here.
 * `problems`, the items not queued: {at = k, message =, field =} (invalid),
 * {at = k, duplicate_of = index} (an identity claimed earlier in ids). */
int lpipeline_add_inputs(lua_State *L)
{
    lpipeline *lp = lpipeline_check(L);
    lua_Integer k = luaL_checkinteger(L, 4), to = luaL_checkinteger(L, 5), first = luaL_checkinteger(L, 6);
    lpipeline_chunk c = {NULL, 0, NULL};
    int keys = lua_toboolean(L, 8);
    if (lua_toboolean(L, 7)) c.ids = lidset_get(L, 7);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    if (keys) luaL_checktype(L, 8, LUA_TTABLE);
    lua_settop(L, 8);
    lua_newtable(L); /* 9: the problems */
    if (lua_getiuservalue(L, 1, 2) != LUA_TNIL) { /* 10: the journal */
        c.journal = 1;
        c.known = ljournal_known(L, 10);
    }
    luaL_checkstack(L, 10, "pipeline inputs");
    for (; k <= to; k++) {
        pq_pipeline_item it;
        int type = lua_rawgeti(L, 2, k); /* 11 */
        if (type != LUA_TTABLE && !c.ids) {
            lua_settop(L, 10);
            continue;
        }
        if (type != LUA_TTABLE || lvalidate_meta(L, 11) == LVALIDATE_OTHER) break;
        memset(&it, 0, sizeof it);
        it.index = (long long)(first + k - 1);
        it.line = -1;
        if (lua_rawgeti(L, 3, k) == LUA_TTABLE) { /* 12 */
            it.line = lpipeline_field_num(L, 12, "line");
            it.file = lpipeline_field_text(L, 12, "file");
            it.source = lpipeline_field_text(L, 12, "source");
        }
        /* The caller's key stays anchored in keys until the item is queued. */
        if (keys && c.journal && lua_rawgeti(L, 8, k) == LUA_TSTRING && lua_rawlen(L, -1) == PQ_KEY_LEN)
            it.key.s = lua_tolstring(L, -1, &it.key.n);
        lua_pushvalue(L, 11);
        if (lpipeline_add_one(L, lp, &it, &c, 9, (int)k)) break;
        lua_settop(L, 10);
    }
    if (k <= to) { /* stopped before item k */
        lua_pushvalue(L, 9);
        lua_pushinteger(L, k);
        return 2;
    }
    lua_settop(L, 9);
    return lua_rawlen(L, 9) > 0 ? 1 : 0;
}
