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

/* The layout, in record order, written once: X(id, name, kind) for each
 * field; kind is 'n' number, 's' string, 'b' boolean, 't' nested table.
 * It makes the PQ_SP_<id> indices, pq_spool_layout and the packing code. */
#define PQ_SPOOL_FIELDS(X)                                                                          \
    X(INDEX, "index", 'n') X(LINE, "line", 'n') X(FILE, "file", 's') X(SOURCE, "source", 's')       \
    X(KEY, "key", 's') X(OUTCOME, "outcome", 's') X(REASON, "reason", 's')                          \
    X(PREVIOUS, "previous", 's') X(RESUMED, "resumed", 'b') X(ATTEMPTS, "attempts", 'n')            \
    X(STARTED, "started", 'n') X(ELAPSED, "elapsed", 'n') X(SERVER_TIME, "server_time", 'n')        \
    X(REQUEST, "request", 't') X(DN, "dn", 's') X(USER, "user", 's') X(DATA, "data", 's')           \
    X(ALGORITHM, "algorithm", 's') X(DIGEST_LENGTH, "digest_length", 'n') X(HOURS, "hours", 'n')    \
    X(SINGLE_USE, "single_use", 'b') X(COMMENT, "comment", 's')                                     \
    X(SERVER, "server", 't') X(STATUS, "status", 'n') X(RESULT, "result", 'n')                      \
    X(RESULT_NAME, "result_name", 's')

#define PQ_SPOOL_ENUM(id, name, kind) PQ_SP_##id,
enum { PQ_SPOOL_FIELDS(PQ_SPOOL_ENUM) PQ_SP_NFIELDS };
#undef PQ_SPOOL_ENUM

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
