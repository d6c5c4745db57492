/* The engine's transfers: one easy handle each, set up once with the options
 * every request shares, and reused from a free list; and what a finished
 * one got (pq_engine_reply, pq_engine_result). The libcurl callbacks here
 * only fill the transfer's C buffers. */
#include "pq_prefix.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pq_engine_impl.h"

/* CURLOPT_PROTOCOLS_STR is the newest option used here (see CMakeLists.txt). */
#if LIBCURL_VERSION_NUM < 0x075500
#error "prequalify needs libcurl 7.85.0 or newer"
#endif

/* Response and body buffers larger than this are freed after use. */
#ifndef PQ_KEEP_BUFFER
#define PQ_KEEP_BUFFER (64 * 1024)
#endif

/* ---- libcurl callbacks: C buffers only ------------------------------------ */

static size_t pq_transfer_on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    pq_xfer *x = (pq_xfer *)ud;
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

/* Parsing lives in pq_http.c (plain C, fuzzed); this only routes the line,
 * by its first letter: most lines are none of the three it looks for. */
static size_t pq_transfer_on_header(char *line, size_t size, size_t nmemb, void *ud)
{
    pq_xfer *x = (pq_xfer *)ud;
    size_t n = size * nmemb;
    switch (n > 0 ? line[0] | 0x20 : 0) {
    case 'h':
        /* A new response (after a 1xx): forget the previous headers. */
        if (pq_http_is_status_line(line, n)) x->content_type[0] = x->retry_after[0] = '\0';
        break;
    case 'c':
        pq_http_header_match(line, n, "content-type", x->content_type, sizeof x->content_type);
        break;
    case 'r':
        pq_http_header_match(line, n, "retry-after", x->retry_after, sizeof x->retry_after);
        break;
    default:
        break;
    }
    return n;
}

/* libcurl silently resends a request on a reused connection that died before
 * any reply byte. For a non-idempotent POST that may duplicate an approval.
 * The body goes out as POSTFIELDS (with the headers, in one send()), which
 * libcurl resends without asking; it calls this before every attempt, so a
 * POST's second attempt is stopped before it is sent and reported "unknown". */
static int pq_transfer_on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    pq_xfer *x = (pq_xfer *)ud;
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (!x->is_post || x->attempts++ == 0) return CURL_PREREQFUNC_OK;
    x->resend_refused = 1;
    return CURL_PREREQFUNC_ABORT;
}

/* The system roots plus ca_file / ca_path, so that a corporate CA extends
 * trust instead of replacing it. The store is built once per engine and
 * shared by every TLS context: loading the system roots for each new
 * connection costs tens of milliseconds of CPU, which would stall a host's
 * event loop while a batch opens its connections. */
int pq_transfer_ca_store(pq_engine *e)
{
    X509_STORE *store;
    if (e->ca_store) return 0;
    if (!(store = X509_STORE_new())) return -1;
    if (X509_STORE_set_default_paths(store) != 1 ||
        X509_STORE_load_locations(store, e->ca_file, e->ca_path) != 1) {
        X509_STORE_free(store);
        return -1;
    }
    e->ca_store = store;
    return 0;
}

static CURLcode pq_transfer_on_ssl_ctx(CURL *easy, void *sslctx, void *ud)
{
    pq_engine *e = (pq_engine *)ud;
    (void)easy;
    if (pq_transfer_ca_store(e) != 0) return CURLE_SSL_CACERT_BADFILE;
    SSL_CTX_set1_cert_store((SSL_CTX *)sslctx, (X509_STORE *)e->ca_store);
    return CURLE_OK;
}

void pq_transfer_free_store(void *store)
{
    X509_STORE_free((X509_STORE *)store);
}

/* ---- transfers ------------------------------------------------------------ */

void pq_transfer_reset(pq_xfer *x)
{
    pq_headers_unref(x->headers);
    x->headers = NULL;
    if (x->body_cap > PQ_KEEP_BUFFER) {
        free(x->body);
        x->body = NULL;
        x->body_cap = 0;
    }
    if (x->resp_cap > PQ_KEEP_BUFFER) {
        free(x->resp);
        x->resp = NULL;
        x->resp_cap = 0;
    }
    x->resp_len = 0;
    x->user = NULL;
    x->owner = NULL;
    x->id = 0; /* not submitted (pq_engine_abort looks for running ids) */
    x->content_type[0] = x->retry_after[0] = x->errbuf[0] = '\0';
    x->oversized = x->is_post = x->attempts = x->resend_refused = 0;
    x->result = CURLE_OK;
}

void pq_transfer_free(pq_xfer *x)
{
    pq_transfer_reset(x);
    if (x->easy) curl_easy_cleanup(x->easy);
    free(x->url);
    free(x->body);
    free(x->resp);
    free(x);
}

