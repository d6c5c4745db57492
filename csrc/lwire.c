/* Lua binding of the wire body (pq_wire.c): core.wire, and the push of a
 * body that core.prepare and the batch pipeline's items use. */
#include "pq_prefix.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "lwire.h"

/* Bodies up to this many bytes are written on the C stack and copied once
 * into a Lua string; larger ones straight into a Lua buffer of their size. */
#ifndef LWIRE_STACK_BODY
#define LWIRE_STACK_BODY 1024
#endif

void lwire_push_body(lua_State *L, const pq_wire_req *r)
{
    char buf[LWIRE_STACK_BODY];
    size_t n = pq_wire_body(r, buf, sizeof buf);
    if (n <= sizeof buf) {
        lua_pushlstring(L, buf, n);
    } else {
        luaL_Buffer b;
        char *out = luaL_buffinitsize(L, &b, n);
        pq_wire_body(r, out, n);
        luaL_pushresultsize(&b, n);
    }
}

/* core.wire(req) -> the JSON body of a normalized request (dn and data
 * required; raises for a field of the wrong type). */
static int lwire_wire(lua_State *L)
{
    static const char *const names[] = {"dn", "data", "comment", "user"};
    pq_wire_req r;
    int i, isint, type;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    memset(&r, 0, sizeof r);
    for (i = 0; i < 4; i++) {
        type = lua_getfield(L, 1, names[i]);
        if (type == LUA_TSTRING) r.str[i] = lua_tolstring(L, -1, &r.len[i]);
        else if (type != LUA_TNIL || i < 2) luaL_error(L, "wire: field '%s' is not a string", names[i]);
    }
    if (lua_getfield(L, 1, "hours") != LUA_TNIL) {
        r.has_hours = 1;
        r.hours = (long long)lua_tointegerx(L, -1, &isint);
        if (!isint) luaL_error(L, "wire: field 'hours' is not an integer");
    }
    type = lua_getfield(L, 1, "single_use");
    if (type != LUA_TNIL && type != LUA_TBOOLEAN) luaL_error(L, "wire: field 'single_use' is not a boolean");
    r.has_single = type != LUA_TNIL;
    r.single_use = lua_toboolean(L, -1);
    lwire_push_body(L, &r);
    return 1;
}

void lwire_register(lua_State *L)
{
    lua_pushcfunction(L, lwire_wire);
    lua_setfield(L, -2, "wire");
}
