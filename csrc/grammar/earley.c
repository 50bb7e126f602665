/* earley.c: building Earley chart columns (earley.h). */
#include "grammar/earley.h"
#include "base/hash.h"

#include <stdlib.h>
#include <string.h>

void bn_cfg_free(bn_cfg *g) {
    free(g->syms);
    free(g->lhs);
    free(g->prods);
    free(g->nt_first);
    free(g->nullable);
    memset(g, 0, sizeof *g);
}

struct bn_earley_work {
    bn_item *items;
    size_t n, cap;
    uint64_t *set; /* open addressing over (dot, origin) + 1; 0 empty */
    size_t set_mask;
    /* sorting scratch: (key, index) pairs */
    int64_t *keys;
    size_t cap_keys;
};

bn_earley_work *bn_earley_work_new(void) {
    bn_earley_work *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->set_mask = 255;
    w->set = calloc(256, sizeof *w->set);
    if (!w->set) {
        free(w);
        return NULL;
    }
    return w;
}

void bn_earley_work_free(bn_earley_work *w) {
    if (!w) return;
    free(w->items);
    free(w->set);
    free(w->keys);
    free(w);
}

void bn_column_free(bn_column *c) { free(c); }

static uint64_t item_key(bn_item it) { return ((uint64_t)(uint32_t)it.dot << 32 | (uint32_t)it.origin) + 1; }

static size_t slot_of(uint64_t k, size_t mask) { return (size_t)bn_mix64(k) & mask; }

static int rehash(bn_earley_work *w) {
    size_t cap = (w->set_mask + 1) * 2;
    uint64_t *s = calloc(cap, sizeof *s);
    if (!s) return 0;
    for (size_t i = 0; i < w->n; i++) {
        uint64_t k = item_key(w->items[i]);
        size_t h = slot_of(k, cap - 1);
        while (s[h]) h = (h + 1) & (cap - 1);
        s[h] = k;
    }
    free(w->set);
    w->set = s;
    w->set_mask = cap - 1;
    return 1;
}

/* Adds it unless present. 0 when over budget or out of memory. */
static int add(bn_earley_work *w, bn_item it, size_t max_items) {
    uint64_t k = item_key(it);
    size_t h = slot_of(k, w->set_mask);
    while (w->set[h]) {
        if (w->set[h] == k) return 1;
        h = (h + 1) & w->set_mask;
    }
    if (w->n >= max_items) return 0;
    if (w->n == w->cap) {
        size_t c = w->cap ? w->cap * 2 : 256;
        bn_item *p = realloc(w->items, c * sizeof *p);
        if (!p) return 0;
        w->items = p;
        w->cap = c;
    }
    w->items[w->n++] = it;
    w->set[h] = k;
    if (w->n * 2 > w->set_mask && !rehash(w)) return 0;
    return 1;
}

static void reset(bn_earley_work *w) {
    if (w->n * 8 < w->set_mask) {
        for (size_t i = 0; i < w->n; i++) { /* clear only what was set */
            uint64_t k = item_key(w->items[i]);
            size_t h = slot_of(k, w->set_mask);
            while (w->set[h] != k) h = (h + 1) & w->set_mask;
            w->set[h] = 0;
        }
        /* a cleared slot may break a probe chain of another cleared key: all were cleared, so none remain */
    } else
        memset(w->set, 0, (w->set_mask + 1) * sizeof *w->set);
    w->n = 0;
}

static const bn_column *column_at(const bn_chart_view *v, int32_t i) {
    return i < v->n_base ? v->base[i] : v->extra[i - v->n_base];
}

