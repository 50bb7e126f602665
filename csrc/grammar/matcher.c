/* matcher.c: following a text through a compiled grammar (grammar.h).
 *
 * The committed state is a set of branches, each a chart (the parser's
 * columns so far) and a lexer state (how far into the current lexeme).
 * Reading a byte moves every branch's lexer on; where a lexeme may end,
 * the branch also splits into "it ended here" (the parser scans it, the
 * next lexeme starts). Parser states tried during one call form a tree of
 * nodes over the committed charts, each scan memoized in its node, so a
 * walk over many tokens scans each lexeme once per parser state. */
#include <stdlib.h>
#include <string.h>

#include "base/bits.h"
#include "base/grow.h"
#include "grammar/grammar_internal.h"

typedef struct {
    int refs;
    int32_t n, cap;
    bn_column **cols;
} chart;

typedef struct {
    chart *c;
    int32_t lex;
} branch;

typedef struct pnode pnode;
struct pnode {
    bn_column *col; /* the parser's last column; NULL: the scan failed */
    pnode *parent;  /* NULL for a committed chart's node */
    chart *base;
    pnode *child, *next; /* scans from here, memoized */
    int32_t via;         /* the lexeme scanned to get here */
    int32_t depth;       /* columns above base */
};

typedef struct {
    pnode *p;
    int32_t s;
} conf;

typedef struct {
    conf *v;
    size_t n, cap;
} confset;

#define BLOCK 1024

struct bn_matcher {
    bn_grammar *g;
    branch *br;
    size_t n_br, cap_br;
    int ended;
    bn_earley_work *work;
    bn_column **owned; /* columns of committed charts (freed with the matcher) */
    size_t n_owned, cap_owned;
    bn_column **spec; /* columns made during the current call */
    size_t n_spec, cap_spec;
    pnode **blocks;
    size_t n_blocks, cap_blocks, used; /* nodes used in the last block */
    confset *levels; /* per depth of a walk */
    size_t n_levels;
    bn_column **path;
    size_t cap_path;
    bn_err *err;
    int failed;
    size_t spent; /* work done in the current call (limit: lim.max_work) */
    uint8_t *text; /* every byte committed, to clone the matcher by reading it again */
    size_t n_text, cap_text;
};

static void *mfail(bn_matcher *m, const char *msg) {
    if (!m->failed) bn_errf(m->err, "%s", msg);
    m->failed = 1;
    return NULL;
}

/* mfail for a budget the grammar went past: the caller's grammar is at
 * fault, not the library (bn_err.input). */
static void *mbudget(bn_matcher *m, const char *msg) {
    if (!m->failed) bn_errf_input(m->err, "%s", msg);
    m->failed = 1;
    return NULL;
}

/* Counts work done in this call; 0 (and the call fails) past the budget,
 * so an ambiguous grammar ends in an error instead of minutes of work. */
static int spend(bn_matcher *m, size_t units) {
    m->spent += units;
    if (m->spent <= m->g->lim.max_work) return 1;
    mbudget(m, "the grammar is too ambiguous: one step needed more work than max_work allows");
    return 0;
}

/* Starts a public call: no error yet, no work spent. */
static void begin_call(bn_matcher *m, bn_err *err) {
    m->err = err;
    m->failed = 0;
    m->spent = 0;
}

static void chart_drop(chart *c) {
    if (c && --c->refs == 0) {
        free(c->cols);
        free(c);
    }
}

static pnode *new_pnode(bn_matcher *m) {
    if (m->n_blocks == 0 || m->used == BLOCK) {
        if (m->n_blocks == m->cap_blocks) {
            size_t old = m->cap_blocks;
            if (!bn_grow((void **)&m->blocks, &m->cap_blocks, m->n_blocks + 1, sizeof *m->blocks))
                return mfail(m, "out of memory");
            for (size_t i = old; i < m->cap_blocks; i++) m->blocks[i] = NULL;
        }
        if (!m->blocks[m->n_blocks] && !(m->blocks[m->n_blocks] = malloc(BLOCK * sizeof(pnode))))
            return mfail(m, "out of memory");
        m->n_blocks++;
        m->used = 0;
    }
    pnode *p = &m->blocks[m->n_blocks - 1][m->used++];
    memset(p, 0, sizeof *p);
    return p;
}

