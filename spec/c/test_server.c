/* The loopback HTTP server of the engine's C unit tests (see test_server.h).
 * Deliberately plain: one request at a time per connection, Content-Length
 * bodies only. */
#include "pq_prefix.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_server.h"

#define TS_BUF 16384

static pthread_mutex_t ts_lock = PTHREAD_MUTEX_INITIALIZER;
static int ts_connections;
static int ts_hits_echo, ts_hits_retry, ts_hits_big, ts_hits_drop, ts_hits_hold;

static int *ts_counter(const char *path)
{
    if (strcmp(path, "/echo") == 0) return &ts_hits_echo;
    if (strcmp(path, "/retry") == 0) return &ts_hits_retry;
    if (strcmp(path, "/big") == 0) return &ts_hits_big;
    if (strcmp(path, "/drop") == 0) return &ts_hits_drop;
    if (strcmp(path, "/hold") == 0) return &ts_hits_hold;
    return NULL;
}

static int ts_read(int *counter)
{
    int v;
    pthread_mutex_lock(&ts_lock);
    v = counter ? *counter : -1;
    pthread_mutex_unlock(&ts_lock);
    return v;
}

int test_server_connections(void)
{
    return ts_read(&ts_connections);
}

int test_server_hits(const char *path)
{
    return ts_read(ts_counter(path));
}

static void ts_count(int *counter)
{
    pthread_mutex_lock(&ts_lock);
    if (counter) (*counter)++;
    pthread_mutex_unlock(&ts_lock);
}

static int ts_send(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Value of header name in the head (NUL-terminated), copied to out. */
static void ts_header(const char *head, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    const char *p = head;
    out[0] = '\0';
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, k) == 0 && p[k] == ':') {
            const char *v = p + k + 1, *end;
            size_t n;
            while (*v == ' ') v++;
            end = strstr(v, "\r\n");
            n = end ? (size_t)(end - v) : strlen(v);
            if (n >= cap) n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return;
        }
    }
}

static void ts_reply(int fd, int status, const char *extra, const char *body, size_t n)
{
    char head[512];
    int hn = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n\r\n", status,
                      status == 200 ? "OK" : "Service Unavailable", extra, n);
    if (ts_send(fd, head, (size_t)hn) == 0) ts_send(fd, body, n);
}

/* The end of the request head in buf[0..len), or NULL (memmem is not POSIX). */
static char *ts_head_end(char *buf, size_t len)
{
    size_t i;
    for (i = 0; i + 4 <= len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) return buf + i;
    return NULL;
}

static void *ts_conn(void *arg)
{
    int fd = (int)(long)arg, served = 0;
    char *buf = malloc(TS_BUF);
    size_t len = 0;
    while (buf) {
        char method[16], path[256], token[128], clen[32], *end, reply[TS_BUF];
        size_t head_len, body_len;
        ssize_t r;
        while ((end = ts_head_end(buf, len)) == NULL) {
            if (len == TS_BUF - 1 || (r = recv(fd, buf + len, TS_BUF - 1 - len, 0)) <= 0) goto done;
            len += (size_t)r;
        }
        head_len = (size_t)(end - buf) + 4;
        buf[head_len - 2] = '\0';
        if (sscanf(buf, "%15s %255s", method, path) != 2) goto done;
        ts_header(buf, "X-Token", token, sizeof token);
        ts_header(buf, "Content-Length", clen, sizeof clen);
        body_len = (size_t)strtoul(clen, NULL, 10);
        while (len < head_len + body_len) {
            if (len == TS_BUF - 1 || (r = recv(fd, buf + len, TS_BUF - 1 - len, 0)) <= 0) goto done;
            len += (size_t)r;
        }
        ts_count(ts_counter(path));
        served++;
        if (strcmp(path, "/echo") == 0) {
            int n = snprintf(reply, sizeof reply, "%s %s %.*s", method, token, (int)body_len, buf + head_len);
            ts_reply(fd, 200, "Content-Type: application/json\r\n", reply, (size_t)n);
        } else if (strcmp(path, "/reply") == 0) {
            ts_reply(fd, 200, "Content-Type: application/json\r\n", buf + head_len, body_len);
        } else if (strcmp(path, "/retry") == 0) {
            ts_reply(fd, 503, "Retry-After: 7\r\n", "busy", 4);
        } else if (strcmp(path, "/big") == 0) {
            memset(reply, 'x', 4096);
            ts_reply(fd, 200, "", reply, 4096);
        } else if (strcmp(path, "/drop") == 0 && served > 1) {
            goto done;
        } else if (strcmp(path, "/bye") == 0) {
            ts_reply(fd, 200, "", "ok", 2);
            goto done;
        } else if (strcmp(path, "/hold") == 0) {
            while (recv(fd, reply, sizeof reply, 0) > 0) {}
            goto done;
        } else {
            ts_reply(fd, 200, "", "ok", 2);
        }
        memmove(buf, buf + head_len + body_len, len - head_len - body_len);
        len -= head_len + body_len;
    }
done:
    free(buf);
    close(fd);
    return NULL;
}

static void *ts_accept(void *arg)
{
    test_server *s = (test_server *)arg;
    for (;;) {
        pthread_t t;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) continue;
        ts_count(&ts_connections);
        if (pthread_create(&t, NULL, ts_conn, (void *)(long)c) != 0) close(c);
        else pthread_detach(t);
    }
    return NULL;
}

static int ts_bind(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    socklen_t alen = sizeof *a;
    if (fd < 0) return -1;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)a, sizeof *a) != 0 || getsockname(fd, (struct sockaddr *)a, &alen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int test_server_start(test_server *s)
{
    struct sockaddr_in a;
    pthread_t t;
    s->fd = ts_bind(&a);
    if (s->fd < 0 || listen(s->fd, 64) != 0) return -1;
    s->port = ntohs(a.sin_port);
    if (pthread_create(&t, NULL, ts_accept, s) != 0) return -1;
    pthread_detach(t);
    return 0;
}

int test_server_closed_port(void)
{
    struct sockaddr_in a;
    int fd = ts_bind(&a);
    if (fd < 0) return 1;
    close(fd); /* bound, never listened: connections are refused */
    return ntohs(a.sin_port);
}
