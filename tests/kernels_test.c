/* kernels_test.c: every kernel path this CPU can run against the portable
 * reference, on random inputs of every shape the layout allows: the
 * integer products must be identical, the attention floats bit-identical,
 * the f32/f16 head dots close. Exit status 0 when all agree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "formats/gguf.h"
#include "kernels/kernels.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
static float frand(void) { return (float)next() / 2097152.0f / 1024.0f * 2.0f - 1.0f; }

static int failures;
#define CHECK(cond, ...)                                                                                           \
    do {                                                                                                           \
        if (!(cond)) {                                                                                             \
            if (failures++ < 20) {                                                                                 \
                fprintf(stderr, __VA_ARGS__);                                                                      \
                fputc('\n', stderr);                                                                               \
            }                                                                                                      \
        }                                                                                                          \
    } while (0)

/* codes 0..2 only (3 is not a valid code); q over the whole int8 range,
 * with the extremes made common */
static void fill_ternary(uint8_t *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t b = 0;
        for (int k = 0; k < 4; k++) b = (uint8_t)(b << 2 | next() % 3);
        w[i] = b;
    }
}
static void fill_q(int8_t *q, size_t n, int lo) {
    for (size_t i = 0; i < n; i++) {
        uint32_t r = next() % 8;
        q[i] = (int8_t)(r == 0 ? lo : r == 1 ? 127 : lo + (int)(next() % (uint32_t)(128 - lo)));
    }
}

static void test_ternary(const bn_kernels *k) {
    static const int nbs[] = {1, 2, 3, 5, 6, 20, 54};
    static const int rows[] = {1, 2, 3, 4, 5, 7, 8, 9, 33, 67};
    static const int toks[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 17, 70};
    for (size_t a = 0; a < sizeof nbs / sizeof *nbs; a++)
        for (size_t b = 0; b < sizeof rows / sizeof *rows; b++) {
            int nb = nbs[a], nr = rows[b];
            size_t rb = (size_t)nb * 32 + (next() % 2) * 32; /* rows may sit further apart */
            uint8_t *w = malloc(rb * (size_t)nr);
            fill_ternary(w, rb * (size_t)nr);
            for (size_t c = 0; c < sizeof toks / sizeof *toks; c++) {
                int nt = toks[c];
                size_t qs = (size_t)nb * 128 + (next() % 2) * 64, os = (size_t)nr + next() % 3;
                int8_t *q = malloc(qs * (size_t)nt);
                fill_q(q, qs * (size_t)nt, -128);
                int32_t *want = calloc(os * (size_t)nt, 4), *got = calloc(os * (size_t)nt, 4);
                bn_kernels_ref.ternary_matmat(w, rb, nb, nr, q, qs, nt, want, os);
                k->ternary_matmat(w, rb, nb, nr, q, qs, nt, got, os);
                for (int t = 0; t < nt; t++)
                    for (int r = 0; r < nr; r++)
                        CHECK(want[t * os + r] == got[t * os + r], "%s matmat nb=%d rows=%d tok=%d: [%d][%d] %d vs %d",
                              k->name, nb, nr, nt, t, r, got[t * os + r], want[t * os + r]);
                k->ternary_dot_rows(w, rb, nb, q, nr, got);
                for (int r = 0; r < nr; r++)
                    CHECK(want[r] == got[r], "%s dot_rows nb=%d rows=%d: [%d] %d vs %d", k->name, nb, nr, r, got[r],
                          want[r]);
                free(q), free(want), free(got);
            }
            free(w);
        }
}

static void test_i8(const bn_kernels *k) {
    static const int ns[] = {1, 31, 32, 64, 65, 200, 256, 2560};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int n = ns[a], nr = 1 + (int)(next() % 9);
        size_t rs = (size_t)n + next() % 5;
        int8_t *w = malloc(rs * (size_t)nr), *q = malloc((size_t)n);
        fill_q(w, rs * (size_t)nr, -128);
        fill_q(q, (size_t)n, -127);
        int32_t want[9], got[9];
        bn_kernels_ref.dot_rows_i8(w, rs, nr, q, n, want);
        k->dot_rows_i8(w, rs, nr, q, n, got);
        for (int r = 0; r < nr; r++) CHECK(want[r] == got[r], "%s dot_rows_i8 n=%d [%d] %d vs %d", k->name, n, r, got[r], want[r]);
        free(w), free(q);
    }
}

