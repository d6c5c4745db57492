/* prequalify.core engine: one userdata owning a libcurl multi handle, a share
 * handle (DNS, TLS sessions, connection cache) and a pool of reusable easy
 * handles. Lua submits requests and polls for finished ones; libcurl
 * callbacks only fill C buffers, so Lua is never entered from inside libcurl
 * and no error can longjmp across curl frames. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lcore.h"
#include "pq_http.h"

#define LENGINE_MT "prequalify.engine"

/* Default cap on a response body; TPP replies are a few hundred bytes. */
#ifndef PQ_MAX_RESPONSE
#define PQ_MAX_RESPONSE (1024 * 1024)
#endif
/* Response buffers larger than this are freed after use rather than kept. */
#ifndef PQ_KEEP_BUFFER
#define PQ_KEEP_BUFFER (64 * 1024)
#endif
#ifndef PQ_HEADER_VALUE_MAX
#define PQ_HEADER_VALUE_MAX 128
#endif
/* With a pre-request callback (libcurl 7.80) a POST body goes out as
 * POSTFIELDS, in the same send() as the headers; older libcurl reads it
 * through a callback, after the headers, in a second send(). */
#ifndef PQ_USE_PREREQ
#if LIBCURL_VERSION_NUM >= 0x075000
#define PQ_USE_PREREQ 1
#else
#define PQ_USE_PREREQ 0
#endif
#endif

typedef struct lengine_xfer {
    CURL *easy;
    struct lengine_xfer *next;     /* free list or done list */
    struct lengine_xfer *all_next; /* every transfer the engine owns */
    struct lengine *engine;
    lua_Integer id;
    struct curl_slist *headers;
    char *body;
    size_t body_len, body_off;
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
} lengine_xfer;

typedef struct lengine {
    CURLM *multi;
    CURLSH *share;
    lengine_xfer *all;
    lengine_xfer *free_list;
    lengine_xfer *done_head, *done_tail;
    int running;          /* transfers added to the multi and not yet done */
    int closed;
    lua_Integer next_id;
    /* Options applied to every easy handle. */
    char *ca_file, *ca_path, *client_cert, *client_key, *key_password;
    char *pinned_pubkey, *proxy, *noproxy, *user_agent;
    int ca_replace, http2;
    long timeout_ms, connect_timeout_ms;
    size_t max_response;
} lengine;

/* ---- process-wide init --------------------------------------------------- */

static pthread_once_t lengine_once = PTHREAD_ONCE_INIT;
static CURLcode lengine_init_rc = CURLE_OK;