/* Ends a call: frees the columns no committed chart took, forgets the nodes. */
static void end_call(bn_matcher *m) {
    for (size_t i = 0; i < m->n_spec; i++)
        if (!m->spec[i]->kept) bn_column_free(m->spec[i]);
    m->n_spec = 0;
    /* forget the nodes; keep the first block for the next call */
    for (size_t i = 1; i < m->n_blocks; i++) {
        free(m->blocks[i]);
        m->blocks[i] = NULL;
    }
    m->n_blocks = 0;
    m->used = 0;
}

static int32_t start_of(bn_matcher *m, pnode *p) {
    bn_column *c = p->col;
    if (c->lex_start == -3) c->lex_start = bn_lexer_start(m->g->lexer, c->allowed, (size_t)c->n_allowed);
    if (c->lex_start == BN_LEX_BUDGET) {
        mbudget(m, "the grammar needs more lexer states than max_dfa_states allows");
        c->lex_start = -3;
        return BN_LEX_BUDGET;
    }
    return c->lex_start;
}

/* The parser state after lexeme from p: a node, or NULL when the lexeme is
 * not allowed there (or on error: m->failed). */
static pnode *scan(bn_matcher *m, pnode *p, int32_t lexeme) {
    for (pnode *ch = p->child; ch; ch = ch->next)
        if (ch->via == lexeme) return ch->col ? ch : NULL;
    /* the chart view: the committed columns, then the path of this call's columns */
    if (!bn_grow((void **)&m->path, &m->cap_path, (size_t)p->depth + 1, sizeof *m->path)) return mfail(m, "out of memory");
    int32_t k = p->depth;
    for (pnode *q = p; q->parent; q = q->parent) m->path[--k] = q->col;
    bn_chart_view view = {p->base->cols, p->base->n, m->path, p->depth};
    bn_column *col = NULL;
    int r = bn_earley_scan(&m->g->cfg, m->work, &view, lexeme, m->g->lim.max_items, &col);
    if (r == BN_EARLEY_BUDGET) return mbudget(m, "a parser column grew past max_items (an ambiguous or very large grammar)");
    if (!spend(m, col ? (size_t)col->n_items + 1 : 1)) {
        bn_column_free(col);
        return NULL;
    }
    if (col) {
        if (!bn_grow((void **)&m->spec, &m->cap_spec, m->n_spec + 1, sizeof *m->spec)) {
            bn_column_free(col);
            return mfail(m, "out of memory");
        }
        m->spec[m->n_spec++] = col;
    }
    pnode *ch = new_pnode(m);
    if (!ch) return NULL;
    ch->col = col;
    ch->parent = p;
    ch->base = p->base;
    ch->via = lexeme;
    ch->depth = p->depth + 1;
    ch->next = p->child;
    p->child = ch;
    return col ? ch : NULL;
}

/* The a-th lexeme that may end at state s. Read it afresh each time: the
 * list lives in the lexer's pool, which moves whenever a state is made. */
static int32_t accept_at(const bn_lexer *lx, int32_t s, size_t a) {
    size_t n;
    return bn_lexer_accepts(lx, s, &n)[a];
}

static int push_conf(bn_matcher *m, confset *out, pnode *p, int32_t s) {
    for (size_t i = 0; i < out->n; i++)
        if (out->v[i].p == p && out->v[i].s == s) return 1;
    if (out->n >= m->g->lim.max_branches) {
        mbudget(m, "the grammar is too ambiguous: more readings of the text than max_branches");
        return 0;
    }
    if (!bn_grow((void **)&out->v, &out->cap, out->n + 1, sizeof *out->v)) return mfail(m, "out of memory"), 0;
    out->v[out->n++] = (conf){p, s};
    return 1;
}

