/* Unit test of the Lua-free engine (pq_engine.h) against the loopback server
 * of test_server.c: results as a C caller sees them, shared header lists
 * replaced while requests are in flight, Retry-After, oversized replies, a
 * refused connection, the refused silent resend of a POST, header checks,
 * drive's timeout and freeing an engine with a transfer in flight, idle
 * connections kept in the epoll set and closed by the server. Built
 * under ASan+UBSan by .ci/extra; prints one line per failed check and a
 * total; exits non-zero on any failure. No sleeps: every wait is a drive
 * with a bound. */
#include "pq_prefix.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pq_engine.h"
#include "test_server.h"
#include "test_check.h"

static test_server srv;

static char err[PQ_ENGINE_ERR_MAX];

static void url(char *out, size_t cap, const char *path)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", srv.port, path);
}

static pq_engine *engine(long max_conn, size_t max_response)
{
    pq_engine_opts o;
    pq_engine *e;
    pq_engine_opts_default(&o);
    o.max_connections = o.max_host_connections = max_conn;
    if (max_response) o.max_response = max_response;
    o.timeout_ms = 20000;
    e = pq_engine_new(&o, err, sizeof err);
    if (!e) printf("engine: %s\n", err);
    return e;
}

static long long submit(pq_engine *e, int post, const char *path, pq_headers *h, const char *body, void *user)
{
    char u[128];
    pq_request r;
    long long id;
    url(u, sizeof u, path);
    memset(&r, 0, sizeof r);
    r.is_post = post;
    r.url = u;
    r.headers = h;
    r.body = body;
    r.body_len = body ? strlen(body) : 0;
    r.timeout_ms = -1;
    r.user = user;
    id = pq_engine_submit(e, &r, err, sizeof err);
    if (id == 0) printf("submit: %s\n", err);
    return id;
}

/* Drives until a transfer is done and takes it (bounded: 20 s). */
static pq_xfer *wait_one(pq_engine *e, long long id)
{
    int i;
    for (i = 0; i < 200; i++) {
        pq_xfer *x = id > 0 ? pq_engine_take_done(e, id) : pq_engine_next_done(e);
        if (x) return x;
        if (pq_engine_drive(e, 100, id, err, sizeof err) != 0) printf("drive: %s\n", err);
    }
    return NULL;
}

static pq_headers *token_headers(const char *value)
{
    pq_header h[2] = {{"X-Token", NULL, 7, 0}, {"Content-Type", "application/json", 12, 16}};
    h[0].value = value;
    h[0].value_len = strlen(value);
    return pq_headers_new(h, 2, err, sizeof err);
}

static void test_get(void)
{
    pq_engine *e = engine(4, 0);
    pq_headers *h = token_headers("abc");
    pq_result res;
    long long id = submit(e, 0, "/echo", h, NULL, &srv);
    pq_xfer *x;
    pq_headers_unref(h); /* the transfer holds its own reference */
    CHECK(id > 0 && pq_engine_running(e) == 1);
    x = wait_one(e, id);
    CHECK(x != NULL);
    if (x) {
        pq_engine_result(x, &res);
        CHECK(res.id == id && res.user == &srv);
        CHECK(res.status == 200 && res.curl_code == 0 && res.curl_error == NULL);
        CHECK(res.body_len == strlen("GET abc ") && strcmp(res.body, "GET abc ") == 0);
        CHECK(res.content_type && strcmp(res.content_type, "application/json") == 0);
        CHECK(res.retry_after == NULL);
        CHECK(res.sent == 1 && res.oversized == 0 && res.new_connections == 1);
        CHECK(res.elapsed >= res.first_byte_time && res.first_byte_time > 0);
        {
            /* The reply alone: the same reply, nothing of the rest. */
            pq_result brief;
            pq_engine_reply(x, &brief);
            CHECK(brief.id == id && brief.user == &srv && brief.status == 200 && brief.curl_code == 0);
            CHECK(brief.body_len == res.body_len && strcmp(brief.body, res.body) == 0);
            CHECK(brief.elapsed == res.elapsed);
            CHECK(brief.content_type == NULL && brief.retry_after == NULL && brief.curl_error == NULL);
            CHECK(brief.sent == 0 && brief.new_connections == 0 && brief.first_byte_time == 0);
        }
        pq_engine_release(e, x);
    }
    CHECK(pq_engine_running(e) == 0 && pq_engine_done(e) == 0 && pq_engine_transfers(e) == 1);
    pq_engine_free(e);
}

