/* lexer.c: the lexemes' DFA, built on demand from Brzozowski derivatives
 * (lexer.h).
 *
 * A DFA state is the list of (lexeme, regex) pairs still alive: each regex
 * is what is left of its lexeme after the bytes read, the derivative of the
 * lexeme's expression by them. Expressions are hash-consed and simplified
 * (regex.h), so equal remainders are one id and the states are finite. A
 * counted repetition x{m,n} is never expanded: its derivative is
 * x'·x{m-1,n-1}, so a state exists only for the counts a text reaches. */
#include "base/grow.h"
#include "base/hash.h"
#include "grammar/lexer.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t lexeme;
    bn_rxid re;
} pair;

typedef struct {
    uint32_t first, n;         /* pairs in the pair pool, sorted by lexeme */
    uint32_t acc_first, acc_n; /* lexemes that may end here, in the int pool */
    uint32_t hash;
    uint8_t started;
    uint8_t has_loop;
} dfa_state;

typedef struct {
    uint32_t first, n; /* lexeme ids in the int pool */
    int32_t state;
    uint32_t hash;
} start_entry;

/* An open-addressing map from a nonzero 64-bit key to an expression, for
 * the derivatives and clamps the lexer has computed. */
typedef struct {
    uint64_t *key; /* 0: empty */
    bn_rxid *val;
    size_t mask, used;
} memo;

static size_t memo_slot(uint64_t key, size_t mask) { return (size_t)bn_mix64(key) & mask; }

/* The value of key, or BN_RX_ERROR when absent. */
static bn_rxid memo_get(const memo *m, uint64_t key) {
    if (!m->key) return BN_RX_ERROR;
    for (size_t h = memo_slot(key, m->mask); m->key[h]; h = (h + 1) & m->mask)
        if (m->key[h] == key) return m->val[h];
    return BN_RX_ERROR;
}

/* Adds key (absent) -> v. 0 when out of memory. */
static int memo_put(memo *m, uint64_t key, bn_rxid v) {
    if (!m->key || m->used * 2 >= m->mask) {
        size_t cap = m->key ? (m->mask + 1) * 2 : 4096;
        uint64_t *k = calloc(cap, sizeof *k);
        bn_rxid *val = malloc(cap * sizeof *val);
        if (!k || !val) {
            free(k);
            free(val);
            return 0;
        }
        for (size_t i = 0; m->key && i <= m->mask; i++) {
            if (!m->key[i]) continue;
            size_t h = memo_slot(m->key[i], cap - 1);
            while (k[h]) h = (h + 1) & (cap - 1);
            k[h] = m->key[i];
            val[h] = m->val[i];
        }
        free(m->key);
        free(m->val);
        m->key = k;
        m->val = val;
        m->mask = cap - 1;
    }
    size_t h = memo_slot(key, m->mask);
    while (m->key[h]) h = (h + 1) & m->mask;
    m->key[h] = key;
    m->val[h] = v;
    m->used++;
    return 1;
}