/* out = every way to read byte b from the readings in. 0 on error. */
static int step(bn_matcher *m, const confset *in, uint8_t b, confset *out) {
    bn_lexer *lx = m->g->lexer;
    bn_lexer_view v;
    bn_lexer_view_of(lx, &v);
    out->n = 0;
    if (!spend(m, in->n + 1)) return 0;
    for (size_t i = 0; i < in->n; i++) {
        pnode *p = in->v[i].p;
        int32_t s = in->v[i].s;
        if (s < 0) continue;
        int32_t t = bn_lexer_step(lx, &v, s, b);
        if (t == BN_LEX_BUDGET) return mbudget(m, "the grammar needs more lexer states than max_dfa_states allows"), 0;
        if (t >= 0 && !push_conf(m, out, p, t)) return 0;
        if (!v.n_acc[s]) continue;
        size_t n_acc;
        bn_lexer_accepts(lx, s, &n_acc);
        for (size_t a = 0; a < n_acc; a++) {
            pnode *q = scan(m, p, accept_at(lx, s, a)); /* re-read: new states move the list */
            if (m->failed) return 0;
            if (!q) continue;
            int32_t s0 = start_of(m, q);
            if (s0 == BN_LEX_BUDGET) return 0;
            if (s0 < 0) continue;
            bn_lexer_view_of(lx, &v);
            t = bn_lexer_step(lx, &v, s0, b);
            if (t == BN_LEX_BUDGET) return mbudget(m, "the grammar needs more lexer states than max_dfa_states allows"), 0;
            if (t >= 0 && !push_conf(m, out, q, t)) return 0;
        }
    }
    return 1;
}

/* Whether reading (p, s) may stop here. */
static int conf_complete(bn_matcher *m, pnode *p, int32_t s) {
    bn_lexer *lx = m->g->lexer;
    if (s < 0 || !bn_lexer_started(lx, s)) return p->col->accepting;
    size_t n_acc;
    bn_lexer_accepts(lx, s, &n_acc);
    for (size_t a = 0; a < n_acc; a++) {
        pnode *q = scan(m, p, accept_at(lx, s, a)); /* re-read: new states move the list */
        if (m->failed) return 0;
        if (q && q->col->accepting) return 1;
    }
    return 0;
}

/* The committed branches as readings: one node per distinct chart. */
static int roots(bn_matcher *m, confset *out) {
    out->n = 0;
    for (size_t i = 0; i < m->n_br; i++) {
        pnode *p = NULL;
        for (size_t j = 0; j < out->n; j++)
            if (out->v[j].p->base == m->br[i].c) p = out->v[j].p;
        if (!p) {
            p = new_pnode(m);
            if (!p) return 0;
            chart *c = m->br[i].c;
            p->col = c->cols[c->n - 1];
            p->base = c;
        }
        if (!bn_grow((void **)&out->v, &out->cap, out->n + 1, sizeof *out->v)) return mfail(m, "out of memory"), 0;
        out->v[out->n++] = (conf){p, m->br[i].lex};
    }
    return 1;
}

static int columns_equal(const bn_column *a, const bn_column *b) {
    return a == b || (a->n_items == b->n_items && memcmp(a->items, b->items, (size_t)a->n_items * sizeof *a->items) == 0);
}

static int charts_equal(const chart *a, const chart *b) {
    if (a == b) return 1;
    if (a->n != b->n) return 0;
    for (int32_t k = a->n; k-- > 0;) {
        if (a->cols[k] == b->cols[k]) return 1; /* shared from here down */
        if (!columns_equal(a->cols[k], b->cols[k])) return 0;
    }
    return 1;
}

