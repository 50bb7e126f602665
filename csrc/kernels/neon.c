/* neon.c: the AArch64 paths: "neon" (baseline ARMv8 Advanced SIMD: widening
 * multiplies) and "neondot" (the ARMv8.2 dot-product instructions, chosen
 * when the CPU reports them). Same 128/32 block layout as every other path:
 * per-byte shifts pull out the code planes, so no ARM-specific repacking
 * (the source of the I2_S "garbage on ARM" reports) exists at all. */
#if defined(__aarch64__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") /* attention must round as ref.c does */
#endif
#include <arm_neon.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "kernels/kernels.h"

#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))

/* acc += sum of a*b over 16 int8 lanes, four products per int32 lane */
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

static inline DOTPROD int32x4_t dot16_dp(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }

/* The eight 16-byte code planes of one block: p[2k], p[2k+1] hold plane k
 * (elements 32k .. 32k+31) as int8 0..2. */
static inline void planes(const uint8_t *blk, int8x16_t p[8]) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    uint8x16_t a = vld1q_u8(blk), b = vld1q_u8(blk + 16);
    p[0] = vreinterpretq_s8_u8(vshrq_n_u8(a, 6));
    p[1] = vreinterpretq_s8_u8(vshrq_n_u8(b, 6));
    p[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(a, 4), m3));
    p[3] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(b, 4), m3));
    p[4] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(a, 2), m3));
    p[5] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(b, 2), m3));
    p[6] = vreinterpretq_s8_u8(vandq_u8(a, m3));
    p[7] = vreinterpretq_s8_u8(vandq_u8(b, m3));
}

/* The ternary kernels, once per dot16 flavour. */
#define TERNARY_KERNELS(SUFFIX, ATTR, DOT)                                                                        \
    static ATTR void ternary_dot_rows_##SUFFIX(const uint8_t *w, size_t row_bytes, int nblocks, const int8_t *q,  \
                                               int64_t nrows, int32_t *out) {                                     \
        int32_t sq = bn_sum_i8(q, (int64_t)nblocks * 128);                                                         \
        for (int64_t r = 0; r < nrows; r++) {                                                                      \
            const uint8_t *row = w + (size_t)r * row_bytes;                                                        \
            int32x4_t acc = vdupq_n_s32(0);                                                                        \
            for (int b = 0; b < nblocks; b++) {                                                                    \
                int8x16_t p[8];                                                                                    \
                planes(row + b * 32, p);                                                                           \
                for (int k = 0; k < 8; k++) acc = DOT(acc, p[k], vld1q_s8(q + b * 128 + 16 * k));                \
            }                                                                                                      \
            out[r] = vaddvq_s32(acc) - sq;                                                                         \
        }                                                                                                          \
    }                                                                                                              \
    static ATTR void ternary_matmat_##SUFFIX(const uint8_t *w, size_t row_bytes, int nblocks, int64_t nrows,       \
                                             const int8_t *q, size_t q_stride, int ntok, int32_t *out,            \
                                             size_t out_stride) {                                                 \
        int64_t K = (int64_t)nblocks * 128;                                                                        \
        for (int t0 = 0; t0 < ntok; t0 += 4) {                                                                     \
            int T = ntok - t0 < 4 ? ntok - t0 : 4;                                                                 \
            int32_t sq[4];                                                                                         \
            for (int t = 0; t < T; t++) sq[t] = bn_sum_i8(q + (size_t)(t0 + t) * q_stride, K);                     \
            for (int64_t r = 0; r < nrows; r++) {                                                                  \
                const uint8_t *row = w + (size_t)r * row_bytes;                                                    \
                int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};               \
                for (int b = 0; b < nblocks; b++) {                                                                \
                    int8x16_t p[8];                                                                                \
                    planes(row + b * 32, p); /* decoded once for up to four tokens */                              \
                    for (int t = 0; t < T; t++) {                                                                  \
                        const int8_t *qb = q + (size_t)(t0 + t) * q_stride + b * 128;                              \
                        for (int k = 0; k < 8; k++) acc[t] = DOT(acc[t], p[k], vld1q_s8(qb + 16 * k));            \
                    }                                                                                              \
                }                                                                                                  \
                for (int t = 0; t < T; t++) out[(size_t)(t0 + t) * out_stride + r] = vaddvq_s32(acc[t]) - sq[t];   \
            }                                                                                                      \
        }                                                                                                          \
    }                                                                                                              \
    static ATTR void dot_rows_i8_##SUFFIX(const int8_t *w, size_t row_stride, int64_t nrows, const int8_t *q,      \
                                          int64_t n, int32_t *out) {                                              \
        for (int64_t r = 0; r < nrows; r++) {                                                                      \
            const int8_t *row = w + (size_t)r * row_stride;                                                        \
            int32x4_t acc = vdupq_n_s32(0);                                                                        \
            int64_t i = 0;                                                                                         \
            for (; i + 16 <= n; i += 16) acc = DOT(acc, vld1q_s8(row + i), vld1q_s8(q + i));                       \
            int32_t s = vaddvq_s32(acc);                                                                           \
            for (; i < n; i++) s += row[i] * q[i];                                                                 \
            out[r] = s;                                                                                            \
        }                                                                                                          \
    }

