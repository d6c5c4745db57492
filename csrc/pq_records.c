/* pq_records: the records the batch pipeline writes itself - the journal's
 * intent before a request leaves, and for a common success the journal's
 * done record and the report's spool record (pq_spool.h) - and the test for
 * the common success. */
#include "pq_prefix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pq_format.h"
#include "pq_pipeline_impl.h"
#include "pq_wire.h"

/* Room for n more bytes in p->buf at offset len; 0 or -1. */
int pq_records_room(pq_pipeline *p, size_t len, size_t n)
{
    if (len + n <= p->buf_cap) return 0;
    while (p->buf_cap < len + n) p->buf_cap *= 2;
    {
        char *b = (char *)realloc(p->buf, p->buf_cap);
        if (!b) return -1;
        p->buf = b;
    }
    return 0;
}

const char *pq_pipeline_entry(pq_pipeline *p, int s, size_t *len)
{
    size_t size;
    if (s < 0 || s >= p->nslots || p->slots[s].state == SLOT_FREE) return NULL;
    size = pq_spool_size(p->slots[s].v);
    if (pq_records_room(p, 0, size) != 0) return NULL;
    pq_spool_pack(p->slots[s].v, p->buf);
    *len = size - 4;
    return p->buf + 4;
}

/* Appends s as a JSON string (quoted, escaped as the wire body's strings
 * and lua-cjson's are) at p->buf + *len. */
static int pq_json_text(pq_pipeline *p, size_t *len, const char *s, size_t n)
{
    if (pq_records_room(p, *len, n * 6 + 2) != 0) return -1;
    *len += pq_wire_json_string(s, n, p->buf + *len, p->buf_cap - *len);
    return 0;
}

/* Appends text, or text and then a number (an integer, or a double as %.14g
 * writes it), at p->buf + *len; the caller has made room. */
static void pq_put(pq_pipeline *p, size_t *len, const char *text)
{
    size_t n = strlen(text);
    memcpy(p->buf + *len, text, n);
    *len += n;
}

static void pq_put_int(pq_pipeline *p, size_t *len, const char *text, long long v)
{
    pq_put(p, len, text);
    *len += pq_format_int(v, p->buf + *len);
}

static void pq_put_g14(pq_pipeline *p, size_t *len, const char *text, double d)
{
    pq_put(p, len, text);
    *len += pq_format_g14(d, p->buf + *len);
}

/* Appends ,"name":"text" for a present text field (name is short). */
static int pq_json_field(pq_pipeline *p, size_t *len, const char *name, const pq_spool_value *v)
{
    if (!v->present) return 0;
    if (pq_records_room(p, *len, 64) != 0) return -1;
    pq_put(p, len, ",\"");
    pq_put(p, len, name);
    pq_put(p, len, "\":");
    return pq_json_text(p, len, v->str, v->len);
}

int pq_records_fail(pq_pipeline *p, int what, int errnum, const char *msg, char *err, size_t errcap)
{
    const char *record = what == PQ_FAIL_SPOOL ? "spool" : "journal";
    /* The step's first failure is the one it reports. */
    if (!err[0]) {
        if (msg) snprintf(err, errcap, "%s", msg);
        else if (errnum == ENOMEM) snprintf(err, errcap, "out of memory (%s record)", record);
        else snprintf(err, errcap, "%s write failed: %s", what == PQ_FAIL_SPOOL ? "report spool" : "journal",
                      strerror(errnum));
        p->fail_what = what;
        p->fail_errno = errnum;
    }
    p->failed = 1;
    return what;
}

int pq_pipeline_failure(const pq_pipeline *p, int *errnum)
{
    *errnum = p->fail_errno;
    return p->fail_what;
}

static int pq_journal_put(pq_pipeline *p, size_t len, char *err, size_t errcap)
{
    int rc = p->journal.append(p->journal.ud, p->buf, len);
    return rc ? pq_records_fail(p, PQ_FAIL_JOURNAL, rc, NULL, err, errcap) : 0;
}

