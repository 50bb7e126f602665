/* regex.c: the hash-consed arena of regular expressions over bytes
 * (regex.h), and the UTF-8 compilation of code-point classes. */
#include "base/grow.h"
#include "base/hash.h"
#include "grammar/regex.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t kind;
    uint8_t nullable;
    uint32_t min, max;  /* REPEAT */
    uint32_t first, n;  /* parts: parts[first..first+n); BYTES: sets[first] */
    uint32_t hash;
} rx_node;

typedef struct {
    int32_t n_states;
    int n_classes;
    uint8_t class_of[256];
    int32_t *next; /* n_states * n_classes */
    uint8_t *accept;
} rx_dfa;

struct bn_rx {
    rx_node *node;
    size_t n_node, cap_node, max_nodes;
    bn_rxid *parts;
    size_t n_parts, cap_parts;
    uint64_t (*sets)[4];
    size_t n_sets, cap_sets;
    int32_t *table; /* open addressing: node ids, -1 empty */
    size_t table_mask;
    rx_dfa *dfas;
    size_t n_dfas, cap_dfas, dfa_states; /* (states count toward max_nodes) */
    const char *failed;
};

static uint32_t mix(uint32_t h, uint32_t v) {
    h ^= v + 0x9e3779b9u + (h << 6) + (h >> 2);
    return h;
}

bn_rx *bn_rx_new(size_t max_nodes) {
    bn_rx *rx = calloc(1, sizeof *rx);
    if (!rx) return NULL;
    rx->max_nodes = max_nodes ? max_nodes : 1000000;
    rx->table_mask = 1023;
    rx->table = malloc((rx->table_mask + 1) * sizeof *rx->table);
    if (!rx->table) {
        free(rx);
        return NULL;
    }
    memset(rx->table, 0xff, (rx->table_mask + 1) * sizeof *rx->table);
    return rx;
}

void bn_rx_free(bn_rx *rx) {
    if (!rx) return;
    for (size_t i = 0; i < rx->n_dfas; i++) {
        free(rx->dfas[i].next);
        free(rx->dfas[i].accept);
    }
    free(rx->dfas);
    free(rx->node);
    free(rx->parts);
    free(rx->sets);
    free(rx->table);
    free(rx);
}

const char *bn_rx_failed(const bn_rx *rx) { return rx->failed; }
size_t bn_rx_count(const bn_rx *rx) { return rx->n_node; }

static bn_rxid fail(bn_rx *rx, const char *why) {
    if (!rx->failed) rx->failed = why;
    return BN_RX_ERROR;
}

static int same(const bn_rx *rx, const rx_node *a, const rx_node *b, const bn_rxid *parts, const uint64_t *set) {
    if (a->kind != b->kind || a->min != b->min || a->max != b->max || a->n != b->n) return 0;
    if (a->kind == BN_RX_BYTES) return memcmp(rx->sets[a->first], set, 32) == 0;
    return a->n == 0 || memcmp(rx->parts + a->first, parts, a->n * sizeof *parts) == 0;
}

static int rehash(bn_rx *rx) {
    size_t cap = (rx->table_mask + 1) * 2;
    int32_t *t = malloc(cap * sizeof *t);
    if (!t) return 0;
    memset(t, 0xff, cap * sizeof *t);
    for (size_t i = 0; i < rx->n_node; i++) {
        size_t h = rx->node[i].hash & (cap - 1);
        while (t[h] >= 0) h = (h + 1) & (cap - 1);
        t[h] = (int32_t)i;
    }
    free(rx->table);
    rx->table = t;
    rx->table_mask = cap - 1;
    return 1;
}

