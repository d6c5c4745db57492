/* prequalify's C core for programs that embed Lua 5.4: register it before
 * any script runs, and `require "prequalify"` finds it in package.loaded
 * (no prequalify/core.so needed):
 *
 *     luaL_requiref(L, "prequalify.core", luaopen_prequalify_core, 0);
 *     lua_pop(L, 1);
 *
 * Link libprequalify_core.a with libcurl, OpenSSL's libssl and libcrypto
 * (pkg-config prequalify, or CMake find_package(prequalify) and the target
 * prequalify::core). The Lua layer is installed in share/lua/5.4. See
 * docs/EMBEDDING.md. */
#ifndef PREQUALIFY_H
#define PREQUALIFY_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opens prequalify.core: pushes its module table. */
int luaopen_prequalify_core(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
