/* avx2.c: the AVX2 path (x86-64 with AVX2, FMA and F16C). Each function
 * carries its own target attribute, so the rest of the build stays
 * baseline x86-64 and select.c decides at run time whether to call these.
 *
 * Ternary blocks: the four 2-bit planes of a 32-byte block are pulled out
 * with shifts and a mask (codes 0..2 as unsigned bytes) and multiplied
 * with the matching 32 activations by maddubs; four planes of at most
 * 2*2*128 per 16-bit lane cannot overflow before they are widened. The
 * -1 offset of the codes is taken off once per row as the activation sum. */
#if defined(__x86_64__) || defined(__i386__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") /* attention must round as ref.c does */
#endif
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "kernels/kernels.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

AVX2_INLINE int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

AVX2_INLINE float hsum_f32(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The four code planes of one 32-byte block. */
AVX2_INLINE void planes(const uint8_t *blk, __m256i p[4]) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i v = _mm256_loadu_si256((const __m256i *)blk);
    p[0] = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
    p[1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
    p[2] = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
    p[3] = _mm256_and_si256(v, m3);
}

/* sum of codes * q over one block, as 8 int32 lanes */
AVX2_INLINE __m256i block_dot(const __m256i p[4], const int8_t *qb) {
    __m256i a = _mm256_maddubs_epi16(p[0], _mm256_loadu_si256((const __m256i *)qb));
    __m256i b = _mm256_maddubs_epi16(p[1], _mm256_loadu_si256((const __m256i *)(qb + 32)));
    __m256i c = _mm256_maddubs_epi16(p[2], _mm256_loadu_si256((const __m256i *)(qb + 64)));
    __m256i d = _mm256_maddubs_epi16(p[3], _mm256_loadu_si256((const __m256i *)(qb + 96)));
    __m256i s = _mm256_add_epi16(_mm256_add_epi16(a, b), _mm256_add_epi16(c, d));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}

static AVX2 void avx2_ternary_dot_rows(const uint8_t *w, size_t row_bytes, int nblocks, const int8_t *q,
                                       int64_t nrows, int32_t *out) {
    int32_t sq = bn_sum_i8(q, (int64_t)nblocks * 128);
    int64_t r = 0;
    for (; r + 2 <= nrows; r += 2) { /* two rows share the activation loads */
        const uint8_t *w0 = w + (size_t)r * row_bytes, *w1 = w0 + row_bytes;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        /* two interleaved short streams defeat the hardware prefetcher:
         * fetch the pair of rows two ahead, 64 bytes per block */
        const char *pf = (const char *)w0 + 4 * row_bytes;
        for (int b = 0; b < nblocks; b++) {
            __m256i p[4];
            _mm_prefetch(pf + b * 64, _MM_HINT_T0);
            planes(w0 + b * 32, p);
            acc0 = _mm256_add_epi32(acc0, block_dot(p, q + b * 128));
            planes(w1 + b * 32, p);
            acc1 = _mm256_add_epi32(acc1, block_dot(p, q + b * 128));
        }
        out[r] = hsum_i32(acc0) - sq;
        out[r + 1] = hsum_i32(acc1) - sq;
    }
    for (; r < nrows; r++) {
        const uint8_t *w0 = w + (size_t)r * row_bytes;
        __m256i acc = _mm256_setzero_si256();
        for (int b = 0; b < nblocks; b++) {
            __m256i p[4];
            planes(w0 + b * 32, p);
            acc = _mm256_add_epi32(acc, block_dot(p, q + b * 128));
        }
        out[r] = hsum_i32(acc) - sq;
    }
}

/* One row against T tokens: each block's planes are decoded once. */
AVX2_INLINE void mm_row(const uint8_t *row, int nblocks, const int8_t *q, size_t q_stride, int T, const int32_t *sq,
                        int32_t *out, size_t out_stride) {
    __m256i acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_si256();
    for (int b = 0; b < nblocks; b++) {
        __m256i p[4];
        planes(row + b * 32, p);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm256_add_epi32(acc[t], block_dot(p, q + t * q_stride + b * 128));
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) out[t * out_stride] = hsum_i32(acc[t]) - sq[t];
}

static AVX2 void avx2_ternary_matmat(const uint8_t *w, size_t row_bytes, int nblocks, int64_t nrows,
                                     const int8_t *q, size_t q_stride, int ntok, int32_t *out, size_t out_stride) {
    int64_t K = (int64_t)nblocks * 128;
    for (int t0 = 0; t0 < ntok; t0 += 4) {
        int T = ntok - t0 < 4 ? ntok - t0 : 4;
        int32_t sq[4];
        for (int t = 0; t < T; t++) sq[t] = bn_sum_i8(q + (size_t)(t0 + t) * q_stride, K);
        const int8_t *qt = q + (size_t)t0 * q_stride;
        int32_t *ot = out + (size_t)t0 * out_stride;
        for (int64_t r = 0; r < nrows; r++) {
            const uint8_t *row = w + (size_t)r * row_bytes;
            if (T == 4) mm_row(row, nblocks, qt, q_stride, 4, sq, ot + r, out_stride);
            else if (T == 3) mm_row(row, nblocks, qt, q_stride, 3, sq, ot + r, out_stride);
            else if (T == 2) mm_row(row, nblocks, qt, q_stride, 2, sq, ot + r, out_stride);
            else mm_row(row, nblocks, qt, q_stride, 1, sq, ot + r, out_stride);
        }
    }
}

static AVX2 float avx2_dot_f32(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    float s = hsum_f32(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* 8 F16 or BF16 values (a bf16 is the top half of an f32) as floats. */
AVX2_INLINE __m256 half8(const uint16_t *p, int bf16) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    return bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16)) : _mm256_cvtph_ps(v);
}

