/* pq_engine: the HTTP engine in plain C (no Lua). One engine owns a libcurl
 * multi handle, a share handle (DNS, TLS sessions, connection cache) and a
 * pool of reusable transfers. Callers submit requests, drive the engine and
 * take finished transfers; libcurl callbacks only fill C buffers.
 *
 * Contract (single-threaded: one engine, its header lists and its transfers
 * are used from one thread at a time):
 *
 *  - pq_engine_global_init() once per process before the first engine (it is
 *    guarded; calling it again is cheap). pq_engine_new() copies every string
 *    of its options; pq_engine_free() releases everything, in-flight transfers
 *    included, and wipes the key password.
 *  - Header lists are reference counted and immutable once made:
 *    pq_headers_new() checks every name and value (pq_http_valid_header_*)
 *    and returns NULL with a message that never repeats a value. A transfer
 *    holds its own reference from submit until it is released, so a caller
 *    may drop its reference at any time, e.g. to replace the list when a
 *    bearer token rotates. "Expect:" is always added (no 100-continue).
 *  - pq_engine_submit() copies the body (into a buffer the transfer keeps for
 *    its next request) and returns an id > 0, or 0 with a message when the
 *    request was refused before anything was sent. Only POST and GET.
 *    A POST is never resent by libcurl on its own: a second attempt is
 *    stopped before it leaves, and reported as sent (curl code 65).
 *  - pq_engine_drive() runs transfers until one finishes during the call (or,
 *    when want_id > 0, until that one has finished), until none is running,
 *    or for at most timeout_ms. It is the one loop behind Lua's poll and
 *    perform. It returns 0, or -1 with a libcurl multi error in err.
 *  - Finished transfers wait on a done list, in completion order, until the
 *    caller takes them: pq_engine_next_done() takes the oldest,
 *    pq_engine_take_done(id) a given one (pq_engine_find_done() looks without
 *    taking). pq_engine_result() describes a finished transfer; its pointers stay valid until pq_engine_release(),
 *    which returns the transfer to the pool.
 *  - The engine drives libcurl through curl_multi_socket_action: its
 *    CURLMOPT_SOCKETFUNCTION keeps an epoll set in step with libcurl's
 *    sockets (an idle keep-alive connection stays in it while transfers
 *    run, see pq_sockets.c; the engine opens and closes its connections'
 *    sockets itself) and its CURLMOPT_TIMERFUNCTION records libcurl's next
 *    timeout (both only touch C state). pq_engine_pollfd() is that epoll
 *    descriptor: it is readable whenever a socket has something for the
 *    engine (never while nothing runs), so a host's event loop can watch
 *    it, and pq_engine_timeout_ms() says when libcurl's timer is due; then
 *    drive(e, 0, ...) does the ready work without waiting. */
#ifndef PQ_ENGINE_H
#define PQ_ENGINE_H

#include <stddef.h>

#include <curl/curl.h>

/* Default cap on a response body; TPP replies are a few hundred bytes. */
#ifndef PQ_MAX_RESPONSE
#define PQ_MAX_RESPONSE (1024 * 1024)
#endif
/* Most header lines one request may carry. */
#ifndef PQ_HEADERS_MAX
#define PQ_HEADERS_MAX 64
#endif
/* Size of the message buffers the functions below fill. */
#define PQ_ENGINE_ERR_MAX 256

typedef struct pq_engine pq_engine;
typedef struct pq_xfer pq_xfer;
typedef struct pq_headers pq_headers;

typedef struct pq_engine_opts {
    long timeout_ms;         /* whole transfer, default 30000 */
    long connect_timeout_ms; /* default 10000 */
    size_t max_response;     /* bytes, default PQ_MAX_RESPONSE */
    long max_connections;    /* default 16 */
    long max_host_connections; /* default max_connections */
    int http2;               /* HTTP/2 over TLS with multiplexing */
    int ca_replace;          /* ca_file/ca_path replace the system roots */
    const char *ca_file, *ca_path, *client_cert, *client_key, *key_password;
    const char *pinned_pubkey, *proxy, *noproxy;
    const char *user_agent;  /* NULL: "prequalify/<version>" */
} pq_engine_opts;

