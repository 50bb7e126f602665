/* grammar.c: compiling a grammar builder into lexemes and a flat
 * context-free grammar (grammar.h), and the cache of token classes per
 * lexer state. */
#include "grammar/grammar_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- lowering: expressions -> productions over lexemes ---- */

typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *v, int32_t x) {
    if (v->n == v->cap) {
        size_t c = v->cap ? v->cap * 2 : 16;
        int32_t *p = realloc(v->v, c * sizeof *p);
        if (!p) return 0;
        v->v = p;
        v->cap = c;
    }
    v->v[v->n++] = x;
    return 1;
}

typedef struct {
    bn_gb *gb;
    bn_rx *rx;
    bn_lexer *lx;
    bn_err *err;
    int failed;
    int8_t *pure;       /* per expression: -1 unknown, 0, 1 */
    bn_rxid *as_rx;     /* per expression: its regex once computed, or BN_RX_ERROR */
    uint8_t *inlinable; /* per rule: 0 unknown, 1 visiting, 2 yes, 3 no */
    int32_t *nt_of_rule; /* per rule: its nonterminal, -1 not yet */
    ivec rule_queue;     /* rules whose nonterminal needs productions */
    int32_t *nullable_nt; /* open addressing: regex id -> its "empty or lexeme" nonterminal */
    bn_rxid *nullable_rx;
    size_t nullable_mask, nullable_used;
    int32_t n_nt;
    ivec prods; /* flat: lhs, symbols..., BN_SYM_END per production */
    size_t n_prods;
    size_t max_prods;
} lower_ctx;

static int lfail(lower_ctx *c, const char *msg) {
    if (!c->failed) bn_errf(c->err, "%s", msg);
    c->failed = 1;
    return 0;
}

static int is_pure(lower_ctx *c, bn_gx x);

/* A rule is inlined when the builder asks for it and its body is regular
 * and reaches no rule on a cycle. */
static int rule_inlinable(lower_ctx *c, int32_t r) {
    if (!bn_gb_inline_regular(c->gb)) return 0;
    if (c->inlinable[r] == 1) return 0; /* on a cycle */
    if (c->inlinable[r] == 0) {
        c->inlinable[r] = 1;
        bn_gx body = bn_gb_body(c->gb, r);
        int ok = body != BN_GX_ERROR && is_pure(c, body);
        c->inlinable[r] = ok ? 2 : 3;
    }
    return c->inlinable[r] == 2;
}

static int is_pure(lower_ctx *c, bn_gx x) {
    if (c->pure[x] >= 0) return c->pure[x];
    int r = 1;
    switch (bn_gb_kind(c->gb, x)) {
    case BN_GX_TERM: r = 1; break;
    case BN_GX_REF: r = rule_inlinable(c, bn_gb_ref_rule(c->gb, x)); break;
    default: {
        size_t n;
        const bn_gx *p = bn_gb_parts(c->gb, x, &n);
        for (size_t i = 0; i < n && r; i++) r = is_pure(c, p[i]);
    }
    }
    c->pure[x] = (int8_t)r;
    return r;
}

static bn_rxid to_rx(lower_ctx *c, bn_gx x, int depth) {
    if (c->as_rx[x] != BN_RX_ERROR) return c->as_rx[x];
    if (depth > 2000) {
        lfail(c, "the grammar is nested too deeply");
        return BN_RX_ERROR;
    }
    bn_rxid r = BN_RX_ERROR;
    size_t n;
    const bn_gx *p;
    switch (bn_gb_kind(c->gb, x)) {
    case BN_GX_TERM: r = bn_gb_term_rx(c->gb, x); break;
    case BN_GX_REF: r = to_rx(c, bn_gb_body(c->gb, bn_gb_ref_rule(c->gb, x)), depth + 1); break;
    case BN_GX_SEQ: {
        p = bn_gb_parts(c->gb, x, &n);
        r = bn_rx_empty(c->rx);
        for (size_t i = n; i-- > 0;) r = bn_rx_concat(c->rx, to_rx(c, p[i], depth + 1), r);
        break;
    }
    case BN_GX_ALT: {
        p = bn_gb_parts(c->gb, x, &n);
        bn_rxid *v = malloc((n ? n : 1) * sizeof *v);
        if (!v) return lfail(c, "out of memory"), BN_RX_ERROR;
        for (size_t i = 0; i < n; i++) v[i] = to_rx(c, p[i], depth + 1);
        r = bn_rx_alt_n(c->rx, v, n);
        free(v);
        break;
    }
    case BN_GX_REPEAT: {
        uint32_t lo, hi;
        bn_gb_bounds(c->gb, x, &lo, &hi);
        p = bn_gb_parts(c->gb, x, &n);
        r = bn_rx_repeat(c->rx, to_rx(c, p[0], depth + 1), lo, hi);
        break;
    }
    }
    if (r == BN_RX_ERROR) {
        lfail(c, bn_rx_failed(c->rx) ? bn_rx_failed(c->rx) : "bad regular expression");
        return r;
    }
    c->as_rx[x] = r;
    return r;
}

