/* prequalify.core journal: an append-only file handle for the batch journal.
 * Records are buffered in C, written with write(2) on an O_APPEND descriptor
 * and made durable with fsync(2) when the batch asks (in small groups). The
 * file is locked with flock(2) so that two runs cannot share a journal, and a
 * newly created file has its directory synced so that the entry survives a
 * crash too. The handle also holds the short keys of the items earlier runs
 * recorded (`know`), so that the pipeline can tell an item the journal has
 * never seen without asking Lua. Also isatty(), which the progress display
 * needs. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* flock(2) on glibc */
#endif
#include "pq_prefix.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lcore.h"
#include "ljournal.h"
#include "pq_fs.h"
#include "pq_idset.h"

#define LJOURNAL_MT "prequalify.journal"

/* Buffered bytes that trigger a write(2) before the caller asks for one. */
#ifndef PQ_JOURNAL_BUFFER
#define PQ_JOURNAL_BUFFER (64 * 1024)
#endif

typedef struct ljournal {
    int fd;          /* -1 when closed */
    char *buf;
    size_t len, cap;
    long unsynced; /* records written since the last fsync */
    char *path;
    pq_idset *known; /* short keys of earlier runs' items; NULL: none yet */
} ljournal;

static ljournal *ljournal_check(lua_State *L)
{
    ljournal *j = (ljournal *)luaL_checkudata(L, 1, LJOURNAL_MT);
    if (j->fd < 0) luaL_error(L, "attempt to use a closed journal");
    return j;
}

static int ljournal_fail(lua_State *L, const char *path, const char *what, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "journal %s: %s: %s", path, what, strerror(err));
    return 2;
}

/* Writes the whole buffer; 0 or an errno value. What was not written stays
 * buffered, so a retry does not lose it. */
static int ljournal_drain(ljournal *j)
{
    size_t off = 0;
    int err = pq_fs_write_all(j->fd, j->buf, j->len, &off);
    memmove(j->buf, j->buf + off, j->len - off);
    j->len -= off;
    return err;
}

/* Appends one record: buffered, written out when the buffer is full; a
 * record larger than the buffer goes straight out. 0 or an errno value. */
static int ljournal_append(ljournal *j, const char *s, size_t n)
{
    int err;
    if (j->len + n > j->cap && (err = ljournal_drain(j)) != 0) return err;
    if (n > j->cap) {
        if ((err = pq_fs_write_all(j->fd, s, n, NULL)) != 0) return err;
    } else {
        memcpy(j->buf + j->len, s, n);
        j->len += n;
    }
    j->unsynced++;
    return 0;
}

/* Drains the buffer and fsyncs the file; 0 or an errno value. */
static int ljournal_fsync(ljournal *j)
{
    int err = ljournal_drain(j);
    if (err) return err;
    if (fsync(j->fd) != 0 && errno != EINVAL) return errno;
    j->unsynced = 0;
    return 0;
}

static void ljournal_release(ljournal *j)
{
    if (j->fd >= 0) {
        if (j->len) ljournal_drain(j);
        fsync(j->fd);
        close(j->fd); /* also drops the flock */
        j->fd = -1;
    }
    free(j->buf);
    free(j->path);
    pq_idset_free(j->known);
    j->known = NULL;
    j->buf = j->path = NULL;
    j->len = j->cap = 0;
}

/* journal_open(path) -> journal | nil, message */
static int ljournal_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int created = 0, fd, err;
    struct stat st;
    /* Created closed, so that an allocation error leaves it consistent. */
    ljournal *j = (ljournal *)lua_newuserdatauv(L, sizeof *j, 0);
    j->fd = -1;
    j->buf = j->path = NULL;
    j->len = j->cap = 0;
    j->unsynced = 0;
    j->known = NULL;
    luaL_setmetatable(L, LJOURNAL_MT);

    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        created = fd >= 0;
        if (fd < 0 && errno == EEXIST) fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    }
    if (fd < 0) {
        err = errno;
        if (err == EISDIR) {
            lua_pushnil(L);
            lua_pushfstring(L, "journal %s: is a directory, not a file", path);
            return 2;
        }
        return ljournal_fail(L, path, "cannot open", err);
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "journal %s: not a regular file", path);
        return 2;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err = errno;
        close(fd);
        if (err == EWOULDBLOCK) {
            lua_pushnil(L);
            lua_pushfstring(L, "journal %s is in use by another run (locked)", path);
            return 2;
        }
        return ljournal_fail(L, path, "cannot lock", err);
    }
    if (created && (err = pq_fs_sync_dir(path)) != 0) {
        close(fd);
        return ljournal_fail(L, path, "cannot sync its directory", err);
    }
    j->path = strdup(path);
    j->buf = (char *)malloc(PQ_JOURNAL_BUFFER);
    if (!j->path || !j->buf) {
        close(fd);
        return luaL_error(L, "out of memory (journal)");
    }
    j->cap = PQ_JOURNAL_BUFFER;
    j->fd = fd;
    lua_pushboolean(L, created);
    return 2;
}

