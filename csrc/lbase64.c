/* Lua binding of Base64 (pq_base64.c): core.b64encode and core.b64decode,
 * for the Lua layer (policy hash sets, JWT payloads). */
#include "pq_prefix.h"

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "pq_base64.h"

static int lbase64_b64encode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, pq_b64_encoded_len(n) + 1);
    luaL_pushresultsize(&b, pq_b64_encode((const unsigned char *)s, n, out));
    return 1;
}

static int lbase64_b64decode(lua_State *L)
{
    char msg[PQ_MSG_MAX];
    size_t n, dlen;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, n / 4 * 3 + 1);
    if (pq_b64_decode(s, n, out, &dlen, msg, sizeof msg) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    luaL_pushresultsize(&b, dlen);
    return 1;
}

void lbase64_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"b64encode", lbase64_b64encode},
        {"b64decode", lbase64_b64decode},
        {NULL, NULL}
    };
    luaL_setfuncs(L, fns, 0);
}