/* Makes the readings in set the committed branches. */
static int materialize(bn_matcher *m, const confset *set) {
    branch *nb = malloc((set->n ? set->n : 1) * sizeof *nb);
    if (!nb) return mfail(m, "out of memory"), 0;
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++) {
        pnode *p = set->v[i].p;
        chart *c;
        if (!p->parent) {
            c = p->base;
            c->refs++;
        } else {
            c = malloc(sizeof *c);
            int32_t total = p->base->n + p->depth;
            if (!c || !(c->cols = malloc((size_t)total * sizeof *c->cols))) {
                free(c);
                goto oom;
            }
            c->refs = 1;
            c->n = c->cap = total;
            memcpy(c->cols, p->base->cols, (size_t)p->base->n * sizeof *c->cols);
            for (pnode *q = p; q->parent; q = q->parent) {
                c->cols[p->base->n + q->depth - 1] = q->col;
                if (!q->col->kept) {
                    if (!bn_grow((void **)&m->owned, &m->cap_owned, m->n_owned + 1, sizeof *m->owned)) {
                        chart_drop(c);
                        goto oom;
                    }
                    q->col->kept = 1;
                    m->owned[m->n_owned++] = q->col;
                }
            }
        }
        /* the same parse reached two ways is one branch */
        int dup = 0;
        for (size_t j = 0; j < n && !dup; j++)
            dup = nb[j].lex == set->v[i].s && charts_equal(nb[j].c, c);
        if (dup) {
            chart_drop(c);
            continue;
        }
        nb[n++] = (branch){c, set->v[i].s};
    }
    for (size_t i = 0; i < m->n_br; i++) chart_drop(m->br[i].c);
    free(m->br);
    m->br = nb;
    m->n_br = m->cap_br = n;
    return 1;
oom:
    for (size_t j = 0; j < n; j++) chart_drop(nb[j].c);
    free(nb);
    mfail(m, "out of memory");
    return 0;
}

static void clear_branches(bn_matcher *m) {
    for (size_t i = 0; i < m->n_br; i++) chart_drop(m->br[i].c);
    m->n_br = 0;
    for (size_t i = 0; i < m->n_owned; i++) bn_column_free(m->owned[i]);
    m->n_owned = 0;
}

int bn_matcher_reset(bn_matcher *m, bn_err *err) {
    clear_branches(m);
    m->ended = 0;
    m->n_text = 0;
    bn_column *c0 = NULL;
    pthread_mutex_lock(&m->g->lock);
    int r = bn_earley_first(&m->g->cfg, m->work, m->g->lim.max_items, &c0);
    int32_t s0 = BN_LEX_DEAD;
    if (r == BN_EARLEY_OK) s0 = bn_lexer_start(m->g->lexer, c0->allowed, (size_t)c0->n_allowed);
    pthread_mutex_unlock(&m->g->lock);
    if (r != BN_EARLEY_OK) return bn_errf_input(err, "the grammar's first column grew past max_items");
    if (s0 == BN_LEX_BUDGET) {
        bn_column_free(c0);
        return bn_errf_input(err, "the grammar needs more lexer states than max_dfa_states allows");
    }
    c0->lex_start = s0;
    c0->kept = 1;
    chart *c = malloc(sizeof *c);
    if (!c || !bn_grow((void **)&m->owned, &m->cap_owned, 1, sizeof *m->owned) ||
        !bn_grow((void **)&m->br, &m->cap_br, 1, sizeof *m->br) || !(c->cols = malloc(16 * sizeof *c->cols))) {
        free(c);
        bn_column_free(c0);
        return bn_errf(err, "out of memory");
    }
    c->refs = 1;
    c->n = 1;
    c->cap = 16;
    c->cols[0] = c0;
    m->owned[m->n_owned++] = c0;
    m->br[0] = (branch){c, s0};
    m->n_br = 1;
    return 1;
}

bn_matcher *bn_matcher_new(bn_grammar *g, bn_err *err) {
    bn_matcher *m = calloc(1, sizeof *m);
    if (!m) return bn_errf(err, "out of memory"), NULL;
    m->g = g;
    bn_grammar_retain(g);
    m->work = bn_earley_work_new();
    m->n_levels = bn_vocab_max_len(g->vocab) + 2;
    m->levels = calloc(m->n_levels, sizeof *m->levels);
    if (!m->work || !m->levels) {
        bn_errf(err, "out of memory");
        bn_matcher_free(m);
        return NULL;
    }
    if (!bn_matcher_reset(m, err)) {
        bn_matcher_free(m);
        return NULL;
    }
    return m;
}

