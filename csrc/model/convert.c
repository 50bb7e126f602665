#include "model/convert.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/encode.h"
#include "formats/floatfmt.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "tokenizer/hf_vocab.h"
#include "model/rope_order.h"

typedef enum { JOB_VEC, JOB_DENSE, JOB_TERNARY } job_kind;

/* One output tensor: what it is, where it comes from, how it is written. */
typedef struct {
    char name[64];
    job_kind kind;
    const float *vec;       /* JOB_VEC: n floats */
    const bn_dense *dense;  /* JOB_DENSE */
    const bn_ternary *t;    /* JOB_TERNARY */
    int permute_heads;      /* JOB_TERNARY: llama q/k row order, head count (0: none) */
    int64_t rows, cols;
    uint32_t type;
    uint64_t nbytes;
} job;

typedef struct {
    const bn_model *m;
    const bn_convert_opts *o;
    bn_err *err;
    job *jobs;
    int n_jobs;
    const char *arch;
    int llama;              /* no sub-norms: arch llama */
} conv;

const char *bn_convert_arch(const bn_model *m, uint32_t linear_type) {
    if (!m->layers[0].attn_sub_norm) return "llama";
    if (linear_type == GGML_I2_S && m->hp.act == BN_ACT_RELU2) return "bitnet-b1.58";
    return "bitnet";
}

static uint32_t file_type_of(uint32_t linear_type) {
    switch (linear_type) {
    case GGML_F16: return 1;
    case GGML_TQ1_0: return 36; /* LLAMA_FTYPE_MOSTLY_TQ1_0 */
    case GGML_TQ2_0: return 37;
    case GGML_I2_S: return 40;  /* bitnet.cpp's MOSTLY_I2_S */
    default: return 0;
    }
}

static uint32_t block_of(uint32_t type) {
    switch (type) {
    case GGML_I2_S: return 128;
    case GGML_TQ1_0: case GGML_TQ2_0: case GGML_Q6_K: case GGML_Q4_K: return 256;
    case GGML_Q8_0: return 32;
    default: return 1;
    }
}

static uint64_t ternary_bytes(uint32_t type, int64_t rows, int64_t cols) {
    switch (type) {
    case GGML_I2_S: return (uint64_t)(rows * cols / 4) + 32; /* codes, f32 scale, padding */
    case GGML_F32: return (uint64_t)(rows * cols) * 4;
    case GGML_F16: return (uint64_t)(rows * cols) * 2;
    default: return (uint64_t)rows * bn_row_bytes(type, cols);
    }
}

/* Per-block scales (TQ sources whose blocks differ) survive only in TQ
 * types, and only when both 128-halves of each 256-block agree. */
static int check_block_scales(conv *c, const job *j) {
    const bn_ternary *t = j->t;
    if (!t->block_scale) return 1;
    if (j->type != GGML_TQ1_0 && j->type != GGML_TQ2_0)
        return bn_errf(c->err, "tensor '%s' has a scale per block; %s holds one scale per tensor (convert to tq1_0 or tq2_0)",
                       j->name, bn_ggml_type_name(j->type));
    for (int64_t r = 0; r < t->rows; r++)
        for (int b = 0; b + 1 < t->nblocks; b += 2)
            if (t->block_scale[r * t->nblocks + b] != t->block_scale[r * t->nblocks + b + 1])
                return bn_errf(c->err, "tensor '%s' has different scales within one 256-weight block", j->name);
    return 1;
}

static int scale_fits(conv *c, const job *j, float s) {
    if ((j->type == GGML_F16 || j->type == GGML_TQ1_0 || j->type == GGML_TQ2_0) && s != 0.0f &&
        !(fabsf(s) >= 6.1035156e-05f && fabsf(s) <= 65504.0f))
        return bn_errf(c->err, "tensor '%s': scale %g is outside the range of the fp16 %s stores", j->name, (double)s,
                       bn_ggml_type_name(j->type));
    return 1;
}

static int add_ternary(conv *c, const char *name, const bn_ternary *t, int permute_heads) {
    job *j = &c->jobs[c->n_jobs];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->kind = JOB_TERNARY;
    j->t = t;
    j->permute_heads = permute_heads;
    j->rows = t->rows;
    j->cols = t->cols;
    j->type = c->o->linear_type;
    if (t->cols % block_of(j->type)) {
        if (c->o->fallback_type == BN_CONVERT_NONE)
            return bn_errf(c->err, "tensor '%s' has rows of %lld weights; %s needs a multiple of %u (fallback = \"f16\" "
                           "writes such tensors as F16)", name, (long long)t->cols, bn_ggml_type_name(j->type),
                           block_of(j->type));
        j->type = c->o->fallback_type;
    }
    if (!check_block_scales(c, j) || !scale_fits(c, j, t->scale)) return 0;
    if (t->block_scale)
        for (int64_t i = 0; i < t->rows * t->nblocks; i++)
            if (!scale_fits(c, j, t->block_scale[i])) return 0;
    j->nbytes = ternary_bytes(j->type, j->rows, j->cols);
    c->n_jobs++;
    return 1;
}