static void memo_clear(memo *m) {
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

struct bn_lexer {
    bn_rx *rx;
    size_t max_dfa;

    bn_rxid *lex; /* per lexeme: its expression */
    size_t n_lex, cap_lex;
    int32_t *lex_by_rx; /* open addressing: lexeme ids, -1 empty */
    size_t lex_by_rx_mask;

    uint8_t byte_class[256];
    uint8_t class_rep[256]; /* a byte of each class */
    int n_classes;

    /* derivatives: (expression, class) -> expression, open addressing */
    memo derivs; /* ((re + 1) << 8 | class) -> derivative */
    /* per expression: the classes its derivative is not nothing by (a
     * superset), so a state of many lexemes derives only the few a byte
     * keeps alive */
    uint64_t (*first)[4];
    uint8_t *first_known;
    size_t cap_first, cap_first_known;

    dfa_state *dfa;
    size_t n_dfa, cap_dfa;
    int32_t *trans; /* n_dfa * n_classes; -3 unknown */
    size_t cap_trans;
    uint8_t *started;
    uint16_t *n_acc;
    size_t cap_started, cap_n_acc;
    pair *pairs;
    size_t n_pairs, cap_pairs;
    int32_t *pool;
    size_t n_pool, cap_pool;
    uint64_t (*loops)[4];
    size_t cap_loops;
    uint64_t (*loop_yes)[4], (*loop_no)[4]; /* per state: bytes known to loop back / to leave */
    size_t cap_loop_yes, cap_loop_no;
    int32_t *dfa_index;
    size_t dfa_index_mask;

    start_entry *starts;
    size_t n_starts, cap_starts;
    int32_t *start_index;
    size_t start_index_mask;

    pair *scratch;
    size_t cap_scratch;

    /* clamping (bn_lexer_clamped): expression -> clamped expression, and state -> its clamped state */
    memo clamps; /* re + 1 -> clamped expression */
    int32_t *clamp_of;
    size_t cap_clamp_of;
    uint32_t horizon;
};

#define UNKNOWN (-3)

static uint32_t mix(uint32_t h, uint32_t v) { return (h ^ v) * 0x01000193u + (h >> 15); }

static int32_t *new_index(size_t n) {
    int32_t *t = malloc(n * sizeof *t);
    if (t) memset(t, 0xff, n * sizeof *t);
    return t;
}

bn_lexer *bn_lexer_new(bn_rx *rx, size_t max_nfa_states, size_t max_dfa_states) {
    (void)max_nfa_states; /* no NFA: the expression arena's own budget bounds the derivatives */
    bn_lexer *lx = calloc(1, sizeof *lx);
    if (!lx) return NULL;
    lx->rx = rx;
    lx->max_dfa = max_dfa_states;
    lx->lex_by_rx_mask = 255;
    lx->lex_by_rx = new_index(256);
    lx->dfa_index_mask = 1023;
    lx->dfa_index = new_index(1024);
    lx->start_index_mask = 255;
    lx->start_index = new_index(256);
    if (!lx->lex_by_rx || !lx->dfa_index || !lx->start_index) {
        bn_lexer_free(lx);
        return NULL;
    }
    return lx;
}

void bn_lexer_free(bn_lexer *lx) {
    if (!lx) return;
    free(lx->lex);
    free(lx->lex_by_rx);
    memo_clear(&lx->derivs);
    free(lx->first);
    free(lx->first_known);
    free(lx->dfa);
    free(lx->trans);
    free(lx->started);
    free(lx->n_acc);
    free(lx->pairs);
    free(lx->pool);
    free(lx->loops);
    free(lx->loop_yes);
    free(lx->loop_no);
    free(lx->dfa_index);
    free(lx->starts);
    free(lx->start_index);
    free(lx->scratch);
    memo_clear(&lx->clamps);
    free(lx->clamp_of);
    free(lx);
}

int32_t bn_lexer_n_lexemes(const bn_lexer *lx) { return (int32_t)lx->n_lex; }
bn_rxid bn_lexer_regex(const bn_lexer *lx, int32_t lexeme) { return lx->lex[lexeme]; }
size_t bn_lexer_n_nfa(const bn_lexer *lx) { return bn_rx_count(lx->rx); }
size_t bn_lexer_n_dfa(const bn_lexer *lx) { return lx->n_dfa; }

static int rehash_ids(int32_t **index, size_t *mask, size_t n, uint32_t (*hash_of)(const bn_lexer *, size_t),
                      const bn_lexer *lx) {
    size_t cap = (*mask + 1) * 2;
    int32_t *t = new_index(cap);
    if (!t) return 0;
    for (size_t i = 0; i < n; i++) {
        size_t h = hash_of(lx, i) & (cap - 1);
        while (t[h] >= 0) h = (h + 1) & (cap - 1);
        t[h] = (int32_t)i;
    }
    free(*index);
    *index = t;
    *mask = cap - 1;
    return 1;
}

static uint32_t lex_hash(const bn_lexer *lx, size_t i) { return (uint32_t)lx->lex[i] * 2654435761u; }
static uint32_t dfa_hash(const bn_lexer *lx, size_t i) { return lx->dfa[i].hash; }
static uint32_t start_hash(const bn_lexer *lx, size_t i) { return lx->starts[i].hash; }

int32_t bn_lexer_add(bn_lexer *lx, bn_rxid re, bn_err *err) {
    size_t h = ((uint32_t)re * 2654435761u) & lx->lex_by_rx_mask;
    for (int32_t l; (l = lx->lex_by_rx[h]) >= 0; h = (h + 1) & lx->lex_by_rx_mask)
        if (lx->lex[l] == re) return l;
    if (!bn_grow((void **)&lx->lex, &lx->cap_lex, lx->n_lex + 1, sizeof *lx->lex)) return bn_errf(err, "out of memory"), -1;
    lx->lex[lx->n_lex] = re;
    int32_t id = (int32_t)lx->n_lex++;
    lx->lex_by_rx[h] = id;
    if (lx->n_lex * 2 > lx->lex_by_rx_mask &&
        !rehash_ids(&lx->lex_by_rx, &lx->lex_by_rx_mask, lx->n_lex, lex_hash, lx))
        return bn_errf(err, "out of memory"), -1;
    return id;
}

/* Splits the byte classes by set: bytes in it from bytes outside. */
static void refine_set(bn_lexer *lx, const uint64_t set[4], int *n_classes) {
    int16_t map[256][2];
    memset(map, 0xff, sizeof map);
    int m = 0;
    uint8_t next[256];
    for (int c = 0; c < 256; c++) {
        int in = (int)(set[c >> 6] >> (c & 63) & 1);
        int old = lx->byte_class[c];
        if (map[old][in] < 0) map[old][in] = (int16_t)m++;
        next[c] = (uint8_t)map[old][in];
    }
    memcpy(lx->byte_class, next, 256);
    *n_classes = m;
}

/* Refines the byte classes by every byte set below re (each node once). */
static int refine(bn_lexer *lx, bn_rxid re, uint8_t *seen, int *n_classes) {
    if (seen[re]) return 1;
    seen[re] = 1;
    size_t n;
    const bn_rxid *p;
    switch (bn_rx_kind_of(lx->rx, re)) {
    case BN_RX_BYTES:
        refine_set(lx, bn_rx_set(lx->rx, re), n_classes);
        return 1;
    case BN_RX_DFA: { /* every state of its table tells apart the bytes of different classes */
        for (int c = 0, k = bn_rx_dfa_n_classes(lx->rx, re); c < k; c++) {
            uint64_t set[4];
            bn_rx_dfa_class_bytes(lx->rx, re, c, set);
            refine_set(lx, set, n_classes);
        }
        return 1;
    }
    case BN_RX_CONCAT:
    case BN_RX_ALT:
    case BN_RX_REPEAT:
        p = bn_rx_parts(lx->rx, re, &n);
        for (size_t i = 0; i < n; i++)
            if (!refine(lx, p[i], seen, n_classes)) return 0;
        return 1;
    default: return 1;
    }
}

int bn_lexer_finish(bn_lexer *lx, bn_err *err) {
    memset(lx->byte_class, 0, sizeof lx->byte_class);
    int n = 1;
    uint8_t *seen = calloc(bn_rx_count(lx->rx) + 1, 1);
    if (!seen) return bn_errf(err, "out of memory");
    for (size_t i = 0; i < lx->n_lex; i++) refine(lx, lx->lex[i], seen, &n);
    free(seen);
    lx->n_classes = n;
    for (int c = 255; c >= 0; c--) lx->class_rep[lx->byte_class[c]] = (uint8_t)c;
    return 1;
}

/* ---- derivatives ---- */

/* The derivative of re by byte b (of class cls): what is left to match
 * after b. BN_RX_ERROR when the expression budget is spent. */
static void first_classes(bn_lexer *lx, bn_rxid re, uint64_t out[4], int depth);

static bn_rxid deriv(bn_lexer *lx, bn_rxid re, uint8_t b, int cls, int depth) {
    bn_rx *rx = lx->rx;
    bn_rx_kind k = bn_rx_kind_of(rx, re);
    if (k == BN_RX_NOTHING || k == BN_RX_EMPTY) return bn_rx_nothing(rx);
    if (k == BN_RX_BYTES) {
        const uint64_t *set = bn_rx_set(rx, re);
        return set[b >> 6] >> (b & 63) & 1 ? bn_rx_empty(rx) : bn_rx_nothing(rx);
    }
    if (k == BN_RX_DFA) return bn_rx_dfa_step(rx, re, b);
    uint64_t key = ((uint64_t)(uint32_t)re + 1) << 8 | (uint64_t)cls;
    bn_rxid known = memo_get(&lx->derivs, key);
    if (known != BN_RX_ERROR) return known;
    if (depth > 5000) return BN_RX_ERROR;
    size_t n;
    const bn_rxid *p = bn_rx_parts(rx, re, &n);
    bn_rxid r;
    if (k == BN_RX_CONCAT) {
        bn_rxid a = p[0], rest = p[1];
        r = bn_rx_concat(rx, deriv(lx, a, b, cls, depth + 1), rest);
        if (bn_rx_nullable(rx, a)) r = bn_rx_alt(rx, r, deriv(lx, rest, b, cls, depth + 1));
    } else if (k == BN_RX_ALT) {
        bn_rxid small[8], *v = n <= 8 ? small : malloc(n * sizeof *v);
        if (!v) return BN_RX_ERROR;
        /* parts may move the arena: copy the ids first */
        bn_rxid parts_small[8], *parts = n <= 8 ? parts_small : malloc(n * sizeof *parts);
        if (!parts) {
            if (v != small) free(v);
            return BN_RX_ERROR;
        }
        memcpy(parts, p, n * sizeof *parts);
        for (size_t i = 0; i < n; i++) {
            /* (of many alternatives, a byte keeps few: the others need no derivative) */
            uint64_t first[4];
            first_classes(lx, parts[i], first, 0);
            v[i] = first[cls >> 6] >> (cls & 63) & 1 ? deriv(lx, parts[i], b, cls, depth + 1) : bn_rx_nothing(rx);
        }
        r = bn_rx_alt_n(rx, v, n);
        if (v != small) free(v);
        if (parts != parts_small) free(parts);
    } else { /* REPEAT: x{m,n}' = x' x{m-1,n-1} */
        uint32_t lo, hi;
        bn_rx_bounds(rx, re, &lo, &hi);
        bn_rxid x = p[0];
        r = bn_rx_concat(rx, deriv(lx, x, b, cls, depth + 1),
                         bn_rx_repeat(rx, x, lo ? lo - 1 : 0, hi == BN_RX_INF ? BN_RX_INF : hi - 1));
    }
    if (r == BN_RX_ERROR || !memo_put(&lx->derivs, key, r)) return BN_RX_ERROR;
    return r;
}

/* The byte classes re can begin with, into out (all classes when the
 * expression is too deep or memory is short: a superset is safe). */
static void first_classes(bn_lexer *lx, bn_rxid re, uint64_t out[4], int depth) {
    bn_rx *rx = lx->rx;
    size_t need = (size_t)re + 1;
    if (depth > 2000 || !bn_grow((void **)&lx->first, &lx->cap_first, need, sizeof *lx->first)) {
        memset(out, 0xff, 4 * sizeof *out);
        return;
    }
    size_t old = lx->cap_first_known;
    if (!bn_grow((void **)&lx->first_known, &lx->cap_first_known, need, 1)) {
        memset(out, 0xff, 4 * sizeof *out);
        return;
    }
    memset(lx->first_known + old, 0, lx->cap_first_known - old);
    if (lx->first_known[re]) {
        memcpy(out, lx->first[re], 4 * sizeof *out);
        return;
    }
    uint64_t set[4] = {0, 0, 0, 0}, sub[4];
    size_t n;
    const bn_rxid *p;
    switch (bn_rx_kind_of(rx, re)) {
    case BN_RX_BYTES: {
        const uint64_t *bytes = bn_rx_set(rx, re);
        for (int b = 0; b < 256; b++)
            if (bytes[b >> 6] >> (b & 63) & 1) set[lx->byte_class[b] >> 6] |= 1ull << (lx->byte_class[b] & 63);
        break;
    }
    case BN_RX_CONCAT: {
        p = bn_rx_parts(rx, re, &n);
        bn_rxid a = p[0], b = p[1];
        first_classes(lx, a, set, depth + 1);
        if (bn_rx_nullable(rx, a)) {
            first_classes(lx, b, sub, depth + 1);
            for (int w = 0; w < 4; w++) set[w] |= sub[w];
        }
        break;
    }
    case BN_RX_ALT: {
        p = bn_rx_parts(rx, re, &n);
        for (size_t i = 0; i < n; i++) {
            bn_rxid part = bn_rx_parts(rx, re, &n)[i]; /* re-read: the arrays may move */
            first_classes(lx, part, sub, depth + 1);
            for (int w = 0; w < 4; w++) set[w] |= sub[w];
        }
        break;
    }
    case BN_RX_REPEAT: {
        uint32_t lo, hi;
        bn_rx_bounds(rx, re, &lo, &hi);
        if (hi) first_classes(lx, bn_rx_parts(rx, re, &n)[0], set, depth + 1);
        break;
    }
    case BN_RX_DFA: {
        uint64_t bytes[4];
        bn_rx_dfa_first(rx, re, bytes);
        for (int b = 0; b < 256; b++)
            if (bytes[b >> 6] >> (b & 63) & 1) set[lx->byte_class[b] >> 6] |= 1ull << (lx->byte_class[b] & 63);
        break;
    }
    default: break;
    }
    memcpy(lx->first[re], set, sizeof set);
    lx->first_known[re] = 1;
    memcpy(out, set, sizeof set);
}

/* ---- DFA states ---- */

static int cmp_pair(const void *a, const void *b) {
    const pair *x = a, *y = b;
    if (x->lexeme != y->lexeme) return (x->lexeme > y->lexeme) - (x->lexeme < y->lexeme);
    return (x->re > y->re) - (x->re < y->re);
}

static uint32_t pairs_hash(const pair *s, size_t n, int started) {
    uint32_t h = 2166136261u ^ (uint32_t)started;
    for (size_t i = 0; i < n; i++) h = mix(mix(h, (uint32_t)s[i].lexeme), (uint32_t)s[i].re);
    return h;
}

/* The state of pairs[0..n) (sorted, no dead pair), made if new. */
static int32_t intern_state(bn_lexer *lx, const pair *ps, size_t n, int started) {
    if (n == 0) return BN_LEX_DEAD;
    uint32_t h = pairs_hash(ps, n, started);
    size_t slot = h & lx->dfa_index_mask;
    for (int32_t d; (d = lx->dfa_index[slot]) >= 0; slot = (slot + 1) & lx->dfa_index_mask) {
        const dfa_state *ds = &lx->dfa[d];
        if (ds->hash == h && ds->started == started && ds->n == n && memcmp(lx->pairs + ds->first, ps, n * sizeof *ps) == 0)
            return d;
    }
    if (lx->n_dfa >= lx->max_dfa) return BN_LEX_BUDGET;
    size_t nc = (size_t)lx->n_classes;
    if (!bn_grow((void **)&lx->dfa, &lx->cap_dfa, lx->n_dfa + 1, sizeof *lx->dfa) ||
        !bn_grow((void **)&lx->trans, &lx->cap_trans, (lx->n_dfa + 1) * nc, sizeof *lx->trans) ||
        !bn_grow((void **)&lx->pairs, &lx->cap_pairs, lx->n_pairs + n, sizeof *lx->pairs) ||
        !bn_grow((void **)&lx->pool, &lx->cap_pool, lx->n_pool + n, sizeof *lx->pool) ||
        !bn_grow((void **)&lx->started, &lx->cap_started, lx->n_dfa + 1, 1) ||
        !bn_grow((void **)&lx->n_acc, &lx->cap_n_acc, lx->n_dfa + 1, sizeof *lx->n_acc))
        return BN_LEX_BUDGET;
    dfa_state ds = {(uint32_t)lx->n_pairs, (uint32_t)n, (uint32_t)lx->n_pool, 0, h, (uint8_t)started, 0};
    memcpy(lx->pairs + lx->n_pairs, ps, n * sizeof *ps);
    lx->n_pairs += n;
    if (started)
        for (size_t i = 0; i < n; i++)
            if (bn_rx_nullable(lx->rx, ps[i].re) &&
                (ds.acc_n == 0 || lx->pool[ds.acc_first + ds.acc_n - 1] != ps[i].lexeme))
                lx->pool[lx->n_pool + ds.acc_n++] = ps[i].lexeme;
    lx->n_pool += ds.acc_n;
    int32_t id = (int32_t)lx->n_dfa++;
    lx->dfa[id] = ds;
    lx->started[id] = (uint8_t)started;
    lx->n_acc[id] = (uint16_t)(ds.acc_n > 65535 ? 65535 : ds.acc_n);
    for (size_t c = 0; c < nc; c++) lx->trans[(size_t)id * nc + c] = UNKNOWN;
    lx->dfa_index[slot] = id;
    if (lx->n_dfa * 2 > lx->dfa_index_mask && !rehash_ids(&lx->dfa_index, &lx->dfa_index_mask, lx->n_dfa, dfa_hash, lx))
        return BN_LEX_BUDGET;
    return id;
}

int32_t bn_lexer_start(bn_lexer *lx, const int32_t *lexemes, size_t n) {
    uint32_t h = 0x811c9dc5u;
    for (size_t i = 0; i < n; i++) h = mix(h, (uint32_t)lexemes[i]);
    size_t slot = h & lx->start_index_mask;
    for (int32_t e; (e = lx->start_index[slot]) >= 0; slot = (slot + 1) & lx->start_index_mask) {
        const start_entry *se = &lx->starts[e];
        if (se->hash == h && se->n == n && (n == 0 || memcmp(lx->pool + se->first, lexemes, n * sizeof *lexemes) == 0))
            return se->state;
    }
    if (!bn_grow((void **)&lx->scratch, &lx->cap_scratch, n + 1, sizeof *lx->scratch)) return BN_LEX_BUDGET;
    for (size_t i = 0; i < n; i++) lx->scratch[i] = (pair){lexemes[i], lx->lex[lexemes[i]]};
    qsort(lx->scratch, n, sizeof *lx->scratch, cmp_pair);
    int32_t state = intern_state(lx, lx->scratch, n, 0);
    if (state == BN_LEX_BUDGET) return state;
    if (!bn_grow((void **)&lx->starts, &lx->cap_starts, lx->n_starts + 1, sizeof *lx->starts) ||
        !bn_grow((void **)&lx->pool, &lx->cap_pool, lx->n_pool + n, sizeof *lx->pool))
        return BN_LEX_BUDGET;
    if (n) memcpy(lx->pool + lx->n_pool, lexemes, n * sizeof *lexemes);
    lx->starts[lx->n_starts] = (start_entry){(uint32_t)lx->n_pool, (uint32_t)n, state, h};
    lx->n_pool += n;
    lx->start_index[slot] = (int32_t)lx->n_starts++;
    if (lx->n_starts * 2 > lx->start_index_mask &&
        !rehash_ids(&lx->start_index, &lx->start_index_mask, lx->n_starts, start_hash, lx))
        return BN_LEX_BUDGET;
    return state;
}

static int32_t compute_next(bn_lexer *lx, int32_t state, int cls) {
    uint8_t b = lx->class_rep[cls];
    size_t n = lx->dfa[state].n;
    if (!bn_grow((void **)&lx->scratch, &lx->cap_scratch, n + 1, sizeof *lx->scratch)) return BN_LEX_BUDGET;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        pair p = lx->pairs[lx->dfa[state].first + i]; /* re-read: deriv may grow the arena, not the pairs */
        uint64_t first[4];
        first_classes(lx, p.re, first, 0);
        if (!(first[cls >> 6] >> (cls & 63) & 1)) continue; /* b ends this one */
        bn_rxid d = deriv(lx, p.re, b, cls, 0);
        if (d == BN_RX_ERROR) return BN_LEX_BUDGET;
        if (bn_rx_kind_of(lx->rx, d) != BN_RX_NOTHING) lx->scratch[m++] = (pair){p.lexeme, d};
    }
    qsort(lx->scratch, m, sizeof *lx->scratch, cmp_pair);
    return intern_state(lx, lx->scratch, m, 1);
}

