/* json_schema_rxalg.c: derivatives, matching, products of regular
 * expressions and their conversion back (json_schema_rxalg.h). */
#include "grammar/json_schema_rxalg.h"
#include "base/hash.h"

#include <stdlib.h>
#include <string.h>

struct bn_jrx {
    bn_rx *rx;
    size_t max_states;  /* of one automaton */
    size_t total_left;  /* states all automata together may still build */
    /* memo (id << 8 | byte) + 1 -> derivative; open addressing, 0 empty */
    uint64_t *keys;
    bn_rxid *vals;
    size_t mask, used;
    /* products already built: open addressing over (a, b, both_in) -> result
     * (BN_RX_ERROR too: a product over budget stays over) */
    struct product_memo {
        bn_rxid a, b, r;
        int both_in; /* -1: empty slot; 2: both in, kept as a table */
    } *products;
    size_t products_mask, n_products;
};

bn_jrx *bn_jrx_new(bn_rx *rx, size_t max_states) {
    bn_jrx *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->rx = rx;
    j->max_states = max_states ? max_states : 2000;
    j->total_left = 8 * j->max_states;
    j->mask = 4095;
    j->keys = calloc(j->mask + 1, sizeof *j->keys);
    j->vals = malloc((j->mask + 1) * sizeof *j->vals);
    if (!j->keys || !j->vals) {
        bn_jrx_free(j);
        return NULL;
    }
    return j;
}

void bn_jrx_free(bn_jrx *j) {
    if (!j) return;
    free(j->products);
    free(j->keys);
    free(j->vals);
    free(j);
}

static size_t slot_of(const bn_jrx *j, uint64_t key) {
    size_t h = (size_t)bn_mix64(key) & j->mask;
    while (j->keys[h] && j->keys[h] != key) h = (h + 1) & j->mask;
    return h;
}

static int memo_grow(bn_jrx *j) {
    size_t old_mask = j->mask;
    uint64_t *old_keys = j->keys;
    bn_rxid *old_vals = j->vals;
    j->mask = old_mask * 2 + 1;
    j->keys = calloc(j->mask + 1, sizeof *j->keys);
    j->vals = malloc((j->mask + 1) * sizeof *j->vals);
    if (!j->keys || !j->vals) {
        free(j->keys);
        free(j->vals);
        j->keys = old_keys;
        j->vals = old_vals;
        j->mask = old_mask;
        return 0;
    }
    for (size_t i = 0; i <= old_mask; i++) {
        if (!old_keys[i]) continue;
        size_t h = slot_of(j, old_keys[i]);
        j->keys[h] = old_keys[i];
        j->vals[h] = old_vals[i];
    }
    free(old_keys);
    free(old_vals);
    return 1;
}

