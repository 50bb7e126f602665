/* session.h: one inference context: a KV-cache, a position, scratch
 * buffers, a thread pool and the last logits. Used by one thread at a time;
 * holds a model reference. */
#ifndef BN_SESSION_H
#define BN_SESSION_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "model/model.h"

#define BN_BATCH 32 /* tokens per logits chunk for callers that want all logits */
#define BN_CHUNK 64 /* tokens per forward chunk: prefill multiplies this many at once */

struct bn_pool;

typedef struct {
    int n_ctx;  /* 0: the model's default context (or its training context) */
    int kv_f16; /* store the KV-cache as f16 (half the memory and bandwidth) */
} bn_session_opts;

/* Scratch and threads for one forward pass of at most BN_CHUNK rows. A
 * session makes its own on its first evaluation; the engine (engine.h) has
 * one for the batches it builds from many sessions. Sized for sessions of
 * at most max_ctx positions (bn_work_fit grows it). */
typedef struct bn_work {
    const bn_model *model;
    struct bn_pool *pool;     /* started by the first pass big enough to share */
    int threads;              /* threads a pass may use */
    int max_ctx;              /* positions the scores scratch covers */
    float *x, *y, *q, *k, *v, *att, *gate, *up, *rope, *act_scale, *tmp, *scores;
    /* prompt attention in units of one KV head's queries for a few tokens
     * (forward.c): at most attn_group queries (at most 64; 1 when a KV head
     * has more query heads, which then go one by one), their vectors and
     * outputs gathered per thread in attn_q / attn_o, their scores in
     * scores (attn_group rows of scores_stride per thread) */
    int attn_group;
    float *attn_q, *attn_o;
    int8_t *qa;               /* quantized activations, BN_CHUNK rows of qa_stride */
    int16_t *xq;              /* a Q6_K head's activations, BN_CHUNK rows of n_embd, */
    float *xd;                /* and their block scales, rows of xd_stride (NULL for other heads) */
    int64_t xd_stride;
    int32_t *acc;             /* BN_CHUNK rows of acc_stride integer sums */
    void *head_scratch;       /* per thread, bn_head_scratch_bytes each */
    int64_t qa_stride, acc_stride, tmp_stride, scores_stride;
    size_t head_scratch_bytes;
} bn_work;

typedef struct bn_session {
    bn_model *model;
    atomic_int refs;          /* the Lua handle and an engine request may share it */
    atomic_int busy;          /* one user at a time: an evaluation or the engine */
    int n_ctx, pos;
    /* KV-cache, per layer and KV head: K in tiles of BN_KV_TILE positions
     * ([tile][head_dim][BN_KV_TILE], so attention reads many positions per
     * vector load), V as [position][head_dim]; f32, or f16 when kv_f16. */
    int kv_f16;
    void *kcache, *vcache;
    size_t kv_head_elems;     /* elements per (layer, KV head) region */
    int32_t *tokens;          /* n_ctx: the token at each position held */
    float *logits;            /* n_vocab: logits after the last token fed */
    int have_logits;
    /* numerical-sensitivity probe: input embeddings are scaled by
     * (1 + jitter * u), u in [-1, 1) from a hash of (seed, position, index) */
    float jitter;
    uint64_t jitter_seed;
    int threads;              /* threads the session's own evaluations use */
    bn_work *work;            /* made by the first bn_session_eval */
} bn_session;

/* One token of a forward pass: whose KV-cache it reads and writes, at which
 * position, where its logits go (NULL: not wanted) and its final hidden state
 * (embeddings; NULL: not wanted). A pass may hold rows
 * of many sessions; one session's rows must be consecutive, at consecutive
 * positions, and its earlier positions already in its cache. */
typedef struct {
    bn_session *s;
    int32_t id;
    int pos;
    float *logits;
    float *hidden; /* NULL, or n_embd floats: the final hidden state after the output norm */
} bn_row;

/* Scratch for passes over sessions of up to max_ctx positions, run on up to
 * `threads` threads. NULL with a message when memory runs out. */
bn_work *bn_work_new(const bn_model *m, int max_ctx, int threads, bn_err *err);
/* Grows the scratch for sessions of max_ctx positions; -1 when out of memory. */
int bn_work_fit(bn_work *w, int max_ctx);
void bn_work_free(bn_work *w);

/* Runs the transformer over n rows (1 <= n <= BN_CHUNK, every row valid and
 * its position within its session's context): writes each row's K and V
 * into its session's cache and the logits of the rows that want them. Each
 * row's arithmetic is the same whatever the other rows are, so a batch of
 * many sessions gives each the bits it would get alone. */
void bn_forward(bn_work *w, const bn_row *rows, int n);

/* Creates a session (see bn_session_opts; NULL opts: defaults) with its own
 * KV-cache and threads (the model's thread count). Takes a model reference. */
bn_session *bn_session_open(bn_model *m, const bn_session_opts *opts, bn_err *err);
/* The same with an f32 KV-cache of n_ctx positions. */
bn_session *bn_session_new(bn_model *m, int n_ctx, bn_err *err);
/* Drops one reference; the last frees the session (and its model reference). */
void bn_session_free(bn_session *s);
void bn_session_retain(bn_session *s);
/* Claims the session for one user (0), or -1 when another holds it. */
int bn_session_claim(bn_session *s);
void bn_session_unclaim(bn_session *s);

/* Evaluates n tokens after the current position. Ids must be valid and fit
 * in the context (the caller checks). If all_logits is not NULL it receives
 * n * n_vocab logits, one row per token fed; the last row is always kept in
 * s->logits. A prompt is evaluated BN_CHUNK tokens at a time, every weight
 * block meeting all of a chunk's tokens at once; the results are the same
 * bits as feeding the tokens one by one. The session's scratch is made on
 * the first call: -1 when memory for it runs out (nothing fed), else 0. */
int bn_session_eval(bn_session *s, const int32_t *ids, int n, float *all_logits);

/* Makes dst hold src's first n positions (tokens and KV-cache; the logits
 * too when n is all src holds), so n sequences can share one evaluated
 * prompt. -1 (nothing done) unless both are of one model and KV type,
 * n <= src's position and n fits dst. Neither may be in use elsewhere. */
int bn_session_copy_prefix(bn_session *dst, const bn_session *src, int n);

/* Drops everything after position n (0 <= n <= pos); logits become stale. */
void bn_session_rewind(bn_session *s, int n);

/* Context shift (kv_shift.c): drops positions keep..keep+n-1, moves the
 * later ones down by n with their keys re-rotated to their new positions;
 * logits become stale. -1 (nothing done) unless 0 <= keep, 1 <= n and
 * keep + n <= pos. */
int bn_session_shift(bn_session *s, int keep, int n);
/* K (v = 0) or V (v = 1) of (layer l, KV head h) at position pos as floats
 * (head_dim of them), for inspection. */
void bn_session_kv_read(const bn_session *s, int v, int l, int h, int pos, float *out);

/* Elements of (layer l, KV head h)'s K or V region (see kv_head_elems). */
void *bn_session_kv(const bn_session *s, int v, int l, int h);

#endif
