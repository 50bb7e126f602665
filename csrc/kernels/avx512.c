/* avx512.c: the AVX-512 path (F, BW, VL and VNNI: Ice Lake, Zen 4 and
 * later). Functions carry their own target attribute; select.c checks the
 * CPU before any of them is called.
 *
 * Ternary blocks: a 32-byte block is broadcast to both halves of a 512-bit
 * register and shifted by 6|4 and 2|0 bits per half (vpsrlvw), so after
 * masking, one register holds planes 0 and 1 (elements 0..63 of the block)
 * and the other planes 2 and 3 (64..127): each lines up with 64
 * consecutive activations, and vpdpbusd multiplies the unsigned codes with
 * the signed activations straight into int32 lanes (no overflow path). */
#if defined(__x86_64__) || defined(__i386__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") /* attention must round as ref.c does */
#endif
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "kernels/kernels.h"

#define TGT "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
#define AVX512 __attribute__((target(TGT)))
#define AVX512_INLINE static inline __attribute__((always_inline, target(TGT)))

AVX512_INLINE __m512i ld(const int8_t *p) { return _mm512_loadu_si512((const void *)p); }

static AVX512 int32_t sum_i8(const int8_t *q, int64_t n) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i acc = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) acc = _mm512_dpbusd_epi32(acc, ones, ld(q + i));
    int32_t s = _mm512_reduce_add_epi32(acc);
    for (; i < n; i++) s += q[i];
    return s;
}

/* Decode without shifts: masking a broadcast block with 0xC0|0x30 keeps
 * planes 0|1 as code*64|code*16, and 0x0C|0x03 keeps planes 2|3 as
 * code*4|code; products stay within vpdpbusd's range and each 32-bit lane
 * sums one plane only, so the scale is divided out exactly per lane. */
AVX512_INLINE __m512i bcast(const uint8_t *blk) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk));
}

/* lane-exact (acc01 / (64|16)) + (acc23 / (4|1)), summed */
AVX512_INLINE int32_t unscale(__m512i a01, __m512i a23) {
    const __m512i s01 = _mm512_inserti64x4(_mm512_set1_epi32(6), _mm256_set1_epi32(4), 1);
    const __m512i s23 = _mm512_inserti64x4(_mm512_set1_epi32(2), _mm256_set1_epi32(0), 1);
    return _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_srav_epi32(a01, s01), _mm512_srav_epi32(a23, s23)));
}

static AVX512 void avx512_ternary_dot_rows(const uint8_t *w, size_t row_bytes, int nblocks, const int8_t *q,
                                           int64_t nrows, int32_t *out) {
    const __m512i m01 = _mm512_inserti64x4(_mm512_set1_epi8((char)0xC0), _mm256_set1_epi8(0x30), 1);
    const __m512i m23 = _mm512_inserti64x4(_mm512_set1_epi8(0x0C), _mm256_set1_epi8(0x03), 1);
    int32_t sq = sum_i8(q, (int64_t)nblocks * 128);
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) { /* four rows share the activation loads */
        const uint8_t *w0 = w + (size_t)r * row_bytes;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        /* the four rows are 4*row_bytes = nblocks*128 contiguous bytes read
         * in four short interleaved streams that defeat the hardware
         * prefetcher: fetch the group four ahead, 128 bytes per block
         * (measured against two ahead: 34 against 33 GB/s on one Zen 5 core) */
        const char *pf = (const char *)w0 + 16 * row_bytes;
        for (int b = 0; b < nblocks; b++) {
            __m512i q01 = ld(q + b * 128), q23 = ld(q + b * 128 + 64), v;
            _mm_prefetch(pf + b * 128, _MM_HINT_T0);
            _mm_prefetch(pf + b * 128 + 64, _MM_HINT_T0);
            v = bcast(w0 + b * 32);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(v, m01), q01);
            b0 = _mm512_dpbusd_epi32(b0, _mm512_and_si512(v, m23), q23);
            v = bcast(w0 + row_bytes + b * 32);
            a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(v, m01), q01);
            b1 = _mm512_dpbusd_epi32(b1, _mm512_and_si512(v, m23), q23);
            v = bcast(w0 + 2 * row_bytes + b * 32);
            a2 = _mm512_dpbusd_epi32(a2, _mm512_and_si512(v, m01), q01);
            b2 = _mm512_dpbusd_epi32(b2, _mm512_and_si512(v, m23), q23);
            v = bcast(w0 + 3 * row_bytes + b * 32);
            a3 = _mm512_dpbusd_epi32(a3, _mm512_and_si512(v, m01), q01);
            b3 = _mm512_dpbusd_epi32(b3, _mm512_and_si512(v, m23), q23);
        }
        out[r] = unscale(a0, b0) - sq;
        out[r + 1] = unscale(a1, b1) - sq;
        out[r + 2] = unscale(a2, b2) - sq;
        out[r + 3] = unscale(a3, b3) - sq;
    }
    for (; r < nrows; r++) {
        const uint8_t *w0 = w + (size_t)r * row_bytes;
        __m512i a = _mm512_setzero_si512(), c = a;
        for (int b = 0; b < nblocks; b++) {
            __m512i v = bcast(w0 + b * 32);
            a = _mm512_dpbusd_epi32(a, _mm512_and_si512(v, m01), ld(q + b * 128));
            c = _mm512_dpbusd_epi32(c, _mm512_and_si512(v, m23), ld(q + b * 128 + 64));
        }
        out[r] = unscale(a, c) - sq;
    }
}

