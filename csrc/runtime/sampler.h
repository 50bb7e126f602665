/* sampler.h: the sampling chain that turns a row of logits into a token id,
 * with its own seedable random generator so that the same seed and the same
 * logits give the same tokens on every run and platform.
 *
 * The chain, in order (llama.cpp's default order):
 *   1. penalties over the last repeat_last_n accepted tokens: repetition
 *      (positive logits divided, negative multiplied by repeat_penalty),
 *      then frequency (count * frequency_penalty) and presence
 *      (presence_penalty once per distinct token) subtracted;
 *   2. logit bias (added; -inf bans a token);
 *   3. top-k (k largest logits; ties broken by the lower id);
 *   4. typical (locally typical sampling, mass typical_p);
 *   5. top-p (smallest prefix by logit whose probability reaches top_p);
 *   6. min-p (keep p >= min_p * p_max);
 *   7. temperature (logits divided by it);
 *   8. a draw from the softmax of what is left.
 * Probabilities in steps 4-6 are the softmax at temperature 1 over the
 * tokens still in the set. Temperature <= 0 or top_k == 1 is greedy: the
 * largest logit after steps 1-2, the lowest id on ties, no random draw.
 * No Lua here; lsampler.c is the Lua face. */
#ifndef BN_SAMPLER_H
#define BN_SAMPLER_H

#include <stdint.h>

#include "base/errbuf.h"

struct bn_grammar;
struct bn_matcher;

typedef struct {
    float temperature;       /* <= 0: greedy */
    int top_k;               /* 0: off */
    float top_p;             /* 1: off */
    float min_p;             /* 0: off */
    float typical_p;         /* 1: off */
    float repeat_penalty;    /* 1: off */
    int repeat_last_n;       /* window of accepted tokens the penalties see; 0: none */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    uint64_t seed;
} bn_sampler_params;

/* One candidate token: its id, its (adjusted) logit and a scratch value
 * (a probability where a step needs one). */
typedef struct {
    int32_t id;
    float logit;
    float p;
} bn_cand;

typedef struct bn_sampler bn_sampler;

/* Fills p with the defaults: temperature 0.8, top_k 40, top_p 0.95,
 * min_p 0.05, typical_p 1, repeat_penalty 1, repeat_last_n 64, no
 * presence/frequency penalty, seed 0. */
void bn_sampler_params_default(bn_sampler_params *p);

/* A sampler with the given parameters and logit bias (n_bias pairs; ids
 * must be >= 0, later pairs for the same id replace earlier ones). NULL with
 * a message on bad parameters or out of memory. */
bn_sampler *bn_sampler_new(const bn_sampler_params *p, const int32_t *bias_ids, const float *bias, int n_bias,
                           bn_err *err);
void bn_sampler_free(bn_sampler *s);

/* The parameters the sampler was made with. */
const bn_sampler_params *bn_sampler_params_of(const bn_sampler *s);

/* A sampler with src's parameters and state (history and random
 * generator): it makes the choices src would. NULL when out of memory. */
bn_sampler *bn_sampler_clone(const bn_sampler *src, bn_err *err);
/* Sets dst's state to src's; both must have been made with the same
 * parameters (a clone and its source). */
void bn_sampler_copy_state(bn_sampler *dst, const bn_sampler *src);

/* Forgets the accepted tokens and restarts the random generator from the
 * seed: after reset the sampler repeats its earlier choices. */
void bn_sampler_reset(bn_sampler *s);

/* Records a chosen (or prompt) token for the penalties. Negative ids are
 * ignored. */
void bn_sampler_accept(bn_sampler *s, int32_t id);

/* Steps 1-2 over a whole row of logits: returns the sampler's scratch array
 * of n_vocab candidates in id order (valid until the next call), NaN logits
 * read as -inf. NULL with a message when a logit_bias id is outside the
 * vocabulary or memory runs out. */
bn_cand *bn_sampler_prepare(bn_sampler *s, const float *logits, int n_vocab, bn_err *err);

/* Scratch for n candidates that the caller fills (for bn_sampler_pick on a
 * list of its own); NULL when memory runs out. */
bn_cand *bn_sampler_scratch(bn_sampler *s, int n);

/* Steps 3-8 over c[0..n) (n >= 1; reordered in place): the chosen id. */
int32_t bn_sampler_pick(bn_sampler *s, bn_cand *c, int n);

/* The whole chain over a row of logits; -1 with a message on failure (see
 * bn_sampler_prepare). Does not accept the token: call bn_sampler_accept. */
int32_t bn_sampler_sample(bn_sampler *s, const float *logits, int n_vocab, bn_err *err);

/* Structured output: from now on only tokens grammar g allows are drawn
 * (the sampler keeps its own matcher of g, which bn_sampler_reset restarts
 * and clones copy). g NULL removes it. 0 with a message when out of memory. */
int bn_sampler_set_grammar(bn_sampler *s, struct bn_grammar *g, bn_err *err);
/* The sampler's matcher, or NULL. */
struct bn_matcher *bn_sampler_matcher(const bn_sampler *s);
/* Moves the matcher past generated token id (not prompt tokens: those are
 * bn_sampler_accept's alone). 1, or 0 with a message when the grammar does
 * not allow id or a budget is exceeded. Without a grammar: 1. */
int bn_sampler_grammar_commit(bn_sampler *s, int32_t id, bn_err *err);

/* Fast-forward: while the grammar allows exactly one token, commits it and
 * writes it to out (at most max); returns how many (0: a choice is next),
 * or -1 with a message. Taking a forced token without a draw leaves greedy
 * output unchanged; it saves a forward pass per token when they are fed
 * together. */
int bn_sampler_grammar_forced(bn_sampler *s, int32_t *out, int max, bn_err *err);

/* Log-probabilities of one chosen token (logprobs): its own and those of
 * the n_top most likely tokens, best first (ties: lower id). */
#define BN_MAX_TOP_LOGPROBS 20
typedef struct {
    int32_t id;
    float logprob;
    int n_top;
    int32_t top_id[BN_MAX_TOP_LOGPROBS];
    float top_logprob[BN_MAX_TOP_LOGPROBS];
} bn_logprobs;

/* Makes every pick record the log-probabilities of the distribution it drew
 * from (after penalties, bias, the grammar's mask, top-k, typical, top-p,
 * min-p and temperature; tokens those steps removed are not listed) with
 * the k (0..BN_MAX_TOP_LOGPROBS) most likely; greedy picks record the
 * softmax at temperature 1 after penalties, bias and mask. k < 0: off. */
void bn_sampler_set_logprobs(bn_sampler *s, int k);
/* The record of the last pick, or NULL when logprobs are off or nothing
 * was picked since. */
const bn_logprobs *bn_sampler_last_logprobs(const bn_sampler *s);

/* Fills out for token id under logits (n_vocab of them) read as a plain
 * softmax at temperature 1 (a prompt token's logprob), with the k most
 * likely. */
void bn_logprobs_of_logits(const float *logits, int n_vocab, int32_t id, int k, bn_logprobs *out);

/* Moves the k best candidates (largest logit, lower id on ties) of c[0..n)
 * to the front in descending order; returns min(k, n). O(n log k). */
int bn_cand_top(bn_cand *c, int n, int k);

/* log(sum(exp(logit))) over c[0..n), in double; -inf when every logit is. */
double bn_cand_logsumexp(const bn_cand *c, int n);

#endif
