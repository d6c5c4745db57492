/* The engine's epoll set, kept in step with libcurl's sockets (its
 * CURLMOPT_SOCKETFUNCTION, and the open and close callbacks of each
 * transfer's connections).
 *
 * libcurl forgets a keep-alive connection's socket when its transfer ends
 * (CURL_POLL_REMOVE) and tells of it again when the next transfer reuses the
 * connection: followed literally, that is an EPOLL_CTL_DEL and an
 * EPOLL_CTL_ADD per request, about 2.4 us of kernel time per pair. So a
 * socket the engine opened itself (so it sees its close) stays in the set
 * while it is idle, "parked", as long as it was watched for reading only.
 * An idle connection only becomes readable when the server closes it or
 * sends something unasked: such an event on a parked socket takes it out of
 * the set and is not handed to libcurl, which finds the connection dead when
 * it next looks at it. When nothing is running the engine is not driven, so
 * then the parked sockets leave the set (a host watching the descriptor is
 * not woken by an idle connection's close). Sockets the engine did not open
 * (a resolver's pipe) follow libcurl's word exactly. */
#include "pq_prefix.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "pq_engine_impl.h"

/* What the engine knows of a descriptor (one byte per descriptor number). */
#define PQ_FD_IN 0x01u     /* in the set for reading */
#define PQ_FD_OUT 0x02u    /* in the set for writing */
#define PQ_FD_SET 0x04u    /* in the epoll set */
#define PQ_FD_OURS 0x08u   /* opened by pq_sockets_open: its close is seen */
#define PQ_FD_PARKED 0x10u /* in the set, libcurl no longer watching */

/* The state byte of descriptor s, the table grown to hold it; NULL when it
 * cannot grow (then the socket is treated as one the engine did not open). */
static unsigned char *pq_sockets_slot(pq_engine *e, curl_socket_t s)
{
    if (s < 0) return NULL;
    if ((size_t)s >= e->nfds) {
        size_t n = e->nfds ? e->nfds : 64;
        unsigned char *p;
        while (n <= (size_t)s) n *= 2;
        p = realloc(e->fds, n);
        if (!p) return NULL;
        memset(p + e->nfds, 0, n - e->nfds);
        e->fds = p;
        e->nfds = n;
    }
    return &e->fds[s];
}

static int pq_sockets_ctl(pq_engine *e, int op, curl_socket_t s, unsigned events)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.fd = s;
    e->epoll_changes++;
    return epoll_ctl(e->epfd, op, s, &ev);
}

/* Takes s out of the set (it may be closed already: then epoll dropped it). */
static void pq_sockets_forget(pq_engine *e, curl_socket_t s, unsigned char *st)
{
    pq_sockets_ctl(e, EPOLL_CTL_DEL, s, 0);
    if (st && (*st & PQ_FD_PARKED)) e->nparked--;
    if (st) *st &= PQ_FD_OURS;
}

/* A parked socket libcurl watches again. */
static void pq_sockets_wake(pq_engine *e, unsigned char *st)
{
    if (!(*st & PQ_FD_PARKED)) return;
    *st &= (unsigned char)~PQ_FD_PARKED;
    e->nparked--;
}

int pq_sockets_on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    pq_engine *e = userp;
    unsigned char *st = pq_sockets_slot(e, s);
    unsigned want = ((what & CURL_POLL_IN) ? PQ_FD_IN : 0u) | ((what & CURL_POLL_OUT) ? PQ_FD_OUT : 0u);
    unsigned events = ((want & PQ_FD_IN) ? EPOLLIN : 0u) | ((want & PQ_FD_OUT) ? EPOLLOUT : 0u);
    int known = st && (*st & (PQ_FD_OURS | PQ_FD_SET)) == (PQ_FD_OURS | PQ_FD_SET);
    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        if (known && (*st & (PQ_FD_IN | PQ_FD_OUT)) == PQ_FD_IN) {
            if (!(*st & PQ_FD_PARKED)) e->nparked++;
            *st |= PQ_FD_PARKED;
        } else {
            pq_sockets_forget(e, s, st);
        }
        return 0;
    }
    if (known && (*st & (PQ_FD_IN | PQ_FD_OUT)) == want) {
        pq_sockets_wake(e, st);
        return 0;
    }
    /* A socket the engine did not open may have been closed and its number
     * reused behind its back: whichever of MOD and ADD is wrong fails. */
    if (known) {
        if (pq_sockets_ctl(e, EPOLL_CTL_MOD, s, events) != 0) pq_sockets_ctl(e, EPOLL_CTL_ADD, s, events);
    } else if (pq_sockets_ctl(e, EPOLL_CTL_ADD, s, events) != 0 && errno == EEXIST) {
        pq_sockets_ctl(e, EPOLL_CTL_MOD, s, events);
    }
    if (st) {
        pq_sockets_wake(e, st);
        *st = (unsigned char)((*st & PQ_FD_OURS) | PQ_FD_SET | want);
    }
    return 0;
}

int pq_sockets_event(pq_engine *e, curl_socket_t s)
{
    unsigned char *st = s >= 0 && (size_t)s < e->nfds ? &e->fds[s] : NULL;
    if (!st || !(*st & PQ_FD_PARKED)) return 1;
    pq_sockets_forget(e, s, st);
    return 0;
}

void pq_sockets_unpark(pq_engine *e)
{
    size_t i;
    if (!e->nparked) return;
    for (i = 0; i < e->nfds; i++)
        if (e->fds[i] & PQ_FD_PARKED) pq_sockets_forget(e, (curl_socket_t)i, &e->fds[i]);
}

curl_socket_t pq_sockets_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    pq_engine *e = clientp;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    unsigned char *st;
    if (s != CURL_SOCKET_BAD && purpose == CURLSOCKTYPE_IPCXN && (st = pq_sockets_slot(e, s)) != NULL)
        *st = PQ_FD_OURS;
    return s;
}

int pq_sockets_close(void *clientp, curl_socket_t s)
{
    pq_engine *e = clientp;
    unsigned char *st = s >= 0 && (size_t)s < e->nfds ? &e->fds[s] : NULL;
    /* Out of the set first: a child process holding a copy of the
     * descriptor would keep a closed socket's registration alive. */
    if (st && (*st & PQ_FD_SET)) pq_sockets_forget(e, s, st);
    if (st) *st = 0;
    return close(s);
}

void pq_engine_sockets(const pq_engine *e, pq_engine_socket_counts *c)
{
    size_t i;
    memset(c, 0, sizeof *c);
    c->epoll_changes = e->epoll_changes;
    for (i = 0; i < e->nfds; i++) {
        if (e->fds[i] & PQ_FD_SET) c->watched++;
        if (e->fds[i] & PQ_FD_PARKED) c->parked++;
    }
}
