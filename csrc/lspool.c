/* prequalify.core spool records: core.spool_record packs a batch report entry
 * (a Lua table) into the compact record of pq_spool.h, and core.SPOOL_LAYOUT
 * names the layout so that report.lua reads records back. lspool_read_entry
 * is also what the pipeline binding uses to read an item's report fields. */
#include "pq_prefix.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lcore.h"
#include "lspool.h"

/* Entries with any of these go through JSON (they hold nested lists). */
static const char *const lspool_never[] = {"error", "trail", "sent"};

/* Reads field `i` of the table at `t` into `v` (the value stays on the stack
 * so that a string's bytes stay anchored); 0 when the record cannot be
 * compact (a value of another type, NaN or an infinity). */
static int lspool_read(lua_State *L, int t, size_t i, pq_spool_value *v)
{
    const pq_spool_field *f = &pq_spool_layout[i];
    int type = lua_getfield(L, t, f->name);
    v->present = type != LUA_TNIL;
    if (!v->present) return 1;
    switch (f->kind) {
    case 'n':
        if (type != LUA_TNUMBER) return 0;
        v->num = (double)lua_tonumber(L, -1);
        return v->num > -HUGE_VAL && v->num < HUGE_VAL;
    case 's':
        if (type != LUA_TSTRING) return 0;
        v->str = lua_tolstring(L, -1, &v->len);
        return v->len <= UINT32_MAX;
    default:
        if (type != LUA_TBOOLEAN) return 0;
        v->num = lua_toboolean(L, -1) ? 2 : 1;
        return 1;
    }
}

int lspool_read_entry(lua_State *L, int idx, pq_spool_value vals[PQ_SP_NFIELDS])
{
    size_t i;
    int table;
    idx = lua_absindex(L, idx);
    table = idx; /* the table the current fields come from */
    for (i = 0; i < sizeof lspool_never / sizeof lspool_never[0]; i++) {
        int absent = lua_getfield(L, idx, lspool_never[i]) == LUA_TNIL;
        lua_pop(L, 1);
        if (!absent) return 0;
    }
    luaL_checkstack(L, PQ_SP_NFIELDS + 4, "spool record");
    for (i = 0; i < PQ_SP_NFIELDS; i++) {
        pq_spool_value *v = &vals[i];
        if (pq_spool_layout[i].kind == 't') {
            int type = lua_getfield(L, idx, pq_spool_layout[i].name);
            v->present = type != LUA_TNIL;
            if (v->present && (type != LUA_TTABLE || lua_getmetatable(L, -1))) return 0;
            table = v->present ? lua_gettop(L) : 0;
            continue;
        }
        if (table == 0) v->present = 0;
        else if (!lspool_read(L, table, i, v)) return 0;
    }
    return 1;
}

/* core.spool_record(entry [, file]) -> record | nil: nil when the entry
 * needs JSON. With a file (an io library handle), the record is written to
 * it instead and the result is true (no Lua string is made for it). */
static int lspool_record(lua_State *L)
{
    pq_spool_value vals[PQ_SP_NFIELDS];
    size_t size;
    luaL_Buffer b;
    char *out;
    FILE *file = NULL;

    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2)) {
        luaL_Stream *st = (luaL_Stream *)luaL_checkudata(L, 2, LUA_FILEHANDLE);
        if (st->closef == NULL) return luaL_error(L, "attempt to use a closed file");
        file = st->f;
    }
    lua_settop(L, 1);
    if (!lspool_read_entry(L, 1, vals)) return 0;
    size = pq_spool_size(vals);
    out = luaL_buffinitsize(L, &b, size);
    pq_spool_pack(vals, out);
    if (file) {
        /* A failed write sets the stream's error flag, as f:write would. */
        (void)fwrite(out, 1, size, file);
        luaL_pushresultsize(&b, 0); /* releases the buffer; "" needs no allocation */
        lua_pushboolean(L, 1);
        return 1;
    }
    luaL_pushresultsize(&b, size);
    return 1;
}

void lspool_register(lua_State *L)
{
    size_t i;
    lua_pushcfunction(L, lspool_record);
    lua_setfield(L, -2, "spool_record");
    /* SPOOL_LAYOUT = { {name, kind}, ... } in mask bit order */
    lua_createtable(L, PQ_SP_NFIELDS, 0);
    for (i = 0; i < PQ_SP_NFIELDS; i++) {
        char kind = pq_spool_layout[i].kind;
        lua_createtable(L, 2, 0);
        lua_pushstring(L, pq_spool_layout[i].name);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, &kind, 1);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "SPOOL_LAYOUT");
}
