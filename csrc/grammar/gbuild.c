/* gbuild.c: the grammar builder (gbuild.h): rules by name, expressions in
 * one growable array. */
#include "base/grow.h"
#include "grammar/gbuild.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t kind;
    int32_t a;         /* TERM: regex id; REF: rule */
    uint32_t first, n; /* SEQ, ALT, REPEAT: parts[first..first+n) */
    uint32_t min, max; /* REPEAT */
} gx_node;

typedef struct {
    uint32_t name_off, name_len;
    bn_gx body;
} gb_rule;

struct bn_gb {
    bn_grammar_limits lim;
    bn_rx *rx;
    gx_node *x;
    size_t n_x, cap_x;
    bn_gx *parts;
    size_t n_parts, cap_parts;
    gb_rule *rule;
    size_t n_rule, cap_rule;
    char *names;
    size_t n_names, cap_names;
    int32_t *index; /* open addressing over rule names, -1 empty */
    size_t index_mask;
    int32_t start;
    int inline_regular;
    size_t fresh; /* counter for bn_gb_new_rule's names */
    const char *failed;
};

void bn_gb_default_limits(bn_grammar_limits *lim) {
    lim->max_rx_nodes = 1000000;
    lim->max_exprs = 1000000;
    lim->max_rules = 100000;
    lim->max_nfa_states = 2000000;
    lim->max_dfa_states = 50000;
    lim->max_items = 100000;
    lim->max_branches = 256;
    lim->max_work = 1000000;
}

bn_gb *bn_gb_new(const bn_grammar_limits *lim) {
    bn_gb *gb = calloc(1, sizeof *gb);
    if (!gb) return NULL;
    bn_gb_default_limits(&gb->lim);
    if (lim) {
#define TAKE(f) if (lim->f) gb->lim.f = lim->f
        TAKE(max_rx_nodes); TAKE(max_exprs); TAKE(max_rules); TAKE(max_nfa_states);
        TAKE(max_dfa_states); TAKE(max_items); TAKE(max_branches); TAKE(max_work);
#undef TAKE
    }
    gb->rx = bn_rx_new(gb->lim.max_rx_nodes);
    gb->index_mask = 255;
    gb->index = malloc((gb->index_mask + 1) * sizeof *gb->index);
    if (!gb->rx || !gb->index) {
        bn_gb_free(gb);
        return NULL;
    }
    memset(gb->index, 0xff, (gb->index_mask + 1) * sizeof *gb->index);
    gb->start = -1;
    return gb;
}

void bn_gb_free(bn_gb *gb) {
    if (!gb) return;
    bn_rx_free(gb->rx);
    free(gb->x);
    free(gb->parts);
    free(gb->rule);
    free(gb->names);
    free(gb->index);
    free(gb);
}

const bn_grammar_limits *bn_gb_limits(const bn_gb *gb) { return &gb->lim; }
bn_rx *bn_gb_rx(bn_gb *gb) { return gb->rx; }
const char *bn_gb_failed(const bn_gb *gb) { return gb->failed ? gb->failed : bn_rx_failed(gb->rx); }

static bn_gx fail(bn_gb *gb, const char *why) {
    if (!gb->failed) gb->failed = why;
    return BN_GX_ERROR;
}

static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int reindex(bn_gb *gb) {
    size_t cap = (gb->index_mask + 1) * 2;
    int32_t *t = malloc(cap * sizeof *t);
    if (!t) return 0;
    memset(t, 0xff, cap * sizeof *t);
    for (size_t i = 0; i < gb->n_rule; i++) {
        size_t h = name_hash(gb->names + gb->rule[i].name_off, gb->rule[i].name_len) & (cap - 1);
        while (t[h] >= 0) h = (h + 1) & (cap - 1);
        t[h] = (int32_t)i;
    }
    free(gb->index);
    gb->index = t;
    gb->index_mask = cap - 1;
    return 1;
}

int32_t bn_gb_rule(bn_gb *gb, const char *name, size_t len) {
    size_t h = name_hash(name, len) & gb->index_mask;
    for (int32_t r; (r = gb->index[h]) >= 0; h = (h + 1) & gb->index_mask)
        if (gb->rule[r].name_len == len && memcmp(gb->names + gb->rule[r].name_off, name, len) == 0) return r;
    if (gb->n_rule >= gb->lim.max_rules) return fail(gb, "the grammar has too many rules");
    if (len > UINT32_MAX || gb->n_names + len > UINT32_MAX) return fail(gb, "rule names too long");
    if (!bn_grow((void **)&gb->rule, &gb->cap_rule, gb->n_rule + 1, sizeof *gb->rule) ||
        !bn_grow((void **)&gb->names, &gb->cap_names, gb->n_names + len + 1, 1))
        return fail(gb, "out of memory");
    memcpy(gb->names + gb->n_names, name, len);
    gb->names[gb->n_names + len] = 0;
    gb->rule[gb->n_rule] = (gb_rule){(uint32_t)gb->n_names, (uint32_t)len, BN_GX_ERROR};
    gb->n_names += len + 1;
    int32_t id = (int32_t)gb->n_rule++;
    gb->index[h] = id;
    if (gb->n_rule * 2 > gb->index_mask && !reindex(gb)) return fail(gb, "out of memory");
    return id;
}

int32_t bn_gb_new_rule(bn_gb *gb, const char *hint) {
    char name[96];
    /* a space cannot appear in a GBNF name, so these never clash with a user's */
    int n = snprintf(name, sizeof name, "%.64s %zu", hint, gb->fresh++);
    return bn_gb_rule(gb, name, (size_t)n);
}