static void lengine_global_init(void)
{
    lengine_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- helpers -------------------------------------------------------------- */

static char *lengine_strdup(const char *s)
{
    size_t n;
    char *d;
    if (!s) return NULL;
    n = strlen(s) + 1;
    d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static lengine *lengine_check(lua_State *L, int idx)
{
    lengine *e = (lengine *)luaL_checkudata(L, idx, LENGINE_MT);
    if (e->closed) luaL_error(L, "attempt to use a closed engine");
    return e;
}

static double lengine_seconds_opt(lua_State *L, int t, const char *name, double def, double lo, double hi)
{
    double v = def;
    int ty = lua_getfield(L, t, name);
    if (ty != LUA_TNIL) {
        if (ty != LUA_TNUMBER) luaL_error(L, "engine option '%s': expected seconds as a number", name);
        v = lua_tonumber(L, -1);
        if (!(v >= lo && v <= hi)) luaL_error(L, "engine option '%s': expected %f to %f seconds", name, lo, hi);
    }
    lua_pop(L, 1);
    return v;
}

static char *lengine_string_opt(lua_State *L, int t, const char *name)
{
    char *s = NULL;
    int ty = lua_getfield(L, t, name);
    if (ty != LUA_TNIL) {
        if (ty != LUA_TSTRING) luaL_error(L, "engine option '%s': expected a string", name);
        s = lengine_strdup(lua_tostring(L, -1));
        if (!s) luaL_error(L, "out of memory");
    }
    lua_pop(L, 1);
    return s;
}

static int lengine_bool_opt(lua_State *L, int t, const char *name)
{
    int v;
    lua_getfield(L, t, name);
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* ---- libcurl callbacks: C buffers only ------------------------------------ */

static size_t lengine_on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    lengine_xfer *x = (lengine_xfer *)ud;
    size_t n = size * nmemb;
    if (x->resp_len + n > x->resp_max) {
        x->oversized = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (x->resp_len + n + 1 > x->resp_cap) {
        size_t cap = x->resp_cap ? x->resp_cap : 1024;
        char *p;
        while (cap < x->resp_len + n + 1) cap *= 2;
        p = realloc(x->resp, cap);
        if (!p) return 0;
        x->resp = p;
        x->resp_cap = cap;
    }
    memcpy(x->resp + x->resp_len, ptr, n);
    x->resp_len += n;
    return n;
}

/* Parsing lives in pq_http.c (plain C, fuzzed); this only routes the line. */
static size_t lengine_on_header(char *line, size_t size, size_t nmemb, void *ud)
{
    lengine_xfer *x = (lengine_xfer *)ud;
    size_t n = size * nmemb;
    if (pq_http_is_status_line(line, n)) {
        /* A new response (after a 1xx): forget the previous headers. */
        x->content_type[0] = x->retry_after[0] = '\0';
    } else if (!pq_http_header_match(line, n, "content-type", x->content_type, sizeof x->content_type)) {
        pq_http_header_match(line, n, "retry-after", x->retry_after, sizeof x->retry_after);
    }
    return n;
}

static size_t lengine_on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    lengine_xfer *x = (lengine_xfer *)ud;
    size_t n = size * nitems, left = x->body_len - x->body_off;
    if (n > left) n = left;
    memcpy(buf, x->body + x->body_off, n);
    x->body_off += n;
    return n;
}

/* libcurl silently resends a request on a reused connection that died before
 * any reply byte. For a non-idempotent POST that may duplicate an approval,
 * so refuse the rewind: the transfer fails and is reported as "unknown". */
static int lengine_on_seek(void *ud, curl_off_t offset, int origin)
{
    lengine_xfer *x = (lengine_xfer *)ud;
    if (offset == 0 && origin == SEEK_SET && x->body_off == 0) return CURL_SEEKFUNC_OK;
    return CURL_SEEKFUNC_CANTSEEK;
}

#if PQ_USE_PREREQ
/* The same guard for a body sent as POSTFIELDS, which libcurl resends
 * without asking the seek callback: it calls this before every attempt, so
 * a POST's second attempt is stopped before it is sent. */
static int lengine_on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    lengine_xfer *x = (lengine_xfer *)ud;
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (!x->is_post || x->attempts++ == 0) return CURL_PREREQFUNC_OK;
    x->resend_refused = 1;
    return CURL_PREREQFUNC_ABORT;
}
#endif

/* Adds ca_file / ca_path to the store libcurl already loaded (the system
 * roots), so that a corporate CA extends trust instead of replacing it. */
static CURLcode lengine_on_ssl_ctx(CURL *easy, void *sslctx, void *ud)
{
    lengine *e = (lengine *)ud;
    X509_STORE *store = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);
    (void)easy;
    if (!store) return CURLE_SSL_CACERT_BADFILE;
    if ((e->ca_file || e->ca_path) &&
        X509_STORE_load_locations(store, e->ca_file, e->ca_path) != 1)
        return CURLE_SSL_CACERT_BADFILE;
    return CURLE_OK;
}

/* ---- transfers ------------------------------------------------------------ */

/* The header list stays with the transfer for its next request (see
 * lengine_same_headers); the rest is cleared. */