int32_t bn_lexer_next(bn_lexer *lx, int32_t state, uint8_t b) {
    int cls = lx->byte_class[b];
    int32_t t = lx->trans[(size_t)state * (size_t)lx->n_classes + (size_t)cls];
    if (t != UNKNOWN) return t;
    int32_t next = compute_next(lx, state, cls);
    if (next == BN_LEX_BUDGET) return next;
    lx->trans[(size_t)state * (size_t)lx->n_classes + (size_t)cls] = next; /* trans may have moved */
    return next;
}

int bn_lexer_started(const bn_lexer *lx, int32_t state) { return lx->dfa[state].started; }

size_t bn_lexer_n_parts(const bn_lexer *lx, int32_t state) { return lx->dfa[state].n; }

bn_rxid bn_lexer_part_regex(const bn_lexer *lx, int32_t state, size_t i) { return lx->pairs[lx->dfa[state].first + i].re; }

int32_t bn_lexer_part(bn_lexer *lx, int32_t state, size_t i) {
    pair pr = lx->pairs[lx->dfa[state].first + i];
    return intern_state(lx, &pr, 1, lx->dfa[state].started);
}

const int32_t *bn_lexer_accepts(const bn_lexer *lx, int32_t state, size_t *n) {
    *n = lx->dfa[state].acc_n;
    return lx->pool + lx->dfa[state].acc_first;
}

