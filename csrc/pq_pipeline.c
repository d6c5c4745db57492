/* pq_pipeline: the batch's per-item hot path in plain C (contract in
 * pq_pipeline.h). Items live in a slab of slots; the ready queue is a list
 * threaded through the slots; a reply is either finished here (the common
 * success, its records written by pq_records.c) or handed back as a decision
 * that holds its transfer until the next step. */
#include "pq_prefix.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pq_pipeline_impl.h"

pq_pipeline *pq_pipeline_new(pq_engine *e, const pq_pipeline_opts *o, char *err, size_t errcap)
{
    pq_pipeline *p = (pq_pipeline *)calloc(1, sizeof *p);
    int n = o->concurrency;
    if (!p) goto oom;
    p->engine = e;
    p->concurrency = n;
    p->free_head = p->ready_head = p->ready_tail = -1;
    p->spool = o->spool;
    p->t0 = o->t0;
    p->last_wave = p->last_sync = pq_now(CLOCK_MONOTONIC);
    if (o->journal) {
        p->journal = *o->journal;
        p->has_journal = 1;
    }
    p->url = strdup(o->url);
    p->success_name = strdup(o->success_name ? o->success_name : "");
    p->decisions = (pq_pipeline_decision *)calloc((size_t)n * 2, sizeof *p->decisions);
    p->held = (pq_xfer **)calloc((size_t)n * 2, sizeof *p->held);
    p->msgs = (char (*)[PQ_ENGINE_ERR_MAX])calloc((size_t)n * 2, sizeof *p->msgs);
    p->sent = (int (*)[2])calloc((size_t)n, sizeof *p->sent);
    p->buf_cap = 4096;
    p->buf = (char *)malloc(p->buf_cap);
    if (p->url && p->success_name && p->decisions && p->held && p->msgs && p->sent && p->buf)
        return p;
oom:
    pq_pipeline_free(p);
    snprintf(err, errcap, "out of memory (pipeline)");
    return NULL;
}

static void pq_release_held(pq_pipeline *p)
{
    int i;
    for (i = 0; i < p->ndecisions; i++) {
        if (p->held[i]) pq_engine_release(p->engine, p->held[i]);
        p->held[i] = NULL;
    }
    p->ndecisions = 0;
}

void pq_pipeline_abandon(pq_pipeline *p)
{
    int i;
    pq_release_held(p);
    for (i = 0; i < p->nslots; i++) {
        pq_slot *x = &p->slots[i];
        if (x->state != SLOT_FLIGHT) continue;
        pq_engine_abort(p->engine, x->id);
        x->state = SLOT_DECIDED;
        p->in_flight--;
    }
}

void pq_pipeline_free(pq_pipeline *p)
{
    int i;
    if (!p) return;
    if (p->decisions) pq_release_held(p);
    for (i = 0; i < p->nslots; i++) free(p->slots[i].blob);
    free(p->slots);
    pq_headers_unref(p->headers);
    free(p->url);
    free(p->success_name);
    free(p->decisions);
    free(p->held);
    free(p->msgs);
    free(p->sent);
    free(p->buf);
    free(p);
}

void pq_pipeline_set_headers(pq_pipeline *p, pq_headers *h, int epoch)
{
    if (h) pq_headers_ref(h);
    pq_headers_unref(p->headers);
    p->headers = h;
    p->epoch = epoch;
}

/* ---- slots ---------------------------------------------------------------- */

static int pq_slot_get(pq_pipeline *p)
{
    int s = p->free_head;
    if (s < 0) {
        int i, n = p->nslots ? p->nslots * 2 : p->concurrency * 2;
        pq_slot *grown = (pq_slot *)realloc(p->slots, (size_t)n * sizeof *grown);
        if (!grown) return -1;
        memset(grown + p->nslots, 0, (size_t)(n - p->nslots) * sizeof *grown);
        for (i = n - 1; i >= p->nslots; i--) {
            grown[i].next = p->free_head;
            p->free_head = i;
        }
        p->slots = grown;
        p->nslots = n;
        s = p->free_head;
    }
    p->free_head = p->slots[s].next;
    return s;
}

/* A freed slot keeps its blob for its next item: a steady batch makes no
 * malloc or free per item (pq_pipeline_free frees the blobs). */
