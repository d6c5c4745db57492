/* Reading a report entry (a Lua table) into pq_spool values. */
#ifndef LSPOOL_H
#define LSPOOL_H

#include <lua.h>

#include "pq_spool.h"

/* Reads the entry table at idx into vals, leaving its values on the stack
 * (they anchor the strings; the caller pops them). 0 when the entry needs
 * JSON (a list field, a value of another type, NaN or an infinity). */
int lspool_read_entry(lua_State *L, int idx, pq_spool_value vals[PQ_SP_NFIELDS]);

#endif