static int32_t new_nt(lower_ctx *c) { return c->n_nt++; }

static int32_t nt_of_rule(lower_ctx *c, int32_t r) {
    if (c->nt_of_rule[r] < 0) {
        if (!bn_gb_is_defined(c->gb, r)) {
            size_t len;
            const char *name = bn_gb_rule_name(c->gb, r, &len);
            if (!c->failed) bn_errf(c->err, "rule '%.*s' is used but not defined", (int)(len > 200 ? 200 : len), name);
            c->failed = 1;
            return -1;
        }
        c->nt_of_rule[r] = new_nt(c);
        if (!ivec_push(&c->rule_queue, r)) return lfail(c, "out of memory"), -1;
    }
    return c->nt_of_rule[r];
}

/* A sequence being built: symbols, with a pending run of regular parts. */
typedef struct {
    ivec syms;
    ivec pending; /* regular parts not yet emitted: concatenated once, at flush */
} seq_builder;

static int emit_production(lower_ctx *c, int32_t lhs, const ivec *syms) {
    if (++c->n_prods > c->max_prods) return lfail(c, "the grammar has too many productions");
    if (!ivec_push(&c->prods, lhs)) return lfail(c, "out of memory");
    for (size_t i = 0; i < syms->n; i++)
        if (!ivec_push(&c->prods, syms->v[i])) return lfail(c, "out of memory");
    if (!ivec_push(&c->prods, BN_SYM_END)) return lfail(c, "out of memory");
    return 1;
}

/* The symbol(s) for regex r: nothing for the empty string, a lexeme, or
 * for a regex that also matches "" a nonterminal "empty or the lexeme"
 * (lexemes never match ""). */
static int flush(lower_ctx *c, seq_builder *s) {
    if (s->pending.n == 0 || c->failed) return !c->failed;
    bn_rxid r = bn_rx_concat_n(c->rx, s->pending.v, s->pending.n);
    s->pending.n = 0;
    if (r == BN_RX_ERROR) return lfail(c, bn_rx_failed(c->rx) ? bn_rx_failed(c->rx) : "regex budget");
    bn_rx_kind k = bn_rx_kind_of(c->rx, r);
    if (k == BN_RX_EMPTY) return 1;
    int32_t lex = k == BN_RX_NOTHING ? -1 : bn_lexer_add(c->lx, r, c->err);
    if (k != BN_RX_NOTHING && lex < 0) return lfail(c, "lexeme budget");
    if (k == BN_RX_NOTHING) {
        /* matches nothing: a nonterminal without productions */
        int32_t nt = new_nt(c);
        return ivec_push(&s->syms, nt) ? 1 : lfail(c, "out of memory");
    }
    if (!bn_rx_nullable(c->rx, r)) return ivec_push(&s->syms, BN_SYM_LEX(lex)) ? 1 : lfail(c, "out of memory");
    size_t h = ((uint32_t)r * 2654435761u) & c->nullable_mask;
    for (; c->nullable_rx[h] != BN_RX_ERROR; h = (h + 1) & c->nullable_mask)
        if (c->nullable_rx[h] == r) return ivec_push(&s->syms, c->nullable_nt[h]) ? 1 : lfail(c, "out of memory");
    int32_t nt = new_nt(c);
    ivec one = {0, 0, 0};
    int ok = emit_production(c, nt, &one) && ivec_push(&one, BN_SYM_LEX(lex)) && emit_production(c, nt, &one) &&
             ivec_push(&s->syms, nt);
    free(one.v);
    if (!ok) return lfail(c, "out of memory");
    c->nullable_rx[h] = r;
    c->nullable_nt[h] = nt;
    if (++c->nullable_used * 2 > c->nullable_mask) { /* grow the table */
        size_t cap = (c->nullable_mask + 1) * 2;
        bn_rxid *keys = malloc(cap * sizeof *keys);
        int32_t *vals = malloc(cap * sizeof *vals);
        if (!keys || !vals) {
            free(keys);
            free(vals);
            return lfail(c, "out of memory");
        }
        for (size_t i = 0; i < cap; i++) keys[i] = BN_RX_ERROR;
        for (size_t i = 0; i <= c->nullable_mask; i++) {
            if (c->nullable_rx[i] == BN_RX_ERROR) continue;
            size_t at = ((uint32_t)c->nullable_rx[i] * 2654435761u) & (cap - 1);
            while (keys[at] != BN_RX_ERROR) at = (at + 1) & (cap - 1);
            keys[at] = c->nullable_rx[i];
            vals[at] = c->nullable_nt[i];
        }
        free(c->nullable_rx);
        free(c->nullable_nt);
        c->nullable_rx = keys;
        c->nullable_nt = vals;
        c->nullable_mask = cap - 1;
    }
    return 1;
}