bn_rxid bn_jrx_deriv(bn_jrx *j, bn_rxid id, uint8_t byte) {
    if (id == BN_RX_ERROR) return BN_RX_ERROR;
    bn_rx *rx = j->rx;
    uint64_t key = (((uint64_t)(uint32_t)id << 8) | byte) + 1;
    size_t h = slot_of(j, key);
    if (j->keys[h]) return j->vals[h];
    bn_rxid r;
    size_t n;
    const bn_rxid *p;
    /* parts are copied before recursing: new nodes may move the arena */
    switch (bn_rx_kind_of(rx, id)) {
    case BN_RX_BYTES: r = (bn_rx_set(rx, id)[byte >> 6] >> (byte & 63)) & 1 ? bn_rx_empty(rx) : bn_rx_nothing(rx); break;
    case BN_RX_CONCAT: {
        p = bn_rx_parts(rx, id, &n);
        bn_rxid a = p[0], b = p[1];
        r = bn_rx_concat(rx, bn_jrx_deriv(j, a, byte), b);
        if (bn_rx_nullable(rx, a)) r = bn_rx_alt(rx, r, bn_jrx_deriv(j, b, byte));
        break;
    }
    case BN_RX_ALT: {
        p = bn_rx_parts(rx, id, &n);
        bn_rxid *d = malloc(n * sizeof *d);
        if (!d) return BN_RX_ERROR;
        memcpy(d, p, n * sizeof *d);
        for (size_t i = 0; i < n; i++) d[i] = bn_jrx_deriv(j, d[i], byte);
        r = bn_rx_alt_n(rx, d, n);
        free(d);
        break;
    }
    case BN_RX_REPEAT: {
        uint32_t min, max;
        bn_rxid a = bn_rx_parts(rx, id, &n)[0];
        bn_rx_bounds(rx, id, &min, &max);
        bn_rxid rest = bn_rx_repeat(rx, a, min ? min - 1 : 0, max == BN_RX_INF ? BN_RX_INF : max - 1);
        r = bn_rx_concat(rx, bn_jrx_deriv(j, a, byte), rest);
        break;
    }
    case BN_RX_DFA: r = bn_rx_dfa_step(rx, id, byte); break;
    default: r = bn_rx_nothing(rx); break;
    }
    if (r == BN_RX_ERROR) return r;
    if ((j->used + 1) * 2 > j->mask && !memo_grow(j)) return r; /* still correct, just not remembered */
    h = slot_of(j, key);
    j->keys[h] = key;
    j->vals[h] = r;
    j->used++;
    return r;
}

int bn_jrx_match(bn_jrx *j, bn_rxid id, const void *s, size_t n) {
    const uint8_t *b = s;
    for (size_t i = 0; i < n; i++) {
        id = bn_jrx_deriv(j, id, b[i]);
        if (id == BN_RX_ERROR) return -1;
        if (bn_rx_kind_of(j->rx, id) == BN_RX_NOTHING) return 0;
    }
    return bn_rx_nullable(j->rx, id);
}

/* ---- byte classes: bytes no expression involved tells apart ---- */

typedef struct {
    uint8_t of[256]; /* class of each byte */
    uint8_t rep[256]; /* a byte of each class */
    int n;
} byte_classes;

/* Splits c's classes by set: bytes in it from bytes outside. */
static void split_classes(byte_classes *c, const uint64_t set[4]) {
    int map[2][256];
    memset(map, 0xff, sizeof map);
    int n = 0;
    uint8_t of[256];
    for (int b = 0; b < 256; b++) {
        int in = (set[b >> 6] >> (b & 63)) & 1;
        int *m = &map[in][c->of[b]];
        if (*m < 0) {
            *m = n++;
            c->rep[*m] = (uint8_t)b;
        }
        of[b] = (uint8_t)*m;
    }
    memcpy(c->of, of, 256);
    c->n = n;
}

