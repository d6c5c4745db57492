/* The inside of pq_pipeline, shared by its two files: pq_pipeline.c (slots,
 * queue, the step) and pq_records.c (journal and spool records). Not part
 * of the boundary (pq_pipeline.h is). */
#ifndef PQ_PIPELINE_IMPL_H
#define PQ_PIPELINE_IMPL_H

#include <time.h>

#include "pq_pipeline.h"
#include "pq_spool.h"

enum { SLOT_FREE, SLOT_READY, SLOT_FLIGHT, SLOT_DECIDED };

typedef struct pq_slot {
    int state, keep, attempts, epoch;
    int next;                  /* ready queue, or free list */
    long long index, id;       /* id: the transfer in flight */
    double t_first;            /* < 0: never sent */
    char *blob;                /* every string of the item; kept for the slot's next item */
    size_t blob_cap;
    const char *body;
    size_t body_len;
    pq_spool_value v[PQ_SP_NFIELDS]; /* report fields; strings point into blob */
} pq_slot;

struct pq_pipeline {
    pq_engine *engine;
    pq_headers *headers;
    int epoch, concurrency, in_flight, nready;
    pq_slot *slots;
    int nslots, free_head, ready_head, ready_tail;
    pq_pipeline_journal journal;
    int has_journal;
    FILE *spool;
    char *url, *success_name;
    double t0, last_wave, last_sync;
    pq_pipeline_decision *decisions;
    pq_xfer **held;            /* transfers of this step's decisions */
    char (*msgs)[PQ_ENGINE_ERR_MAX]; /* messages of refused submits */
    int ndecisions;
    int (*sent)[2];
    int nsent;
    char *buf;                 /* records and entries are built here */
    size_t buf_cap;
    int failed;                /* a write (or libcurl) failed: no more sends */
    int fail_what, fail_errno; /* the step's first failure (PQ_FAIL_*) and its errno */
    long long approved, requests, syncs;
};

static inline double pq_now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A number field, absent when negative. */
static inline void pq_num_set(pq_spool_value *v, double d)
{
    v->present = d >= 0;
    v->num = d;
}

/* pq_records.c: room for n more bytes in p->buf at offset len (0 or -1);
 * a failure (PQ_FAIL_*, errno, a message or NULL for one made from errno):
 * stops the sending, and the step's first one sets err; returns what; the
 * intent record of a slot about to be sent (0, or PQ_FAIL_JOURNAL); the done
 * and spool records of a common success (0, PQ_FAIL_JOURNAL: neither
 * written, or PQ_FAIL_SPOOL: the done record written, the spool record not);
 * whether a reply is the common success. */
int pq_records_room(pq_pipeline *p, size_t len, size_t n);
int pq_records_fail(pq_pipeline *p, int what, int errnum, const char *msg, char *err, size_t errcap);
int pq_records_intent(pq_pipeline *p, pq_slot *x, char *err, size_t errcap);
int pq_records_success(pq_pipeline *p, pq_slot *x, const pq_result *r, char *err, size_t errcap);
int pq_records_common_success(const pq_result *r);

#endif