static int lower_into(lower_ctx *c, bn_gx x, seq_builder *s, int depth);

/* A nonterminal deriving exactly x. */
static int32_t nt_for(lower_ctx *c, bn_gx x, int depth) {
    if (bn_gb_kind(c->gb, x) == BN_GX_REF && !is_pure(c, x)) return nt_of_rule(c, bn_gb_ref_rule(c->gb, x));
    int32_t nt = new_nt(c);
    size_t n = 1;
    const bn_gx *alts = &x;
    if (bn_gb_kind(c->gb, x) == BN_GX_ALT && !is_pure(c, x)) alts = bn_gb_parts(c->gb, x, &n);
    for (size_t i = 0; i < n && !c->failed; i++) {
        seq_builder s = {{0, 0, 0}, {0, 0, 0}};
        if (lower_into(c, alts[i], &s, depth + 1) && flush(c, &s)) emit_production(c, nt, &s.syms);
        free(s.syms.v);
        free(s.pending.v);
    }
    return c->failed ? -1 : nt;
}

static int lower_into(lower_ctx *c, bn_gx x, seq_builder *s, int depth) {
    if (c->failed) return 0;
    if (depth > 2000) return lfail(c, "the grammar is nested too deeply");
    if (is_pure(c, x)) {
        bn_rxid r = to_rx(c, x, 0);
        if (r == BN_RX_ERROR) return 0;
        return ivec_push(&s->pending, r) || lfail(c, "out of memory");
    }
    size_t n;
    const bn_gx *p;
    switch (bn_gb_kind(c->gb, x)) {
    case BN_GX_SEQ:
        p = bn_gb_parts(c->gb, x, &n);
        for (size_t i = 0; i < n; i++)
            if (!lower_into(c, p[i], s, depth + 1)) return 0;
        return 1;
    case BN_GX_REF:
    case BN_GX_ALT: {
        if (!flush(c, s)) return 0;
        int32_t nt = nt_for(c, x, depth);
        return nt >= 0 && (ivec_push(&s->syms, nt) || lfail(c, "out of memory"));
    }
    case BN_GX_REPEAT: {
        uint32_t lo, hi;
        bn_gb_bounds(c->gb, x, &lo, &hi);
        p = bn_gb_parts(c->gb, x, &n);
        if (!flush(c, s)) return 0;
        if (hi < lo) { /* matches nothing */
            return ivec_push(&s->syms, new_nt(c)) || lfail(c, "out of memory");
        }
        if (hi == 0) return 1;
        int32_t item = nt_for(c, p[0], depth);
        if (item < 0) return 0;
        if ((hi != BN_RX_INF && hi > 100000) || lo > 100000) return lfail(c, "a repetition bound is over 100000");
        for (uint32_t i = 0; i < lo; i++)
            if (!ivec_push(&s->syms, item)) return lfail(c, "out of memory");
        ivec body = {0, 0, 0};
        int ok = 1;
        if (hi == BN_RX_INF) {
            /* star ::= empty | star item   (left recursion: constant work per item for Earley) */
            int32_t star = new_nt(c);
            ok = emit_production(c, star, &body) && ivec_push(&body, star) && ivec_push(&body, item) &&
                 emit_production(c, star, &body) && ivec_push(&s->syms, star);
        } else if (hi > lo) {
            /* opt_k ::= empty | item opt_(k-1): at most hi - lo more */
            int32_t prev = -1;
            for (uint32_t k = 0; k < hi - lo && ok; k++) {
                int32_t opt = new_nt(c);
                body.n = 0;
                ok = emit_production(c, opt, &body) && ivec_push(&body, item) && (prev < 0 || ivec_push(&body, prev)) &&
                     emit_production(c, opt, &body);
                prev = opt;
            }
            ok = ok && ivec_push(&s->syms, prev);
        }
        free(body.v);
        return ok || lfail(c, "out of memory");
    }
    default: return lfail(c, "internal: unexpected expression");
    }
}