typedef struct pq_header {
    const char *name, *value;
    size_t name_len, value_len;
} pq_header;

typedef struct pq_request {
    int is_post;             /* 1: POST with body; 0: GET */
    const char *url;
    pq_headers *headers;     /* NULL: none (the transfer takes a reference) */
    const char *body;        /* copied; may be NULL when body_len is 0 */
    size_t body_len;
    long timeout_ms;         /* < 0: the engine's; 0: no limit */
    void *user;              /* handed back in the result */
    const void *owner;       /* who takes it (pq_engine_find_owned); NULL: Lua's poll */
} pq_request;

typedef struct pq_result {
    long long id;
    void *user;
    long status;             /* 0 when no reply was read */
    const char *body;        /* NUL-terminated; body_len bytes */
    size_t body_len;
    const char *content_type, *retry_after; /* NULL when absent */
    int curl_code;
    const char *curl_error;  /* NULL when curl_code is 0 */
    int sent;                /* request bytes left: the server may have acted */
    int oversized;           /* the reply was longer than max_response */
    long new_connections;
    double elapsed, connect_time, tls_time, first_byte_time; /* seconds */
} pq_result;

/* 0, or a CURLcode from curl_global_init. */
int pq_engine_global_init(void);

void pq_engine_opts_default(pq_engine_opts *o);
/* NULL with a message in err (PQ_ENGINE_ERR_MAX bytes) on failure. */
pq_engine *pq_engine_new(const pq_engine_opts *o, char *err, size_t errcap);
void pq_engine_free(pq_engine *e);
CURLM *pq_engine_multi(pq_engine *e);

pq_headers *pq_headers_new(const pq_header *h, size_t n, char *err, size_t errcap);
/* 1 when the list holds exactly these n lines in this order. */
int pq_headers_same(const pq_headers *hl, const pq_header *h, size_t n);
void pq_headers_ref(pq_headers *hl);
void pq_headers_unref(pq_headers *hl); /* NULL is fine */

long long pq_engine_submit(pq_engine *e, const pq_request *r, char *err, size_t errcap);
int pq_engine_drive(pq_engine *e, long timeout_ms, long long want_id, char *err, size_t errcap);
void pq_engine_collect(pq_engine *e);
/* The epoll descriptor (owned by the engine) and the milliseconds until
 * libcurl's timer is due (0: now; -1: no timer). */
int pq_engine_pollfd(const pq_engine *e);
long pq_engine_timeout_ms(const pq_engine *e);

/* The epoll set: descriptors in it, of which idle keep-alive connections
 * kept there between requests, and epoll_ctl calls made so far. */
typedef struct pq_engine_socket_counts {
    int watched, parked;
    long epoll_changes;
} pq_engine_socket_counts;
void pq_engine_sockets(const pq_engine *e, pq_engine_socket_counts *c);

int pq_engine_running(const pq_engine *e); /* submitted, not finished */
int pq_engine_done(const pq_engine *e);    /* finished, not taken */
int pq_engine_transfers(const pq_engine *e); /* owned: busy, done or idle */
/* Without taking it: the transfer with this id, or the oldest when id <= 0. */
pq_xfer *pq_engine_find_done(pq_engine *e, long long id);
pq_xfer *pq_engine_next_done(pq_engine *e);
/* Without taking it: the oldest finished transfer submitted with this
 * owner (several takers can share one engine without taking each other's). */
pq_xfer *pq_engine_find_owned(pq_engine *e, const void *owner);
pq_xfer *pq_engine_take_owned(pq_engine *e, const void *owner);
pq_xfer *pq_engine_take_done(pq_engine *e, long long id);
void pq_engine_result(pq_xfer *x, pq_result *out);
/* The reply alone, cheaper: id, user, status, body, curl_code and elapsed;
 * every other field zero or NULL (what pq_engine_result adds). */
void pq_engine_reply(pq_xfer *x, pq_result *out);
void pq_engine_release(pq_engine *e, pq_xfer *x);
/* Stops a submitted transfer (running or finished, not yet taken) and
 * returns it to the pool; nothing when no such transfer is held. */
void pq_engine_abort(pq_engine *e, long long id);

#endif