static int add_vec(conv *c, const char *name, const float *v, int64_t n) {
    job *j = &c->jobs[c->n_jobs++];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->kind = JOB_VEC;
    j->vec = v;
    j->rows = 1;
    j->cols = n;
    j->type = GGML_F32;
    j->nbytes = (uint64_t)n * 4;
    return 1;
}

static int add_dense(conv *c, const char *name, const bn_dense *d) {
    job *j = &c->jobs[c->n_jobs];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->kind = JOB_DENSE;
    j->dense = d;
    j->rows = d->rows;
    j->cols = d->cols;
    j->type = c->o->embd_type == BN_CONVERT_KEEP ? d->type : c->o->embd_type;
    if (j->type != d->type && !bn_encode_supported(j->type))
        return bn_errf(c->err, "tensor '%s': cannot write type %s", name, bn_ggml_type_name(j->type));
    if (d->cols % block_of(j->type))
        return bn_errf(c->err, "tensor '%s' has rows of %lld values; %s needs a multiple of %u", name,
                       (long long)d->cols, bn_ggml_type_name(j->type), block_of(j->type));
    j->nbytes = (uint64_t)d->rows * bn_row_bytes(j->type, d->cols);
    c->n_jobs++;
    return 1;
}

static int plan(conv *c) {
    const bn_model *m = c->m;
    const bn_hparams *hp = &m->hp;
    for (int l = 0; l < hp->n_layers; l++)
        if (!m->layers[l].attn_sub_norm != !m->layers[0].attn_sub_norm ||
            !m->layers[l].ffn_sub_norm != !m->layers[0].attn_sub_norm)
            return bn_errf(c->err, "layer %d has sub-norms where layer 0 has not (or the reverse)", l);
    c->arch = bn_convert_arch(m, c->o->linear_type);
    c->llama = strcmp(c->arch, "llama") == 0;
    if (c->llama && hp->act != BN_ACT_SILU) /* llama's FFN is SwiGLU: relu2 would be lost */
        return bn_errf(c->err, "a squared-ReLU model without sub-norms has no GGUF architecture that keeps its activation");
    c->jobs = calloc((size_t)hp->n_layers * 11 + 3, sizeof *c->jobs);
    if (!c->jobs) return bn_errf(c->err, "out of memory");
    if (!add_dense(c, "token_embd.weight", &m->tok_embd) || !add_vec(c, "output_norm.weight", m->output_norm, hp->n_embd))
        return 0;
    if (!m->tied && !add_dense(c, "output.weight", &m->output)) return 0;
    for (int l = 0; l < hp->n_layers; l++) {
        const bn_layer *L = &m->layers[l];
        char n[64];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s.weight", l, s), n)
        int qd = hp->n_heads * hp->head_dim;
        if (!add_vec(c, NAME("attn_norm"), L->attn_norm, hp->n_embd) ||
            !add_ternary(c, NAME("attn_q"), &L->wq, c->llama ? hp->n_heads : 0) ||
            !add_ternary(c, NAME("attn_k"), &L->wk, c->llama ? hp->n_kv_heads : 0) ||
            !add_ternary(c, NAME("attn_v"), &L->wv, 0) || !add_ternary(c, NAME("attn_output"), &L->wo, 0) ||
            (L->attn_sub_norm && !add_vec(c, NAME("attn_sub_norm"), L->attn_sub_norm, qd)) ||
            !add_vec(c, NAME("ffn_norm"), L->ffn_norm, hp->n_embd) || !add_ternary(c, NAME("ffn_gate"), &L->wgate, 0) ||
            !add_ternary(c, NAME("ffn_up"), &L->wup, 0) || !add_ternary(c, NAME("ffn_down"), &L->wdown, 0) ||
            (L->ffn_sub_norm && !add_vec(c, NAME("ffn_sub_norm"), L->ffn_sub_norm, hp->n_ff)))
            return 0;
#undef NAME
    }
    return 1;
}

/* The file's overall type: the linear type when every ternary tensor has it. */
static uint32_t overall_type(const conv *c) {
    for (int i = 0; i < c->n_jobs; i++)
        if (c->jobs[i].kind == JOB_TERNARY && c->jobs[i].type != c->o->linear_type) return c->jobs[i].type;
    return c->o->linear_type;
}