#define NO_ATTR
TERNARY_KERNELS(neon, NO_ATTR, dot16)
TERNARY_KERNELS(neondot, DOTPROD, dot16_dp)

static float neon_dot_f32(const float *a, const float *b, int64_t n) {
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline float32x4_t h4(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

static void neon_dot_rows_f16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n,
                              float *out) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            s0 = vfmaq_f32(s0, h4(row + i), vld1q_f32(x + i));
            s1 = vfmaq_f32(s1, h4(row + i + 4), vld1q_f32(x + i + 4));
            s2 = vfmaq_f32(s2, h4(row + i + 8), vld1q_f32(x + i + 8));
            s3 = vfmaq_f32(s3, h4(row + i + 12), vld1q_f32(x + i + 12));
        }
        float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
        for (; i < n; i++) s += bn_f16_to_f32(row[i]) * x[i];
        out[r] = s;
    }
}

/* neon_dot_rows_f16 for T tokens: each 4-value weight vector widened
 * once, and token t keeps the four accumulators and their order, so its
 * bits are the single-token call's. J of the four at a time (passes over
 * the row) keeps T*J accumulators in registers. */
static inline __attribute__((always_inline)) void dot_rows_f16_n(const uint16_t *w, size_t row_stride,
                                                                 int64_t nrows, const float *const *x, int64_t n,
                                                                 float *const *out, const int T, const int J) {
    int64_t n16 = n / 16 * 16;
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        float32x4_t keep[BN_DOT_ROWS_NX][4];
        for (int j0 = 0; j0 < 4; j0 += J) {
            float32x4_t a[BN_DOT_ROWS_NX][4];
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
#pragma GCC unroll 4
                for (int j = 0; j < J; j++) a[t][j] = vdupq_n_f32(0.0f);
            for (int64_t i = 0; i < n16; i += 16) {
#pragma GCC unroll 4
                for (int j = 0; j < J; j++) {
                    int64_t o = i + 4 * (j0 + j);
                    float32x4_t v = h4(row + o);
#pragma GCC unroll 8
                    for (int t = 0; t < T; t++) a[t][j] = vfmaq_f32(a[t][j], v, vld1q_f32(x[t] + o));
                }
            }
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
#pragma GCC unroll 4
                for (int j = 0; j < J; j++) keep[t][j0 + j] = a[t][j];
        }
        float s[BN_DOT_ROWS_NX];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            s[t] = vaddvq_f32(vaddq_f32(vaddq_f32(keep[t][0], keep[t][1]), vaddq_f32(keep[t][2], keep[t][3])));
        for (int64_t i = n16; i < n; i++) {
            float v = bn_f16_to_f32(row[i]);
            for (int t = 0; t < T; t++) s[t] += v * x[t][i];
        }
        for (int t = 0; t < T; t++) out[t][r] = s[t];
    }
}

/* One instance per token count: all four accumulators up to 4 tokens. */
static void neon_dot_rows_f16_n(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int nx,
                                int64_t n, float *const *out) {
    switch (nx) {
    case 1: dot_rows_f16_n(w, row_stride, nrows, x, n, out, 1, 4); break;
    case 2: dot_rows_f16_n(w, row_stride, nrows, x, n, out, 2, 4); break;
    case 3: dot_rows_f16_n(w, row_stride, nrows, x, n, out, 3, 4); break;
    case 4: dot_rows_f16_n(w, row_stride, nrows, x, n, out, 4, 4); break;
    case 5: dot_rows_f16_n(w, row_stride, nrows, x, n, out, 5, 2); break;
    case 6: dot_rows_f16_n(w, row_stride, nrows, x, n, out, 6, 2); break;
    case 7: dot_rows_f16_n(w, row_stride, nrows, x, n, out, 7, 2); break;
    default: dot_rows_f16_n(w, row_stride, nrows, x, n, out, 8, 2); break;
    }
}

