/* kernels.h: the inner loops behind one table of function pointers, chosen
 * once at load. The portable C path (ref.c) is the definition of correct:
 * every other path gives identical integers for the ternary and int8
 * products, and identical floats for the attention entry points (they sum
 * in the reference's order, one position or one dimension per lane). Only
 * dot_f32 and the float output-head rows (F16, BF16, Q8_0) may round
 * differently.
 *
 * Ternary weights are in ternary.h's layout: rows of 128-weight blocks of
 * 32 bytes, byte j holding elements j, 32+j, 64+j, 96+j (bits 7:6 .. 1:0)
 * as codes 0,1,2 for -1,0,+1. Activations are int8, nblocks*128 per token,
 * zero past the real row length. */
#ifndef BN_KERNELS_H
#define BN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Positions per K-cache tile: K is stored [tile][head_dim][BN_KV_TILE] so
 * that one vector load holds one dimension of many positions. */
#define BN_KV_TILE 16

/* Most tokens one dot_rows_f16_n / dot_rows_bf16_n call takes. */
#define BN_DOT_ROWS_NX 8

typedef struct bn_kernels {
    const char *name;
    /* out[r] = sum over the row's nblocks*128 elements of (code - 1) * q[e],
     * for rows 0..nrows-1 starting at w (rows row_bytes apart). */
    void (*ternary_dot_rows)(const uint8_t *w, size_t row_bytes, int nblocks, const int8_t *q,
                             int64_t nrows, int32_t *out);
    /* The same for ntok tokens at once (token t's activations at
     * q + t*q_stride): out[t*out_stride + r]. Each weight block is decoded
     * once for several tokens: the prefill path. */
    void (*ternary_matmat)(const uint8_t *w, size_t row_bytes, int nblocks, int64_t nrows, const int8_t *q,
                           size_t q_stride, int ntok, int32_t *out, size_t out_stride);
    /* bn_quantize_act, the same bytes and scale (every step is exact or
     * correctly rounded, so vector lanes cannot differ from the loop) */
    float (*quantize_act)(const float *x, int64_t n, int8_t *q, int64_t npad);
    /* sum of a[i]*b[i], accumulated in the order the path chooses */
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    /* Output head over F16 rows (row_stride elements apart): out[r] =
     * sum_i f16(w[r][i]) * x[i], i < n, in the order the path chooses. */
    void (*dot_rows_f16)(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n,
                         float *out);
    /* The same over BF16 rows (row_stride elements apart). */
    void (*dot_rows_bf16)(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n,
                          float *out);
    /* dot_rows_f16 and dot_rows_bf16 for nx tokens at once (1 <= nx <=
     * BN_DOT_ROWS_NX): out[t][r] for x[t]. Each weight vector is widened
     * once for every token, and each token gets the same bits as the
     * path's single-token call (a batched session must decode as alone). */
    void (*dot_rows_f16_n)(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int nx,
                           int64_t n, float *const *out);
    void (*dot_rows_bf16_n)(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int nx,
                            int64_t n, float *const *out);
    /* The same over Q8_0 rows (row_bytes apart; n a multiple of 32): per
     * 32-block, its f16 scale times the sum of int8 * x. */
    void (*dot_rows_q8_0)(const uint8_t *w, size_t row_bytes, int64_t nrows, const float *x, int64_t n, float *out);
    /* Output head over Q6_K rows (row_bytes apart; n a multiple of 256)
     * against activations as bn_quantize_q16 gives them: out[r] = the sum
     * over 256-blocks b, in order, of (d_b * xd[b]) * S_b, where the block
     * sum S_b = sum_i sc_i * (q_i - 32) * xq[i] is an exact integer: every
     * path gives the same bits. */
    void (*dot_rows_q6k)(const uint8_t *w, size_t row_bytes, int64_t nrows, const int16_t *xq, const float *xd,
                         int64_t n, float *out);
    /* Int8 output head: out[r] = sum_i w[r][i] * q[i], exact, for int8 rows
     * row_stride bytes apart; q in [-127, 127]. */
    void (*dot_rows_i8)(const int8_t *w, size_t row_stride, int64_t nrows, const int8_t *q, int64_t n,
                        int32_t *out);
    /* Attention scores of one head: s[p] = sum_d q[d] * k_p[d] summed from
     * d = 0 up (a multiply then an add, as C without contraction does), for
     * p < npos, K in tiles (see BN_KV_TILE) of f32, or f16 when kv_f16. */
    void (*attn_scores)(const float *q, const void *k, int kv_f16, int npos, int hd, float *s);
    /* out[d] = sum_p w[p] * v_p[d] summed from p = 0 up, V stored [pos][hd]. */
    void (*attn_mix)(const float *w, const void *v, int kv_f16, int npos, int hd, float *out);
    /* attn_scores for nq queries of one K region at once (query i at
     * q + i*q_stride over its own npos[i] positions, scores to
     * s + i*s_stride): the same bits as nq calls, with each K tile read
     * once for several queries (a prompt's tokens and a KV head's query
     * heads). NULL: the caller makes the nq calls. */
    void (*attn_scores_n)(const float *q, size_t q_stride, int nq, const int *npos, const void *k, int kv_f16,
                          int hd, float *s, size_t s_stride);
    /* attn_mix for nq weight rows (w + i*w_stride, npos[i] each) over one V
     * region, out + i*out_stride: the same bits as nq calls. NULL: the
     * caller makes the calls. */
    void (*attn_mix_n)(const float *w, size_t w_stride, int nq, const int *npos, const void *v, int kv_f16, int hd,
                       float *out, size_t out_stride);
    /* Softmax of s[0..n-1] * scale in place, as bn_attn_softmax_ref defines
     * it (its exp and its order of summation): the same bits on every path. */
    void (*attn_softmax)(float *s, int n, float scale);
} bn_kernels;

