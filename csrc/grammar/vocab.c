/* vocab.c: the token trie of a vocabulary (vocab.h). */
#include "grammar/vocab.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct bn_vocab {
    atomic_int refs;
    const bn_tokenizer *tok; /* retained */
    int32_t n_tokens;
    bn_trie_node *nodes;
    uint64_t (*below)[4];
    uint32_t *first_tok;
    size_t n_nodes;
    uint32_t *plain_bits; /* plain-text tokens by id ... */
    uint32_t *plain_le;   /* ... and those of at most L bytes, L = 0..BN_VOCAB_PLAIN_LE_MAX (words each) */
    uint16_t *plain_len;  /* per trie position: plain token's length, or 0 */
    int32_t *order;
    uint32_t *len; /* per token id: its byte count; 0: not in the trie */
    size_t max_len;
    int32_t *eog;
    size_t n_eog;
};

/* qsort has no context argument in C11: sort (bytes pointer, len, id) triples instead. */
typedef struct {
    const uint8_t *p;
    uint32_t n;
    int32_t id;
} piece;

static int cmp_piece(const void *a, const void *b) {
    const piece *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Which tokens are plain text (vocab.h), as bits and per trie position;
 * flags each node with a token below that is not, and the deepest token
 * below. 0 when out of memory. */
static int find_plain(bn_vocab *v) {
    size_t words = ((size_t)v->n_tokens + 31) / 32;
    if (!words) words = 1;
    v->plain_bits = calloc(words, sizeof *v->plain_bits);
    v->plain_le = calloc(words * (BN_VOCAB_PLAIN_LE_MAX + 1), sizeof *v->plain_le);
    v->plain_len = calloc(v->first_tok[v->n_nodes] + 1, sizeof *v->plain_len);
    uint8_t *pstate = malloc(v->max_len + 2);
    if (!v->plain_bits || !v->plain_le || !v->plain_len || !pstate) {
        free(pstate);
        return 0;
    }
    pstate[0] = BN_PLAIN_START;
    for (size_t i = 1; i < v->n_nodes; i++) {
        bn_trie_node *nd = &v->nodes[i];
        uint8_t p = bn_plain_next(pstate[nd->depth - 1], nd->byte);
        pstate[nd->depth] = p;
        nd->flags = 0;
        nd->max_below = nd->tok_n ? nd->depth : 0;
        if (p == BN_PLAIN_DEAD) {
            if (nd->tok_n) nd->flags |= BN_TRIE_NOT_PLAIN;
            continue;
        }
        for (uint32_t k = nd->tok_first; k < nd->tok_first + nd->tok_n; k++) {
            int32_t t = v->order[k];
            v->plain_len[k] = nd->depth;
            v->plain_bits[t >> 5] |= 1u << (t & 31);
            if (nd->depth <= BN_VOCAB_PLAIN_LE_MAX) v->plain_le[nd->depth * words + (size_t)(t >> 5)] |= 1u << (t & 31);
        }
    }
    free(pstate);
    for (size_t L = 1; L <= BN_VOCAB_PLAIN_LE_MAX; L++) /* at most L bytes: those of L and of fewer */
        for (size_t w = 0; w < words; w++) v->plain_le[L * words + w] |= v->plain_le[(L - 1) * words + w];
    /* fold each node into its parent, last first: in depth-first order a
     * node's subtree follows it, so the nodes after i are done before i */
    uint32_t *open = malloc((v->max_len + 2) * sizeof *open), *parent = malloc(v->n_nodes * sizeof *parent);
    if (!open || !parent) {
        free(open);
        free(parent);
        return 0;
    }
    open[0] = 0;
    for (size_t i = 1; i < v->n_nodes; i++) {
        parent[i] = open[v->nodes[i].depth - 1];
        open[v->nodes[i].depth] = (uint32_t)i;
    }
    for (size_t i = v->n_nodes; i-- > 1;) {
        bn_trie_node *nd = &v->nodes[i], *up = &v->nodes[parent[i]];
        up->flags |= nd->flags & BN_TRIE_NOT_PLAIN;
        if (nd->max_below > up->max_below) up->max_below = nd->max_below;
    }
    free(open);
    free(parent);
    return 1;
}

bn_vocab *bn_vocab_new(const bn_tokenizer *t, bn_err *err) {
    bn_vocab *v = calloc(1, sizeof *v);
    int32_t n = bn_tokenizer_n_vocab(t);
    piece *ps = malloc((size_t)(n > 0 ? n : 1) * sizeof *ps);
    if (!v || !ps) goto oom;
    atomic_init(&v->refs, 1);
    v->n_tokens = n;
    size_t m = 0, total = 1;
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *p = bn_tokenizer_piece(t, id, &len);
        if (!p || len == 0 || len > 65535 || bn_tokenizer_is_control(t, id)) continue;
        ps[m++] = (piece){(const uint8_t *)p, (uint32_t)len, id};
        total += len;
        if (len > v->max_len) v->max_len = len;
    }
    qsort(ps, m, sizeof *ps, cmp_piece);
    v->order = malloc((m ? m : 1) * sizeof *v->order);
    v->nodes = malloc(total * sizeof *v->nodes);
    v->below = calloc(total, sizeof *v->below);
    v->len = calloc((size_t)(n > 0 ? n : 1), sizeof *v->len);
    size_t *open = malloc((v->max_len + 1) * sizeof *open); /* node index at each depth on the current path */
    if (!v->order || !v->nodes || !v->below || !v->len || !open) {
        free(open);
        goto oom;
    }
    /* the root */
    memset(&v->nodes[0], 0, sizeof v->nodes[0]);
    v->n_nodes = 1;
    open[0] = 0;
    size_t depth = 0; /* depth of the deepest open node */
    const uint8_t *prev = NULL;
    size_t prev_n = 0;
    for (size_t i = 0; i < m; i++) {
        const piece *p = &ps[i];
        size_t lcp = 0;
        while (prev && lcp < prev_n && lcp < p->n && prev[lcp] == p->p[lcp]) lcp++;
        /* close the nodes deeper than the common prefix */
        while (depth > lcp) v->nodes[open[depth--]].end = (uint32_t)v->n_nodes;
        for (size_t d = lcp; d < p->n; d++) {
            bn_trie_node *nd = &v->nodes[v->n_nodes];
            memset(nd, 0, sizeof *nd);
            nd->byte = p->p[d];
            nd->depth = (uint16_t)(d + 1);
            open[++depth] = v->n_nodes++;
        }
        bn_trie_node *at = &v->nodes[open[depth]];
        if (at->tok_n == 0) at->tok_first = (uint32_t)i;
        at->tok_n++;
        v->order[i] = p->id;
        v->len[p->id] = p->n;
        prev = p->p;
        prev_n = p->n;
    }
    while (depth > 0) v->nodes[open[depth--]].end = (uint32_t)v->n_nodes;
    v->nodes[0].end = (uint32_t)v->n_nodes;
    free(open);
    { /* bytes below each node: when a node's subtree ends, fold it into its parent */
        size_t *stack = malloc((v->max_len + 2) * sizeof *stack);
        if (!stack) goto oom;
        size_t sp = 0;
        stack[sp++] = 0;
        for (size_t i = 1; i <= v->n_nodes; i++) {
            while (sp > 1 && (i == v->n_nodes || i >= v->nodes[stack[sp - 1]].end)) {
                size_t ci = stack[--sp], pi = stack[sp - 1];
                uint8_t b = v->nodes[ci].byte;
                v->below[pi][b >> 6] |= 1ull << (b & 63);
                for (int w = 0; w < 4; w++) v->below[pi][w] |= v->below[ci][w];
            }
            if (i < v->n_nodes) stack[sp++] = i;
        }
        free(stack);
    }
    v->first_tok = malloc((v->n_nodes + 1) * sizeof *v->first_tok);
    if (!v->first_tok) goto oom;
    uint32_t acc = 0;
    for (size_t i = 0; i < v->n_nodes; i++) {
        v->first_tok[i] = acc;
        acc += v->nodes[i].tok_n;
    }
    v->first_tok[v->n_nodes] = acc;
    if (!find_plain(v)) goto oom;
    free(ps);
    ps = NULL;
    v->tok = t;
    bn_tokenizer_retain((bn_tokenizer *)t);
    for (int32_t id = 0; id < n; id++)
        if (bn_tokenizer_is_eog(t, id)) v->n_eog++;
    v->eog = malloc((v->n_eog ? v->n_eog : 1) * sizeof *v->eog);
    if (!v->eog) goto oom;
    v->n_eog = 0;
    for (int32_t id = 0; id < n; id++)
        if (bn_tokenizer_is_eog(t, id)) v->eog[v->n_eog++] = id;
    return v;
oom:
    free(ps);
    bn_vocab_free(v);
    bn_errf(err, "out of memory building the token trie");
    return NULL;
}

