/* model.h: one format-neutral description of a loaded BitNet model.
 * Every loader (GGUF, Hugging Face) fills this in; the forward pass reads
 * only this. Immutable after load and shared by reference count. */
#ifndef BN_MODEL_H
#define BN_MODEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "kernels/kernels.h"
#include "formats/mapfile.h"
#include "model/ternary.h"

typedef enum { BN_ACT_SILU = 0, BN_ACT_RELU2 = 1 } bn_activation;

typedef struct {
    int n_layers, n_embd, n_heads, n_kv_heads, head_dim, n_ff, n_vocab, n_ctx_train;
    float rope_theta, norm_eps;
    bn_activation act;
} bn_hparams;

/* A full-precision (or K-quant) matrix used row by row: embeddings and the
 * output head. Rows are decoded on use; data points into the file or owned. */
typedef struct {
    uint32_t type;        /* GGML_* */
    const uint8_t *data;
    int64_t rows, cols;
    size_t row_bytes;
} bn_dense;

typedef struct {
    float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm; /* sub-norms may be NULL */
    bn_ternary wq, wk, wv, wo, wgate, wup, wdown;
} bn_layer;

#define BN_MAX_MAPS 64
#define BN_MAX_TYPES 16

typedef struct bn_model {
    atomic_int refs;
    bn_hparams hp;
    char arch[32];       /* the architecture as the file names it */
    char format[32];     /* "gguf", "safetensors" */
    char path[1024];
    char name[128];      /* GGUF general.name, else the file or directory's base name */
    bn_dense tok_embd, output; /* output aliases tok_embd when tied */
    int tied;
    float *output_norm;
    bn_layer *layers;
    const bn_kernels *kern;
    struct bn_head_i8 *head_i8; /* int8 copy of the output head (head.h), or NULL */
    int threads;
    int default_n_ctx;       /* for sessions: 0 = the training context */
    uint64_t max_memory;     /* bound on one session's KV-cache, in bytes (bn_load_opts) */
    /* files kept mapped for the model's lifetime */
    bn_mapfile maps[BN_MAX_MAPS];
    int n_maps;
    /* heap blocks owned by the model (norms, repacked data) */
    void **allocs;
    size_t n_allocs, cap_allocs;
    /* for info(): tensor type name -> count */
    struct { const char *name; int count; } types[BN_MAX_TYPES];
    int n_types;
    int64_t n_params;
    size_t file_size;
    struct bn_tokenizer *tokenizer; /* NULL when the files carry none */
    char tokenizer_error[512];      /* why there is none */
    char *chat_template;            /* NUL-terminated, or NULL */
    /* The background engine (runtime/engine.h), started on first use and
     * stopped with the model: the model knows only how to stop it, so this
     * layer calls nothing above it. */
    pthread_mutex_t engine_lock;
    void *engine;
    void (*engine_stop)(void *engine);
    int64_t cache_id;        /* id in the process's model registry (model_cache.h); 0: not in it */
    void (*cache_forget)(struct bn_model *m); /* set by the registry: the last release calls it */
} bn_model;

/* Options a loader accepts (from bitnet.load's table). */
typedef struct {
    int threads;             /* 0: default */
    const char *kernel;      /* NULL: auto */
    const char *output_head; /* NULL or "native": as stored; "int8": an int8 copy (head.h) */
    int hugepages;           /* 1: copy the streamed weights to huge pages (hugepages.h) */
    const char *scale_convention; /* HF packed weights: NULL auto, "multiply", "divide" */
    uint64_t max_memory;     /* bytes a session's KV-cache may take; 0: the machine's physical memory */
} bn_load_opts;

bn_model *bn_model_new(void);
/* Tracks a heap block to free with the model; returns p, or NULL (and
 * frees p) when tracking fails. */
void *bn_model_own(bn_model *m, void *p);
void *bn_model_alloc(bn_model *m, size_t bytes);
void bn_model_count_type(bn_model *m, const char *type_name);
/* Sets m->name to the base name of m->path, without a .gguf extension. */
void bn_model_default_name(bn_model *m);
/* Checks hyperparameters for sanity and fills derived ones; names `what`. */
int bn_hparams_check(bn_hparams *hp, const char *what, bn_err *err);
/* Checks that every tensor the forward pass needs is present and shaped as
 * the hyperparameters say. */
int bn_model_check(const bn_model *m, bn_err *err);

void bn_model_retain(bn_model *m);
void bn_model_release(bn_model *m);


/* Decodes row `row` of a dense matrix into out (cols floats). */
void bn_dense_row(const bn_dense *d, int64_t row, float *out);

#endif
