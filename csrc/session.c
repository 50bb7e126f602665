/* session.c: session lifetime, KV-cache and scratch allocation. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

bn_session *bn_session_new(bn_model *m, int n_ctx, bn_err *err) {
    const bn_hparams *hp = &m->hp;
    if (n_ctx <= 0) n_ctx = hp->n_ctx_train;
    int64_t E = hp->n_embd, QD = (int64_t)hp->n_heads * hp->head_dim, KVD = (int64_t)hp->n_kv_heads * hp->head_dim;
    int64_t F = hp->n_ff;
    int64_t widest = E > QD ? E : QD;
    if (F > widest) widest = F;
    int64_t qa_stride = (widest + 127) / 128 * 128;
    size_t cache = (size_t)hp->n_layers * (size_t)KVD * (size_t)n_ctx;
    bn_session *s = calloc(1, sizeof *s);
    if (!s) {
        bn_errf(err, "out of memory for a session");
        return NULL;
    }
    s->model = m;
    s->n_ctx = n_ctx;
    s->qa_stride = qa_stride;
    s->kcache = malloc(cache * sizeof(float));
    s->vcache = malloc(cache * sizeof(float));
    s->logits = calloc((size_t)hp->n_vocab, sizeof(float));
    s->x = malloc(sizeof(float) * (size_t)(BN_BATCH * E));
    s->xn = malloc(sizeof(float) * (size_t)widest);
    s->q = malloc(sizeof(float) * (size_t)(BN_BATCH * QD));
    s->k = malloc(sizeof(float) * (size_t)KVD);
    s->v = malloc(sizeof(float) * (size_t)KVD);
    s->att_out = malloc(sizeof(float) * (size_t)QD);
    s->gate = malloc(sizeof(float) * (size_t)F);
    s->up = malloc(sizeof(float) * (size_t)(F > E ? F : E));
    s->scores = malloc(sizeof(float) * (size_t)n_ctx);
    s->rope = malloc(sizeof(float) * (size_t)hp->head_dim);
    s->qa = malloc((size_t)qa_stride);
    int64_t rows = QD > F ? QD : F;
    if (E > rows) rows = E;
    if (hp->n_vocab > rows) rows = hp->n_vocab;
    s->acc = malloc(sizeof(int32_t) * (size_t)rows);
    if (!s->kcache || !s->vcache || !s->logits || !s->x || !s->xn || !s->q || !s->k || !s->v || !s->att_out ||
        !s->gate || !s->up || !s->scores || !s->rope || !s->qa || !s->acc) {
        s->model = NULL;
        bn_session_free(s);
        bn_errf(err, "out of memory for a session of %d positions (KV-cache %zu MB)", n_ctx,
                cache * 2 * sizeof(float) >> 20);
        return NULL;
    }
    bn_model_retain(m);
    return s;
}

void bn_session_free(bn_session *s) {
    if (!s) return;
    free(s->kcache); free(s->vcache); free(s->logits); free(s->x); free(s->xn); free(s->q);
    free(s->k); free(s->v); free(s->att_out); free(s->gate); free(s->up); free(s->scores);
    free(s->rope); free(s->qa); free(s->acc);
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
