/* gguf_model.c: fills a bn_model from a GGUF file of llama.cpp's `bitnet`
 * architecture or bitnet.cpp's `bitnet-b1.58` / `bitnet-25`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "formats/gguf.h"
#include "model/hugepages.h"
#include "model/model.h"
#include "model/gguf_model.h"
#include "model/rope_order.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const bn_gguf *g;
    const char *path;
    char arch[32];
    bn_err *err;
} ctx;

static int get_u(ctx *c, const char *suffix, int required, int64_t def, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    int64_t v = def;
    int r = bn_gguf_get_int(c->g, key, &v);
    if (r < 0) return bn_errf(c->err, "%s: metadata '%s' is not an integer", c->path, key);
    if (r == 0 && required) return bn_errf(c->err, "%s: missing metadata '%s'", c->path, key);
    if (v < 0 || v > 0x7fffffff) return bn_errf(c->err, "%s: metadata '%s' = %lld is out of range", c->path, key, (long long)v);
    *out = (int)v;
    return 1;
}

static int get_f(ctx *c, const char *suffix, double def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    double v = def;
    if (bn_gguf_get_float(c->g, key, &v) < 0) return bn_errf(c->err, "%s: metadata '%s' is not a number", c->path, key);
    *out = (float)v;
    return 1;
}

static int read_activation(ctx *c, bn_activation *act) {
    /* family defaults: upstream llama.cpp's `bitnet` assumes SiLU unless told;
     * bitnet.cpp's 2B-4T architectures are squared ReLU */
    *act = strcmp(c->arch, "bitnet") == 0 || strcmp(c->arch, "llama") == 0 ? BN_ACT_SILU : BN_ACT_RELU2;
    static const char *keys[] = {"hidden_activation", "hidden_act"};
    for (int i = 0; i < 2; i++) {
        char key[128];
        bn_str s;
        snprintf(key, sizeof key, "%s.%s", c->arch, keys[i]);
        int r = bn_gguf_get_str(c->g, key, &s);
        if (r < 0) return bn_errf(c->err, "%s: metadata '%s' is not a string", c->path, key);
        if (r == 0) continue;
        if (bn_str_eq(s, "relu2") || bn_str_eq(s, "relu_squared") || bn_str_eq(s, "squared_relu")) *act = BN_ACT_RELU2;
        else if (bn_str_eq(s, "silu") || bn_str_eq(s, "swish") || bn_str_eq(s, "swiglu")) *act = BN_ACT_SILU;
        else return bn_errf(c->err, "%s: unknown FFN activation '%.*s' in '%s'", c->path, (int)s.len, s.ptr, key);
        return 1;
    }
    return 1;
}

static const bn_gguf_tensor *find(ctx *c, const char *fmt, int layer) {
    char name[96];
    snprintf(name, sizeof name, fmt, layer);
    return bn_gguf_tensor_find(c->g, name);
}

/* A vector (norm weights) converted to owned f32. */
static int load_vec(ctx *c, bn_model *m, const char *fmt, int layer, int64_t n, int required, float **out) {
    char name[96];
    snprintf(name, sizeof name, fmt, layer);
    const bn_gguf_tensor *t = bn_gguf_tensor_find(c->g, name);
    *out = NULL;
    if (!t) return required ? bn_errf(c->err, "%s: missing tensor '%s'", c->path, name) : 1;
    if (t->n_dims != 1 || (int64_t)t->ne[0] != n)
        return bn_errf(c->err, "%s: tensor '%s' has %llu elements, expected %lld", c->path, name,
                       (unsigned long long)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]), (long long)n);
    if (t->type != GGML_F32 && t->type != GGML_F16 && t->type != GGML_BF16)
        return bn_errf(c->err, "%s: tensor '%s' must be F32, F16 or BF16, not %s", c->path, name, bn_ggml_type_name(t->type));
    *out = bn_model_alloc(m, (size_t)n * sizeof(float));
    if (!*out) return bn_errf(c->err, "%s: out of memory", c->path);
    bn_dequant_row(t->type, c->g->data + t->offset, *out, n);
    bn_model_count_type(m, bn_ggml_type_name(t->type));
    return 1;
}

/* Optional llama.cpp `blk.N.<name>.scale`: a single factor on the output. */
static int apply_scale_tensor(ctx *c, bn_ternary *w, const char *base, int layer) {
    char fmt[96];
    snprintf(fmt, sizeof fmt, "blk.%%d.%s.scale", base);
    const bn_gguf_tensor *t = find(c, fmt, layer);
    if (!t) return 1;
    if (t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3] != 1 || (t->type != GGML_F32 && t->type != GGML_F16 && t->type != GGML_BF16))
        return bn_errf(c->err, "%s: tensor 'blk.%d.%s.scale' must be one F32/F16/BF16 value", c->path, layer, base);
    float s;
    bn_dequant_row(t->type, c->g->data + t->offset, &s, 1);
    w->scale *= s;
    if (w->block_scale)
        for (int64_t i = 0; i < w->rows * w->nblocks; i++) w->block_scale[i] *= s;
    return 1;
}