const uint64_t *bn_lexer_self_loop(bn_lexer *lx, int32_t state) {
    if (!bn_grow((void **)&lx->loops, &lx->cap_loops, lx->n_dfa, sizeof *lx->loops)) return NULL;
    if (!lx->dfa[state].has_loop) {
        uint64_t set[4] = {0, 0, 0, 0};
        for (int c = 0; c < lx->n_classes; c++) {
            int32_t next = bn_lexer_next(lx, state, lx->class_rep[c]);
            if (next == BN_LEX_BUDGET) return NULL;
            if (next == state)
                for (int b = 0; b < 256; b++)
                    if (lx->byte_class[b] == c) set[b >> 6] |= 1ull << (b & 63);
        }
        if (!bn_grow((void **)&lx->loops, &lx->cap_loops, lx->n_dfa, sizeof *lx->loops)) return NULL;
        memcpy(lx->loops[state], set, sizeof set);
        lx->dfa[state].has_loop = 1;
    }
    return lx->loops[state];
}

void bn_lexer_view_of(const bn_lexer *lx, bn_lexer_view *v) {
    v->trans = lx->trans;
    v->cls = lx->byte_class;
    v->starts = lx->started;
    v->n_acc = lx->n_acc;
    v->nc = (size_t)lx->n_classes;
}