/* Refines c by every byte set reachable from root. */
static int refine_classes(bn_rx *rx, bn_rxid root, byte_classes *c) {
    size_t cap = 256, top = 0, seen_cap = 1024, seen_used = 0;
    bn_rxid *stack = malloc(cap * sizeof *stack);
    bn_rxid *seen = malloc(seen_cap * sizeof *seen); /* open addressing set, -1 empty */
    if (!stack || !seen) goto oom;
    memset(seen, 0xff, seen_cap * sizeof *seen);
    stack[top++] = root;
    while (top) {
        bn_rxid id = stack[--top];
        size_t h = ((uint32_t)id * 2654435761u) & (seen_cap - 1);
        while (seen[h] != -1 && seen[h] != id) h = (h + 1) & (seen_cap - 1);
        if (seen[h] == id) continue;
        seen[h] = id;
        if (++seen_used * 2 > seen_cap) {
            size_t ncap = seen_cap * 2;
            bn_rxid *ns = malloc(ncap * sizeof *ns);
            if (!ns) goto oom;
            memset(ns, 0xff, ncap * sizeof *ns);
            for (size_t i = 0; i < seen_cap; i++) {
                if (seen[i] == -1) continue;
                size_t k = ((uint32_t)seen[i] * 2654435761u) & (ncap - 1);
                while (ns[k] != -1) k = (k + 1) & (ncap - 1);
                ns[k] = seen[i];
            }
            free(seen);
            seen = ns;
            seen_cap = ncap;
        }
        bn_rx_kind kind = bn_rx_kind_of(rx, id);
        if (kind == BN_RX_BYTES) split_classes(c, bn_rx_set(rx, id));
        else if (kind == BN_RX_DFA) { /* its table's classes, one set at a time */
            for (int cl = 0, k = bn_rx_dfa_n_classes(rx, id); cl < k; cl++) {
                uint64_t set[4];
                bn_rx_dfa_class_bytes(rx, id, cl, set);
                split_classes(c, set);
            }
        } else if (kind == BN_RX_CONCAT || kind == BN_RX_ALT || kind == BN_RX_REPEAT) {
            size_t n;
            const bn_rxid *p = bn_rx_parts(rx, id, &n);
            if (top + n > cap) {
                while (top + n > cap) cap *= 2;
                bn_rxid *ns = realloc(stack, cap * sizeof *ns);
                if (!ns) goto oom;
                stack = ns;
            }
            for (size_t i = 0; i < n; i++) stack[top++] = p[i];
        }
    }
    free(stack);
    free(seen);
    return 1;
oom:
    free(stack);
    free(seen);
    return 0;
}

/* ---- product DFAs ---- */

typedef struct {
    int32_t from, to;
    uint8_t cls;
} edge;

typedef struct {
    bn_rxid (*pair)[2]; /* state -> (a, b) */
    uint8_t *accept;
    size_t n, cap;
    edge *e;
    size_t ne, cap_e;
    int32_t *table; /* pair hash -> state, -1 empty */
    size_t mask;
    byte_classes cls;
} dfa;

static void dfa_free(dfa *d) {
    free(d->pair);
    free(d->accept);
    free(d->e);
    free(d->table);
}

static size_t pair_hash(bn_rxid a, bn_rxid b) {
    return (size_t)(((uint64_t)(uint32_t)a * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(uint32_t)b * 0xC2B2AE3D27D4EB4Full)) >> 7;
}

/* The state of pair (a, b), added when new; -1 out of memory or budget. */
static int32_t dfa_state(bn_jrx *j, dfa *d, bn_rxid a, bn_rxid b, int both_in, int *added) {
    size_t h = pair_hash(a, b) & d->mask;
    while (d->table[h] >= 0) {
        int32_t s = d->table[h];
        if (d->pair[s][0] == a && d->pair[s][1] == b) return s;
        h = (h + 1) & d->mask;
    }
    if (d->n >= j->max_states || j->total_left == 0) return -1;
    j->total_left--;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        void *p = realloc(d->pair, cap * sizeof *d->pair), *q = NULL;
        if (p) d->pair = p;
        q = realloc(d->accept, cap);
        if (q) d->accept = q;
        if (!p || !q) return -1;
        d->cap = cap;
    }
    int32_t s = (int32_t)d->n++;
    d->pair[s][0] = a;
    d->pair[s][1] = b;
    int na = bn_rx_nullable(j->rx, a), nb = bn_rx_nullable(j->rx, b);
    d->accept[s] = (uint8_t)(both_in ? na && nb : na && !nb);
    d->table[h] = s;
    *added = 1;
    return s;
}

/* Builds the product of a and b by breadth-first search. stop_at_accept:
 * return 1 as soon as an accepting state is reached. Returns 1 (or 2
 * when stopped), 0 on the budget or out of memory. */
