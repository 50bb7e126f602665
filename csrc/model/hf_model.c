/* hf_model.c: fills a bn_model from a Hugging Face model directory:
 * config.json + model.safetensors (or shards listed by
 * model.safetensors.index.json), for the BitNet families REFERENCE.md
 * describes: BitNetForCausalLM (2B-4T), 1bitLLM's BitnetForCausalLM, and
 * LlamaForCausalLM with a bitnet quantization_config (Falcon3, Llama3-1.58).
 * Float masters are ternarized here with absmean; packed uint8 weights are
 * unpacked with the family's weight_scale convention. Embeddings and the
 * output head are used from the mapping. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/floatfmt.h"
#include "formats/gguf.h"
#include "formats/jsonfile.h"
#include "model/model.h"
#include "model/hf_model.h"
#include "formats/safetensors.h"
#include "tokenizer/tokenizer.h"

#define MAX_JSON_FILE ((long)64 << 20) /* config / index / tokenizer_config */

typedef enum { FAM_BITNET_2B, FAM_1BITLLM, FAM_LLAMA_BITNET } family;

typedef struct {
    const char *dir;
    bn_err *err;
    cJSON *config;
    bn_st_set st;
    family fam;
    const char *attn_sub, *ffn_sub; /* sub-norm tensor names (NULL: none) */
    int convention;                 /* 0 unknown, 1 multiply, -1 divide */
    char convention_why[160];       /* what decided it, or why it is unknown */
    const char *forced;             /* the scale_convention load option, or NULL */
} ctx;

/* Parses dir/name as a JSON object. Returns NULL when the file is absent
 * (*absent = 1) or broken (message set). */
static cJSON *read_json(ctx *c, const char *name, int *absent) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", c->dir, name);
    return bn_json_read_object(path, MAX_JSON_FILE, absent, c->err);
}

static int cfg_int(ctx *c, const char *key, int required, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->config, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return bn_errf(c->err, "%s/config.json: missing key '%s'", c->dir, key);
        *out = def;
        return 1;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
    if (!(d >= 0.0 && d <= 2147483647.0) || d != (double)(int)d)
        return bn_errf(c->err, "%s/config.json: '%s' must be a non-negative integer", c->dir, key);
    *out = (int)d;
    return 1;
}

static int cfg_float(ctx *c, const char *key, double def, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->config, key);
    if (!v || cJSON_IsNull(v)) {
        *out = (float)def;
        return 1;
    }
    if (!cJSON_IsNumber(v)) return bn_errf(c->err, "%s/config.json: '%s' must be a number", c->dir, key);
    *out = (float)v->valuedouble;
    return 1;
}

