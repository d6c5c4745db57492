/* prequalify.core signals: lets a batch stop gracefully on SIGINT/SIGTERM.
 * Lua cannot run in a signal handler, so the handler only counts signals in
 * a sig_atomic_t that the batch loop reads between polls. The first signal
 * asks for a graceful stop; the second restores the default action and
 * re-raises, so the process ends at once as the user expects.
 *
 * The counter is process-wide state by nature (a handler has no way to find a
 * Lua state or a userdata), which is why it is a static here and not in a
 * userdata as STYLE.md asks for configuration. */
#include "pq_prefix.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"

static volatile sig_atomic_t lsignal_count = 0;
static volatile sig_atomic_t lsignal_last = 0;
static int lsignal_installed = 0;
static struct sigaction lsignal_old_int, lsignal_old_term;

static void lsignal_handler(int sig)
{
    lsignal_last = sig;
    if (lsignal_count >= 1) {
        /* Second signal: give up at once, the way an unhandled one would. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        raise(sig);
        return;
    }
    lsignal_count = lsignal_count + 1;
}

/* signals_install() -> true | nil, message. Resets the counter. No
 * SA_RESTART: a wait in poll() returns early so the loop sees the flag.
 * A SIGINT that was ignored at install (a background job of a shell without
 * job control) stays ignored, as the shell intended. */
static int lsignal_install(lua_State *L)
{
    struct sigaction sa;
    lsignal_count = 0;
    lsignal_last = 0;
    if (lsignal_installed) {
        lua_pushboolean(L, 1);
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = lsignal_handler;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    if (sigaction(SIGINT, &sa, &lsignal_old_int) != 0) goto fail;
    if (lsignal_old_int.sa_handler == SIG_IGN) sigaction(SIGINT, &lsignal_old_int, NULL);
    if (sigaction(SIGTERM, &sa, &lsignal_old_term) != 0) {
        sigaction(SIGINT, &lsignal_old_int, NULL);
        goto fail;
    }
    lsignal_installed = 1;
    lua_pushboolean(L, 1);
    return 1;
fail:
    lua_pushnil(L);
    lua_pushfstring(L, "cannot install signal handlers: %s", strerror(errno));
    return 2;
}

/* signals_pending() -> count of signals since install, last signal name */
static int lsignal_pending(lua_State *L)
{
    int last = (int)lsignal_last;
    lua_pushinteger(L, (lua_Integer)lsignal_count);
    if (last == SIGINT) lua_pushliteral(L, "SIGINT");
    else if (last == SIGTERM) lua_pushliteral(L, "SIGTERM");
    else lua_pushnil(L);
    return 2;
}

/* signals_restore() -> true: puts back the handlers found at install. */
static int lsignal_restore(lua_State *L)
{
    if (lsignal_installed) {
        sigaction(SIGINT, &lsignal_old_int, NULL);
        sigaction(SIGTERM, &lsignal_old_term, NULL);
        lsignal_installed = 0;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int lsignal_stop_requested(void)
{
    return lsignal_installed && lsignal_count > 0;
}

void lsignal_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"signals_install", lsignal_install},
        {"signals_pending", lsignal_pending},
        {"signals_restore", lsignal_restore},
        {NULL, NULL}
    };
    luaL_setfuncs(L, fns, 0);
}
