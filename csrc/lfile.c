/* prequalify.core files: the few file operations that Lua's io library cannot
 * do safely for secret files. write_file_atomic replaces a file so that a
 * reader sees the old or the new content, never a torn one, even across a
 * crash (temp file in the same directory, fsync, rename, fsync of the
 * directory); lock_file takes a POSIX advisory lock so that processes sharing
 * a refresh token file take turns; file_mode reports permission bits. */
#include "pq_prefix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcore.h"
#include "pq_fs.h"

#define LFILE_LOCK_MT "prequalify.filelock"

/* How often a lock with a timeout is retried, in nanoseconds. */
#ifndef PQ_LOCK_POLL_NS
#define PQ_LOCK_POLL_NS 5000000L
#endif

typedef struct lfile_lock {
    int fd; /* -1 once released */
} lfile_lock;

static int lfile_fail(lua_State *L, const char *path, const char *step, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s: %s", path, step, strerror(err));
    return 2;
}

/* core.write_file_atomic(path, data [, mode = 0600]) -> true | nil, message
 * The temp file is made by mkstemp (O_CREAT|O_EXCL, 0600) beside path, so
 * the secret is never readable by others, not even for a moment. */
static int lfile_write_atomic(lua_State *L)
{
    size_t plen, dlen;
    const char *path = luaL_checklstring(L, 1, &plen);
    const char *data = luaL_checklstring(L, 2, &dlen);
    lua_Integer mode = luaL_optinteger(L, 3, 0600);
    char *tmp;
    int fd, err;
    luaL_argcheck(L, mode >= 0 && mode <= 07777, 3, "expected a file mode such as 384 (0600)");
    luaL_argcheck(L, plen > 0 && strlen(path) == plen, 1, "expected a file path");
    /* Scratch space owned by Lua, so an error cannot leak it. */
    tmp = (char *)lua_newuserdatauv(L, plen + sizeof ".tmp.XXXXXX", 0);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");

    fd = mkstemp(tmp);
    if (fd < 0) return lfile_fail(L, path, "cannot create a temporary file beside it", errno);
    err = mode != 0600 && fchmod(fd, (mode_t)mode) != 0 ? errno : pq_fs_write_all(fd, data, dlen, NULL);
    if (err == 0 && fsync(fd) != 0) err = errno;
    if (err != 0) {
        close(fd);
        unlink(tmp);
        return lfile_fail(L, path, "cannot write the temporary file", err);
    }
    if (close(fd) != 0) {
        err = errno;
        unlink(tmp);
        return lfile_fail(L, path, "cannot write the temporary file", err);
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        return lfile_fail(L, path, "cannot replace the file", err);
    }
    if ((err = pq_fs_sync_dir(path)) != 0) return lfile_fail(L, path, "replaced, but cannot sync its directory", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.file_mode(path) -> permission bits (integer) | nil, message */
static int lfile_mode(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) return lfile_fail(L, path, "cannot stat", errno);
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    return 1;
}

static int lfile_lock_release(lfile_lock *lk)
{
    int rc = 0;
    if (lk->fd >= 0) {
        /* Closing drops every fcntl lock this process holds on the file. */
        rc = close(lk->fd);
        lk->fd = -1;
    }
    return rc;
}

/* core.lock_file(path [, timeout]) -> lock | nil, message
 * An exclusive fcntl lock on path (created 0600 if missing). Without a
 * timeout it waits as long as it takes; with one (seconds) it gives up
 * after that. fcntl locks exclude other processes, not this one: callers in
 * one process must not hold two locks on the same file at once. */
static int lfile_lock_new(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    double timeout = luaL_optnumber(L, 2, -1);
    struct flock fl;
    struct timespec pause;
    double waited = 0;
    lfile_lock *lk;

    /* Closed until the lock is held, so an error leaves nothing to undo. */
    lk = (lfile_lock *)lua_newuserdatauv(L, sizeof *lk, 0);
    lk->fd = -1;
    luaL_setmetatable(L, LFILE_LOCK_MT);

    lk->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lk->fd < 0) return lfile_fail(L, path, "cannot open the lock file", errno);
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    pause.tv_sec = 0;
    pause.tv_nsec = PQ_LOCK_POLL_NS;
    for (;;) {
        if (fcntl(lk->fd, timeout < 0 ? F_SETLKW : F_SETLK, &fl) == 0) break;
        if (errno == EINTR) continue;
        if ((errno == EACCES || errno == EAGAIN) && timeout >= 0 && waited < timeout) {
            nanosleep(&pause, NULL);
            waited += (double)PQ_LOCK_POLL_NS / 1e9;
            continue;
        }
        {
            int err = errno;
            lfile_lock_release(lk);
            if (err == EACCES || err == EAGAIN) {
                lua_pushnil(L);
                lua_pushfstring(L, "%s: still locked by another process after %f s", path, timeout);
                return 2;
            }
            return lfile_fail(L, path, "cannot lock", err);
        }
    }
    return 1;
}

/* lock:unlock() -> true; idempotent, also run by __gc and __close. */
static int lfile_lock_unlock(lua_State *L)
{
    lfile_lock *lk = (lfile_lock *)luaL_checkudata(L, 1, LFILE_LOCK_MT);
    lfile_lock_release(lk);
    lua_pushboolean(L, 1);
    return 1;
}

static int lfile_lock_tostring(lua_State *L)
{
    lfile_lock *lk = (lfile_lock *)luaL_checkudata(L, 1, LFILE_LOCK_MT);
    lua_pushstring(L, lk->fd >= 0 ? "prequalify.filelock (held)" : "prequalify.filelock (released)");
    return 1;
}

void lfile_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"unlock", lfile_lock_unlock},
        {NULL, NULL}
    };
    static const luaL_Reg meta[] = {
        {"__gc", lfile_lock_unlock},
        {"__close", lfile_lock_unlock},
        {"__tostring", lfile_lock_tostring},
        {NULL, NULL}
    };
    static const luaL_Reg fns[] = {
        {"write_file_atomic", lfile_write_atomic},
        {"lock_file", lfile_lock_new},
        {"file_mode", lfile_mode},
        {NULL, NULL}
    };
    if (luaL_newmetatable(L, LFILE_LOCK_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, fns, 0);
}
