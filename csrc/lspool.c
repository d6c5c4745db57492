/* prequalify.core spool records: the compact binary form of a batch report
 * entry (see lua/prequalify/report.lua). A batch spools one entry per item;
 * packing it field by field in Lua (one string.pack over some thirty values,
 * each read and type-checked by the VM) was the largest single cost of an
 * item on the batch path. Here one C call reads the fields and writes the
 * record.
 *
 * Record: a 4-byte little-endian length, then a zero byte, a 4-byte mask of
 * the fields present and every field of the layout at a fixed place: numbers
 * as 8-byte doubles, strings as a 4-byte length and the bytes, booleans as one
 * byte (2 true, 1 false). An absent field is written as 0 / "" / 0 with its
 * mask bit clear. This is exactly what string.pack("<s4") of
 * string.pack("<BI4" .. "n"/"s4"/"B" ...) makes, so that Lua reads it back
 * with string.unpack. The layout is exported as core.SPOOL_LAYOUT so the
 * reader is generated from the same list. */
#include "pq_prefix.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lcore.h"

typedef struct lspool_field {
    const char *name;
    char kind; /* 'n' number, 's' string, 'b' boolean, 't' nested table */
} lspool_field;

/* Top-level fields, then each nested table's marker and its fields, in mask
 * bit order. A nested table's fields follow its 't' entry until the next 't'
 * or the end. */
static const lspool_field lspool_layout[] = {
    {"index", 'n'}, {"line", 'n'}, {"file", 's'}, {"source", 's'}, {"key", 's'},
    {"outcome", 's'}, {"reason", 's'}, {"previous", 's'}, {"resumed", 'b'},
    {"attempts", 'n'}, {"started", 'n'}, {"elapsed", 'n'}, {"server_time", 'n'},
    {"request", 't'},
    {"dn", 's'}, {"user", 's'}, {"data", 's'}, {"algorithm", 's'},
    {"digest_length", 'n'}, {"hours", 'n'}, {"single_use", 'b'}, {"comment", 's'},
    {"server", 't'},
    {"status", 'n'}, {"result", 'n'}, {"result_name", 's'},
};
#define LSPOOL_NFIELDS (sizeof lspool_layout / sizeof lspool_layout[0])
/* Each field has one bit of the record's 32-bit mask. */
PQ_STATIC_ASSERT(LSPOOL_NFIELDS <= 32, spool_fields_fit_the_mask);

/* Entries with any of these go through JSON (they hold nested lists). */
static const char *const lspool_never[] = {"error", "trail", "sent"};

typedef struct lspool_value {
    double num;
    const char *str;
    size_t len;
    int present;
} lspool_value;

static void lspool_put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v & 0xff);
    p[1] = (char)((v >> 8) & 0xff);
    p[2] = (char)((v >> 16) & 0xff);
    p[3] = (char)((v >> 24) & 0xff);
}

static void lspool_put_double(char *p, double d)
{
    uint64_t u;
    int i;
    memcpy(&u, &d, sizeof u);
    for (i = 0; i < 8; i++) p[i] = (char)((u >> (8 * i)) & 0xff);
}

/* Reads field `f` of the table at `t` into `v` (the value stays on the stack
 * so that a string's bytes stay anchored); 0 when the record cannot be
 * compact (a value of another type, NaN or an infinity). */
static int lspool_read(lua_State *L, int t, const lspool_field *f, lspool_value *v)
{
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

/* core.spool_record(entry [, file]) -> record | nil: nil when the entry
 * needs JSON. With a file (an io library handle), the record is written to
 * it instead and the result is true (no Lua string is made for it). */
static int lspool_record(lua_State *L)
{
    lspool_value vals[LSPOOL_NFIELDS];
    size_t i, size = 4 + 1 + 4;
    uint32_t mask = 0;
    int table = 1; /* the table the current fields come from */
    char *out, *p;
    luaL_Buffer b;

    FILE *file = NULL;

    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2)) {
        luaL_Stream *st = (luaL_Stream *)luaL_checkudata(L, 2, LUA_FILEHANDLE);
        if (st->closef == NULL) return luaL_error(L, "attempt to use a closed file");
        file = st->f;
    }
    lua_settop(L, 1);
    for (i = 0; i < sizeof lspool_never / sizeof lspool_never[0]; i++) {
        if (lua_getfield(L, 1, lspool_never[i]) != LUA_TNIL) return 0;
        lua_pop(L, 1);
    }
    luaL_checkstack(L, (int)LSPOOL_NFIELDS + 4, "spool record");
    for (i = 0; i < LSPOOL_NFIELDS; i++) {
        const lspool_field *f = &lspool_layout[i];
        lspool_value *v = &vals[i];
        if (f->kind == 't') {
            int type = lua_getfield(L, 1, f->name);
            v->present = type != LUA_TNIL;
            if (v->present && (type != LUA_TTABLE || lua_getmetatable(L, -1))) return 0;
            table = v->present ? lua_gettop(L) : 0;
            if (v->present) mask |= (uint32_t)1 << i;
            continue;
        }
        if (table == 0) {
            v->present = 0;
        } else if (!lspool_read(L, table, f, v)) {
            return 0;
        }
        if (v->present) mask |= (uint32_t)1 << i;
        size += f->kind == 'n' ? 8 : f->kind == 's' ? 4 + (v->present ? v->len : 0) : 1;
    }

    out = luaL_buffinitsize(L, &b, size);
    p = out;
    lspool_put_u32(p, (uint32_t)(size - 4));
    p[4] = 0;
    lspool_put_u32(p + 5, mask);
    p += 9;
    for (i = 0; i < LSPOOL_NFIELDS; i++) {
        const lspool_field *f = &lspool_layout[i];
        const lspool_value *v = &vals[i];
        switch (f->kind) {
        case 'n':
            lspool_put_double(p, v->present ? v->num : 0.0);
            p += 8;
            break;
        case 's':
            lspool_put_u32(p, (uint32_t)(v->present ? v->len : 0));
            if (v->present && v->len) memcpy(p + 4, v->str, v->len);
            p += 4 + (v->present ? v->len : 0);
            break;
        case 'b':
            *p++ = (char)(v->present ? (int)v->num : 0);
            break;
        default:
            break;
        }
    }
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
    lua_createtable(L, (int)LSPOOL_NFIELDS, 0);
    for (i = 0; i < LSPOOL_NFIELDS; i++) {
        char kind = lspool_layout[i].kind;
        lua_createtable(L, 2, 0);
        lua_pushstring(L, lspool_layout[i].name);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, &kind, 1);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "SPOOL_LAYOUT");
}
