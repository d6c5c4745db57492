/* The two durable-write steps that the token file (lfile.c) and the journal
 * (ljournal.c) share, in plain C. Both report every failure. */
#ifndef PQ_FS_H
#define PQ_FS_H

#include <stddef.h>

/* Writes all len bytes to fd, retrying short writes and EINTR. Returns 0, or
 * an errno value; *written (when not NULL) is what went out either way. */
int pq_fs_write_all(int fd, const char *data, size_t len, size_t *written);

/* fsync of the directory that holds path, so that a file created or renamed
 * there survives a crash. Returns 0, or an errno value: the directory cannot
 * be opened (ENOENT, EACCES, ENAMETOOLONG, ...) or its fsync failed. A file
 * system that cannot sync directories at all (EINVAL) is not a failure:
 * there is nothing more to make durable. */
int pq_fs_sync_dir(const char *path);

#endif