/* R rows (<= 4) against T tokens (<= 4): each block is decoded once per
 * row and used for every token. Planes 2|3 are shifted up by 4 bits so that
 * both registers carry the same per-half scale (64|16) and one accumulator
 * per (row, token) suffices: R*T accumulators stay in registers. */
AVX512_INLINE void mm_tile(const uint8_t *w, size_t row_bytes, int R, int nblocks, const int8_t *q, size_t q_stride,
                           int T, const int32_t *sq, int32_t *out, size_t out_stride) {
    const __m512i m = _mm512_inserti64x4(_mm512_set1_epi8((char)0xC0), _mm256_set1_epi8(0x30), 1);
    const __m512i sh = _mm512_inserti64x4(_mm512_set1_epi32(6), _mm256_set1_epi32(4), 1);
    __m512i acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_si512();
    const char *pf = (const char *)w + 2 * R * row_bytes; /* see avx512_ternary_dot_rows */
    for (int b = 0; b < nblocks; b++) {
        __m512i p01[4], p23[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r += 2) _mm_prefetch(pf + (b * R + r) * 32, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512i v = bcast(w + r * row_bytes + b * 32);
            p01[r] = _mm512_and_si512(v, m);
            p23[r] = _mm512_and_si512(_mm512_slli_epi16(v, 4), m);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const int8_t *qb = q + t * q_stride + b * 128;
            __m512i q01 = ld(qb), q23 = ld(qb + 64);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[r][t], p01[r], q01), p23[r], q23);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            out[t * out_stride + r] = _mm512_reduce_add_epi32(_mm512_srav_epi32(acc[r][t], sh)) - sq[t];
}

/* mm_tile for 4 rows and 4 tokens, every register named: gcc spills the
 * array form of this case (measured 20-25% slower). pf: where to prefetch
 * from (the rows two groups on), or NULL when the rows are already cached. */
AVX512_INLINE void mm_tile44(const uint8_t *w, size_t row_bytes, int nblocks, const int8_t *q, size_t q_stride,
                             const int32_t *sq, int32_t *out, size_t out_stride, const char *pf) {
    const __m512i m = _mm512_inserti64x4(_mm512_set1_epi8((char)0xC0), _mm256_set1_epi8(0x30), 1);
    const __m512i sh = _mm512_inserti64x4(_mm512_set1_epi32(6), _mm256_set1_epi32(4), 1);
    const uint8_t *w1 = w + row_bytes, *w2 = w1 + row_bytes, *w3 = w2 + row_bytes;
    const int8_t *q1 = q + q_stride, *q2 = q1 + q_stride, *q3 = q2 + q_stride;
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00,
            c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    for (int b = 0; b < nblocks; b++) {
        if (pf) {
            _mm_prefetch(pf + b * 128, _MM_HINT_T0);
            _mm_prefetch(pf + b * 128 + 64, _MM_HINT_T0);
        }
        __m512i v0 = bcast(w + b * 32), v1 = bcast(w1 + b * 32), v2 = bcast(w2 + b * 32), v3 = bcast(w3 + b * 32);
        __m512i a0 = _mm512_and_si512(v0, m), a1 = _mm512_and_si512(v1, m), a2 = _mm512_and_si512(v2, m),
                a3 = _mm512_and_si512(v3, m);
        __m512i b0 = _mm512_and_si512(_mm512_slli_epi16(v0, 4), m), b1 = _mm512_and_si512(_mm512_slli_epi16(v1, 4), m),
                b2 = _mm512_and_si512(_mm512_slli_epi16(v2, 4), m), b3 = _mm512_and_si512(_mm512_slli_epi16(v3, 4), m);
        __m512i x, y;
#define BN_MM_TOKEN(qt, d0, d1, d2, d3)                                                                          \
    x = ld(qt + b * 128);                                                                                        \
    y = ld(qt + b * 128 + 64);                                                                                   \
    d0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(d0, a0, x), b0, y);                                             \
    d1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(d1, a1, x), b1, y);                                             \
    d2 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(d2, a2, x), b2, y);                                             \
    d3 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(d3, a3, x), b3, y);
        BN_MM_TOKEN(q, c00, c10, c20, c30)
        BN_MM_TOKEN(q1, c01, c11, c21, c31)
        BN_MM_TOKEN(q2, c02, c12, c22, c32)
        BN_MM_TOKEN(q3, c03, c13, c23, c33)
