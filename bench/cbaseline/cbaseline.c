/* The ceiling for bench/run: a plain C program on libcurl that sends the same
 * POST as prequalify's batch runner (same URL, headers, body and TLS
 * settings) as fast as libcurl allows, either through the multi interface
 * with a fixed set of reused easy handles, or sequentially on one reused
 * handle. It does only what any libcurl program must: no validation, no
 * JSON, no bookkeeping beyond counting 200s. Prints one JSON line with the
 * wall time and the CPU time (getrusage) of the sending loop alone. */
/* clock_gettime and getrusage: POSIX, asked for here as csrc/pq_prefix.h does
 * for the core, so that the STYLE.md flags alone build this file. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>

#ifndef CB_MAX_BODY
#define CB_MAX_BODY (64 * 1024)
#endif

typedef struct cb_opts {
    const char *url, *cacert, *token, *body_file, *user_agent;
    long requests, parallel;
    int sequential;
} cb_opts;

typedef struct cb_run {
    long started, done, ok, connects;
    char body[CB_MAX_BODY];
    long body_len;
} cb_run;

static void cb_usage(void)
{
    fprintf(stderr,
            "usage: pq_cbaseline --url URL --body FILE [--requests N] [--parallel P]\n"
            "                    [--sequential] [--cacert FILE] [--token T] [--user-agent UA]\n");
    exit(2);
}

static double cb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cb_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Replies are a few bytes: read and drop them, as a client that only looks
 * at the status would. */
static size_t cb_discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static int cb_read_body(cb_run *r, const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    if (!f) return -1;
    n = fread(r->body, 1, sizeof r->body - 1, f);
    fclose(f);
    r->body_len = (long)n;
    return 0;
}

static CURL *cb_easy(const cb_opts *o, cb_run *r, struct curl_slist *headers)
{
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    curl_easy_setopt(h, CURLOPT_URL, o->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, r->body_len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, o->user_agent);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb_discard);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    if (o->cacert) curl_easy_setopt(h, CURLOPT_CAINFO, o->cacert);
    return h;
}

static void cb_finished(cb_run *r, CURL *h, CURLcode rc)
{
    long status = 0, nconn = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &nconn);
    r->done++;
    r->connects += nconn;
    if (rc == CURLE_OK && status == 200) r->ok++;
}

static int cb_sequential(const cb_opts *o, cb_run *r, struct curl_slist *headers)
{
    CURL *h = cb_easy(o, r, headers);
    if (!h) return -1;
    while (r->started < o->requests) {
        CURLcode rc;
        r->started++;
        rc = curl_easy_perform(h);
        cb_finished(r, h, rc);
    }
    curl_easy_cleanup(h);
    return 0;
}

static int cb_multi(const cb_opts *o, cb_run *r, struct curl_slist *headers)
{
    CURLM *m = curl_multi_init();
    CURL **handles;
    long i;
    int running = 1;
    if (!m) return -1;
    handles = calloc((size_t)o->parallel, sizeof *handles);
    if (!handles) return -1;
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, o->parallel);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, o->parallel);
    for (i = 0; i < o->parallel && r->started < o->requests; i++) {
        handles[i] = cb_easy(o, r, headers);
        if (!handles[i]) return -1;
        curl_multi_add_handle(m, handles[i]);
        r->started++;
    }
    while (running || r->done < r->started) {
        CURLMsg *msg;
        int left;
        if (curl_multi_perform(m, &running) != CURLM_OK) return -1;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            CURL *h = msg->easy_handle;
            if (msg->msg != CURLMSG_DONE) continue;
            cb_finished(r, h, msg->data.result);
            curl_multi_remove_handle(m, h);
            if (r->started < o->requests) {
                /* Same handle, same options: only re-added. */
                curl_multi_add_handle(m, h);
                r->started++;
                running = 1;
            }
        }
        if (r->done >= o->requests) break;
        if (curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK) return -1;
    }
    for (i = 0; i < o->parallel; i++)
        if (handles[i]) curl_easy_cleanup(handles[i]);
    free(handles);
    curl_multi_cleanup(m);
    return 0;
}

static void cb_parse(int argc, char **argv, cb_opts *o)
{
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--sequential") == 0) { o->sequential = 1; continue; }
        if (!v) cb_usage();
        if (strcmp(a, "--url") == 0) o->url = v;
        else if (strcmp(a, "--body") == 0) o->body_file = v;
        else if (strcmp(a, "--cacert") == 0) o->cacert = v;
        else if (strcmp(a, "--token") == 0) o->token = v;
        else if (strcmp(a, "--user-agent") == 0) o->user_agent = v;
        else if (strcmp(a, "--requests") == 0) o->requests = strtol(v, NULL, 10);
        else if (strcmp(a, "--parallel") == 0) o->parallel = strtol(v, NULL, 10);
        else cb_usage();
        i++;
    }
    if (!o->url || !o->body_file || o->requests < 1 || o->parallel < 1) cb_usage();
}

int main(int argc, char **argv)
{
    cb_opts o;
    cb_run *r;
    struct curl_slist *headers = NULL;
    char auth[512];
    double t0, c0, t1, c1;
    int rc;

    memset(&o, 0, sizeof o);
    o.requests = 20000;
    o.parallel = 16;
    o.token = "bench-token";
    o.user_agent = "prequalify/bench";
    cb_parse(argc, argv, &o);
    if (o.sequential) o.parallel = 1;

    r = calloc(1, sizeof *r);
    if (!r || cb_read_body(r, o.body_file) != 0) {
        fprintf(stderr, "pq_cbaseline: cannot read %s\n", o.body_file);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
    /* The headers prequalify sends, in its order. */
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", o.token);
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, auth);
    headers = curl_slist_append(headers, "Expect:");

    t0 = cb_now();
    c0 = cb_cpu();
    rc = o.sequential ? cb_sequential(&o, r, headers) : cb_multi(&o, r, headers);
    c1 = cb_cpu();
    t1 = cb_now();

    curl_slist_free_all(headers);
    curl_global_cleanup();
    if (rc != 0) {
        fprintf(stderr, "pq_cbaseline: libcurl setup failed\n");
        return 1;
    }
    printf("{\"client\":\"%s\",\"requests\":%ld,\"ok\":%ld,\"seconds\":%.6f,\"cpu\":%.6f,"
           "\"connections\":%ld}\n",
           o.sequential ? "c-sequential" : "c-multi", r->done, r->ok, t1 - t0, c1 - c0, r->connects);
    rc = r->ok == o.requests ? 0 : 1;
    free(r);
    return rc;
}