static void lengine_xfer_reset(lengine_xfer *x)
{
    free(x->body);
    x->body = NULL;
    x->body_len = x->body_off = 0;
    if (x->resp_cap > PQ_KEEP_BUFFER) {
        free(x->resp);
        x->resp = NULL;
        x->resp_cap = 0;
    }
    x->resp_len = 0;
    x->content_type[0] = x->retry_after[0] = x->errbuf[0] = '\0';
    x->oversized = x->is_post = x->attempts = x->resend_refused = 0;
    x->result = CURLE_OK;
}

static void lengine_xfer_free(lengine_xfer *x)
{
    lengine_xfer_reset(x);
    curl_slist_free_all(x->headers);
    if (x->easy) curl_easy_cleanup(x->easy);
    free(x->resp);
    free(x);
}

/* Settings that stay the same for every request of this engine. */
static int lengine_easy_setup(lengine *e, lengine_xfer *x)
{
    CURL *h = x->easy;
    CURLcode rc = CURLE_OK;
#define PQ_SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val)
    PQ_SET(CURLOPT_SHARE, e->share);
    PQ_SET(CURLOPT_NOSIGNAL, 1L);
    PQ_SET(CURLOPT_PRIVATE, (void *)x);
    PQ_SET(CURLOPT_ERRORBUFFER, x->errbuf);
    PQ_SET(CURLOPT_WRITEFUNCTION, lengine_on_write);
    PQ_SET(CURLOPT_WRITEDATA, (void *)x);
    PQ_SET(CURLOPT_HEADERFUNCTION, lengine_on_header);
    PQ_SET(CURLOPT_HEADERDATA, (void *)x);
    PQ_SET(CURLOPT_READFUNCTION, lengine_on_read);
    PQ_SET(CURLOPT_READDATA, (void *)x);
    PQ_SET(CURLOPT_SEEKFUNCTION, lengine_on_seek);
    PQ_SET(CURLOPT_SEEKDATA, (void *)x);
#if PQ_USE_PREREQ
    PQ_SET(CURLOPT_PREREQFUNCTION, lengine_on_prereq);
    PQ_SET(CURLOPT_PREREQDATA, (void *)x);
#endif
    PQ_SET(CURLOPT_PROTOCOLS_STR, "http,https");
    PQ_SET(CURLOPT_FOLLOWLOCATION, 0L);
    PQ_SET(CURLOPT_TCP_NODELAY, 1L);
    PQ_SET(CURLOPT_TCP_KEEPALIVE, 1L);
    PQ_SET(CURLOPT_SSL_VERIFYPEER, 1L);
    PQ_SET(CURLOPT_SSL_VERIFYHOST, 2L);
    PQ_SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    PQ_SET(CURLOPT_TIMEOUT_MS, e->timeout_ms);
    PQ_SET(CURLOPT_CONNECTTIMEOUT_MS, e->connect_timeout_ms);
    PQ_SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)e->max_response);
    PQ_SET(CURLOPT_USERAGENT, e->user_agent);
    PQ_SET(CURLOPT_HTTP_VERSION, e->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    if (e->ca_replace) {
        if (e->ca_file) PQ_SET(CURLOPT_CAINFO, e->ca_file);
        if (e->ca_path) PQ_SET(CURLOPT_CAPATH, e->ca_path);
    } else if (e->ca_file || e->ca_path) {
        PQ_SET(CURLOPT_SSL_CTX_FUNCTION, lengine_on_ssl_ctx);
        PQ_SET(CURLOPT_SSL_CTX_DATA, (void *)e);
    }
    if (e->client_cert) PQ_SET(CURLOPT_SSLCERT, e->client_cert);
    if (e->client_key) PQ_SET(CURLOPT_SSLKEY, e->client_key);
    if (e->key_password) PQ_SET(CURLOPT_KEYPASSWD, e->key_password);
    if (e->pinned_pubkey) PQ_SET(CURLOPT_PINNEDPUBLICKEY, e->pinned_pubkey);
    if (e->proxy) PQ_SET(CURLOPT_PROXY, e->proxy);
    if (e->noproxy) PQ_SET(CURLOPT_NOPROXY, e->noproxy);
#undef PQ_SET
    return rc == CURLE_OK ? 0 : -1;
}