#undef BN_MM_TOKEN
    }
    const __m512i acc[16] = {c00, c10, c20, c30, c01, c11, c21, c31, c02, c12, c22, c32, c03, c13, c23, c33};
    for (int i = 0; i < 16; i++)
        out[(i / 4) * out_stride + i % 4] = _mm512_reduce_add_epi32(_mm512_srav_epi32(acc[i], sh)) - sq[i / 4];
}

/* R rows against T <= 4 tokens: one 4-token tile, or single-token tiles. */
AVX512_INLINE void mm_rows(const uint8_t *w, size_t row_bytes, int R, int nblocks, const int8_t *q, size_t q_stride,
                           int T, const int32_t *sq, int32_t *out, size_t out_stride) {
    if (T == 4) {
        mm_tile(w, row_bytes, R, nblocks, q, q_stride, 4, sq, out, out_stride);
        return;
    }
    for (int t = 0; t < T; t++)
        mm_tile(w, row_bytes, R, nblocks, q + t * q_stride, q_stride, 1, sq + t, out + t * out_stride, out_stride);
}

#define MM_TOKENS 64 /* tokens whose activation sums are taken at once */
#define MM_ROWS 32   /* rows kept hot in cache while token tiles pass */

static AVX512 void avx512_ternary_matmat(const uint8_t *w, size_t row_bytes, int nblocks, int64_t nrows,
                                         const int8_t *q, size_t q_stride, int ntok, int32_t *out,
                                         size_t out_stride) {
    int64_t K = (int64_t)nblocks * 128;
    int32_t sq[MM_TOKENS];
    for (int g0 = 0; g0 < ntok; g0 += MM_TOKENS) {
        int ng = ntok - g0 < MM_TOKENS ? ntok - g0 : MM_TOKENS;
        for (int t = 0; t < ng; t++) sq[t] = sum_i8(q + (size_t)(g0 + t) * q_stride, K);
        for (int64_t r0 = 0; r0 < nrows; r0 += MM_ROWS) {
            int64_t r1 = r0 + MM_ROWS < nrows ? r0 + MM_ROWS : nrows;
            for (int t0 = 0; t0 < ng; t0 += 4) {
                int T = ng - t0 < 4 ? ng - t0 : 4;
                const int8_t *qt = q + (size_t)(g0 + t0) * q_stride;
                int32_t *ot = out + (size_t)(g0 + t0) * out_stride;
                int64_t r = r0;
                if (T == 4)
                    for (; r + 4 <= r1; r += 4) /* the first token tile brings the rows in */
                        mm_tile44(w + (size_t)r * row_bytes, row_bytes, nblocks, qt, q_stride, sq + t0, ot + r,
                                  out_stride, t0 ? NULL : (const char *)w + (size_t)(r + 8) * row_bytes);
                for (; r + 4 <= r1; r += 4)
                    mm_rows(w + (size_t)r * row_bytes, row_bytes, 4, nblocks, qt, q_stride, T, sq + t0, ot + r, out_stride);
                for (; r < r1; r++)
                    mm_rows(w + (size_t)r * row_bytes, row_bytes, 1, nblocks, qt, q_stride, T, sq + t0, ot + r, out_stride);
            }
        }
    }
}

static AVX512 float avx512_quantize_act(const float *x, int64_t n, int8_t *q, int64_t npad) {
    __m512 mv = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) mv = _mm512_max_ps(mv, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    float m = _mm512_reduce_max_ps(mv);
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m) m = a;
    }
    float s = 127.0f / (m > 1e-5f ? m : 1e-5f);
    const __m512 vs = _mm512_set1_ps(s), lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
    }
    for (; i < n; i++) {
        float v = rintf(x[i] * s);
        q[i] = (int8_t)(v > 127.0f ? 127 : v < -128.0f ? -128 : v);
    }
    if (npad > n) memset(q + n, 0, (size_t)(npad - n));
    return s;
}

static AVX512 float avx512_dot_f32(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

AVX512_INLINE __m512 h16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

/* BF16: the top half of an f32. */
AVX512_INLINE __m512 b16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

AVX512_INLINE __m512 half16(const uint16_t *p, int bf16) { return bf16 ? b16(p) : h16(p); }

/* F16 or BF16 rows (the flag is a constant where this is inlined). One
 * long sequential stream: a software prefetch 4 KB ahead, across the 4 KB
 * page boundaries where the hardware prefetcher stops, measured 6% faster
 * on one Zen 5 core (37 against 35 GB/s) and no slower on two. */
AVX512_INLINE void dot_rows_16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n,
                               float *out, int bf16) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        int64_t i = 0;
        for (; i + 64 <= n; i += 64) {
            _mm_prefetch((const char *)(row + i) + 4096, _MM_HINT_T0);
            _mm_prefetch((const char *)(row + i) + 4096 + 64, _MM_HINT_T0);
            s0 = _mm512_fmadd_ps(half16(row + i, bf16), _mm512_loadu_ps(x + i), s0);
            s1 = _mm512_fmadd_ps(half16(row + i + 16, bf16), _mm512_loadu_ps(x + i + 16), s1);
            s2 = _mm512_fmadd_ps(half16(row + i + 32, bf16), _mm512_loadu_ps(x + i + 32), s2);
            s3 = _mm512_fmadd_ps(half16(row + i + 48, bf16), _mm512_loadu_ps(x + i + 48), s3);
        }
        for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(half16(row + i, bf16), _mm512_loadu_ps(x + i), s0);
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
        for (; i < n; i++) s += (bf16 ? bn_bf16_to_f32(row[i]) : bn_f16_to_f32(row[i])) * x[i];
        out[r] = s;
    }
}