void bn_vocab_retain(bn_vocab *v) { atomic_fetch_add(&v->refs, 1); }

void bn_vocab_free(bn_vocab *v) {
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
    if (v->tok) bn_tokenizer_free((bn_tokenizer *)v->tok);
    free(v->nodes);
    free(v->below);
    free(v->first_tok);
    free(v->plain_bits);
    free(v->plain_le);
    free(v->plain_len);
    free(v->order);
    free(v->len);
    free(v->eog);
    free(v);
}

int32_t bn_vocab_n_tokens(const bn_vocab *v) { return v->n_tokens; }
const bn_trie_node *bn_vocab_trie(const bn_vocab *v, size_t *n_nodes) {
    *n_nodes = v->n_nodes;
    return v->nodes;
}
const int32_t *bn_vocab_order(const bn_vocab *v) { return v->order; }
const uint32_t *bn_vocab_first_tok(const bn_vocab *v) { return v->first_tok; }
const uint32_t *bn_vocab_plain_bits(const bn_vocab *v) { return v->plain_bits; }
const uint32_t *bn_vocab_plain_le(const bn_vocab *v, size_t L) {
    size_t words = ((size_t)v->n_tokens + 31) / 32;
    return v->plain_le + (L > BN_VOCAB_PLAIN_LE_MAX ? BN_VOCAB_PLAIN_LE_MAX : L) * (words ? words : 1);
}
const uint16_t *bn_vocab_plain_len(const bn_vocab *v) { return v->plain_len; }
const uint64_t (*bn_vocab_below(const bn_vocab *v))[4] { return (const uint64_t (*)[4])v->below; }
const uint8_t *bn_vocab_bytes(const bn_vocab *v, int32_t id, size_t *len) {
    if (id < 0 || id >= v->n_tokens || v->len[id] == 0) {
        *len = 0;
        return NULL;
    }
    *len = v->len[id];
    return (const uint8_t *)bn_tokenizer_piece(v->tok, id, &(size_t){0});
}
size_t bn_vocab_max_len(const bn_vocab *v) { return v->max_len; }
const int32_t *bn_vocab_eog(const bn_vocab *v, size_t *n) {
    *n = v->n_eog;
    return v->eog;
}
const bn_tokenizer *bn_vocab_tokenizer(const bn_vocab *v) { return v->tok; }
