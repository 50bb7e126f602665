/* session.h: one inference context: a KV-cache, a position, scratch
 * buffers and the last logits. Single-threaded; holds a model reference. */
#ifndef BN_SESSION_H
#define BN_SESSION_H

#include <stdint.h>

#include "errbuf.h"
#include "model.h"

#define BN_BATCH 32 /* tokens per forward chunk in prefill */

typedef struct bn_session {
    bn_model *model;
    int n_ctx, pos;
    float *kcache, *vcache;   /* [layer][kv_head][n_ctx][head_dim] */
    float *logits;            /* n_vocab: logits after the last token fed */
    int have_logits;
    /* numerical-sensitivity probe: input embeddings are scaled by
     * (1 + jitter * u), u in [-1, 1) from a hash of (seed, position, index) */
    float jitter;
    uint64_t jitter_seed;
    /* scratch, sized for BN_BATCH tokens */
    float *x, *xn, *q, *k, *v, *att_out, *gate, *up, *scores, *rope;
    int8_t *qa;               /* quantized activations, padded to blocks */
    int32_t *acc;
    int64_t qa_stride;
} bn_session;

/* Creates a session with room for n_ctx positions (0: the model's
 * training context). Takes a model reference. */
bn_session *bn_session_new(bn_model *m, int n_ctx, bn_err *err);
void bn_session_free(bn_session *s);

/* Evaluates n tokens after the current position. Ids must be valid and fit
 * in the context (the caller checks). If all_logits is not NULL it receives
 * n * n_vocab logits, one row per token fed; the last row is always kept in
 * s->logits. */
void bn_session_eval(bn_session *s, const int32_t *ids, int n, float *all_logits);

/* Drops everything after position n (0 <= n <= pos); logits become stale. */
void bn_session_rewind(bn_session *s, int n);

#endif