static AVX512 void avx512_dot_rows_f16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x,
                                       int64_t n, float *out) {
    dot_rows_16(w, row_stride, nrows, x, n, out, 0);
}

static AVX512 void avx512_dot_rows_bf16(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x,
                                        int64_t n, float *out) {
    dot_rows_16(w, row_stride, nrows, x, n, out, 1);
}

/* dot_rows_16 for T tokens: each 16-value weight vector is widened once
 * and fused into every token's accumulators. Token t keeps dot_rows_16's
 * four accumulators, each summed from i = 0 up with the same FMAs, so its
 * bits are the single-token call's. The four are done J at a time (passes
 * over the row, which is in L1 by then), so that T*J accumulators stay in
 * registers. T and J are constants where this is inlined. */
AVX512_INLINE void dot_rows_16_n(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x,
                                 int64_t n, float *const *out, int bf16, const int T, const int J) {
    int64_t n64 = n / 64 * 64, n16 = n / 16 * 16;
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        __m512 keep[BN_DOT_ROWS_NX][4];
        for (int j0 = 0; j0 < 4; j0 += J) {
            __m512 a[BN_DOT_ROWS_NX][4];
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
#pragma GCC unroll 4
                for (int j = 0; j < J; j++) a[t][j] = _mm512_setzero_ps();
            for (int64_t i = 0; i < n64; i += 64) {
                if (j0 == 0) {
                    _mm_prefetch((const char *)(row + i) + 4096, _MM_HINT_T0);
                    _mm_prefetch((const char *)(row + i) + 4096 + 64, _MM_HINT_T0);
                }
#pragma GCC unroll 4
                for (int j = 0; j < J; j++) {
                    int64_t o = i + 16 * (j0 + j);
                    __m512 v = half16(row + o, bf16);
#pragma GCC unroll 8
                    for (int t = 0; t < T; t++) a[t][j] = _mm512_fmadd_ps(v, _mm512_loadu_ps(x[t] + o), a[t][j]);
                }
            }
            if (j0 == 0) /* the 16-value tail goes to accumulator 0 */
                for (int64_t i = n64; i < n16; i += 16) {
                    __m512 v = half16(row + i, bf16);
#pragma GCC unroll 8
                    for (int t = 0; t < T; t++) a[t][0] = _mm512_fmadd_ps(v, _mm512_loadu_ps(x[t] + i), a[t][0]);
                }
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
#pragma GCC unroll 4
                for (int j = 0; j < J; j++) keep[t][j0 + j] = a[t][j];
        }
        float s[BN_DOT_ROWS_NX];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            s[t] = _mm512_reduce_add_ps(
                _mm512_add_ps(_mm512_add_ps(keep[t][0], keep[t][1]), _mm512_add_ps(keep[t][2], keep[t][3])));
        for (int64_t i = n16; i < n; i++) {
            float v = bf16 ? bn_bf16_to_f32(row[i]) : bn_f16_to_f32(row[i]);
            for (int t = 0; t < T; t++) s[t] += v * x[t][i];
        }
        for (int t = 0; t < T; t++) out[t][r] = s[t];
    }
}

/* One instance per token count: 4 accumulators a token up to 4 tokens,
 * then 2 (at most 16 of the 32 registers). */
#define ROWS16_N(NAME, BF16)                                                                                      \
    static AVX512 void NAME(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int nx,  \
                            int64_t n, float *const *out) {                                                       \
        switch (nx) {                                                                                             \
        case 1: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 1, 4); break;                                \
        case 2: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 2, 4); break;                                \
        case 3: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 3, 4); break;                                \
        case 4: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 4, 4); break;                                \
        case 5: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 5, 2); break;                                \
        case 6: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 6, 2); break;                                \
        case 7: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 7, 2); break;                                \
        default: dot_rows_16_n(w, row_stride, nrows, x, n, out, BF16, 8, 2); break;                               \
        }                                                                                                         \
    }
ROWS16_N(avx512_dot_rows_f16_n, 0)
ROWS16_N(avx512_dot_rows_bf16_n, 1)