static const char *cfg_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The family from `architectures`, and everything it implies. */
static int read_family(ctx *c, bn_model *m) {
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(c->config, "architectures");
    if (!cJSON_IsArray(archs) || !cJSON_IsString(archs->child))
        return bn_errf(c->err, "%s/config.json: missing key 'architectures' (a list naming the model class)", c->dir);
    const char *arch = archs->child->valuestring;
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(c->config, "quantization_config");
    const char *qmethod = cJSON_IsObject(qc) ? cfg_str(qc, "quant_method") : NULL;
    if (strcmp(arch, "BitNetForCausalLM") == 0) {
        c->fam = FAM_BITNET_2B;
        c->attn_sub = "self_attn.attn_sub_norm";
        c->ffn_sub = "mlp.ffn_sub_norm";
    } else if (strcmp(arch, "BitnetForCausalLM") == 0) {
        c->fam = FAM_1BITLLM;
        c->attn_sub = "self_attn.inner_attn_ln";
        c->ffn_sub = "mlp.ffn_layernorm";
    } else if (strcmp(arch, "LlamaForCausalLM") == 0) {
        if (!qmethod || strcmp(qmethod, "bitnet") != 0)
            return bn_errf(c->err, "%s: LlamaForCausalLM without a bitnet quantization_config (quant_method is %s%s%s) "
                           "is not a BitNet model", c->dir, qmethod ? "'" : "", qmethod ? qmethod : "absent",
                           qmethod ? "'" : "");
        c->fam = FAM_LLAMA_BITNET;
    } else {
        return bn_errf(c->err, "%s: unknown architecture '%.64s' (supported: BitNetForCausalLM, BitnetForCausalLM, "
                       "LlamaForCausalLM with a bitnet quantization_config)", c->dir, arch);
    }
    /* The weight_scale convention of packed weights (REFERENCE.md): the
     * AutoBitLinear class multiplies, the BitLinear class divides. */
    const char *lc = cJSON_IsObject(qc) ? cfg_str(qc, "linear_class") : NULL;
    if (lc && strcmp(lc, "autobitlinear") == 0) {
        c->convention = 1;
        snprintf(c->convention_why, sizeof c->convention_why, "linear_class 'autobitlinear'");
    } else if (lc && strcmp(lc, "bitlinear") == 0) {
        c->convention = -1;
        snprintf(c->convention_why, sizeof c->convention_why, "linear_class 'bitlinear'");
    } else if (lc) {
        snprintf(c->convention_why, sizeof c->convention_why, "quantization_config.linear_class is '%.64s', unknown", lc);
    } else if (c->fam == FAM_LLAMA_BITNET) {
        c->convention = -1; /* Falcon3 / Llama3-1.58: BitLinear, no linear_class key */
        snprintf(c->convention_why, sizeof c->convention_why, "LlamaForCausalLM bitnet checkpoints divide");
    } else {
        snprintf(c->convention_why, sizeof c->convention_why, "config.json has no quantization_config.linear_class");
    }
    if (c->forced) { /* the user's word overrides the config */
        c->convention = strcmp(c->forced, "multiply") == 0 ? 1 : -1;
        snprintf(c->convention_why, sizeof c->convention_why, "scale_convention option");
    }
    return 1;
}

static int read_hparams(ctx *c, bn_model *m) {
    bn_hparams *hp = &m->hp;
    int head_dim = 0;
    if (!cfg_int(c, "num_hidden_layers", 1, 0, &hp->n_layers) || !cfg_int(c, "hidden_size", 1, 0, &hp->n_embd) ||
        !cfg_int(c, "intermediate_size", 1, 0, &hp->n_ff) || !cfg_int(c, "num_attention_heads", 1, 0, &hp->n_heads) ||
        !cfg_int(c, "vocab_size", 1, 0, &hp->n_vocab) ||
        !cfg_int(c, "num_key_value_heads", 0, hp->n_heads, &hp->n_kv_heads) ||
        !cfg_int(c, "max_position_embeddings", 0, 2048, &hp->n_ctx_train) ||
        !cfg_int(c, "head_dim", 0, 0, &head_dim) || !cfg_float(c, "rope_theta", 10000.0, &hp->rope_theta) ||
        !cfg_float(c, "rms_norm_eps", c->fam == FAM_LLAMA_BITNET ? 1e-6 : 1e-5, &hp->norm_eps))
        return 0;
    hp->head_dim = head_dim;
    /* scaled RoPE (llama3, yarn, ...) would change every angle: refused;
     * "default", or linear by a factor of 1, is plain RoPE */
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c->config, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        const char *rt = cJSON_IsObject(rs) ? cfg_str(rs, "rope_type") : NULL;
        if (!rt && cJSON_IsObject(rs)) rt = cfg_str(rs, "type");
        const cJSON *factor = cJSON_IsObject(rs) ? cJSON_GetObjectItemCaseSensitive(rs, "factor") : NULL;
        int plain = rt && (strcmp(rt, "default") == 0 ||
                           (strcmp(rt, "linear") == 0 && cJSON_IsNumber(factor) && factor->valuedouble == 1.0));
        if (!plain)
            return bn_errf(c->err, "%s/config.json: rope_scaling '%.32s' is not supported (only plain RoPE)", c->dir,
                           rt ? rt : "?");
    }
    const char *act = cfg_str(c->config, "hidden_act");
    if (!act) act = c->fam == FAM_BITNET_2B ? "relu2" : "silu";
    if (strcmp(act, "relu2") == 0) hp->act = BN_ACT_RELU2;
    else if (strcmp(act, "silu") == 0 || strcmp(act, "swish") == 0) hp->act = BN_ACT_SILU;
    else return bn_errf(c->err, "%s/config.json: unknown hidden_act '%.32s' (relu2 or silu)", c->dir, act);
    return bn_hparams_check(hp, c->dir, c->err);
}