/* 20 POSTs over at most 4 connections; the header list is replaced half-way
 * (a token rotation) while the first ten are still in flight. */
static void test_many_posts_and_rotation(void)
{
    pq_engine *e = engine(4, 0);
    pq_headers *h = token_headers("one");
    int i, got = 0, right = 0, before = test_server_connections();
    long conns = 0;
    char body[16];
    for (i = 0; i < 20; i++) {
        if (i == 10) {
            pq_headers_unref(h);
            h = token_headers("two");
        }
        snprintf(body, sizeof body, "%d", i);
        CHECK(submit(e, 1, "/echo", h, body, (void *)(intptr_t)(i + 1)) > 0);
    }
    pq_headers_unref(h);
    CHECK(pq_engine_running(e) == 20);
    while (got < 20) {
        pq_xfer *x = wait_one(e, 0);
        pq_result res;
        char want[32];
        int n;
        if (!x) break;
        pq_engine_result(x, &res);
        n = (int)(intptr_t)res.user - 1;
        snprintf(want, sizeof want, "POST %s %d", n < 10 ? "one" : "two", n);
        right += res.status == 200 && strcmp(res.body, want) == 0;
        conns += res.new_connections;
        pq_engine_release(e, x);
        got++;
    }
    CHECK(got == 20 && right == 20);
    CHECK(conns <= 4 && test_server_connections() - before <= 4);
    CHECK(pq_engine_transfers(e) <= 20);
    pq_engine_free(e);
}

static void test_retry_after_and_oversized(void)
{
    pq_engine *e = engine(2, 1024);
    pq_result res;
    pq_xfer *x = wait_one(e, submit(e, 1, "/retry", NULL, "{}", NULL));
    CHECK(x != NULL);
    if (x) {
        pq_engine_result(x, &res);
        CHECK(res.status == 503 && res.retry_after && strcmp(res.retry_after, "7") == 0 && res.sent == 1);
        CHECK(strcmp(res.body, "busy") == 0);
        pq_engine_release(e, x);
    }
    x = wait_one(e, submit(e, 0, "/big", NULL, NULL, NULL));
    CHECK(x != NULL);
    if (x) {
        pq_engine_result(x, &res);
        /* The transfer of /retry, reused: the new URL was set. */
        CHECK(res.oversized == 1 && res.curl_code != 0 && res.curl_error != NULL);
        CHECK(test_server_hits("/big") == 1);
        pq_engine_release(e, x);
    }
    pq_engine_free(e);
}

static void test_refused_connection(void)
{
    pq_engine *e = engine(2, 0);
    pq_request r;
    char u[64];
    pq_xfer *x;
    pq_result res;
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", test_server_closed_port());
    memset(&r, 0, sizeof r);
    r.is_post = 1;
    r.url = u;
    r.body = "{}";
    r.body_len = 2;
    r.timeout_ms = -1;
    x = wait_one(e, pq_engine_submit(e, &r, err, sizeof err));
    CHECK(x != NULL);
    if (x) {
        pq_engine_result(x, &res);
        CHECK(res.status == 0 && res.curl_code == CURLE_COULDNT_CONNECT && res.sent == 0);
        pq_engine_release(e, x);
    }
    pq_engine_free(e);
}

