/* Request validation as the batch pipeline's binding uses it. */
#ifndef LVALIDATE_H
#define LVALIDATE_H

#include <lua.h>

#include "pq_pipeline.h"

/* Validates the request table at idx (the rules of core.validate) into the
 * item's request fields and wire body. The values it points to are left on
 * the stack (the body on top). 0, or the 3 results of a failure pushed
 * (nil, message, field). */
int lvalidate_item(lua_State *L, int idx, pq_pipeline_item *it);

#endif
