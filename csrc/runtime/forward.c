/* forward.c: the BitNet b1.58 transformer over a chunk of tokens. The math
 * is REFERENCE.md's: fp32 RMSNorm; per-token int8 absmax activations before
 * every BitLinear; integer ternary dot products scaled by (weight scale /
 * activation scale); NEOX RoPE; causal attention over the KV-cache; squared
 * ReLU or SwiGLU; the optional sub-norms; the output head.
 *
 * A pass is up to BN_CHUNK rows, each a token of some session at some
 * position (bn_row): a prompt chunk of one session, or the next tokens of
 * many sessions decoded together. Every thread of the pass's pool runs
 * pass_job; phases are separated
 * by barriers. A phase splits either tokens (norms, quantization, RoPE),
 * rows of the weight matrices (each weight block meets every token of the
 * chunk once: the matrix-matrix prefill), (token, head) pairs (attention)
 * or vocabulary rows (the head). Each token's arithmetic is the same
 * whatever the chunk size, the other rows or the thread count, so a prompt
 * fed at once gives the same bits as fed one token at a time, and a session
 * decoded in a batch the same bits as decoded alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "formats/floatfmt.h"
#include "model/head.h"
#include "runtime/session.h"
#include "base/threadpool.h"

typedef struct {
    bn_work *w;
    const bn_row *rows;
    int n;
    /* attention units: blocks of at most attn_group / G consecutive rows of
     * one session (a KV head's queries for those rows meet its cache once) */
    int nblocks;
    int block_row[BN_CHUNK], block_len[BN_CHUNK];
} pass;

/* The sum of squares in double (each square is exact there) in four
 * chains: one chain of dependent adds took 5% of a long prefill. The order
 * moves the double by ulps, some 2^29 times finer than the float it
 * becomes. */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)x[i] * x[i];
        s1 += (double)x[i + 1] * x[i + 1];
        s2 += (double)x[i + 2] * x[i + 2];
        s3 += (double)x[i + 3] * x[i + 3];
    }
    for (; i < n; i++) s0 += (double)x[i] * x[i];
    double ss = (s0 + s1) + (s2 + s3);
    float r = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (i = 0; i < n; i++) out[i] = w[i] * (x[i] * r);
}

/* Deterministic u in [-1, 1) for (seed, pos, i): splitmix64 finalizer. */
static float jitter_u(uint64_t seed, int pos, int64_t i) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + ((uint64_t)pos << 32) + (uint64_t)i;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 4503599627370496.0 - 1.0);
}

static inline float silu(float x) { return x / (1.0f + expf(-x)); }

/* (x > 0 ? x : 0) squared, without a branch where the compiler would make
 * one (the sign of an activation is a coin toss): maxss returns its second
 * operand for NaN and for equal zeros, exactly the select's result. */
static inline float relu2(float x) {
#if defined(__SSE2__)
    float p = _mm_cvtss_f32(_mm_max_ss(_mm_set_ss(x), _mm_setzero_ps()));
#else
    float p = x > 0.0f ? x : 0.0f;
#endif
    return p * p;
}

/* cos/sin table for one position: rope[2*i], rope[2*i+1] for i < head_dim/2. */
static void rope_table(float *rope, int pos, int head_dim, float theta) {
    for (int i = 0; i < head_dim / 2; i++) {
        /* as transformers computes it: inv_freq in fp32, angle = pos * inv_freq in fp32 */
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        float ang = (float)pos * inv_freq;
        rope[2 * i] = (float)cos((double)ang);
        rope[2 * i + 1] = (float)sin((double)ang);
    }
}

static void rope_apply(float *v, int n_heads, int head_dim, const float *rope) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (int64_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float c = rope[2 * i], sn = rope[2 * i + 1];
            float a = x[i], b = x[i + half];
            x[i] = a * c - b * sn;
            x[i + half] = b * c + a * sn;
        }
    }
}

/* Token t's activations: optional RMSNorm (w != NULL; into the thread's
 * scratch), then int8 quantization into row t of s->qa. */
static void norm_quant(bn_work *s, int ith, int t, const float *x, const float *w, int64_t n) {
    const float *src = x;
    if (w) {
        float *tmp = s->tmp + (int64_t)ith * s->tmp_stride;
        rmsnorm(tmp, x, w, n, s->model->hp.norm_eps);
        src = tmp;
    }
    s->act_scale[t] = s->model->kern->quantize_act(src, n, s->qa + (int64_t)t * s->qa_stride, s->qa_stride);
}