/* Quantization: random vectors, and ones whose scaled values land exactly
 * on .5 (max 127 gives a scale of 1): ties must go to even. */
static void test_quantize(const bn_kernels *k) {
    static const int ns[] = {1, 15, 16, 17, 100, 2560};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (int ties = 0; ties < 2; ties++) {
            int n = ns[a], pad = n + 37;
            float *x = malloc(sizeof(float) * (size_t)n);
            int8_t *q1 = malloc((size_t)pad), *q2 = malloc((size_t)pad);
            for (int i = 0; i < n; i++) x[i] = ties ? (float)((int)(next() % 255) - 127) + 0.5f : frand() * 3.0f;
            if (ties) x[0] = 127.0f;
            float s1 = bn_kernels_ref.quantize_act(x, n, q1, pad), s2 = k->quantize_act(x, n, q2, pad);
            CHECK(s1 == s2 && memcmp(q1, q2, (size_t)pad) == 0, "%s quantize_act n=%d ties=%d", k->name, n, ties);
            free(x), free(q1), free(q2);
        }
}

static int close_enough(float a, float b, float scale) { return fabsf(a - b) <= 1e-5f * scale + 1e-6f; }

static void test_float(const bn_kernels *k) {
    static const int ns[] = {1, 7, 16, 33, 64, 100, 256, 2560};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int n = ns[a], nr = 5;
        float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
        uint16_t *h = malloc(2 * (size_t)n * (size_t)nr);
        float mag = 0.0f;
        for (int i = 0; i < n; i++) x[i] = frand(), y[i] = frand(), mag += fabsf(x[i] * y[i]);
        for (int i = 0; i < n * nr; i++) h[i] = bn_f32_to_f16(frand());
        CHECK(close_enough(k->dot_f32(x, y, n), bn_kernels_ref.dot_f32(x, y, n), mag), "%s dot_f32 n=%d", k->name, n);
        float want[5], got[5];
        bn_kernels_ref.dot_rows_f16(h, (size_t)n, nr, x, n, want);
        k->dot_rows_f16(h, (size_t)n, nr, x, n, got);
        for (int r = 0; r < nr; r++) CHECK(close_enough(got[r], want[r], (float)n), "%s dot_rows_f16 n=%d", k->name, n);
        for (int i = 0; i < n * nr; i++) {
            float v = frand();
            uint32_t bits;
            memcpy(&bits, &v, 4);
            h[i] = (uint16_t)(bits >> 16); /* bf16 by truncation: any pattern is a valid bf16 */
        }
        bn_kernels_ref.dot_rows_bf16(h, (size_t)n, nr, x, n, want);
        k->dot_rows_bf16(h, (size_t)n, nr, x, n, got);
        for (int r = 0; r < nr; r++) CHECK(close_enough(got[r], want[r], (float)n), "%s dot_rows_bf16 n=%d", k->name, n);
        if (n % 32 == 0) { /* Q8_0: random int8 values, f16 scales near 1/127 */
            size_t rb = (size_t)n / 32 * 34;
            uint8_t *qb = malloc(rb * (size_t)nr);
            for (size_t i = 0; i < rb * (size_t)nr; i++) qb[i] = (uint8_t)next();
            for (size_t b = 0; b < rb * (size_t)nr / 34; b++) {
                uint16_t d = bn_f32_to_f16((1.0f + frand()) / 127.0f);
                memcpy(qb + b * 34, &d, 2);
            }
            bn_kernels_ref.dot_rows_q8_0(qb, rb, nr, x, n, want);
            k->dot_rows_q8_0(qb, rb, nr, x, n, got);
            for (int r = 0; r < nr; r++)
                CHECK(close_enough(got[r], want[r], 2.0f * (float)n), "%s dot_rows_q8_0 n=%d: %g vs %g", k->name, n,
                      got[r], want[r]);
            free(qb);
        }
        free(x), free(y), free(h);
    }
}

/* dot_rows_f16_n / dot_rows_bf16_n: for every nx, each token's row sums
 * bit for bit those of the same path's single-token kernel (a batched
 * session decodes as alone), and close to the reference. */