/* ---- clamping: states that no token can tell apart ---- */

/* re with every repetition bound above the horizon H clamped: a minimum
 * over H becomes H + 1 and a maximum over H unbounded. On every text of at
 * most H bytes the two agree on where a match can end and whether it can
 * go on (each iteration of a bounded part takes a byte: a repetition of an
 * expression that matches "" has minimum 0, see bn_rx_repeat). */
static bn_rxid clamp(bn_lexer *lx, bn_rxid re, int depth) {
    bn_rx *rx = lx->rx;
    bn_rx_kind k = bn_rx_kind_of(rx, re);
    if (k == BN_RX_NOTHING || k == BN_RX_EMPTY || k == BN_RX_BYTES || k == BN_RX_DFA) return re;
    uint64_t key = (uint64_t)(uint32_t)re + 1;
    bn_rxid known = memo_get(&lx->clamps, key);
    if (known != BN_RX_ERROR) return known;
    if (depth > 5000) return BN_RX_ERROR;
    size_t n;
    const bn_rxid *p = bn_rx_parts(rx, re, &n);
    bn_rxid r;
    if (k == BN_RX_CONCAT) {
        bn_rxid a = p[0], b = p[1];
        bn_rxid ca = clamp(lx, a, depth + 1);
        r = bn_rx_concat(rx, ca, clamp(lx, b, depth + 1));
    } else if (k == BN_RX_ALT) {
        bn_rxid *v = malloc(n * sizeof *v);
        if (!v) return BN_RX_ERROR;
        memcpy(v, p, n * sizeof *v);
        for (size_t i = 0; i < n; i++) v[i] = clamp(lx, v[i], depth + 1);
        r = bn_rx_alt_n(rx, v, n);
        free(v);
    } else {
        uint32_t lo, hi, H = lx->horizon;
        bn_rx_bounds(rx, re, &lo, &hi);
        bn_rxid x = clamp(lx, p[0], depth + 1);
        r = bn_rx_repeat(rx, x, lo > H ? H + 1 : lo, hi == BN_RX_INF || hi > H ? BN_RX_INF : hi);
    }
    if (r == BN_RX_ERROR || !memo_put(&lx->clamps, key, r)) return BN_RX_ERROR;
    return r;
}

