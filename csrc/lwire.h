/* The wire body as the request bindings push it (lwire.c). */
#ifndef LWIRE_H
#define LWIRE_H

#include <lua.h>

#include "pq_wire.h"

/* Pushes the JSON body of r (pq_wire_body) as a string. */
void lwire_push_body(lua_State *L, const pq_wire_req *r);

#endif
