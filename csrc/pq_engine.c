/* The Lua-free engine (see pq_engine.h for the contract): the engine's
 * lifetime, submitting a request on a pooled transfer (pq_transfer.c), the
 * one loop that drives the multi handle, and the list of finished transfers. */
#include "pq_prefix.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "pq_common.h"
#include "pq_engine_impl.h"

/* ---- process-wide init --------------------------------------------------- */

static pthread_once_t pq_engine_once = PTHREAD_ONCE_INIT;
static CURLcode pq_engine_init_rc = CURLE_OK;

static void pq_engine_init_once(void)
{
    pq_engine_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int pq_engine_global_init(void)
{
    pthread_once(&pq_engine_once, pq_engine_init_once);
    return (int)pq_engine_init_rc;
}

void pq_engine_release(pq_engine *e, pq_xfer *x)
{
    pq_transfer_reset(x);
    x->next = e->free_list;
    e->free_list = x;
}

static int pq_engine_dup(char **dst, const char *s)
{
    size_t n;
    if (!s) return 0;
    n = strlen(s) + 1;
    *dst = malloc(n);
    if (!*dst) return -1;
    memcpy(*dst, s, n);
    return 0;
}

/* Refuses a request before it is sent: the transfer goes back to the pool. */
static long long pq_engine_refuse(pq_engine *e, pq_xfer *x, const char *msg, char *err, size_t errcap)
{
    if (x) pq_engine_release(e, x);
    snprintf(err, errcap, "%s", msg);
    return 0;
}

long long pq_engine_submit(pq_engine *e, const pq_request *r, char *err, size_t errcap)
{
    pq_xfer *x = pq_transfer_get(e);
    CURLcode rc = CURLE_OK;
    CURLMcode mc;
    if (!x) return pq_engine_refuse(e, NULL, "out of memory (engine transfer)", err, errcap);
    x->resp_max = e->max_response;
    x->user = r->user;
    x->owner = r->owner;
    x->headers = r->headers ? r->headers : e->no_headers;
    pq_headers_ref(x->headers);
    if (r->body_len + 1 > x->body_cap) {
        char *p = realloc(x->body, r->body_len + 1);
        if (!p) return pq_engine_refuse(e, x, "out of memory (body)", err, errcap);
        x->body = p;
        x->body_cap = r->body_len + 1;
    }
    if (r->body_len) memcpy(x->body, r->body, r->body_len);
    x->body[r->body_len] = '\0';

    /* A batch sends every request to one URL: libcurl copies it once. */
    if (!x->url || strcmp(x->url, r->url) != 0) {
        free(x->url);
        x->url = NULL;
        if (pq_engine_dup(&x->url, r->url) != 0) return pq_engine_refuse(e, x, "out of memory (url)", err, errcap);
        rc = curl_easy_setopt(x->easy, CURLOPT_URL, r->url);
        if (rc != CURLE_OK) {
            free(x->url);
            x->url = NULL;
        }
    }
    if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers->list);
    if (r->is_post) {
        x->is_post = 1;
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        /* Never NULL: a POST without POSTFIELDS would read a callback. */
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
    } else {
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, (char *)NULL);
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
    }
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, r->timeout_ms < 0 ? e->timeout_ms : r->timeout_ms);
    if (rc != CURLE_OK) return pq_engine_refuse(e, x, curl_easy_strerror(rc), err, errcap);

    x->id = ++e->next_id;
    mc = curl_multi_add_handle(e->multi, x->easy);
    if (mc != CURLM_OK) return pq_engine_refuse(e, x, curl_multi_strerror(mc), err, errcap);
    e->running++;
    return x->id;
}

/* ---- driving ------------------------------------------------------------- */

/* Socket events taken per epoll_wait. */
#define PQ_ENGINE_EVENTS 64

void pq_engine_collect(pq_engine *e)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
        pq_xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        x->result = msg->data.result;
        if (x->resend_refused) {
            /* Reported as a refused rewind: sent once, not resent. */
            x->result = CURLE_SEND_FAIL_REWIND;
            snprintf(x->errbuf, sizeof x->errbuf, "%s",
                     "the reused connection closed before a reply; libcurl's resend was refused");
        }
        curl_multi_remove_handle(e->multi, x->easy);
        e->running--;
        e->ndone++;
        e->finished++;
        x->next = NULL;
        if (e->done_tail) e->done_tail->next = x;
        else e->done_head = x;
        e->done_tail = x;
    }
    if (e->running == 0) pq_sockets_unpark(e);
}

