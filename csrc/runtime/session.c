/* session.c: session lifetime, KV-cache, and the scratch of forward passes. */
#include "runtime/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/head.h"
#include "kernels/kernels.h"
#include "base/threadpool.h"

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t ctx_padded(int n_ctx) { return ((int64_t)n_ctx + BN_KV_TILE - 1) / BN_KV_TILE * BN_KV_TILE; }

/* The scratch that depends on the longest context: attention scores. */
static int alloc_scores(bn_work *w, int max_ctx) {
    int64_t pad = ctx_padded(max_ctx);
    float *sc = malloc(sizeof(float) * (size_t)(w->threads * w->attn_group * pad));
    if (!sc) return -1;
    free(w->scores);
    w->scores = sc;
    w->scores_stride = pad;
    w->max_ctx = max_ctx;
    return 0;
}

bn_work *bn_work_new(const bn_model *m, int max_ctx, int threads, bn_err *err) {
    const bn_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, QD = (int64_t)hp->n_heads * hp->head_dim;
    int64_t KVD = (int64_t)hp->n_kv_heads * hp->head_dim, F = hp->n_ff, C = BN_CHUNK;
    int64_t widest = max64(max64(E, QD), F);
    bn_work *w = calloc(1, sizeof *w);
    if (!w) {
        bn_errf(err, "out of memory for a forward pass's scratch");
        return NULL;
    }
    w->model = m;
    w->threads = threads < 1 ? 1 : threads > 256 ? 256 : threads; /* the pool starts on first use */
    int T = w->threads;
    w->qa_stride = (widest + 127) / 128 * 128;
    w->acc_stride = max64(max64(QD + 2 * KVD, 2 * F), E);
    w->tmp_stride = widest;
    w->head_scratch_bytes = (bn_head_scratch_bytes(m) + 63) / 64 * 64;
    w->x = malloc(sizeof(float) * (size_t)(C * E));
    w->y = malloc(sizeof(float) * (size_t)(C * E));
    w->q = malloc(sizeof(float) * (size_t)(C * QD));
    w->k = malloc(sizeof(float) * (size_t)(C * KVD));
    w->v = malloc(sizeof(float) * (size_t)(C * KVD));
    w->att = malloc(sizeof(float) * (size_t)(C * QD));
    w->gate = malloc(sizeof(float) * (size_t)(C * F));
    w->up = malloc(sizeof(float) * (size_t)(C * F));
    w->rope = malloc(sizeof(float) * (size_t)(C * hp->head_dim));
    w->act_scale = malloc(sizeof(float) * (size_t)C);
    w->tmp = malloc(sizeof(float) * (size_t)(T * widest));
    int G = hp->n_heads / hp->n_kv_heads, tokens = G < 8 ? 8 / G : 1;
    w->attn_group = G <= 64 ? tokens * G : 1; /* 1 (< G): every query on its own */
    w->attn_q = malloc(sizeof(float) * (size_t)(T * w->attn_group * hp->head_dim));
    w->attn_o = malloc(sizeof(float) * (size_t)(T * w->attn_group * hp->head_dim));
    w->qa = malloc((size_t)(C * w->qa_stride));
    w->acc = malloc(sizeof(int32_t) * (size_t)(C * w->acc_stride));
    w->head_scratch = malloc(w->head_scratch_bytes * (size_t)T);
    int q16 = bn_head_wants_q16(m);
    if (q16) {
        w->xd_stride = E / 256 + 1;
        w->xq = malloc(sizeof(int16_t) * (size_t)(C * E));
        w->xd = malloc(sizeof(float) * (size_t)(C * w->xd_stride));
    }
    if (!w->x || !w->y || !w->q || !w->k || !w->v || !w->att || !w->gate || !w->up || !w->rope || !w->act_scale ||
        !w->tmp || !w->attn_q || !w->attn_o || !w->qa || !w->acc || !w->head_scratch || (q16 && (!w->xq || !w->xd)) ||
        alloc_scores(w, max_ctx) != 0) {
        bn_work_free(w);
        bn_errf(err, "out of memory for a forward pass's scratch");
        return NULL;
    }
    return w;
}

int bn_work_fit(bn_work *w, int max_ctx) {
    return max_ctx <= w->max_ctx ? 0 : alloc_scores(w, max_ctx);
}

void bn_work_free(bn_work *w) {
    if (!w) return;
    bn_pool_free(w->pool);
    free(w->x); free(w->y); free(w->q); free(w->k); free(w->v); free(w->att); free(w->gate); free(w->up);
    free(w->rope); free(w->act_scale); free(w->tmp); free(w->scores); free(w->attn_q); free(w->attn_o);
    free(w->qa); free(w->acc); free(w->head_scratch); free(w->xq); free(w->xd);
    free(w);
}

/* bytes as "160.0 GiB", "3.5 MiB", "512 bytes" */
static void fmt_bytes(char *buf, size_t cap, uint64_t b) {
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (b < 1024) {
        snprintf(buf, cap, "%llu bytes", (unsigned long long)b);
        return;
    }
    double v = (double)b / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) v /= 1024, u++;
    snprintf(buf, cap, "%.1f %s", v, unit[u]);
}

