/* forward.c: the BitNet b1.58 transformer, layer by layer over a chunk of
 * tokens (prefill) or a single token (decode). The math is REFERENCE.md's:
 * fp32 RMSNorm; per-token int8 absmax activations before every BitLinear;
 * integer ternary dot products scaled by (weight scale / activation scale);
 * NEOX RoPE; causal attention over the KV-cache; squared ReLU or SwiGLU; the
 * optional sub-norms; a full-precision output head. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * r);
}

/* y[r] = (W x)[r] for the quantized activation qa with scale s. */
static void bitlinear(const bn_session *s, const bn_ternary *w, const int8_t *qa, float act_scale, float *y) {
    const bn_kernels *k = s->model->kern;
    if (!w->block_scale) {
        k->ternary_dot_rows(w->codes, w->row_bytes, w->nblocks, qa, w->rows, s->acc);
        float f = w->scale / act_scale;
        for (int64_t r = 0; r < w->rows; r++) y[r] = (float)s->acc[r] * f;
        return;
    }
    /* per-block scales (rare: TQ files whose blocks disagree): block by block */
    for (int64_t r = 0; r < w->rows; r++) {
        float sum = 0.0f;
        for (int b = 0; b < w->nblocks; b++) {
            int32_t d;
            k->ternary_dot_rows(w->codes + (size_t)r * w->row_bytes + (size_t)b * BN_QK_BYTES, 0, 1,
                                qa + (int64_t)b * BN_QK, 1, &d);
            sum += (float)d * w->block_scale[r * w->nblocks + b];
        }
        y[r] = sum / act_scale;
    }
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

static void attention(bn_session *s, int layer, int t_pos, const float *q, float *out) {
    const bn_hparams *hp = &s->model->hp;
    int hd = hp->head_dim, group = hp->n_heads / hp->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    size_t layer_off = (size_t)layer * hp->n_kv_heads * s->n_ctx * hd;
    const bn_kernels *k = s->model->kern;
    for (int h = 0; h < hp->n_heads; h++) {
        int kvh = h / group;
        const float *kc = s->kcache + layer_off + (size_t)kvh * s->n_ctx * hd;
        const float *vc = s->vcache + layer_off + (size_t)kvh * s->n_ctx * hd;
        const float *qh = q + (int64_t)h * hd;
        float *sc = s->scores;
        float mx = -INFINITY;
        for (int p = 0; p <= t_pos; p++) {
            sc[p] = k->dot_f32(qh, kc + (size_t)p * hd, hd) * scale;
            if (sc[p] > mx) mx = sc[p];
        }
        float sum = 0.0f;
        for (int p = 0; p <= t_pos; p++) {
            sc[p] = expf(sc[p] - mx);
            sum += sc[p];
        }
        float inv = 1.0f / sum;
        float *o = out + (int64_t)h * hd;
        memset(o, 0, sizeof(float) * (size_t)hd);
        for (int p = 0; p <= t_pos; p++) {
            float w = sc[p] * inv;
            const float *vp = vc + (size_t)p * hd;
            for (int d = 0; d < hd; d++) o[d] += w * vp[d];
        }
    }
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

/* One chunk of n <= BN_BATCH tokens at positions s->pos .. s->pos+n-1. */
static void eval_chunk(bn_session *s, const int32_t *ids, int n, float *all_logits) {
    const bn_model *m = s->model;
    const bn_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, QD = (int64_t)hp->n_heads * hp->head_dim;
    int64_t F = hp->n_ff, QS = s->qa_stride;
    int hd = hp->head_dim;
    for (int t = 0; t < n; t++) {
        float *x = s->x + t * E;
        bn_dense_row(&m->tok_embd, ids[t], x);
        if (s->jitter != 0.0f)
            for (int64_t i = 0; i < E; i++) x[i] *= 1.0f + s->jitter * jitter_u(s->jitter_seed, s->pos + t, i);
    }
    for (int l = 0; l < hp->n_layers; l++) {
        const bn_layer *L = &m->layers[l];
        size_t layer_off = (size_t)l * hp->n_kv_heads * s->n_ctx * hd;
        /* attention: q, k, v for every token, then the cache, then attend */
        for (int t = 0; t < n; t++) {
            int pos = s->pos + t;
            rmsnorm(s->xn, s->x + t * E, L->attn_norm, E, hp->norm_eps);
            float as = bn_quantize_act(s->xn, E, s->qa, QS);
            float *q = s->q + t * QD;
            bitlinear(s, &L->wq, s->qa, as, q);
            bitlinear(s, &L->wk, s->qa, as, s->k);
            bitlinear(s, &L->wv, s->qa, as, s->v);
            rope_table(s->rope, pos, hd, hp->rope_theta);
            rope_apply(q, hp->n_heads, hd, s->rope);
            rope_apply(s->k, hp->n_kv_heads, hd, s->rope);
            for (int h = 0; h < hp->n_kv_heads; h++) {
                size_t off = layer_off + ((size_t)h * s->n_ctx + pos) * hd;
                memcpy(s->kcache + off, s->k + h * hd, sizeof(float) * hd);
                memcpy(s->vcache + off, s->v + h * hd, sizeof(float) * hd);
            }
        }
        for (int t = 0; t < n; t++) {
            float *o = s->att_out;
            attention(s, l, s->pos + t, s->q + t * QD, o);
            if (L->attn_sub_norm) rmsnorm(o, o, L->attn_sub_norm, QD, hp->norm_eps);
            float as = bn_quantize_act(o, QD, s->qa, QS);
            bitlinear(s, &L->wo, s->qa, as, s->xn);
            float *x = s->x + t * E;
            for (int64_t i = 0; i < E; i++) x[i] += s->xn[i];
        }
        /* feed-forward */
        for (int t = 0; t < n; t++) {
            float *x = s->x + t * E;
            rmsnorm(s->xn, x, L->ffn_norm, E, hp->norm_eps);
            float as = bn_quantize_act(s->xn, E, s->qa, QS);
            bitlinear(s, &L->wgate, s->qa, as, s->gate);
            bitlinear(s, &L->wup, s->qa, as, s->up);
            for (int64_t i = 0; i < F; i++) {
                float g = s->gate[i];
                float a = hp->act == BN_ACT_RELU2 ? (g > 0.0f ? g * g : 0.0f) : silu(g);
                s->gate[i] = a * s->up[i];
            }
            if (L->ffn_sub_norm) rmsnorm(s->gate, s->gate, L->ffn_sub_norm, F, hp->norm_eps);
            as = bn_quantize_act(s->gate, F, s->qa, QS);
            bitlinear(s, &L->wdown, s->qa, as, s->xn);
            for (int64_t i = 0; i < E; i++) x[i] += s->xn[i];
        }
    }
    /* output head: for the last token, or every token when asked */
    for (int t = all_logits ? 0 : n - 1; t < n; t++) {
        rmsnorm(s->xn, s->x + t * E, m->output_norm, E, hp->norm_eps);
        float *dst = all_logits ? all_logits + (int64_t)t * hp->n_vocab : s->logits;
        for (int64_t v = 0; v < hp->n_vocab; v++) {
            bn_dense_row(&m->output, v, s->up); /* up is >= n_embd floats: reused as row scratch */
            dst[v] = m->kern->dot_f32(s->up, s->xn, E);
        }
        if (all_logits && t == n - 1) memcpy(s->logits, dst, sizeof(float) * (size_t)hp->n_vocab);
    }
    s->pos += n;
    s->have_logits = 1;
}

void bn_session_eval(bn_session *s, const int32_t *ids, int n, float *all_logits) {
    int64_t V = s->model->hp.n_vocab;
    for (int i = 0; i < n; i += BN_BATCH) {
        int c = n - i < BN_BATCH ? n - i : BN_BATCH;
        eval_chunk(s, ids + i, c, all_logits ? all_logits + (int64_t)i * V : NULL);
    }
}
