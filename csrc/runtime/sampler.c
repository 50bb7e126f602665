/* sampler.c: the sampling chain (see sampler.h for the order and meaning of
 * each step) and its random generator.
 *
 * Random numbers: xoshiro256** (Blackman and Vigna), its state seeded by
 * four outputs of splitmix64 from the 64-bit seed. Both are fixed integer
 * arithmetic, so a seed gives the same stream everywhere. A draw uses the top
 * 53 bits as a double in [0, 1). Softmax sums are in double, in array order,
 * and every ordering step breaks ties by id, so the choice depends only on
 * the seed and the logits (and on libm's exp/log, which the C libraries we
 * build on round the same way; a one-ulp difference could only matter when
 * a draw lands within rounding of a bucket edge). */
#include "runtime/sampler.h"

#include "grammar/grammar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bn_sampler {
    bn_sampler_params p;
    int32_t *bias_ids; /* sorted ascending, unique */
    float *bias;
    int n_bias;
    uint64_t rng[4];
    int32_t *history; /* ring of the last repeat_last_n accepted ids */
    int hist_len, hist_next;
    int32_t *window;  /* scratch: a sorted copy of the history */
    bn_cand *cand;    /* scratch: candidates */
    int cand_cap;
    bn_matcher *matcher; /* structured output: the grammar's state, or NULL */
    uint32_t *mask;      /* the matcher's last mask */
    size_t mask_count;   /* tokens in it */
    int mask_fresh;      /* mask is the matcher's current one */
    int logprobs_k;      /* < 0: no records */
    int have_last;       /* last holds the latest pick's record */
    bn_logprobs last;
};

/* ---- random generator ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t st[4]) {
    uint64_t result = rotl64(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl64(st[3], 45);
    return result;
}

static void seed_rng(uint64_t st[4], uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) st[i] = splitmix64(&x);
}

static double uniform01(uint64_t st[4]) { return (double)(xoshiro_next(st) >> 11) * (1.0 / 9007199254740992.0); }

/* ---- parameters and lifetime ---- */

void bn_sampler_params_default(bn_sampler_params *p) {
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->typical_p = 1.0f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->seed = 0;
}

typedef struct {
    int32_t id;
    int order;
    float bias;
} bias_entry;

static int cmp_bias_entry(const void *a, const void *b) {
    const bias_entry *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
}

static int check_params(const bn_sampler_params *p, bn_err *err) {
    if (!(p->temperature >= 0.0f) || isinf(p->temperature)) return bn_errf(err, "option 'temperature' must be >= 0");
    if (p->top_k < 0) return bn_errf(err, "option 'top_k' must be >= 0");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return bn_errf(err, "option 'top_p' must be in (0, 1]");
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) return bn_errf(err, "option 'min_p' must be in [0, 1]");
    if (!(p->typical_p > 0.0f && p->typical_p <= 1.0f)) return bn_errf(err, "option 'typical_p' must be in (0, 1]");
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty)) return bn_errf(err, "option 'repeat_penalty' must be > 0");
    if (p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20)) return bn_errf(err, "option 'repeat_last_n' must be 0..1048576");
    if (!isfinite(p->presence_penalty)) return bn_errf(err, "option 'presence_penalty' must be finite");
    if (!isfinite(p->frequency_penalty)) return bn_errf(err, "option 'frequency_penalty' must be finite");
    return 1;
}