/* Maps one safetensors file into the model and adds its tensors. */
static int add_file(ctx *c, bn_model *m, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", c->dir, name);
    if (m->n_maps >= BN_MAX_MAPS)
        return bn_errf(c->err, "%s: more than %d safetensors files", c->dir, BN_MAX_MAPS);
    if (!bn_mapfile_open(&m->maps[m->n_maps], path, c->err)) return 0;
    bn_mapfile *mf = &m->maps[m->n_maps++];
    m->file_size += mf->size;
    return bn_st_parse(&c->st, mf->data, mf->size, path, c->err);
}

/* model.safetensors, or the shards model.safetensors.index.json lists. */
static int open_weights(ctx *c, bn_model *m) {
    int absent;
    cJSON *idx = read_json(c, "model.safetensors.index.json", &absent);
    if (!idx && !absent) return 0;
    if (!idx) {
        char path[1200];
        struct stat st;
        snprintf(path, sizeof path, "%s/model.safetensors", c->dir);
        if (stat(path, &st) != 0) {
            snprintf(path, sizeof path, "%s/pytorch_model.bin", c->dir);
            if (stat(path, &st) == 0) /* a pickle: running it to read it is not safe */
                return bn_errf(c->err, "%s: only pytorch_model.bin (a PyTorch pickle) is here; save the weights as "
                               "safetensors first", c->dir);
            return bn_errf(c->err, "%s: no model.safetensors or model.safetensors.index.json in the directory", c->dir);
        }
        return add_file(c, m, "model.safetensors");
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    int ok = cJSON_IsObject(wm) ? 1
             : bn_errf(c->err, "%s/model.safetensors.index.json: missing key 'weight_map'", c->dir);
    /* each distinct shard once, in order of first mention */
    for (const cJSON *e = ok ? wm->child : NULL; e && ok; e = e->next) {
        if (!cJSON_IsString(e) || !e->string) {
            ok = bn_errf(c->err, "%s/model.safetensors.index.json: weight_map values must be file names", c->dir);
            break;
        }
        const char *f = e->valuestring;
        if (!*f || strchr(f, '/') || strcmp(f, "..") == 0 || strcmp(f, ".") == 0) {
            ok = bn_errf(c->err, "%s/model.safetensors.index.json: shard name '%.64s' is not a plain file name", c->dir, f);
            break;
        }
        int seen = 0; /* among the shards mapped so far (at most BN_MAX_MAPS) */
        for (size_t k = 0; k < c->st.n_files && !seen; k++) {
            const char *base = strrchr(c->st.files[k], '/');
            seen = strcmp(base ? base + 1 : c->st.files[k], f) == 0;
        }
        if (!seen) ok = add_file(c, m, f);
    }
    /* every tensor the index promises must be in the shard it names */
    for (const cJSON *e = ok ? wm->child : NULL; e && ok; e = e->next) {
        const bn_st_tensor *t = bn_st_find(&c->st, e->string);
        char want[1200];
        snprintf(want, sizeof want, "%s/%s", c->dir, e->valuestring);
        if (!t || strcmp(t->file, want) != 0)
            ok = bn_errf(c->err, "%s: the index puts tensor '%.96s' in %s, which does not hold it", c->dir, e->string,
                         e->valuestring);
    }
    cJSON_Delete(idx);
    return ok;
}

static uint32_t ggml_type_of(bn_st_dtype d) {
    return d == BN_ST_F32 ? GGML_F32 : d == BN_ST_F16 ? GGML_F16 : d == BN_ST_BF16 ? GGML_BF16 : UINT32_MAX;
}

static const bn_st_tensor *need(ctx *c, const char *name) {
    const bn_st_tensor *t = bn_st_find(&c->st, name);
    if (!t) bn_errf(c->err, "%s: missing tensor '%s'", c->dir, name);
    return t;
}

static int check_float(ctx *c, const bn_st_tensor *t) {
    if (ggml_type_of(t->dtype) == UINT32_MAX)
        return bn_errf(c->err, "%s: tensor '%s' is %s, expected F32, F16 or BF16", c->dir, t->name,
                       bn_st_dtype_name(t->dtype));
    return 1;
}

static int check_shape2(ctx *c, const bn_st_tensor *t, int64_t rows, int64_t cols) {
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        char got[64] = "";
        for (int d = 0; d < t->n_dims && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        return bn_errf(c->err, "%s: tensor '%s' has shape [%s], expected [%lld, %lld]", c->dir, t->name, got,
                       (long long)rows, (long long)cols);
    }
    return 1;
}

static int load_vec(ctx *c, bn_model *m, const char *name, int64_t n, float **out) {
    const bn_st_tensor *t = need(c, name);
    if (!t || !check_float(c, t)) return 0;
    if (t->n_dims != 1 || t->shape[0] != n)
        return bn_errf(c->err, "%s: tensor '%s' has %lld elements in %d dimensions, expected a vector of %lld", c->dir,
                       name, (long long)t->n_elems, t->n_dims, (long long)n);
    *out = bn_model_alloc(m, (size_t)n * sizeof(float));
    if (!*out) return bn_errf(c->err, "%s: out of memory", c->dir);
    bn_dequant_row(ggml_type_of(t->dtype), t->data, *out, n);
    bn_model_count_type(m, bn_st_dtype_name(t->dtype));
    return 1;
}

static int load_dense(ctx *c, bn_model *m, const char *name, int64_t rows, int64_t cols, bn_dense *d) {
    const bn_st_tensor *t = need(c, name);
    if (!t || !check_float(c, t) || !check_shape2(c, t, rows, cols)) return 0;
    d->type = ggml_type_of(t->dtype);
    d->data = t->data;
    d->rows = rows;
    d->cols = cols;
    d->row_bytes = (size_t)cols * bn_st_dtype_size(t->dtype);
    bn_model_count_type(m, bn_st_dtype_name(t->dtype));
    return 1;
}

/* Packed uint8 [out/4, in]: row k*P + p in bits 2k..2k+1 of packed[p],
 * code = value + 1; the effective weight is (code - 1) times or divided by
 * the single weight_scale. */
static int load_packed(ctx *c, const bn_st_tensor *t, const char *name, int64_t rows, int64_t cols, bn_ternary *w) {
    if (rows % 4) return bn_errf(c->err, "%s: tensor '%s' cannot be packed 4 rows a byte: %lld rows", c->dir, name, (long long)rows);
    if (!check_shape2(c, t, rows / 4, cols)) return 0;
    char sname[256];
    snprintf(sname, sizeof sname, "%s_scale", name);
    const bn_st_tensor *s = bn_st_find(&c->st, sname);
    if (!s) return bn_errf(c->err, "%s: packed tensor '%s' has no '%s'", c->dir, name, sname);
    if (!check_float(c, s)) return 0;
    if (s->n_elems != 1) return bn_errf(c->err, "%s: tensor '%s' must hold one value, not %lld", c->dir, sname, (long long)s->n_elems);
    float ws;
    bn_dequant_row(ggml_type_of(s->dtype), s->data, &ws, 1);
    if (!isfinite(ws) || ws <= 0.0f) return bn_errf(c->err, "%s: tensor '%s' is %g, not a positive number", c->dir, sname, (double)ws);
    if (!c->convention)
        return bn_errf(c->err, "%s: cannot tell whether weight_scale multiplies or divides the packed weights (%s); "
                       "load with scale_convention = \"multiply\" or \"divide\"", c->dir, c->convention_why);
    bn_err terr = {0};
    if (!bn_ternary_alloc(w, rows, cols, &terr)) return bn_errf(c->err, "%s: %s", c->dir, terr.msg);
    int8_t *row = malloc((size_t)cols);
    if (!row) return bn_errf(c->err, "%s: out of memory", c->dir);
    int64_t P = rows / 4;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *src = t->data + (size_t)(r % P) * (size_t)cols;
        int shift = 2 * (int)(r / P);
        for (int64_t i = 0; i < cols; i++) {
            int code = (src[i] >> shift) & 3;
            if (code == 3) {
                free(row);
                return bn_errf(c->err, "%s: tensor '%s' holds code 3 at row %lld column %lld (codes are 0, 1, 2)",
                               c->dir, name, (long long)r, (long long)i);
            }
            row[i] = (int8_t)(code - 1);
        }
        bn_ternary_set_row(w, r, row);
    }
    free(row);
    w->scale = c->convention > 0 ? ws : 1.0f / ws;
    return 1;
}

