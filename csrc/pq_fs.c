/* Write-all and directory sync (see pq_fs.h): one copy, one meaning. */
#include "pq_prefix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pq_fs.h"

int pq_fs_write_all(int fd, const char *data, size_t len, size_t *written)
{
    size_t off = 0;
    int err = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            err = errno;
            break;
        }
        off += (size_t)n;
    }
    if (written) *written = off;
    return err;
}

int pq_fs_sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(n + 1);
    int fd, err = 0;
    if (!dir) return ENOMEM;
    if (slash == NULL) memcpy(dir, ".", 2);
    else if (slash == path) memcpy(dir, "/", 2);
    else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    err = fd < 0 ? errno : 0;
    free(dir);
    if (fd < 0) return err;
    if (fsync(fd) != 0 && errno != EINVAL) err = errno;
    close(fd);
    return err;
}
