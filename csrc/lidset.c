/* Lua binding of pq_idset (the identities of one run's items):
 *   core.idset() -> set
 *   set:claim(req, index) -> nil (new) | index of the earlier item
 * where req holds the normalized string fields dn, data and user. The
 * pipeline's add_inputs claims through the same set (lidset_get). */
#include "pq_prefix.h"

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "pq_idset.h"

#define LIDSET_MT "prequalify.idset"

typedef struct lidset {
    pq_idset *s;
} lidset;

pq_idset *lidset_get(lua_State *L, int idx)
{
    lidset *ls = (lidset *)luaL_checkudata(L, idx, LIDSET_MT);
    if (!ls->s) luaL_error(L, "attempt to use a freed identity set");
    return ls->s;
}

static int lidset_new(lua_State *L)
{
    lidset *ls = (lidset *)lua_newuserdatauv(L, sizeof *ls, 0);
    ls->s = NULL;
    luaL_setmetatable(L, LIDSET_MT);
    ls->s = pq_idset_new();
    if (!ls->s) return luaL_error(L, "out of memory (identity set)");
    return 1;
}

static const char *lidset_field(lua_State *L, const char *name, size_t *n)
{
    int type = lua_getfield(L, 2, name);
    if (type == LUA_TNIL) {
        *n = 0;
        return "";
    }
    if (type != LUA_TSTRING) luaL_error(L, "idset:claim: field '%s' is not a string", name);
    return lua_tolstring(L, -1, n);
}

static int lidset_claim(lua_State *L)
{
    pq_idset *s = lidset_get(L, 1);
    size_t dn_n, data_n, user_n;
    const char *dn, *data, *user;
    long long index = (long long)luaL_checkinteger(L, 3), first;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 3);
    dn = lidset_field(L, "dn", &dn_n);
    data = lidset_field(L, "data", &data_n);
    user = lidset_field(L, "user", &user_n);
    first = pq_idset_claim(s, dn, dn_n, data, data_n, user, user_n, index);
    if (first < 0) return luaL_error(L, "out of memory (identity set)");
    if (first == 0) lua_pushnil(L);
    else lua_pushinteger(L, (lua_Integer)first);
    return 1;
}

static int lidset_gc(lua_State *L)
{
    lidset *ls = (lidset *)luaL_checkudata(L, 1, LIDSET_MT);
    pq_idset_free(ls->s);
    ls->s = NULL;
    return 0;
}

void lidset_register(lua_State *L)
{
    static const luaL_Reg methods[] = {{"claim", lidset_claim}, {NULL, NULL}};
    if (luaL_newmetatable(L, LIDSET_MT)) {
        lua_pushcfunction(L, lidset_gc);
        lua_setfield(L, -2, "__gc");
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, lidset_new);
    lua_setfield(L, -2, "idset");
}