/* F16 or BF16 rows (the flag is a constant where this is inlined). */
AVX2_INLINE void dot_rows_16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n,
                             float *out, int bf16) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            /* 4 KB ahead, past the page boundaries where the hardware
             * prefetcher stops (as in avx512.c) */
            if (i % 32 == 0) _mm_prefetch((const char *)(row + i) + 4096, _MM_HINT_T0);
            s0 = _mm256_fmadd_ps(half8(row + i, bf16), _mm256_loadu_ps(x + i), s0);
            s1 = _mm256_fmadd_ps(half8(row + i + 8, bf16), _mm256_loadu_ps(x + i + 8), s1);
        }
        float s = hsum_f32(_mm256_add_ps(s0, s1));
        for (; i < n; i++) s += (bf16 ? bn_bf16_to_f32(row[i]) : bn_f16_to_f32(row[i])) * x[i];
        out[r] = s;
    }
}

static AVX2 void avx2_dot_rows_f16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n,
                                   float *out) {
    dot_rows_16(w, row_stride, nrows, x, n, out, 0);
}

static AVX2 void avx2_dot_rows_bf16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n,
                                    float *out) {
    dot_rows_16(w, row_stride, nrows, x, n, out, 1);
}

/* dot_rows_16 for T tokens, as in avx512.c: each weight vector widened
 * once, and token t keeps dot_rows_16's two accumulators and their order,
 * so its bits are the single-token call's. J of the two at a time keeps
 * T*J accumulators within the 16 registers. */
AVX2_INLINE void dot_rows_16_n(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int64_t n,
                               float *const *out, int bf16, const int T, const int J) {
    int64_t n16 = n / 16 * 16;
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        __m256 keep[BN_DOT_ROWS_NX][2];
        for (int j0 = 0; j0 < 2; j0 += J) {
            __m256 a[BN_DOT_ROWS_NX][2];
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
#pragma GCC unroll 2
                for (int j = 0; j < J; j++) a[t][j] = _mm256_setzero_ps();
            for (int64_t i = 0; i < n16; i += 16) {
                if (j0 == 0 && i % 32 == 0) _mm_prefetch((const char *)(row + i) + 4096, _MM_HINT_T0);
#pragma GCC unroll 2
                for (int j = 0; j < J; j++) {
                    int64_t o = i + 8 * (j0 + j);
                    __m256 v = half8(row + o, bf16);
#pragma GCC unroll 8
                    for (int t = 0; t < T; t++) a[t][j] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x[t] + o), a[t][j]);
                }
            }
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
#pragma GCC unroll 2
                for (int j = 0; j < J; j++) keep[t][j0 + j] = a[t][j];
        }
        float s[BN_DOT_ROWS_NX];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) s[t] = hsum_f32(_mm256_add_ps(keep[t][0], keep[t][1]));
        for (int64_t i = n16; i < n; i++) {
            float v = bf16 ? bn_bf16_to_f32(row[i]) : bn_f16_to_f32(row[i]);
            for (int t = 0; t < T; t++) s[t] += v * x[t][i];
        }
        for (int t = 0; t < T; t++) out[t][r] = s[t];
    }
}