static int load_ternary(ctx *c, bn_model *m, int layer, const char *base, bn_ternary *w) {
    char fmt[96], name[96];
    snprintf(fmt, sizeof fmt, "blk.%%d.%s.weight", base);
    snprintf(name, sizeof name, fmt, layer);
    const bn_gguf_tensor *t = bn_gguf_tensor_find(c->g, name);
    if (!t) return bn_errf(c->err, "%s: missing tensor '%s'", c->path, name);
    if (t->n_dims != 2) return bn_errf(c->err, "%s: tensor '%s' must be 2-dimensional", c->path, name);
    int64_t cols = (int64_t)t->ne[0], rows = (int64_t)t->ne[1];
    const uint8_t *data = c->g->data + t->offset;
    char what[192];
    snprintf(what, sizeof what, "%s: tensor '%s'", c->path, name);
    int ok;
    switch (t->type) {
    case GGML_I2_S: ok = bn_ternary_from_i2s(w, data, rows, cols, what, c->err); break;
    case GGML_TQ1_0:
    case GGML_TQ2_0: ok = bn_ternary_from_tq(w, t->type, data, rows, cols, what, c->err); break;
    case GGML_F32:
    case GGML_F16:
    case GGML_BF16: ok = bn_ternary_from_ternary_floats(w, t->type, data, rows, cols, what, c->err); break;
    default:
        return bn_errf(c->err, "%s: tensor '%s' has type %s, which cannot hold ternary weights", c->path, name,
                       bn_ggml_type_name(t->type));
    }
    if (!ok) return 0;
    /* a repacked tensor's file pages are read once: drop them, or the
     * weights would count twice in the process's memory */
    if (w->owned) bn_model_drop_file_pages(m, data, t->nbytes);
    bn_model_count_type(m, bn_ggml_type_name(t->type));
    return apply_scale_tensor(c, w, base, layer);
}

static int load_dense(ctx *c, bn_model *m, const bn_gguf_tensor *t, const char *name, bn_dense *d) {
    if (t->n_dims != 2) return bn_errf(c->err, "%s: tensor '%s' must be 2-dimensional", c->path, name);
    if (!bn_dequant_supported(t->type))
        return bn_errf(c->err, "%s: tensor '%s' has type %s, not one of F32, F16, BF16, Q8_0, Q6_K, Q4_K", c->path,
                       name, bn_ggml_type_name(t->type));
    d->type = t->type;
    d->data = c->g->data + t->offset;
    d->cols = (int64_t)t->ne[0];
    d->rows = (int64_t)t->ne[1];
    d->row_bytes = bn_row_bytes(t->type, d->cols);
    bn_model_count_type(m, bn_ggml_type_name(t->type));
    return 1;
}