static int set_bias(bn_sampler *s, const int32_t *ids, const float *bias, int n, bn_err *err) {
    if (n <= 0) return 1;
    bias_entry *e = malloc((size_t)n * sizeof *e);
    s->bias_ids = malloc((size_t)n * sizeof *s->bias_ids);
    s->bias = malloc((size_t)n * sizeof *s->bias);
    if (!e || !s->bias_ids || !s->bias) {
        free(e);
        return bn_errf(err, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0) {
            free(e);
            return bn_errf(err, "logit_bias id %d is negative", (int)ids[i]);
        }
        if (isnan(bias[i])) {
            free(e);
            return bn_errf(err, "logit_bias for id %d is NaN", (int)ids[i]);
        }
        e[i] = (bias_entry){ids[i], i, bias[i]};
    }
    qsort(e, (size_t)n, sizeof *e, cmp_bias_entry);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (i + 1 < n && e[i + 1].id == e[i].id) continue; /* a later entry for this id wins */
        s->bias_ids[m] = e[i].id;
        s->bias[m] = e[i].bias;
        m++;
    }
    s->n_bias = m;
    free(e);
    return 1;
}

bn_sampler *bn_sampler_new(const bn_sampler_params *p, const int32_t *bias_ids, const float *bias, int n_bias,
                           bn_err *err) {
    if (!check_params(p, err)) return NULL;
    bn_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        bn_errf(err, "out of memory");
        return NULL;
    }
    s->p = *p;
    s->logprobs_k = -1;
    if (p->repeat_last_n > 0) {
        s->history = malloc((size_t)p->repeat_last_n * sizeof *s->history);
        s->window = malloc((size_t)p->repeat_last_n * sizeof *s->window);
        if (!s->history || !s->window) {
            bn_errf(err, "out of memory");
            bn_sampler_free(s);
            return NULL;
        }
    }
    if (!set_bias(s, bias_ids, bias, n_bias, err)) {
        bn_sampler_free(s);
        return NULL;
    }
    bn_sampler_reset(s);
    return s;
}

void bn_sampler_free(bn_sampler *s) {
    if (!s) return;
    free(s->bias_ids);
    free(s->bias);
    free(s->history);
    free(s->window);
    free(s->cand);
    bn_matcher_free(s->matcher);
    free(s->mask);
    free(s);
}

const bn_sampler_params *bn_sampler_params_of(const bn_sampler *s) { return &s->p; }

bn_sampler *bn_sampler_clone(const bn_sampler *src, bn_err *err) {
    bn_sampler *s = bn_sampler_new(&src->p, src->bias_ids, src->bias, src->n_bias, err);
    if (!s) return NULL;
    s->logprobs_k = src->logprobs_k;
    if (src->matcher) {
        int32_t n = bn_vocab_n_tokens(bn_grammar_vocab(bn_matcher_grammar(src->matcher)));
        s->matcher = bn_matcher_clone(src->matcher, err);
        s->mask = malloc(((size_t)n + 31) / 32 * sizeof *s->mask + sizeof *s->mask);
        if (!s->matcher || !s->mask) {
            if (s->matcher && !s->mask) bn_errf(err, "out of memory");
            bn_sampler_free(s);
            return NULL;
        }
    }
    bn_sampler_copy_state(s, src);
    return s;
}

void bn_sampler_copy_state(bn_sampler *dst, const bn_sampler *src) {
    memcpy(dst->rng, src->rng, sizeof dst->rng);
    if (src->p.repeat_last_n > 0 && dst->p.repeat_last_n == src->p.repeat_last_n)
        memcpy(dst->history, src->history, (size_t)src->p.repeat_last_n * sizeof *dst->history);
    dst->hist_len = src->hist_len;
    dst->hist_next = src->hist_next;
    if (dst->matcher && src->matcher) {
        bn_err err = {0}; /* only out of memory can fail a read of text that was read before */
        bn_matcher_copy_state(dst->matcher, src->matcher, &err);
        dst->mask_fresh = 0;
    }
}

void bn_sampler_reset(bn_sampler *s) {
    s->hist_len = 0;
    s->hist_next = 0;
    seed_rng(s->rng, s->p.seed);
    if (s->matcher) {
        bn_err err = {0};
        bn_matcher_reset(s->matcher, &err);
        s->mask_fresh = 0;
    }
}