/* A reused connection that dies before any reply byte: libcurl would send
 * the POST again on a new one; the engine stops that, so the server saw it
 * once, and reports it as sent with curl code 65. */
static void test_post_not_resent(void)
{
    pq_engine *e = engine(1, 0);
    pq_result res;
    pq_xfer *x = wait_one(e, submit(e, 0, "/echo", NULL, NULL, NULL));
    CHECK(x != NULL);
    if (x) pq_engine_release(e, x);
    x = wait_one(e, submit(e, 1, "/drop", NULL, "{\"x\":1}", NULL));
    CHECK(x != NULL);
    if (x) {
        pq_engine_result(x, &res);
        CHECK(res.curl_code == CURLE_SEND_FAIL_REWIND && res.sent == 1);
        CHECK(res.curl_error && strstr(res.curl_error, "resend was refused") != NULL);
        pq_engine_release(e, x);
    }
    CHECK(test_server_hits("/drop") == 1);
    pq_engine_free(e);
}

static void test_header_checks(void)
{
    pq_header bad_value = {"X-Token", "a\r\nX-Evil: b", 7, 13};
    pq_header bad_name = {"X Token", "v", 7, 1};
    pq_header ok[1] = {{"X-Token", "v", 7, 1}};
    pq_headers *h;
    CHECK(pq_headers_new(&bad_value, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "header 'X-Token' holds CR, LF, NUL") != NULL && strstr(err, "Evil") == NULL);
    CHECK(pq_headers_new(&bad_name, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "header '?'") != NULL);
    h = pq_headers_new(ok, 1, err, sizeof err);
    CHECK(h != NULL && pq_headers_same(h, ok, 1) && !pq_headers_same(h, ok, 0));
    ok[0].value = "w";
    CHECK(!pq_headers_same(h, ok, 1));
    pq_headers_unref(h);
}

/* drive returns after its timeout with the transfer still running; freeing
 * the engine then cleans up the transfer in flight. */
static void test_drive_timeout_and_free(void)
{
    pq_engine *e = engine(2, 0);
    long long id = submit(e, 0, "/hold", NULL, NULL, NULL);
    CHECK(pq_engine_drive(e, 50, 0, err, sizeof err) == 0);
    CHECK(pq_engine_running(e) == 1 && pq_engine_done(e) == 0);
    CHECK(pq_engine_find_done(e, id) == NULL);
    pq_engine_free(e);
}

/* drive(want_id) waits for that transfer; the other one stays done. */
static void test_take_by_id(void)
{
    pq_engine *e = engine(4, 0);
    long long a = submit(e, 0, "/echo", NULL, NULL, NULL), b = submit(e, 1, "/echo", NULL, "b", NULL);
    pq_xfer *x = wait_one(e, b), *y;
    pq_result res;
    CHECK(x != NULL);
    if (x) {
        pq_engine_result(x, &res);
        CHECK(res.id == b && strcmp(res.body, "POST  b") == 0);
        pq_engine_release(e, x);
    }
    y = wait_one(e, 0);
    CHECK(y != NULL);
    if (y) {
        pq_engine_result(y, &res);
        CHECK(res.id == a && strcmp(res.body, "GET  ") == 0);
        pq_engine_release(e, y);
    }
    CHECK(pq_engine_next_done(e) == NULL);
    pq_engine_free(e);
}

/* One keep-alive connection serves request after request without the
 * epoll set changing while the engine is busy (a /hold transfer runs on a
 * second connection all along): its socket stays in the set between
 * requests. Once nothing runs, the set holds nothing. */