/* The first index in keys[0..n) holding key (binary search), and the count. */
static int32_t find_range(const int32_t *keys, int32_t n, int32_t key, int32_t *count) {
    int32_t lo = 0, hi = n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    int32_t e = lo;
    while (e < n && keys[e] == key) e++;
    *count = e - lo;
    return lo;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Runs prediction and completion to a fixed point over w->items, then
 * packs the column. */
static int close_column(const bn_cfg *g, bn_earley_work *w, const bn_chart_view *v, int32_t index,
                        size_t max_items, bn_column **out) {
    for (size_t i = 0; i < w->n; i++) {
        bn_item it = w->items[i];
        int32_t s = g->syms[it.dot];
        if (s == BN_SYM_END) {
            if (it.origin == index) continue; /* an empty completion: the nullable step covered it */
            int32_t a = g->lhs[it.dot], cnt;
            const bn_column *c = column_at(v, it.origin);
            int32_t at = find_range(c->wait_nt, c->n_wait, a, &cnt);
            for (int32_t k = 0; k < cnt; k++) {
                bn_item up = c->wait[at + k];
                up.dot++;
                if (!add(w, up, max_items)) return BN_EARLEY_BUDGET;
            }
        } else if (s >= 0) {
            for (int32_t p = g->nt_first[s]; p < g->nt_first[s + 1]; p++)
                if (!add(w, (bn_item){g->prods[p], index}, max_items)) return BN_EARLEY_BUDGET;
            if (g->nullable[s] && !add(w, (bn_item){it.dot + 1, it.origin}, max_items)) return BN_EARLEY_BUDGET;
        }
    }
    /* pack: items, then those waiting on a nonterminal and those waiting on a lexeme, each sorted by symbol */
    size_t n = w->n, n_wait = 0, n_scan = 0;
    if (w->cap_keys < n) {
        int64_t *k = realloc(w->keys, n * sizeof *k);
        if (!k) return BN_EARLEY_BUDGET;
        w->keys = k;
        w->cap_keys = n;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t s = g->syms[w->items[i].dot];
        if (s >= 0) n_wait++;
        else if (s != BN_SYM_END) n_scan++;
    }
    size_t bytes = sizeof(bn_column) + n * sizeof(bn_item) + n_wait * (sizeof(bn_item) + sizeof(int32_t)) +
                   n_scan * (sizeof(bn_item) + 2 * sizeof(int32_t));
    bn_column *c = malloc(bytes);
    if (!c) return BN_EARLEY_BUDGET;
    char *p = (char *)(c + 1);
    c->items = (bn_item *)p;
    p += n * sizeof(bn_item);
    c->wait = (bn_item *)p;
    p += n_wait * sizeof(bn_item);
    c->scan = (bn_item *)p;
    p += n_scan * sizeof(bn_item);
    c->wait_nt = (int32_t *)p;
    p += n_wait * sizeof(int32_t);
    c->scan_lex = (int32_t *)p;
    p += n_scan * sizeof(int32_t);
    c->allowed = (int32_t *)p;
    c->index = index;
    c->n_items = (int32_t)n;
    c->lex_start = -3;
    c->accepting = 0;
    c->kept = 0;
    memcpy(c->items, w->items, n * sizeof(bn_item));
    for (size_t i = 0; i < n; i++) {
        bn_item it = w->items[i];
        if (g->syms[it.dot] == BN_SYM_END && it.origin == 0 && g->lhs[it.dot] == g->start) c->accepting = 1;
    }
    /* nonterminal waits */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t s = g->syms[w->items[i].dot];
        if (s >= 0) w->keys[m++] = (int64_t)s << 32 | (int64_t)i;
    }
    qsort(w->keys, m, sizeof *w->keys, cmp_i64);
    for (size_t i = 0; i < m; i++) {
        c->wait_nt[i] = (int32_t)(w->keys[i] >> 32);
        c->wait[i] = w->items[w->keys[i] & 0xffffffff];
    }
    c->n_wait = (int32_t)m;
    /* lexeme scans */
    m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t s = g->syms[w->items[i].dot];
        if (s < 0 && s != BN_SYM_END) w->keys[m++] = (int64_t)(-(s + 1)) << 32 | (int64_t)i;
    }
    qsort(w->keys, m, sizeof *w->keys, cmp_i64);
    int32_t na = 0;
    for (size_t i = 0; i < m; i++) {
        int32_t lex = (int32_t)(w->keys[i] >> 32);
        c->scan_lex[i] = lex;
        c->scan[i] = w->items[w->keys[i] & 0xffffffff];
        if (na == 0 || c->allowed[na - 1] != lex) c->allowed[na++] = lex;
    }
    c->n_scan = (int32_t)m;
    c->n_allowed = na;
    *out = c;
    return BN_EARLEY_OK;
}

int bn_earley_first(const bn_cfg *g, bn_earley_work *w, size_t max_items, bn_column **out) {
    reset(w);
    bn_chart_view v = {NULL, 0, NULL, 0};
    for (int32_t p = g->nt_first[g->start]; p < g->nt_first[g->start + 1]; p++)
        if (!add(w, (bn_item){g->prods[p], 0}, max_items)) return BN_EARLEY_BUDGET;
    int r = close_column(g, w, &v, 0, max_items, out);
    reset(w);
    return r;
}

int bn_earley_scan(const bn_cfg *g, bn_earley_work *w, const bn_chart_view *v, int32_t lexeme, size_t max_items,
                   bn_column **out) {
    int32_t n = v->n_base + v->n_extra;
    const bn_column *last = column_at(v, n - 1);
    int32_t cnt, at = find_range(last->scan_lex, last->n_scan, lexeme, &cnt);
    if (cnt == 0) return BN_EARLEY_NONE;
    reset(w);
    for (int32_t k = 0; k < cnt; k++) {
        bn_item it = last->scan[at + k];
        it.dot++;
        if (!add(w, it, max_items)) {
            reset(w);
            return BN_EARLEY_BUDGET;
        }
    }
    int r = close_column(g, w, v, n, max_items, out);
    reset(w);
    return r;
}