void bn_matcher_free(bn_matcher *m) {
    if (!m) return;
    clear_branches(m);
    free(m->br);
    free(m->owned);
    for (size_t i = 0; i < m->n_spec; i++) bn_column_free(m->spec[i]);
    free(m->spec);
    for (size_t i = 0; i < m->cap_blocks; i++) free(m->blocks[i]);
    free(m->blocks);
    if (m->levels)
        for (size_t i = 0; i < m->n_levels; i++) free(m->levels[i].v);
    free(m->levels);
    free(m->path);
    free(m->text);
    bn_earley_work_free(m->work);
    if (m->g) bn_grammar_free(m->g);
    free(m);
}

/* Reads s[0..n) from the committed state; on success the result is committed. */
static int feed_locked(bn_matcher *m, const uint8_t *s, size_t n) {
    confset a = {0, 0, 0}, b = {0, 0, 0};
    int r = BN_MATCH_ERROR;
    if (!roots(m, &a)) goto done;
    for (size_t i = 0; i < n; i++) {
        if (!step(m, &a, s[i], &b)) goto done;
        confset t = a;
        a = b;
        b = t;
        if (a.n == 0) {
            r = BN_MATCH_REJECT;
            goto done;
        }
    }
    r = materialize(m, &a) ? BN_MATCH_OK : BN_MATCH_ERROR;
    if (r == BN_MATCH_OK && n) {
        if (!bn_grow((void **)&m->text, &m->cap_text, m->n_text + n, 1)) {
            mfail(m, "out of memory");
            r = BN_MATCH_ERROR;
        } else {
            memcpy(m->text + m->n_text, s, n);
            m->n_text += n;
        }
    }
done:
    end_call(m);
    free(a.v);
    free(b.v);
    return r;
}

static int is_eog(const bn_vocab *v, int32_t id) {
    size_t n;
    const int32_t *e = bn_vocab_eog(v, &n);
    for (size_t i = 0; i < n; i++)
        if (e[i] == id) return 1;
    return 0;
}

static int complete_locked(bn_matcher *m) {
    confset a = {0, 0, 0};
    int done = 0;
    if (roots(m, &a))
        for (size_t i = 0; i < a.n && !done && !m->failed; i++) done = conf_complete(m, a.v[i].p, a.v[i].s);
    end_call(m);
    free(a.v);
    return done;
}

int bn_matcher_commit(bn_matcher *m, int32_t id, bn_err *err) {
    if (m->ended) return BN_MATCH_REJECT;
    begin_call(m, err);
    pthread_mutex_lock(&m->g->lock);
    int r;
    size_t len;
    const uint8_t *bytes = bn_vocab_bytes(m->g->vocab, id, &len);
    if (is_eog(m->g->vocab, id)) {
        r = complete_locked(m) ? BN_MATCH_OK : BN_MATCH_REJECT;
        if (r == BN_MATCH_OK) m->ended = 1;
    } else if (!bytes)
        r = BN_MATCH_REJECT;
    else
        r = feed_locked(m, bytes, len);
    if (m->failed) r = BN_MATCH_ERROR;
    pthread_mutex_unlock(&m->g->lock);
    return r;
}

int bn_matcher_feed(bn_matcher *m, const void *s, size_t n, bn_err *err) {
    if (m->ended) return n ? BN_MATCH_REJECT : BN_MATCH_OK;
    begin_call(m, err);
    pthread_mutex_lock(&m->g->lock);
    int r = feed_locked(m, s, n);
    if (m->failed) r = BN_MATCH_ERROR;
    pthread_mutex_unlock(&m->g->lock);
    return r;
}

int bn_matcher_is_complete(bn_matcher *m) {
    if (m->ended) return 1;
    bn_err scratch = {0};
    begin_call(m, &scratch);
    pthread_mutex_lock(&m->g->lock);
    int r = complete_locked(m);
    pthread_mutex_unlock(&m->g->lock);
    return r;
}

