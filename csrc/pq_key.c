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

/* Feeds one field, prefixed with its length; the DN folded. */
static int pq_key_field(EVP_MD_CTX *ctx, const char *s, size_t n, int fold)
{
    unsigned char len[4], low[128];
    size_t i, k;
    int ok;
    len[0] = (unsigned char)(n >> 24);
    len[1] = (unsigned char)(n >> 16);
    len[2] = (unsigned char)(n >> 8);
    len[3] = (unsigned char)n;
    ok = EVP_DigestUpdate(ctx, len, 4);
    if (!fold) return ok && EVP_DigestUpdate(ctx, s, n);
    for (i = 0; ok && i < n; i += k) {
        for (k = 0; k < sizeof low && i + k < n; k++) low[k] = pq_id_fold((unsigned char)s[i + k]);
        ok = EVP_DigestUpdate(ctx, low, k);
    }
    return ok;
}

int pq_key_make(pq_key_maker *km, const char *dn, size_t dnlen, const char *data, size_t datalen,
                const char *user, size_t userlen, char *out, uint64_t *shortkey)
{
    EVP_MD_CTX *ctx = km->ctx;
    static const char tag[] = "prequalify-key-v2";
    unsigned char d[EVP_MAX_MD_SIZE];
    char b64[EVP_MAX_MD_SIZE * 2];
    unsigned int dlen = 0;
    uint64_t k = 0;
    int i;
    if (!EVP_DigestInit_ex(ctx, km->md, NULL) || !EVP_DigestUpdate(ctx, tag, sizeof tag) ||
        !pq_key_field(ctx, dn, dnlen, 1) || !pq_key_field(ctx, data, datalen, 0) ||
        !pq_key_field(ctx, user, userlen, 0) || !EVP_DigestFinal_ex(ctx, d, &dlen) || dlen != 32)
        return -1;
    pq_b64_encode(d, dlen, b64);
    memcpy(out, b64, PQ_KEY_LEN);
    out[PQ_KEY_LEN] = '\0';
    for (i = 8; i-- > 0;) k = k << 8 | d[i];
    *shortkey = k;
    return 0;
}
