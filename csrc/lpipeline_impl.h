/* Internal to the pipeline binding (lpipeline.c, lpipeline_inputs.c): the
 * pipeline userdata and the methods that bring items in. No other file
 * includes this one. */
#ifndef LPIPELINE_IMPL_H
#define LPIPELINE_IMPL_H

#include <lua.h>

#include "pq_key.h"
#include "pq_pipeline.h"

#define LPIPELINE_MT "prequalify.pipeline"

typedef struct lpipeline {
    pq_pipeline *p;  /* NULL when closed */
    pq_engine *engine; /* borrowed: kept alive as user value 1 */
    int events;
    pq_key_maker *keys; /* journal keys of add_inputs; NULL until needed */
} lpipeline;

/* The open pipeline at index 1 whose client is open; raises otherwise. */
lpipeline *lpipeline_check(lua_State *L);

/* p:add(...) and p:add_inputs(...) (lpipeline_inputs.c; see lpipeline.c). */
int lpipeline_add(lua_State *L);
int lpipeline_add_inputs(lua_State *L);

#endif
