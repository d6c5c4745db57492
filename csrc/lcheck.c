/* prequalify.core check: core.check(kind, value) runs one of the plain-C
 * checkers of pq_validate.h (and Base64, GUID) by name, for a single value:
 * a policy rule's identities, the fields of a pre-approval. A whole request
 * is validated by core.validate (lvalidate.c). */
#include "pq_prefix.h"

#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "pq_base64.h"
#include "pq_validate.h"

/* core.check(kind, value) -> true | nil, rule: one checker, for other endpoints. */
static int lcheck_check(lua_State *L)
{
    static const char *const kinds[] = {"dn", "comment", "user", "base64", "guid", NULL};
    char msg[PQ_MSG_MAX];
    size_t n;
    int kind = luaL_checkoption(L, 1, NULL, kinds), ok;
    const char *s = luaL_checklstring(L, 2, &n);
    switch (kind) {
    case 0: ok = pq_check_dn(s, n, msg, sizeof msg) == 0; break;
    case 1: ok = pq_check_comment(s, n, msg, sizeof msg) == 0; break;
    case 2: ok = pq_check_user(s, n, msg, sizeof msg) == 0; break;
    case 3: {
        size_t dlen = 0;
        ok = pq_b64_decode(s, n, NULL, &dlen, msg, sizeof msg) == 0;
        if (ok && dlen == 0) {
            ok = 0;
            snprintf(msg, sizeof msg, "is empty; it must encode at least 1 byte");
        }
        break;
    }
    default:
        ok = pq_is_guid(s, n);
        snprintf(msg, sizeof msg, "is not a braced GUID {8-4-4-4-12}");
        break;
    }
    if (ok) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

void lcheck_register(lua_State *L)
{
    lua_pushcfunction(L, lcheck_check);
    lua_setfield(L, -2, "check");
}
