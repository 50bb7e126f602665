#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/floatfmt.h"
#include "tokenizer/tokenizer.h"

bn_model *bn_model_new(void) {
    bn_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    atomic_init(&m->refs, 1);
    if (pthread_mutex_init(&m->engine_lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

void *bn_model_own(bn_model *m, void *p) {
    if (!p) return NULL;
    if (m->n_allocs == m->cap_allocs) {
        size_t cap = m->cap_allocs ? m->cap_allocs * 2 : 64;
        void **a = realloc(m->allocs, cap * sizeof *a);
        if (!a) {
            free(p);
            return NULL;
        }
        m->allocs = a;
        m->cap_allocs = cap;
    }
    m->allocs[m->n_allocs++] = p;
    return p;
}

void *bn_model_alloc(bn_model *m, size_t bytes) { return bn_model_own(m, malloc(bytes ? bytes : 1)); }

void bn_model_default_name(bn_model *m) {
    /* in the Hugging Face cache (models--ORG--NAME/snapshots/COMMIT/...) the repo's id */
    const char *repo = strstr(m->path, "models--"), *snap = repo ? strstr(repo, "/snapshots/") : NULL;
    const char *sep = repo ? strstr(repo + 8, "--") : NULL;
    if (snap && sep && sep < snap) {
        snprintf(m->name, sizeof m->name, "%.*s/%.*s", (int)(sep - repo - 8), repo + 8, (int)(snap - sep - 2), sep + 2);
        return;
    }
    const char *base = strrchr(m->path, '/');
    base = base && base[1] ? base + 1 : m->path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".gguf") == 0) n -= 5;
    snprintf(m->name, sizeof m->name, "%.*s", (int)(n < sizeof m->name ? n : sizeof m->name - 1), base);
}

void bn_model_count_type(bn_model *m, const char *type_name) {
    for (int i = 0; i < m->n_types; i++)
        if (strcmp(m->types[i].name, type_name) == 0) {
            m->types[i].count++;
            return;
        }
    if (m->n_types < BN_MAX_TYPES) {
        m->types[m->n_types].name = type_name;
        m->types[m->n_types].count = 1;
        m->n_types++;
    }
}

int bn_hparams_check(bn_hparams *hp, const char *what, bn_err *err) {
    if (hp->n_layers < 1 || hp->n_layers > 1024) return bn_errf(err, "%s: block count %d is out of range", what, hp->n_layers);
    if (hp->n_embd < 1 || hp->n_embd > 65536) return bn_errf(err, "%s: embedding length %d is out of range", what, hp->n_embd);
    if (hp->n_heads < 1 || hp->n_heads > 1024) return bn_errf(err, "%s: head count %d is out of range", what, hp->n_heads);
    if (hp->n_kv_heads < 1 || hp->n_kv_heads > hp->n_heads || hp->n_heads % hp->n_kv_heads)
        return bn_errf(err, "%s: %d KV heads do not divide %d heads", what, hp->n_kv_heads, hp->n_heads);
    if (hp->head_dim == 0) {
        if (hp->n_embd % hp->n_heads)
            return bn_errf(err, "%s: embedding length %d is not divisible by %d heads", what, hp->n_embd, hp->n_heads);
        hp->head_dim = hp->n_embd / hp->n_heads;
    }
    if (hp->head_dim < 2 || hp->head_dim > 1024 || hp->head_dim % 2)
        return bn_errf(err, "%s: head size %d is not an even number up to 1024", what, hp->head_dim);
    if (hp->n_ff < 1 || hp->n_ff > 1 << 20) return bn_errf(err, "%s: feed-forward length %d is out of range", what, hp->n_ff);
    if (hp->n_vocab < 1 || hp->n_vocab > 1 << 24) return bn_errf(err, "%s: vocabulary size %d is out of range", what, hp->n_vocab);
    if (hp->n_ctx_train < 1) hp->n_ctx_train = 2048;
    if (!(hp->rope_theta > 0.0f)) return bn_errf(err, "%s: RoPE base must be positive", what);
    if (!(hp->norm_eps > 0.0f && hp->norm_eps < 1.0f)) return bn_errf(err, "%s: RMS norm epsilon out of range", what);
    return 1;
}

static int check_t(const bn_ternary *t, int64_t rows, int64_t cols, const char *name, int layer, bn_err *err) {
    if (!t->codes) return bn_errf(err, "missing tensor: layer %d %s", layer, name);
    if (t->rows != rows || t->cols != cols)
        return bn_errf(err, "layer %d %s has shape %lld x %lld, hyperparameters say %lld x %lld", layer, name,
                       (long long)t->rows, (long long)t->cols, (long long)rows, (long long)cols);
    return 1;
}

int bn_model_check(const bn_model *m, bn_err *err) {
    const bn_hparams *hp = &m->hp;
    int64_t qd = (int64_t)hp->n_heads * hp->head_dim, kvd = (int64_t)hp->n_kv_heads * hp->head_dim;
    if (!m->tok_embd.data) return bn_errf(err, "missing token embedding tensor");
    if (m->tok_embd.cols != hp->n_embd || m->tok_embd.rows != hp->n_vocab)
        return bn_errf(err, "token embedding is %lld x %lld, expected %d x %d", (long long)m->tok_embd.rows,
                       (long long)m->tok_embd.cols, hp->n_vocab, hp->n_embd);
    if (!m->output.data) return bn_errf(err, "missing output head tensor");
    if (m->output.cols != hp->n_embd || m->output.rows != hp->n_vocab)
        return bn_errf(err, "output head is %lld x %lld, expected %d x %d", (long long)m->output.rows,
                       (long long)m->output.cols, hp->n_vocab, hp->n_embd);
    if (!m->output_norm) return bn_errf(err, "missing output norm tensor");
    for (int l = 0; l < hp->n_layers; l++) {
        const bn_layer *L = &m->layers[l];
        if (!L->attn_norm || !L->ffn_norm) return bn_errf(err, "missing norm tensor in layer %d", l);
        if (!check_t(&L->wq, qd, hp->n_embd, "attention q", l, err) ||
            !check_t(&L->wk, kvd, hp->n_embd, "attention k", l, err) ||
            !check_t(&L->wv, kvd, hp->n_embd, "attention v", l, err) ||
            !check_t(&L->wo, hp->n_embd, qd, "attention output", l, err) ||
            !check_t(&L->wgate, hp->n_ff, hp->n_embd, "ffn gate", l, err) ||
            !check_t(&L->wup, hp->n_ff, hp->n_embd, "ffn up", l, err) ||
            !check_t(&L->wdown, hp->n_embd, hp->n_ff, "ffn down", l, err))
            return 0;
    }
    return 1;
}

void bn_model_retain(bn_model *m) { atomic_fetch_add(&m->refs, 1); }

static void free_t(bn_ternary *t) { bn_ternary_free(t); }

void bn_model_release(bn_model *m) {
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
    if (m->cache_forget) m->cache_forget(m);
    if (m->engine) m->engine_stop(m->engine); /* idle: every job held a reference */
    pthread_mutex_destroy(&m->engine_lock);
    if (m->layers)
        for (int l = 0; l < m->hp.n_layers; l++) {
            bn_layer *L = &m->layers[l];
            free_t(&L->wq); free_t(&L->wk); free_t(&L->wv); free_t(&L->wo);
            free_t(&L->wgate); free_t(&L->wup); free_t(&L->wdown);
        }
    bn_tokenizer_free(m->tokenizer);
    for (size_t i = 0; i < m->n_allocs; i++) free(m->allocs[i]);
    free(m->allocs);
    for (int i = 0; i < m->n_maps; i++) bn_mapfile_close(&m->maps[i]);
    free(m);
}

void bn_dense_row(const bn_dense *d, int64_t row, float *out) {
    bn_dequant_row(d->type, d->data + (size_t)row * d->row_bytes, out, d->cols);
}