/* j:write(s) -> true | nil, message. Buffered; written out when full. */
static int ljournal_write(lua_State *L)
{
    ljournal *j = ljournal_check(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    int err = ljournal_append(j, s, n);
    if (err) return ljournal_fail(L, j->path, "write failed", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* j:flush() -> true | nil, message: hands buffered records to the kernel. */
static int ljournal_flush(lua_State *L)
{
    ljournal *j = ljournal_check(L);
    int err = ljournal_drain(j);
    if (err) return ljournal_fail(L, j->path, "write failed", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* j:sync() -> true | nil, message: flush, then fsync to stable storage. */
static int ljournal_sync(lua_State *L)
{
    ljournal *j = ljournal_check(L);
    int err = ljournal_fsync(j);
    if (err) return ljournal_fail(L, j->path, "write or fsync failed", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* j:unsynced() -> records written (by Lua or the pipeline) since the last sync */
static int ljournal_unsynced(lua_State *L)
{
    ljournal *j = ljournal_check(L);
    lua_pushinteger(L, (lua_Integer)j->unsynced);
    return 1;
}

/* j:know(shortkey): an earlier run recorded the item with this short key. */
static int ljournal_know(lua_State *L)
{
    ljournal *j = ljournal_check(L);
    lua_Integer k = luaL_checkinteger(L, 2);
    if (!j->known && !(j->known = pq_idset_new())) return luaL_error(L, "out of memory (journal index)");
    if (pq_idset_claim_key(j->known, (uint64_t)k, 1) < 0) return luaL_error(L, "out of memory (journal index)");
    return 0;
}

const pq_idset *ljournal_known(lua_State *L, int idx)
{
    ljournal *j = (ljournal *)luaL_checkudata(L, idx, LJOURNAL_MT);
    if (j->fd < 0) luaL_error(L, "attempt to use a closed journal");
    return j->known;
}

/* The pipeline's view of an open journal (pq_pipeline_journal). */
static int ljournal_sink_append(void *ud, const char *s, size_t n)
{
    return ljournal_append((ljournal *)ud, s, n);
}

static int ljournal_sink_flush(void *ud)
{
    return ljournal_drain((ljournal *)ud);
}

static int ljournal_sink_sync(void *ud)
{
    return ljournal_fsync((ljournal *)ud);
}

static long ljournal_sink_unsynced(void *ud)
{
    return ((ljournal *)ud)->unsynced;
}

void ljournal_sink(lua_State *L, int idx, pq_pipeline_journal *out)
{
    ljournal *j = (ljournal *)luaL_checkudata(L, idx, LJOURNAL_MT);
    if (j->fd < 0) luaL_error(L, "attempt to use a closed journal");
    out->ud = j;
    out->append = ljournal_sink_append;
    out->flush = ljournal_sink_flush;
    out->sync = ljournal_sink_sync;
    out->unsynced = ljournal_sink_unsynced;
}

/* j:buffered() -> bytes written by write() and not yet flushed */
static int ljournal_buffered(lua_State *L)
{
    ljournal *j = ljournal_check(L);
    lua_pushinteger(L, (lua_Integer)j->len);
    return 1;
}

/* One idempotent closer for close(), __close and __gc. */
static int ljournal_gc(lua_State *L)
{
    ljournal *j = (ljournal *)luaL_checkudata(L, 1, LJOURNAL_MT);
    ljournal_release(j);
    return 0;
}

/* j:close() -> true | nil, message (the last flush or fsync failed) */
static int ljournal_close(lua_State *L)
{
    ljournal *j = (ljournal *)luaL_checkudata(L, 1, LJOURNAL_MT);
    int err = 0;
    if (j->fd >= 0) err = ljournal_fsync(j);
    if (err) {
        lua_pushnil(L);
        lua_pushfstring(L, "journal %s: final write failed: %s", j->path ? j->path : "?", strerror(err));
        ljournal_release(j);
        return 2;
    }
    ljournal_release(j);
    lua_pushboolean(L, 1);
    return 1;
}

static int ljournal_tostring(lua_State *L)
{
    ljournal *j = (ljournal *)luaL_checkudata(L, 1, LJOURNAL_MT);
    if (j->fd < 0) lua_pushliteral(L, "prequalify.journal (closed)");
    else lua_pushfstring(L, "prequalify.journal (%s)", j->path);
    return 1;
}

/* isatty(file | fd) -> boolean: is it a terminal (for the progress line) */
static int ljournal_isatty(lua_State *L)
{
    int fd = -1;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, 1);
        luaL_argcheck(L, n >= 0 && n <= 65535, 1, "expected a file descriptor");
        fd = (int)n;
    } else {
        luaL_Stream *s = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
        luaL_argcheck(L, s->closef != NULL && s->f != NULL, 1, "expected an open file");
        fd = fileno(s->f);
    }
    lua_pushboolean(L, fd >= 0 && isatty(fd));
    return 1;
}

void ljournal_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"write", ljournal_write},
        {"flush", ljournal_flush},
        {"sync", ljournal_sync},
        {"buffered", ljournal_buffered},
        {"unsynced", ljournal_unsynced},
        {"know", ljournal_know},
        {"close", ljournal_close},
        {NULL, NULL}
    };
    static const luaL_Reg meta[] = {
        {"__gc", ljournal_gc},
        {"__close", ljournal_gc},
        {"__tostring", ljournal_tostring},
        {NULL, NULL}
    };
    static const luaL_Reg fns[] = {
        {"journal_open", ljournal_open},
        {"isatty", ljournal_isatty},
        {NULL, NULL}
    };
    if (luaL_newmetatable(L, LJOURNAL_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, fns, 0);
}