static int dfa_build(bn_jrx *j, dfa *d, bn_rxid a, bn_rxid b, int both_in, int stop_at_accept) {
    memset(d, 0, sizeof *d);
    d->mask = (j->max_states * 2 < 1024 ? 1024 : j->max_states * 2);
    size_t m = 1;
    while (m < d->mask) m <<= 1;
    d->mask = m - 1;
    d->table = malloc(m * sizeof *d->table);
    if (!d->table) return 0;
    memset(d->table, 0xff, m * sizeof *d->table);
    d->cls.n = 1;
    memset(d->cls.of, 0, 256);
    d->cls.rep[0] = 0;
    if (!refine_classes(j->rx, a, &d->cls) || !refine_classes(j->rx, b, &d->cls)) return 0;
    int added = 0;
    if (dfa_state(j, d, a, b, both_in, &added) < 0) return 0;
    for (size_t s = 0; s < d->n; s++) {
        if (stop_at_accept && d->accept[s]) return 2;
        for (int c = 0; c < d->cls.n; c++) {
            uint8_t byte = d->cls.rep[c];
            bn_rxid da = bn_jrx_deriv(j, d->pair[s][0], byte), db = bn_jrx_deriv(j, d->pair[s][1], byte);
            if (da == BN_RX_ERROR || db == BN_RX_ERROR) return 0;
            if (bn_rx_kind_of(j->rx, da) == BN_RX_NOTHING) continue;
            if (both_in && bn_rx_kind_of(j->rx, db) == BN_RX_NOTHING) continue;
            int32_t t = dfa_state(j, d, da, db, both_in, &added);
            if (t < 0) return 0;
            if (d->ne == d->cap_e) {
                size_t cap = d->cap_e ? d->cap_e * 2 : 256;
                edge *e = realloc(d->e, cap * sizeof *e);
                if (!e) return 0;
                d->e = e;
                d->cap_e = cap;
            }
            d->e[d->ne++] = (edge){(int32_t)s, t, (uint8_t)c};
        }
    }
    return 1;
}

long bn_jrx_states(bn_jrx *j, bn_rxid a) {
    dfa d;
    int ok = dfa_build(j, &d, a, bn_rx_nothing(j->rx), 0, 0);
    long n = ok ? (long)d.n : -1;
    dfa_free(&d);
    return n;
}

int bn_jrx_overlap(bn_jrx *j, bn_rxid a, bn_rxid b) {
    dfa d;
    int r = dfa_build(j, &d, a, b, 1, 1);
    dfa_free(&d);
    return r == 2 ? 1 : r == 1 ? 0 : -1;
}

/* ---- back to an expression: trim, merge equivalent states, eliminate ---- */

typedef struct {
    int32_t to;
    bn_rxid label;
} arc;

typedef struct {
    arc *out, *in;
    size_t n_out, cap_out, n_in, cap_in;
    bn_rxid loop;
    int gone;
} node;

static int arc_add(arc **v, size_t *n, size_t *cap, int32_t to, bn_rxid label) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        arc *p = realloc(*v, c * sizeof *p);
        if (!p) return 0;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = (arc){to, label};
    return 1;
}

/* Adds label to the arc from -> to (merging with one already there). */
static int link(bn_rx *rx, node *g, int32_t from, int32_t to, bn_rxid label) {
    if (from == to) {
        g[from].loop = bn_rx_alt(rx, g[from].loop, label);
        return 1;
    }
    for (size_t i = 0; i < g[from].n_out; i++) {
        if (g[from].out[i].to != to) continue;
        bn_rxid merged = bn_rx_alt(rx, g[from].out[i].label, label);
        g[from].out[i].label = merged;
        for (size_t k = 0; k < g[to].n_in; k++)
            if (g[to].in[k].to == from) g[to].in[k].label = merged;
        return 1;
    }
    return arc_add(&g[from].out, &g[from].n_out, &g[from].cap_out, to, label) &&
           arc_add(&g[to].in, &g[to].n_in, &g[to].cap_in, from, label);
}

static void unlink_from(node *g, int32_t at, int32_t other, int outgoing) {
    arc *v = outgoing ? g[at].out : g[at].in;
    size_t *n = outgoing ? &g[at].n_out : &g[at].n_in;
    for (size_t i = 0; i < *n; i++)
        if (v[i].to == other) {
            v[i] = v[--*n];
            return;
        }
}