static lengine_xfer *lengine_xfer_get(lengine *e)
{
    lengine_xfer *x = e->free_list;
    if (x) {
        e->free_list = x->next;
        x->next = NULL;
        return x;
    }
    x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->engine = e;
    x->easy = curl_easy_init();
    if (!x->easy || lengine_easy_setup(e, x) != 0) {
        lengine_xfer_free(x);
        return NULL;
    }
    x->all_next = e->all;
    e->all = x;
    return x;
}

static void lengine_xfer_put(lengine *e, lengine_xfer *x)
{
    lengine_xfer_reset(x);
    x->next = e->free_list;
    e->free_list = x;
}

/* Moves finished transfers from the multi to the done list. */
static void lengine_collect(lengine *e)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
        lengine_xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        x->result = msg->data.result;
        if (x->resend_refused) {
            /* Reported as the seek guard reports it: sent, not resent. */
            x->result = CURLE_SEND_FAIL_REWIND;
            strcpy(x->errbuf, "the reused connection closed before a reply; libcurl's resend was refused");
        }
        curl_multi_remove_handle(e->multi, x->easy);
        e->running--;
        x->next = NULL;
        if (e->done_tail) e->done_tail->next = x;
        else e->done_head = x;
        e->done_tail = x;
    }
}

/* Drives transfers for at most timeout_ms; returns early once one is done. */
static CURLMcode lengine_drive(lengine *e, long timeout_ms)
{
    CURLMcode mc;
    int still;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        long waited;
        mc = curl_multi_perform(e->multi, &still);
        if (mc != CURLM_OK) return mc;
        lengine_collect(e);
        if (e->done_head || e->running == 0) return CURLM_OK;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        waited = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
        if (waited >= timeout_ms) return CURLM_OK;
        mc = curl_multi_poll(e->multi, NULL, 0, (int)(timeout_ms - waited), NULL);
        if (mc != CURLM_OK) return mc;
    }
}

/* ---- Lua side: results ---------------------------------------------------- */

static void lengine_set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* Pushes the result table of a finished transfer (may raise on OOM; the
 * transfer stays on the done list until the push completed). */
static void lengine_push_result(lua_State *L, lengine_xfer *x)
{
    long status = 0, reqsize = 0, nconn = 0;
    curl_off_t total = 0, connect = 0, appconnect = 0, starttransfer = 0;
    CURL *h = x->easy;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &nconn);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &total);
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect);
    curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME_T, &appconnect);
    curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME_T, &starttransfer);

    lua_createtable(L, 0, 16);
    lua_pushinteger(L, x->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, x->resp ? x->resp : "", x->resp_len);
    lua_setfield(L, -2, "body");
    if (x->content_type[0]) {
        lua_pushstring(L, x->content_type);
        lua_setfield(L, -2, "content_type");
    }
    if (x->retry_after[0]) {
        lua_pushstring(L, x->retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    lua_pushinteger(L, (lua_Integer)x->result);
    lua_setfield(L, -2, "curl_code");
    if (x->result != CURLE_OK) {
        lua_pushstring(L, x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result));
        lua_setfield(L, -2, "curl_error");
    }
    /* Any request bytes on the wire means the server may have acted. */
    lua_pushboolean(L, reqsize > 0 || status > 0 || x->resend_refused);
    lua_setfield(L, -2, "sent");
    lua_pushboolean(L, x->oversized || x->result == CURLE_FILESIZE_EXCEEDED);
    lua_setfield(L, -2, "oversized");
    lua_pushinteger(L, nconn);
    lua_setfield(L, -2, "new_connections");
    lengine_set_num(L, "elapsed", (double)total / 1e6);
    lengine_set_num(L, "connect_time", (double)connect / 1e6);
    lengine_set_num(L, "tls_time", (double)appconnect / 1e6);
    lengine_set_num(L, "first_byte_time", (double)starttransfer / 1e6);
}

