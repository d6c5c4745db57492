/* prequalify.core digests: streaming file and string digests through OpenSSL
 * EVP (sha256/384/512), and the reader for signtool /dg .dig files. Files are
 * read in fixed chunks, never whole, and no Lua is called while reading. */
#include "pq_prefix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include "lcore.h"
#include "pq_base64.h"
#include "pq_dig.h"
#include "pq_key.h"

#ifndef PQ_DIGEST_CHUNK
#define PQ_DIGEST_CHUNK (256 * 1024)
#endif

/* EVP_sha256() and friends make OpenSSL 3 look the algorithm up in the
 * provider on every EVP_Digest/EVP_DigestInit_ex (about 0.9 us, more than
 * hashing a request key). Each Lua state fetches each algorithm once, into a
 * cache that is an upvalue of the digest functions and is freed by its __gc
 * at lua_close (before the module is unloaded): no lock, nothing shared
 * between states in different threads, nothing left at exit. A failed fetch
 * falls back to the implicit one. */
typedef struct ldigest_cache {
    const EVP_MD *md[3];
    int tried[3];
    pq_key_maker *key; /* reused by request_key */
} ldigest_cache;

static int ldigest_cache_gc(lua_State *L)
{
    ldigest_cache *c = (ldigest_cache *)luaL_checkudata(L, 1, "prequalify.digest_cache");
    int i;
    for (i = 0; i < 3; i++) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        EVP_MD_free((EVP_MD *)c->md[i]);
#endif
        c->md[i] = NULL;
    }
    pq_key_free(c->key);
    c->key = NULL;
    return 0;
}

/* Algorithm i (0 sha256, 1 sha384, 2 sha512), fetched once into the cache. */
static const EVP_MD *ldigest_md_at(lua_State *L, int i)
{
    ldigest_cache *c = (ldigest_cache *)lua_touserdata(L, lua_upvalueindex(1));
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    static const char *const fetch_names[] = {"SHA256", "SHA384", "SHA512"};
    if (c && !c->tried[i]) {
        c->tried[i] = 1;
        c->md[i] = EVP_MD_fetch(NULL, fetch_names[i], NULL);
    }
#endif
    if (c && c->md[i]) return c->md[i];
    switch (i) {
    case 1: return EVP_sha384();
    case 2: return EVP_sha512();
    default: return EVP_sha256();
    }
}

/* The algorithm named by argument idx (default sha256). */
static const EVP_MD *ldigest_md(lua_State *L, int idx)
{
    static const char *const names[] = {"sha256", "sha384", "sha512", NULL};
    return ldigest_md_at(L, luaL_checkoption(L, idx, "sha256", names));
}

/* Pushes base64, raw bytes: the two results of every digest function. */
static int ldigest_push(lua_State *L, const unsigned char *md, unsigned int n)
{
    char b64[EVP_MAX_MD_SIZE * 2];
    pq_b64_encode(md, n, b64);
    lua_pushstring(L, b64);
    lua_pushlstring(L, (const char *)md, n);
    return 2;
}

static int ldigest_fail(lua_State *L, const char *path, const char *why)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, why);
    return 2;
}

/* Opens path for reading; NULL plus a pushed error. Only regular files: a
 * directory, a device such as /dev/zero or a FIFO would block or never end.
 * O_NONBLOCK keeps the open itself from waiting for a FIFO's writer; the
 * type is read from the descriptor, so a swap after a check cannot slip in. */
static FILE *ldigest_open(lua_State *L, const char *path, int *nret)
{
    struct stat st;
    FILE *f;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), flags;
    if (fd < 0) {
        *nret = ldigest_fail(L, path, errno == ENOENT ? "no such file"
                                      : errno == EACCES ? "permission denied (cannot read)" : strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        *nret = ldigest_fail(L, path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        *nret = ldigest_fail(L, path, S_ISDIR(st.st_mode) ? "is a directory, not a file"
                                      : "is not a regular file (a device, FIFO or socket); refused");
        return NULL;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 || (f = fdopen(fd, "rb")) == NULL) {
        *nret = ldigest_fail(L, path, strerror(errno));
        close(fd);
        return NULL;
    }
    return f;
}

/* digest_file(path [, alg]) -> base64, raw | nil, message */
static int ldigest_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const EVP_MD *md = ldigest_md(L, 2);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    int nret = 0, ok;
    size_t got;
    unsigned char *buf;
    EVP_MD_CTX *ctx;
    FILE *f;
    /* Allocate (which may raise) before opening, so a raise cannot leak f. */
    buf = (unsigned char *)lua_newuserdatauv(L, PQ_DIGEST_CHUNK, 0);
    f = ldigest_open(L, path, &nret);
    if (!f) return nret;
    ctx = EVP_MD_CTX_new();
    ok = ctx && EVP_DigestInit_ex(ctx, md, NULL);
    while (ok && (got = fread(buf, 1, PQ_DIGEST_CHUNK, f)) > 0)
        ok = EVP_DigestUpdate(ctx, buf, got);
    if (ok && ferror(f)) {
        EVP_MD_CTX_free(ctx);
        fclose(f);
        return ldigest_fail(L, path, "read error");
    }
    ok = ok && EVP_DigestFinal_ex(ctx, out, &outlen);
    EVP_MD_CTX_free(ctx);
    fclose(f);
    if (!ok) return ldigest_fail(L, path, "digest computation failed in OpenSSL");
    return ldigest_push(L, out, outlen);
}