static int write_metadata(conv *c, bn_gguf_writer *w) {
    const bn_model *m = c->m;
    const bn_hparams *hp = &m->hp;
    bn_err *e = c->err;
    char k[96];
    const char *a = c->arch;
    const char *base = strrchr(m->path, '/');
    base = base && base[1] ? base + 1 : m->path;
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    if (!bn_gw_set_str(w, "general.architecture", a, e) || !bn_gw_set_str(w, "general.name", base, e) ||
        !bn_gw_set_u32(w, "general.file_type", file_type_of(overall_type(c)), e) ||
        !bn_gw_set_u32(w, "general.quantization_version", 2, e) ||
        !bn_gw_set_u32(w, KEY("vocab_size"), (uint32_t)hp->n_vocab, e) ||
        !bn_gw_set_u32(w, KEY("context_length"), (uint32_t)hp->n_ctx_train, e) ||
        !bn_gw_set_u32(w, KEY("embedding_length"), (uint32_t)hp->n_embd, e) ||
        !bn_gw_set_u32(w, KEY("feed_forward_length"), (uint32_t)hp->n_ff, e) ||
        !bn_gw_set_u32(w, KEY("block_count"), (uint32_t)hp->n_layers, e) ||
        !bn_gw_set_u32(w, KEY("attention.head_count"), (uint32_t)hp->n_heads, e) ||
        !bn_gw_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)hp->n_kv_heads, e) ||
        !bn_gw_set_u32(w, KEY("attention.key_length"), (uint32_t)hp->head_dim, e) ||
        !bn_gw_set_u32(w, KEY("attention.value_length"), (uint32_t)hp->head_dim, e) ||
        !bn_gw_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->head_dim, e) ||
        !bn_gw_set_f32(w, KEY("rope.freq_base"), hp->rope_theta, e) ||
        !bn_gw_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), hp->norm_eps, e))
        return 0;
    /* upstream llama.cpp's bitnet assumes SiLU unless told; bitnet-b1.58 is relu2 */
    if (strcmp(a, "bitnet") == 0 && hp->act == BN_ACT_RELU2 && !bn_gw_set_str(w, KEY("hidden_activation"), "relu2", e))
        return 0;
#undef KEY
    if (strcmp(m->format, "gguf") == 0) { /* the source's tokenizer.* keys, verbatim */
        bn_gguf g;
        if (!bn_gguf_parse(&g, m->maps[0].data, m->maps[0].size, m->path, e)) return 0;
        int ok = 1;
        for (uint64_t i = 0; i < g.n_kv && ok; i++)
            if (g.kv[i].key.len > 10 && memcmp(g.kv[i].key.ptr, "tokenizer.", 10) == 0) ok = bn_gw_copy_kv(w, &g, &g.kv[i], e);
        bn_gguf_free(&g);
        return ok;
    }
    if (!bn_hf_vocab_to_gguf(m->path, hp->n_vocab, w, e)) return 0;
    if (m->chat_template && !bn_gw_set_str(w, "tokenizer.chat_template", m->chat_template, e)) return 0;
    return 1;
}

/* The source row a written row comes from: llama.cpp's converter orders
 * each head's rows (2, hd/2) -> (hd/2, 2) for adjacent-pair RoPE. */
static int64_t source_row(const job *j, int64_t r) {
    return j->permute_heads ? bn_rope_half_row(r, j->rows / j->permute_heads) : r;
}

static float row_scale(const bn_ternary *t, int64_t r, int b) {
    return t->block_scale ? t->block_scale[r * t->nblocks + b] : t->scale;
}

static int write_ternary(conv *c, bn_gguf_writer *w, const job *j, uint8_t *buf, int8_t *vals, float *fbuf) {
    const bn_ternary *t = j->t;
    bn_err *e = c->err;
    if (j->type == GGML_I2_S) { /* our layout: rows of codes, then the f32 scale and padding */
        uint8_t tail[32] = {0};
        memcpy(tail, &t->scale, 4);
        for (int64_t r = 0; r < j->rows; r++)
            if (!bn_gw_write(w, t->codes + (size_t)source_row(j, r) * t->row_bytes, (size_t)(j->cols / 4), e)) return 0;
        return bn_gw_write(w, tail, sizeof tail, e);
    }
    for (int64_t r = 0; r < j->rows; r++) {
        int64_t sr = source_row(j, r);
        bn_ternary_get_row(t, sr, vals);
        size_t n;
        if (j->type == GGML_TQ1_0 || j->type == GGML_TQ2_0) {
            for (int64_t b = 0; b < j->cols / 256; b++) fbuf[b] = row_scale(t, sr, (int)(2 * b));
            bn_encode_tq_row(j->type, vals, fbuf, j->cols, buf);
            n = bn_row_bytes(j->type, j->cols);
        } else {
            for (int64_t i = 0; i < j->cols; i++) fbuf[i] = (float)vals[i] * t->scale;
            bn_encode_row(j->type, fbuf, j->cols, buf);
            n = (size_t)j->cols * (j->type == GGML_F32 ? 4 : 2);
        }
        if (!bn_gw_write(w, buf, n, e)) return 0;
    }
    return 1;
}

