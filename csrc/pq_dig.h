/* Parsing of signtool /dg ".dig" files: one Base64 digest, possibly behind a
 * UTF-8 BOM and surrounded by whitespace. Plain C, no Lua and no I/O, so the
 * reader can be unit tested and fuzzed on its own. */
#ifndef PQ_DIG_H
#define PQ_DIG_H

#include <stddef.h>

/* A .dig file holds one Base64 digest; anything larger is not one. */
#ifndef PQ_DIG_MAX
#define PQ_DIG_MAX 16384
#endif

/* Parses text[0..n). On success returns 0, stores the decoded digest in out
 * (room for at least n / 4 * 3 bytes) and its length in *outlen, and the
 * offset and length of the Base64 text inside text in *b64_start and
 * *b64_len. On failure returns -1 and writes the reason (no file name) into
 * msg. Any output pointer may be NULL. */
int pq_dig_parse(const char *text, size_t n, unsigned char *out, size_t *outlen,
                 size_t *b64_start, size_t *b64_len, char *msg, size_t cap);

#endif
