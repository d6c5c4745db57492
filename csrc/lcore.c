/* prequalify.core: the module entry point. It builds the module table from
 * each part's register function; it is safe to call more than once (the
 * engine guards curl_global_init itself). */
#include "pq_prefix.h"

#include "lcore.h"

#include <lauxlib.h>

int luaopen_prequalify_core(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, PREQUALIFY_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lvalidate_register(L);
    lwire_register(L);
    lbase64_register(L);
    lengine_register(L);
    ldigest_register(L);
    ljournal_register(L);
    lsignal_register(L);
    lfile_register(L);
    lspool_register(L);
    lclock_register(L);
    lpipeline_register(L);
    lexec_register(L);
    lidset_register(L);
    lcheck_register(L);
    return 1;
}