static int load_linear(ctx *c, bn_model *m, int layer, const char *base, int64_t rows, int64_t cols, bn_ternary *w) {
    char name[192];
    snprintf(name, sizeof name, "model.layers.%d.%s.weight", layer, base);
    const bn_st_tensor *t = need(c, name);
    if (!t) return 0;
    bn_model_count_type(m, bn_st_dtype_name(t->dtype));
    if (t->dtype == BN_ST_U8) return load_packed(c, t, name, rows, cols, w);
    if (!check_float(c, t) || !check_shape2(c, t, rows, cols)) return 0;
    char what[300];
    snprintf(what, sizeof what, "%s: tensor '%s'", c->dir, name);
    return bn_ternary_from_master(w, ggml_type_of(t->dtype), t->data, rows, cols, what, c->err);
}

static int load_layer(ctx *c, bn_model *m, int l) {
    const bn_hparams *hp = &m->hp;
    bn_layer *L = &m->layers[l];
    int64_t d = hp->n_embd, qd = (int64_t)hp->n_heads * hp->head_dim, kvd = (int64_t)hp->n_kv_heads * hp->head_dim;
    char name[192];
#define VEC(field, sub, n)                                                   \
    (snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, sub), load_vec(c, m, name, n, &L->field))
    if (!VEC(attn_norm, "input_layernorm", d) || !VEC(ffn_norm, "post_attention_layernorm", d)) return 0;
    if (c->attn_sub && (!VEC(attn_sub_norm, c->attn_sub, qd) || !VEC(ffn_sub_norm, c->ffn_sub, hp->n_ff))) return 0;
