/* token_classes.c: what a lexer state says of every token, independent
 * of the parser (grammar_internal.h): the tokens read whole inside the
 * lexeme, and the tokens that may end a lexeme partway, as tries of their
 * remainders. Built by a walk over the vocabulary's token trie, cached per
 * (clamped) lexer state by the grammar. */
#include <stdlib.h>
#include <string.h>

#include "base/bits.h"
#include "base/grow.h"
#include "grammar/grammar_internal.h"

void bn_token_classes_free(bn_token_classes *tc) {
    if (!tc || --tc->refs > 0) return;
    free(tc->inside_bits);
    free(tc->inside_ids);
    free(tc->groups);
    free(tc->nodes);
    free(tc->tokens);
    free(tc->subs);
    free(tc->replayed);
    free(tc);
}

/* ---- token classes of a lexer state ---- */

/* C11 qsort has no context: entries carry what the comparison needs. */
typedef struct {
    int32_t token, lexeme;
    uint32_t offset;
    const uint8_t *rest;
    size_t rest_n;
} bound_tmp;

static int cmp_bound(const void *a, const void *b) {
    const bound_tmp *x = a, *y = b;
    if (x->lexeme != y->lexeme) return (x->lexeme > y->lexeme) - (x->lexeme < y->lexeme);
    size_t n = x->rest_n < y->rest_n ? x->rest_n : y->rest_n;
    int c = memcmp(x->rest, y->rest, n);
    if (c) return c;
    if (x->rest_n != y->rest_n) return x->rest_n < y->rest_n ? -1 : 1;
    return (x->token > y->token) - (x->token < y->token);
}

/* Builds the remainder tries of bt[0..m) (sorted by lexeme, remainder)
 * into tc. 0 when out of memory. */
static int build_rem_tries(bn_token_classes *tc, const bound_tmp *bt, size_t m, size_t max_len) {
    size_t total = 0, n_groups = 0;
    for (size_t i = 0; i < m; i++) {
        total += bt[i].rest_n;
        if (i == 0 || bt[i].lexeme != bt[i - 1].lexeme) n_groups++;
    }
    tc->groups = malloc((n_groups ? n_groups : 1) * sizeof *tc->groups);
    tc->nodes = malloc((total ? total : 1) * sizeof *tc->nodes);
    tc->tokens = malloc((m ? m : 1) * sizeof *tc->tokens);
    uint32_t *open = malloc((max_len + 1) * sizeof *open);
    if (!tc->groups || !tc->nodes || !tc->tokens || !open) {
        free(open);
        return 0;
    }
    uint32_t n_nodes = 0;
    int32_t g = -1;
    size_t depth = 0;
    const uint8_t *prev = NULL;
    size_t prev_n = 0;
    for (size_t i = 0; i < m; i++) {
        const bound_tmp *e = &bt[i];
        size_t lcp = 0;
        if (g >= 0 && tc->groups[g].lexeme == e->lexeme)
            while (lcp < prev_n && lcp < e->rest_n && prev[lcp] == e->rest[lcp]) lcp++;
        else {
            while (depth > 0) tc->nodes[open[depth--]].end = n_nodes;
            if (g >= 0) tc->groups[g].n = n_nodes - tc->groups[g].first;
            g++;
            tc->groups[g] = (bn_rem_group){e->lexeme, n_nodes, 0};
        }
        while (depth > lcp) tc->nodes[open[depth--]].end = n_nodes;
        for (size_t d = lcp; d < e->rest_n; d++) {
            tc->nodes[n_nodes] = (bn_rem_node){0, 0, 0, (uint16_t)(d + 1), e->rest[d]};
            open[++depth] = n_nodes++;
        }
        bn_rem_node *at = &tc->nodes[open[depth]];
        if (at->tok_n == 0) at->tok_first = (uint32_t)i;
        at->tok_n++;
        tc->tokens[i] = e->token;
        prev = e->rest;
        prev_n = e->rest_n;
    }
    while (depth > 0) tc->nodes[open[depth--]].end = n_nodes;
    if (g >= 0) tc->groups[g].n = n_nodes - tc->groups[g].first;
    tc->n_groups = g + 1;
    free(open);
    tc->bytes += n_nodes * sizeof *tc->nodes + m * sizeof *tc->tokens + (size_t)tc->n_groups * sizeof *tc->groups;
    return 1;
}

/* ---- plain text in bulk ----
 * Most tokens are plain text (vocab.h) and most wide lexer states are a
 * string's interior, which reads most of them. For a lexer state and a
 * plain-text state, an "absorb" answer says which plain text the state
 * reads with every state on the way alive and no lexeme able to end:
 * every string of at most k bytes, or (for a class like [^,"]) every
 * string of any length with no byte of a set K. The walk asks it of the
 * state at the trie's root, marks those tokens at once (from the
 * vocabulary's precomputed sets, or a whole subtree whose bytes avoid K)
 * and visits only the nodes with other tokens below. (Asked again at wide
 * nodes deeper down, it cost more than the nodes it let the walk skip.) */

struct bn_absorb {
    uint16_t k;    /* plain strings of at most k bytes are read whole (ABSORB_UNKNOWN: not asked yet) */
    uint8_t free;  /* no plain text lets a lexeme end: 0 not asked yet, 1 so, 2 not so */
    uint8_t lower; /* k is only a bound learned from another state's search */
    uint32_t kset; /* 0, or ksets[kset]: any length, but only strings without these bytes */
};

struct bn_walk_level {
    int32_t state;   /* lexer state after the path */
    uint32_t lim;    /* plain tokens this deep below the region's root are inside ... */
    uint32_t kset;   /* ... that avoid these bytes (0: none; tokens marked in bulk) */
    uint8_t in_kset; /* the path from the region's root avoids the kset's bytes */
};

