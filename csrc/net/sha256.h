/* sha256.h: SHA-256 of a byte stream (OpenSSL's libcrypto underneath). */
#ifndef BN_SHA256_H
#define BN_SHA256_H

#include <stddef.h>

typedef struct bn_sha256 bn_sha256;

/* A fresh hash state, or NULL when out of memory. */
bn_sha256 *bn_sha256_new(void);
void bn_sha256_update(bn_sha256 *h, const void *data, size_t len);
/* Writes the digest as 64 lowercase hex digits and a NUL; the state is
 * reset for another stream. */
void bn_sha256_hex(bn_sha256 *h, char out[65]);
void bn_sha256_free(bn_sha256 *h);

#endif