/* digest_data(bytes [, alg]) -> base64, raw */
static int ldigest_data(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const EVP_MD *md = ldigest_md(L, 2);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    if (!EVP_Digest(s, n, out, &outlen, md, NULL))
        return luaL_error(L, "digest computation failed in OpenSSL");
    return ldigest_push(L, out, outlen);
}

/* A string field of the request at index 1, left on the stack so that it
 * stays alive until the key is made (an __index may have made it). */
static const char *ldigest_key_field(lua_State *L, const char *name, size_t *n)
{
    if (lua_getfield(L, 1, name) != LUA_TSTRING) luaL_error(L, "request_key: field '%s' is not a string", name);
    return lua_tolstring(L, -1, n);
}

/* request_key(req) -> key, short key: the stable identity of a normalized
 * request for the journal (pq_key.h has the exact bytes) - what the server
 * matches at signing time, not the terms (hours, single-use, comment); and
 * its first 8 bytes as a little-endian integer for the in-memory index. */
static int ldigest_request_key(lua_State *L)
{
    ldigest_cache *c = (ldigest_cache *)lua_touserdata(L, lua_upvalueindex(1));
    const char *dn, *data, *user;
    size_t dn_n, data_n, user_n;
    char key[PQ_KEY_LEN + 1];
    uint64_t shortkey;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (!c->key && !(c->key = pq_key_new())) return luaL_error(L, "out of memory");
    dn = ldigest_key_field(L, "dn", &dn_n);
    data = ldigest_key_field(L, "data", &data_n);
    user = ldigest_key_field(L, "user", &user_n);
    if (pq_key_make(c->key, dn, dn_n, data, data_n, user, user_n, key, &shortkey) != 0)
        return luaL_error(L, "digest computation failed in OpenSSL");
    lua_pushlstring(L, key, PQ_KEY_LEN);
    lua_pushinteger(L, (lua_Integer)shortkey);
    return 2;
}

/* dig_file(path) -> base64, raw | nil, message. Accepts a UTF-8 BOM and
 * surrounding whitespace, as signtool and editors leave them. */
static int ldigest_dig_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char msg[320];
    char *text;
    unsigned char *raw;
    size_t n, start = 0, len = 0, rawlen = 0;
    int nret = 0;
    FILE *f;
    /* Scratch space owned by Lua (tens of KB: not for the C stack), taken
     * before the open so that a raise cannot leak the FILE. */
    text = (char *)lua_newuserdatauv(L, (PQ_DIG_MAX + 1) + PQ_DIG_MAX, 0);
    raw = (unsigned char *)text + PQ_DIG_MAX + 1;
    f = ldigest_open(L, path, &nret);
    if (!f) return nret;
    n = fread(text, 1, PQ_DIG_MAX + 1, f);
    if (ferror(f)) {
        fclose(f);
        return ldigest_fail(L, path, "read error");
    }
    fclose(f);
    /* The parsing is plain C in pq_dig.c so that it can be fuzzed. */
    if (pq_dig_parse(text, n, raw, &rawlen, &start, &len, msg, sizeof msg) != 0)
        return ldigest_fail(L, path, msg);
    lua_pushlstring(L, text + start, len);
    lua_pushlstring(L, (const char *)raw, rawlen);
    return 2;
}

void ldigest_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"digest_file", ldigest_file},
        {"digest_data", ldigest_data},
        {"dig_file", ldigest_dig_file},
        {"request_key", ldigest_request_key},
        {NULL, NULL}
    };
    ldigest_cache *c = (ldigest_cache *)lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    if (luaL_newmetatable(L, "prequalify.digest_cache")) {
        lua_pushcfunction(L, ldigest_cache_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    luaL_setfuncs(L, fns, 1);
}