/* One weight matrix of a row-split phase: its outputs go to y (row t of
 * y_stride floats per token), its integer sums to column acc_off of s->acc. */
typedef struct {
    const bn_ternary *w;
    float *y;
    int64_t y_stride, acc_off;
} matmul;

/* y[r] = a[r] * f for r in [r0, r1): each lane exact, so vectorized as gcc
 * likes (its -O2 cost model left this scalar: 4% of a long prefill). */
__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic"))) static void
scale_rows(float *restrict y, const int32_t *restrict a, int64_t r0, int64_t r1, float f) {
    for (int64_t r = r0; r < r1; r++) y[r] = (float)a[r] * f;
}

/* Rows [r0, r1) of one matrix for the chunk's n tokens. */
static void matmul_rows(bn_work *s, const matmul *mm, int n, int64_t r0, int64_t r1) {
    const bn_kernels *k = s->model->kern;
    const bn_ternary *w = mm->w;
    int64_t AS = s->acc_stride;
    int32_t *acc = s->acc + mm->acc_off;
    if (!w->block_scale) {
        const uint8_t *codes = w->codes + (size_t)r0 * w->row_bytes;
        if (n == 1) k->ternary_dot_rows(codes, w->row_bytes, w->nblocks, s->qa, r1 - r0, acc + r0);
        else k->ternary_matmat(codes, w->row_bytes, w->nblocks, r1 - r0, s->qa, (size_t)s->qa_stride, n, acc + r0, (size_t)AS);
        for (int t = 0; t < n; t++)
            scale_rows(mm->y + t * mm->y_stride, acc + t * AS, r0, r1, w->scale / s->act_scale[t]);
        return;
    }
    /* per-block scales (rare: TQ files whose blocks disagree): block by block */
    for (int t = 0; t < n; t++) {
        const int8_t *qa = s->qa + t * s->qa_stride;
        for (int64_t r = r0; r < r1; r++) {
            float sum = 0.0f;
            for (int b = 0; b < w->nblocks; b++) {
                int32_t d;
                k->ternary_dot_rows(w->codes + (size_t)r * w->row_bytes + (size_t)b * BN_QK_BYTES, 0, 1,
                                    qa + (int64_t)b * BN_QK, 1, &d);
                sum += (float)d * w->block_scale[r * w->nblocks + b];
            }
            mm->y[t * mm->y_stride + r] = sum / s->act_scale[t];
        }
    }
}

/* This thread's share of the rows of nm matrices taken as one. */
static void matmuls(bn_work *s, const matmul *mm, int nm, int n, int ith, int nth) {
    int64_t total = 0, a, b, base = 0;
    for (int i = 0; i < nm; i++) total += mm[i].w->rows;
    bn_split(total, ith, nth, 16, &a, &b);
    for (int i = 0; i < nm; i++) {
        int64_t rows = mm[i].w->rows;
        int64_t lo = a > base ? a - base : 0, hi = b - base < rows ? b - base : rows;
        if (lo < hi) matmul_rows(s, &mm[i], n, lo, hi);
        base += rows;
    }
}

/* Writes a token's k and v (after RoPE) into s's cache at position pos. */
static void cache_store(bn_session *s, int l, int pos, const float *k, const float *v) {
    const bn_hparams *hp = &s->model->hp;
    int hd = hp->head_dim;
    size_t tile = (size_t)(pos / BN_KV_TILE) * hd * BN_KV_TILE, lane = (size_t)(pos % BN_KV_TILE);
    for (int h = 0; h < hp->n_kv_heads; h++) {
        const float *kh = k + h * hd, *vh = v + h * hd;
        void *kc = bn_session_kv(s, 0, l, h), *vc = bn_session_kv(s, 1, l, h);
        size_t vo = (size_t)pos * hd;
        if (s->kv_f16) {
            uint16_t *k16 = kc, *v16 = vc;
            for (int d = 0; d < hd; d++) {
                k16[tile + (size_t)d * BN_KV_TILE + lane] = bn_f32_to_f16(kh[d]);
                v16[vo + d] = bn_f32_to_f16(vh[d]);
            }
        } else {
            float *k32 = kc, *v32 = vc;
            for (int d = 0; d < hd; d++) k32[tile + (size_t)d * BN_KV_TILE + lane] = kh[d];
            memcpy(v32 + vo, vh, sizeof(float) * (size_t)hd);
        }
    }
}

