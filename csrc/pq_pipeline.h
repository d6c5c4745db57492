/* pq_pipeline: the batch's per-item hot path in plain C (no Lua), on top of
 * pq_engine. It holds prepared items (wire body, journal key, report fields),
 * keeps up to `concurrency` of them in flight, writes and syncs the journal's
 * intents for each wave before its requests leave, and on completion
 * recognises the common success (HTTP 2xx, curl 0, a body that is exactly
 * {"Success":true,"Result":1} or {"Result":1,"Success":true}) and writes the
 * journal's done record and the report's spool record itself. Everything else
 * - a failure, a retry candidate, a 401, any reply of an item the caller keeps
 * for itself - is handed back as a *decision*; the caller decides and answers
 * with pq_pipeline_resend() or pq_pipeline_drop().
 *
 * This header is the whole C/Lua boundary of the batch: lpipeline.c binds it
 * one to one, and lua/prequalify/batch/ is its only user.
 *
 * Contract (single-threaded, like pq_engine):
 *  - Items are named by a slot number (>= 0) that pq_pipeline_add returns and
 *    that stays theirs until pq_pipeline_drop. An item is in one of four
 *    places: ready (queued to send), in flight, decided (handed back, waiting
 *    for the caller) or finished in C (common success; its slot is free again
 *    and it is counted in `approved`).
 *  - pq_pipeline_step() sends ready items while fewer than `concurrency` are
 *    in flight, in waves: with a journal, every intent of a wave is written
 *    and fsynced before the wave's first request leaves, and a wave waits for
 *    a quarter of the slots (or PQ_PIPELINE_GROUP_WAIT_MS) so that a wave is
 *    not one request each. Done records are handed to the kernel before step
 *    returns (a killed process loses no reply it has seen) and synced at
 *    least every PQ_PIPELINE_SYNC_MS.
 *  - A journal or spool write failure (or libcurl's) stops sending: step sets
 *    the message, pq_pipeline_failure() says which failed, ready items stay
 *    ready (the caller drains them), and items in flight still finish. A
 *    common success whose done record is written but whose spool record is
 *    not is finished all the same (counted in `approved`): its journal holds
 *    its one done record, the report lacks its entry.
 *  - The journal and spool are borrowed: their owner keeps them open for the
 *    pipeline's life. The engine is borrowed too; only this pipeline may take
 *    finished transfers from it while a step runs. */
#ifndef PQ_PIPELINE_H
#define PQ_PIPELINE_H

#include <stddef.h>
#include <stdio.h>

#include "pq_engine.h"

/* Done records reach the disk at least this often (ms). */
#ifndef PQ_PIPELINE_SYNC_MS
#define PQ_PIPELINE_SYNC_MS 50
#endif
/* With a journal, a wave waits this long for a quarter of the slots (ms). */
#ifndef PQ_PIPELINE_GROUP_WAIT_MS
#define PQ_PIPELINE_GROUP_WAIT_MS 5
#endif
#define PQ_PIPELINE_ERR_MAX 256

typedef struct pq_pipeline pq_pipeline;

/* Where journal records go: append buffers, flush hands them to the kernel,
 * sync makes them durable. Each returns 0 or an errno value. */
typedef struct pq_pipeline_journal {
    void *ud;
    int (*append)(void *ud, const char *s, size_t n);
    int (*flush)(void *ud);
    int (*sync)(void *ud);
    long (*unsynced)(void *ud); /* records appended since the last sync */
} pq_pipeline_journal;

typedef struct pq_pipeline_opts {
    int concurrency;                  /* 1 .. 1024 */
    const char *url;                  /* copied */
    const pq_pipeline_journal *journal; /* NULL: no journal */
    FILE *spool;                      /* NULL: every reply is a decision */
    const char *success_name;         /* result name of Result 1, copied */
    double t0;                        /* monotonic origin of `started` */
} pq_pipeline_opts;

/* A text field: NULL when absent. */
typedef struct pq_text {
    const char *s;
    size_t n;
} pq_text;

/* One prepared item. Every string is copied by pq_pipeline_add. */
typedef struct pq_pipeline_item {
    long long index;        /* the item's number in the run */
    const char *body;       /* wire body */
    size_t body_len;
    pq_text key;            /* journal key (needed with a journal) */
    int keep;               /* 1: the caller keeps the item: every reply is a decision */
    /* The report entry's fixed fields (for the spool record, fast items). */
    double line;            /* < 0: absent */
    pq_text file, source, previous;
    /* The request as the report shows it and the journal's intent records it. */
    pq_text dn, user, data, algorithm, comment;
    double digest_length, hours; /* < 0: absent */
    int single_use;
} pq_pipeline_item;