int bn_gb_define(bn_gb *gb, int32_t rule, bn_gx body, bn_err *err) {
    if (rule < 0 || (size_t)rule >= gb->n_rule) return bn_errf(err, "no such rule");
    if (gb->rule[rule].body != BN_GX_ERROR)
        return bn_errf(err, "rule '%s' is defined twice", gb->names + gb->rule[rule].name_off);
    gb->rule[rule].body = body;
    return 1;
}

int bn_gb_is_defined(const bn_gb *gb, int32_t rule) {
    return rule >= 0 && (size_t)rule < gb->n_rule && gb->rule[rule].body != BN_GX_ERROR;
}

const char *bn_gb_rule_name(const bn_gb *gb, int32_t rule, size_t *len) {
    if (len) *len = gb->rule[rule].name_len;
    return gb->names + gb->rule[rule].name_off;
}

size_t bn_gb_n_rules(const bn_gb *gb) { return gb->n_rule; }
void bn_gb_set_start(bn_gb *gb, int32_t rule) { gb->start = rule; }
int32_t bn_gb_start(const bn_gb *gb) { return gb->start; }
void bn_gb_set_inline_regular(bn_gb *gb, int on) { gb->inline_regular = on; }
int bn_gb_inline_regular(const bn_gb *gb) { return gb->inline_regular; }

static bn_gx add(bn_gb *gb, gx_node node, const bn_gx *parts, size_t n) {
    if (gb->n_x >= gb->lim.max_exprs) return fail(gb, "the grammar has too many expressions");
    for (size_t i = 0; i < n; i++)
        if (parts[i] == BN_GX_ERROR) return BN_GX_ERROR;
    if (!bn_grow((void **)&gb->x, &gb->cap_x, gb->n_x + 1, sizeof *gb->x) ||
        !bn_grow((void **)&gb->parts, &gb->cap_parts, gb->n_parts + n, sizeof *gb->parts))
        return fail(gb, "out of memory");
    if (n) memcpy(gb->parts + gb->n_parts, parts, n * sizeof *parts);
    node.first = (uint32_t)gb->n_parts;
    node.n = (uint32_t)n;
    gb->n_parts += n;
    gb->x[gb->n_x] = node;
    return (bn_gx)gb->n_x++;
}

bn_gx bn_gb_term(bn_gb *gb, bn_rxid re) {
    if (re == BN_RX_ERROR) return fail(gb, bn_rx_failed(gb->rx) ? bn_rx_failed(gb->rx) : "bad terminal");
    return add(gb, (gx_node){BN_GX_TERM, re, 0, 0, 0, 0}, NULL, 0);
}

bn_gx bn_gb_lit(bn_gb *gb, const char *s) { return bn_gb_term(gb, bn_rx_literal(gb->rx, s, strlen(s))); }

bn_gx bn_gb_ref(bn_gb *gb, int32_t rule) {
    if (rule < 0) return BN_GX_ERROR;
    return add(gb, (gx_node){BN_GX_REF, rule, 0, 0, 0, 0}, NULL, 0);
}

bn_gx bn_gb_seq(bn_gb *gb, const bn_gx *xs, size_t n) {
    if (n == 1) return xs[0];
    return add(gb, (gx_node){BN_GX_SEQ, 0, 0, 0, 0, 0}, xs, n);
}

bn_gx bn_gb_seq2(bn_gb *gb, bn_gx a, bn_gx b) {
    bn_gx v[2] = {a, b};
    return bn_gb_seq(gb, v, 2);
}

bn_gx bn_gb_alt(bn_gb *gb, const bn_gx *xs, size_t n) {
    if (n == 1) return xs[0];
    return add(gb, (gx_node){BN_GX_ALT, 0, 0, 0, 0, 0}, xs, n);
}

bn_gx bn_gb_alt2(bn_gb *gb, bn_gx a, bn_gx b) {
    bn_gx v[2] = {a, b};
    return bn_gb_alt(gb, v, 2);
}

bn_gx bn_gb_repeat(bn_gb *gb, bn_gx x, uint32_t min, uint32_t max) {
    if (min == 1 && max == 1) return x;
    return add(gb, (gx_node){BN_GX_REPEAT, 0, 0, 0, min, max}, &x, 1);
}

bn_gx bn_gb_opt(bn_gb *gb, bn_gx x) { return bn_gb_repeat(gb, x, 0, 1); }

bn_gx_kind bn_gb_kind(const bn_gb *gb, bn_gx x) { return (bn_gx_kind)gb->x[x].kind; }
bn_rxid bn_gb_term_rx(const bn_gb *gb, bn_gx x) { return gb->x[x].a; }
int32_t bn_gb_ref_rule(const bn_gb *gb, bn_gx x) { return gb->x[x].a; }
const bn_gx *bn_gb_parts(const bn_gb *gb, bn_gx x, size_t *n) {
    *n = gb->x[x].n;
    return *n ? gb->parts + gb->x[x].first : NULL; /* no parts yet: parts may be NULL */
}
void bn_gb_bounds(const bn_gb *gb, bn_gx x, uint32_t *min, uint32_t *max) {
    *min = gb->x[x].min;
    *max = gb->x[x].max;
}
bn_gx bn_gb_body(const bn_gb *gb, int32_t rule) { return gb->rule[rule].body; }
size_t bn_gb_n_exprs(const bn_gb *gb) { return gb->n_x; }
