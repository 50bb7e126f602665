/* encode.h: row encoders into GGML tensor types: the inverses of the
 * decoders in floatfmt.c (F32, F16, BF16, Q8_0, Q6_K) and ternary.c
 * (TQ1_0, TQ2_0; I2_S is our in-memory layout already). Used by the GGUF
 * converter and by generators of synthetic models. */
#ifndef BN_ENCODE_H
#define BN_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/* True if bn_encode_row can produce this type from floats. */
int bn_encode_supported(uint32_t ggml_type);
/* Encodes n floats (a whole number of the type's blocks) into dst, which
 * holds bn_row_bytes(type, n) bytes. F32, F16, BF16, Q8_0 and Q6_K. */
void bn_encode_row(uint32_t ggml_type, const float *src, int64_t n, uint8_t *dst);

/* Encodes n ternary values (in {-1, 0, 1}, n a multiple of 256) with one
 * scale d per 256-block (scales[n/256]) as TQ1_0 or TQ2_0. */
void bn_encode_tq_row(uint32_t ggml_type, const int8_t *values, const float *scales, int64_t n, uint8_t *dst);

#endif