/* ---- Lua side: methods ---------------------------------------------------- */

static int lengine_valid_header_name(const char *s, size_t n)
{
    size_t i;
    if (n == 0) return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || c == ':') return 0;
    }
    return 1;
}

static int lengine_valid_header_value(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
    return 1;
}

/* True when `node` already holds exactly the lines of the headers table at
 * `t` (in lua_next order) and then "Expect:". A batch sends the same headers
 * with every request, so a transfer's list is checked and kept rather than
 * rebuilt (two allocations per line). Lines in the list were validated when
 * they were made, so an equal line needs no new check. */
static int lengine_same_headers(lua_State *L, int t, const struct curl_slist *node)
{
    if (lua_type(L, t) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, t) != 0) {
            int same = 0;
            if (node && lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
                size_t kn, vn;
                const char *k = lua_tolstring(L, -2, &kn), *v = lua_tolstring(L, -1, &vn), *d = node->data;
                same = strlen(d) == kn + 2 + vn && memcmp(d, k, kn) == 0 && d[kn] == ':' && d[kn + 1] == ' ' &&
                       memcmp(d + kn + 2, v, vn) == 0;
                node = node->next;
            }
            lua_pop(L, 1);
            if (!same) {
                lua_pop(L, 1);
                return 0;
            }
        }
    }
    return node && strcmp(node->data, "Expect:") == 0 && node->next == NULL;
}

/* Returns nil, message: a refused request that was never sent. */
static int lengine_refuse(lua_State *L, lengine *e, lengine_xfer *x, const char *msg)
{
    lengine_xfer_put(e, x);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* engine:submit{method=, url=, headers={name=value}, body=, timeout=} -> id
 * | nil, message. Header names and values are checked for CR, LF and NUL
 * before anything is sent; the message never repeats a header value. */
static int lengine_submit(lua_State *L)
{
    lengine *e = lengine_check(L, 1);
    lengine_xfer *x;
    const char *method, *url;
    size_t blen = 0;
    CURLcode rc = CURLE_OK;
    CURLMcode mc;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);

    lua_getfield(L, 2, "method");
    method = luaL_optstring(L, -1, "POST");
    lua_getfield(L, 2, "url");
    url = lua_tostring(L, -1);
    luaL_argcheck(L, url != NULL, 2, "expected a url string");
    if (strcmp(method, "POST") != 0 && strcmp(method, "GET") != 0)
        luaL_argerror(L, 2, "expected method POST or GET");

    x = lengine_xfer_get(e);
    if (!x) return luaL_error(L, "out of memory (engine transfer)");
    x->resp_max = e->max_response;

    lua_getfield(L, 2, "headers");
    if (!lengine_same_headers(L, lua_gettop(L), x->headers)) {
        struct curl_slist *nl;
        curl_slist_free_all(x->headers);
        x->headers = NULL;
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pushnil(L);
            while (lua_next(L, -2) != 0) {
                size_t kn, vn;
                const char *k, *v;
                if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
                    lua_pop(L, 2);
                    return lengine_refuse(L, e, x, "header names and values must be strings");
                }
                k = lua_tolstring(L, -2, &kn);
                v = lua_tolstring(L, -1, &vn);
                if (!lengine_valid_header_name(k, kn) || !lengine_valid_header_value(v, vn)) {
                    lua_pop(L, 2);
                    lua_pushfstring(L, "header '%s' holds CR, LF, NUL or an invalid name character; refused before sending",
                                    lengine_valid_header_name(k, kn) ? k : "?");
                    return lengine_refuse(L, e, x, lua_tostring(L, -1));
                }
                lua_pushfstring(L, "%s: %s", k, v);
                nl = curl_slist_append(x->headers, lua_tostring(L, -1));
                lua_pop(L, 2);
                if (!nl) {
                    lengine_xfer_put(e, x);
                    return luaL_error(L, "out of memory (headers)");
                }
                x->headers = nl;
            }
        }
        /* No 100-continue round trip; the bodies are small. */
        nl = curl_slist_append(x->headers, "Expect:");
        if (!nl) {
            lengine_xfer_put(e, x);
            return luaL_error(L, "out of memory (headers)");
        }
        x->headers = nl;
    }
    lua_pop(L, 1);

    if (lua_getfield(L, 2, "body") == LUA_TSTRING) {
        const char *b = lua_tolstring(L, -1, &blen);
        x->body = malloc(blen ? blen : 1);
        if (!x->body) {
            lengine_xfer_put(e, x);
            return luaL_error(L, "out of memory (body)");
        }
        memcpy(x->body, b, blen);
        x->body_len = blen;
    }
    lua_pop(L, 1);

    rc = curl_easy_setopt(x->easy, CURLOPT_URL, url);
    if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
    if (strcmp(method, "POST") == 0) {
        x->is_post = 1;
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
#if PQ_USE_PREREQ
        /* Never NULL: a POST without POSTFIELDS would use the read callback. */
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body ? x->body : "");
#endif
    } else {
#if PQ_USE_PREREQ
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, (char *)NULL);
#endif
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
    }
    if (lua_getfield(L, 2, "timeout") == LUA_TNUMBER) {
        double t = lua_tonumber(L, -1);
        if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, t > 0 ? (long)(t * 1000) : 0L);
    } else if (rc == CURLE_OK) {
        rc = curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, e->timeout_ms);
    }
    lua_pop(L, 1);
    if (rc != CURLE_OK) return lengine_refuse(L, e, x, curl_easy_strerror(rc));

    x->id = ++e->next_id;
    mc = curl_multi_add_handle(e->multi, x->easy);
    if (mc != CURLM_OK) return lengine_refuse(L, e, x, curl_multi_strerror(mc));
    e->running++;
    lua_pushinteger(L, x->id);
    return 1;
}

