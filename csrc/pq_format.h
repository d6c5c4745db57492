/* pq_format: numbers as JSON text for the records the batch pipeline writes
 * (pq_records.c), without snprintf: integers, and doubles exactly as
 * "%.14g" writes them (the format lua-cjson and Lua's tostring use), so a
 * journal record has the same bytes whichever side writes it. */
#ifndef PQ_FORMAT_H
#define PQ_FORMAT_H

#include <stddef.h>

/* Room for any number either function writes, its NUL included. */
#define PQ_FORMAT_MAX 32

/* Writes v in decimal and a NUL at out; the length (no NUL). */
size_t pq_format_int(long long v, char *out);
/* Writes d as snprintf(out, PQ_FORMAT_MAX, "%.14g", d) would, byte for
 * byte; the length (no NUL). Integers and fractions from 1 to 1e14 (line
 * numbers, Unix times) are written here; other values by snprintf. */
size_t pq_format_g14(double d, char *out);

#endif
