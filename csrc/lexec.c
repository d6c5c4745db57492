/* prequalify.core exec: replaces the process image with another program.
 * `prequalify emulator` uses it so that python takes the CLI's place: a
 * SIGTERM or SIGINT sent to the pid the user started reaches the emulator
 * itself, and no child is left running when the parent is killed. */
#include "pq_prefix.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"

#ifndef LEXEC_MAX_ARGS
#define LEXEC_MAX_ARGS 64
#endif

/* exec(argv) -> nil, message: argv is a list of strings, argv[1] looked up
 * in PATH. Returns only when the program could not be started. */
static int lexec_exec(lua_State *L)
{
    const char *argv[LEXEC_MAX_ARGS + 1];
    lua_Integer i, n;
    int err;
    luaL_checktype(L, 1, LUA_TTABLE);
    n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1 && n <= LEXEC_MAX_ARGS, 1, "expected a list of 1 to 64 strings");
    for (i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "expected a list of strings");
        argv[i - 1] = lua_tostring(L, -1); /* anchored by the table */
        lua_pop(L, 1);
    }
    argv[n] = NULL;
    execvp(argv[0], (char *const *)argv);
    err = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot run %s: %s", argv[0], strerror(err));
    return 2;
}

void lexec_register(lua_State *L)
{
    lua_pushcfunction(L, lexec_exec);
    lua_setfield(L, -2, "exec");
}
