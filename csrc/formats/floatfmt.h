/* floatfmt.h: scalar float formats (f16, bf16) and row dequantization of the
 * full-precision-ish GGML types used for embeddings and output heads. */
#ifndef BN_FLOATFMT_H
#define BN_FLOATFMT_H

#include <stddef.h>
#include <stdint.h>

float bn_f16_to_f32(uint16_t h);
uint16_t bn_f32_to_f16(float f);     /* round to nearest even */
float bn_bf16_to_f32(uint16_t h);
uint16_t bn_f32_to_bf16(float f);    /* round to nearest even */

/* True if rows of this type can be dequantized by bn_dequant_row. */
int bn_dequant_supported(uint32_t type);
/* Bytes one row of n elements occupies in this type (n a multiple of the
 * type's block size). */
size_t bn_row_bytes(uint32_t type, int64_t n);
/* Decodes n elements (a whole number of blocks) of `type` at src into dst. */
void bn_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);

#endif