#undef VEC
    return load_linear(c, m, l, "self_attn.q_proj", qd, d, &L->wq) &&
           load_linear(c, m, l, "self_attn.k_proj", kvd, d, &L->wk) &&
           load_linear(c, m, l, "self_attn.v_proj", kvd, d, &L->wv) &&
           load_linear(c, m, l, "self_attn.o_proj", d, qd, &L->wo) &&
           load_linear(c, m, l, "mlp.gate_proj", hp->n_ff, d, &L->wgate) &&
           load_linear(c, m, l, "mlp.up_proj", hp->n_ff, d, &L->wup) &&
           load_linear(c, m, l, "mlp.down_proj", d, hp->n_ff, &L->wdown);
}

/* Biases would be silently dropped: BitNet checkpoints have none. */
static int refuse_biases(ctx *c) {
    for (size_t i = 0; i < c->st.n; i++) {
        const char *n = c->st.tensors[i].name;
        size_t len = strlen(n);
        if (len > 5 && strcmp(n + len - 5, ".bias") == 0)
            return bn_errf(c->err, "%s: tensor '%s' is a bias; BitNet models have none and it would be ignored", c->dir, n);
    }
    return 1;
}

static int fill(ctx *c, bn_model *m) {
    bn_hparams *hp = &m->hp;
    if (!read_family(c, m) || !read_hparams(c, m) || !open_weights(c, m) || !refuse_biases(c)) return 0;
    if (!load_dense(c, m, "model.embed_tokens.weight", hp->n_vocab, hp->n_embd, &m->tok_embd)) return 0;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c->config, "tie_word_embeddings");
    int has_head = bn_st_find(&c->st, "lm_head.weight") != NULL;
    m->tied = cJSON_IsBool(tie) ? cJSON_IsTrue(tie) : !has_head;
    if (m->tied) m->output = m->tok_embd;
    else if (!load_dense(c, m, "lm_head.weight", hp->n_vocab, hp->n_embd, &m->output)) return 0;
    if (!load_vec(c, m, "model.norm.weight", hp->n_embd, &m->output_norm)) return 0;
    m->layers = bn_model_alloc(m, sizeof(bn_layer) * (size_t)hp->n_layers);
    if (!m->layers) return bn_errf(c->err, "%s: out of memory", c->dir);
    memset(m->layers, 0, sizeof(bn_layer) * (size_t)hp->n_layers);
    for (int l = 0; l < hp->n_layers; l++)
        if (!load_layer(c, m, l)) return 0;
    bn_err model_err = {0};
    if (!bn_model_check(m, &model_err)) return bn_errf(c->err, "%s: %s", c->dir, model_err.msg);
    /* logical weights (packed ones count 4 a byte): norms, matrices, embeddings */
    int64_t norms = 2LL * hp->n_embd + (c->attn_sub ? (int64_t)hp->n_heads * hp->head_dim + hp->n_ff : 0);
    int64_t total = norms * hp->n_layers + hp->n_embd + (int64_t)hp->n_vocab * hp->n_embd * (m->tied ? 1 : 2);
    for (int l = 0; l < hp->n_layers; l++) {
        const bn_layer *L = &m->layers[l];
        const bn_ternary *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        for (int i = 0; i < 7; i++) total += ws[i]->rows * ws[i]->cols;
    }
    m->n_params = total;
    return 1;
}

