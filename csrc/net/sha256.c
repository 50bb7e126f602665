/* sha256.c: SHA-256 through OpenSSL's EVP interface, which picks the
 * SHA-NI or AVX2 code at run time (a pull hashes every byte it writes). */
#include "net/sha256.h"

#include <stdlib.h>

#include <openssl/evp.h>

struct bn_sha256 {
    EVP_MD_CTX *ctx;
};

bn_sha256 *bn_sha256_new(void) {
    bn_sha256 *h = malloc(sizeof *h);
    if (!h) return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        bn_sha256_free(h);
        return NULL;
    }
    return h;
}

void bn_sha256_update(bn_sha256 *h, const void *data, size_t len) { EVP_DigestUpdate(h->ctx, data, len); }

void bn_sha256_hex(bn_sha256 *h, char out[65]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->ctx, md, &n);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void bn_sha256_free(bn_sha256 *h) {
    if (!h) return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}