#define ABSORB_UNKNOWN 0xFFFF
#define ABSORB_LEVELS 32       /* search no deeper (a lower bound is safe; few tokens are longer) */
#define ABSORB_MAX_PAIRS 8192  /* nor wider */
#define ABSORB_MAX_STEPS 16384 /* nor take more lexer steps */
#define ABSORB_PART_SCALE 16   /* a part, shared by many states of many parts, may search this much further */
#define ABSORB_MAX_NEW 64      /* nor make more lexer states than this */
#define ABSORB_MAX_EXCLUDED 96 /* an exclusion set larger than this is not worth it */

int bn_token_walk_init(bn_grammar *g) {
    g->walk = malloc((bn_vocab_max_len(g->vocab) + 2) * sizeof *g->walk);
    return g->walk != NULL;
}

/* Per plain state, one byte of each (lexer byte class, next plain state):
 * the bytes the search must try. */
static void find_edges(bn_grammar *g, const bn_lexer_view *lv) {
    uint8_t seen[256][BN_PLAIN_STATES];
    for (int p = 0; p < BN_PLAIN_STATES; p++) {
        memset(seen, 0, sizeof seen);
        g->n_edges[p] = 0;
        for (int b = 0; b < 256; b++) {
            uint8_t q = bn_plain_next((uint8_t)p, (uint8_t)b);
            if (q == BN_PLAIN_DEAD || seen[lv->cls[b]][q]) continue;
            seen[lv->cls[b]][q] = 1;
            g->edges[p][g->n_edges[p]++] = (uint8_t)b;
        }
    }
    g->edges_ready = 1;
}

typedef struct {
    uint64_t *slot; /* pair + 1; 0 is empty */
    size_t cap, n;
} pair_set;