/* tokenizer_config.json's chat_template: a string, or a list of
 * {name, template} from which the "default" one is taken. */
static void load_chat_template(ctx *c, bn_model *m) {
    int absent;
    bn_err ignored = {0};
    bn_err *saved = c->err;
    c->err = &ignored; /* a broken tokenizer_config.json does not fail the load */
    cJSON *tc = read_json(c, "tokenizer_config.json", &absent);
    c->err = saved;
    if (!tc) return;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(tc, "chat_template");
    const char *tmpl = cJSON_IsString(t) ? t->valuestring : NULL;
    if (cJSON_IsArray(t))
        for (const cJSON *e = t->child; e; e = e->next) {
            const char *name = cfg_str(e, "name"), *body = cfg_str(e, "template");
            if (name && body && strcmp(name, "default") == 0) tmpl = body;
        }
    if (tmpl) {
        size_t n = strlen(tmpl);
        m->chat_template = bn_model_alloc(m, n + 1);
        if (m->chat_template) memcpy(m->chat_template, tmpl, n + 1);
    }
    cJSON_Delete(tc);
}

static void load_tokenizer(ctx *c, bn_model *m) {
    char tok[1200], cfg[1200];
    struct stat st;
    snprintf(tok, sizeof tok, "%s/tokenizer.json", c->dir);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", c->dir);
    load_chat_template(c, m);
    if (stat(tok, &st) != 0) {
        snprintf(m->tokenizer_error, sizeof m->tokenizer_error, "%s: the directory has no tokenizer.json", c->dir);
        return;
    }
    bn_err terr = {0};
    m->tokenizer = bn_tokenizer_from_hf(tok, stat(cfg, &st) == 0 ? cfg : NULL, &terr);
    if (!m->tokenizer)
        snprintf(m->tokenizer_error, sizeof m->tokenizer_error, "%s", terr.msg[0] ? terr.msg : "tokenizer.json could not be read");
}

bn_model *bn_model_load_hf(const char *dir, const bn_load_opts *opts, bn_err *err) {
    bn_model *m = bn_model_new();
    if (!m) {
        bn_errf(err, "%s: out of memory", dir);
        return NULL;
    }
    if (strlen(dir) >= sizeof m->path - 64) { /* room for "/model-00001-of-00002.safetensors" */
        bn_errf(err, "%.64s...: path too long", dir);
        bn_model_release(m);
        return NULL;
    }
    snprintf(m->path, sizeof m->path, "%s", dir);
    for (size_t n = strlen(m->path); n > 1 && m->path[n - 1] == '/'; n--) m->path[n - 1] = 0; /* "dir/" */
    bn_model_default_name(m);
    snprintf(m->format, sizeof m->format, "safetensors");
    ctx c = {0};
    c.dir = m->path;
    c.err = err;
    int absent;
    c.config = read_json(&c, "config.json", &absent);
    if (!c.config && absent) bn_errf(err, "%s: no config.json in the directory", dir);
    c.forced = opts ? opts->scale_convention : NULL;
    int ok = c.config != NULL && fill(&c, m);
    if (ok) load_tokenizer(&c, m);
    bn_st_free(&c.st);
    cJSON_Delete(c.config);
    if (!ok) {
        bn_model_release(m);
        return NULL;
    }
    m->threads = opts ? opts->threads : 0;
    return m;
}