static void test_rows_n(const bn_kernels *k) {
    static const int ns[] = {1, 7, 15, 16, 17, 33, 63, 64, 65, 100, 129, 2560, 2567};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (int bf16 = 0; bf16 < 2; bf16++) {
            int n = ns[a], nr = 7, stride = n + 3; /* odd rows, a stride past the row */
            uint16_t *h = malloc(2 * (size_t)stride * (size_t)nr);
            float *xs = malloc(sizeof(float) * (size_t)n * BN_DOT_ROWS_NX);
            float got[BN_DOT_ROWS_NX][7], one[7], want[7];
            const float *x[BN_DOT_ROWS_NX];
            float *out[BN_DOT_ROWS_NX];
            for (int i = 0; i < stride * nr; i++) {
                float v = frand();
                uint32_t bits;
                memcpy(&bits, &v, 4);
                h[i] = bf16 ? (uint16_t)(bits >> 16) : bn_f32_to_f16(v);
            }
            for (int i = 0; i < n * BN_DOT_ROWS_NX; i++) xs[i] = frand();
            for (int t = 0; t < BN_DOT_ROWS_NX; t++) x[t] = xs + (size_t)t * n, out[t] = got[t];
            for (int nx = 1; nx <= BN_DOT_ROWS_NX; nx++) {
                memset(got, 0xff, sizeof got);
                (bf16 ? k->dot_rows_bf16_n : k->dot_rows_f16_n)(h, (size_t)stride, nr, x, nx, n, out);
                for (int t = 0; t < nx; t++) {
                    (bf16 ? k->dot_rows_bf16 : k->dot_rows_f16)(h, (size_t)stride, nr, x[t], n, one);
                    (bf16 ? bn_kernels_ref.dot_rows_bf16 : bn_kernels_ref.dot_rows_f16)(h, (size_t)stride, nr, x[t],
                                                                                         n, want);
                    CHECK(memcmp(got[t], one, sizeof one) == 0, "%s dot_rows_%s_n n=%d nx=%d tok=%d: not the 1-token bits",
                          k->name, bf16 ? "bf16" : "f16", n, nx, t);
                    for (int r = 0; r < nr; r++)
                        CHECK(close_enough(got[t][r], want[r], (float)n), "%s dot_rows_%s_n n=%d nx=%d tok=%d row=%d",
                              k->name, bf16 ? "bf16" : "f16", n, nx, t, r);
                }
            }
            free(h), free(xs);
        }
}

/* Q6_K rows of random bytes (any byte pattern is a valid block) with a
 * small f16 scale, against 15-bit activations: every path gives the
 * reference's bits, and the reference stays within the activation rounding
 * of the float product of the dequantized rows (bn_dequant_row). */
static void test_q6k(const bn_kernels *k) {
    static const int ns[] = {256, 512, 2560};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int n = ns[a], nr = 5;
        size_t rb = (size_t)n / 256 * 210;
        uint8_t *w = malloc(rb * (size_t)nr);
        float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n), xd[16];
        int16_t *xq = malloc(sizeof(int16_t) * (size_t)n);
        for (size_t i = 0; i < rb * (size_t)nr; i++) w[i] = (uint8_t)next();
        for (size_t b = 0; b < (size_t)nr * (size_t)n / 256; b++) {
            uint16_t d = bn_f32_to_f16(0.001f * (1.0f + frand()));
            memcpy(w + b * 210 + 208, &d, 2);
        }
        for (int i = 0; i < n; i++) x[i] = frand();
        if (n == 512) /* an all-zero block and a block of extremes */
            for (int i = 0; i < 256; i++) x[i] = 0.0f, x[256 + i] = i % 2 ? 1e30f : -1e30f;
        bn_quantize_q16(x, n, xq, xd);
        float want[5], got[5];
        bn_kernels_ref.dot_rows_q6k(w, rb, nr, xq, xd, n, want);
        k->dot_rows_q6k(w, rb, nr, xq, xd, n, got);
        for (int r = 0; r < nr; r++) {
            CHECK(memcmp(&got[r], &want[r], sizeof(float)) == 0, "%s dot_rows_q6k n=%d: %.9g vs %.9g", k->name, n,
                  got[r], want[r]);
            if (n == 512) continue;
            /* each x moves by at most half a step, xd/2 = max|x| / 65534 */
            bn_dequant_row(GGML_Q6_K, w + (size_t)r * rb, y, n);
            double exact = 0.0, bound = 0.0;
            for (int i = 0; i < n; i++) exact += (double)y[i] * x[i], bound += fabs((double)y[i]);
            bound = bound * (1.0 / 65534.0) + 1e-5;
            CHECK(fabs(want[r] - exact) <= bound, "ref dot_rows_q6k n=%d: %.9g vs exact %.9g (bound %g)", n,
                  want[r], exact, bound);
        }
        free(w), free(x), free(y), free(xq);
    }
}