int bn_sampler_grammar_forced(bn_sampler *s, int32_t *out, int max, bn_err *err) {
    int n = 0;
    if (!s->matcher) return 0;
    int32_t covered = bn_vocab_n_tokens(bn_grammar_vocab(bn_matcher_grammar(s->matcher)));
    while (n < max && !bn_matcher_is_ended(s->matcher)) {
        if (!s->mask_fresh && !bn_matcher_mask(s->matcher, s->mask, &s->mask_count, err)) return -1;
        s->mask_fresh = 1;
        if (s->mask_count != 1) break;
        int32_t id = -1;
        for (int32_t w = 0; w < (covered + 31) / 32 && id < 0; w++)
            if (s->mask[w]) id = w * 32 + __builtin_ctz(s->mask[w]);
        if (!bn_sampler_grammar_commit(s, id, err)) return -1;
        out[n++] = id;
    }
    return n;
}

int bn_sampler_set_grammar(bn_sampler *s, bn_grammar *g, bn_err *err) {
    bn_matcher_free(s->matcher);
    free(s->mask);
    s->matcher = NULL;
    s->mask = NULL;
    s->mask_fresh = 0;
    if (!g) return 1;
    int32_t n = bn_vocab_n_tokens(bn_grammar_vocab(g));
    s->matcher = bn_matcher_new(g, err);
    s->mask = malloc(((size_t)n + 31) / 32 * sizeof *s->mask + sizeof *s->mask);
    if (!s->matcher || !s->mask) {
        if (s->matcher) bn_errf(err, "out of memory");
        bn_matcher_free(s->matcher);
        free(s->mask);
        s->matcher = NULL;
        s->mask = NULL;
        return 0;
    }
    return 1;
}

bn_matcher *bn_sampler_matcher(const bn_sampler *s) { return s->matcher; }

int bn_sampler_grammar_commit(bn_sampler *s, int32_t id, bn_err *err) {
    if (!s->matcher) return 1;
    int r = bn_matcher_commit(s->matcher, id, err);
    if (r == BN_MATCH_OK) {
        s->mask_fresh = 0;
        return 1;
    }
    if (r == BN_MATCH_REJECT) bn_errf(err, "token %d is not allowed by the grammar here", (int)id);
    return 0;
}

void bn_sampler_accept(bn_sampler *s, int32_t id) {
    int cap = s->p.repeat_last_n;
    if (id < 0 || cap == 0) return;
    s->history[s->hist_next] = id;
    s->hist_next = (s->hist_next + 1) % cap;
    if (s->hist_len < cap) s->hist_len++;
}

/* ---- steps 1-2 ---- */

bn_cand *bn_sampler_scratch(bn_sampler *s, int n) {
    if (n > s->cand_cap) {
        bn_cand *c = realloc(s->cand, (size_t)n * sizeof *c);
        if (!c) return NULL;
        s->cand = c;
        s->cand_cap = n;
    }
    return s->cand;
}

static int cmp_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : (x > y);
}

static void apply_penalties(bn_sampler *s, bn_cand *c, int n_vocab) {
    const bn_sampler_params *p = &s->p;
    if (s->hist_len == 0 ||
        (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f))
        return;
    memcpy(s->window, s->history, (size_t)s->hist_len * sizeof *s->window);
    qsort(s->window, (size_t)s->hist_len, sizeof *s->window, cmp_int32);
    for (int i = 0; i < s->hist_len;) {
        int32_t id = s->window[i];
        int count = 0;
        while (i < s->hist_len && s->window[i] == id) count++, i++;
        if (id >= n_vocab) continue;
        float l = c[id].logit;
        l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= (float)count * p->frequency_penalty + p->presence_penalty;
        c[id].logit = l;
    }
}