/* One query head of one token over positions 0..pos of s's cache: out =
 * softmax(q.K / sqrt(hd)) . V, with sc as the thread's scores scratch. */
static void attend(bn_session *s, int l, int pos, int h, const float *q, float *out, float *sc) {
    const bn_hparams *hp = &s->model->hp;
    const bn_kernels *k = s->model->kern;
    int hd = hp->head_dim, kvh = h / (hp->n_heads / hp->n_kv_heads), np = pos + 1;
    float scale = 1.0f / sqrtf((float)hd);
    k->attn_scores(q, bn_session_kv(s, 0, l, kvh), s->kv_f16, np, hd, sc);
    k->attn_softmax(sc, np, scale);
    k->attn_mix(sc, bn_session_kv(s, 1, l, kvh), s->kv_f16, np, hd, out);
}

/* Attention of the pass's rows, this thread's share of the units (a KV
 * head, a block of consecutive rows of one session): the unit's queries,
 * its query heads for each of its rows, meet each K and V tile at once
 * through the batched kernels. The same bits as attend() per (row, head). */
static void attend_blocks(pass *p, int l, int ith, int nth) {
    bn_work *w = p->w;
    const bn_hparams *hp = &w->model->hp;
    const bn_kernels *k = w->model->kern;
    int hd = hp->head_dim, G = hp->n_heads / hp->n_kv_heads;
    int64_t QD = (int64_t)hp->n_heads * hd, u0, u1;
    float scale = 1.0f / sqrtf((float)hd);
    float *qb = w->attn_q + (int64_t)ith * w->attn_group * hd, *ob = w->attn_o + (int64_t)ith * w->attn_group * hd;
    float *sc = w->scores + (int64_t)ith * w->attn_group * w->scores_stride;
    bn_split((int64_t)p->nblocks * hp->n_kv_heads, ith, nth, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        int kvh = (int)(u % hp->n_kv_heads), b = (int)(u / hp->n_kv_heads), t0 = p->block_row[b], nq = 0;
        bn_session *s = p->rows[t0].s;
        int npos[64];
        for (int t = t0; t < t0 + p->block_len[b]; t++)
            for (int j = 0; j < G; j++, nq++) {
                memcpy(qb + (int64_t)nq * hd, w->q + t * QD + (int64_t)(kvh * G + j) * hd, sizeof(float) * (size_t)hd);
                npos[nq] = p->rows[t].pos + 1;
            }
        k->attn_scores_n(qb, (size_t)hd, nq, npos, bn_session_kv(s, 0, l, kvh), s->kv_f16, hd, sc,
                         (size_t)w->scores_stride);
        for (int i = 0; i < nq; i++) k->attn_softmax(sc + (int64_t)i * w->scores_stride, npos[i], scale);
        k->attn_mix_n(sc, (size_t)w->scores_stride, nq, npos, bn_session_kv(s, 1, l, kvh), s->kv_f16, hd, ob,
                      (size_t)hd);
        for (int i = 0; i < nq; i++) {
            int t = t0 + i / G, h = kvh * G + i % G;
            memcpy(w->att + t * QD + (int64_t)h * hd, ob + (int64_t)i * hd, sizeof(float) * (size_t)hd);
        }
    }
}

