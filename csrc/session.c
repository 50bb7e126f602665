/* session.c: session lifetime, KV-cache, threads and scratch allocation. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "head.h"
#include "kernels/kernels.h"
#include "threadpool.h"

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

bn_session *bn_session_open(bn_model *m, const bn_session_opts *opts, bn_err *err) {
    const bn_hparams *hp = &m->hp;
    int n_ctx = opts ? opts->n_ctx : 0;
    if (n_ctx <= 0) n_ctx = m->default_n_ctx > 0 ? m->default_n_ctx : hp->n_ctx_train;
    int kv_f16 = opts ? opts->kv_f16 != 0 : 0;
    int64_t E = hp->n_embd, QD = (int64_t)hp->n_heads * hp->head_dim;
    int64_t KVD = (int64_t)hp->n_kv_heads * hp->head_dim, F = hp->n_ff, C = BN_CHUNK;
    int64_t widest = max64(max64(E, QD), F);
    int64_t ctx_pad = ((int64_t)n_ctx + BN_KV_TILE - 1) / BN_KV_TILE * BN_KV_TILE;
    size_t head_elems = (size_t)ctx_pad * (size_t)hp->head_dim;
    size_t cache = (size_t)hp->n_layers * (size_t)hp->n_kv_heads * head_elems, esz = kv_f16 ? 2 : 4;
    int threads = m->threads > 0 ? m->threads : bn_physical_cores();
    bn_session *s = calloc(1, sizeof *s);
    if (!s) {
        bn_errf(err, "out of memory for a session");
        return NULL;
    }
    s->n_ctx = n_ctx;
    s->kv_f16 = kv_f16;
    s->kv_head_elems = head_elems;
    s->qa_stride = (widest + 127) / 128 * 128;
    s->acc_stride = max64(max64(QD + 2 * KVD, 2 * F), E);
    s->tmp_stride = widest;
    s->scores_stride = ctx_pad;
    s->threads = threads < 1 ? 1 : threads > 256 ? 256 : threads; /* the pool starts on first use */
    int T = s->threads;
    s->head_scratch_bytes = (bn_head_scratch_bytes(m) + 63) / 64 * 64;
    /* calloc: untouched cache pages cost nothing, and tile lanes past the
     * last position read as zeros */
    s->kcache = calloc(cache, esz);
    s->vcache = calloc(cache, esz);
    s->logits = calloc((size_t)hp->n_vocab, sizeof(float));
    s->x = malloc(sizeof(float) * (size_t)(C * E));
    s->y = malloc(sizeof(float) * (size_t)(C * E));
    s->q = malloc(sizeof(float) * (size_t)(C * QD));
    s->k = malloc(sizeof(float) * (size_t)(C * KVD));
    s->v = malloc(sizeof(float) * (size_t)(C * KVD));
    s->att = malloc(sizeof(float) * (size_t)(C * QD));
    s->gate = malloc(sizeof(float) * (size_t)(C * F));
    s->up = malloc(sizeof(float) * (size_t)(C * F));
    s->rope = malloc(sizeof(float) * (size_t)(C * hp->head_dim));
    s->act_scale = malloc(sizeof(float) * (size_t)C);
    s->tmp = malloc(sizeof(float) * (size_t)(T * widest));
    int G = hp->n_heads / hp->n_kv_heads, tokens = G < 8 ? 8 / G : 1;
    s->attn_group = G <= 64 ? tokens * G : 1; /* 1 (< G): every query on its own */
    s->scores = malloc(sizeof(float) * (size_t)(T * s->attn_group * ctx_pad));
    s->attn_q = malloc(sizeof(float) * (size_t)(T * s->attn_group * hp->head_dim));
    s->attn_o = malloc(sizeof(float) * (size_t)(T * s->attn_group * hp->head_dim));
    s->qa = malloc((size_t)(C * s->qa_stride));
    s->acc = malloc(sizeof(int32_t) * (size_t)(C * s->acc_stride));
    s->head_scratch = malloc(s->head_scratch_bytes * (size_t)T);
    int q16 = bn_head_wants_q16(m);
    if (q16) {
        s->xd_stride = E / 256 + 1;
        s->xq = malloc(sizeof(int16_t) * (size_t)(C * E));
        s->xd = malloc(sizeof(float) * (size_t)(C * s->xd_stride));
    }
    if (!s->kcache || !s->vcache || !s->logits || !s->x || !s->y || !s->q || !s->k || !s->v || !s->att ||
        !s->gate || !s->up || !s->rope || !s->act_scale || !s->tmp || !s->scores || !s->attn_q || !s->attn_o ||
        !s->qa || !s->acc || !s->head_scratch || (q16 && (!s->xq || !s->xd))) {
        bn_session_free(s);
        bn_errf(err, "out of memory for a session of %d positions (KV-cache %zu MB)", n_ctx, cache * 2 * esz >> 20);
        return NULL;
    }
    bn_model_retain(m);
    s->model = m;
    return s;
}

bn_session *bn_session_new(bn_model *m, int n_ctx, bn_err *err) {
    bn_session_opts o = {n_ctx, 0};
    return bn_session_open(m, &o, err);
}

void bn_session_free(bn_session *s) {
    if (!s) return;
    bn_pool_free(s->pool);
    free(s->kcache); free(s->vcache); free(s->logits); free(s->x); free(s->y); free(s->q); free(s->k);
    free(s->v); free(s->att); free(s->gate); free(s->up); free(s->rope); free(s->act_scale); free(s->tmp);
    free(s->scores); free(s->attn_q); free(s->attn_o); free(s->qa); free(s->acc); free(s->head_scratch);
    free(s->xq); free(s->xd);
    if (s->model) bn_model_release(s->model);
    free(s);
}

void bn_session_rewind(bn_session *s, int n) {
    if (n < 0) n = 0;
    if (n < s->pos) {
        s->pos = n;
        s->have_logits = 0;
    }
}

void *bn_session_kv(const bn_session *s, int v, int l, int h) {
    size_t off = ((size_t)l * (size_t)s->model->hp.n_kv_heads + (size_t)h) * s->kv_head_elems;
    size_t esz = s->kv_f16 ? 2 : 4;
    return (char *)(v ? s->vcache : s->kcache) + off * esz;
}