static void test_idle_connection_stays_watched(void)
{
    pq_engine *e = engine(2, 0);
    pq_engine_socket_counts c;
    long after_first = 0;
    int i, ok = 1, before = test_server_connections();
    long long hold = submit(e, 0, "/hold", NULL, NULL, NULL);
    for (i = 0; i < 10; i++) {
        long long id = submit(e, 1, "/echo", NULL, "x", NULL);
        pq_xfer *x = wait_one(e, id);
        if (!x) {
            ok = 0;
            break;
        }
        pq_engine_release(e, x);
        pq_engine_sockets(e, &c);
        if (c.watched != 2 || c.parked != 1) ok = 0;
        if (i == 0) after_first = c.epoll_changes;
    }
    CHECK(ok);
    CHECK(test_server_connections() == before + 2);
    pq_engine_sockets(e, &c);
    CHECK(after_first >= 1 && c.epoll_changes == after_first);
    pq_engine_abort(e, hold);
    pq_engine_sockets(e, &c);
    CHECK(pq_engine_running(e) == 0 && c.watched == 0 && c.parked == 0);
    pq_engine_free(e);
}

/* The server closes an idle connection while another request runs: its
 * event takes the socket out of the set (the set is not left readable,
 * which would make every wait return at once), and the next request gets a
 * new connection. */
static void test_idle_connection_closed_by_server(void)
{
    pq_engine *e = engine(2, 0);
    pq_engine_socket_counts c;
    struct pollfd pfd;
    int before = test_server_connections();
    long long hold = submit(e, 0, "/hold", NULL, NULL, NULL);
    long long id = submit(e, 0, "/bye", NULL, NULL, NULL);
    pq_xfer *x = wait_one(e, id);
    pq_result res;
    CHECK(x != NULL);
    if (x) pq_engine_release(e, x);
    pq_engine_sockets(e, &c);
    CHECK(c.watched == 2 && c.parked == 1);
    pfd.fd = pq_engine_pollfd(e);
    pfd.events = POLLIN;
    CHECK(poll(&pfd, 1, 5000) == 1); /* the server's close */
    CHECK(pq_engine_drive(e, 0, 0, err, sizeof err) == 0);
    pq_engine_sockets(e, &c);
    CHECK(c.watched == 1 && c.parked == 0);
    CHECK(poll(&pfd, 1, 0) == 0);
    id = submit(e, 1, "/echo", NULL, "again", NULL);
    x = wait_one(e, id);
    CHECK(x != NULL);
    if (x) {
        pq_engine_result(x, &res);
        CHECK(res.status == 200 && strcmp(res.body, "POST  again") == 0 && res.new_connections == 1);
        pq_engine_release(e, x);
    }
    CHECK(test_server_connections() == before + 3);
    pq_engine_abort(e, hold);
    pq_engine_free(e);
}

/* Nothing running: the parked connection leaves the set, so a server that
 * closes it does not make the engine's descriptor readable for a host loop
 * that would then find nothing to drive. */
static void test_idle_engine_is_not_woken(void)
{
    pq_engine *e = engine(1, 0);
    pq_engine_socket_counts c;
    struct pollfd pfd;
    pq_xfer *x = wait_one(e, submit(e, 0, "/bye", NULL, NULL, NULL));
    CHECK(x != NULL);
    if (x) pq_engine_release(e, x);
    pq_engine_sockets(e, &c);
    CHECK(pq_engine_running(e) == 0 && c.watched == 0 && c.parked == 0);
    pfd.fd = pq_engine_pollfd(e);
    pfd.events = POLLIN;
    CHECK(poll(&pfd, 1, 200) == 0);
    pq_engine_free(e);
}

int main(void)
{
    if (pq_engine_global_init() != 0 || test_server_start(&srv) != 0) {
        printf("setup failed\n");
        return 2;
    }
    test_get();
    test_many_posts_and_rotation();
    test_retry_after_and_oversized();
    test_refused_connection();
    test_post_not_resent();
    test_header_checks();
    test_drive_timeout_and_free();
    test_take_by_id();
    test_idle_connection_stays_watched();
    test_idle_connection_closed_by_server();
    test_idle_engine_is_not_woken();
    curl_global_cleanup();
    return test_total();
}