bn_cand *bn_sampler_prepare(bn_sampler *s, const float *logits, int n_vocab, bn_err *err) {
    s->have_last = 0;
    if (s->n_bias > 0 && s->bias_ids[s->n_bias - 1] >= n_vocab) {
        bn_errf_input(err, "logit_bias id %d is outside the vocabulary (%d ids)", (int)s->bias_ids[s->n_bias - 1], n_vocab);
        return NULL;
    }
    bn_cand *c = bn_sampler_scratch(s, n_vocab);
    if (!c) {
        bn_errf(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n_vocab; i++) {
        float l = logits[i];
        c[i] = (bn_cand){i, isnan(l) ? -INFINITY : l, 0.0f};
    }
    apply_penalties(s, c, n_vocab);
    for (int i = 0; i < s->n_bias; i++) c[s->bias_ids[i]].logit += s->bias[i];
    for (int i = 0; i < n_vocab; i++)
        if (isnan(c[i].logit)) c[i].logit = -INFINITY; /* +inf plus -inf bias: banned wins */
    if (s->matcher) {
        /* structured output: only the tokens the grammar allows (the mask
         * comes after penalties and bias so that no bias can bring one back) */
        if (!s->mask_fresh && !bn_matcher_mask(s->matcher, s->mask, &s->mask_count, err)) return NULL;
        s->mask_fresh = 1;
        size_t count = s->mask_count;
        int32_t covered = bn_vocab_n_tokens(bn_grammar_vocab(bn_matcher_grammar(s->matcher)));
        int any = 0;
        for (int i = 0; i < n_vocab; i++) {
            if (i >= covered || !(s->mask[i >> 5] >> (i & 31) & 1)) c[i].logit = -INFINITY;
            else if (c[i].logit > -INFINITY) any = 1;
        }
        if (!any) {
            bn_errf_input(err, count ? "every token the grammar allows here is banned (logit_bias or -inf logits)"
                               : "the grammar allows no token here");
            return NULL;
        }
    }
    return c;
}

/* ---- ordering ---- */

/* True when a ranks before b: larger logit, then lower id. */
static int better(const bn_cand *a, const bn_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void swap_cand(bn_cand *a, bn_cand *b) {
    bn_cand t = *a;
    *a = *b;
    *b = t;
}

/* An order of candidates: whether a comes before b. */
typedef int (*cand_before)(const bn_cand *a, const bn_cand *b);

/* Sift-down in a heap whose root comes first in `before` order
 * (first_at_root) or last (otherwise). */
static void sift(bn_cand *h, int n, int i, cand_before before, int first_at_root) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && (first_at_root ? before(&h[l], &h[w]) : before(&h[w], &h[l]))) w = l;
        if (r < n && (first_at_root ? before(&h[r], &h[w]) : before(&h[w], &h[r]))) w = r;
        if (w == i) return;
        swap_cand(&h[i], &h[w]);
        i = w;
    }
}

int bn_cand_top(bn_cand *c, int n, int k) {
    if (k > n) k = n;
    if (k <= 0) return 0;
    /* the k best so far in a heap with the worst of them at the root */
    for (int i = k / 2 - 1; i >= 0; i--) sift(c, k, i, better, 0);
    for (int i = k; i < n; i++) {
        if (better(&c[i], &c[0])) {
            swap_cand(&c[i], &c[0]);
            sift(c, k, 0, better, 0);
        }
    }
    /* heap sort: moving the worst to the back leaves the best first */
    for (int end = k - 1; end > 0; end--) {
        swap_cand(&c[0], &c[end]);
        sift(c, end, 0, better, 0);
    }
    return k;
}

/* Moves the shortest prefix of c[0..n) in `before` order whose
 * probabilities exp(logit - lse) add up to target to the front, in that
 * order; returns its length (n when rounding keeps the sum short). A heap
 * pops only as many as needed: O(n + m log n) for a prefix of m. */