bn_session *bn_session_open(bn_model *m, const bn_session_opts *opts, bn_err *err) {
    const bn_hparams *hp = &m->hp;
    int n_ctx = opts ? opts->n_ctx : 0;
    if (n_ctx <= 0) n_ctx = m->default_n_ctx > 0 ? m->default_n_ctx : hp->n_ctx_train;
    int kv_f16 = opts ? opts->kv_f16 != 0 : 0;
    size_t head_elems = (size_t)ctx_padded(n_ctx) * (size_t)hp->head_dim;
    size_t cache = (size_t)hp->n_layers * (size_t)hp->n_kv_heads * head_elems, esz = kv_f16 ? 2 : 4;
    /* refused up front: the cache is calloc'ed, so an oversized one would
     * be granted and the process killed later, as it fills */
    double kv_bytes = 2.0 * (double)cache * (double)esz;
    if (m->max_memory && kv_bytes > (double)m->max_memory) {
        char need[32], have[32];
        fmt_bytes(need, sizeof need, kv_bytes >= 1.8e19 ? UINT64_MAX : (uint64_t)kv_bytes);
        fmt_bytes(have, sizeof have, m->max_memory);
        bn_errf(err, "n_ctx %d needs %s of KV-cache; max_memory is %s (raise it with bitnet.load's max_memory option)",
                n_ctx, need, have);
        return NULL;
    }
    int threads = m->threads > 0 ? m->threads : bn_physical_cores();
    bn_session *s = calloc(1, sizeof *s);
    if (!s) {
        bn_errf(err, "out of memory for a session");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    atomic_init(&s->busy, 0);
    s->n_ctx = n_ctx;
    s->kv_f16 = kv_f16;
    s->kv_head_elems = head_elems;
    s->threads = threads;
    /* calloc: untouched cache pages cost nothing, and tile lanes past the
     * last position read as zeros */
    s->kcache = calloc(cache, esz);
    s->vcache = calloc(cache, esz);
    s->tokens = malloc(sizeof(int32_t) * (size_t)n_ctx);
    s->logits = calloc((size_t)hp->n_vocab, sizeof(float));
    if (!s->kcache || !s->vcache || !s->tokens || !s->logits) {
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

void bn_session_retain(bn_session *s) { atomic_fetch_add(&s->refs, 1); }

void bn_session_free(bn_session *s) {
    if (!s || atomic_fetch_sub(&s->refs, 1) > 1) return;
    bn_work_free(s->work);
    free(s->kcache); free(s->vcache); free(s->tokens); free(s->logits);
    if (s->model) bn_model_release(s->model);
    free(s);
}

int bn_session_claim(bn_session *s) {
    int expected = 0;
    return atomic_compare_exchange_strong(&s->busy, &expected, 1) ? 0 : -1;
}

void bn_session_unclaim(bn_session *s) { atomic_store(&s->busy, 0); }

void bn_session_rewind(bn_session *s, int n) {
    if (n < 0) n = 0;
    if (n < s->pos) {
        s->pos = n;
        s->have_logits = 0;
    }
}

int bn_session_copy_prefix(bn_session *dst, const bn_session *src, int n) {
    if (dst == src || dst->model != src->model || dst->kv_f16 != src->kv_f16 || n < 0 || n > src->pos ||
        n > dst->n_ctx)
        return -1;
    const bn_hparams *hp = &src->model->hp;
    size_t esz = src->kv_f16 ? 2 : 4, hd = (size_t)hp->head_dim;
    /* K tiles hold BN_KV_TILE positions: whole tiles (lanes past n are
     * overwritten when those positions are fed); V rows exactly */
    size_t k_elems = ((size_t)n + BN_KV_TILE - 1) / BN_KV_TILE * BN_KV_TILE * hd, v_elems = (size_t)n * hd;
    for (int l = 0; l < hp->n_layers; l++)
        for (int h = 0; h < hp->n_kv_heads; h++) {
            memcpy(bn_session_kv(dst, 0, l, h), bn_session_kv(src, 0, l, h), k_elems * esz);
            memcpy(bn_session_kv(dst, 1, l, h), bn_session_kv(src, 1, l, h), v_elems * esz);
        }
    memcpy(dst->tokens, src->tokens, sizeof(int32_t) * (size_t)n);
    dst->pos = n;
    dst->have_logits = n == src->pos && src->have_logits;
    if (dst->have_logits) memcpy(dst->logits, src->logits, sizeof(float) * (size_t)hp->n_vocab);
    return 0;
}

void *bn_session_kv(const bn_session *s, int v, int l, int h) {
    size_t off = ((size_t)l * (size_t)s->model->hp.n_kv_heads + (size_t)h) * s->kv_head_elems;
    size_t esz = s->kv_f16 ? 2 : 4;
    return (char *)(v ? s->vcache : s->kcache) + off * esz;
}

int bn_session_eval(bn_session *s, const int32_t *ids, int n, float *all_logits) {
    if (n <= 0) return 0;
    if (!s->work && !(s->work = bn_work_new(s->model, s->n_ctx, s->threads, NULL))) return -1;
    int64_t V = s->model->hp.n_vocab;
    bn_row rows[BN_CHUNK];
    for (int i = 0; i < n; i += BN_CHUNK) {
        int c = n - i < BN_CHUNK ? n - i : BN_CHUNK, last = i + BN_CHUNK >= n;
        for (int t = 0; t < c; t++) {
            rows[t] = (bn_row){s, ids[i + t], s->pos + t, NULL, NULL};
            if (all_logits) rows[t].logits = all_logits + (int64_t)(i + t) * V;
        }
        if (last && !all_logits) rows[c - 1].logits = s->logits;
        bn_forward(s->work, rows, c);
        memcpy(s->tokens + s->pos, ids + i, sizeof(int32_t) * (size_t)c);
        s->pos += c;
    }
    if (all_logits) memcpy(s->logits, all_logits + (int64_t)(n - 1) * V, sizeof(float) * (size_t)V);
    s->have_logits = 1;
    return 0;
}
