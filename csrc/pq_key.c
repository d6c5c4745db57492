/* pq_key: see pq_key.h. */
#include "pq_prefix.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include "pq_base64.h"
#include "pq_idset.h"
#include "pq_key.h"

struct pq_key_maker {
    EVP_MD_CTX *ctx;
    EVP_MD *fetched; /* OpenSSL 3: SHA-256 fetched once; NULL: the implicit one */
    const EVP_MD *md;
};

pq_key_maker *pq_key_new(void)
{
    pq_key_maker *k = (pq_key_maker *)calloc(1, sizeof *k);
    if (!k) return NULL;
    if (!(k->ctx = EVP_MD_CTX_new())) {
        free(k);
        return NULL;
    }
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    k->fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
#endif
    k->md = k->fetched ? k->fetched : EVP_sha256();
    return k;
}

void pq_key_free(pq_key_maker *k)
{
    if (!k) return;
    EVP_MD_CTX_free(k->ctx);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    EVP_MD_free(k->fetched);
#endif
    free(k);
}

/* The bytes of a key gather here and go to the digest a buffer at a time:
 * each EVP_DigestUpdate call costs more than hashing a short field. */
typedef struct pq_key_buf {
    EVP_MD_CTX *ctx;
    unsigned char b[512];
    size_t n;
    int ok;
} pq_key_buf;

static void pq_key_put(pq_key_buf *w, const char *s, size_t n, int fold)
{
    while (n > 0) {
        size_t k = n < sizeof w->b - w->n ? n : sizeof w->b - w->n, i;
        if (fold) {
            for (i = 0; i < k; i++) w->b[w->n + i] = pq_id_fold((unsigned char)s[i]);
        } else {
            memcpy(w->b + w->n, s, k);
        }
        w->n += k;
        s += k;
        n -= k;
        if (w->n == sizeof w->b) {
            w->ok = w->ok && EVP_DigestUpdate(w->ctx, w->b, w->n);
            w->n = 0;
        }
    }
}

/* One field, prefixed with its length; the DN folded. */
static void pq_key_field(pq_key_buf *w, const char *s, size_t n, int fold)
{
    char len[4];
    len[0] = (char)(n >> 24);
    len[1] = (char)(n >> 16);
    len[2] = (char)(n >> 8);
    len[3] = (char)n;
    pq_key_put(w, len, 4, 0);
    pq_key_put(w, s, n, fold);
}

int pq_key_make(pq_key_maker *km, const char *dn, size_t dnlen, const char *data, size_t datalen,
                const char *user, size_t userlen, char *out, uint64_t *shortkey)
{
    static const char tag[] = "prequalify-key-v2";
    unsigned char d[EVP_MAX_MD_SIZE];
    char b64[EVP_MAX_MD_SIZE * 2];
    unsigned int dlen = 0;
    uint64_t k = 0;
    pq_key_buf w;
    int i;
    w.ctx = km->ctx;
    w.n = 0;
    w.ok = EVP_DigestInit_ex(km->ctx, km->md, NULL);
    pq_key_put(&w, tag, sizeof tag, 0);
    pq_key_field(&w, dn, dnlen, 1);
    pq_key_field(&w, data, datalen, 0);
    pq_key_field(&w, user, userlen, 0);
    if (!w.ok || (w.n && !EVP_DigestUpdate(km->ctx, w.b, w.n)) || !EVP_DigestFinal_ex(km->ctx, d, &dlen) ||
        dlen != 32)
        return -1;
    pq_b64_encode(d, dlen, b64);
    memcpy(out, b64, PQ_KEY_LEN);
    out[PQ_KEY_LEN] = '\0';
    for (i = 8; i-- > 0;) k = k << 8 | d[i];
    *shortkey = k;
    return 0;
}
