/* Request validation as the batch pipeline's binding uses it. */
#ifndef LVALIDATE_H
#define LVALIDATE_H

#include <stddef.h>

#include <lua.h>

#include "pq_pipeline.h"

/* Validates the request table at idx (the rules of core.validate) into the
 * item's request fields and wire body. The body is written to buf when it
 * fits in cap bytes, else pushed as a string. The values the item points to
 * are left on the stack. 0, or the 3 results of a failure pushed (nil,
 * message, field). */
/* The registry name of core.Request, the metatable of normalized requests. */
#define LVALIDATE_REQUEST_MT "prequalify.request"

/* What the table at t is: a plain table, a normalized request (its
 * metatable is core.Request) or a table with another metatable. */
enum { LVALIDATE_PLAIN, LVALIDATE_OTHER, LVALIDATE_REQUEST };
int lvalidate_meta(lua_State *L, int t);

int lvalidate_item(lua_State *L, int idx, pq_pipeline_item *it, char *buf, size_t cap);

#endif