static int fill(ctx *c, bn_model *m) {
    const bn_gguf *g = c->g;
    bn_str a;
    if (bn_gguf_get_str(g, "general.architecture", &a) <= 0)
        return bn_errf(c->err, "%s: missing metadata 'general.architecture'", c->path);
    /* `llama`: ternary models without sub-norms (Falcon3, Llama3-1.58), as
     * the converters write them; non-ternary weights are refused below */
    if (!bn_str_eq(a, "bitnet") && !bn_str_eq(a, "bitnet-b1.58") && !bn_str_eq(a, "bitnet-25") && !bn_str_eq(a, "llama"))
        return bn_errf(c->err, "%s: architecture '%.*s' is not a BitNet architecture (bitnet, bitnet-b1.58, bitnet-25, llama)",
                       c->path, (int)(a.len > 40 ? 40 : a.len), a.ptr);
    snprintf(c->arch, sizeof c->arch, "%.*s", (int)a.len, a.ptr);
    snprintf(m->arch, sizeof m->arch, "%s", c->arch);
    bn_str name;
    if (bn_gguf_get_str(g, "general.name", &name) > 0 && name.len > 0)
        snprintf(m->name, sizeof m->name, "%.*s", (int)(name.len < sizeof m->name ? name.len : sizeof m->name - 1), name.ptr);
    bn_hparams *hp = &m->hp;
    int rope_dims = 0, key_len = 0;
    if (!get_u(c, "block_count", 1, 0, &hp->n_layers) || !get_u(c, "embedding_length", 1, 0, &hp->n_embd) ||
        !get_u(c, "feed_forward_length", 1, 0, &hp->n_ff) || !get_u(c, "attention.head_count", 1, 0, &hp->n_heads) ||
        !get_u(c, "context_length", 0, 2048, &hp->n_ctx_train) || !get_u(c, "vocab_size", 0, 0, &hp->n_vocab) ||
        !get_u(c, "rope.dimension_count", 0, 0, &rope_dims) || !get_u(c, "attention.key_length", 0, 0, &key_len) ||
        !get_f(c, "rope.freq_base", 10000.0, &hp->rope_theta) ||
        !get_f(c, "attention.layer_norm_rms_epsilon", 1e-5, &hp->norm_eps) || !read_activation(c, &hp->act))
        return 0;
    if (!get_u(c, "attention.head_count_kv", 0, hp->n_heads, &hp->n_kv_heads)) return 0;
    hp->head_dim = key_len;
    const bn_gguf_tensor *emb = bn_gguf_tensor_find(g, "token_embd.weight");
    if (!emb) return bn_errf(c->err, "%s: missing tensor 'token_embd.weight'", c->path);
    if (hp->n_vocab == 0 && emb->n_dims == 2) hp->n_vocab = (int)(emb->ne[1] > 0x7fffffff ? 0 : emb->ne[1]);
    if (!bn_hparams_check(hp, c->path, c->err)) return 0;
    if (rope_dims && rope_dims != hp->head_dim)
        return bn_errf(c->err, "%s: RoPE over %d of %d head dimensions is not supported", c->path, rope_dims, hp->head_dim);
    if (!load_dense(c, m, emb, "token_embd.weight", &m->tok_embd)) return 0;
    const bn_gguf_tensor *out = bn_gguf_tensor_find(g, "output.weight");
    if (out) {
        if (!load_dense(c, m, out, "output.weight", &m->output)) return 0;
    } else {
        m->output = m->tok_embd;
        m->tied = 1;
    }
    if (!load_vec(c, m, "output_norm.weight", 0, hp->n_embd, 1, &m->output_norm)) return 0;
    m->layers = bn_model_alloc(m, sizeof(bn_layer) * (size_t)hp->n_layers);
    if (!m->layers) return bn_errf(c->err, "%s: out of memory", c->path);
    memset(m->layers, 0, sizeof(bn_layer) * (size_t)hp->n_layers);
    int llama = strcmp(c->arch, "llama") == 0;
    for (int l = 0; l < hp->n_layers; l++) {
        bn_layer *L = &m->layers[l];
        if (!load_vec(c, m, "blk.%d.attn_norm.weight", l, hp->n_embd, 1, &L->attn_norm) ||
            !load_vec(c, m, "blk.%d.ffn_norm.weight", l, hp->n_embd, 1, &L->ffn_norm) ||
            !load_vec(c, m, "blk.%d.attn_sub_norm.weight", l, (int64_t)hp->n_heads * hp->head_dim, !llama, &L->attn_sub_norm) ||
            !load_vec(c, m, "blk.%d.ffn_sub_norm.weight", l, hp->n_ff, !llama, &L->ffn_sub_norm) ||
            !load_ternary(c, m, l, "attn_q", &L->wq) || !load_ternary(c, m, l, "attn_k", &L->wk) ||
            !load_ternary(c, m, l, "attn_v", &L->wv) || !load_ternary(c, m, l, "attn_output", &L->wo) ||
            !load_ternary(c, m, l, "ffn_gate", &L->wgate) || !load_ternary(c, m, l, "ffn_up", &L->wup) ||
            !load_ternary(c, m, l, "ffn_down", &L->wdown))
            return 0;
        /* llama's q/k rows are ordered for adjacent-pair RoPE; we rotate halves */
        if (llama && (!bn_ternary_from_pair_order(&L->wq, hp->n_heads, c->path, c->err) ||
                      !bn_ternary_from_pair_order(&L->wk, hp->n_kv_heads, c->path, c->err)))
            return 0;
    }
    bn_err model_err = {0};
    if (!bn_model_check(m, &model_err)) return bn_errf(c->err, "%s: %s", c->path, model_err.msg);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        m->n_params += (int64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    return 1;
}

static void load_tokenizer(ctx *c, bn_model *m) {
    bn_err terr = {0};
    m->tokenizer = bn_tokenizer_from_gguf(c->g, &terr);
    if (!m->tokenizer)
        snprintf(m->tokenizer_error, sizeof m->tokenizer_error, "%s", terr.msg[0] ? terr.msg : "the file has no tokenizer");
    bn_str tmpl;
    if (bn_gguf_get_str(c->g, "tokenizer.chat_template", &tmpl) > 0 && tmpl.len < (1u << 24)) {
        m->chat_template = bn_model_alloc(m, (size_t)tmpl.len + 1);
        if (m->chat_template) {
            memcpy(m->chat_template, tmpl.ptr, (size_t)tmpl.len);
            m->chat_template[tmpl.len] = 0;
        }
    }
}

bn_model *bn_model_load_gguf(const char *path, const bn_load_opts *opts, bn_err *err) {
    bn_model *m = bn_model_new();
    if (!m) {
        bn_errf(err, "%s: out of memory", path);
        return NULL;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    if (!m->name[0]) bn_model_default_name(m);
    snprintf(m->format, sizeof m->format, "gguf");
    if (!bn_mapfile_open(&m->maps[0], path, err)) {
        bn_model_release(m);
        return NULL;
    }
    m->n_maps = 1;
    m->file_size = m->maps[0].size;
    bn_gguf g;
    if (!bn_gguf_parse(&g, m->maps[0].data, m->maps[0].size, path, err)) {
        bn_model_release(m);
        return NULL;
    }
    ctx c = {&g, path, "", err};
    int ok = fill(&c, m);
    if (ok) load_tokenizer(&c, m);
    bn_gguf_free(&g);
    if (!ok) {
        bn_model_release(m);
        return NULL;
    }
    m->threads = opts ? opts->threads : 0;
    return m;
}
