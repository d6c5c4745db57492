/* Unit test of the batch pipeline (pq_pipeline.h) against the loopback
 * server of test_server.c, with a journal that records what it is told in
 * memory: the common success finished in C (done and spool records, intents
 * synced before their requests), other replies handed back and resent, an
 * item the caller keeps, a journal that fails, a spool that fails after the
 * done record, the concurrency bound, and
 * freeing a pipeline with a request in flight. Built under ASan+UBSan by
 * .ci/extra; prints one line per failed check and a total. No sleeps: every
 * wait is a bounded step. */
#include "pq_prefix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pq_pipeline.h"
#include "pq_spool.h"
#include "test_check.h"
#include "test_server.h"

#define OK_BODY "{\"Success\":true,\"Result\":1}"
#define NO_BODY "{\"Success\":false,\"Result\":1002,\"Error\":\"no such user\"}"

static test_server srv;
static char err[PQ_PIPELINE_ERR_MAX];

/* ---- a journal in memory ---------------------------------------------------
 * Every record and every sync is one line of `log`: "I <key>", "D <key>",
 * "S". */
typedef struct mem_journal {
    char log[65536];
    char intent[4096], done[4096]; /* the last of each record, whole */
    size_t len;
    long unsynced, syncs;
    int fail_sync;
} mem_journal;

static const char *json_key(const char *s, size_t n)
{
    static char key[64];
    const char *k = strstr(s, "\"key\":\"");
    size_t i = 0;
    (void)n;
    if (!k) return "?";
    for (k += 7; *k && *k != '"' && i + 1 < sizeof key; k++) key[i++] = *k;
    key[i] = '\0';
    return key;
}

static int mem_append(void *ud, const char *s, size_t n)
{
    mem_journal *j = (mem_journal *)ud;
    char rec[4096], type, *whole;
    snprintf(rec, sizeof rec, "%.*s", (int)n, s); /* a record is n bytes, with no NUL after them */
    type = strstr(rec, "\"type\":\"intent\"") ? 'I' : strstr(rec, "\"type\":\"done\"") ? 'D' : '?';
    whole = type == 'I' ? j->intent : type == 'D' ? j->done : NULL;
    j->len += (size_t)snprintf(j->log + j->len, sizeof j->log - j->len, "%c %s\n", type, json_key(rec, n));
    if (whole) snprintf(whole, sizeof j->intent, "%s", rec);
    j->unsynced++;
    return 0;
}

static int mem_flush(void *ud)
{
    (void)ud;
    return 0;
}

static int mem_sync(void *ud)
{
    mem_journal *j = (mem_journal *)ud;
    if (j->fail_sync) return EIO;
    j->len += (size_t)snprintf(j->log + j->len, sizeof j->log - j->len, "S\n");
    j->unsynced = 0;
    j->syncs++;
    return 0;
}

static long mem_unsynced(void *ud)
{
    return ((mem_journal *)ud)->unsynced;
}

/* ---- helpers ---------------------------------------------------------------- */

static pq_engine *engine(void)
{
    pq_engine_opts o;
    char e[PQ_ENGINE_ERR_MAX];
    pq_engine *en;
    pq_engine_opts_default(&o);
    o.max_connections = o.max_host_connections = 4;
    o.timeout_ms = 20000;
    en = pq_engine_new(&o, e, sizeof e);
    if (!en) printf("engine: %s\n", e);
    return en;
}

static pq_pipeline *pipeline(pq_engine *e, const char *path, int concurrency, mem_journal *j, FILE *spool)
{
    char url[128];
    pq_pipeline_opts o;
    pq_pipeline_journal sink = {NULL, mem_append, mem_flush, mem_sync, mem_unsynced};
    pq_header h = {"Content-Type", "application/json", 12, 16};
    pq_headers *hl = pq_headers_new(&h, 1, err, sizeof err);
    pq_pipeline *p;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv.port, path);
    memset(&o, 0, sizeof o);
    o.concurrency = concurrency;
    o.url = url;
    sink.ud = j;
    o.journal = j ? &sink : NULL;
    o.spool = spool;
    o.success_name = "Success";
    p = pq_pipeline_new(e, &o, err, sizeof err);
    if (p) pq_pipeline_set_headers(p, hl, 0);
    pq_headers_unref(hl);
    return p;
}