int32_t bn_lexer_clamped(bn_lexer *lx, int32_t state, uint32_t horizon) {
    if (lx->horizon != horizon) { /* one horizon per lexer: forget clamps made for another */
        memo_clear(&lx->clamps);
        for (size_t i = 0; i < lx->cap_clamp_of; i++) lx->clamp_of[i] = UNKNOWN;
        lx->horizon = horizon;
    }
    size_t old = lx->cap_clamp_of;
    if (!bn_grow((void **)&lx->clamp_of, &lx->cap_clamp_of, (size_t)state + 1, sizeof *lx->clamp_of))
        return BN_LEX_BUDGET;
    for (size_t i = old; i < lx->cap_clamp_of; i++) lx->clamp_of[i] = UNKNOWN;
    if (lx->clamp_of[state] != UNKNOWN) return lx->clamp_of[state];
    size_t n = lx->dfa[state].n;
    if (!bn_grow((void **)&lx->scratch, &lx->cap_scratch, n + 1, sizeof *lx->scratch)) return BN_LEX_BUDGET;
    for (size_t i = 0; i < n; i++) {
        pair pr = lx->pairs[lx->dfa[state].first + i];
        bn_rxid c = clamp(lx, pr.re, 0);
        if (c == BN_RX_ERROR) return BN_LEX_BUDGET;
        lx->scratch[i] = (pair){pr.lexeme, c};
    }
    qsort(lx->scratch, n, sizeof *lx->scratch, cmp_pair);
    int32_t c = intern_state(lx, lx->scratch, n, lx->dfa[state].started);
    if (c < 0) return c;
    if (!bn_grow((void **)&lx->clamp_of, &lx->cap_clamp_of, (size_t)state + 1, sizeof *lx->clamp_of)) return BN_LEX_BUDGET;
    lx->clamp_of[state] = c;
    return c;
}