/* Pushes an array of all done results; releases each transfer once pushed. */
static int lengine_push_done(lua_State *L, lengine *e)
{
    lua_Integer i = 0;
    lua_newtable(L);
    while (e->done_head) {
        lengine_xfer *x = e->done_head;
        lengine_push_result(L, x);
        lua_rawseti(L, -2, ++i);
        e->done_head = x->next;
        if (!e->done_head) e->done_tail = NULL;
        lengine_xfer_put(e, x);
    }
    return 1;
}

static long lengine_timeout_arg(lua_State *L, int idx)
{
    double t = luaL_optnumber(L, idx, 0);
    luaL_argcheck(L, t >= 0 && t <= 86400, idx, "expected a timeout in seconds (0 to 86400)");
    return (long)(t * 1000.0);
}

/* engine:poll([timeout]) -> array of finished results (possibly empty).
 * Waits up to timeout seconds for at least one transfer to finish. */
static int lengine_poll(lua_State *L)
{
    lengine *e = lengine_check(L, 1);
    long timeout_ms = lengine_timeout_arg(L, 2);
    if (!e->done_head && e->running > 0) {
        CURLMcode mc = lengine_drive(e, timeout_ms);
        if (mc != CURLM_OK) return luaL_error(L, "libcurl multi error: %s", curl_multi_strerror(mc));
    }
    return lengine_push_done(L, e);
}

/* engine:perform(request) -> result | nil, message: one blocking call on the
 * same path as submit/poll. Other transfers finishing meanwhile stay queued
 * for the next poll. */
static int lengine_perform(lua_State *L)
{
    lengine *e = lengine_check(L, 1);
    lua_Integer id;
    lengine_xfer *prev, *x;
    if (lengine_submit(L) == 2) return 2;
    id = lua_tointeger(L, -1);
    for (;;) {
        for (prev = NULL, x = e->done_head; x; prev = x, x = x->next) {
            if (x->id != id) continue;
            lengine_push_result(L, x);
            if (prev) prev->next = x->next;
            else e->done_head = x->next;
            if (e->done_tail == x) e->done_tail = prev;
            lengine_xfer_put(e, x);
            return 1;
        }
        {
            CURLMcode mc;
            int still;
            mc = curl_multi_perform(e->multi, &still);
            if (mc == CURLM_OK) {
                lengine_collect(e);
                if (!e->done_head) mc = curl_multi_poll(e->multi, NULL, 0, 1000, NULL);
            }
            if (mc != CURLM_OK) return luaL_error(L, "libcurl multi error: %s", curl_multi_strerror(mc));
        }
    }
}

