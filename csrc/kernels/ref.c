/* ref.c: the portable reference kernels: the definition of correct. */
#include <math.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "formats/gguf.h"
#include "kernels/kernels.h"

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

/* F16 or BF16 rows, each value widened by cvt. */
static void dot_rows_16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n, float *out,
                        float (*cvt)(uint16_t)) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        float s = 0.0f;
        for (int64_t i = 0; i < n; i++) s += cvt(row[i]) * x[i];
        out[r] = s;
    }
}

static void ref_dot_rows_f16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n,
                             float *out) {
    dot_rows_16(w, row_stride, nrows, x, n, out, bn_f16_to_f32);
}

void bn_dot_rows_bf16_ref(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n, float *out) {
    dot_rows_16(w, row_stride, nrows, x, n, out, bn_bf16_to_f32);
}

/* dot_rows_16 for nx tokens: one running sum per token, in the same order. */
static void dot_rows_16_n(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int nx,
                          int64_t n, float *const *out, float (*cvt)(uint16_t)) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        float s[BN_DOT_ROWS_NX] = {0};
        for (int64_t i = 0; i < n; i++) {
            float v = cvt(row[i]);
            for (int t = 0; t < nx; t++) s[t] += v * x[t][i];
        }
        for (int t = 0; t < nx; t++) out[t][r] = s[t];
    }
}

static void ref_dot_rows_f16_n(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int nx,
                               int64_t n, float *const *out) {
    dot_rows_16_n(w, row_stride, nrows, x, nx, n, out, bn_f16_to_f32);
}

void bn_dot_rows_bf16_n_ref(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int nx,
                            int64_t n, float *const *out) {
    dot_rows_16_n(w, row_stride, nrows, x, nx, n, out, bn_bf16_to_f32);
}

void bn_dot_rows_q8_0_ref(const uint8_t *w, size_t row_bytes, int64_t nrows, const float *x, int64_t n, float *out) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *b = w + (size_t)r * row_bytes;
        float s = 0.0f;
        for (int64_t i = 0; i < n; i += 32, b += 34) {
            uint16_t dh;
            memcpy(&dh, b, 2);
            const int8_t *q = (const int8_t *)(b + 2);
            float blk = 0.0f;
            for (int j = 0; j < 32; j++) blk += (float)q[j] * x[i + j];
            s += bn_f16_to_f32(dh) * blk;
        }
        out[r] = s;
    }
}

void bn_quantize_q16(const float *x, int64_t n, int16_t *xq, float *xd) {
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + b * 256;
        float m = 0.0f;
        for (int i = 0; i < 256; i++) m = fabsf(xb[i]) > m ? fabsf(xb[i]) : m;
        float inv = m > 0.0f ? (float)BN_Q16_MAX / m : 0.0f;
        xd[b] = m / (float)BN_Q16_MAX;
        for (int i = 0; i < 256; i++) {
            float v = rintf(xb[i] * inv);
            if (v != v) v = 0.0f; /* NaN (an infinite or NaN state): no integer to give */
            xq[b * 256 + i] = (int16_t)(v > BN_Q16_MAX ? BN_Q16_MAX : v < -BN_Q16_MAX ? -BN_Q16_MAX : v);
        }
    }
}

/* One Q6_K block against 256 quantized activations: the exact S_b. */
static int64_t q6k_block_sum(const uint8_t *b, const int16_t *xq) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    int64_t s = 0;
    for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, xq += 128)
        for (int l = 0; l < 32; l++) {
            int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            int is = l / 16;
            s += (int64_t)sc[is] * q1 * xq[l] + (int64_t)sc[is + 2] * q2 * xq[l + 32] +
                 (int64_t)sc[is + 4] * q3 * xq[l + 64] + (int64_t)sc[is + 6] * q4 * xq[l + 96];
        }
    return s;
}

void bn_dot_rows_q6k_ref(const uint8_t *w, size_t row_bytes, int64_t nrows, const int16_t *xq, const float *xd,
                         int64_t n, float *out) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        float s = 0.0f;
        for (int64_t b = 0; b < n / 256; b++) {
            uint16_t dh;
            memcpy(&dh, row + (size_t)b * 210 + 208, 2);
            s += (bn_f16_to_f32(dh) * xd[b]) * (float)q6k_block_sum(row + (size_t)b * 210, xq + b * 256);
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

float bn_exp(float x) {
    if (x != x) return x;
    if (x < BN_EXP_MIN) return 0.0f;
    float n = (x * BN_EXP_LOG2E + BN_EXP_ROUND) - BN_EXP_ROUND;
    float r = x - n * BN_EXP_LN2_HI;
    r = r - n * BN_EXP_LN2_LO;
    float p = BN_EXP_P0;
    p = p * r + BN_EXP_P1;
    p = p * r + BN_EXP_P2;
    p = p * r + BN_EXP_P3;
    p = p * r + BN_EXP_P4;
    p = p * r + BN_EXP_P5;
    float y = (p * (r * r) + r) + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; /* n in [-126, 0]: a normal power of two */
    float two_n;
    memcpy(&two_n, &bits, 4);
    return y * two_n;
}

void bn_attn_softmax_ref(float *s, int n, float scale) {
    float mx = -INFINITY;
    for (int p = 0; p < n; p++) {
        s[p] = s[p] * scale;
        if (s[p] > mx) mx = s[p];
    }
    float lane[16] = {0};
    for (int p = 0; p < n; p++) {
        s[p] = bn_exp(s[p] - mx);
        lane[p % 16] += s[p];
    }
    float sum = 0.0f;
    for (int i = 0; i < 16; i++) sum += lane[i];
    float inv = 1.0f / sum;
    for (int p = 0; p < n; p++) s[p] = s[p] * inv;
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
    bn_dot_rows_bf16_ref,
    ref_dot_rows_f16_n,
    bn_dot_rows_bf16_n_ref,
    bn_dot_rows_q8_0_ref,
    bn_dot_rows_q6k_ref,
    ref_dot_rows_i8,
    ref_attn_scores,
    ref_attn_mix,
    NULL,
    NULL,
    bn_attn_softmax_ref,
};