/* Finds or adds the node of this shape: parts[0..n) or set. */
static bn_rxid intern(bn_rx *rx, bn_rx_kind kind, uint32_t min, uint32_t max, const bn_rxid *parts, uint32_t n,
                      const uint64_t *set, int nullable) {
    uint32_t h = mix(mix(mix(kind, min), max), n);
    if (kind == BN_RX_BYTES)
        for (int i = 0; i < 4; i++) h = mix(mix(h, (uint32_t)set[i]), (uint32_t)(set[i] >> 32));
    else
        for (uint32_t i = 0; i < n; i++) h = mix(h, (uint32_t)parts[i]);
    h ^= h >> 16; /* fmix32: spread every input bit to the low bits the table uses */
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    rx_node probe = {(uint8_t)kind, 0, min, max, 0, kind == BN_RX_BYTES ? 1 : n, h};
    size_t slot = h & rx->table_mask;
    for (int32_t id; (id = rx->table[slot]) >= 0; slot = (slot + 1) & rx->table_mask)
        if (rx->node[id].hash == h && same(rx, &rx->node[id], &probe, parts, set)) return id;
    if (rx->n_node >= rx->max_nodes) return fail(rx, "the regular expression budget is spent (too many nodes)");
    if (!bn_grow((void **)&rx->node, &rx->cap_node, rx->n_node + 1, sizeof *rx->node)) return fail(rx, "out of memory");
    if (kind == BN_RX_BYTES) {
        if (!bn_grow((void **)&rx->sets, &rx->cap_sets, rx->n_sets + 1, sizeof *rx->sets)) return fail(rx, "out of memory");
        memcpy(rx->sets[rx->n_sets], set, 32);
        probe.first = (uint32_t)rx->n_sets++;
    } else {
        if (!bn_grow((void **)&rx->parts, &rx->cap_parts, rx->n_parts + n, sizeof *rx->parts))
            return fail(rx, "out of memory");
        if (n) memcpy(rx->parts + rx->n_parts, parts, n * sizeof *parts);
        probe.first = (uint32_t)rx->n_parts;
        rx->n_parts += n;
    }
    probe.nullable = (uint8_t)nullable;
    bn_rxid id = (bn_rxid)rx->n_node;
    rx->node[rx->n_node++] = probe;
    rx->table[slot] = id;
    if (rx->n_node * 2 > rx->table_mask && !rehash(rx)) return fail(rx, "out of memory");
    return id;
}

bn_rxid bn_rx_nothing(bn_rx *rx) { return intern(rx, BN_RX_NOTHING, 0, 0, NULL, 0, NULL, 0); }
bn_rxid bn_rx_empty(bn_rx *rx) { return intern(rx, BN_RX_EMPTY, 0, 0, NULL, 0, NULL, 1); }

bn_rxid bn_rx_byteset(bn_rx *rx, const uint64_t set[4]) {
    if (!(set[0] | set[1] | set[2] | set[3])) return bn_rx_nothing(rx);
    return intern(rx, BN_RX_BYTES, 0, 0, NULL, 0, set, 0);
}

bn_rxid bn_rx_byte_range(bn_rx *rx, uint8_t lo, uint8_t hi) {
    uint64_t set[4] = {0, 0, 0, 0};
    for (unsigned b = lo; b <= hi; b++) set[b >> 6] |= 1ull << (b & 63);
    return bn_rx_byteset(rx, set);
}

bn_rx_kind bn_rx_kind_of(const bn_rx *rx, bn_rxid id) { return (bn_rx_kind)rx->node[id].kind; }
int bn_rx_nullable(const bn_rx *rx, bn_rxid id) { return rx->node[id].nullable; }
const uint64_t *bn_rx_set(const bn_rx *rx, bn_rxid id) { return rx->sets[rx->node[id].first]; }
const bn_rxid *bn_rx_parts(const bn_rx *rx, bn_rxid id, size_t *n) {
    *n = rx->node[id].n;
    return rx->parts + rx->node[id].first;
}
void bn_rx_bounds(const bn_rx *rx, bn_rxid id, uint32_t *min, uint32_t *max) {
    *min = rx->node[id].min;
    *max = rx->node[id].max;
}

bn_rxid bn_rx_concat(bn_rx *rx, bn_rxid a, bn_rxid b) {
    if (a == BN_RX_ERROR || b == BN_RX_ERROR) return BN_RX_ERROR;
    bn_rx_kind ka = bn_rx_kind_of(rx, a), kb = bn_rx_kind_of(rx, b);
    if (ka == BN_RX_NOTHING || kb == BN_RX_NOTHING) return bn_rx_nothing(rx);
    if (ka == BN_RX_EMPTY) return b;
    if (kb == BN_RX_EMPTY) return a;
    if (ka == BN_RX_CONCAT) { /* keep concatenations right-nested: one shape per sequence */
        bn_rxid a0 = rx->parts[rx->node[a].first], a1 = rx->parts[rx->node[a].first + 1];
        return bn_rx_concat(rx, a0, bn_rx_concat(rx, a1, b));
    }
    bn_rxid parts[2] = {a, b};
    return intern(rx, BN_RX_CONCAT, 0, 0, parts, 2, NULL, rx->node[a].nullable && rx->node[b].nullable);
}