/* Settings that stay the same for every request of this engine. */
static int pq_transfer_setup(pq_engine *e, pq_xfer *x)
{
    CURL *h = x->easy;
    CURLcode rc = CURLE_OK;
#define PQ_SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val)
    PQ_SET(CURLOPT_SHARE, e->share);
    PQ_SET(CURLOPT_NOSIGNAL, 1L);
    PQ_SET(CURLOPT_PRIVATE, (void *)x);
    PQ_SET(CURLOPT_ERRORBUFFER, x->errbuf);
    PQ_SET(CURLOPT_WRITEFUNCTION, pq_transfer_on_write);
    PQ_SET(CURLOPT_WRITEDATA, (void *)x);
    PQ_SET(CURLOPT_HEADERFUNCTION, pq_transfer_on_header);
    PQ_SET(CURLOPT_HEADERDATA, (void *)x);
    PQ_SET(CURLOPT_PREREQFUNCTION, pq_transfer_on_prereq);
    PQ_SET(CURLOPT_PREREQDATA, (void *)x);
    PQ_SET(CURLOPT_OPENSOCKETFUNCTION, pq_sockets_open);
    PQ_SET(CURLOPT_OPENSOCKETDATA, (void *)e);
    PQ_SET(CURLOPT_CLOSESOCKETFUNCTION, pq_sockets_close);
    PQ_SET(CURLOPT_CLOSESOCKETDATA, (void *)e);
    PQ_SET(CURLOPT_PROTOCOLS_STR, "http,https");
    PQ_SET(CURLOPT_FOLLOWLOCATION, 0L);
    PQ_SET(CURLOPT_TCP_NODELAY, 1L);
    PQ_SET(CURLOPT_TCP_KEEPALIVE, 1L);
    PQ_SET(CURLOPT_SSL_VERIFYPEER, 1L);
    PQ_SET(CURLOPT_SSL_VERIFYHOST, 2L);
    PQ_SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    PQ_SET(CURLOPT_CONNECTTIMEOUT_MS, e->connect_timeout_ms);
    PQ_SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)e->max_response);
    PQ_SET(CURLOPT_USERAGENT, e->user_agent);
    PQ_SET(CURLOPT_HTTP_VERSION, e->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    if (e->ca_replace) {
        if (e->ca_file) PQ_SET(CURLOPT_CAINFO, e->ca_file);
        if (e->ca_path) PQ_SET(CURLOPT_CAPATH, e->ca_path);
    } else if (e->ca_file || e->ca_path) {
        /* libcurl loads nothing: the callback installs the engine's store. */
        PQ_SET(CURLOPT_CAINFO, (char *)NULL);
        PQ_SET(CURLOPT_CAPATH, (char *)NULL);
        PQ_SET(CURLOPT_SSL_CTX_FUNCTION, pq_transfer_on_ssl_ctx);
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

pq_xfer *pq_transfer_get(pq_engine *e)
{
    pq_xfer *x = e->free_list;
    if (x) {
        e->free_list = x->next;
        x->next = NULL;
        return x;
    }
    x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->easy = curl_easy_init();
    if (!x->easy || pq_transfer_setup(e, x) != 0) {
        pq_transfer_free(x);
        return NULL;
    }
    x->all_next = e->all;
    e->all = x;
    return x;
}

/* ---- what a finished transfer got (pq_engine.h) ------------------------- */

void pq_engine_reply(pq_xfer *x, pq_result *out)
{
    curl_off_t total = 0;
    memset(out, 0, sizeof *out);
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &total);
    out->id = x->id;
    out->user = x->user;
    if (x->resp) x->resp[x->resp_len] = '\0';
    out->body = x->resp ? x->resp : "";
    out->body_len = x->resp_len;
    out->curl_code = (int)x->result;
    out->elapsed = (double)total / 1e6;
}

void pq_engine_result(pq_xfer *x, pq_result *out)
{
    long reqsize = 0;
    curl_off_t connect = 0, appconnect = 0, starttransfer = 0;
    CURL *h = x->easy;
    pq_engine_reply(x, out);
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &out->new_connections);
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect);
    curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME_T, &appconnect);
    curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME_T, &starttransfer);
    out->content_type = x->content_type[0] ? x->content_type : NULL;
    out->retry_after = x->retry_after[0] ? x->retry_after : NULL;
    if (x->result != CURLE_OK) out->curl_error = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result);
    /* Any request bytes on the wire means the server may have acted. */
    out->sent = reqsize > 0 || out->status > 0 || x->resend_refused;
    out->oversized = x->oversized || x->result == CURLE_FILESIZE_EXCEEDED;
    out->connect_time = (double)connect / 1e6;
    out->tls_time = (double)appconnect / 1e6;
    out->first_byte_time = (double)starttransfer / 1e6;
}