/* Merges states that accept the same language (Moore refinement) into
 * block[]; returns the number of blocks. Only live states (live[s]). */
static int32_t minimize(const dfa *d, const uint8_t *live, int32_t *block) {
    size_t n = d->n;
    int32_t nb = 0;
    int32_t *next = malloc(n * sizeof *next);
    int32_t *sig_to = malloc((size_t)d->cls.n * n * sizeof *sig_to);
    if (!next || !sig_to) {
        free(next);
        free(sig_to);
        return -1;
    }
    for (size_t s = 0; s < n; s++) block[s] = live[s] ? d->accept[s] : -1;
    for (;;) {
        /* signature of s: its block and the block of each class's target */
        for (size_t i = 0; i < (size_t)d->cls.n * n; i++) sig_to[i] = -1;
        for (size_t i = 0; i < d->ne; i++)
            if (live[d->e[i].from] && live[d->e[i].to]) sig_to[(size_t)d->e[i].from * (size_t)d->cls.n + d->e[i].cls] = block[d->e[i].to];
        /* renumber by signature: quadratic in the worst case, states are few */
        int32_t count = 0;
        for (size_t s = 0; s < n; s++) next[s] = -1;
        for (size_t s = 0; s < n; s++) {
            if (!live[s] || next[s] >= 0) continue;
            next[s] = count;
            for (size_t t = s + 1; t < n; t++) {
                if (!live[t] || next[t] >= 0 || block[t] != block[s]) continue;
                if (memcmp(sig_to + s * (size_t)d->cls.n, sig_to + t * (size_t)d->cls.n, (size_t)d->cls.n * sizeof *sig_to) == 0)
                    next[t] = count;
            }
            count++;
        }
        int stable = count == nb;
        nb = count;
        for (size_t s = 0; s < n; s++) block[s] = next[s];
        if (stable) break;
    }
    free(next);
    free(sig_to);
    return nb;
}

typedef struct {
    int32_t from, to;
    uint8_t cls;
} block_edge;

static int cmp_block_edge(const void *a, const void *b) {
    const block_edge *x = a, *y = b;
    if (x->from != y->from) return x->from < y->from ? -1 : 1;
    if (x->to != y->to) return x->to < y->to ? -1 : 1;
    return (x->cls > y->cls) - (x->cls < y->cls);
}

/* live[s] = 1 for the states from which an accepting state is reachable
 * (live: d->n zeroed bytes). */
static void mark_live(const dfa *d, uint8_t *live) {
    for (size_t s = 0; s < d->n; s++) live[s] = d->accept[s];
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < d->ne; i++)
            if (live[d->e[i].to] && !live[d->e[i].from]) live[d->e[i].from] = changed = 1;
    }
}

