/* head.c: output-head rows for every head type, and the int8 head. */
#include "model/head.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "formats/gguf.h"
#include "model/hugepages.h"

int bn_head_i8_build(bn_model *m, bn_err *err) {
    const bn_dense *d = &m->output;
    bn_head_i8 *h = bn_model_alloc(m, sizeof *h);
    size_t stride = ((size_t)d->cols + 63) / 64 * 64;
    int8_t *w = h ? bn_model_own(m, calloc((size_t)d->rows, stride)) : NULL;
    float *scale = w ? bn_model_alloc(m, sizeof(float) * (size_t)d->rows) : NULL;
    float *row = scale ? malloc(sizeof(float) * (size_t)d->cols) : NULL;
    /* F16 (the usual embedding type) through a table: ten times faster than
     * converting 300M values one by one */
    float *f16 = row && d->type == GGML_F16 ? malloc(sizeof(float) * 65536) : NULL;
    if (!row || (d->type == GGML_F16 && !f16)) {
        free(row);
        return bn_errf(err, "out of memory for an int8 output head of %lld rows", (long long)d->rows);
    }
    for (uint32_t i = 0; f16 && i < 65536; i++) f16[i] = bn_f16_to_f32((uint16_t)i);
    for (int64_t r = 0; r < d->rows; r++) {
        if (f16) {
            const uint8_t *src = d->data + (size_t)r * d->row_bytes;
            for (int64_t i = 0; i < d->cols; i++) {
                uint16_t hv;
                memcpy(&hv, src + 2 * i, 2);
                row[i] = f16[hv];
            }
        } else {
            bn_dense_row(d, r, row);
        }
        float mx = 0.0f;
        for (int64_t i = 0; i < d->cols; i++) {
            float a = fabsf(row[i]);
            mx = a > mx ? a : mx;
        }
        float s = mx > 0.0f ? mx / 127.0f : 1.0f, inv = 1.0f / s;
        int8_t *dst = w + (size_t)r * stride;
        for (int64_t i = 0; i < d->cols; i++) {
            /* |v| <= 127: adding 1.5 * 2^23 rounds to an integer, ties to
             * even, as rintf does, without a library call per value */
            float v = row[i] * inv;
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            dst[i] = (int8_t)((v + 12582912.0f) - 12582912.0f);
        }
        scale[r] = s;
    }
    free(row);
    free(f16);
    /* the build read the whole stored head through the file mapping: drop
     * those pages, or the head would count twice in the process's memory */
    bn_model_drop_file_pages(m, d->data, (size_t)d->rows * d->row_bytes);
    h->w = w;
    h->scale = scale;
    h->rows = d->rows;
    h->cols = d->cols;
    h->stride = stride;
    m->head_i8 = h;
    return 1;
}

int bn_head_wants_q16(const bn_model *m) { return !m->head_i8 && m->output.type == GGML_Q6_K; }

size_t bn_head_scratch_bytes(const bn_model *m) {
    return sizeof(float) * (size_t)m->output.cols + sizeof(int32_t) * BN_HEAD_ROWS;
}

/* Rows in blocks, tokens inside: a block of rows is read from memory once
 * for all the tokens. */
void bn_head_rows(const bn_model *m, const bn_head_token *tok, int n, int64_t r0, int64_t r1, void *scratch) {
    const bn_kernels *k = m->kern;
    const bn_dense *d = &m->output;
    int64_t E = d->cols;
    float *rowf = scratch;
    int32_t *acc = (int32_t *)(rowf + E);
    /* the types with a row kernel; the others are decoded row by row */
    int own = m->head_i8 || d->type == GGML_F16 || d->type == GGML_BF16 || d->type == GGML_Q8_0 ||
              d->type == GGML_Q6_K || d->type == GGML_F32;
    /* F16 and BF16 with several tokens: each block of rows is widened once
     * for HEAD_NX tokens (the same bits as one at a time). Three, not
     * BN_DOT_ROWS_NX: more tokens' activations (10 KB each on the 2B shape)
     * overflow L1 and the kernel waits on L2 (Zen 5, half the 2B head on
     * one thread, 8 tokens: 39 ms in groups of 3, 47 in 4s, 80 as one
     * group of 8, 55 one by one). */
#define HEAD_NX 3
    _Static_assert(HEAD_NX <= BN_DOT_ROWS_NX, "more tokens than the kernels take");
    int multi = n > 1 && !m->head_i8 && (d->type == GGML_F16 || d->type == GGML_BF16);
    for (int64_t b0 = r0; b0 < r1; b0 += BN_HEAD_ROWS) {
        int64_t nb = r1 - b0 < BN_HEAD_ROWS ? r1 - b0 : BN_HEAD_ROWS;
        const uint16_t *w16 = (const uint16_t *)(d->data + (size_t)b0 * d->row_bytes);
        for (int t0 = 0; multi && t0 < n; t0 += HEAD_NX) {
            int nx = n - t0 < HEAD_NX ? n - t0 : HEAD_NX;
            const float *xs[HEAD_NX];
            float *outs[HEAD_NX];
            for (int t = 0; t < nx; t++) xs[t] = tok[t0 + t].x, outs[t] = tok[t0 + t].out + b0;
            if (d->type == GGML_F16) k->dot_rows_f16_n(w16, d->row_bytes / 2, nb, xs, nx, E, outs);
            else k->dot_rows_bf16_n(w16, d->row_bytes / 2, nb, xs, nx, E, outs);
        }
        for (int t = 0; own && !multi && t < n; t++) {
            float *out = tok[t].out + b0;
            if (m->head_i8) {
                const bn_head_i8 *h = m->head_i8;
                k->dot_rows_i8(h->w + (size_t)b0 * h->stride, h->stride, nb, tok[t].q, E, acc);
                float inv = 1.0f / tok[t].q_scale;
                for (int64_t r = 0; r < nb; r++) out[r] = (float)acc[r] * (h->scale[b0 + r] * inv);
            } else if (d->type == GGML_F16) {
                k->dot_rows_f16((const uint16_t *)(d->data + (size_t)b0 * d->row_bytes), d->row_bytes / 2, nb,
                                tok[t].x, E, out);
            } else if (d->type == GGML_BF16) {
                k->dot_rows_bf16((const uint16_t *)(d->data + (size_t)b0 * d->row_bytes), d->row_bytes / 2, nb,
                                 tok[t].x, E, out);
            } else if (d->type == GGML_Q8_0) {
                k->dot_rows_q8_0(d->data + (size_t)b0 * d->row_bytes, d->row_bytes, nb, tok[t].x, E, out);
            } else if (d->type == GGML_Q6_K) {
                k->dot_rows_q6k(d->data + (size_t)b0 * d->row_bytes, d->row_bytes, nb, tok[t].xq, tok[t].xd, E, out);
            } else { /* F32 */
                for (int64_t r = 0; r < nb; r++)
                    out[r] = k->dot_f32((const float *)(d->data + (size_t)(b0 + r) * d->row_bytes), tok[t].x, E);
            }
        }
        for (int64_t r = 0; !own && r < nb; r++) { /* other types: decode each row once for all tokens */
            bn_dense_row(d, b0 + r, rowf);
            for (int t = 0; t < n; t++) tok[t].out[b0 + r] = k->dot_f32(rowf, tok[t].x, E);
        }
    }
}