static uint64_t pair_hash(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* Adds x: 1 when new, 0 when there, -1 when out of memory. */
static int pair_set_add(pair_set *ps, uint64_t x) {
    if (2 * (ps->n + 1) > ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 256;
        uint64_t *slot = calloc(cap, sizeof *slot);
        if (!slot) return -1;
        for (size_t i = 0; i < ps->cap; i++)
            if (ps->slot[i])
                for (size_t j = pair_hash(ps->slot[i]) & (cap - 1);; j = (j + 1) & (cap - 1))
                    if (!slot[j]) {
                        slot[j] = ps->slot[i];
                        break;
                    }
        free(ps->slot);
        ps->slot = slot;
        ps->cap = cap;
    }
    for (size_t j = pair_hash(x + 1) & (ps->cap - 1);; j = (j + 1) & (ps->cap - 1)) {
        if (ps->slot[j] == x + 1) return 0;
        if (!ps->slot[j]) {
            ps->slot[j] = x + 1;
            ps->n++;
            return 1;
        }
    }
}

static int has_byte(const uint64_t set[4], uint8_t b) { return (int)(set[b >> 6] >> (b & 63) & 1); }

static struct bn_absorb *absorb_slot(bn_grammar *g, int32_t s, uint8_t p) {
    size_t at = (size_t)s * BN_PLAIN_STATES + p, old = g->cap_absorb;
    if (!bn_grow((void **)&g->absorb, &g->cap_absorb, at + 1, sizeof *g->absorb)) return NULL;
    for (size_t i = old; i < g->cap_absorb; i++) g->absorb[i] = (struct bn_absorb){ABSORB_UNKNOWN, 0, 0, 0};
    return &g->absorb[at];
}

/* A breadth-first search over (lexer state, plain state) pairs from
 * (s, p). Without an exclusion set (excl NULL): the first level where a
 * byte can kill the state or let a lexeme end is the answer (the horizon
 * when the search closes without one). With excl: a byte that does either
 * joins excl (with the bytes the lexer and the plain DFA cannot tell from
 * it) and is not followed; the answer is the horizon when the search
 * closes (a search that does not close is of no use). With dead_ok, a
 * byte that kills the state is only not followed: the horizon answers
 * that no plain text lets a lexeme end. A search cut short (depth, width,
 * lexer states or expression nodes made: *cut set) answers the levels
 * it finished: a smaller answer only means a longer walk. -1 when out of
 * memory. */
static int absorb_search(bn_grammar *g, bn_lexer_view *lv, int32_t s, uint8_t p, size_t H, uint64_t *excl,
                         size_t max_new, size_t scale, int dead_ok, int *cut) {
    if (!g->edges_ready) find_edges(g, lv);
    pair_set seen = {0, 0, 0};
    uint64_t *cur = NULL, *next = NULL, *hist = NULL; /* hist: every pair seen, with its level in the top bits */
    size_t n_hist = 0, cap_hist = 0;
    size_t n_cur = 1, cap_cur = 0, n_next = 0, cap_next = 0, level = 0, dfa0 = bn_lexer_n_dfa(g->lexer), steps = 0;
    size_t n_excl = 0;
    /* an optimization must not spend the states the text needs: past half
     * the budget, search only among the states there are */
    size_t rx0 = bn_lexer_n_nfa(g->lexer), max_rx = (g->lim.max_rx_nodes ? g->lim.max_rx_nodes : 1000000) / 16;
    if (dfa0 > g->lim.max_dfa_states / 2 || rx0 > 8 * max_rx) max_new = scale = 0;
    int result = -1;
    if (!bn_grow((void **)&cur, &cap_cur, 1, sizeof *cur) || pair_set_add(&seen, (uint64_t)s << 8 | p) < 0) goto done;
    cur[0] = (uint64_t)s << 8 | p;
    for (;; level++) {
        if (level >= H || (!dead_ok && level >= ABSORB_LEVELS)) {
            result = (int)(level >= H ? H : level);
            if (level < H && cut) *cut = 1;
            break;
        }
        n_next = 0;
        for (size_t c = 0; c < n_cur && result < 0; c++) {
            int32_t x = (int32_t)(cur[c] >> 8);
            uint8_t q = (uint8_t)(cur[c] & 0xff);
            for (uint16_t e = 0; e < g->n_edges[q]; e++) {
                uint8_t b = g->edges[q][e];
                if (excl && has_byte(excl, b)) continue;
                int32_t t = bn_lexer_step(g->lexer, lv, x, b);
                if (seen.n >= ABSORB_MAX_PAIRS * scale || ++steps > ABSORB_MAX_STEPS * scale ||
                    bn_lexer_n_dfa(g->lexer) - dfa0 > max_new * scale || bn_lexer_n_nfa(g->lexer) - rx0 > max_rx ||
                    t == BN_LEX_BUDGET) {
                    result = (int)level; /* cut short */
                    if (cut) *cut = 1;
                    break;
                }
                uint8_t q2 = bn_plain_next(q, b);
                if (t < 0 && dead_ok) continue;
                if (t < 0 || lv->n_acc[t]) {
                    if (!excl) {
                        result = (int)level;
                        break;
                    }
                    for (int o = 0; o < 256; o++)
                        if (lv->cls[o] == lv->cls[b] && bn_plain_next(q, (uint8_t)o) == q2 && !has_byte(excl, (uint8_t)o)) {
                            excl[o >> 6] |= 1ull << (o & 63);
                            n_excl++;
                        }
                    if (n_excl > ABSORB_MAX_EXCLUDED) { /* of no use: stop */
                        result = (int)level;
                        break;
                    }
                    continue;
                }
                uint64_t y = (uint64_t)t << 8 | q2;
                int fresh = pair_set_add(&seen, y);
                if (fresh < 0 || !bn_grow((void **)&next, &cap_next, n_next + 1, sizeof *next)) goto done;
                if (fresh) {
                    next[n_next++] = y;
                    if (!excl && !dead_ok && bn_grow((void **)&hist, &cap_hist, n_hist + 1, sizeof *hist))
                        hist[n_hist++] = (uint64_t)(level + 1) << 48 | y;
                }
            }
        }
        if (result >= 0) break;
        if (n_next == 0) { /* closed: no limit */
            result = (int)H;
            if (!excl) /* and so for every pair on the way: each reaches only pairs seen */
                for (size_t i = 0; i < seen.cap; i++) {
                    if (!seen.slot[i]) continue;
                    uint64_t x = seen.slot[i] - 1;
                    struct bn_absorb *a = absorb_slot(g, (int32_t)(x >> 8), (uint8_t)(x & 0xff));
                    if (!a) goto done;
                    if (dead_ok) a->free = 1;
                    else if (a->k == ABSORB_UNKNOWN || a->lower) *a = (struct bn_absorb){(uint16_t)H, a->free, 0, 0};
                }
            break;
        }
        uint64_t *tmp = cur;
        size_t tmp_cap = cap_cur;
        cur = next;
        cap_cur = cap_next;
        n_cur = n_next;
        next = tmp;
        cap_next = tmp_cap;
    }
    /* a limit found (or a search cut) at level L bounds the pairs seen on
     * the way: one first seen at level i reads any L - i bytes (a failure
     * sooner would have been one from s before L). The states of a counted
     * string, one character apart, learn their answers from the first. */
    if (!excl && !dead_ok && result >= 0 && (size_t)result < H)
        for (size_t i = 0; i < n_hist; i++) {
            size_t at = (size_t)(hist[i] >> 48);
            uint64_t y = hist[i] & ((1ull << 48) - 1);
            if (at >= (size_t)result) continue;
            struct bn_absorb *a = absorb_slot(g, (int32_t)(y >> 8), (uint8_t)(y & 0xff));
            if (!a) break;
            if (a->k == ABSORB_UNKNOWN || (a->lower && a->k < (size_t)result - at))
                *a = (struct bn_absorb){(uint16_t)((size_t)result - at), a->free, 1, 0};
        }
done:
    free(cur);
    free(next);
    free(hist);
    free(seen.slot);
    return result;
}

/* The absorb answer for (s, p), computed on first use: a search without
 * exclusions, and when that finds a limit, one that excludes the bytes
 * that end the state (kept when it closes with few of them). NULL when
 * out of memory. */

static size_t horizon(const bn_grammar *g) {
    size_t H = bn_vocab_max_len(g->vocab);
    return H > ABSORB_UNKNOWN - 1 ? ABSORB_UNKNOWN - 1 : H;
}

/* Whether some string of re is all plain bytes (printable ASCII but '"'
 * and the backslash, or any byte from 0x80: more than plain text, which
 * only makes the answer "yes" more often). Memoized per expression. */
static int may_be_plain(bn_grammar *g, bn_rxid re, int depth) {
    bn_rx *rx = bn_gb_rx(g->gb);
    size_t old = g->cap_plain_rx;
    if (depth > 2000 || !bn_grow((void **)&g->plain_rx, &g->cap_plain_rx, (size_t)re + 1, 1)) return 1;
    memset(g->plain_rx + old, 0, g->cap_plain_rx - old);
    if (g->plain_rx[re]) return g->plain_rx[re] == 1;
    int r = 1;
    size_t n;
    switch (bn_rx_kind_of(rx, re)) {
    case BN_RX_NOTHING: r = 0; break;
    case BN_RX_EMPTY: r = 1; break;
    case BN_RX_BYTES: {
        const uint64_t *set = bn_rx_set(rx, re);
        uint64_t plain_lo = ~0ull << 32 & ~(1ull << '"'), plain_hi = ~(1ull << ('\\' - 64));
        r = (set[0] & plain_lo) || (set[1] & plain_hi) || set[2] || set[3];
        break;
    }
    case BN_RX_CONCAT: {
        bn_rxid a = bn_rx_parts(rx, re, &n)[0], b = bn_rx_parts(rx, re, &n)[1];
        r = may_be_plain(g, a, depth + 1) && may_be_plain(g, b, depth + 1);
        break;
    }
    case BN_RX_ALT:
        bn_rx_parts(rx, re, &n);
        r = 0;
        for (size_t i = 0; !r && i < n; i++) r = may_be_plain(g, bn_rx_parts(rx, re, &n)[i], depth + 1);
        break;
    case BN_RX_REPEAT: {
        uint32_t lo, hi;
        bn_rx_bounds(rx, re, &lo, &hi);
        r = lo == 0 || may_be_plain(g, bn_rx_parts(rx, re, &n)[0], depth + 1);
        break;
    }
    case BN_RX_DFA: r = 1; break; /* (not looked into: "may" is safe) */
    }
    g->plain_rx[re] = r ? 1 : 2;
    return r;
}

/* Whether no plain text from plain state p lets a lexeme end in state s:
 * 1, 0 (or not known within the search's limits), -1 out of memory. */
static int accept_free(bn_grammar *g, bn_lexer_view *lv, int32_t s, uint8_t p) {
    struct bn_absorb *a = absorb_slot(g, s, p);
    if (!a) return -1;
    if (a->free) return a->free == 1;
    int r = absorb_search(g, lv, s, p, horizon(g), NULL, ABSORB_MAX_NEW, 1, 1, NULL);
    if (r < 0) return -1;
    a = absorb_slot(g, s, p); /* the table may have moved */
    a->free = (size_t)r >= horizon(g) ? 1 : 2;
    return a->free == 1;
}

/* Bytes that may begin a match of re (a superset: bit b of out[b >> 6]),
 * looked at to a small depth (deeper: every byte). */
static void first_bytes(bn_rx *rx, bn_rxid re, int depth, uint64_t out[4]) {
    size_t n;
    if (depth > 16) {
        out[0] = out[1] = out[2] = out[3] = ~0ull;
        return;
    }
    switch (bn_rx_kind_of(rx, re)) {
    case BN_RX_BYTES: {
        const uint64_t *set = bn_rx_set(rx, re);
        for (int w = 0; w < 4; w++) out[w] |= set[w];
        break;
    }
    case BN_RX_CONCAT: {
        bn_rxid a = bn_rx_parts(rx, re, &n)[0], b = bn_rx_parts(rx, re, &n)[1];
        first_bytes(rx, a, depth + 1, out);
        if (bn_rx_nullable(rx, a)) first_bytes(rx, b, depth + 1, out);
        break;
    }
    case BN_RX_ALT:
        bn_rx_parts(rx, re, &n);
        for (size_t i = 0; i < n; i++) first_bytes(rx, bn_rx_parts(rx, re, &n)[i], depth + 1, out);
        break;
    case BN_RX_REPEAT: {
        uint32_t lo, hi;
        bn_rx_bounds(rx, re, &lo, &hi);
        if (hi > 0) first_bytes(rx, bn_rx_parts(rx, re, &n)[0], depth + 1, out);
        break;
    }
    case BN_RX_DFA: {
        uint64_t f[4];
        bn_rx_dfa_first(rx, re, f);
        for (int w = 0; w < 4; w++) out[w] |= f[w];
        break;
    }
    default: break; /* nothing, empty */
    }
}

/* Whether the part with expression re may read every plain string from
 * plain state p: it must at least take every byte plain text may go on
 * with. Looked at before a part's state is made: most parts of a state of
 * many (an object's key names) fail this at their first byte. */
static int may_read_all_plain(bn_grammar *g, bn_rxid re, uint8_t p) {
    uint64_t f[4] = {0, 0, 0, 0};
    first_bytes(bn_gb_rx(g->gb), re, 0, f);
    for (int b = 0; b < 256; b++)
        if (bn_plain_next(p, (uint8_t)b) != BN_PLAIN_DEAD && !has_byte(f, (uint8_t)b)) return 0;
    return 1;
}

static struct bn_absorb absorb_of(bn_grammar *g, bn_lexer_view *lv, int32_t s, uint8_t p, int as_part);

/* The answer of a state of several parts from its parts: one part that
 * reads all plain text and none that can end on plain text answer for the
 * whole (what every part says of a text, the whole says too). 1 with *out
 * set, 0 when the parts do not tell, -1 when out of memory. */
static int absorb_by_parts(bn_grammar *g, bn_lexer_view *lv, int32_t s, uint8_t p, struct bn_absorb *out) {
    size_t H = horizon(g), n_parts = bn_lexer_n_parts(g->lexer, s);
    struct bn_absorb best = {0, 0, 0, 0};
    for (size_t i = 0; i < n_parts; i++) {
        bn_rxid re = bn_lexer_part_regex(g->lexer, s, i);
        int free_of_ends = !bn_rx_nullable(bn_gb_rx(g->gb), re) && !may_be_plain(g, re, 0); /* every match has a non-plain byte */
        int candidate = (best.k < H || best.kset) && may_read_all_plain(g, re, p);
        if (free_of_ends && !candidate) continue;
        int32_t part = bn_lexer_part(g->lexer, s, i);
        bn_lexer_view_of(g->lexer, lv);
        if (part < 0) return 0;
        if (candidate) { /* the part that reads everything: not found yet */
            struct bn_absorb pa = absorb_of(g, lv, part, p, 1);
            if (pa.k == ABSORB_UNKNOWN) return -1;
            if (pa.k >= H) {
                if (best.k < H || !pa.kset) best = pa;
                continue;
            }
        }
        if (free_of_ends) continue;
        int fr = accept_free(g, lv, part, p);
        if (fr <= 0) return fr;
    }
    if (best.k < H) return 0;
    *out = (struct bn_absorb){(uint16_t)H, 0, 0, best.kset};
    return 1;
}

/* The absorb answer for (s, p), computed on first use. A state that reads
 * several lexemes (the keys of an object with any string besides: a search
 * would spell every key out) asks its parts first (absorb_by_parts). Then
 * a search without exclusions; when that finds a limit and s has one part,
 * a search that excludes the bytes that end the state (kept when it closes
 * with few of them). Returns a copy; k == ABSORB_UNKNOWN when out of
 * memory. */
static struct bn_absorb absorb_of(bn_grammar *g, bn_lexer_view *lv, int32_t s, uint8_t p, int as_part) {
    const struct bn_absorb oom = {ABSORB_UNKNOWN, 0, 0, 0};
    struct bn_absorb *slot = absorb_slot(g, s, p);
    if (!slot) return oom;
    if (slot->k != ABSORB_UNKNOWN && (!slot->lower || slot->k >= 8)) return *slot; /* (a small bound: ask) */
    size_t H = horizon(g);
    size_t n_parts = bn_lexer_n_parts(g->lexer, s);
    struct bn_absorb a = {0, 0, 0, 0};
    int by_parts = 0;
    if (n_parts > 1 && n_parts <= 4096) {
        by_parts = absorb_by_parts(g, lv, s, p, &a);
        if (by_parts < 0) return oom;
    }
    if (!by_parts) {
        int k = absorb_search(g, lv, s, p, H, NULL, ABSORB_MAX_NEW, as_part ? ABSORB_PART_SCALE : 1, 0, NULL);
        if (k < 0) return oom;
        a = (struct bn_absorb){(uint16_t)k, 0, 0, 0};
    }
    if ((size_t)a.k < H && n_parts == 1) { /* (a state of many parts has answered above, or cannot) */
        uint64_t excl[4] = {0, 0, 0, 0};
        int kx = absorb_search(g, lv, s, p, H, excl, ABSORB_MAX_NEW / 4, 1, 0, NULL);
        if (kx < 0) return oom;
        if ((size_t)kx >= H) { /* (a search past ABSORB_MAX_EXCLUDED bytes stops short of H) */
            if (g->n_ksets == 0) g->n_ksets = 1; /* 0 means none */
            if (!bn_grow((void **)&g->ksets, &g->cap_ksets, g->n_ksets + 1, sizeof *g->ksets)) return oom;
            memcpy(g->ksets[g->n_ksets], excl, sizeof excl);
            a = (struct bn_absorb){(uint16_t)H, 0, 0, (uint32_t)g->n_ksets++};
        }
    }
    slot = absorb_slot(g, s, p); /* the table may have moved */
    if (!slot) return oom;
    a.free = slot->free;
    *slot = a;
    return a;
}

/* Marks every plain token of at most lim bytes (below the root). */
static void mark_plain_all(uint32_t *bits, const bn_vocab *v, size_t lim) {
    size_t words = ((size_t)bn_vocab_n_tokens(v) + 31) / 32;
    const uint32_t *src = lim >= bn_vocab_max_len(v) ? bn_vocab_plain_bits(v) : bn_vocab_plain_le(v, lim);
    for (size_t w = 0; w < words; w++) bits[w] |= src[w];
    if (lim > BN_VOCAB_PLAIN_LE_MAX && lim < bn_vocab_max_len(v)) {
        size_t n_nodes;
        bn_vocab_trie(v, &n_nodes);
        const uint16_t *len = bn_vocab_plain_len(v);
        const int32_t *order = bn_vocab_order(v);
        for (uint32_t k = 0, n = bn_vocab_first_tok(v)[n_nodes]; k < n; k++)
            if (len[k] > BN_VOCAB_PLAIN_LE_MAX && len[k] <= lim) bits[order[k] >> 5] |= 1u << (order[k] & 31);
    }
}

/* Sets the bits of tokens order[from..to) in bits. */
static void mark_tokens(uint32_t *bits, const int32_t *order, uint32_t from, uint32_t to) {
    for (uint32_t k = from; k < to; k++) bits[order[k] >> 5] |= 1u << (order[k] & 31);
}

/* ---- the walk ----
 * One walk over the token trie per lexer state. What the walk does below
 * each child of the root (marks, boundary entries, subtrees kept whole)
 * depends only on the lexer state there, the node and what the root
 * passed down, so it is kept as a list of operations and replayed when
 * another state's walk reaches the same: the states of an object's keys
 * (the listed names with any other string besides) differ in a few
 * subtrees and share the rest. */

enum { OP_MARK, OP_ENTRY, OP_SUB };
struct bn_walk_op {
    uint8_t kind;
    uint32_t a, b; /* MARK: positions a..b; ENTRY: token a, offset b; SUB: node a */
    int32_t lexeme; /* ENTRY, SUB */
};

struct bn_walk_memo {
    int32_t state; /* -1: empty slot */
    uint32_t node, lim, kset;
    uint8_t in_kset;
    uint32_t first, n; /* its operations */
};

#define MEMO_MAX_OPS (1u << 20) /* 16 MB per grammar */

typedef struct {
    bn_grammar *g;
    const bn_vocab *v;
    uint32_t *inside;
    bound_tmp *bt;
    size_t n_bt, cap_bt;
    bn_sub_group *subs;
    size_t n_subs, cap_subs;
    int recording;   /* appending to g->memo_ops from rec_first */
    size_t rec_first;
    int replaying, fresh; /* an operation not replayed makes the result fresh */
    uint32_t *replayed;   /* the root's answer, then the memo entries replayed */
    size_t n_replayed, cap_replayed;
} walk_ctx;

static uint32_t memo_hash(int32_t s, uint32_t node, uint32_t lim, uint32_t kset) {
    uint64_t x = (uint64_t)(uint32_t)s * 0x9E3779B97F4A7C15ull ^ (uint64_t)node * 0xC2B2AE3D27D4EB4Full ^
                 (uint64_t)lim << 32 ^ kset;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    return (uint32_t)(x >> 32);
}

static struct bn_walk_memo *memo_find(bn_grammar *g, int32_t s, uint32_t node, const struct bn_walk_level *up) {
    if (!g->memo) return NULL;
    for (size_t h = memo_hash(s, node, up->lim, up->kset) & g->memo_mask;; h = (h + 1) & g->memo_mask) {
        struct bn_walk_memo *e = &g->memo[h];
        if (e->state < 0) return NULL;
        if (e->state == s && e->node == node && e->lim == up->lim && e->kset == up->kset && e->in_kset == up->in_kset)
            return e;
    }
}

/* Keeps ops[first..n_memo_ops) as the walk below node from s. 0 when out of memory. */
static int memo_add(bn_grammar *g, int32_t s, uint32_t node, const struct bn_walk_level *up, size_t first) {
    if (!g->memo || 2 * (g->memo_used + 1) > g->memo_mask) {
        size_t cap = g->memo ? (g->memo_mask + 1) * 2 : 1024;
        struct bn_walk_memo *t = malloc(cap * sizeof *t);
        if (!t) return 0;
        for (size_t i = 0; i < cap; i++) t[i].state = -1;
        for (size_t i = 0; g->memo && i <= g->memo_mask; i++) {
            struct bn_walk_memo *e = &g->memo[i];
            if (e->state < 0) continue;
            size_t h = memo_hash(e->state, e->node, e->lim, e->kset) & (cap - 1);
            while (t[h].state >= 0) h = (h + 1) & (cap - 1);
            t[h] = *e;
        }
        free(g->memo);
        g->memo = t;
        g->memo_mask = cap - 1;
    }
    size_t h = memo_hash(s, node, up->lim, up->kset) & g->memo_mask;
    while (g->memo[h].state >= 0) h = (h + 1) & g->memo_mask;
    g->memo[h] = (struct bn_walk_memo){s, node, up->lim, up->kset, up->in_kset, (uint32_t)first,
                                       (uint32_t)(g->n_memo_ops - first)};
    g->memo_used++;
    return 1;
}

/* Appends op to the recording (if any): a recording past the budget is
 * dropped. 0 when out of memory. */
static int record(walk_ctx *c, struct bn_walk_op op) {
    bn_grammar *g = c->g;
    if (!c->replaying) c->fresh = 1;
    if (!c->recording) return 1;
    if (g->n_memo_ops >= MEMO_MAX_OPS) {
        g->n_memo_ops = c->rec_first;
        c->recording = 0;
        return 1;
    }
    if (!bn_grow((void **)&g->memo_ops, &g->cap_memo_ops, g->n_memo_ops + 1, sizeof *g->memo_ops)) return 0;
    g->memo_ops[g->n_memo_ops++] = op;
    return 1;
}

/* The operations of the walk (done and recorded); 0 when out of memory. */
static int op_mark(walk_ctx *c, uint32_t from, uint32_t to) {
    if (from == to) return 1;
    mark_tokens(c->inside, bn_vocab_order(c->v), from, to);
    return record(c, (struct bn_walk_op){OP_MARK, from, to, 0});
}

static int op_entry(walk_ctx *c, int32_t token, int32_t lexeme, uint32_t offset) {
    if (!bn_grow((void **)&c->bt, &c->cap_bt, c->n_bt + 1, sizeof *c->bt)) return 0;
    c->bt[c->n_bt++] = (bound_tmp){token, lexeme, offset, NULL, 0};
    return record(c, (struct bn_walk_op){OP_ENTRY, (uint32_t)token, offset, lexeme});
}

static int op_sub(walk_ctx *c, int32_t lexeme, uint32_t node) {
    if (!bn_grow((void **)&c->subs, &c->cap_subs, c->n_subs + 1, sizeof *c->subs)) return 0;
    c->subs[c->n_subs++] = (bn_sub_group){lexeme, node};
    return record(c, (struct bn_walk_op){OP_SUB, node, 0, lexeme});
}

static int note_replayed(walk_ctx *c, uint32_t x) {
    if (!bn_grow((void **)&c->replayed, &c->cap_replayed, c->n_replayed + 1, sizeof *c->replayed)) return 0;
    c->replayed[c->n_replayed++] = x;
    return 1;
}

static int replay(walk_ctx *c, const struct bn_walk_memo *e) {
    if (!note_replayed(c, e->first)) return 0;
    c->replaying = 1;
    for (uint32_t k = 0; k < e->n; k++) {
        struct bn_walk_op op = c->g->memo_ops[e->first + k]; /* (the array may move) */
        int ok = op.kind == OP_MARK    ? op_mark(c, op.a, op.b)
                 : op.kind == OP_ENTRY ? op_entry(c, (int32_t)op.a, op.lexeme, op.b)
                                       : op_sub(c, op.lexeme, op.a);
        if (!ok) return c->replaying = 0;
    }
    c->replaying = 0;
    return 1;
}

/* Walks the trie from lexer state s0 into c: 1, 0 out of memory, -1 when
 * the lexer's state budget is spent. */
static int walk(walk_ctx *c, int32_t s0) {
    bn_grammar *g = c->g;
    const bn_vocab *v = c->v;
    size_t n_nodes;
    const bn_trie_node *nodes = bn_vocab_trie(v, &n_nodes);
    const uint64_t(*below_sets)[4] = bn_vocab_below(v);
    const uint32_t *first_tok = bn_vocab_first_tok(v);
    struct bn_walk_level *w = g->walk;
    bn_lexer_view lv;
    bn_lexer_view_of(g->lexer, &lv);
    w[0] = (struct bn_walk_level){s0, 0, 0, 1};
    struct bn_absorb a0 = absorb_of(g, &lv, s0, BN_PLAIN_START, 0);
    if (a0.k == ABSORB_UNKNOWN || !note_replayed(c, a0.k) || !note_replayed(c, a0.kset)) return 0;
    if (a0.k > 0) {
        w[0].lim = a0.k;
        w[0].kset = a0.kset;
        if (!a0.kset) mark_plain_all(c->inside, v, a0.k);
    }
    uint32_t rec_node = 0, rec_end = 0; /* the root's child being recorded */
    int32_t rec_state = -1;
    for (size_t i = 1;;) {
        if (c->recording && i >= rec_end) { /* left the subtree: keep what it did */
            if (!memo_add(g, rec_state, rec_node, &w[0], c->rec_first)) return 0;
            c->recording = 0;
        }
        if (i >= n_nodes) break;
        const bn_trie_node *nd = &nodes[i];
        size_t d = nd->depth;
        const struct bn_walk_level *up = &w[d - 1];
        if (!(nd->flags & BN_TRIE_NOT_PLAIN) && nd->max_below <= up->lim) {
            if (!up->kset) { /* all marked already */
                i = nd->end;
                continue;
            }
            const uint64_t *K = g->ksets[up->kset];
            if (up->in_kset && !has_byte(K, nd->byte) &&
                !((below_sets[i][0] & K[0]) | (below_sets[i][1] & K[1]) | (below_sets[i][2] & K[2]) |
                  (below_sets[i][3] & K[3]))) {
                /* every token here and below avoids the excluded bytes: inside */
                if (!op_mark(c, first_tok[i], first_tok[nd->end])) return 0;
                i = nd->end;
                continue;
            }
        }
        int32_t s = bn_lexer_step(g->lexer, &lv, up->state, nd->byte);
        if (s < 0) {
            if (s == BN_LEX_BUDGET) return -1;
            i = nd->end;
            continue;
        }
        if (d == 1) {
            const struct bn_walk_memo *e = memo_find(g, s, (uint32_t)i, up);
            if (e) { /* walked before from this state */
                if (!replay(c, e)) return 0;
                i = nd->end;
                continue;
            }
            c->recording = g->n_memo_ops < MEMO_MAX_OPS;
            c->rec_first = g->n_memo_ops;
            rec_node = (uint32_t)i;
            rec_end = nd->end;
            rec_state = s;
        }
        struct bn_walk_level *here = &w[d];
        *here = *up;
        here->state = s;
        if (up->kset && has_byte(g->ksets[up->kset], nd->byte)) here->in_kset = 0;
        if (!op_mark(c, nd->tok_first, nd->tok_first + nd->tok_n)) return 0;
        if (nd->end == i + 1) { /* a leaf */
            i++;
            continue;
        }
        if (lv.n_acc[s]) {
            /* every token below may end a lexeme here and go on: a large
             * subtree is kept as the trie node, a small one as entries */
            size_t n_acc;
            bn_lexer_accepts(g->lexer, s, &n_acc);
            const int32_t *order = bn_vocab_order(v);
            for (size_t a = 0; a < n_acc; a++) {
                int32_t lexeme = bn_lexer_accepts(g->lexer, s, &n_acc)[a];
                if (nd->end - i > 64) {
                    if (!op_sub(c, lexeme, (uint32_t)i)) return 0;
                    continue;
                }
                for (size_t j = i + 1; j < nd->end; j++)
                    for (uint32_t k = 0; k < nodes[j].tok_n; k++)
                        if (!op_entry(c, order[nodes[j].tok_first + k], lexeme, (uint32_t)d)) return 0;
            }
        } else if (nd->end - i > 32) { /* (a small subtree costs less to walk than to ask) */
            /* a state that loops on every byte below: the whole subtree stays inside */
            int loops = bn_lexer_loops_on(g->lexer, s, below_sets[i]);
            if (loops < 0) return -1;
            bn_lexer_view_of(g->lexer, &lv);
            if (loops) {
                if (!op_mark(c, first_tok[i + 1], first_tok[nd->end])) return 0;
                i = nd->end;
                continue;
            }
        }
        i++;
    }
    return 1;
}

static uint64_t replayed_hash(const uint32_t *x, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++) h = (h ^ x[i]) * 0xBF58476D1CE4E5B9ull, h ^= h >> 31;
    return h;
}