int bn_matcher_is_ended(const bn_matcher *m) { return m->ended; }

/* ---- masks ---- */

static void set_bit(uint32_t *bits, int32_t t) { bits[t >> 5] |= 1u << (t & 31); }

/* Seeds m->levels[0] with the reading after lexeme ends at parser state
 * p: 1, 0 when the lexeme cannot end there (or nothing can follow), -1 on
 * error. */
static int seed_after(bn_matcher *m, pnode *p, int32_t lexeme) {
    pnode *q = scan(m, p, lexeme);
    if (m->failed) return -1;
    int32_t s0 = q ? start_of(m, q) : BN_LEX_DEAD;
    if (s0 == BN_LEX_BUDGET) return -1;
    if (s0 < 0) return 0;
    m->levels[0].n = 0;
    return push_conf(m, &m->levels[0], q, s0) ? 1 : -1;
}

/* Marks the tokens of tc's remainder tries that parser state p lets go on
 * after the lexeme ends: a walk over each trie, a dead subtree skipped. */
static int eval_boundary(bn_matcher *m, pnode *p, const bn_token_classes *tc, uint32_t *bits) {
    for (int32_t gi = 0; gi < tc->n_groups; gi++) {
        const bn_rem_group *grp = &tc->groups[gi];
        int r = seed_after(m, p, grp->lexeme);
        if (r < 0) return 0;
        if (r == 0) continue;
        confset *lv = m->levels;
        const bn_rem_node *nodes = tc->nodes;
        for (uint32_t i = grp->first, end = grp->first + grp->n; i < end;) {
            const bn_rem_node *nd = &nodes[i];
            if (!step(m, &lv[nd->depth - 1], nd->byte, &lv[nd->depth])) return 0;
            if (lv[nd->depth].n == 0) {
                i = nd->end;
                continue;
            }
            for (uint32_t k = 0; k < nd->tok_n; k++) set_bit(bits, tc->tokens[nd->tok_first + k]);
            i++;
        }
    }
    /* large subtrees: the vocabulary's trie below the node */
    size_t n_nodes;
    const bn_trie_node *vn = bn_vocab_trie(m->g->vocab, &n_nodes);
    const int32_t *order = bn_vocab_order(m->g->vocab);
    for (int32_t si = 0; si < tc->n_subs; si++) {
        const bn_sub_group *sg = &tc->subs[si];
        int r = seed_after(m, p, sg->lexeme);
        if (r < 0) return 0;
        if (r == 0) continue;
        confset *lv = m->levels;
        uint32_t base = vn[sg->node].depth;
        for (uint32_t i = sg->node + 1, end = vn[sg->node].end; i < end;) {
            const bn_trie_node *nd = &vn[i];
            uint32_t d = nd->depth - base;
            if (!step(m, &lv[d - 1], nd->byte, &lv[d])) return 0;
            if (lv[d].n == 0) {
                i = nd->end;
                continue;
            }
            for (uint32_t k = 0; k < nd->tok_n; k++) set_bit(bits, order[nd->tok_first + k]);
            i++;
        }
    }
    return 1;
}

static int mask_conf(bn_matcher *m, pnode *p, int32_t s, uint32_t *bits, int depth) {
    if (s < 0) return 1;
    if (depth > 64) return mbudget(m, "the grammar chains too many empty lexeme ends"), 0;
    const bn_token_classes *tc = bn_grammar_classes(m->g, s, m->err);
    if (!tc) {
        m->failed = 1;
        return 0;
    }
    if (tc->inside_bits) {
        size_t words = ((size_t)bn_vocab_n_tokens(m->g->vocab) + 31) / 32;
        for (size_t w = 0; w < words; w++) bits[w] |= tc->inside_bits[w];
    } else
        for (int32_t k = 0; k < tc->n_inside; k++) set_bit(bits, tc->inside_ids[k]);
    if (!eval_boundary(m, p, tc, bits)) return 0;
    bn_lexer *lx = m->g->lexer;
    if (!bn_lexer_started(lx, s)) return 1;
    /* the current lexeme may end before the next token */
    size_t n_acc;
    bn_lexer_accepts(lx, s, &n_acc);
    for (size_t a = 0; a < n_acc; a++) {
        pnode *q = scan(m, p, accept_at(lx, s, a)); /* re-read: new states move the list */
        if (m->failed) return 0;
        if (!q) continue;
        int32_t s0 = start_of(m, q);
        if (s0 == BN_LEX_BUDGET) return 0;
        if (!mask_conf(m, q, s0, bits, depth + 1)) return 0;
    }
    return 1;
}