bn_rxid bn_rx_concat_n(bn_rx *rx, const bn_rxid *parts, size_t n) {
    bn_rxid r = bn_rx_empty(rx);
    for (size_t i = n; i-- > 0;) r = bn_rx_concat(rx, parts[i], r);
    return r;
}

bn_rxid bn_rx_literal(bn_rx *rx, const void *s, size_t n) {
    const uint8_t *p = s;
    bn_rxid r = bn_rx_empty(rx);
    for (size_t i = n; i-- > 0;) r = bn_rx_concat(rx, bn_rx_byte_range(rx, p[i], p[i]), r);
    return r;
}

static int cmp_id(const void *a, const void *b) {
    bn_rxid x = *(const bn_rxid *)a, y = *(const bn_rxid *)b;
    return (x > y) - (x < y);
}

bn_rxid bn_rx_alt_n(bn_rx *rx, const bn_rxid *in, size_t n) {
    /* flatten nested alternatives, merge the byte sets, drop nothing, sort, dedupe */
    size_t cap = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == BN_RX_ERROR) return BN_RX_ERROR;
        cap += bn_rx_kind_of(rx, in[i]) == BN_RX_ALT ? rx->node[in[i]].n : 1;
    }
    bn_rxid *v = malloc((cap + 1) * sizeof *v);
    if (!v) return fail(rx, "out of memory");
    uint64_t set[4] = {0, 0, 0, 0};
    int any_set = 0, nullable = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 1;
        const bn_rxid *ps = &in[i];
        if (bn_rx_kind_of(rx, in[i]) == BN_RX_ALT) ps = bn_rx_parts(rx, in[i], &k);
        for (size_t j = 0; j < k; j++) {
            bn_rxid p = ps[j];
            bn_rx_kind kind = bn_rx_kind_of(rx, p);
            if (kind == BN_RX_NOTHING) continue;
            if (kind == BN_RX_BYTES) {
                const uint64_t *s = bn_rx_set(rx, p);
                for (int w = 0; w < 4; w++) set[w] |= s[w];
                any_set = 1;
                continue;
            }
            nullable |= rx->node[p].nullable;
            v[m++] = p;
        }
    }
    if (any_set) {
        bn_rxid s = bn_rx_byteset(rx, set);
        if (s == BN_RX_ERROR) {
            free(v);
            return BN_RX_ERROR;
        }
        v[m++] = s;
    }
    qsort(v, m, sizeof *v, cmp_id);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || v[u - 1] != v[i]) v[u++] = v[i];
    bn_rxid r;
    if (u == 0) r = bn_rx_nothing(rx);
    else if (u == 1) r = v[0];
    else if (u > UINT32_MAX) r = fail(rx, "too many alternatives");
    else r = intern(rx, BN_RX_ALT, 0, 0, v, (uint32_t)u, NULL, nullable);
    free(v);
    return r;
}

bn_rxid bn_rx_alt(bn_rx *rx, bn_rxid a, bn_rxid b) {
    bn_rxid v[2] = {a, b};
    return bn_rx_alt_n(rx, v, 2);
}