static int add(pq_pipeline *p, long long index, const char *body, const char *key, int keep)
{
    pq_pipeline_item it;
    memset(&it, 0, sizeof it);
    it.index = index;
    it.body = body;
    it.body_len = strlen(body);
    it.key.s = key;
    it.key.n = strlen(key);
    it.keep = keep;
    it.line = it.digest_length = -1;
    it.hours = 8;
    it.dn.s = "\\VED\\Policy\\\"quoted\"";
    it.dn.n = strlen(it.dn.s);
    it.user.s = "local:build";
    it.user.n = 11;
    it.data.s = "AAAA";
    it.data.n = 4;
    return pq_pipeline_add(p, &it);
}

/* Steps until nothing is ready or in flight, or a decision comes back
 * (bounded: 20 s); the number of decisions of the last step. */
static int run(pq_pipeline *p)
{
    int i, n = 0;
    pq_pipeline_counts c;
    for (i = 0; i < 200; i++) {
        n = pq_pipeline_step(p, 100, err, sizeof err);
        pq_pipeline_counts_get(p, &c);
        if (n > 0 || err[0] || (c.ready == 0 && c.in_flight == 0)) return n;
    }
    return n;
}

/* ---- tests ------------------------------------------------------------------ */

/* Ten common successes at concurrency 4: finished in C, each done record
 * after its intent and a sync, one spool record each. */
static void test_common_success(void)
{
    pq_engine *e = engine();
    mem_journal j;
    FILE *spool = tmpfile();
    pq_pipeline *p;
    pq_pipeline_counts c;
    int i, records = 0, ordered = 1;
    char key[16], *line;
    unsigned char head[9];
    memset(&j, 0, sizeof j);
    p = pipeline(e, "/reply", 4, &j, spool);
    CHECK(p != NULL && spool != NULL);
    for (i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK(add(p, i + 1, OK_BODY, key, 0) >= 0);
    }
    CHECK(pq_pipeline_room(p) == 4 - 10);
    CHECK(run(p) == 0 && err[0] == '\0');
    pq_pipeline_counts_get(p, &c);
    CHECK(c.approved == 10 && c.requests == 10 && c.in_flight == 0 && c.ready == 0);
    CHECK(c.syncs >= 3); /* ten items, at most four a wave */
    /* Every done record comes after its intent with a sync in between. */
    for (i = 0; i < 10; i++) {
        char intent[24], done[24], *pi, *pd, *ps;
        snprintf(intent, sizeof intent, "I k%d\n", i);
        snprintf(done, sizeof done, "D k%d\n", i);
        pi = strstr(j.log, intent);
        pd = strstr(j.log, done);
        ps = pi ? strstr(pi, "S\n") : NULL;
        ordered &= pi && pd && ps && ps < pd;
    }
    CHECK(ordered);
    /* One compact record per item: length, zero byte, mask. */
    rewind(spool);
    while (fread(head, 1, 9, spool) == 9) {
        unsigned long n = head[0] | head[1] << 8 | (unsigned long)head[2] << 16 | (unsigned long)head[3] << 24;
        CHECK(head[4] == 0);
        CHECK((head[5] & (1u << PQ_SP_OUTCOME)) != 0);
        fseek(spool, (long)n - 5, SEEK_CUR);
        records++;
    }
    CHECK(records == 10);
    line = strstr(j.log, "?");
    CHECK(line == NULL);
    pq_pipeline_free(p);
    pq_engine_free(e);
    fclose(spool);
}

/* A refusal comes back as a decision with the server's body; resent, it is
 * attempt 2; dropped, the slot is free. An item the caller keeps comes back
 * even for the common success. */
