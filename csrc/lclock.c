/* prequalify.core clock: core.monotonic() -> seconds from an arbitrary
 * origin; core.time() -> unix seconds with a fraction; core.sleep(s) -> true
 * after the full wait, false when it was cut short or not begun because the
 * handlers of signals_install caught SIGINT or SIGTERM (the run is stopping;
 * after signals_restore sleeps are whole again). The Lua layer uses these
 * rather than shelling out. */
#include "pq_prefix.h"

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "pq_clock.h"

static int lclock_monotonic(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)pq_clock_monotonic());
    return 1;
}

static int lclock_time(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)pq_clock_realtime());
    return 1;
}

static int lclock_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s <= 86400, 1, "expected seconds (0 to 86400)");
    lua_pushboolean(L, pq_clock_sleep((double)s, lsignal_stop_requested));
    return 1;
}

void lclock_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"monotonic", lclock_monotonic},
        {"time", lclock_time},
        {"sleep", lclock_sleep},
        {NULL, NULL}
    };
    luaL_setfuncs(L, fns, 0);
}