bn_rxid bn_rx_repeat(bn_rx *rx, bn_rxid a, uint32_t min, uint32_t max) {
    if (a == BN_RX_ERROR) return BN_RX_ERROR;
    if (min > max) return bn_rx_nothing(rx);
    bn_rx_kind k = bn_rx_kind_of(rx, a);
    if (max == 0 || k == BN_RX_EMPTY) return bn_rx_empty(rx);
    if (k == BN_RX_NOTHING) return min == 0 ? bn_rx_empty(rx) : bn_rx_nothing(rx);
    if (min == 1 && max == 1) return a;
    if (rx->node[a].nullable && min > 0) min = 0; /* x{m,n} = x{0,n} when x matches "" */
    if (k == BN_RX_REPEAT && rx->node[a].min <= 1 && rx->node[a].max == BN_RX_INF && max == BN_RX_INF) {
        /* (x*)* = x*, (x+)+ = x+, (x*)+ = x* */
        uint32_t m = rx->node[a].min && min ? 1 : 0;
        bn_rxid inner = rx->parts[rx->node[a].first];
        return bn_rx_repeat(rx, inner, m, BN_RX_INF);
    }
    return intern(rx, BN_RX_REPEAT, min, max, &a, 1, NULL, min == 0 || rx->node[a].nullable);
}

bn_rxid bn_rx_optional(bn_rx *rx, bn_rxid a) { return bn_rx_repeat(rx, a, 0, 1); }

/* ---- automata ---- */

int32_t bn_rx_dfa_new(bn_rx *rx, int32_t n_states, const uint8_t class_of[256], int n_classes, const int32_t *next,
                      const uint8_t *accept) {
    if (n_states <= 0 || n_classes <= 0 || n_classes > 256) return fail(rx, "internal: a malformed automaton"), -1;
    if (rx->n_node + rx->dfa_states + (size_t)n_states > rx->max_nodes)
        return fail(rx, "the regular expression budget is spent (too many nodes)"), -1;
    if (!bn_grow((void **)&rx->dfas, &rx->cap_dfas, rx->n_dfas + 1, sizeof *rx->dfas)) return fail(rx, "out of memory"), -1;
    rx_dfa *d = &rx->dfas[rx->n_dfas];
    size_t cells = (size_t)n_states * (size_t)n_classes;
    d->next = malloc(cells * sizeof *d->next);
    d->accept = malloc((size_t)n_states);
    if (!d->next || !d->accept) {
        free(d->next);
        free(d->accept);
        return fail(rx, "out of memory"), -1;
    }
    memcpy(d->next, next, cells * sizeof *d->next);
    memcpy(d->accept, accept, (size_t)n_states);
    memcpy(d->class_of, class_of, 256);
    d->n_states = n_states;
    d->n_classes = n_classes;
    rx->dfa_states += (size_t)n_states;
    return (int32_t)rx->n_dfas++;
}

bn_rxid bn_rx_dfa_state(bn_rx *rx, int32_t table, int32_t state) {
    if (state < 0) return bn_rx_nothing(rx);
    return intern(rx, BN_RX_DFA, (uint32_t)table, (uint32_t)state, NULL, 0, NULL, rx->dfas[table].accept[state]);
}

bn_rxid bn_rx_dfa_step(bn_rx *rx, bn_rxid id, uint8_t byte) {
    const rx_node *n = &rx->node[id];
    const rx_dfa *d = &rx->dfas[n->min];
    int32_t table = (int32_t)n->min;
    return bn_rx_dfa_state(rx, table, d->next[(size_t)n->max * (size_t)d->n_classes + d->class_of[byte]]);
}

void bn_rx_dfa_first(const bn_rx *rx, bn_rxid id, uint64_t out[4]) {
    const rx_node *n = &rx->node[id];
    const rx_dfa *d = &rx->dfas[n->min];
    const int32_t *row = d->next + (size_t)n->max * (size_t)d->n_classes;
    memset(out, 0, 4 * sizeof *out);
    for (int b = 0; b < 256; b++)
        if (row[d->class_of[b]] >= 0) out[b >> 6] |= 1ull << (b & 63);
}

int bn_rx_dfa_n_classes(const bn_rx *rx, bn_rxid id) { return rx->dfas[rx->node[id].min].n_classes; }

void bn_rx_dfa_class_bytes(const bn_rx *rx, bn_rxid id, int cls, uint64_t out[4]) {
    const rx_dfa *d = &rx->dfas[rx->node[id].min];
    memset(out, 0, 4 * sizeof *out);
    for (int b = 0; b < 256; b++)
        if (d->class_of[b] == cls) out[b >> 6] |= 1ull << (b & 63);
}

/* ---- code-point classes as UTF-8 ---- */

typedef struct {
    uint32_t lo, hi;
} cp_range;