/* engine:pending() -> transfers in flight, finished ones not yet polled */
static int lengine_pending(lua_State *L)
{
    lengine *e = lengine_check(L, 1);
    lengine_xfer *x;
    lua_Integer done = 0;
    for (x = e->done_head; x; x = x->next) done++;
    lua_pushinteger(L, e->running);
    lua_pushinteger(L, done);
    return 2;
}

/* One idempotent closer for close(), __close and __gc. */
static void lengine_release(lengine *e)
{
    lengine_xfer *x, *next;
    if (e->closed) return;
    e->closed = 1;
    /* Each easy handle leaves the multi before it is cleaned up. */
    for (x = e->all; x; x = next) {
        next = x->all_next;
        if (e->multi) curl_multi_remove_handle(e->multi, x->easy);
        lengine_xfer_free(x);
    }
    e->all = e->free_list = e->done_head = e->done_tail = NULL;
    e->running = 0;
    if (e->multi) curl_multi_cleanup(e->multi);
    e->multi = NULL;
    if (e->share) curl_share_cleanup(e->share);
    e->share = NULL;
    free(e->ca_file); free(e->ca_path); free(e->client_cert); free(e->client_key);
    if (e->key_password) {
        memset(e->key_password, 0, strlen(e->key_password));
        free(e->key_password);
    }
    free(e->pinned_pubkey); free(e->proxy); free(e->noproxy); free(e->user_agent);
    e->ca_file = e->ca_path = e->client_cert = e->client_key = e->key_password = NULL;
    e->pinned_pubkey = e->proxy = e->noproxy = e->user_agent = NULL;
}

static int lengine_gc(lua_State *L)
{
    lengine *e = (lengine *)luaL_checkudata(L, 1, LENGINE_MT);
    lengine_release(e);
    return 0;
}