static void pq_slot_free(pq_pipeline *p, int s)
{
    pq_slot *x = &p->slots[s];
    x->state = SLOT_FREE;
    x->next = p->free_head;
    p->free_head = s;
}

static void pq_ready_push(pq_pipeline *p, int s)
{
    p->slots[s].state = SLOT_READY;
    p->slots[s].next = -1;
    if (p->ready_tail >= 0) p->slots[p->ready_tail].next = s;
    else p->ready_head = s;
    p->ready_tail = s;
    p->nready++;
}

static int pq_ready_pop(pq_pipeline *p)
{
    int s = p->ready_head;
    if (s < 0) return -1;
    p->ready_head = p->slots[s].next;
    if (p->ready_head < 0) p->ready_tail = -1;
    p->nready--;
    return s;
}

static void pq_text_set(pq_spool_value *v, pq_text t, char **at)
{
    v->present = t.s != NULL;
    if (!t.s) return;
    memcpy(*at, t.s, t.n);
    v->str = *at;
    v->len = t.n;
    *at += t.n;
}

int pq_pipeline_add(pq_pipeline *p, const pq_pipeline_item *it)
{
    const pq_text *texts[] = {&it->key, &it->file, &it->source, &it->previous, &it->dn,
                              &it->user, &it->data, &it->algorithm, &it->comment};
    size_t i, size = it->body_len + 1;
    int s;
    pq_slot *x;
    char *at;
    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) size += texts[i]->s ? texts[i]->n : 0;
    size = (size + 255) & ~(size_t)255; /* a blob grows in steps: items differ a little in size */
    if ((s = pq_slot_get(p)) < 0) return -1;
    x = &p->slots[s];
    if (size > x->blob_cap) {
        char *b = (char *)malloc(size);
        if (!b) {
            pq_slot_free(p, s);
            return -1;
        }
        free(x->blob);
        x->blob = b;
        x->blob_cap = size;
    }
    memset(x->v, 0, sizeof x->v);
    at = x->blob;
    memcpy(at, it->body, it->body_len);
    x->body = at;
    x->body_len = it->body_len;
    at += it->body_len;
    x->index = it->index;
    x->keep = it->keep;
    x->attempts = 0;
    x->t_first = -1;
    x->v[PQ_SP_INDEX].present = 1;
    x->v[PQ_SP_INDEX].num = (double)it->index;
    pq_num_set(&x->v[PQ_SP_LINE], it->line);
    pq_text_set(&x->v[PQ_SP_KEY], it->key, &at);
    pq_text_set(&x->v[PQ_SP_FILE], it->file, &at);
    pq_text_set(&x->v[PQ_SP_SOURCE], it->source, &at);
    pq_text_set(&x->v[PQ_SP_PREVIOUS], it->previous, &at);
    x->v[PQ_SP_REQUEST].present = 1;
    pq_text_set(&x->v[PQ_SP_DN], it->dn, &at);
    pq_text_set(&x->v[PQ_SP_USER], it->user, &at);
    pq_text_set(&x->v[PQ_SP_DATA], it->data, &at);
    pq_text_set(&x->v[PQ_SP_ALGORITHM], it->algorithm, &at);
    pq_num_set(&x->v[PQ_SP_DIGEST_LENGTH], it->digest_length);
    pq_num_set(&x->v[PQ_SP_HOURS], it->hours);
    x->v[PQ_SP_SINGLE_USE].present = 1;
    x->v[PQ_SP_SINGLE_USE].num = it->single_use ? 2 : 1;
    pq_text_set(&x->v[PQ_SP_COMMENT], it->comment, &at);
    pq_ready_push(p, s);
    return s;
}

static pq_slot *pq_slot_at(pq_pipeline *p, int s, int state)
{
    if (s < 0 || s >= p->nslots || p->slots[s].state != state) return NULL;
    return &p->slots[s];
}

int pq_pipeline_resend(pq_pipeline *p, int s, int attempts)
{
    pq_slot *x = pq_slot_at(p, s, SLOT_DECIDED);
    if (!x) return -1;
    x->attempts = attempts;
    /* The caller holds the item's state now: its replies all come back. */
    x->keep = 1;
    pq_ready_push(p, s);
    return 0;
}

int pq_pipeline_drop(pq_pipeline *p, int s)
{
    if (!pq_slot_at(p, s, SLOT_DECIDED)) return -1;
    pq_slot_free(p, s);
    return 0;
}

