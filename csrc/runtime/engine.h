/* engine.h: the background engine. One thread per model advances every
 * running generation (a job) together: each step is one forward pass whose
 * rows are the next token of every decoding job plus a chunk of a waiting
 * prompt (continuous batching), so B streams cost about one pass over the
 * weights instead of B. Each job's tokens are the ones it would get alone.
 *
 * Threads: the engine thread runs the passes and the samplers; a host
 * thread starts jobs, polls them (never waiting), cancels and frees them.
 * The engine never frees a job, a session or the model: a job belongs to
 * whoever started it, and freeing it waits at most for the step running. */
#ifndef BN_ENGINE_H
#define BN_ENGINE_H

#include <stdint.h>

#include "base/errbuf.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

typedef enum { BN_JOB_RUNNING = 0, BN_JOB_STOP, BN_JOB_LENGTH, BN_JOB_CANCELLED, BN_JOB_ERROR } bn_job_end;

typedef struct {
    int max_tokens;
    /* speculative decoding by prompt lookup: draft up to n_draft tokens
     * that followed the last `ngram` tokens earlier in the text; 0: off */
    int n_draft, ngram;
    /* context shift: when the context is full, keep the first `keep`
     * positions, drop half of the rest (bn_session_shift) and go on;
     * 0: the job ends with BN_JOB_LENGTH instead */
    int context_shift, keep;
    /* logprobs: record each chosen token's (bn_sampler_set_logprobs) with
     * this many alternatives (0..BN_MAX_TOP_LOGPROBS); -1: off */
    int logprobs;
    /* the prompt's own logprobs (the model's softmax, temperature 1) with
     * this many alternatives; -1: off. The whole prompt must be fed
     * (n_prefix 0): the first token has no record. */
    int prompt_logprobs;
    /* embeddings: the final hidden state (after the output norm) of the
     * prompt's tokens pooled into one L2-normalised vector, with
     * max_tokens 0: BN_POOL_NONE (off), BN_POOL_MEAN or BN_POOL_LAST */
    int pooling;
} bn_job_opts;

enum { BN_POOL_NONE = 0, BN_POOL_MEAN, BN_POOL_LAST };

typedef struct {
    bn_job_end end;
    char error[512];            /* when end is BN_JOB_ERROR */
    int error_input;            /* ... and the error is the request's (bn_err.input): a grammar
                                   past its budget, a logit_bias that bans every allowed token */
    int n_tokens;               /* tokens produced so far */
    int n_sampled;              /* tokens chosen, an end-of-generation one included */
    int prompt_fed;             /* prompt tokens the job evaluated */
    double prefill_seconds, decode_seconds;
    long drafted, accepted;     /* speculative: tokens drafted and accepted */
    long passes;                /* forward passes the job took part in after its prompt */
} bn_job_status;

typedef struct bn_job bn_job;

/* Starts a generation on s's model's engine (starting it on first use).
 * The job takes a reference to s and claims it until freed (a session in
 * use fails with a message), and owns smp. s must hold ids[0..n_prefix)
 * (the caller rewinds it); ids[n_prefix..n) are fed, then up to max_tokens
 * tokens sampled. NULL with a message on failure (smp is freed then). */
bn_job *bn_job_start(bn_session *s, bn_sampler *smp, const int32_t *ids, int n, int n_prefix, const bn_job_opts *o,
                     bn_err *err);
/* Copies up to cap tokens produced since the last call into out and the
 * state into *st; returns how many were copied. Never waits beyond a copy
 * under the engine's lock. */
int bn_job_poll(bn_job *j, int32_t *out, int cap, bn_job_status *st);
/* The same, with each token's logprobs record in lp[] too (when the job
 * was started with logprobs; lp may be NULL otherwise). */
int bn_job_poll_logprobs(bn_job *j, int32_t *out, bn_logprobs *lp, int cap, bn_job_status *st);
/* The prompt's records (prompt_logprobs): out[i] for the i-th token fed
 * (out[0].n_top is -1: the first has none). Returns how many (the prompt's
 * length), or -1 when the job has none or its prompt is not fed yet. */
int bn_job_prompt_logprobs(bn_job *j, bn_logprobs *out, int cap);
/* The pooled, L2-normalised embedding (n_embd floats) of a job started
 * with pooling, once its prompt is fed: 0, or -1 when there is none. */
int bn_job_embedding(bn_job *j, float *out);
/* Asks the job to end: it does within one step (a decode step or a chunk). */
void bn_job_cancel(bn_job *j);
/* Waits until the job has news for bn_job_poll, tokens or its end (1), or
 * timeout seconds passed (0); a negative timeout waits as long as it takes. */
int bn_job_wait(bn_job *j, double timeout);
/* A descriptor that becomes readable when the job has news (tokens or its
 * end); reading it (bn_job_poll does) clears it. -1 with errno on failure. */
int bn_job_fd(bn_job *j);
/* The job's sampler: its state once the job has ended. */
const bn_sampler *bn_job_sampler(const bn_job *j);
/* The options the job was started with, and its model. */
const bn_job_opts *bn_job_options(const bn_job *j);
const bn_model *bn_job_model(const bn_job *j);
/* Cancels the job, waits until the engine lets go of it, frees it and
 * drops its session reference. */
void bn_job_free(bn_job *j);

/* How many jobs m's engine holds (attached, not yet let go); 0 when it never
 * started. Waits only for the engine's lock. */
int bn_engine_jobs(bn_model *m);

#endif