static int lengine_close(lua_State *L)
{
    lengine_gc(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int lengine_tostring(lua_State *L)
{
    lengine *e = (lengine *)luaL_checkudata(L, 1, LENGINE_MT);
    if (e->closed) lua_pushliteral(L, "prequalify.engine (closed)");
    else lua_pushfstring(L, "prequalify.engine (%p, %d in flight)", (void *)e, e->running);
    return 1;
}

/* core.engine{...} -> engine. Options (all optional): timeout and
 * connect_timeout in seconds, max_response in bytes, max_connections,
 * max_host_connections, http2, ca_file, ca_path, ca_replace, client_cert,
 * client_key, key_password, pinned_pubkey, proxy, noproxy, user_agent. */
static int lengine_new(lua_State *L)
{
    lengine *e;
    double timeout, connect_timeout, max_response, max_conn, max_host;
    CURLMcode mc = CURLM_OK;
    CURLSHcode sc = CURLSHE_OK;
    if (lua_isnoneornil(L, 1)) lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);

    pthread_once(&lengine_once, lengine_global_init);
    if (lengine_init_rc != CURLE_OK)
        return luaL_error(L, "curl_global_init failed: %s", curl_easy_strerror(lengine_init_rc));

    timeout = lengine_seconds_opt(L, 1, "timeout", 30, 0.001, 86400);
    connect_timeout = lengine_seconds_opt(L, 1, "connect_timeout", 10, 0.001, 86400);
    max_response = lengine_seconds_opt(L, 1, "max_response", PQ_MAX_RESPONSE, 1024, 1 << 30);
    max_conn = lengine_seconds_opt(L, 1, "max_connections", 16, 1, 4096);
    max_host = lengine_seconds_opt(L, 1, "max_host_connections", max_conn, 1, 4096);

    /* Created closed: an allocation error below leaves a consistent object. */
    e = (lengine *)lua_newuserdatauv(L, sizeof *e, 0);
    memset(e, 0, sizeof *e);
    e->closed = 1;
    luaL_setmetatable(L, LENGINE_MT);

    e->multi = curl_multi_init();
    e->share = curl_share_init();
    e->closed = 0;
    if (!e->multi || !e->share) {
        lengine_release(e);
        return luaL_error(L, "out of memory (libcurl handles)");
    }
    e->timeout_ms = (long)(timeout * 1000);
    e->connect_timeout_ms = (long)(connect_timeout * 1000);
    e->max_response = (size_t)max_response;
    e->http2 = lengine_bool_opt(L, 1, "http2");
    e->ca_replace = lengine_bool_opt(L, 1, "ca_replace");
    e->ca_file = lengine_string_opt(L, 1, "ca_file");
    e->ca_path = lengine_string_opt(L, 1, "ca_path");
    e->client_cert = lengine_string_opt(L, 1, "client_cert");
    e->client_key = lengine_string_opt(L, 1, "client_key");
    e->key_password = lengine_string_opt(L, 1, "key_password");
    e->pinned_pubkey = lengine_string_opt(L, 1, "pinned_pubkey");
    e->proxy = lengine_string_opt(L, 1, "proxy");
    e->noproxy = lengine_string_opt(L, 1, "noproxy");
    e->user_agent = lengine_string_opt(L, 1, "user_agent");
    if (!e->user_agent) {
        e->user_agent = lengine_strdup("prequalify/" PREQUALIFY_VERSION);
        if (!e->user_agent) return luaL_error(L, "out of memory");
    }

    sc = curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    if (sc == CURLSHE_OK) sc = curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (sc == CURLSHE_OK) sc = curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    if (sc != CURLSHE_OK) return luaL_error(L, "libcurl share setup failed: %s", curl_share_strerror(sc));

    mc = curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_conn);
    if (mc == CURLM_OK) mc = curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_host);
    if (mc == CURLM_OK) mc = curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)max_conn);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, e->http2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
    if (mc != CURLM_OK) return luaL_error(L, "libcurl multi setup failed: %s", curl_multi_strerror(mc));
    return 1;
}

/* core.curl_version() -> version string, has_http2 */
static int lengine_curl_version(lua_State *L)
{
    curl_version_info_data *v;
    pthread_once(&lengine_once, lengine_global_init);
    v = curl_version_info(CURLVERSION_NOW);
    lua_pushstring(L, v->version);
    lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
    lua_pushstring(L, v->ssl_version ? v->ssl_version : "");
    return 3;
}

/* core.monotonic() -> seconds from an arbitrary origin; core.time() -> unix
 * seconds with a fraction; core.sleep(s). The Lua layer uses these rather
 * than shelling out. */
static int lengine_monotonic(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int lengine_time(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int lengine_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    struct timespec ts;
    luaL_argcheck(L, s >= 0 && s <= 86400, 1, "expected seconds (0 to 86400)");
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0) {}
    return 0;
}

void lengine_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"submit", lengine_submit},
        {"poll", lengine_poll},
        {"perform", lengine_perform},
        {"pending", lengine_pending},
        {"close", lengine_close},
        {NULL, NULL}
    };
    static const luaL_Reg meta[] = {
        {"__gc", lengine_gc},
        {"__close", lengine_gc},
        {"__tostring", lengine_tostring},
        {NULL, NULL}
    };
    static const luaL_Reg fns[] = {
        {"engine", lengine_new},
        {"curl_version", lengine_curl_version},
        {"monotonic", lengine_monotonic},
        {"time", lengine_time},
        {"sleep", lengine_sleep},
        {NULL, NULL}
    };
    if (luaL_newmetatable(L, LENGINE_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, fns, 0);
}