/* Q8_0 rows (34-byte blocks: f16 d, int8 q[32]): each block's 32 products
 * in two vectors, scaled by d into two accumulators. Floats are fast
 * enough here: the head stays memory-bound (the generic decode-then-dot
 * path took 220 ms a token for the 2B-shape head). */
static AVX512 void avx512_dot_rows_q8_0(const uint8_t *w, size_t row_bytes, int64_t nrows, const float *x,
                                        int64_t n, float *out) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *b = w + (size_t)r * row_bytes;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        for (int64_t i = 0; i < n; i += 32, b += 34) {
            _mm_prefetch((const char *)b + 4096, _MM_HINT_T0);
            uint16_t dh;
            memcpy(&dh, b, 2);
            __m512 d = _mm512_set1_ps(_cvtsh_ss(dh));
            __m128i q0 = _mm_loadu_si128((const __m128i *)(b + 2)), q1 = _mm_loadu_si128((const __m128i *)(b + 18));
            __m512 p0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), _mm512_loadu_ps(x + i));
            __m512 p1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), _mm512_loadu_ps(x + i + 16));
            a0 = _mm512_fmadd_ps(p0, d, a0);
            a1 = _mm512_fmadd_ps(p1, d, a1);
        }
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

/* Q6_K (256 weights in 210 bytes: ql[128] low 4 bits, qh[64] high 2 bits,
 * int8 scales[16] per 16 weights, f16 d) against 15-bit activations. Per
 * half-block of 128, the four 32-value groups are rebuilt as int8 (-32..31)
 * with byte-wise masks, widened to int16 and multiplied by their scales
 * (|32 * 128| fits int16), then vpdpwssd sums pairs with the activations:
 * a lane gains at most 2 * 4096 * 32767 per step and takes 8 steps a
 * block: 2147418112, just below 2^31. The block's 16 lanes are summed in
 * int64 (their total
 * may not fit int32) for the exact S_b of kernels.h. About 2.5x fewer
 * instructions than widening to floats, which was compute-bound at 13 GB/s
 * on one core. */
AVX512_INLINE int64_t q6k_block(const uint8_t *b, const int16_t *xq, const __m512i *sidx) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), m30 = _mm256_set1_epi8(0x30),
                  k32 = _mm256_set1_epi8(32);
    /* the 16 scales as int16 in the low half: sidx[k] picks groups 2k, 2k+1 */
    __m512i sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192))));
    __m512i acc = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        __m256i hh = _mm256_loadu_si256((const __m256i *)qh);
        __m256i g[4];
        g[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
        g[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m30));
        g[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hh, m30));
        g[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(hh, 2), m30));
        for (int k = 0; k < 4; k++) {
            __m512i w16 = _mm512_cvtepi8_epi16(_mm256_sub_epi8(g[k], k32));
            w16 = _mm512_mullo_epi16(w16, _mm512_permutexvar_epi16(sidx[4 * h + k], sc));
            acc = _mm512_dpwssd_epi32(acc, w16, _mm512_loadu_si512((const void *)(xq + 128 * h + 32 * k)));
        }
    }
    __m512i wide = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc)),
                                    _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc, 1)));
    return _mm512_reduce_add_epi64(wide);
}

static AVX512 void avx512_dot_rows_q6k(const uint8_t *w, size_t row_bytes, int64_t nrows, const int16_t *xq,
                                       const float *xd, int64_t n, float *out) {
    __m512i sidx[8]; /* lanes 0-15 take scale 2k, lanes 16-31 scale 2k+1 */
    for (int k = 0; k < 8; k++)
        sidx[k] = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * k)), _mm256_set1_epi16((short)(2 * k + 1)), 1);
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        float s = 0.0f;
        for (int64_t b = 0; b < n / 256; b++) {
            const uint8_t *blk = row + (size_t)b * 210;
            _mm_prefetch((const char *)blk + 4096, _MM_HINT_T0);
            _mm_prefetch((const char *)blk + 4096 + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)blk + 4096 + 128, _MM_HINT_T0);
            _mm_prefetch((const char *)blk + 4096 + 192, _MM_HINT_T0);
            uint16_t dh;
            memcpy(&dh, blk + 208, 2);
            s += (_cvtsh_ss(dh) * xd[b]) * (float)q6k_block(blk, xq + b * 256, sidx);
        }
        out[r] = s;
    }
}

/* vpdpbusd wants one unsigned factor: (q + 128) * w = q * w + 128 * w, so
 * the row sum of w (one more vpdpbusd against ones) is taken off. Four rows
 * at a time: one row's chain of dependent vpdpbusd made this kernel
 * latency-bound (22 GB/s on one core); four share each activation load and
 * read four streams, prefetched as the ternary rows are. */