static bn_rxid dfa_to_rx(bn_jrx *j, const dfa *d) {
    bn_rx *rx = j->rx;
    size_t n = d->n;
    /* live: states from which an accepting state is reachable */
    uint8_t *live = calloc(n ? n : 1, 1);
    int32_t *block = malloc((n ? n : 1) * sizeof *block);
    if (!live || !block) {
        free(live);
        free(block);
        return BN_RX_ERROR;
    }
    mark_live(d, live);
    if (!n || !live[0]) {
        free(live);
        free(block);
        return bn_rx_nothing(rx);
    }
    /* derivative automata are nearly minimal already: merge states only
     * where it is cheap (the refinement is quadratic) */
    int32_t nb = 0;
    if (n <= 300) nb = minimize(d, live, block);
    else
        for (size_t s = 0; s < n; s++) block[s] = live[s] ? nb++ : -1;
    if (nb < 0) {
        free(live);
        free(block);
        return BN_RX_ERROR;
    }
    /* graph: blocks 0..nb-1, start S = nb, final F = nb + 1 */
    size_t ng = (size_t)nb + 2;
    node *g = calloc(ng, sizeof *g);
    bn_rxid result = BN_RX_ERROR;
    if (!g) goto done;
    bn_rxid nothing = bn_rx_nothing(rx);
    for (size_t i = 0; i < ng; i++) g[i].loop = nothing;
    /* arcs between blocks, labelled by the union of their classes' bytes:
     * sort the live edges by (block from, block to) and merge runs */
    {
        size_t m = 0;
        block_edge *be = malloc((d->ne ? d->ne : 1) * sizeof *be);
        if (!be) goto done;
        for (size_t i = 0; i < d->ne; i++)
            if (live[d->e[i].from] && live[d->e[i].to])
                be[m++] = (block_edge){block[d->e[i].from], block[d->e[i].to], d->e[i].cls};
        qsort(be, m, sizeof *be, cmp_block_edge);
        uint64_t cls_bytes[256][4];
        memset(cls_bytes, 0, sizeof cls_bytes);
        for (int b = 0; b < 256; b++) cls_bytes[d->cls.of[b]][b >> 6] |= 1ull << (b & 63);
        for (size_t i = 0; i < m;) {
            uint64_t l[4] = {0, 0, 0, 0};
            size_t k = i;
            for (; k < m && be[k].from == be[i].from && be[k].to == be[i].to; k++)
                for (int w = 0; w < 4; w++) l[w] |= cls_bytes[be[k].cls][w];
            if (!link(rx, g, be[i].from, be[i].to, bn_rx_byteset(rx, l))) {
                free(be);
                goto done;
            }
            i = k;
        }
        free(be);
    }
    int32_t S = nb, F = nb + 1;
    if (!link(rx, g, S, block[0], bn_rx_empty(rx))) goto done;
    for (size_t s = 0; s < n; s++)
        if (live[s] && d->accept[s]) {
            int32_t b = block[s];
            int have = 0;
            for (size_t i = 0; i < g[b].n_out; i++) have |= g[b].out[i].to == F;
            if (!have && !link(rx, g, b, F, bn_rx_empty(rx))) goto done;
        }
    /* eliminate the blocks, fewest paths through first and, among equals,
     * the last found (the farthest from the start in breadth-first order):
     * the expressions then grow on their right, where concatenation (kept
     * right-nested) extends them without copying */
    for (int32_t round = 0; round < nb; round++) {
        int32_t k = -1;
        size_t best = SIZE_MAX;
        for (int32_t s = nb; s-- > 0 && best > 1;) {
            if (g[s].gone) continue;
            size_t cost = g[s].n_in * g[s].n_out;
            if (cost < best) {
                best = cost;
                k = s;
            }
        }
        bn_rxid loop = bn_rx_repeat(rx, g[k].loop, 0, BN_RX_INF);
        for (size_t a = 0; a < g[k].n_in; a++) {
            int32_t from = g[k].in[a].to;
            bn_rxid head = bn_rx_concat(rx, g[k].in[a].label, loop);
            for (size_t b = 0; b < g[k].n_out; b++)
                if (!link(rx, g, from, g[k].out[b].to, bn_rx_concat(rx, head, g[k].out[b].label))) goto done;
        }
        for (size_t a = 0; a < g[k].n_in; a++) unlink_from(g, g[k].in[a].to, k, 1);
        for (size_t b = 0; b < g[k].n_out; b++) unlink_from(g, g[k].out[b].to, k, 0);
        g[k].n_in = g[k].n_out = 0;
        g[k].gone = 1;
        if (bn_rx_failed(rx)) goto done;
    }
    result = nothing;
    for (size_t i = 0; i < g[S].n_out; i++)
        if (g[S].out[i].to == F) result = g[S].out[i].label;
done:
    if (g)
        for (size_t i = 0; i < ng; i++) {
            free(g[i].out);
            free(g[i].in);
        }
    free(g);
    free(live);
    free(block);
    return bn_rx_failed(rx) ? BN_RX_ERROR : result;
}

/* The product as an automaton in the arena (regex.h's BN_RX_DFA): its
 * live states renumbered, edges into dead states dropped. */