int pq_pipeline_unqueue(pq_pipeline *p)
{
    int s = pq_ready_pop(p);
    if (s >= 0) p->slots[s].state = SLOT_DECIDED;
    return s;
}

/* ---- the step ------------------------------------------------------------- */

static pq_pipeline_decision *pq_decide(pq_pipeline *p, int s, int why)
{
    pq_pipeline_decision *d = &p->decisions[p->ndecisions];
    pq_slot *x = &p->slots[s];
    memset(d, 0, sizeof *d);
    x->state = SLOT_DECIDED;
    d->slot = s;
    d->why = why;
    d->attempts = x->attempts;
    d->epoch = x->epoch;
    d->t_first = x->t_first;
    p->held[p->ndecisions++] = NULL;
    return d;
}

static void pq_submit(pq_pipeline *p, int s, double now)
{
    pq_slot *x = &p->slots[s];
    pq_request rq;
    char *msg = p->msgs[p->ndecisions];
    long long id;
    memset(&rq, 0, sizeof rq);
    rq.is_post = 1;
    rq.url = p->url;
    rq.headers = p->headers;
    rq.body = x->body;
    rq.body_len = x->body_len;
    rq.timeout_ms = -1;
    rq.user = (void *)(uintptr_t)(s + 1);
    rq.owner = p;
    x->attempts++;
    x->epoch = p->epoch;
    id = pq_engine_submit(p->engine, &rq, msg, PQ_ENGINE_ERR_MAX);
    if (id <= 0) {
        pq_decide(p, s, PQ_DECIDE_REFUSED)->message = msg;
        return;
    }
    if (x->t_first < 0) x->t_first = now;
    x->id = id;
    x->state = SLOT_FLIGHT;
    p->in_flight++;
    p->requests++;
    p->sent[p->nsent][0] = s;
    p->sent[p->nsent][1] = x->attempts;
    p->nsent++;
}

/* Sends one wave of ready items; 0, or not 0 (a journal failure: not sent). */
static int pq_send_wave(pq_pipeline *p, double now, char *err, size_t errcap)
{
    int n = p->concurrency - p->in_flight, i, s;
    if (n > p->nready) n = p->nready;
    if (n <= 0) return 0;
    if (p->has_journal) {
        for (i = 0, s = p->ready_head; i < n; i++, s = p->slots[s].next)
            if (pq_records_intent(p, &p->slots[s], err, errcap) != 0) return -1;
        {
            int rc = p->journal.sync(p->journal.ud);
            if (rc) return pq_records_fail(p, PQ_FAIL_JOURNAL, rc, NULL, err, errcap);
        }
        p->syncs++;
        p->last_sync = now;
    }
    for (i = 0; i < n; i++) pq_submit(p, pq_ready_pop(p), now);
    p->last_wave = now;
    return 0;
}

/* Handles one finished transfer; one that is not ours (left by a pipeline
 * that was freed with requests in flight) is released unread. The common
 * success needs only the reply; a decision gets the whole result. */
static int pq_complete(pq_pipeline *p, pq_xfer *xf, char *err, size_t errcap)
{
    pq_result r;
    int s;
    pq_engine_reply(xf, &r);
    s = (int)((uintptr_t)r.user) - 1;
    if (s < 0 || s >= p->nslots || p->slots[s].state != SLOT_FLIGHT || p->slots[s].id != r.id) {
        pq_engine_release(p->engine, xf);
        return 0;
    }
    p->in_flight--;
    if (!p->failed && !p->slots[s].keep && p->spool && pq_records_common_success(&r)) {
        /* Finished once its done record is written, even without its spool record. */
        if (pq_records_success(p, &p->slots[s], &r, err, errcap) != PQ_FAIL_JOURNAL) {
            pq_engine_release(p->engine, xf);
            pq_slot_free(p, s);
            p->approved++;
            return 1;
        }
    }
    pq_engine_result(xf, &r);
    pq_decide(p, s, PQ_DECIDE_REPLY)->result = r;
    p->held[p->ndecisions - 1] = xf;
    return 0;
}