AVX512_INLINE void i8_rows4(const int8_t *w, size_t stride, const int8_t *q, int64_t n64, int32_t *out) {
    const __m512i ones = _mm512_set1_epi8(1), bias = _mm512_set1_epi8((char)0x80);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, s0 = a0, s1 = a0, s2 = a0, s3 = a0;
    const int8_t *w1 = w + stride, *w2 = w1 + stride, *w3 = w2 + stride;
    const char *pf = (const char *)w + 16 * stride;
    for (int64_t i = 0; i < n64; i += 64) {
        for (int k = 0; k < 4; k++) _mm_prefetch(pf + 4 * i + 64 * k, _MM_HINT_T0);
        __m512i qb = _mm512_xor_si512(ld(q + i), bias), v0 = ld(w + i), v1 = ld(w1 + i), v2 = ld(w2 + i), v3 = ld(w3 + i);
        a0 = _mm512_dpbusd_epi32(a0, qb, v0);
        a1 = _mm512_dpbusd_epi32(a1, qb, v1);
        a2 = _mm512_dpbusd_epi32(a2, qb, v2);
        a3 = _mm512_dpbusd_epi32(a3, qb, v3);
        s0 = _mm512_dpbusd_epi32(s0, ones, v0);
        s1 = _mm512_dpbusd_epi32(s1, ones, v1);
        s2 = _mm512_dpbusd_epi32(s2, ones, v2);
        s3 = _mm512_dpbusd_epi32(s3, ones, v3);
    }
    out[0] = _mm512_reduce_add_epi32(a0) - 128 * _mm512_reduce_add_epi32(s0);
    out[1] = _mm512_reduce_add_epi32(a1) - 128 * _mm512_reduce_add_epi32(s1);
    out[2] = _mm512_reduce_add_epi32(a2) - 128 * _mm512_reduce_add_epi32(s2);
    out[3] = _mm512_reduce_add_epi32(a3) - 128 * _mm512_reduce_add_epi32(s3);
}

static AVX512 void avx512_dot_rows_i8(const int8_t *w, size_t row_stride, int64_t nrows, const int8_t *q,
                                      int64_t n, int32_t *out) {
    const __m512i ones = _mm512_set1_epi8(1), bias = _mm512_set1_epi8((char)0x80);
    int64_t n64 = n / 64 * 64, r = 0;
    for (; r + 4 <= nrows; r += 4) {
        const int8_t *row = w + (size_t)r * row_stride;
        i8_rows4(row, row_stride, q, n64, out + r);
        for (int k = 0; k < 4; k++)
            for (int64_t i = n64; i < n; i++) out[r + k] += row[(size_t)k * row_stride + i] * q[i];
    }
    for (; r < nrows; r++) {
        const int8_t *row = w + (size_t)r * row_stride;
        __m512i acc = _mm512_setzero_si512(), ws = _mm512_setzero_si512();
        for (int64_t i = 0; i < n64; i += 64) {
            __m512i wv = ld(row + i);
            acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(ld(q + i), bias), wv);
            ws = _mm512_dpbusd_epi32(ws, ones, wv);
        }
        int32_t s = _mm512_reduce_add_epi32(acc) - 128 * _mm512_reduce_add_epi32(ws);
        for (int64_t i = n64; i < n; i++) s += row[i] * q[i];
        out[r] = s;
    }
}

AVX512_INLINE __m512 load16(const void *base, int kv_f16, size_t i) {
    if (kv_f16) return h16((const uint16_t *)base + i);
    return _mm512_loadu_ps((const float *)base + i);
}

static AVX512 void avx512_attn_scores(const float *q, const void *k, int kv_f16, int npos, int hd, float *s) {
    int ntiles = (npos + BN_KV_TILE - 1) / BN_KV_TILE, t = 0;
    const size_t ts = (size_t)hd * BN_KV_TILE;
    float tmp[BN_KV_TILE];
    for (; t + 4 <= ntiles; t += 4) { /* four independent chains hide the add latency */
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t base = (size_t)t * ts;
        for (int d = 0; d < hd; d++) {
            __m512 qd = _mm512_set1_ps(q[d]);
            size_t o = base + (size_t)d * BN_KV_TILE;
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(qd, load16(k, kv_f16, o)));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(qd, load16(k, kv_f16, o + ts)));
            a2 = _mm512_add_ps(a2, _mm512_mul_ps(qd, load16(k, kv_f16, o + 2 * ts)));
            a3 = _mm512_add_ps(a3, _mm512_mul_ps(qd, load16(k, kv_f16, o + 3 * ts)));
        }
        int p0 = t * BN_KV_TILE;
        _mm512_storeu_ps(s + p0, a0);
        _mm512_storeu_ps(s + p0 + 16, a1);
        _mm512_storeu_ps(s + p0 + 32, a2);
        if (p0 + 64 <= npos) _mm512_storeu_ps(s + p0 + 48, a3);
        else {
            _mm512_storeu_ps(tmp, a3);
            memcpy(s + p0 + 48, tmp, sizeof(float) * (size_t)(npos - p0 - 48));
        }
    }
    for (; t < ntiles; t++) {
        __m512 a = _mm512_setzero_ps();
        for (int d = 0; d < hd; d++)
            a = _mm512_add_ps(a, _mm512_mul_ps(_mm512_set1_ps(q[d]), load16(k, kv_f16, (size_t)t * ts + (size_t)d * BN_KV_TILE)));
        int p0 = t * BN_KV_TILE, n = npos - p0 < BN_KV_TILE ? npos - p0 : BN_KV_TILE;
        _mm512_storeu_ps(tmp, a);
        memcpy(s + p0, tmp, sizeof(float) * (size_t)n);
    }
}