/* Softmax: every path gives the reference's bits on rows of every length
 * (tails, a NaN, scores far below the maximum), and the reference stays
 * within a few ulp of a double-precision softmax. */
static void test_softmax(const bn_kernels *k) {
    static const int ns[] = {1, 2, 7, 8, 15, 16, 17, 31, 33, 64, 100, 300, 1025};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int n = ns[a];
        float *x = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n),
              *got = malloc(sizeof(float) * (size_t)n);
        for (int variant = 0; variant < 3; variant++) {
            for (int i = 0; i < n; i++) x[i] = frand() * (variant == 1 ? 400.0f : 8.0f);
            if (variant == 2 && n > 3) x[n / 2] = NAN;
            memcpy(want, x, sizeof(float) * (size_t)n);
            memcpy(got, x, sizeof(float) * (size_t)n);
            bn_attn_softmax_ref(want, n, 0.125f);
            k->attn_softmax(got, n, 0.125f);
            CHECK(memcmp(want, got, sizeof(float) * (size_t)n) == 0, "%s attn_softmax n=%d variant %d", k->name, n,
                  variant);
            if (variant == 2) continue;
            /* the arguments as the float steps give them (their rounding is
             * the input's, not the softmax's), exp and sums in double */
            float mx = -INFINITY;
            for (int i = 0; i < n; i++) mx = x[i] * 0.125f > mx ? x[i] * 0.125f : mx;
            double sum = 0.0;
            for (int i = 0; i < n; i++) sum += exp((double)(x[i] * 0.125f - mx));
            for (int i = 0; i < n; i++) {
                double e = exp((double)(x[i] * 0.125f - mx)) / sum;
                CHECK(fabs(want[i] - e) <= 4e-7 * e + 1e-30, "ref softmax n=%d [%d]: %.9g vs %.9g", n, i, want[i], e);
            }
        }
        free(x), free(want), free(got);
    }
    /* bn_exp against exp over its whole range */
    double worst = 0.0;
    for (float v = -87.0f; v <= 0.0f; v += 0.001f) {
        double e = exp((double)v), rel = fabs(bn_exp(v) - e) / e;
        worst = rel > worst ? rel : worst;
    }
    CHECK(worst < 2.5e-7, "bn_exp: relative error %g", worst);
    CHECK(bn_exp(-100.0f) == 0.0f && bn_exp(0.0f) == 1.0f, "bn_exp at the ends");
}

static void test_attention(const bn_kernels *k) {
    static const int hds[] = {2, 6, 32, 64, 100, 128};
    static const int nps[] = {1, 5, 15, 16, 17, 40, 64, 65, 100, 300};
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof nps / sizeof *nps; b++)
            for (int f16 = 0; f16 < 2; f16++) {
                int hd = hds[a], np = nps[b];
                int tiles = (np + BN_KV_TILE - 1) / BN_KV_TILE;
                size_t kn = (size_t)tiles * BN_KV_TILE * hd;
                float *q = malloc(sizeof(float) * hd), *kf = malloc(sizeof(float) * kn), *w = malloc(sizeof(float) * np);
                uint16_t *kh = malloc(2 * kn);
                for (int i = 0; i < hd; i++) q[i] = frand();
                for (size_t i = 0; i < kn; i++) kf[i] = frand(), kh[i] = bn_f32_to_f16(frand());
                for (int i = 0; i < np; i++) w[i] = frand();
                const void *kv = f16 ? (const void *)kh : (const void *)kf;
                float *s1 = malloc(sizeof(float) * np), *s2 = malloc(sizeof(float) * np);
                bn_kernels_ref.attn_scores(q, kv, f16, np, hd, s1);
                k->attn_scores(q, kv, f16, np, hd, s2);
                CHECK(memcmp(s1, s2, sizeof(float) * np) == 0, "%s attn_scores hd=%d npos=%d f16=%d", k->name, hd, np, f16);
                float *o1 = malloc(sizeof(float) * hd), *o2 = malloc(sizeof(float) * hd);
                bn_kernels_ref.attn_mix(w, kv, f16, np, hd, o1); /* V is [pos][hd]: the same buffer serves */
                k->attn_mix(w, kv, f16, np, hd, o2);
                CHECK(memcmp(o1, o2, sizeof(float) * hd) == 0, "%s attn_mix hd=%d npos=%d f16=%d", k->name, hd, np, f16);
                free(q), free(kf), free(kh), free(w), free(s1), free(s2), free(o1), free(o2);
            }
}