static bn_token_classes *shared_find(bn_grammar *g, const uint32_t *x, size_t n) {
    if (!g->shared) return NULL;
    for (size_t h = replayed_hash(x, n) & g->shared_mask;; h = (h + 1) & g->shared_mask) {
        bn_token_classes *tc = g->shared[h];
        if (!tc) return NULL;
        if (tc->n_replayed == n && memcmp(tc->replayed, x, n * sizeof *x) == 0) return tc;
    }
}

/* Lists tc (which the grammar's class cache owns) by what it replayed. */
static int shared_add(bn_grammar *g, bn_token_classes *tc) {
    if (!g->shared || 2 * (g->shared_used + 1) > g->shared_mask) {
        size_t cap = g->shared ? (g->shared_mask + 1) * 2 : 256;
        bn_token_classes **t = calloc(cap, sizeof *t);
        if (!t) return 0;
        for (size_t i = 0; g->shared && i <= g->shared_mask; i++) {
            if (!g->shared[i]) continue;
            size_t h = replayed_hash(g->shared[i]->replayed, g->shared[i]->n_replayed) & (cap - 1);
            while (t[h]) h = (h + 1) & (cap - 1);
            t[h] = g->shared[i];
        }
        free(g->shared);
        g->shared = t;
        g->shared_mask = cap - 1;
    }
    size_t h = replayed_hash(tc->replayed, tc->n_replayed) & g->shared_mask;
    while (g->shared[h]) h = (h + 1) & g->shared_mask;
    g->shared[h] = tc;
    g->shared_used++;
    return 1;
}

