/* prequalify.core engine: placeholder until the libcurl engine lands. */
#include "lcore.h"

void lengine_register(lua_State *L)
{
    (void)L;
}