static void lower_ctx_free(lower_ctx *c) {
    free(c->pure);
    free(c->as_rx);
    free(c->inlinable);
    free(c->nt_of_rule);
    free(c->rule_queue.v);
    free(c->nullable_rx);
    free(c->nullable_nt);
    free(c->prods.v);
}

static int cmp_prod_lhs(const void *a, const void *b) {
    const int32_t *x = *(int32_t *const *)a, *y = *(int32_t *const *)b;
    if (x[0] != y[0]) return (x[0] > y[0]) - (x[0] < y[0]);
    return (x > y) - (x < y);
}

/* Flattens c->prods into g->cfg, grouped by nonterminal; computes nullable. */
static int build_cfg(lower_ctx *c, bn_cfg *cfg, int32_t start) {
    size_t np = c->n_prods;
    int32_t **starts = malloc((np ? np : 1) * sizeof *starts);
    if (!starts) return lfail(c, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < c->prods.n;) {
        starts[k++] = &c->prods.v[i];
        i++;
        while (c->prods.v[i] != BN_SYM_END) i++;
        i++;
    }
    qsort(starts, np, sizeof *starts, cmp_prod_lhs);
    cfg->n_nt = c->n_nt;
    cfg->start = start;
    cfg->n_syms = c->prods.n - np; /* every production loses its lhs */
    cfg->syms = malloc((cfg->n_syms + 1) * sizeof *cfg->syms);
    cfg->lhs = malloc((cfg->n_syms + 1) * sizeof *cfg->lhs);
    cfg->prods = malloc((np + 1) * sizeof *cfg->prods);
    cfg->nt_first = calloc((size_t)c->n_nt + 1, sizeof *cfg->nt_first);
    cfg->nullable = calloc((size_t)c->n_nt + 1, 1);
    if (!cfg->syms || !cfg->lhs || !cfg->prods || !cfg->nt_first || !cfg->nullable) {
        free(starts);
        return lfail(c, "out of memory");
    }
    size_t pos = 0;
    for (size_t i = 0; i < np; i++) {
        const int32_t *p = starts[i];
        int32_t lhs = p[0];
        cfg->prods[i] = (int32_t)pos;
        cfg->nt_first[lhs + 1]++;
        for (p++;; p++) {
            cfg->syms[pos] = *p;
            cfg->lhs[pos++] = lhs;
            if (*p == BN_SYM_END) break;
        }
    }
    for (int32_t a = 0; a < c->n_nt; a++) cfg->nt_first[a + 1] += cfg->nt_first[a];
    free(starts);
    /* nullable: a worklist over the productions (each counts the symbols
     * not yet known nullable; a lexeme never is) */
    size_t n_prod = np;
    int32_t *left = malloc((n_prod + 1) * sizeof *left);
    int32_t *occ_first = calloc((size_t)c->n_nt + 2, sizeof *occ_first);
    int32_t *occ = malloc((cfg->n_syms + 1) * sizeof *occ);
    int32_t *queue = malloc(((size_t)c->n_nt + 1) * sizeof *queue);
    if (!left || !occ_first || !occ || !queue) {
        free(left);
        free(occ_first);
        free(occ);
        free(queue);
        return lfail(c, "out of memory");
    }
    for (size_t p = 0; p < n_prod; p++)
        for (int32_t d = cfg->prods[p]; cfg->syms[d] != BN_SYM_END; d++)
            if (cfg->syms[d] >= 0) occ_first[cfg->syms[d] + 1]++;
    for (int32_t a = 0; a < c->n_nt; a++) occ_first[a + 1] += occ_first[a];
    size_t qn = 0, qi = 0;
    for (size_t p = 0; p < n_prod; p++) {
        int32_t n_left = 0;
        for (int32_t d = cfg->prods[p]; cfg->syms[d] != BN_SYM_END; d++) {
            int32_t sym = cfg->syms[d];
            if (sym < 0) n_left = INT32_MAX / 2; /* a lexeme: never empty */
            else {
                if (n_left < INT32_MAX / 2) n_left++;
                occ[occ_first[sym]++] = (int32_t)p; /* filled in order; occ_first is shifted back below */
            }
        }
        left[p] = n_left;
        int32_t lhs = cfg->lhs[cfg->prods[p]];
        if (n_left == 0 && !cfg->nullable[lhs]) {
            cfg->nullable[lhs] = 1;
            queue[qn++] = lhs;
        }
    }
    for (int32_t a = c->n_nt; a > 0; a--) occ_first[a] = occ_first[a - 1];
    occ_first[0] = 0;
    while (qi < qn) {
        int32_t a = queue[qi++];
        for (int32_t o = occ_first[a]; o < occ_first[a + 1]; o++) {
            int32_t p = occ[o];
            if (--left[p] == 0) {
                int32_t lhs = cfg->lhs[cfg->prods[p]];
                if (!cfg->nullable[lhs]) {
                    cfg->nullable[lhs] = 1;
                    queue[qn++] = lhs;
                }
            }
        }
    }
    free(left);
    free(occ_first);
    free(occ);
    free(queue);
    return 1;
}