static bn_token_classes *build_classes(bn_grammar *g, int32_t s0, bn_err *err) {
    const bn_vocab *v = g->vocab;
    int32_t n_tok = bn_vocab_n_tokens(v);
    size_t words = ((size_t)n_tok + 31) / 32;
    walk_ctx c = {g, v, calloc(words ? words : 1, sizeof(uint32_t)), NULL, 0, 0, NULL, 0, 0, 0, 0, 0, 0, NULL, 0, 0};
    bn_token_classes *tc = NULL;
    int r = c.inside ? walk(&c, s0) : 0;
    if (c.recording) { /* cut short: drop the partial recording */
        g->n_memo_ops = c.rec_first;
        c.recording = 0;
    }
    if (r <= 0) goto fail;
    if (!c.fresh) { /* made wholly from the memo: maybe made before */
        bn_token_classes *same = shared_find(g, c.replayed, c.n_replayed);
        if (same) {
            same->refs++;
            free(c.inside);
            free(c.bt);
            free(c.subs);
            free(c.replayed);
            return same;
        }
    }
    /* drop the boundary entries of tokens already inside; sort the rest by remainder */
    size_t m = 0;
    for (size_t i = 0; i < c.n_bt; i++) {
        int32_t t = c.bt[i].token;
        if (c.inside[t >> 5] >> (t & 31) & 1) continue;
        size_t len;
        const uint8_t *p = bn_vocab_bytes(v, t, &len);
        c.bt[m] = c.bt[i];
        c.bt[m].rest = p + c.bt[i].offset;
        c.bt[m].rest_n = len - c.bt[i].offset;
        m++;
    }
    if (m) qsort(c.bt, m, sizeof *c.bt, cmp_bound);
    tc = calloc(1, sizeof *tc);
    if (!tc) goto fail;
    tc->refs = 1;
    int32_t n_inside = (int32_t)bn_popcount_words(c.inside, words);
    tc->n_inside = n_inside;
    tc->subs = c.subs;
    tc->n_subs = (int32_t)c.n_subs;
    c.subs = NULL;
    tc->bytes = sizeof *tc + (size_t)tc->n_subs * sizeof *tc->subs;
    if (!build_rem_tries(tc, c.bt, m, bn_vocab_max_len(v))) goto fail;
    if ((size_t)n_inside * 32 < (size_t)n_tok) {
        /* few: keep a list */
        tc->inside_ids = malloc(((size_t)n_inside + 1) * sizeof *tc->inside_ids);
        if (!tc->inside_ids) goto fail;
        int32_t k = 0;
        for (size_t wd = 0; wd < words; wd++)
            for (uint32_t bits = c.inside[wd]; bits; bits &= bits - 1)
                tc->inside_ids[k++] = (int32_t)(wd * 32 + (size_t)__builtin_ctz(bits));
        tc->bytes += (size_t)n_inside * sizeof *tc->inside_ids;
        free(c.inside);
    } else {
        tc->inside_bits = c.inside;
        tc->bytes += words * sizeof *c.inside;
    }
    free(c.bt);
    if (!c.fresh) {
        tc->replayed = c.replayed;
        tc->n_replayed = c.n_replayed;
        c.replayed = NULL;
        if (!shared_add(g, tc)) {
            bn_token_classes_free(tc);
            return bn_errf(err, "out of memory computing token classes"), NULL;
        }
    }
    free(c.replayed);
    return tc;
fail:
    bn_token_classes_free(tc);
    free(c.inside);
    free(c.bt);
    free(c.subs);
    free(c.replayed);
    if (r < 0) bn_errf_input(err, "the grammar needs more than %zu lexer states (max_dfa_states)", g->lim.max_dfa_states);
    else bn_errf(err, "out of memory computing token classes");
    return NULL;
}