static double pq_engine_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* CURLMOPT_TIMERFUNCTION: remember when libcurl wants to run its timers. */
static int pq_engine_on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    pq_engine *e = userp;
    (void)multi;
    e->timer_set = timeout_ms >= 0;
    if (e->timer_set) e->timer_at = pq_engine_now() + (double)timeout_ms / 1000.0;
    return 0;
}

int pq_engine_pollfd(const pq_engine *e)
{
    return e->epfd;
}

long pq_engine_timeout_ms(const pq_engine *e)
{
    double left;
    if (!e->timer_set) return -1;
    left = (e->timer_at - pq_engine_now()) * 1000.0;
    if (left <= 0) return 0;
    return left > (double)LONG_MAX ? LONG_MAX : (long)left + 1;
}

/* Hands ready sockets and a due timer to libcurl; waits up to wait_ms first. */
static CURLMcode pq_engine_act(pq_engine *e, long wait_ms, int *interrupted)
{
    struct epoll_event evs[PQ_ENGINE_EVENTS];
    long timer = pq_engine_timeout_ms(e);
    int n, i, still;
    CURLMcode mc = CURLM_OK;
    if (timer >= 0 && timer < wait_ms) wait_ms = timer;
    n = epoll_wait(e->epfd, evs, PQ_ENGINE_EVENTS, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms);
    if (n < 0) {
        /* A signal: the caller looks at it before waiting again. */
        *interrupted = errno == EINTR;
        n = 0;
    }
    for (i = 0; i < n && mc == CURLM_OK; i++) {
        int flags;
        if (!pq_sockets_event(e, evs[i].data.fd)) continue; /* a parked socket */
        flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        mc = curl_multi_socket_action(e->multi, evs[i].data.fd, flags, &still);
    }
    if (mc == CURLM_OK && e->timer_set && pq_engine_timeout_ms(e) == 0) {
        e->timer_set = 0;
        mc = curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &still);
    }
    return mc;
}

int pq_engine_drive(pq_engine *e, long timeout_ms, long long want_id, char *err, size_t errcap)
{
    unsigned long start = e->finished;
    double t0 = pq_engine_now();
    long wait = 0; /* the first pass only takes what is ready */
    CURLMcode mc;
    for (;;) {
        int interrupted = 0;
        mc = pq_engine_act(e, wait, &interrupted);
        if (mc != CURLM_OK) break;
        pq_engine_collect(e);
        if (want_id > 0 ? pq_engine_find_done(e, want_id) != NULL : e->finished != start) return 0;
        if (e->running == 0 || interrupted) return 0;
        wait = timeout_ms - (long)((pq_engine_now() - t0) * 1000.0);
        if (wait <= 0) return 0;
    }
    snprintf(err, errcap, "libcurl multi error: %s", curl_multi_strerror(mc));
    return -1;
}

int pq_engine_running(const pq_engine *e)
{
    return e->running;
}

int pq_engine_done(const pq_engine *e)
{
    return e->ndone;
}

int pq_engine_transfers(const pq_engine *e)
{
    const pq_xfer *x;
    int n = 0;
    for (x = e->all; x; x = x->all_next) n++;
    return n;
}

pq_xfer *pq_engine_find_done(pq_engine *e, long long id)
{
    pq_xfer *x;
    for (x = e->done_head; x; x = x->next)
        if (id <= 0 || x->id == id) return x;
    return NULL;
}

/* Takes the first done transfer with this id (any when id <= 0), or, when
 * by_owner, with this owner. */
static pq_xfer *pq_engine_take(pq_engine *e, long long id, int by_owner, const void *owner)
{
    pq_xfer *prev = NULL, *x;
    for (x = e->done_head; x; prev = x, x = x->next) {
        if (by_owner ? x->owner != owner : id > 0 && x->id != id) continue;
        if (prev) prev->next = x->next;
        else e->done_head = x->next;
        if (e->done_tail == x) e->done_tail = prev;
        x->next = NULL;
        e->ndone--;
        return x;
    }
    return NULL;
}

pq_xfer *pq_engine_take_done(pq_engine *e, long long id)
{
    return pq_engine_take(e, id, 0, NULL);
}

pq_xfer *pq_engine_take_owned(pq_engine *e, const void *owner)
{
    return pq_engine_take(e, 0, 1, owner);
}

void pq_engine_abort(pq_engine *e, long long id)
{
    pq_xfer *x = pq_engine_take_done(e, id);
    if (!x) {
        /* Not on the done list: running, or unknown. */
        for (x = e->all; x && x->id != id; x = x->all_next) {}
        if (!x || id <= 0) return;
        curl_multi_remove_handle(e->multi, x->easy);
        if (--e->running == 0) pq_sockets_unpark(e);
    }
    pq_engine_release(e, x);
}