static void test_decisions(void)
{
    pq_engine *e = engine();
    FILE *spool = tmpfile();
    pq_pipeline *p = pipeline(e, "/reply", 2, NULL, spool);
    const pq_pipeline_decision *d;
    int a = add(p, 1, NO_BODY, "a", 0), b, n;
    size_t len = 0;
    const char *rec;
    CHECK(a >= 0);
    n = run(p);
    CHECK(n == 1);
    d = pq_pipeline_decision_at(p, 0);
    CHECK(d && d->slot == a && d->why == PQ_DECIDE_REPLY && d->attempts == 1 && d->t_first > 0);
    CHECK(d && d->result.status == 200 && strcmp(d->result.body, NO_BODY) == 0);
    rec = pq_pipeline_entry(p, a, &len);
    CHECK(rec != NULL && len > 9 && rec[0] == 0);
    CHECK(pq_pipeline_resend(p, a, 1) == 0);
    CHECK(pq_pipeline_resend(p, a, 1) == -1); /* ready, not decided */
    n = run(p);
    d = pq_pipeline_decision_at(p, 0);
    CHECK(n == 1 && d && d->slot == a && d->attempts == 2);
    CHECK(pq_pipeline_drop(p, a) == 0 && pq_pipeline_drop(p, a) == -1);
    b = add(p, 2, OK_BODY, "b", 1);
    n = run(p);
    d = pq_pipeline_decision_at(p, 0);
    CHECK(n == 1 && d && d->slot == b && strcmp(d->result.body, OK_BODY) == 0);
    CHECK(pq_pipeline_drop(p, b) == 0);
    /* Once handed back and resent, an item's success comes back too. */
    a = add(p, 3, OK_BODY, "c", 0);
    CHECK(pq_pipeline_unqueue(p) == a && pq_pipeline_resend(p, a, 0) == 0);
    n = run(p);
    d = pq_pipeline_decision_at(p, 0);
    CHECK(n == 1 && d && d->slot == a && d->attempts == 1);
    CHECK(pq_pipeline_drop(p, a) == 0);
    CHECK(pq_pipeline_decision_at(p, 1) == NULL);
    pq_pipeline_free(p);
    pq_engine_free(e);
    fclose(spool);
}

/* A journal whose sync fails: nothing is sent, the step says why, and the
 * items can be taken off the queue. */
static void test_journal_failure(void)
{
    pq_engine *e = engine();
    mem_journal j;
    pq_pipeline *p;
    pq_pipeline_counts c;
    int a, b, errnum;
    memset(&j, 0, sizeof j);
    j.fail_sync = 1;
    p = pipeline(e, "/reply", 4, &j, NULL);
    a = add(p, 1, OK_BODY, "a", 0);
    b = add(p, 2, OK_BODY, "b", 0);
    CHECK(pq_pipeline_step(p, 0, err, sizeof err) == 0);
    CHECK(strcmp(err, "journal write failed: Input/output error") == 0);
    CHECK(pq_pipeline_failure(p, &errnum) == PQ_FAIL_JOURNAL && errnum == EIO);
    pq_pipeline_counts_get(p, &c);
    CHECK(c.requests == 0 && c.ready == 2);
    CHECK(pq_pipeline_unqueue(p) == a && pq_pipeline_unqueue(p) == b && pq_pipeline_unqueue(p) == -1);
    CHECK(pq_pipeline_drop(p, a) == 0 && pq_pipeline_drop(p, b) == 0);
    pq_pipeline_free(p);
    pq_engine_free(e);
}

/* A spool that refuses the record of a common success whose done record is
 * written: the item is finished all the same (one done record, no
 * decision that would make the caller write another), the step says it
 * was the spool, and nothing more is sent. */
static void test_spool_failure(void)
{
    pq_engine *e = engine();
    mem_journal j;
    FILE *spool = fopen("/dev/full", "wb");
    pq_pipeline *p;
    pq_pipeline_counts c;
    int i, n = 0, errnum, failures = 0;
    memset(&j, 0, sizeof j);
    CHECK(spool != NULL && setvbuf(spool, NULL, _IONBF, 0) == 0);
    p = pipeline(e, "/reply", 1, &j, spool);
    add(p, 1, OK_BODY, "a", 0);
    add(p, 2, OK_BODY, "b", 0);
    for (i = 0; i < 200 && failures == 0; i++) {
        n += pq_pipeline_step(p, 100, err, sizeof err);
        failures += err[0] != '\0';
    }
    CHECK(failures == 1 && n == 0);
    CHECK(strcmp(err, "report spool write failed: No space left on device") == 0);
    CHECK(pq_pipeline_failure(p, &errnum) == PQ_FAIL_SPOOL && errnum == ENOSPC);
    CHECK(strcmp(j.log, "I a\nS\nD a\n") == 0);
    pq_pipeline_counts_get(p, &c);
    CHECK(c.approved == 1 && c.requests == 1 && c.in_flight == 0 && c.ready == 1);
    /* The next step sends nothing and reports no new failure. */
    CHECK(pq_pipeline_step(p, 0, err, sizeof err) == 0 && err[0] == '\0');
    CHECK(pq_pipeline_failure(p, &errnum) == PQ_FAIL_NONE);
    pq_pipeline_counts_get(p, &c);
    CHECK(c.requests == 1 && c.ready == 1);
    pq_pipeline_free(p);
    pq_engine_free(e);
    fclose(spool);
}