/* Why an item was handed back. */
enum {
    PQ_DECIDE_REPLY = 1,    /* a reply (or transport failure) to decide on */
    PQ_DECIDE_REFUSED = 2   /* the engine refused it before sending (message) */
};

typedef struct pq_pipeline_decision {
    int slot;
    int why;                /* PQ_DECIDE_* */
    int attempts;           /* attempts made, this one included */
    int epoch;              /* header epoch the request carried */
    double t_first;         /* monotonic time of the first send */
    pq_result result;       /* PQ_DECIDE_REPLY: valid until the next step */
    const char *message;    /* PQ_DECIDE_REFUSED */
} pq_pipeline_decision;

typedef struct pq_pipeline_counts {
    long long approved;     /* finished in C */
    long long requests;     /* requests submitted */
    long long syncs;        /* journal fsyncs */
    int ready, in_flight;
    int sent;               /* requests submitted in the last step */
} pq_pipeline_counts;

pq_pipeline *pq_pipeline_new(pq_engine *e, const pq_pipeline_opts *o, char *err, size_t errcap);
void pq_pipeline_free(pq_pipeline *p);
/* Stops every request in flight and gives back finished ones not yet taken
 * (to the engine's pool, unsent replies lost): for a pipeline closed
 * mid-run, before pq_pipeline_free, while the engine lives. */
void pq_pipeline_abandon(pq_pipeline *p);

/* The headers for the next requests, and their epoch (a re-authentication
 * makes a new one). The pipeline takes a reference. */
void pq_pipeline_set_headers(pq_pipeline *p, pq_headers *h, int epoch);

/* Queues a prepared item at the back of the ready queue; its slot, or -1
 * (out of memory). */
int pq_pipeline_add(pq_pipeline *p, const pq_pipeline_item *it);
/* Queues a decided item again (a retry, or the repeat after a 401) with the
 * attempts it has made so far; 0, or -1 when the slot holds no decided item.
 * From then on the caller keeps the item: every reply is a decision. */
int pq_pipeline_resend(pq_pipeline *p, int slot, int attempts);
/* Forgets an item the caller has finished; 0 or -1 (no such item). */
int pq_pipeline_drop(pq_pipeline *p, int slot);
/* Takes the oldest ready item off the queue (it becomes decided, not sent),
 * for a run that stops; its slot, or -1 when none is ready. */
int pq_pipeline_unqueue(pq_pipeline *p);

/* The stored report fields of an item as one spool record (outcome fields
 * absent), for the caller to read back; NULL for no such item. The pointer
 * is valid until the next call. */
const char *pq_pipeline_entry(pq_pipeline *p, int slot, size_t *len);

/* Sends a wave, waits up to timeout_ms for replies (not at all when a
 * decision is already due), and finishes what it can. Returns the number of
 * decisions (see pq_pipeline_decision_at; they and their results are valid
 * until the next step). A journal, spool or libcurl failure sets a message
 * in err (err[0] is '\0' otherwise) and stops all further sending. */
int pq_pipeline_step(pq_pipeline *p, long timeout_ms, char *err, size_t errcap);
const pq_pipeline_decision *pq_pipeline_decision_at(const pq_pipeline *p, int i);
/* Milliseconds until the pipeline has timed work (a wave to send, a journal
 * sync, libcurl's timer); 0: now; -1: only sockets can wake it (see
 * pq_engine_pollfd). Decisions not yet taken by a step count as now. */
long pq_pipeline_timeout_ms(const pq_pipeline *p);
/* Slot and attempt of the i-th request submitted in the last step (for the
 * caller's events); 0 past the last one. */
int pq_pipeline_sent_at(const pq_pipeline *p, int i, int *slot, int *attempt);

/* What failed (pq_pipeline_failure). */
enum {
    PQ_FAIL_NONE = 0,
    PQ_FAIL_JOURNAL = 1,    /* a journal record or sync */
    PQ_FAIL_SPOOL = 2,      /* a report spool record */
    PQ_FAIL_TRANSFER = 3    /* libcurl */
};

/* What failed in the last step, the failure err names (PQ_FAIL_*;
 * PQ_FAIL_NONE when err is empty) and, for a record, the errno value of its
 * write (ENOMEM: no memory to build it); 0 for libcurl. */
int pq_pipeline_failure(const pq_pipeline *p, int *errnum);

/* Room for more items: concurrency minus those ready or in flight. */
int pq_pipeline_room(const pq_pipeline *p);
void pq_pipeline_counts_get(const pq_pipeline *p, pq_pipeline_counts *c);

#endif