const bn_token_classes *bn_grammar_classes(bn_grammar *g, int32_t s, bn_err *err) {
    /* states that no token can tell apart share their classes: key on the
     * state clamped to the longest token */
    s = bn_lexer_clamped(g->lexer, s, (uint32_t)bn_vocab_max_len(g->vocab));
    if (s < 0) {
        bn_errf_input(err, "the grammar needs more than %zu lexer states (max_dfa_states)", g->lim.max_dfa_states);
        return NULL;
    }
    if ((size_t)s < g->cap_classes && g->classes[s]) return g->classes[s];
    if ((size_t)s >= g->cap_classes) {
        size_t c = g->cap_classes ? g->cap_classes : 64;
        while (c <= (size_t)s) c *= 2;
        bn_token_classes **p = realloc(g->classes, c * sizeof *p);
        if (!p) return bn_errf(err, "out of memory"), NULL;
        memset(p + g->cap_classes, 0, (c - g->cap_classes) * sizeof *p);
        g->classes = p;
        g->cap_classes = c;
    }
    if (g->cache_bytes > g->max_cache_bytes) {
        /* over budget: start the cache again rather than grow without bound */
        for (size_t i = 0; i < g->cap_classes; i++) {
            bn_token_classes_free(g->classes[i]);
            g->classes[i] = NULL;
        }
        if (g->shared) memset(g->shared, 0, (g->shared_mask + 1) * sizeof *g->shared);
        g->shared_used = 0;
        g->cache_bytes = 0;
    }
    bn_token_classes *tc = build_classes(g, s, err);
    if (!tc) return NULL;
    g->classes[s] = tc;
    if (tc->refs == 1) g->cache_bytes += tc->bytes; /* (classes shared are counted once) */
    return tc;
}
