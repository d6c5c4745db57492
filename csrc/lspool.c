/* prequalify.core spool records: core.spool_record packs a batch report entry
 * (a Lua table) into the compact record of pq_spool.h, and core.SPOOL_LAYOUT
 * names the layout so that report.lua reads records back. lspool_read_entry
 * is also what the pipeline binding uses to read an item's report fields.
 * core.spool_open makes the spool file itself. */
#include "pq_prefix.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
        int ok = fwrite(out, 1, size, file) == size;
        int err = errno;
        luaL_pushresultsize(&b, 0); /* releases the buffer; "" needs no allocation */
        if (!ok) {
            errno = err;
            return luaL_fileresult(L, 0, NULL);
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    luaL_pushresultsize(&b, size);
    return 1;
}

/* A spool file: an io library handle (luaL_Stream first, as the io library
 * reads it) with its own stdio buffer. glibc ignores the size given to
 * setvbuf without a buffer and writes 4 KiB at a time; records are ~50
 * bytes, so a 64 KiB buffer is one write(2) per thousand-odd records. */
#define SPOOL_BUFFER 65536
typedef struct {
    luaL_Stream st;
    char *buf;
} spool_stream;

/* The closer of a spool file: the stream, then its buffer. */
static int lspool_close(lua_State *L)
{
    spool_stream *sp = (spool_stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    int ok;
    errno = 0;
    ok = fclose(sp->st.f) == 0;
    free(sp->buf);
    sp->buf = NULL;
    return luaL_fileresult(L, ok, NULL);
}

/* core.spool_open(dir) -> file, path | nil, message
 * A new file in dir, named prequalify-XXXXXXXX.spool, made as mkstemp does
 * (O_CREAT | O_EXCL, mode 0600, retried on a name taken) but by open(2), so
 * that spec/faultfs can fail its writes by that suffix; it is unlinked at
 * once, so that nothing is left behind even after a SIGKILL. The file is an
 * io library handle open for reading and writing; path only names it in
 * messages. */
static int lspool_open(lua_State *L)
{
    static unsigned long serial;
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz012345";
    const char *dir = luaL_checkstring(L, 1);
    spool_stream *sp;
    luaL_Stream *st;
    struct timespec ts;
    const char *path = NULL;
    int fd = -1, tries, err = 0;
    if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TNIL) return luaL_error(L, "the io library is not loaded");
    lua_pop(L, 1);
    /* Created closed: an error below leaves it consistent. */
    sp = (spool_stream *)lua_newuserdatauv(L, sizeof *sp, 0);
    sp->buf = NULL;
    st = &sp->st;
    st->f = NULL;
    st->closef = NULL;
    luaL_setmetatable(L, LUA_FILEHANDLE);
    clock_gettime(CLOCK_REALTIME, &ts);
    for (tries = 0; tries < 64 && fd < 0; tries++) {
        char name[8];
        uint64_t x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid() << 32 ^
                     (uint64_t)ts.tv_sec ^ (uint64_t)++serial * 0xbf58476d1ce4e5b9ULL;
        int i;
        for (i = 0; i < 8; i++, x >>= 5) name[i] = letters[x & 31];
        lua_settop(L, 2);
        path = lua_pushfstring(L, "%s/prequalify-%s.spool", dir, lua_pushlstring(L, name, 8));
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        err = errno;
        if (fd < 0 && err != EEXIST) break;
    }
    if (fd >= 0) {
        (void)unlink(path);
        st->f = fdopen(fd, "w+b");
        err = errno;
        if (st->f) {
            st->closef = &lspool_close;
            /* Without the buffer the stream keeps stdio's own. */
            sp->buf = (char *)malloc(SPOOL_BUFFER);
            if (sp->buf && setvbuf(st->f, sp->buf, _IOFBF, SPOOL_BUFFER) != 0) {
                free(sp->buf);
                sp->buf = NULL;
            }
            lua_pushvalue(L, 2);
            lua_pushstring(L, path);
            return 2;
        }
        (void)close(fd);
    }
    lua_pushnil(L);
    lua_pushfstring(L, "report spool %s: cannot create it: %s", path, strerror(err));
    return 2;
}

void lspool_register(lua_State *L)
{
    size_t i;
    lua_pushcfunction(L, lspool_record);
    lua_setfield(L, -2, "spool_record");
    lua_pushcfunction(L, lspool_open);
    lua_setfield(L, -2, "spool_open");
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