static void layer(pass *p, int l, int ith, int nth) {
    bn_work *s = p->w;
    const bn_model *m = s->model;
    const bn_hparams *hp = &m->hp;
    const bn_layer *L = &m->layers[l];
    int n = p->n, hd = hp->head_dim;
    int64_t E = hp->n_embd, QD = (int64_t)hp->n_heads * hd, KVD = (int64_t)hp->n_kv_heads * hd, F = hp->n_ff;
    int64_t t0, t1;
    bn_split(n, ith, nth, 1, &t0, &t1);

    /* attention: q, k, v for every token */
    for (int64_t t = t0; t < t1; t++) norm_quant(s, ith, (int)t, s->x + t * E, L->attn_norm, E);
    bn_pool_barrier(s->pool);
    matmul qkv[3] = {{&L->wq, s->q, QD, 0}, {&L->wk, s->k, KVD, QD}, {&L->wv, s->v, KVD, QD + KVD}};
    matmuls(s, qkv, 3, n, ith, nth);
    bn_pool_barrier(s->pool);
    for (int64_t t = t0; t < t1; t++) {
        const float *rope = s->rope + t * hd;
        rope_apply(s->q + t * QD, hp->n_heads, hd, rope);
        rope_apply(s->k + t * KVD, hp->n_kv_heads, hd, rope);
        cache_store(p->rows[t].s, l, p->rows[t].pos, s->k + t * KVD, s->v + t * KVD);
    }
    bn_pool_barrier(s->pool);
    if (p->nblocks > 0) {
        attend_blocks(p, l, ith, nth);
    } else {
        int64_t u0, u1;
        bn_split((int64_t)n * hp->n_heads, ith, nth, 1, &u0, &u1);
        for (int64_t u = u0; u < u1; u++) {
            int64_t t = u / hp->n_heads;
            int h = (int)(u % hp->n_heads);
            attend(p->rows[t].s, l, p->rows[t].pos, h, s->q + t * QD + h * hd, s->att + t * QD + h * hd,
                   s->scores + (int64_t)ith * s->attn_group * s->scores_stride);
        }
    }
    bn_pool_barrier(s->pool);
    for (int64_t t = t0; t < t1; t++) norm_quant(s, ith, (int)t, s->att + t * QD, L->attn_sub_norm, QD);
    bn_pool_barrier(s->pool);
    matmul wo = {&L->wo, s->y, E, 0};
    matmuls(s, &wo, 1, n, ith, nth);
    bn_pool_barrier(s->pool);

    /* feed-forward */
    for (int64_t t = t0; t < t1; t++) {
        float *x = s->x + t * E;
        const float *y = s->y + t * E;
        for (int64_t i = 0; i < E; i++) x[i] += y[i];
        norm_quant(s, ith, (int)t, x, L->ffn_norm, E);
    }
    bn_pool_barrier(s->pool);
    matmul gu[2] = {{&L->wgate, s->gate, F, 0}, {&L->wup, s->up, F, F}};
    matmuls(s, gu, 2, n, ith, nth);
    bn_pool_barrier(s->pool);
    for (int64_t t = t0; t < t1; t++) {
        float *g = s->gate + t * F;
        const float *up = s->up + t * F;
        if (hp->act == BN_ACT_RELU2)
            for (int64_t i = 0; i < F; i++) g[i] = relu2(g[i]) * up[i];
        else
            for (int64_t i = 0; i < F; i++) g[i] = silu(g[i]) * up[i];
        if (L->ffn_sub_norm) rmsnorm(g, g, L->ffn_sub_norm, F, hp->norm_eps);
        norm_quant(s, ith, (int)t, g, NULL, F);
    }
    bn_pool_barrier(s->pool);
    matmul down = {&L->wdown, s->y, E, 0};
    matmuls(s, &down, 1, n, ith, nth);
    bn_pool_barrier(s->pool);
    for (int64_t t = t0; t < t1; t++) { /* the next phase splits tokens the same way: no barrier */
        float *x = s->x + t * E;
        const float *y = s->y + t * E;
        for (int64_t i = 0; i < E; i++) x[i] += y[i];
    }
}