/* Never more than `concurrency` in flight; a pipeline freed with a request
 * in flight leaves the engine usable (the stray transfer is ignored). */
static void test_bound_and_free(void)
{
    pq_engine *e = engine();
    pq_pipeline *p = pipeline(e, "/hold", 2, NULL, NULL);
    pq_pipeline_counts c;
    int i;
    for (i = 0; i < 5; i++) add(p, i + 1, OK_BODY, "h", 0);
    CHECK(pq_pipeline_step(p, 50, err, sizeof err) == 0);
    pq_pipeline_counts_get(p, &c);
    CHECK(c.in_flight == 2 && c.ready == 3 && c.requests == 2);
    pq_pipeline_free(p);
    p = pipeline(e, "/reply", 2, NULL, NULL);
    add(p, 1, NO_BODY, "x", 0);
    CHECK(run(p) == 1);
    pq_pipeline_free(p);
    pq_engine_free(e);
}

/* Whether the n bytes at s hold the text t. */
static int holds(const char *s, size_t n, const char *t)
{
    size_t i, k = strlen(t);
    for (i = 0; i + k <= n; i++)
        if (memcmp(s + i, t, k) == 0) return 1;
    return 0;
}

/* Whether a record is want, where want's TIME is a time of the last minute
 * written as "%.14g" writes it. */
static int record_is(const char *rec, const char *want)
{
    const char *at = strstr(want, "TIME");
    size_t head = (size_t)(at - want);
    char *end, text[64], again[64];
    double t, now = (double)time(NULL);
    if (strncmp(rec, want, head) != 0) return 0;
    t = strtod(rec + head, &end);
    snprintf(text, sizeof text, "%.*s", (int)(end - (rec + head)), rec + head);
    snprintf(again, sizeof again, "%.14g", t);
    return strcmp(text, again) == 0 && t > now - 60 && t < now + 2 && strcmp(end, at + 4) == 0;
}

/* A freed slot keeps its buffer for its next item: an item larger than the
 * last one it held, and a smaller one after it, keep their own fields; the
 * journal records of a common success are the bytes the journal reader
 * reads. */
static void test_slot_reuse(void)
{
    pq_engine *e = engine();
    mem_journal j;
    FILE *spool = tmpfile();
    pq_pipeline *p;
    char big[3001];
    const char *rec;
    size_t len = 0;
    int a, b;
    memset(&j, 0, sizeof j);
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    p = pipeline(e, "/reply", 2, &j, spool);
    a = add(p, 1, NO_BODY, "a", 0);
    CHECK(run(p) == 1 && pq_pipeline_drop(p, a) == 0);
    b = add(p, 2, NO_BODY, big, 0);
    rec = pq_pipeline_entry(p, b, &len);
    CHECK(b == a && rec != NULL && holds(rec, len, big));
    CHECK(run(p) == 1 && pq_pipeline_drop(p, b) == 0);
    b = add(p, 3, OK_BODY, "c", 0);
    rec = pq_pipeline_entry(p, b, &len);
    CHECK(b == a && rec != NULL && len < 1000 && holds(rec, len, "local:build") && !holds(rec, len, "kk"));
    CHECK(run(p) == 0 && err[0] == '\0');
    CHECK(record_is(j.intent, "{\"type\":\"intent\",\"attempt\":1,\"time\":TIME,\"key\":\"c\","
                              "\"dn\":\"\\\\VED\\\\Policy\\\\\\\"quoted\\\"\",\"user\":\"local:build\",\"data\":\"AAAA\","
                              "\"hours\":8,\"index\":3,\"single_use\":false}\n"));
    CHECK(record_is(j.done, "{\"type\":\"done\",\"outcome\":\"approved\",\"attempts\":1,\"index\":3,"
                            "\"status\":200,\"result\":1,\"time\":TIME,\"key\":\"c\",\"result_name\":\"Success\"}\n"));
    pq_pipeline_free(p);
    pq_engine_free(e);
    fclose(spool);
}

int main(void)
{
    if (pq_engine_global_init() != 0 || test_server_start(&srv) != 0) {
        printf("setup failed\n");
        return 1;
    }
    test_common_success();
    test_decisions();
    test_journal_failure();
    test_spool_failure();
    test_bound_and_free();
    test_slot_reuse();
    return test_total();
}