extern const bn_kernels bn_kernels_ref;
#if defined(__x86_64__) || defined(__i386__)
extern const bn_kernels bn_kernels_avx2;
extern const bn_kernels bn_kernels_avx512;
#endif
#if defined(__aarch64__)
extern const bn_kernels bn_kernels_neon;
extern const bn_kernels bn_kernels_neondot;
#endif

/* Picks the best path for this CPU, or the one named by `force` (a load
 * option or the BITNET_KERNEL environment variable); NULL if there is no
 * such path or this CPU cannot run it. */
const bn_kernels *bn_kernels_select(const char *force);
/* The paths this CPU can run, best first, NULL-terminated; returns the
 * count (at most max - 1 entries are written). */
int bn_kernels_available(const bn_kernels **out, int max);
/* Why `name` was refused (bn_kernels_select gave NULL), into buf: unknown,
 * or a path this CPU cannot run, with the paths it can. */
void bn_kernels_refusal(const char *name, char *buf, size_t cap);

/* Per-token absmax int8 quantization, the BitNet b1.58 definition:
 * s = 127 / max(max|x|, 1e-5), q = clamp(round_half_even(x*s), -128, 127).
 * Writes n values and zero-pads q up to npad; returns s. */
float bn_quantize_act(const float *x, int64_t n, int8_t *q, int64_t npad);

/* The reference BF16 and Q8_0 row dots, for paths without their own. */
void bn_dot_rows_bf16_ref(const uint16_t *w, size_t row_stride, int64_t nrows, const float *x, int64_t n, float *out);
void bn_dot_rows_bf16_n_ref(const uint16_t *w, size_t row_stride, int64_t nrows, const float *const *x, int nx,
                            int64_t n, float *const *out);
void bn_dot_rows_q8_0_ref(const uint8_t *w, size_t row_bytes, int64_t nrows, const float *x, int64_t n, float *out);

/* The reference Q6_K row dot, for paths without their own. */
void bn_dot_rows_q6k_ref(const uint8_t *w, size_t row_bytes, int64_t nrows, const int16_t *xq, const float *xd,
                         int64_t n, float *out);

/* Activations for the Q6_K head: per 256-block b (n a multiple of 256),
 * xd[b] = max|x| / BN_Q16_MAX and xq = round_half_even(x / xd[b]), so
 * |xq| <= BN_Q16_MAX (all zero, xd[b] = 0, for a zero block): x moves by
 * at most 1/65534 of its block's largest value, far below the 6-bit
 * weights' own error, and products with Q6_K's values and scales still sum
 * exactly in int32 lanes (see the AVX-512 kernel). */
#define BN_Q16_MAX 32767
void bn_quantize_q16(const float *x, int64_t n, int16_t *xq, float *xd);

/* The reference attn_mix for dimensions d0..hd-1 only: the tail that a
 * path's vectors do not cover. */
void bn_attn_mix_cols(const float *w, const void *v, int kv_f16, int npos, int hd, int d0, float *out);

/* The reference softmax: t = s[p] * scale, m = max t, e = bn_exp(t - m)
 * (below), the sum of e taken in 16 lanes (lane p % 16, each from p = 0
 * up) and the lanes added 0 to 15, then s[p] = e * (1 / sum). */
void bn_attn_softmax_ref(float *s, int n, float scale);

/* exp(x) for x <= 0 with a fixed sequence of correctly rounded float steps
 * (Cody-Waite reduction by ln 2, Cephes' degree-6 polynomial, 2^n built
 * from its bits; no fused multiply-add), so that vector lanes reproduce it
 * exactly: within 2 ulp of expf, 0 below -87. Vector paths inline the
 * same steps; the constants are here so that they cannot drift apart. */
#define BN_EXP_MIN (-87.0f)
#define BN_EXP_LOG2E 1.44269504088896341f
#define BN_EXP_ROUND 12582912.0f /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
#define BN_EXP_LN2_HI 0.693359375f
#define BN_EXP_LN2_LO (-2.12194440e-4f)
#define BN_EXP_P0 1.9875691500e-4f
#define BN_EXP_P1 1.3981999507e-3f
#define BN_EXP_P2 8.3334519073e-3f
#define BN_EXP_P3 4.1665795894e-2f
#define BN_EXP_P4 1.6666665459e-1f
#define BN_EXP_P5 5.0000001201e-1f
float bn_exp(float x);

/* Sum of n int8 values (the -1 offset of the ternary codes). */
int32_t bn_sum_i8(const int8_t *q, int64_t n);

#endif