static void pass_job(void *ctx, int ith, int nth) {
    pass *p = ctx;
    bn_work *w = p->w;
    const bn_model *m = w->model;
    const bn_hparams *hp = &m->hp;
    int n = p->n;
    int64_t E = hp->n_embd, t0, t1;
    bn_split(n, ith, nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        const bn_row *r = &p->rows[t];
        float *x = w->x + t * E;
        bn_dense_row(&m->tok_embd, r->id, x);
        if (r->s->jitter != 0.0f)
            for (int64_t i = 0; i < E; i++) x[i] *= 1.0f + r->s->jitter * jitter_u(r->s->jitter_seed, r->pos, i);
        rope_table(w->rope + t * hp->head_dim, r->pos, hp->head_dim, hp->rope_theta);
    }
    for (int l = 0; l < hp->n_layers; l++) layer(p, l, ith, nth);

    /* output norm for the rows that want logits or their hidden state,
     * then the output head for those that want logits */
    int want[BN_CHUNK], nt = 0, nh = 0;
    for (int t = 0; t < n; t++) {
        if (p->rows[t].logits) want[nt++] = t;
        if (p->rows[t].hidden) nh++;
    }
    if (nt == 0 && nh == 0) return; /* a prompt's inner chunk: nothing wanted */
    for (int64_t t = t0; t < t1; t++) {
        if (!p->rows[t].logits && !p->rows[t].hidden) continue;
        float *xn = w->y + t * E;
        rmsnorm(xn, w->x + t * E, m->output_norm, E, hp->norm_eps);
        if (p->rows[t].hidden) memcpy(p->rows[t].hidden, xn, sizeof(float) * (size_t)E);
        if (!p->rows[t].logits) continue;
        if (m->head_i8)
            w->act_scale[t] = m->kern->quantize_act(xn, E, w->qa + t * w->qa_stride, w->qa_stride);
        else if (w->xq)
            bn_quantize_q16(xn, E, w->xq + t * E, w->xd + t * w->xd_stride);
    }
    if (nt == 0) return; /* embeddings only: no head */
    bn_pool_barrier(w->pool);
    bn_head_token tok[BN_CHUNK];
    for (int i = 0; i < nt; i++) {
        int t = want[i];
        tok[i].x = w->y + t * E;
        tok[i].q = w->qa + t * w->qa_stride;
        tok[i].q_scale = w->act_scale[t];
        tok[i].xq = w->xq ? w->xq + t * E : NULL;
        tok[i].xd = w->xd ? w->xd + t * w->xd_stride : NULL;
        tok[i].out = p->rows[t].logits;
    }
    int64_t r0, r1;
    bn_split(hp->n_vocab, ith, nth, BN_HEAD_ROWS, &r0, &r1);
    bn_head_rows(m, tok, nt, r0, r1, (char *)w->head_scratch + (size_t)ith * w->head_scratch_bytes);
}

/* Threads worth waking for n tokens: one per BN_MACS_PER_THREAD
 * multiply-adds, so that small models (and the test fixtures) do not pay
 * more in barriers than they gain. */
#define BN_MACS_PER_THREAD 8000000.0
static int threads_for(bn_work *w, int n) {
    const bn_hparams *hp = &w->model->hp;
    double E = hp->n_embd, QD = (double)hp->n_heads * hp->head_dim, KVD = (double)hp->n_kv_heads * hp->head_dim;
    double per_token = hp->n_layers * (E * (QD + 2 * KVD) + QD * E + 3 * E * hp->n_ff) + (double)hp->n_vocab * E;
    double want = 1.0 + per_token * n / BN_MACS_PER_THREAD;
    int nth = want < w->threads ? (int)want : w->threads;
    if (nth > 1 && !w->pool) w->pool = bn_pool_new(w->threads);
    return w->pool ? (nth < bn_pool_size(w->pool) ? nth : bn_pool_size(w->pool)) : 1;
}

/* Cuts the rows into attention blocks when the batched kernels apply: runs
 * of one session, at most attn_group / G rows each. Single rows of a pass
 * of one row go through attend() (nblocks 0). */
static void plan_attention(pass *p) {
    const bn_hparams *hp = &p->w->model->hp;
    const bn_kernels *k = p->w->model->kern;
    int G = hp->n_heads / hp->n_kv_heads;
    p->nblocks = 0;
    if (p->n < 2 || !k->attn_scores_n || !k->attn_mix_n || p->w->attn_group < G) return;
    int TB = p->w->attn_group / G;
    for (int t = 0; t < p->n; t++) {
        int b = p->nblocks - 1;
        if (b >= 0 && p->rows[t].s == p->rows[t - 1].s && p->block_len[b] < TB) {
            p->block_len[b]++;
        } else {
            p->block_row[p->nblocks] = t;
            p->block_len[p->nblocks++] = 1;
        }
    }
}

void bn_forward(bn_work *w, const bn_row *rows, int n) {
    pass p = {.w = w, .rows = rows, .n = n};
    plan_attention(&p);
    bn_pool_run(w->pool, threads_for(w, n), pass_job, &p);
}
