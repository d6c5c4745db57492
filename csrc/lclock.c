/* prequalify.core clock: core.monotonic() -> seconds from an arbitrary
 * origin; core.time() -> unix seconds with a fraction; core.sleep(s) -> true
 * after the full wait, false when it was cut short or not begun because the
 * handlers of signals_install caught SIGINT or SIGTERM (the run is stopping;
 * after signals_restore sleeps are whole again); core.poll_fd(fd, events,
 * timeout) -> true when the descriptor is ready ("r", "w" or "rw"), false
 * after the timeout (nil: none) or a signal: a wait for a host that has no
 * poll of its own (see docs/EMBEDDING.md). The Lua layer uses these rather
 * than shelling out. */
#include "pq_prefix.h"

#include <limits.h>
#include <poll.h>
#include <string.h>

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

static int lclock_poll_fd(lua_State *L)
{
    struct pollfd pfd;
    const char *ev = luaL_optstring(L, 2, "r");
    lua_Number t = luaL_optnumber(L, 3, -1);
    int ms;
    pfd.fd = (int)luaL_checkinteger(L, 1);
    luaL_argcheck(L, pfd.fd >= 0, 1, "expected a file descriptor (>= 0)");
    luaL_argcheck(L, ev[0] && strspn(ev, "rw") == strlen(ev), 2, "expected events \"r\", \"w\" or \"rw\"");
    luaL_argcheck(L, lua_isnil(L, 3) || lua_isnone(L, 3) || (t >= 0 && t <= 86400), 3,
                  "expected a timeout in seconds (0 to 86400) or nil");
    pfd.events = (short)((strchr(ev, 'r') ? POLLIN : 0) | (strchr(ev, 'w') ? POLLOUT : 0));
    pfd.revents = 0;
    ms = t < 0 ? -1 : (int)(t * 1000.0 + 0.999);
    lua_pushboolean(L, poll(&pfd, 1, ms) > 0);
    return 1;
}

void lclock_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"monotonic", lclock_monotonic},
        {"time", lclock_time},
        {"sleep", lclock_sleep},
        {"poll_fd", lclock_poll_fd},
        {NULL, NULL}
    };
    luaL_setfuncs(L, fns, 0);
}
