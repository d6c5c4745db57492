/* faultfs: an LD_PRELOAD shim for the disk-fault specs. It makes write,
 * fsync, rename or open fail with ENOSPC or EIO for one chosen path, after a
 * number of bytes (write) or calls (the others), as a full or failing disk
 * would. Everything else passes through to the C library.
 *
 * Configured from the environment, read once:
 *   PQ_FAULT_PATH   the path, matched as a suffix of the opened (or renamed) path
 *   PQ_FAULT_OP     write | fsync | rename | open
 *   PQ_FAULT_ERRNO  ENOSPC (default) | EIO
 *   PQ_FAULT_AFTER  bytes (write, per opened file) or calls (others) that
 *                   succeed first; default 0
 *   PQ_FAULT_TIMES  how many calls fail, then it passes again; default: all
 *
 * Under ASan, preload libasan first and this after it: ASan's interceptors
 * then call into this shim, which calls the C library. The shim itself is not
 * instrumented. Not thread-aware beyond what the core needs (one batch thread). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum { OP_NONE, OP_WRITE, OP_FSYNC, OP_RENAME, OP_OPEN };
#define FAULTFS_MAX_FD 4096

static struct {
    int ready, op, err;
    const char *path;
    long long after, times; /* times < 0: no limit */
    long long used;         /* bytes or calls spent against `after` */
    unsigned char fds[FAULTFS_MAX_FD];
} cfg;

static void faultfs_init(void)
{
    const char *op, *e;
    if (cfg.ready) return;
    cfg.ready = 1;
    cfg.path = getenv("PQ_FAULT_PATH");
    op = getenv("PQ_FAULT_OP");
    if (!cfg.path || !*cfg.path || !op) return;
    if (strcmp(op, "write") == 0) cfg.op = OP_WRITE;
    else if (strcmp(op, "fsync") == 0) cfg.op = OP_FSYNC;
    else if (strcmp(op, "rename") == 0) cfg.op = OP_RENAME;
    else if (strcmp(op, "open") == 0) cfg.op = OP_OPEN;
    e = getenv("PQ_FAULT_ERRNO");
    cfg.err = (e && strcmp(e, "EIO") == 0) ? EIO : ENOSPC;
    e = getenv("PQ_FAULT_AFTER");
    cfg.after = (e && *e) ? atoll(e) : 0;
    e = getenv("PQ_FAULT_TIMES");
    cfg.times = (e && *e) ? atoll(e) : -1;
}

static int faultfs_matches(const char *path)
{
    size_t n, m;
    faultfs_init();
    if (cfg.op == OP_NONE || !path) return 0;
    n = strlen(path);
    m = strlen(cfg.path);
    return n >= m && strcmp(path + n - m, cfg.path) == 0;
}

static int faultfs_tracked(int fd)
{
    return fd >= 0 && fd < FAULTFS_MAX_FD && cfg.fds[fd];
}

/* A write budget counts per opened file: a fresh file on a full disk fails
 * after the same number of bytes (the soak opens one journal per batch). */
static void faultfs_track(int fd, const char *path)
{
    if (fd < 0 || fd >= FAULTFS_MAX_FD) return;
    cfg.fds[fd] = (unsigned char)faultfs_matches(path);
    if (cfg.fds[fd] && cfg.op == OP_WRITE) cfg.used = 0;
}

/* 1 when this call fails: counts calls (or, for write, bytes via *len,
 * which may be shortened so that a write stops exactly at the budget). */
static int faultfs_fire(int op, size_t *len)
{
    if (cfg.op != op || cfg.times == 0) return 0;
    if (len) {
        long long left = cfg.after - cfg.used;
        if (left > 0) {
            if ((long long)*len > left) *len = (size_t)left;
            cfg.used += (long long)*len;
            return 0;
        }
    } else if (cfg.used < cfg.after) {
        cfg.used++;
        return 0;
    }
    if (cfg.times > 0) cfg.times--;
    errno = cfg.err;
    return 1;
}

