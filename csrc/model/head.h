/* head.h: the output head, logits = W_out . x for a normalized x, over a
 * range of vocabulary rows (threads split the rows), for every row type the
 * loaders accept, plus an optional int8 copy of W_out built at load. */
#ifndef BN_HEAD_H
#define BN_HEAD_H

#include <stdint.h>

#include "base/errbuf.h"
#include "model/model.h"

/* An int8 copy of the head: one absmax scale per row, so row r is
 * scale[r] * w[r][i]; rows `stride` bytes apart (a multiple of 64). */
typedef struct bn_head_i8 {
    int8_t *w;
    float *scale;
    int64_t rows, cols;
    size_t stride;
} bn_head_i8;

/* Builds m->head_i8 from m->output (memory owned by the model). */
int bn_head_i8_build(bn_model *m, bn_err *err);

/* What one token brings to the head: its normalized hidden state and, for
 * the int8 head, that state quantized (bn_quantize_act) with its scale, or
 * for a Q6_K head, quantized by bn_quantize_q16. */
typedef struct {
    const float *x;
    const int8_t *q;
    float q_scale;
    const int16_t *xq;
    const float *xd;
    float *out; /* logits, indexed by vocabulary id */
} bn_head_token;

/* Logits of rows [r0, r1) for n tokens. scratch holds n_embd floats plus
 * BN_HEAD_ROWS int32s (row decoding for the types kept as stored). */
#define BN_HEAD_ROWS 64
/* Whether the head takes its tokens quantized by bn_quantize_q16. */
int bn_head_wants_q16(const bn_model *m);
void bn_head_rows(const bn_model *m, const bn_head_token *tok, int n, int64_t r0, int64_t r1, void *scratch);
/* Bytes of scratch bn_head_rows needs. */
size_t bn_head_scratch_bytes(const bn_model *m);

#endif
