/* ternary.h: the one in-memory layout every ternary weight matrix takes.
 *
 * It is bitnet.cpp's x86 I2_S layout, so I2_S files are used straight from
 * the mmap: each row is cut into 128-weight blocks of 32 bytes; byte j of a
 * block holds elements j (bits 7:6), 32+j (5:4), 64+j (3:2) and 96+j (1:0)
 * as codes 0,1,2 for -1,0,+1. Rows whose length is not a multiple of 128 are
 * padded with code 1 (zero). One f32 scale per tensor; files whose blocks
 * carry different scales (TQ types allow that) keep one scale per block.
 * Every other format is decoded to this at the loader's edge. */
#ifndef BN_TERNARY_H
#define BN_TERNARY_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"

#define BN_QK 128          /* weights per block */
#define BN_QK_BYTES 32     /* bytes per block */

typedef struct {
    const uint8_t *codes;  /* rows * row_bytes bytes */
    uint8_t *owned;        /* the heap copy when repacked, else NULL (mmap) */
    int64_t rows, cols;    /* output and input dimensions */
    int nblocks;           /* blocks per row: ceil(cols / 128) */
    size_t row_bytes;      /* nblocks * 32 */
    float scale;           /* per-tensor weight scale */
    float *block_scale;    /* NULL, or rows * nblocks scales used instead */
} bn_ternary;

/* Allocates an owned, zero-valued (code 1) matrix. */
int bn_ternary_alloc(bn_ternary *t, int64_t rows, int64_t cols, bn_err *err);
void bn_ternary_free(bn_ternary *t);
/* Writes one row of values in {-1,0,1} (cols of them) into an owned matrix. */
void bn_ternary_set_row(bn_ternary *t, int64_t row, const int8_t *values);
/* Reads one row back as values in {-1,0,1}. */
void bn_ternary_get_row(const bn_ternary *t, int64_t row, int8_t *values);
/* Packs `cols` values into one row of blocks (padding included). */
void bn_pack_row_i2(const int8_t *values, int64_t cols, uint8_t *dst);

/* Decoders from the GGML ternary formats; `data` is the tensor's bytes.
 * `what` names the tensor in messages. */
int bn_ternary_from_i2s(bn_ternary *t, const uint8_t *data, int64_t rows, int64_t cols,
                        const char *what, bn_err *err);
int bn_ternary_from_tq(bn_ternary *t, uint32_t type, const uint8_t *data, int64_t rows,
                       int64_t cols, const char *what, bn_err *err);
/* Float weights that already hold T * a (as converters write them):
 * a is recovered as the common magnitude of the nonzero values. */
int bn_ternary_from_ternary_floats(bn_ternary *t, uint32_t type, const uint8_t *data,
                                   int64_t rows, int64_t cols, const char *what, bn_err *err);
/* Float masters, ternarized with absmean: a = max(mean|W|, 1e-5),
 * T = clamp(round(W / a), -1, 1). */
int bn_ternary_from_master(bn_ternary *t, uint32_t type, const uint8_t *data, int64_t rows,
                           int64_t cols, const char *what, bn_err *err);

#endif