/* The intent record of a slot about to be sent (attempt = attempts + 1). */
int pq_records_intent(pq_pipeline *p, pq_slot *x, char *err, size_t errcap)
{
    size_t len = 0;
    const pq_spool_value *v = x->v;
    int rc = pq_records_room(p, 0, 256);
    if (rc == 0) {
        pq_put_int(p, &len, "{\"type\":\"intent\",\"attempt\":", x->attempts + 1);
        pq_put_g14(p, &len, ",\"time\":", pq_now(CLOCK_REALTIME));
        pq_put(p, &len, ",\"key\":");
        rc = pq_json_text(p, &len, v[PQ_SP_KEY].str, v[PQ_SP_KEY].len);
    }
    if (rc == 0) rc = pq_json_field(p, &len, "dn", &v[PQ_SP_DN]);
    if (rc == 0) rc = pq_json_field(p, &len, "user", &v[PQ_SP_USER]);
    if (rc == 0) rc = pq_json_field(p, &len, "data", &v[PQ_SP_DATA]);
    if (rc == 0) rc = pq_json_field(p, &len, "comment", &v[PQ_SP_COMMENT]);
    if (rc == 0) rc = pq_records_room(p, len, 192);
    if (rc != 0) return pq_records_fail(p, PQ_FAIL_JOURNAL, ENOMEM, NULL, err, errcap);
    if (v[PQ_SP_HOURS].present) pq_put_g14(p, &len, ",\"hours\":", v[PQ_SP_HOURS].num);
    if (v[PQ_SP_LINE].present) pq_put_g14(p, &len, ",\"line\":", v[PQ_SP_LINE].num);
    pq_put_int(p, &len, ",\"index\":", x->index);
    pq_put(p, &len, v[PQ_SP_SINGLE_USE].num == 2 ? ",\"single_use\":true}\n" : ",\"single_use\":false}\n");
    return pq_journal_put(p, len, err, errcap);
}

/* The done record and the spool record of a common success. Once the done
 * record is written the item is finished, whatever becomes of the spool
 * record: the caller must not write another. */
int pq_records_success(pq_pipeline *p, pq_slot *x, const pq_result *r, char *err, size_t errcap)
{
    double now = pq_now(CLOCK_MONOTONIC);
    pq_spool_value *v = x->v;
    size_t size;
    if (p->has_journal) {
        size_t len = 0;
        int rc = pq_records_room(p, 0, 256 + v[PQ_SP_KEY].len * 6 + strlen(p->success_name) * 6);
        if (rc == 0) {
            pq_put_int(p, &len, "{\"type\":\"done\",\"outcome\":\"approved\",\"attempts\":", x->attempts);
            pq_put_int(p, &len, ",\"index\":", x->index);
            pq_put_int(p, &len, ",\"status\":", r->status);
            pq_put_g14(p, &len, ",\"result\":1,\"time\":", pq_now(CLOCK_REALTIME));
            pq_put(p, &len, ",\"key\":");
            rc = pq_json_text(p, &len, v[PQ_SP_KEY].str, v[PQ_SP_KEY].len);
        }
        if (rc == 0) {
            pq_put(p, &len, ",\"result_name\":");
            rc = pq_json_text(p, &len, p->success_name, strlen(p->success_name));
        }
        if (rc == 0 && pq_records_room(p, len, 2) == 0) {
            memcpy(p->buf + len, "}\n", 2);
            len += 2;
        } else {
            return pq_records_fail(p, PQ_FAIL_JOURNAL, ENOMEM, NULL, err, errcap);
        }
        if (pq_journal_put(p, len, err, errcap) != 0) return PQ_FAIL_JOURNAL;
    }
    v[PQ_SP_OUTCOME].present = 1;
    v[PQ_SP_OUTCOME].str = "approved";
    v[PQ_SP_OUTCOME].len = 8;
    pq_num_set(&v[PQ_SP_ATTEMPTS], x->attempts);
    pq_num_set(&v[PQ_SP_STARTED], x->t_first - p->t0);
    pq_num_set(&v[PQ_SP_ELAPSED], now - x->t_first);
    pq_num_set(&v[PQ_SP_SERVER_TIME], r->elapsed);
    v[PQ_SP_SERVER].present = v[PQ_SP_STATUS].present = v[PQ_SP_RESULT].present = 1;
    v[PQ_SP_STATUS].num = (double)r->status;
    v[PQ_SP_RESULT].num = 1;
    v[PQ_SP_RESULT_NAME].present = 1;
    v[PQ_SP_RESULT_NAME].str = p->success_name;
    v[PQ_SP_RESULT_NAME].len = strlen(p->success_name);
    size = pq_spool_size(v);
    if (pq_records_room(p, 0, size) != 0) return pq_records_fail(p, PQ_FAIL_SPOOL, ENOMEM, NULL, err, errcap);
    pq_spool_pack(v, p->buf);
    if (fwrite(p->buf, 1, size, p->spool) != size)
        return pq_records_fail(p, PQ_FAIL_SPOOL, errno ? errno : EIO, NULL, err, errcap);
    return 0;
}

/* The reply every pre-qualification hopes for (see response.lua). */
int pq_records_common_success(const pq_result *r)
{
    return r->curl_code == 0 && r->status >= 200 && r->status < 300 &&
           (strcmp(r->body, "{\"Success\":true,\"Result\":1}") == 0 ||
            strcmp(r->body, "{\"Result\":1,\"Success\":true}") == 0);
}