static int cmp_range(const void *a, const void *b) {
    const cp_range *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Sorted, merged, complemented when asked, surrogates removed. Returns the
 * count (at most 2n + 2 ranges written to out). */
static size_t normalize(const uint32_t (*ranges)[2], size_t n, int negate, cp_range *out) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = ranges[i][0], hi = ranges[i][1];
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (lo > 0x10FFFF) continue;
        if (hi > 0x10FFFF) hi = 0x10FFFF;
        out[m++] = (cp_range){lo, hi};
    }
    qsort(out, m, sizeof *out, cmp_range);
    size_t u = 0;
    for (size_t i = 0; i < m; i++) {
        if (u && out[i].lo <= out[u - 1].hi + 1) {
            if (out[i].hi > out[u - 1].hi) out[u - 1].hi = out[i].hi;
        } else
            out[u++] = out[i];
    }
    if (negate) {
        /* complement in place, walking from the end so nothing unread is overwritten */
        cp_range *tmp = malloc((u + 1) * sizeof *tmp);
        if (!tmp) return 0;
        size_t k = 0;
        uint32_t next = 0;
        for (size_t i = 0; i < u; i++) {
            if (out[i].lo > next) tmp[k++] = (cp_range){next, out[i].lo - 1};
            next = out[i].hi + 1;
        }
        if (next <= 0x10FFFF) tmp[k++] = (cp_range){next, 0x10FFFF};
        memcpy(out, tmp, k * sizeof *tmp);
        free(tmp);
        u = k;
    }
    /* cut out the surrogates D800..DFFF (one range at most spans them) */
    size_t w = 0;
    cp_range cut[2];
    size_t n_cut = 0;
    for (size_t i = 0; i < u; i++) {
        cp_range r = out[i];
        if (r.hi < 0xD800 || r.lo > 0xDFFF) {
            out[w++] = r;
            continue;
        }
        if (r.lo < 0xD800) cut[n_cut++] = (cp_range){r.lo, 0xD7FF};
        if (r.hi > 0xDFFF) cut[n_cut++] = (cp_range){0xE000, r.hi};
    }
    for (size_t i = 0; i < n_cut; i++) out[w++] = cut[i]; /* order does not matter to callers */
    return w;
}

static int utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

static void utf8_bytes(uint32_t cp, uint8_t b[4]) {
    switch (utf8_len(cp)) {
    case 1: b[0] = (uint8_t)cp; break;
    case 2: b[0] = (uint8_t)(0xC0 | cp >> 6); b[1] = (uint8_t)(0x80 | (cp & 0x3F)); break;
    case 3:
        b[0] = (uint8_t)(0xE0 | cp >> 12); b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        break;
    default:
        b[0] = (uint8_t)(0xF0 | cp >> 18); b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (uint8_t)(0x80 | (cp & 0x3F));
    }
}

/* lo..hi of one UTF-8 length as alternatives of byte-range sequences: split
 * until every position is a plain range (the classic utf8-ranges method). */
static bn_rxid utf8_span(bn_rx *rx, uint32_t lo, uint32_t hi) {
    int n = utf8_len(lo);
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m) return bn_rx_alt(rx, utf8_span(rx, lo, lo | m), utf8_span(rx, (lo | m) + 1, hi));
            if ((hi & m) != m) return bn_rx_alt(rx, utf8_span(rx, lo, (hi & ~m) - 1), utf8_span(rx, hi & ~m, hi));
        }
    }
    uint8_t a[4], b[4];
    utf8_bytes(lo, a);
    utf8_bytes(hi, b);
    bn_rxid r = bn_rx_empty(rx);
    for (int i = n; i-- > 0;) r = bn_rx_concat(rx, bn_rx_byte_range(rx, a[i], b[i]), r);
    return r;
}

