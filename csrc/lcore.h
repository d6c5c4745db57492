/* Registration of each part of prequalify.core into the module table, which
 * is on top of the stack when these are called. */
#ifndef LCORE_H
#define LCORE_H

#include "pq_prefix.h"

#include <lua.h>

#include "pq_common.h"

void lvalidate_register(lua_State *L);
void lwire_register(lua_State *L);
void lbase64_register(lua_State *L);
void lengine_register(lua_State *L);
void ldigest_register(lua_State *L);
void ljournal_register(lua_State *L);
void lsignal_register(lua_State *L);
void lfile_register(lua_State *L);
void lspool_register(lua_State *L);
void lclock_register(lua_State *L);
void lpipeline_register(lua_State *L);
void lexec_register(lua_State *L);
void lidset_register(lua_State *L);
void lcheck_register(lua_State *L);

/* 1 while the handlers of signals_install are in place and have caught
 * SIGINT or SIGTERM (lsignal.c): a wait should end, the run is stopping. */
int lsignal_stop_requested(void);

/* The engine binding's parts the batch pipeline binding uses (lengine.c). */
struct pq_engine;
struct pq_result;
struct pq_engine *lengine_get(lua_State *L, int idx);
struct pq_engine *lengine_peek(lua_State *L, int idx);
void lengine_push_res(lua_State *L, const struct pq_result *res);

/* The identity set of a run (lidset.c), for the pipeline's add_inputs. */
struct pq_idset;
struct pq_idset *lidset_get(lua_State *L, int idx);

PQ_EXPORT int luaopen_prequalify_core(lua_State *L);

#endif