pq_xfer *pq_engine_find_owned(pq_engine *e, const void *owner)
{
    pq_xfer *x;
    for (x = e->done_head; x; x = x->next)
        if (x->owner == owner) return x;
    return NULL;
}

pq_xfer *pq_engine_next_done(pq_engine *e)
{
    return pq_engine_take_done(e, 0);
}

/* ---- the engine ------------------------------------------------------------ */

void pq_engine_opts_default(pq_engine_opts *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = 30000;
    o->connect_timeout_ms = 10000;
    o->max_response = PQ_MAX_RESPONSE;
    o->max_connections = 16;
    o->max_host_connections = 16;
}

void pq_engine_free(pq_engine *e)
{
    pq_xfer *x, *next;
    if (!e) return;
    /* Each easy handle leaves the multi before it is cleaned up. */
    for (x = e->all; x; x = next) {
        next = x->all_next;
        if (e->multi) curl_multi_remove_handle(e->multi, x->easy);
        pq_transfer_free(x);
    }
    pq_headers_unref(e->no_headers);
    if (e->multi) curl_multi_cleanup(e->multi);
    if (e->share) curl_share_cleanup(e->share);
    if (e->epfd >= 0) close(e->epfd);
    free(e->fds); /* after the share: closing its connections updates it */
    pq_transfer_free_store(e->ca_store);
    free(e->ca_file); free(e->ca_path); free(e->client_cert); free(e->client_key);
    if (e->key_password) {
        memset(e->key_password, 0, strlen(e->key_password));
        free(e->key_password);
    }
    free(e->pinned_pubkey); free(e->proxy); free(e->noproxy); free(e->user_agent);
    free(e);
}

CURLM *pq_engine_multi(pq_engine *e)
{
    return e->multi;
}

pq_engine *pq_engine_new(const pq_engine_opts *o, char *err, size_t errcap)
{
    pq_engine *e;
    CURLMcode mc = CURLM_OK;
    CURLSHcode sc = CURLSHE_OK;
    int rc = pq_engine_global_init();
    if (rc != 0) {
        snprintf(err, errcap, "curl_global_init failed: %s", curl_easy_strerror((CURLcode)rc));
        return NULL;
    }
    e = calloc(1, sizeof *e);
    if (e) e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!e || e->epfd < 0 || !(e->multi = curl_multi_init()) || !(e->share = curl_share_init()) ||
        !(e->no_headers = pq_headers_new(NULL, 0, err, errcap)) ||
        pq_engine_dup(&e->ca_file, o->ca_file) || pq_engine_dup(&e->ca_path, o->ca_path) ||
        pq_engine_dup(&e->client_cert, o->client_cert) || pq_engine_dup(&e->client_key, o->client_key) ||
        pq_engine_dup(&e->key_password, o->key_password) || pq_engine_dup(&e->pinned_pubkey, o->pinned_pubkey) ||
        pq_engine_dup(&e->proxy, o->proxy) || pq_engine_dup(&e->noproxy, o->noproxy) ||
        pq_engine_dup(&e->user_agent, o->user_agent ? o->user_agent : "prequalify/" PREQUALIFY_VERSION)) {
        pq_engine_free(e);
        snprintf(err, errcap, "out of memory (engine)");
        return NULL;
    }
    e->timeout_ms = o->timeout_ms;
    e->connect_timeout_ms = o->connect_timeout_ms;
    e->max_response = o->max_response;
    e->http2 = o->http2;
    e->ca_replace = o->ca_replace;
    /* Loaded now rather than at the first handshake, inside a host's loop
     * (a bad file is reported by the handshake, as with ca_replace). */
    if (!e->ca_replace && (e->ca_file || e->ca_path)) (void)pq_transfer_ca_store(e);

    sc = curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    if (sc == CURLSHE_OK) sc = curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (sc == CURLSHE_OK) sc = curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    if (sc != CURLSHE_OK) {
        snprintf(err, errcap, "libcurl share setup failed: %s", curl_share_strerror(sc));
        pq_engine_free(e);
        return NULL;
    }
    mc = curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, o->max_connections);
    if (mc == CURLM_OK) mc = curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, o->max_host_connections);
    if (mc == CURLM_OK) mc = curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, o->max_connections);
    if (mc == CURLM_OK) mc = curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, pq_sockets_on_socket);
    if (mc == CURLM_OK) mc = curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    if (mc == CURLM_OK) mc = curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, pq_engine_on_timer);
    if (mc == CURLM_OK) mc = curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, e->http2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
    if (mc != CURLM_OK) {
        snprintf(err, errcap, "libcurl multi setup failed: %s", curl_multi_strerror(mc));
        pq_engine_free(e);
        return NULL;
    }
    return e;
}