#define NEXT(name) ((name##_fn)dlsym(RTLD_NEXT, #name))
typedef int (*open_fn)(const char *, int, ...);
typedef int (*open64_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef FILE *(*fopen_fn)(const char *, const char *);
typedef FILE *(*fopen64_fn)(const char *, const char *);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef size_t (*fwrite_fn)(const void *, size_t, size_t, FILE *);
typedef int (*fsync_fn)(int);
typedef int (*fdatasync_fn)(int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*close_fn)(int);
typedef int (*fclose_fn)(FILE *);

static int faultfs_open_common(int dirfd, const char *path, int flags, mode_t mode, int which)
{
    int fd;
    if (faultfs_matches(path) && faultfs_fire(OP_OPEN, NULL)) return -1;
    if (which == 0) fd = NEXT(open)(path, flags, mode);
    else if (which == 1) fd = NEXT(open64)(path, flags, mode);
    else fd = NEXT(openat)(dirfd, path, flags, mode);
    faultfs_track(fd, path);
    return fd;
}

/* The mode argument of an open that creates a file (absent otherwise). */
#define FAULTFS_MODE(last, flags, mode) do { \
        va_list ap_; \
        va_start(ap_, last); \
        mode = ((flags) & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap_, int) : 0; \
        va_end(ap_); \
    } while (0)

int open(const char *path, int flags, ...)
{
    mode_t mode;
    FAULTFS_MODE(flags, flags, mode);
    return faultfs_open_common(AT_FDCWD, path, flags, mode, 0);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode;
    FAULTFS_MODE(flags, flags, mode);
    return faultfs_open_common(AT_FDCWD, path, flags, mode, 1);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode;
    FAULTFS_MODE(flags, flags, mode);
    return faultfs_open_common(dirfd, path, flags, mode, 2);
}

static FILE *faultfs_fopen_common(const char *path, const char *how, int big)
{
    FILE *f;
    if (faultfs_matches(path) && faultfs_fire(OP_OPEN, NULL)) return NULL;
    f = big ? NEXT(fopen64)(path, how) : NEXT(fopen)(path, how);
    if (f) faultfs_track(fileno(f), path);
    return f;
}

FILE *fopen(const char *path, const char *how) { return faultfs_fopen_common(path, how, 0); }
FILE *fopen64(const char *path, const char *how) { return faultfs_fopen_common(path, how, 1); }

ssize_t write(int fd, const void *buf, size_t len)
{
    faultfs_init();
    if (faultfs_tracked(fd) && faultfs_fire(OP_WRITE, &len)) return -1;
    return NEXT(write)(fd, buf, len);
}

size_t fwrite(const void *buf, size_t size, size_t n, FILE *f)
{
    faultfs_init();
    if (size > 0 && faultfs_tracked(fileno(f))) {
        size_t len = size * n, done;
        if (faultfs_fire(OP_WRITE, &len)) return 0;
        if (len == size * n) return NEXT(fwrite)(buf, size, n, f);
        /* A short count is an error for fwrite: the disk filled up midway. */
        done = NEXT(fwrite)(buf, size, len / size, f);
        errno = cfg.err;
        return done;
    }
    return NEXT(fwrite)(buf, size, n, f);
}

int fsync(int fd)
{
    faultfs_init();
    if (faultfs_tracked(fd) && faultfs_fire(OP_FSYNC, NULL)) return -1;
    return NEXT(fsync)(fd);
}

int fdatasync(int fd)
{
    faultfs_init();
    if (faultfs_tracked(fd) && faultfs_fire(OP_FSYNC, NULL)) return -1;
    return NEXT(fdatasync)(fd);
}

int rename(const char *from, const char *to)
{
    if ((faultfs_matches(from) || faultfs_matches(to)) && faultfs_fire(OP_RENAME, NULL)) return -1;
    return NEXT(rename)(from, to);
}

int close(int fd)
{
    if (fd >= 0 && fd < FAULTFS_MAX_FD) cfg.fds[fd] = 0;
    return NEXT(close)(fd);
}

int fclose(FILE *f)
{
    int fd = fileno(f);
    if (fd >= 0 && fd < FAULTFS_MAX_FD) cfg.fds[fd] = 0;
    return NEXT(fclose)(f);
}
