/* The journal handle as the batch pipeline writes to it. */
#ifndef LJOURNAL_H
#define LJOURNAL_H

#include <lua.h>

#include "pq_idset.h"
#include "pq_pipeline.h"

/* Fills `out` for the open journal userdata at idx (raises when it is not
 * one, or closed). The userdata must outlive the pipeline's use of it. */
void ljournal_sink(lua_State *L, int idx, pq_pipeline_journal *out);

/* The short keys (pq_key.h) of the items earlier runs recorded in the open
 * journal userdata at idx, claimed with `know`; NULL when there are none.
 * Raises when it is not an open journal. */
const pq_idset *ljournal_known(lua_State *L, int idx);

#endif
