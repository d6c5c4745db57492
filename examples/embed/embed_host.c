/* embed_host: a host program that embeds Lua 5.4 and links the prequalify
 * core statically. It registers the core with luaL_requiref (so no
 * prequalify/core.so is loaded), points package.path at the Lua layer and
 * runs a build-step script with the remaining arguments in `arg`.
 *
 *   embed_host SCRIPT [ARGS...]
 *
 * The Lua layer is found in $PREQUALIFY_LUA_DIR, else in the directory
 * compiled in as EMBED_LUA_DIR (the source tree's lua/, or share/lua/5.4 of
 * the installed prefix it was built against). The exit status is
 * the script's integer return value (0 when it returns nothing), 1 when it
 * raises an error. */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <prequalify.h>

#ifndef EMBED_LUA_DIR
#define EMBED_LUA_DIR "lua"
#endif

/* Message handler: the error (through __tostring when it has one) plus a
 * traceback. The Lua layer's error values are tables with __tostring. */
static int embed_traceback(lua_State *L)
{
    const char *msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* package.path = DIR/?.lua;DIR/?/init.lua;<the default path> */
static void embed_set_path(lua_State *L, const char *dir)
{
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

/* arg = { [0] = script, ... } as the lua interpreter makes it. */
static void embed_set_arg(lua_State *L, int argc, char **argv)
{
    int i;
    lua_createtable(L, argc - 2, 1);
    for (i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
}

static int embed_run(lua_State *L, int argc, char **argv)
{
    int status, code = 0;
    lua_pushcfunction(L, embed_traceback);
    status = luaL_loadfile(L, argv[1]);
    if (status == LUA_OK) {
        int i;
        for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 1, 1);
    }
    if (status != LUA_OK) {
        fprintf(stderr, "embed_host: %s\n", lua_tostring(L, -1));
        return 1;
    }
    if (lua_isinteger(L, -1)) code = (int)lua_tointeger(L, -1);
    else if (lua_isboolean(L, -1)) code = lua_toboolean(L, -1) ? 0 : 1;
    return code;
}

int main(int argc, char **argv)
{
    lua_State *L;
    const char *dir;
    int code;

    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "embed_host: cannot create a Lua state\n");
        return 1;
    }
    luaL_openlibs(L);
    /* The statically linked core becomes package.loaded["prequalify.core"]:
     * require "prequalify" finds it there and never searches cpath. */
    luaL_requiref(L, "prequalify.core", luaopen_prequalify_core, 0);
    lua_pop(L, 1);
    dir = getenv("PREQUALIFY_LUA_DIR");
    embed_set_path(L, dir && *dir ? dir : EMBED_LUA_DIR);
    embed_set_arg(L, argc, argv);
    code = embed_run(L, argc, argv);
    lua_close(L);
    return code;
}
