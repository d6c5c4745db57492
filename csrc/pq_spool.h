/* pq_spool: the compact binary form of a batch report entry, in plain C (no
 * Lua). Used by lspool.c (a Lua entry table -> record) and by the batch
 * pipeline (an item finished in C -> record).
 *
 * Record: a 4-byte little-endian length, then a zero byte, a 4-byte mask of
 * the fields present and every field of the layout at a fixed place: numbers
 * as 8-byte doubles, strings as a 4-byte length and the bytes, booleans as one
 * byte (2 true, 1 false). An absent field is written as 0 / "" / 0 with its
 * mask bit clear; a nested table ('t') only sets its bit, and its fields
 * follow it until the next 't'. This is what string.pack("<s4") of
 * string.pack("<BI4" .. "n"/"s4"/"B" ...) makes, so Lua reads it back with
 * string.unpack (report.lua, from core.SPOOL_LAYOUT). */
#ifndef PQ_SPOOL_H
#define PQ_SPOOL_H

#include <stddef.h>

enum {
    PQ_SP_INDEX, PQ_SP_LINE, PQ_SP_FILE, PQ_SP_SOURCE, PQ_SP_KEY, PQ_SP_OUTCOME, PQ_SP_REASON,
    PQ_SP_PREVIOUS, PQ_SP_RESUMED, PQ_SP_ATTEMPTS, PQ_SP_STARTED, PQ_SP_ELAPSED, PQ_SP_SERVER_TIME,
    PQ_SP_REQUEST, PQ_SP_DN, PQ_SP_USER, PQ_SP_DATA, PQ_SP_ALGORITHM, PQ_SP_DIGEST_LENGTH,
    PQ_SP_HOURS, PQ_SP_SINGLE_USE, PQ_SP_COMMENT,
    PQ_SP_SERVER, PQ_SP_STATUS, PQ_SP_RESULT, PQ_SP_RESULT_NAME,
    PQ_SP_NFIELDS
};

typedef struct pq_spool_field {
    const char *name;
    char kind; /* 'n' number, 's' string, 'b' boolean, 't' nested table */
} pq_spool_field;

extern const pq_spool_field pq_spool_layout[PQ_SP_NFIELDS];

typedef struct pq_spool_value {
    double num;      /* numbers; booleans as 1 (false) or 2 (true) */
    const char *str;
    size_t len;
    int present;
} pq_spool_value;

/* Bytes of the whole record, its 4-byte length included. */
size_t pq_spool_size(const pq_spool_value v[PQ_SP_NFIELDS]);
/* Writes the record (pq_spool_size bytes) to out. */
void pq_spool_pack(const pq_spool_value v[PQ_SP_NFIELDS], char *out);

#endif