int bn_lexer_loops_on(bn_lexer *lx, int32_t state, const uint64_t bytes[4]) {
    size_t old_yes = lx->cap_loop_yes, old_no = lx->cap_loop_no;
    if (!bn_grow((void **)&lx->loop_yes, &lx->cap_loop_yes, lx->n_dfa, sizeof *lx->loop_yes) ||
        !bn_grow((void **)&lx->loop_no, &lx->cap_loop_no, lx->n_dfa, sizeof *lx->loop_no))
        return -1;
    if (lx->cap_loop_yes > old_yes) memset(lx->loop_yes + old_yes, 0, (lx->cap_loop_yes - old_yes) * sizeof *lx->loop_yes);
    if (lx->cap_loop_no > old_no) memset(lx->loop_no + old_no, 0, (lx->cap_loop_no - old_no) * sizeof *lx->loop_no);
    for (;;) {
        /* the first byte of bytes not known yet; a byte known to leave answers at once */
        int b = -1;
        for (int w = 0; w < 4 && b < 0; w++) {
            if (bytes[w] & lx->loop_no[state][w]) return 0;
            uint64_t need = bytes[w] & ~lx->loop_yes[state][w];
            if (need) b = w * 64 + __builtin_ctzll(need);
        }
        if (b < 0) return 1;
        int32_t t = bn_lexer_next(lx, state, (uint8_t)b);
        if (t == BN_LEX_BUDGET) return -1;
        /* its whole byte class answers the same */
        int cls = lx->byte_class[b];
        uint64_t(*into)[4] = t == state ? lx->loop_yes : lx->loop_no;
        for (int c = 0; c < 256; c++)
            if (lx->byte_class[c] == cls) into[state][c >> 6] |= 1ull << (c & 63);
        if (t != state) return 0;
    }
}