static int write_dense(conv *c, bn_gguf_writer *w, const job *j, uint8_t *buf, float *fbuf) {
    const bn_dense *d = j->dense;
    if (j->type == d->type) /* same type: the bytes as they are */
        return bn_gw_write(w, d->data, d->row_bytes * (size_t)d->rows, c->err);
    size_t n = bn_row_bytes(j->type, d->cols);
    for (int64_t r = 0; r < d->rows; r++) {
        bn_dense_row(d, r, fbuf);
        bn_encode_row(j->type, fbuf, d->cols, buf);
        if (!bn_gw_write(w, buf, n, c->err)) return 0;
    }
    return 1;
}

static int write_all(conv *c, FILE *f, const char *part) {
    bn_gguf_writer *w = bn_gw_new(32);
    if (!w) return bn_errf(c->err, "out of memory");
    int ok = write_metadata(c, w);
    for (int i = 0; i < c->n_jobs && ok; i++) {
        const job *j = &c->jobs[i];
        uint64_t ne[2] = {(uint64_t)j->cols, (uint64_t)j->rows};
        ok = bn_gw_add_tensor(w, j->name, j->type, j->kind == JOB_VEC ? 1 : 2, ne, j->nbytes, c->err);
    }
    ok = ok && bn_gw_begin(w, f, part, c->err);
    int64_t widest = 0;
    for (int i = 0; i < c->n_jobs; i++) widest = c->jobs[i].cols > widest ? c->jobs[i].cols : widest;
    uint8_t *buf = malloc((size_t)widest * 4 + 64);
    int8_t *vals = malloc((size_t)widest + 1);
    float *fbuf = malloc((size_t)widest * sizeof(float) + 4);
    if (ok && (!buf || !vals || !fbuf)) ok = bn_errf(c->err, "out of memory");
    for (int i = 0; i < c->n_jobs && ok; i++) {
        const job *j = &c->jobs[i];
        if (j->kind == JOB_VEC) ok = bn_gw_write(w, j->vec, (size_t)j->cols * 4, c->err);
        else if (j->kind == JOB_DENSE) ok = write_dense(c, w, j, buf, fbuf);
        else ok = write_ternary(c, w, j, buf, vals, fbuf);
        if (ok && c->o->progress && !c->o->progress(c->o->progress_ud, i + 1, c->n_jobs))
            ok = bn_errf(c->err, "cancelled");
    }
    ok = ok && bn_gw_finish(w, c->err);
    free(buf);
    free(vals);
    free(fbuf);
    bn_gw_free(w);
    return ok;
}

int bn_convert_model(const bn_model *m, const char *dst, const bn_convert_opts *o, bn_err *err) {
    uint32_t lt = o->linear_type;
    if (lt != GGML_I2_S && lt != GGML_TQ1_0 && lt != GGML_TQ2_0 && lt != GGML_F16 && lt != GGML_F32)
        return bn_errf(err, "cannot write linear weights as type %s", bn_ggml_type_name(lt) ? bn_ggml_type_name(lt) : "?");
    conv c = {m, o, err, NULL, 0, NULL, 0};
    if (!plan(&c)) {
        free(c.jobs);
        return 0;
    }
    char part[1100];
    if (snprintf(part, sizeof part, "%s.part", dst) >= (int)sizeof part) {
        free(c.jobs);
        return bn_errf(err, "%s: path too long", dst);
    }
    FILE *f = fopen(part, "wb");
    if (!f) {
        free(c.jobs);
        return bn_errf(err, "%s: cannot create: %s", part, strerror(errno));
    }
    int ok = write_all(&c, f, part);
    if (fclose(f) != 0 && ok) ok = bn_errf(err, "%s: write failed: %s", part, strerror(errno));
    if (ok && rename(part, dst) != 0) ok = bn_errf(err, "%s: cannot rename to %s: %s", part, dst, strerror(errno));
    if (!ok) remove(part);
    free(c.jobs);
    return ok;
}