/* One instance per token count: both accumulators at once up to 4 tokens. */
#define ROWS16_N(NAME, BF16)                                                                                      \
    static AVX2 void NAME(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int nx,    \
                          int64_t n, float *const *out) {                                                         \
        switch (nx) {                                                                                             \
        case 1: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 1, 2); break;                                \
        case 2: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 2, 2); break;                                \
        case 3: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 3, 2); break;                                \
        case 4: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 4, 2); break;                                \
        case 5: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 5, 1); break;                                \
        case 6: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 6, 1); break;                                \
        case 7: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 7, 1); break;                                \
        default: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 8, 1); break;                               \
        }                                                                                                         \
    }
ROWS16_N(avx2_dot_rows_f16_n, 0)
ROWS16_N(avx2_dot_rows_bf16_n, 1)

/* Q8_0 rows (34-byte blocks: f16 d, int8 q[32]), as in avx512.c. */
static AVX2 void avx2_dot_rows_q8_0(const uint8_t *w, size_t row_bytes, int64_t nrows, const float *x, int64_t n,
                                    float *out) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *b = w + (size_t)r * row_bytes;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t i = 0; i < n; i += 32, b += 34) {
            _mm_prefetch((const char *)b + 4096, _MM_HINT_T0);
            uint16_t dh;
            memcpy(&dh, b, 2);
            __m256 d = _mm256_set1_ps(_cvtsh_ss(dh)), blk0, blk1;
            __m128i q0 = _mm_loadu_si128((const __m128i *)(b + 2)), q1 = _mm_loadu_si128((const __m128i *)(b + 18));
            blk0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0)), _mm256_loadu_ps(x + i));
            blk1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8))), _mm256_loadu_ps(x + i + 8));
            blk0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1)), _mm256_loadu_ps(x + i + 16), blk0);
            blk1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8))),
                                   _mm256_loadu_ps(x + i + 24), blk1);
            a0 = _mm256_fmadd_ps(blk0, d, a0);
            a1 = _mm256_fmadd_ps(blk1, d, a1);
        }
        out[r] = hsum_f32(_mm256_add_ps(a0, a1));
    }
}

/* |w| * sign(q, w): both factors fit maddubs without saturation because q
 * never reaches -128 here (see kernels.h). */
static AVX2 void avx2_dot_rows_i8(const int8_t *w, size_t row_stride, int64_t nrows, const int8_t *q, int64_t n,
                                  int32_t *out) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t r = 0; r < nrows; r++) {
        const int8_t *row = w + (size_t)r * row_stride;
        __m256i acc = _mm256_setzero_si256();
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            __m256i wv = _mm256_loadu_si256((const __m256i *)(row + i));
            __m256i qv = _mm256_loadu_si256((const __m256i *)(q + i));
            __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(qv, wv));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
        }
        int32_t s = hsum_i32(acc);
        for (; i < n; i++) s += row[i] * q[i];
        out[r] = s;
    }
}

AVX2_INLINE __m256 load8(const void *base, int kv_f16, size_t i) {
    if (kv_f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    return _mm256_loadu_ps((const float *)base + i);
}

static AVX2 void avx2_attn_scores(const float *q, const void *k, int kv_f16, int npos, int hd, float *s) {
    for (int p0 = 0; p0 < npos; p0 += BN_KV_TILE) {
        size_t tile = (size_t)(p0 / BN_KV_TILE) * hd * BN_KV_TILE;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int d = 0; d < hd; d++) {
            __m256 qd = _mm256_set1_ps(q[d]);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(qd, load8(k, kv_f16, tile + (size_t)d * BN_KV_TILE)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(qd, load8(k, kv_f16, tile + (size_t)d * BN_KV_TILE + 8)));
        }
        float tmp[BN_KV_TILE];
        _mm256_storeu_ps(tmp, a0);
        _mm256_storeu_ps(tmp + 8, a1);
        int n = npos - p0 < BN_KV_TILE ? npos - p0 : BN_KV_TILE;
        memcpy(s + p0, tmp, sizeof(float) * (size_t)n);
    }
}