static AVX512 void avx512_attn_mix(const float *w, const void *v, int kv_f16, int npos, int hd, float *out) {
    int d = 0;
    for (; d + 64 <= hd; d += 64) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int p = 0; p < npos; p++) {
            __m512 wp = _mm512_set1_ps(w[p]);
            size_t o = (size_t)p * hd + d;
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(wp, load16(v, kv_f16, o)));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(wp, load16(v, kv_f16, o + 16)));
            a2 = _mm512_add_ps(a2, _mm512_mul_ps(wp, load16(v, kv_f16, o + 32)));
            a3 = _mm512_add_ps(a3, _mm512_mul_ps(wp, load16(v, kv_f16, o + 48)));
        }
        _mm512_storeu_ps(out + d, a0);
        _mm512_storeu_ps(out + d + 16, a1);
        _mm512_storeu_ps(out + d + 32, a2);
        _mm512_storeu_ps(out + d + 48, a3);
    }
    for (; d + 16 <= hd; d += 16) {
        __m512 a = _mm512_setzero_ps();
        for (int p = 0; p < npos; p++)
            a = _mm512_add_ps(a, _mm512_mul_ps(_mm512_set1_ps(w[p]), load16(v, kv_f16, (size_t)p * hd + d)));
        _mm512_storeu_ps(out + d, a);
    }
    bn_attn_mix_cols(w, v, kv_f16, npos, hd, d, out); /* odd head sizes */
}

/* Up to 8 queries against two K tiles per pass: each K vector loaded once
 * feeds 8 queries (a prompt's attention re-read K from L2 per query and
 * was memory-bound; measured 2.5x faster on 8 queries over 1000 positions).
 * Every score is summed over d from 0 up, a multiply then an add, as in
 * avx512_attn_scores; positions at or past a query's npos are not stored. */
AVX512_INLINE void scores_pass(const float *q, size_t q_stride, int nq, const int *npos, const void *k, int kv_f16,
                               int hd, float *s, size_t s_stride, int t, int two) {
    const size_t ts = (size_t)hd * BN_KV_TILE;
    __m512 a[8], b[8];
    for (int i = 0; i < 8; i++) a[i] = b[i] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        size_t o = (size_t)t * ts + (size_t)d * BN_KV_TILE;
        __m512 x = load16(k, kv_f16, o), y = two ? load16(k, kv_f16, o + ts) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            if (i >= nq) break;
            __m512 qi = _mm512_set1_ps(q[(size_t)i * q_stride + (size_t)d]);
            a[i] = _mm512_add_ps(a[i], _mm512_mul_ps(qi, x));
            b[i] = _mm512_add_ps(b[i], _mm512_mul_ps(qi, y));
        }
    }
    for (int i = 0; i < nq; i++) {
        int p0 = t * BN_KV_TILE, n0 = npos[i] - p0, n1 = n0 - BN_KV_TILE;
        float *si = s + (size_t)i * s_stride + p0;
        if (n0 > 0) _mm512_mask_storeu_ps(si, (__mmask16)(n0 >= 16 ? 0xFFFF : (1u << n0) - 1), a[i]);
        if (two && n1 > 0) _mm512_mask_storeu_ps(si + 16, (__mmask16)(n1 >= 16 ? 0xFFFF : (1u << n1) - 1), b[i]);
    }
}

static AVX512 void avx512_attn_scores_n(const float *q, size_t q_stride, int nq, const int *npos, const void *k,
                                        int kv_f16, int hd, float *s, size_t s_stride) {
    for (int g = 0; g < nq; g += 8) {
        int m = nq - g < 8 ? nq - g : 8, most = 0;
        for (int i = 0; i < m; i++) most = npos[g + i] > most ? npos[g + i] : most;
        int ntiles = (most + BN_KV_TILE - 1) / BN_KV_TILE;
        for (int t = 0; t < ntiles; t += 2)
            scores_pass(q + (size_t)g * q_stride, q_stride, m, npos + g, k, kv_f16, hd, s + (size_t)g * s_stride,
                        s_stride, t, t + 1 < ntiles);
    }
}

/* Up to 4 weight rows against V, 64 dimensions a pass: each V vector
 * loaded once feeds 4 rows. Over the positions all rows share, they run
 * together; each row then finishes its own last positions, so every sum
 * still runs from p = 0 up as in avx512_attn_mix. */