int bn_matcher_mask(bn_matcher *m, uint32_t *bits, size_t *count, bn_err *err) {
    int32_t n_tok = bn_vocab_n_tokens(m->g->vocab);
    size_t words = ((size_t)n_tok + 31) / 32;
    memset(bits, 0, words * sizeof *bits);
    *count = 0;
    if (m->ended) return 1;
    begin_call(m, err);
    pthread_mutex_lock(&m->g->lock);
    confset a = {0, 0, 0};
    int ok = roots(m, &a);
    int complete = 0;
    for (size_t i = 0; ok && i < a.n; i++) {
        ok = mask_conf(m, a.v[i].p, a.v[i].s, bits, 0);
        if (ok && !complete) complete = conf_complete(m, a.v[i].p, a.v[i].s);
        ok = ok && !m->failed;
    }
    end_call(m);
    pthread_mutex_unlock(&m->g->lock);
    free(a.v);
    if (!ok) return 0;
    if (complete) {
        size_t n;
        const int32_t *e = bn_vocab_eog(m->g->vocab, &n);
        for (size_t i = 0; i < n; i++) set_bit(bits, e[i]);
    }
    *count = bn_popcount_words(bits, words);
    return 1;
}

size_t bn_matcher_forced_bytes(bn_matcher *m, uint8_t *out, size_t cap) {
    if (m->ended) return 0;
    bn_err scratch = {0};
    begin_call(m, &scratch);
    pthread_mutex_lock(&m->g->lock);
    confset a = {0, 0, 0}, b = {0, 0, 0}, only = {0, 0, 0};
    size_t n = 0;
    if (roots(m, &a)) {
        while (n < cap && !m->failed) {
            int done = 0;
            for (size_t i = 0; i < a.n && !done; i++) done = conf_complete(m, a.v[i].p, a.v[i].s);
            if (done || m->failed) break;
            int found = -1;
            for (int c = 0; c < 256 && found != -2; c++) {
                if (!step(m, &a, (uint8_t)c, &b)) break;
                if (b.n == 0) continue;
                if (found >= 0) found = -2;
                else {
                    found = c;
                    confset t = only;
                    only = b;
                    b = t;
                }
            }
            if (found < 0) break;
            out[n++] = (uint8_t)found;
            confset t = a;
            a = only;
            only = t;
        }
    }
    end_call(m);
    pthread_mutex_unlock(&m->g->lock);
    free(a.v);
    free(b.v);
    free(only.v);
    return m->failed ? 0 : n;
}

bn_grammar *bn_matcher_grammar(const bn_matcher *m) { return m->g; }

int bn_matcher_copy_state(bn_matcher *dst, const bn_matcher *src, bn_err *err) {
    if (dst == src) return 1;
    if (!bn_matcher_reset(dst, err)) return 0;
    if (src->n_text && bn_matcher_feed(dst, src->text, src->n_text, err) != BN_MATCH_OK)
        return err->msg[0] ? 0 : bn_errf(err, "internal: a matcher's own text did not read again");
    dst->ended = src->ended;
    return 1;
}

bn_matcher *bn_matcher_clone(const bn_matcher *src, bn_err *err) {
    bn_matcher *m = bn_matcher_new(src->g, err);
    if (m && !bn_matcher_copy_state(m, src, err)) {
        bn_matcher_free(m);
        return NULL;
    }
    return m;
}