static AVX2 void avx2_attn_mix(const float *w, const void *v, int kv_f16, int npos, int hd, float *out) {
    int d = 0;
    for (; d + 32 <= hd; d += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
               a3 = _mm256_setzero_ps();
        for (int p = 0; p < npos; p++) {
            __m256 wp = _mm256_set1_ps(w[p]);
            size_t o = (size_t)p * hd + d;
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(wp, load8(v, kv_f16, o)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(wp, load8(v, kv_f16, o + 8)));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(wp, load8(v, kv_f16, o + 16)));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(wp, load8(v, kv_f16, o + 24)));
        }
        _mm256_storeu_ps(out + d, a0);
        _mm256_storeu_ps(out + d + 8, a1);
        _mm256_storeu_ps(out + d + 16, a2);
        _mm256_storeu_ps(out + d + 24, a3);
    }
    for (; d + 8 <= hd; d += 8) {
        __m256 a = _mm256_setzero_ps();
        for (int p = 0; p < npos; p++)
            a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(w[p]), load8(v, kv_f16, (size_t)p * hd + d)));
        _mm256_storeu_ps(out + d, a);
    }
    bn_attn_mix_cols(w, v, kv_f16, npos, hd, d, out); /* odd head sizes */
}

/* bn_exp on 8 lanes, step for step */
AVX2_INLINE __m256 exp8(__m256 x) {
    __m256 n = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(BN_EXP_LOG2E)), _mm256_set1_ps(BN_EXP_ROUND)),
                             _mm256_set1_ps(BN_EXP_ROUND));
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(BN_EXP_LN2_HI)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(BN_EXP_LN2_LO)));
    __m256 p = _mm256_set1_ps(BN_EXP_P0);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BN_EXP_P1));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BN_EXP_P2));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BN_EXP_P3));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BN_EXP_P4));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BN_EXP_P5));
    __m256 y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r), _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(BN_EXP_MIN), _CMP_LT_OQ));
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* bn_attn_softmax_ref with its 16 sum lanes as two registers (p % 16 < 8
 * in the first); the tail takes the scalar steps into the same lanes. */
static AVX2 void avx2_attn_softmax(float *s, int n, float scale) {
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int p = 0;
    for (; p + 8 <= n; p += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(s + p), vs);
        _mm256_storeu_ps(s + p, v);
        mx = _mm256_max_ps(v, mx); /* a NaN v leaves mx, as the reference skips it */
    }
    float lanes[16], m = -INFINITY;
    _mm256_storeu_ps(lanes, mx);
    for (int i = 0; i < 8; i++) m = lanes[i] > m ? lanes[i] : m;
    for (; p < n; p++) {
        s[p] = s[p] * scale;
        if (s[p] > m) m = s[p];
    }
    const __m256 vm = _mm256_set1_ps(m);
    __m256 lo = _mm256_setzero_ps(), hi = lo;
    for (p = 0; p + 16 <= n; p += 16) {
        __m256 a = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + p), vm)), b = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + p + 8), vm));
        _mm256_storeu_ps(s + p, a);
        _mm256_storeu_ps(s + p + 8, b);
        lo = _mm256_add_ps(lo, a);
        hi = _mm256_add_ps(hi, b);
    }
    _mm256_storeu_ps(lanes, lo);
    _mm256_storeu_ps(lanes + 8, hi);
    for (; p < n; p++) {
        s[p] = bn_exp(s[p] - m);
        lanes[p % 16] += s[p];
    }
    float total = 0.0f;
    for (int i = 0; i < 16; i++) total += lanes[i];
    float inv = 1.0f / total;
    const __m256 vinv = _mm256_set1_ps(inv);
    for (p = 0; p + 8 <= n; p += 8) _mm256_storeu_ps(s + p, _mm256_mul_ps(_mm256_loadu_ps(s + p), vinv));
    for (; p < n; p++) s[p] = s[p] * inv;
}

const bn_kernels bn_kernels_avx2 = {
    "avx2",
    avx2_ternary_dot_rows,
    avx2_ternary_matmat,
    bn_quantize_act,
    avx2_dot_f32,
    avx2_dot_rows_f16,
    avx2_dot_rows_bf16,
    avx2_dot_rows_f16_n,
    avx2_dot_rows_bf16_n,
    avx2_dot_rows_q8_0,
    bn_dot_rows_q6k_ref,
    avx2_dot_rows_i8,
    avx2_attn_scores,
    avx2_attn_mix,
    NULL,
    NULL,
    avx2_attn_softmax,
};

#endif