static bn_rxid dfa_to_table(bn_jrx *j, const dfa *d) {
    size_t n = d->n;
    uint8_t *live = calloc(n ? n : 1, 1);
    int32_t *id = malloc((n ? n : 1) * sizeof *id);
    int32_t *next = NULL;
    uint8_t *accept = NULL;
    bn_rxid r = BN_RX_ERROR;
    if (!live || !id) goto done;
    mark_live(d, live);
    if (!n || !live[0]) {
        r = bn_rx_nothing(j->rx);
        goto done;
    }
    int32_t m = 0;
    for (size_t s = 0; s < n; s++) id[s] = live[s] ? m++ : -1;
    size_t cells = (size_t)m * (size_t)d->cls.n;
    next = malloc(cells * sizeof *next);
    accept = malloc((size_t)m);
    if (!next || !accept) goto done;
    for (size_t i = 0; i < cells; i++) next[i] = -1;
    for (size_t s = 0; s < n; s++)
        if (live[s]) accept[id[s]] = d->accept[s];
    for (size_t i = 0; i < d->ne; i++)
        if (live[d->e[i].from] && live[d->e[i].to])
            next[(size_t)id[d->e[i].from] * (size_t)d->cls.n + d->e[i].cls] = id[d->e[i].to];
    int32_t table = bn_rx_dfa_new(j->rx, m, d->cls.of, d->cls.n, next, accept);
    if (table >= 0) r = bn_rx_dfa_state(j->rx, table, id[0]);
done:
    free(live);
    free(id);
    free(next);
    free(accept);
    return r;
}

static size_t product_slot(const bn_jrx *j, bn_rxid a, bn_rxid b, int both_in) {
    size_t h = (pair_hash(a, b) ^ (size_t)both_in) & j->products_mask;
    while (j->products[h].both_in >= 0 &&
           !(j->products[h].a == a && j->products[h].b == b && j->products[h].both_in == both_in))
        h = (h + 1) & j->products_mask;
    return h;
}

static int products_grow(bn_jrx *j) {
    size_t mask = j->products_mask ? j->products_mask * 2 + 1 : 63;
    struct product_memo *old = j->products, *v = malloc((mask + 1) * sizeof *v);
    if (!v) return 0;
    for (size_t i = 0; i <= mask; i++) v[i].both_in = -1;
    size_t old_mask = j->products_mask;
    j->products = v;
    j->products_mask = mask;
    for (size_t i = 0; old && i <= old_mask; i++)
        if (old[i].both_in >= 0) j->products[product_slot(j, old[i].a, old[i].b, old[i].both_in)] = old[i];
    free(old);
    return 1;
}

/* mode: 0 and 1 as both_in, spelled as an expression; 2: both in, as a table. */
static bn_rxid product(bn_jrx *j, bn_rxid a, bn_rxid b, int mode) {
    if (a == BN_RX_ERROR || b == BN_RX_ERROR) return BN_RX_ERROR;
    int both_in = mode;
    if (j->products) {
        size_t h = product_slot(j, a, b, both_in);
        if (j->products[h].both_in >= 0) return j->products[h].r;
    }
    dfa d;
    bn_rxid r = !dfa_build(j, &d, a, b, mode != 0, 0) ? BN_RX_ERROR : mode == 2 ? dfa_to_table(j, &d) : dfa_to_rx(j, &d);
    dfa_free(&d);
    if ((j->n_products + 1) * 2 > j->products_mask && !products_grow(j)) return r;
    j->products[product_slot(j, a, b, both_in)] = (struct product_memo){a, b, r, both_in};
    j->n_products++;
    return r;
}

bn_rxid bn_jrx_product(bn_jrx *j, bn_rxid a, bn_rxid b, int both_in) { return product(j, a, b, both_in ? 1 : 0); }

bn_rxid bn_jrx_intersect_table(bn_jrx *j, bn_rxid a, bn_rxid b) { return product(j, a, b, 2); }