static int take_mass_prefix(bn_cand *c, int n, cand_before before, double lse, double target) {
    for (int i = n / 2 - 1; i >= 0; i--) sift(c, n, i, before, 1);
    double cum = 0.0;
    int end = n;
    while (end > 0) {
        end--;
        swap_cand(&c[0], &c[end]); /* the first remaining goes to the back */
        sift(c, end, 0, before, 1);
        cum += exp((double)c[end].logit - lse);
        if (cum >= target) break;
    }
    int m = n - end;
    for (int i = end, j = n - 1; i < j; i++, j--) swap_cand(&c[i], &c[j]); /* popped last-first */
    memmove(c, c + end, (size_t)m * sizeof *c);
    return m;
}

double bn_cand_logsumexp(const bn_cand *c, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    if (!isfinite(mx)) return mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)c[i].logit - mx);
    return mx + log(sum);
}

static int cmp_by_rank(const void *a, const void *b) {
    const bn_cand *x = a, *y = b;
    return better(x, y) ? -1 : better(y, x);
}

/* Typical order: the scratch field p holds |-log p - H|, smaller first. */
static int more_typical(const bn_cand *a, const bn_cand *b) {
    return a->p < b->p || (a->p == b->p && better(a, b));
}

/* ---- steps 3-8 ---- */

static int32_t argmax_id(const bn_cand *c, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (better(&c[i], &c[best])) best = i;
    return c[best].id;
}

static int keep_typical(bn_cand *c, int n, float typical_p) {
    double lse = bn_cand_logsumexp(c, n), entropy = 0.0;
    for (int i = 0; i < n; i++) {
        double pi = exp((double)c[i].logit - lse);
        if (pi > 0.0) entropy -= pi * log(pi);
    }
    for (int i = 0; i < n; i++) {
        double pi = exp((double)c[i].logit - lse);
        c[i].p = pi > 0.0 ? (float)fabs(-log(pi) - entropy) : INFINITY;
    }
    int keep = take_mass_prefix(c, n, more_typical, lse, typical_p);
    qsort(c, (size_t)keep, sizeof *c, cmp_by_rank); /* back to logit order for the steps after */
    return keep;
}

/* The smallest prefix by logit whose probability reaches top_p. */
static int keep_top_p(bn_cand *c, int n, float top_p, int sorted) {
    double lse = bn_cand_logsumexp(c, n);
    if (!sorted) return take_mass_prefix(c, n, better, lse, top_p);
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += exp((double)c[i].logit - lse);
        if (cum >= top_p) return i + 1;
    }
    return n;
}

static int keep_min_p(bn_cand *c, int n, float min_p) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    double threshold = (double)mx + log((double)min_p);
    int m = 0;
    for (int i = 0; i < n; i++)
        if ((double)c[i].logit >= threshold) c[m++] = c[i];
    return m;
}

static int32_t draw(bn_sampler *s, const bn_cand *c, int n, float temperature) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    double total = 0.0;
    for (int i = 0; i < n; i++) total += exp(((double)c[i].logit - mx) / temperature);
    double u = uniform01(s->rng) * total, acc = 0.0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        double w = exp(((double)c[i].logit - mx) / temperature);
        if (w <= 0.0) continue;
        acc += w;
        last = i;
        if (acc > u) return c[i].id;
    }
    return c[last].id; /* u landed in the rounding gap at the top */
}

/* ---- logprobs ---- */

void bn_sampler_set_logprobs(bn_sampler *s, int k) {
    s->logprobs_k = k < 0 ? -1 : k > BN_MAX_TOP_LOGPROBS ? BN_MAX_TOP_LOGPROBS : k;
    s->have_last = 0;
}

const bn_logprobs *bn_sampler_last_logprobs(const bn_sampler *s) { return s->have_last ? &s->last : NULL; }

/* The record of `chosen` among c[0..n) under softmax(logit / temperature);
 * reorders c. Tokens at -inf are not listed. */