static AVX512 void avx512_attn_mix_n(const float *w, size_t w_stride, int nq, const int *npos, const void *v,
                                     int kv_f16, int hd, float *out, size_t out_stride) {
    int g = 0;
    for (; g + 4 <= nq && hd % 64 == 0; g += 4) {
        const float *w0 = w + (size_t)g * w_stride;
        const int *np = npos + g;
        int common = np[0];
        for (int i = 1; i < 4; i++) common = np[i] < common ? np[i] : common;
        for (int d = 0; d < hd; d += 64) {
            __m512 acc[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
            for (int p = 0; p < common; p++) {
                size_t o = (size_t)p * hd + (size_t)d;
                __m512 v0 = load16(v, kv_f16, o), v1 = load16(v, kv_f16, o + 16), v2 = load16(v, kv_f16, o + 32),
                       v3 = load16(v, kv_f16, o + 48);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    __m512 wp = _mm512_set1_ps(w0[(size_t)i * w_stride + (size_t)p]);
                    acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_mul_ps(wp, v0));
                    acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_mul_ps(wp, v1));
                    acc[i][2] = _mm512_add_ps(acc[i][2], _mm512_mul_ps(wp, v2));
                    acc[i][3] = _mm512_add_ps(acc[i][3], _mm512_mul_ps(wp, v3));
                }
            }
            for (int i = 0; i < 4; i++) {
                for (int p = common; p < np[i]; p++) {
                    __m512 wp = _mm512_set1_ps(w0[(size_t)i * w_stride + (size_t)p]);
                    size_t o = (size_t)p * hd + (size_t)d;
                    for (int j = 0; j < 4; j++)
                        acc[i][j] = _mm512_add_ps(acc[i][j], _mm512_mul_ps(wp, load16(v, kv_f16, o + 16 * (size_t)j)));
                }
                for (int j = 0; j < 4; j++) _mm512_storeu_ps(out + (size_t)(g + i) * out_stride + d + 16 * j, acc[i][j]);
            }
        }
    }
    for (; g < nq; g++) avx512_attn_mix(w + (size_t)g * w_stride, v, kv_f16, npos[g], hd, out + (size_t)g * out_stride);
}

/* bn_exp on 16 lanes, step for step */
AVX512_INLINE __m512 exp16(__m512 x) {
    __m512 n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(BN_EXP_LOG2E)), _mm512_set1_ps(BN_EXP_ROUND)),
                             _mm512_set1_ps(BN_EXP_ROUND));
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(BN_EXP_LN2_HI)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(BN_EXP_LN2_LO)));
    __m512 p = _mm512_set1_ps(BN_EXP_P0);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BN_EXP_P1));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BN_EXP_P2));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BN_EXP_P3));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BN_EXP_P4));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(BN_EXP_P5));
    __m512 y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r), _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(BN_EXP_MIN), _CMP_LT_OQ), y, _mm512_setzero_ps());
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}

/* bn_attn_softmax_ref with the 16 lanes of its sum as one register; the
 * tail is loaded masked (zeros contribute exp(-max) to no lane: masked). */
static AVX512 void avx512_attn_softmax(float *s, int n, float scale) {
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int p = 0;
    for (; p + 16 <= n; p += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(s + p), vs);
        _mm512_storeu_ps(s + p, v);
        mx = _mm512_max_ps(v, mx); /* a NaN v leaves mx, as the reference skips it */
    }
    float m = _mm512_reduce_max_ps(mx);
    for (; p < n; p++) {
        s[p] = s[p] * scale;
        if (s[p] > m) m = s[p];
    }
    const __m512 vm = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    for (p = 0; p + 16 <= n; p += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + p), vm));
        _mm512_storeu_ps(s + p, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (p < n) {
        __mmask16 k = (__mmask16)((1u << (n - p)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + p), vm));
        _mm512_mask_storeu_ps(s + p, k, e);
        sum = _mm512_mask_add_ps(sum, k, sum, e);
    }
    float lane[16], total = 0.0f;
    _mm512_storeu_ps(lane, sum);
    for (int i = 0; i < 16; i++) total += lane[i];
    const __m512 inv = _mm512_set1_ps(1.0f / total);
    for (p = 0; p + 16 <= n; p += 16) _mm512_storeu_ps(s + p, _mm512_mul_ps(_mm512_loadu_ps(s + p), inv));
    for (; p < n; p++) s[p] = s[p] * (1.0f / total);
}

const bn_kernels bn_kernels_avx512 = {
    "avx512",
    avx512_ternary_dot_rows,
    avx512_ternary_matmat,
    avx512_quantize_act,
    avx512_dot_f32,
    avx512_dot_rows_f16,
    avx512_dot_rows_bf16,
    avx512_dot_rows_f16_n,
    avx512_dot_rows_bf16_n,
    avx512_dot_rows_q8_0,
    avx512_dot_rows_q6k,
    avx512_dot_rows_i8,
    avx512_attn_scores,
    avx512_attn_mix,
    avx512_attn_scores_n,
    avx512_attn_mix_n,
    avx512_attn_softmax,
};

#endif
