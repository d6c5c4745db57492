/* Request header lists (see pq_engine.h): checked once when made, shared by
 * every transfer that sends them, and freed with the last reference, so that
 * a batch builds its list once and a token rotation simply makes a new one. */
#include "pq_prefix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pq_engine_impl.h"

pq_headers *pq_headers_new(const pq_header *h, size_t n, char *err, size_t errcap)
{
    pq_headers *hl = calloc(1, sizeof *hl);
    size_t i;
    if (!hl) goto oom;
    hl->refs = 1;
    for (i = 0; i < n; i++) {
        struct curl_slist *nl;
        char *line;
        if (!pq_http_valid_header_name(h[i].name, h[i].name_len) ||
            !pq_http_valid_header_value(h[i].value, h[i].value_len)) {
            int named = pq_http_valid_header_name(h[i].name, h[i].name_len);
            snprintf(err, errcap, "header '%.*s' holds CR, LF, NUL or an invalid name character; refused before sending",
                     named ? (int)(h[i].name_len > 64 ? 64 : h[i].name_len) : 1, named ? h[i].name : "?");
            pq_headers_unref(hl);
            return NULL;
        }
        line = malloc(h[i].name_len + 2 + h[i].value_len + 1);
        if (!line) goto oom;
        memcpy(line, h[i].name, h[i].name_len);
        memcpy(line + h[i].name_len, ": ", 2);
        memcpy(line + h[i].name_len + 2, h[i].value, h[i].value_len);
        line[h[i].name_len + 2 + h[i].value_len] = '\0';
        nl = curl_slist_append(hl->list, line);
        free(line);
        if (!nl) goto oom;
        hl->list = nl;
        hl->n++;
    }
    {
        struct curl_slist *nl = curl_slist_append(hl->list, "Expect:");
        if (!nl) goto oom;
        hl->list = nl;
    }
    return hl;
oom:
    pq_headers_unref(hl);
    snprintf(err, errcap, "out of memory (headers)");
    return NULL;
}

int pq_headers_same(const pq_headers *hl, const pq_header *h, size_t n)
{
    const struct curl_slist *node;
    size_t i;
    if (!hl || hl->n != n) return 0;
    for (i = 0, node = hl->list; i < n; i++, node = node->next) {
        const char *d = node->data;
        size_t kn = h[i].name_len, vn = h[i].value_len;
        if (strlen(d) != kn + 2 + vn || memcmp(d, h[i].name, kn) != 0 || d[kn] != ':' || d[kn + 1] != ' ' ||
            memcmp(d + kn + 2, h[i].value, vn) != 0)
            return 0;
    }
    return 1;
}

void pq_headers_ref(pq_headers *hl)
{
    hl->refs++;
}

void pq_headers_unref(pq_headers *hl)
{
    if (!hl || --hl->refs > 0) return;
    curl_slist_free_all(hl->list);
    free(hl);
}
