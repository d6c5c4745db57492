/* Shared definitions for the C core: the export macro and the limits that the
 * validation rules document. Tunables are macros with #ifndef defaults. */
#ifndef PQ_COMMON_H
#define PQ_COMMON_H

#include <stddef.h>

#if defined(_WIN32)
#define PQ_EXPORT __declspec(dllexport)
#else
#define PQ_EXPORT __attribute__((visibility("default")))
#endif

#ifndef PREQUALIFY_VERSION
#define PREQUALIFY_VERSION "0.0.0"
#endif

/* Longest DN accepted, in bytes. TPP DNs are paths of folder names. */
#ifndef PQ_DN_MAX
#define PQ_DN_MAX 1024
#endif
/* Longest comment, in bytes of UTF-8. */
#ifndef PQ_COMMENT_MAX
#define PQ_COMMENT_MAX 4096
#endif
/* Largest decoded Data, in bytes: a hash is at most 64, signed data a little more. */
#ifndef PQ_DATA_MAX
#define PQ_DATA_MAX 8192
#endif
/* Longest User identity, in bytes. */
#ifndef PQ_USER_MAX
#define PQ_USER_MAX 512
#endif
/* Largest Hours value: one year. */
#ifndef PQ_HOURS_MAX
#define PQ_HOURS_MAX 8760
#endif

/* A compile-time check in C99 (no _Static_assert): the array size is -1,
 * an error, when cond is false. */
#define PQ_STATIC_ASSERT(cond, name) typedef char pq_static_assert_##name[(cond) ? 1 : -1]

/* Size of an error message buffer filled by the validators. */
#define PQ_MSG_MAX 256

#endif