int pq_pipeline_step(pq_pipeline *p, long timeout_ms, char *err, size_t errcap)
{
    double now = pq_now(CLOCK_MONOTONIC);
    int group_min = p->concurrency / 4 > 1 ? p->concurrency / 4 : 1, finished = 0;
    int room = p->concurrency - p->in_flight;
    int grouping = p->has_journal && p->in_flight > 0 && room < group_min &&
                   now - p->last_wave < PQ_PIPELINE_GROUP_WAIT_MS / 1000.0;
    pq_xfer *xf;
    err[0] = '\0';
    p->fail_what = PQ_FAIL_NONE;
    pq_release_held(p);
    p->nsent = 0;
    if (!p->failed && !grouping && p->nready > 0) {
        pq_send_wave(p, now, err, errcap);
    } else if (!p->failed && p->has_journal && p->journal.unsynced(p->journal.ud) > 0 &&
               (p->in_flight == 0 || now - p->last_sync >= PQ_PIPELINE_SYNC_MS / 1000.0)) {
        int rc = p->journal.sync(p->journal.ud);
        if (rc) pq_records_fail(p, PQ_FAIL_JOURNAL, rc, NULL, err, errcap);
        p->syncs++;
        p->last_sync = now;
    }
    if (p->in_flight > 0 && p->ndecisions == 0) {
        long wait = timeout_ms;
        if (grouping) {
            long left = (long)((p->last_wave - now) * 1000) + PQ_PIPELINE_GROUP_WAIT_MS;
            if (left < wait) wait = left < 0 ? 0 : left;
        }
        char msg[PQ_ENGINE_ERR_MAX];
        if (pq_engine_drive(p->engine, wait, 0, msg, sizeof msg) != 0) {
            pq_records_fail(p, PQ_FAIL_TRANSFER, 0, msg, err, errcap);
            return p->ndecisions;
        }
    }
    while ((xf = pq_engine_take_owned(p->engine, p)) != NULL)
        finished += pq_complete(p, xf, err, errcap);
    if (finished && p->has_journal) {
        int rc = p->journal.flush(p->journal.ud);
        if (rc) pq_records_fail(p, PQ_FAIL_JOURNAL, rc, NULL, err, errcap);
    }
    return p->ndecisions;
}

/* The earlier of two waits in ms, -1 being none. */
static long pq_sooner(long a, long b)
{
    if (a < 0) return b;
    if (b < 0) return a;
    return a < b ? a : b;
}

static long pq_ms_left(double since, long period_ms, double now)
{
    double left = (since - now) * 1000.0 + (double)period_ms;
    return left <= 0 ? 0 : (long)left + 1;
}

long pq_pipeline_timeout_ms(const pq_pipeline *p)
{
    double now = pq_now(CLOCK_MONOTONIC);
    long t = -1;
    if (p->ndecisions > 0) return 0;
    if (!p->failed && p->nready > 0) {
        int group_min = p->concurrency / 4 > 1 ? p->concurrency / 4 : 1;
        int grouping = p->has_journal && p->in_flight > 0 && p->concurrency - p->in_flight < group_min;
        t = grouping ? pq_ms_left(p->last_wave, PQ_PIPELINE_GROUP_WAIT_MS, now) : 0;
    }
    if (!p->failed && p->has_journal && p->journal.unsynced(p->journal.ud) > 0)
        t = pq_sooner(t, p->in_flight == 0 ? 0 : pq_ms_left(p->last_sync, PQ_PIPELINE_SYNC_MS, now));
    if (p->in_flight > 0) t = pq_sooner(t, pq_engine_timeout_ms(p->engine));
    return t;
}

const pq_pipeline_decision *pq_pipeline_decision_at(const pq_pipeline *p, int i)
{
    return i >= 0 && i < p->ndecisions ? &p->decisions[i] : NULL;
}

int pq_pipeline_sent_at(const pq_pipeline *p, int i, int *slot, int *attempt)
{
    if (i < 0 || i >= p->nsent) return 0;
    *slot = p->sent[i][0];
    *attempt = p->sent[i][1];
    return 1;
}

int pq_pipeline_room(const pq_pipeline *p)
{
    return p->concurrency - p->in_flight - p->nready;
}

void pq_pipeline_counts_get(const pq_pipeline *p, pq_pipeline_counts *c)
{
    c->approved = p->approved;
    c->requests = p->requests;
    c->syncs = p->syncs;
    c->ready = p->nready;
    c->in_flight = p->in_flight;
    c->sent = p->nsent;
}