bn_grammar *bn_grammar_compile(bn_gb *gb, bn_vocab *v, bn_err *err) {
    bn_grammar *g = calloc(1, sizeof *g);
    lower_ctx c;
    memset(&c, 0, sizeof c);
    if (!g) {
        bn_gb_free(gb);
        bn_errf(err, "out of memory");
        return NULL;
    }
    atomic_init(&g->refs, 1);
    g->gb = gb;
    g->lim = *bn_gb_limits(gb);
    g->max_cache_bytes = (size_t)1 << 30;
    pthread_mutex_init(&g->lock, NULL);
    g->vocab = v;
    bn_vocab_retain(v);
    if (bn_gb_failed(gb)) {
        bn_errf(err, "%s", bn_gb_failed(gb));
        goto fail;
    }
    int32_t start_rule = bn_gb_start(gb);
    if (start_rule < 0 || !bn_gb_is_defined(gb, start_rule)) {
        if (start_rule >= 0) {
            size_t len;
            const char *name = bn_gb_rule_name(gb, start_rule, &len);
            bn_errf(err, "the grammar has no rule '%.*s'", (int)(len > 200 ? 200 : len), name);
        } else
            bn_errf(err, "the grammar has no start rule");
        goto fail;
    }
    g->lexer = bn_lexer_new(bn_gb_rx(gb), g->lim.max_nfa_states, g->lim.max_dfa_states);
    size_t n_x = bn_gb_n_exprs(gb);
    c.gb = gb;
    c.rx = bn_gb_rx(gb);
    c.lx = g->lexer;
    c.err = err;
    c.max_prods = g->lim.max_exprs * 4;
    c.pure = malloc((n_x ? n_x : 1) * sizeof *c.pure);
    c.as_rx = malloc((n_x ? n_x : 1) * sizeof *c.as_rx);
    c.inlinable = calloc(bn_gb_n_rules(gb) + 1, 1);
    c.nullable_mask = 255;
    c.nullable_rx = malloc(256 * sizeof *c.nullable_rx);
    c.nullable_nt = malloc(256 * sizeof *c.nullable_nt);
    if (c.nullable_rx)
        for (size_t i = 0; i < 256; i++) c.nullable_rx[i] = BN_RX_ERROR;
    c.nt_of_rule = malloc((bn_gb_n_rules(gb) + 1) * sizeof *c.nt_of_rule);
    if (!g->lexer || !c.pure || !c.as_rx || !c.inlinable || !c.nt_of_rule || !c.nullable_rx || !c.nullable_nt) {
        bn_errf(err, "out of memory");
        goto fail_lower;
    }
    memset(c.pure, 0xff, n_x * sizeof *c.pure);
    for (size_t i = 0; i < n_x; i++) c.as_rx[i] = BN_RX_ERROR;
    memset(c.nt_of_rule, 0xff, (bn_gb_n_rules(gb) + 1) * sizeof *c.nt_of_rule);
    /* the start nonterminal derives the start rule's body, even when that rule could be inlined */
    int32_t start_nt = new_nt(&c);
    {
        seq_builder s = {{0, 0, 0}, {0, 0, 0}};
        if (lower_into(&c, bn_gb_body(gb, start_rule), &s, 0) && flush(&c, &s)) emit_production(&c, start_nt, &s.syms);
        free(s.syms.v);
        free(s.pending.v);
    }
    for (size_t q = 0; q < c.rule_queue.n && !c.failed; q++) {
        int32_t r = c.rule_queue.v[q];
        int32_t nt = c.nt_of_rule[r];
        bn_gx body = bn_gb_body(gb, r);
        size_t n = 1;
        const bn_gx *alts = &body;
        if (bn_gb_kind(gb, body) == BN_GX_ALT && !is_pure(&c, body)) alts = bn_gb_parts(gb, body, &n);
        for (size_t i = 0; i < n && !c.failed; i++) {
            seq_builder s = {{0, 0, 0}, {0, 0, 0}};
            if (lower_into(&c, alts[i], &s, 0) && flush(&c, &s)) emit_production(&c, nt, &s.syms);
            free(s.syms.v);
            free(s.pending.v);
        }
    }
    if (c.failed) goto fail_lower;
    if (!build_cfg(&c, &g->cfg, start_nt) || !bn_lexer_finish(g->lexer, err)) goto fail_lower;
    g->n_productions = c.n_prods;
    lower_ctx_free(&c);
    if (!bn_token_walk_init(g)) {
        bn_errf(err, "out of memory");
        goto fail;
    }
    return g;
fail_lower:
    lower_ctx_free(&c);
fail:
    bn_grammar_free(g);
    return NULL;
}