static inline float32x4_t load4(const void *base, int kv_f16, size_t i) {
    return kv_f16 ? h4((const uint16_t *)base + i) : vld1q_f32((const float *)base + i);
}

/* multiply then add, never fused: the reference's rounding */
static inline float32x4_t muladd(float32x4_t acc, float32x4_t a, float32x4_t b) {
    return vaddq_f32(acc, vmulq_f32(a, b));
}

static void neon_attn_scores(const float *q, const void *k, int kv_f16, int npos, int hd, float *s) {
    for (int p0 = 0; p0 < npos; p0 += BN_KV_TILE) {
        size_t tile = (size_t)(p0 / BN_KV_TILE) * hd * BN_KV_TILE;
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int d = 0; d < hd; d++) {
            float32x4_t qd = vdupq_n_f32(q[d]);
            size_t o = tile + (size_t)d * BN_KV_TILE;
            a0 = muladd(a0, qd, load4(k, kv_f16, o));
            a1 = muladd(a1, qd, load4(k, kv_f16, o + 4));
            a2 = muladd(a2, qd, load4(k, kv_f16, o + 8));
            a3 = muladd(a3, qd, load4(k, kv_f16, o + 12));
        }
        float tmp[BN_KV_TILE];
        vst1q_f32(tmp, a0);
        vst1q_f32(tmp + 4, a1);
        vst1q_f32(tmp + 8, a2);
        vst1q_f32(tmp + 12, a3);
        int n = npos - p0 < BN_KV_TILE ? npos - p0 : BN_KV_TILE;
        memcpy(s + p0, tmp, sizeof(float) * (size_t)n);
    }
}

static void neon_attn_mix(const float *w, const void *v, int kv_f16, int npos, int hd, float *out) {
    int d = 0;
    for (; d + 16 <= hd; d += 16) {
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int p = 0; p < npos; p++) {
            float32x4_t wp = vdupq_n_f32(w[p]);
            size_t o = (size_t)p * hd + d;
            a0 = muladd(a0, wp, load4(v, kv_f16, o));
            a1 = muladd(a1, wp, load4(v, kv_f16, o + 4));
            a2 = muladd(a2, wp, load4(v, kv_f16, o + 8));
            a3 = muladd(a3, wp, load4(v, kv_f16, o + 12));
        }
        vst1q_f32(out + d, a0);
        vst1q_f32(out + d + 4, a1);
        vst1q_f32(out + d + 8, a2);
        vst1q_f32(out + d + 12, a3);
    }
    bn_attn_mix_cols(w, v, kv_f16, npos, hd, d, out); /* odd head sizes */
}

const bn_kernels bn_kernels_neon = {
    "neon",
    ternary_dot_rows_neon,
    ternary_matmat_neon,
    bn_quantize_act,
    neon_dot_f32,
    neon_dot_rows_f16,
    bn_dot_rows_bf16_ref,
    neon_dot_rows_f16_n,
    bn_dot_rows_bf16_n_ref,
    bn_dot_rows_q8_0_ref,
    bn_dot_rows_q6k_ref,
    dot_rows_i8_neon,
    neon_attn_scores,
    neon_attn_mix,
    NULL,
    NULL,
    bn_attn_softmax_ref,
};

const bn_kernels bn_kernels_neondot = {
    "neondot",
    ternary_dot_rows_neondot,
    ternary_matmat_neondot,
    bn_quantize_act,
    neon_dot_f32,
    neon_dot_rows_f16,
    bn_dot_rows_bf16_ref,
    neon_dot_rows_f16_n,
    bn_dot_rows_bf16_n_ref,
    bn_dot_rows_q8_0_ref,
    bn_dot_rows_q6k_ref,
    dot_rows_i8_neondot,
    neon_attn_scores,
    neon_attn_mix,
    NULL,
    NULL,
    bn_attn_softmax_ref,
};

#endif
