/* Internal to the engine (pq_engine.c, pq_transfer.c, pq_sockets.c, pq_headers.c): the
 * structures behind the opaque types of pq_engine.h. No other file includes
 * this one. */
#ifndef PQ_ENGINE_IMPL_H
#define PQ_ENGINE_IMPL_H

#include "pq_engine.h"
#include "pq_http.h"

struct pq_headers {
    struct curl_slist *list;
    size_t n;  /* lines before the final "Expect:" */
    int refs;
};

struct pq_xfer {
    CURL *easy;
    pq_xfer *next;     /* free list or done list */
    pq_xfer *all_next; /* every transfer the engine owns */
    long long id;
    void *user;
    const void *owner;
    pq_headers *headers;
    char *url;          /* the URL set on the handle (set again only when it changes) */
    char *body;
    size_t body_cap;
    char *resp;
    size_t resp_len, resp_cap, resp_max;
    char content_type[PQ_HEADER_VALUE_MAX];
    char retry_after[PQ_HEADER_VALUE_MAX];
    char errbuf[CURL_ERROR_SIZE];
    int oversized;
    int is_post;
    int attempts;       /* times libcurl was about to send this request */
    int resend_refused; /* libcurl's silent resend of a POST was stopped */
    CURLcode result;
};

struct pq_engine {
    CURLM *multi;
    CURLSH *share;
    pq_xfer *all, *free_list, *done_head, *done_tail;
    pq_headers *no_headers; /* "Expect:" alone */
    int running, ndone;
    int epfd;              /* epoll set following libcurl's sockets */
    unsigned char *fds;    /* what the set holds, per descriptor (pq_sockets.c) */
    size_t nfds;
    int nparked;           /* idle connections kept in the set */
    long epoll_changes;    /* epoll_ctl calls made */
    int timer_set;         /* libcurl asked for a timeout at timer_at */
    double timer_at;       /* monotonic seconds */
    unsigned long finished; /* transfers ever finished, for drive() */
    long long next_id;
    char *ca_file, *ca_path, *client_cert, *client_key, *key_password;
    char *pinned_pubkey, *proxy, *noproxy, *user_agent;
    int ca_replace, http2;
    void *ca_store;        /* X509_STORE shared by TLS contexts (pq_transfer.c) */
    long timeout_ms, connect_timeout_ms;
    size_t max_response;
};

/* pq_transfer.c: the pool of transfers and their easy handles. */
pq_xfer *pq_transfer_get(pq_engine *e);
void pq_transfer_reset(pq_xfer *x);
void pq_transfer_free(pq_xfer *x);
/* Builds the engine's trust store (system roots plus ca_file / ca_path) if
 * not yet built; 0, or -1 (then the TLS handshake reports the bad file). */
int pq_transfer_ca_store(pq_engine *e);
void pq_transfer_free_store(void *store);

/* pq_sockets.c: the epoll set kept in step with libcurl's sockets. The
 * first is the multi's CURLMOPT_SOCKETFUNCTION; open and close are every
 * transfer's CURLOPT_OPENSOCKETFUNCTION and CURLOPT_CLOSESOCKETFUNCTION
 * (their data the engine). pq_sockets_event says whether an event on s is
 * for libcurl (0: a parked socket, now out of the set). pq_sockets_unpark
 * takes every parked socket out of the set: an engine with nothing running
 * is not driven, so its descriptor must not become readable. */
int pq_sockets_on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
curl_socket_t pq_sockets_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a);
int pq_sockets_close(void *clientp, curl_socket_t s);
int pq_sockets_event(pq_engine *e, curl_socket_t s);
void pq_sockets_unpark(pq_engine *e);

#endif
