/* ref.c: the portable reference kernels: the definition of correct. */
#include <math.h>
#include <string.h>

#include "../floatfmt.h"
#include "../gguf.h"
#include "kernels.h"

float bn_quantize_act(const float *x, int64_t n, int8_t *q, int64_t npad) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m) m = a;
    }
    float s = 127.0f / (m > 1e-5f ? m : 1e-5f);
    for (int64_t i = 0; i < n; i++) {
        float v = rintf(x[i] * s); /* default rounding mode: ties to even */
        q[i] = (int8_t)(v > 127.0f ? 127 : v < -128.0f ? -128 : v);
    }
    if (npad > n) memset(q + n, 0, (size_t)(npad - n));
    return s;
}

int32_t bn_sum_i8(const int8_t *q, int64_t n) {
    int32_t s = 0;
    for (int64_t i = 0; i < n; i++) s += q[i];
    return s;
}

static void ref_ternary_dot_rows(const uint8_t *w, size_t row_bytes, int nblocks, const int8_t *q,
                                 int64_t nrows, int32_t *out) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        int32_t sum = 0;
        for (int b = 0; b < nblocks; b++) {
            const uint8_t *blk = row + b * 32;
            const int8_t *qb = q + b * 128;
            for (int j = 0; j < 32; j++) {
                uint8_t byte = blk[j];
                sum += ((byte >> 6) - 1) * qb[j] + (((byte >> 4) & 3) - 1) * qb[32 + j] +
                       (((byte >> 2) & 3) - 1) * qb[64 + j] + ((byte & 3) - 1) * qb[96 + j];
            }
        }
        out[r] = sum;
    }
}

static void ref_ternary_matmat(const uint8_t *w, size_t row_bytes, int nblocks, int64_t nrows, const int8_t *q,
                               size_t q_stride, int ntok, int32_t *out, size_t out_stride) {
    for (int t = 0; t < ntok; t++)
        ref_ternary_dot_rows(w, row_bytes, nblocks, q + (size_t)t * q_stride, nrows, out + (size_t)t * out_stride);
}

static float ref_dot_f32(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void ref_dot_rows_f16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n,
                             float *out) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        float s = 0.0f;
        for (int64_t i = 0; i < n; i++) s += bn_f16_to_f32(row[i]) * x[i];
        out[r] = s;
    }
}

void bn_dot_rows_q6k_ref(const uint8_t *w, size_t row_bytes, int64_t nrows, const float *x, int64_t n, float *out) {
    float y[256];
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        float s = 0.0f;
        for (int64_t i = 0; i < n; i += 256) {
            bn_dequant_row(GGML_Q6_K, row + (size_t)(i / 256) * 210, y, 256);
            for (int j = 0; j < 256; j++) s += y[j] * x[i + j];
        }
        out[r] = s;
    }
}

static void ref_dot_rows_i8(const int8_t *w, size_t row_stride, int64_t nrows, const int8_t *q, int64_t n,
                            int32_t *out) {
    for (int64_t r = 0; r < nrows; r++) {
        const int8_t *row = w + (size_t)r * row_stride;
        int32_t s = 0;
        for (int64_t i = 0; i < n; i++) s += row[i] * q[i];
        out[r] = s;
    }
}

static float kv_at(const void *base, int kv_f16, size_t i) {
    return kv_f16 ? bn_f16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static void ref_attn_scores(const float *q, const void *k, int kv_f16, int npos, int hd, float *s) {
    for (int p = 0; p < npos; p++) {
        size_t tile = (size_t)(p / BN_KV_TILE) * hd * BN_KV_TILE, lane = (size_t)(p % BN_KV_TILE);
        float acc = 0.0f;
        for (int d = 0; d < hd; d++) acc += q[d] * kv_at(k, kv_f16, tile + (size_t)d * BN_KV_TILE + lane);
        s[p] = acc;
    }
}

void bn_attn_mix_cols(const float *w, const void *v, int kv_f16, int npos, int hd, int d0, float *out) {
    for (int d = d0; d < hd; d++) {
        float a = 0.0f;
        for (int p = 0; p < npos; p++) a += w[p] * kv_at(v, kv_f16, (size_t)p * hd + d);
        out[d] = a;
    }
}

static void ref_attn_mix(const float *w, const void *v, int kv_f16, int npos, int hd, float *out) {
    bn_attn_mix_cols(w, v, kv_f16, npos, hd, 0, out);
}

const bn_kernels bn_kernels_ref = {
    "ref",
    ref_ternary_dot_rows,
    ref_ternary_matmat,
    bn_quantize_act,
    ref_dot_f32,
    ref_dot_rows_f16,
    bn_dot_rows_q6k_ref,
    ref_dot_rows_i8,
    ref_attn_scores,
    ref_attn_mix,
};