static bn_rxid utf8_range(bn_rx *rx, uint32_t lo, uint32_t hi) {
    static const uint32_t ends[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    bn_rxid r = bn_rx_nothing(rx);
    for (int i = 0; i < 4 && lo <= hi; i++) {
        if (lo > ends[i]) continue;
        uint32_t h = hi < ends[i] ? hi : ends[i];
        r = bn_rx_alt(rx, r, utf8_span(rx, lo, h));
        lo = h + 1;
    }
    return r;
}

static bn_rxid class_of(bn_rx *rx, const cp_range *r, size_t n) {
    bn_rxid out = bn_rx_nothing(rx);
    for (size_t i = 0; i < n; i++) out = bn_rx_alt(rx, out, utf8_range(rx, r[i].lo, r[i].hi));
    return out;
}

bn_rxid bn_rx_cp_class(bn_rx *rx, const uint32_t (*ranges)[2], size_t n, int negate) {
    cp_range *r = malloc((2 * n + 4) * sizeof *r);
    if (!r) return fail(rx, "out of memory");
    size_t m = normalize(ranges, n, negate, r);
    bn_rxid out = class_of(rx, r, m);
    free(r);
    return out;
}

static int in_ranges(const cp_range *r, size_t n, uint32_t cp) {
    for (size_t i = 0; i < n; i++)
        if (cp >= r[i].lo && cp <= r[i].hi) return 1;
    return 0;
}

static bn_rxid hex_digit(bn_rx *rx, unsigned v) {
    static const char digits[] = "0123456789abcdef";
    uint64_t set[4] = {0, 0, 0, 0};
    uint8_t lower = (uint8_t)digits[v], upper = (uint8_t)(v >= 10 ? lower - 32 : lower);
    set[lower >> 6] |= 1ull << (lower & 63);
    set[upper >> 6] |= 1ull << (upper & 63);
    return bn_rx_byteset(rx, set);
}

bn_rxid bn_rx_json_cp_class(bn_rx *rx, const uint32_t (*ranges)[2], size_t n, int negate) {
    cp_range *r = malloc((2 * n + 8) * sizeof *r);
    if (!r) return fail(rx, "out of memory");
    size_t m = normalize(ranges, n, negate, r);
    /* the raw part: the class less the controls, '"' and '\' */
    cp_range *raw = calloc(m + 4, sizeof *raw);
    if (!raw) {
        free(r);
        return fail(rx, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t lo = r[i].lo < 0x20 ? 0x20 : r[i].lo, hi = r[i].hi;
        if (lo > hi) continue;
        /* split around 0x22 and 0x5C */
        uint32_t cuts[2] = {0x22, 0x5C};
        for (int c = 0; c < 2; c++) {
            if (lo <= cuts[c] && cuts[c] <= hi) {
                if (lo < cuts[c]) raw[k++] = (cp_range){lo, cuts[c] - 1};
                lo = cuts[c] + 1;
            }
        }
        if (lo <= hi) raw[k++] = (cp_range){lo, hi};
    }
    bn_rxid out = class_of(rx, raw, k);
    free(raw);
    if (in_ranges(r, m, '"')) out = bn_rx_alt(rx, out, bn_rx_literal(rx, "\\\"", 2));
    if (in_ranges(r, m, '\\')) out = bn_rx_alt(rx, out, bn_rx_literal(rx, "\\\\", 2));
    for (uint32_t c = 0; c < 0x20; c++) {
        if (!in_ranges(r, m, c)) continue;
        const char *s = c == 8 ? "\\b" : c == 9 ? "\\t" : c == 10 ? "\\n" : c == 12 ? "\\f" : c == 13 ? "\\r" : NULL;
        if (s) {
            out = bn_rx_alt(rx, out, bn_rx_literal(rx, s, 2));
            continue;
        }
        bn_rxid parts[3] = {bn_rx_literal(rx, "\\u00", 4), hex_digit(rx, c >> 4), hex_digit(rx, c & 15)};
        out = bn_rx_alt(rx, out, bn_rx_concat_n(rx, parts, 3));
    }
    free(r);
    return out;
}

/* ---- the reference matcher (tests) ---- */

typedef struct {
    const bn_rx *rx;
    const uint8_t *s;
    size_t n;
    /* memo: key (id, count, i, j) -> 1 + result; open addressing */
    uint64_t *keys;
    uint8_t *vals;
    size_t mask;
    size_t used;
    int oom;
} ref_ctx;

static int ref_match(ref_ctx *c, bn_rxid id, size_t i, size_t j);

static int memo_get(ref_ctx *c, uint64_t key, size_t *slot) {
    size_t h = (size_t)bn_mix64(key) & c->mask;
    while (c->vals[h]) {
        if (c->keys[h] == key) {
            *slot = h;
            return c->vals[h] - 1;
        }
        h = (h + 1) & c->mask;
    }
    *slot = h;
    return -1;
}

static void memo_put(ref_ctx *c, uint64_t key, int v) {
    size_t slot;
    if (c->used * 2 >= c->mask) return; /* full: just stop memoizing */
    if (memo_get(c, key, &slot) >= 0) return;
    c->keys[slot] = key;
    c->vals[slot] = (uint8_t)(v + 1);
    c->used++;
}

/* Does x{min..max} match s[i..j)? */
static int ref_repeat(ref_ctx *c, bn_rxid x, uint32_t min, uint32_t max, size_t i, size_t j) {
    if (i == j) return min == 0 || bn_rx_nullable(c->rx, x);
    if (max == 0) return 0;
    uint64_t key = ((uint64_t)(uint32_t)x << 40) ^ ((uint64_t)(min > 4095 ? 4095 : min) << 28) ^
                   ((uint64_t)(max == BN_RX_INF ? 4095 : max > 4095 ? 4094 : max) << 16) ^ (i << 8) ^ j ^ (1ull << 63);
    size_t slot;
    int v = memo_get(c, key, &slot);
    if (v >= 0) return v;
    int r = 0;
    for (size_t k = i + 1; k <= j && !r; k++)
        if (ref_match(c, x, i, k))
            r = ref_repeat(c, x, min ? min - 1 : 0, max == BN_RX_INF ? BN_RX_INF : max - 1, k, j);
    memo_put(c, key, r);
    return r;
}

static int ref_match(ref_ctx *c, bn_rxid id, size_t i, size_t j) {
    size_t n;
    const bn_rxid *p;
    switch (bn_rx_kind_of(c->rx, id)) {
    case BN_RX_NOTHING: return 0;
    case BN_RX_EMPTY: return i == j;
    case BN_RX_BYTES: {
        if (j != i + 1) return 0;
        const uint64_t *set = bn_rx_set(c->rx, id);
        return (int)(set[c->s[i] >> 6] >> (c->s[i] & 63) & 1);
    }
    case BN_RX_ALT:
        p = bn_rx_parts(c->rx, id, &n);
        for (size_t k = 0; k < n; k++)
            if (ref_match(c, p[k], i, j)) return 1;
        return 0;
    case BN_RX_CONCAT: {
        uint64_t key = ((uint64_t)(uint32_t)id << 40) ^ ((uint64_t)i << 20) ^ j;
        size_t slot;
        int v = memo_get(c, key, &slot);
        if (v >= 0) return v;
        p = bn_rx_parts(c->rx, id, &n);
        int r = 0;
        for (size_t k = i; k <= j && !r; k++) r = ref_match(c, p[0], i, k) && ref_match(c, p[1], k, j);
        memo_put(c, key, r);
        return r;
    }
    case BN_RX_REPEAT: {
        uint32_t lo, hi;
        bn_rx_bounds(c->rx, id, &lo, &hi);
        p = bn_rx_parts(c->rx, id, &n);
        return ref_repeat(c, p[0], lo, hi, i, j);
    }
    case BN_RX_DFA: {
        const rx_node *nd = &c->rx->node[id];
        const rx_dfa *d = &c->rx->dfas[nd->min];
        int32_t st = (int32_t)nd->max;
        for (size_t k = i; k < j && st >= 0; k++) st = d->next[(size_t)st * (size_t)d->n_classes + d->class_of[c->s[k]]];
        return st >= 0 && d->accept[st];
    }
    }
    return 0;
}

int bn_rx_matches(const bn_rx *rx, bn_rxid id, const void *s, size_t n) {
    if (id == BN_RX_ERROR) return 0;
    ref_ctx c = {rx, s, n, NULL, NULL, (1u << 20) - 1, 0, 0};
    c.keys = calloc(c.mask + 1, sizeof *c.keys);
    c.vals = calloc(c.mask + 1, 1);
    int r = c.keys && c.vals ? ref_match(&c, id, 0, n) : 0;
    free(c.keys);
    free(c.vals);
    return r;
}