/* The batched entries: nq queries with their own lengths (a prompt's
 * tokens: npos rising by one) give the bits of nq single calls. */
static void test_attention_n(const bn_kernels *k) {
    if (!k->attn_scores_n && !k->attn_mix_n) return;
    static const int hds[] = {64, 100, 128};
    static const int nqs[] = {1, 3, 4, 8, 9, 13};
    static const int base[] = {1, 15, 31, 200};
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof nqs / sizeof *nqs; b++)
            for (size_t c = 0; c < sizeof base / sizeof *base; c++)
                for (int f16 = 0; f16 < 2; f16++) {
                    int hd = hds[a], nq = nqs[b], npos[16], most = 0;
                    for (int i = 0; i < nq; i++) {
                        npos[i] = base[c] + i / 2 + (i % 3 == 2); /* rising, with repeats */
                        most = npos[i] > most ? npos[i] : most;
                    }
                    size_t stride = (size_t)(most + BN_KV_TILE) / BN_KV_TILE * BN_KV_TILE;
                    size_t kn = stride * (size_t)hd;
                    float *q = malloc(sizeof(float) * (size_t)(nq * hd)), *kf = malloc(sizeof(float) * kn);
                    uint16_t *kh = malloc(2 * kn);
                    float *s1 = calloc((size_t)nq * stride, sizeof(float)), *s2 = calloc((size_t)nq * stride, sizeof(float));
                    float *o1 = malloc(sizeof(float) * (size_t)(nq * hd)), *o2 = malloc(sizeof(float) * (size_t)(nq * hd));
                    for (int i = 0; i < nq * hd; i++) q[i] = frand();
                    for (size_t i = 0; i < kn; i++) kf[i] = frand(), kh[i] = bn_f32_to_f16(frand());
                    const void *kv = f16 ? (const void *)kh : (const void *)kf;
                    for (int i = 0; i < nq; i++) k->attn_scores(q + i * hd, kv, f16, npos[i], hd, s1 + (size_t)i * stride);
                    if (k->attn_scores_n) {
                        k->attn_scores_n(q, (size_t)hd, nq, npos, kv, f16, hd, s2, stride);
                        CHECK(memcmp(s1, s2, sizeof(float) * (size_t)nq * stride) == 0,
                              "%s attn_scores_n hd=%d nq=%d npos0=%d f16=%d", k->name, hd, nq, npos[0], f16);
                    }
                    for (size_t i = 0; i < (size_t)nq * stride; i++) s1[i] = frand(); /* weights */
                    for (int i = 0; i < nq; i++) k->attn_mix(s1 + (size_t)i * stride, kv, f16, npos[i], hd, o1 + i * hd);
                    if (k->attn_mix_n) {
                        k->attn_mix_n(s1, stride, nq, npos, kv, f16, hd, o2, (size_t)hd);
                        CHECK(memcmp(o1, o2, sizeof(float) * (size_t)(nq * hd)) == 0,
                              "%s attn_mix_n hd=%d nq=%d npos0=%d f16=%d", k->name, hd, nq, npos[0], f16);
                    }
                    free(q), free(kf), free(kh), free(s1), free(s2), free(o1), free(o2);
                }
}

int main(int argc, char **argv) {
    const bn_kernels *paths[8];
    int n = bn_kernels_available(paths, 8);
    const char *only = argc > 1 ? argv[1] : NULL;
    int tested = 0;
    for (int i = 0; i < n; i++) {
        if (only && strcmp(only, paths[i]->name) != 0) continue;
        int before = failures;
        test_ternary(paths[i]);
        test_i8(paths[i]);
        test_float(paths[i]);
        test_rows_n(paths[i]);
        test_q6k(paths[i]);
        test_quantize(paths[i]);
        test_attention(paths[i]);
        test_attention_n(paths[i]);
        test_softmax(paths[i]);
        printf("%-8s %s\n", paths[i]->name, failures == before ? "ok" : "FAILED");
        tested++;
    }
    if (!tested) {
        fprintf(stderr, "no kernel path to test%s%s\n", only ? " named " : "", only ? only : "");
        return 1;
    }
    return failures ? 1 : 0;
}