void bn_grammar_retain(bn_grammar *g) { atomic_fetch_add(&g->refs, 1); }

void bn_grammar_free(bn_grammar *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    for (size_t i = 0; i < g->cap_classes; i++) bn_token_classes_free(g->classes[i]);
    free(g->classes);
    bn_lexer_free(g->lexer);
    bn_cfg_free(&g->cfg);
    bn_gb_free(g->gb);
    bn_vocab_free(g->vocab);
    free(g->walk);
    free(g->absorb);
    free(g->ksets);
    free(g->plain_rx);
    free(g->memo);
    free(g->memo_ops);
    free(g->shared);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

bn_vocab *bn_grammar_vocab(const bn_grammar *g) { return g->vocab; }

void bn_grammar_stats_get(bn_grammar *g, bn_grammar_stats *s) {
    pthread_mutex_lock(&g->lock);
    s->n_lexemes = (size_t)bn_lexer_n_lexemes(g->lexer);
    s->n_nonterminals = (size_t)g->cfg.n_nt;
    s->n_productions = g->n_productions;
    s->n_nfa_states = bn_lexer_n_nfa(g->lexer);
    s->n_dfa_states = bn_lexer_n_dfa(g->lexer);
    s->n_cached_states = 0;
    for (size_t i = 0; i < g->cap_classes; i++) s->n_cached_states += g->classes[i] != NULL;
    s->cache_bytes = g->cache_bytes;
    pthread_mutex_unlock(&g->lock);
}