static void record_logprobs(bn_logprobs *out, int k, bn_cand *c, int n, int32_t chosen, float temperature) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    out->id = chosen;
    out->logprob = 0.0f;
    out->n_top = 0;
    if (!isfinite(mx)) { /* a choice a softmax cannot weigh: certain */
        if (k > 0) {
            out->top_id[0] = chosen;
            out->top_logprob[0] = 0.0f;
            out->n_top = 1;
        }
        return;
    }
    double sum = 0.0, t = temperature;
    for (int i = 0; i < n; i++) sum += exp(((double)c[i].logit - mx) / t);
    double lse = log(sum);
    for (int i = 0; i < n; i++)
        if (c[i].id == chosen) out->logprob = (float)(((double)c[i].logit - mx) / t - lse);
    int m = bn_cand_top(c, n, k);
    for (int i = 0; i < m && c[i].logit > -INFINITY; i++) {
        out->top_id[i] = c[i].id;
        out->top_logprob[i] = (float)(((double)c[i].logit - mx) / t - lse);
        out->n_top = i + 1;
    }
}

void bn_logprobs_of_logits(const float *logits, int n_vocab, int32_t id, int k, bn_logprobs *out) {
    float mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    double lse = (double)mx + log(sum);
    if (k > BN_MAX_TOP_LOGPROBS) k = BN_MAX_TOP_LOGPROBS;
    out->id = id;
    out->logprob = (float)((double)logits[id] - lse);
    out->n_top = 0;
    /* the k best by a running insertion: k is at most 20 */
    for (int i = 0; i < n_vocab; i++) {
        float l = logits[i];
        int at = out->n_top;
        while (at > 0 && l > out->top_logprob[at - 1]) at--;
        if (at >= k) continue;
        int last = out->n_top < k ? out->n_top : k - 1;
        memmove(out->top_id + at + 1, out->top_id + at, sizeof(int32_t) * (size_t)(last - at));
        memmove(out->top_logprob + at + 1, out->top_logprob + at, sizeof(float) * (size_t)(last - at));
        out->top_id[at] = i;
        out->top_logprob[at] = l;
        if (out->n_top < k) out->n_top++;
    }
    for (int i = 0; i < out->n_top; i++) out->top_logprob[i] = (float)((double)out->top_logprob[i] - lse);
}

/* Steps 3-8; records the logprobs of the set drawn from (s->last). */
int32_t bn_sampler_pick(bn_sampler *s, bn_cand *c, int n) {
    const bn_sampler_params *p = &s->p;
    s->have_last = 0;
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (isnan(c[i].logit)) c[i].logit = -INFINITY;
        if (c[i].logit > mx) mx = c[i].logit;
    }
    /* greedy, and the cases a softmax cannot weigh (every logit -inf, or
     * some +inf: then the lowest such id) */
    if (p->temperature <= 0.0f || p->top_k == 1 || !isfinite(mx)) {
        int32_t id = argmax_id(c, n);
        if (s->logprobs_k >= 0) {
            record_logprobs(&s->last, s->logprobs_k, c, n, id, 1.0f);
            s->have_last = 1;
        }
        return id;
    }
    int sorted = 0;
    if (p->top_k > 0 && p->top_k < n) {
        n = bn_cand_top(c, n, p->top_k);
        sorted = 1;
    }
    if (p->typical_p < 1.0f) {
        n = keep_typical(c, n, p->typical_p);
        sorted = 1;
    }
    if (p->top_p < 1.0f) {
        n = keep_top_p(c, n, p->top_p, sorted);
        sorted = 1;
    }
    if (p->min_p > 0.0f) n = keep_min_p(c, n, p->min_p);
    int32_t id = draw(s, c, n, p->temperature);
    if (s->logprobs_k >= 0) {
        record_logprobs(&s->last, s->logprobs_k, c, n, id, p->temperature);
        s->have_last = 1;
    }
    return id;
}

int32_t bn_sampler_sample(bn_sampler *s, const float *logits, int n_vocab, bn_err *err) {
    bn_cand *c = bn_sampler_prepare(s, logits, n_vocab, err);
    if (!c) return -1;
    return bn_sampler_pick(s, c, n_vocab);
}
