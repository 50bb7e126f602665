/* tok_merge.c: the merge loops. Both keep the symbols of a word in a linked
 * list and the candidate pairs in a binary heap, so a word of n symbols costs
 * O(n log n) however long it is (hostile input may be one huge word).
 *
 * Byte-level BPE: start from one symbol per byte, repeatedly merge the pair
 * with the lowest rank in the merge list (ties: leftmost first).
 * SentencePiece BPE: start from one symbol per UTF-8 character, repeatedly
 * merge the adjacent pair whose concatenation is the vocabulary token with
 * the highest score (ties: leftmost first); characters that are not tokens
 * become byte tokens <0xNN>. Both orders are the references' own. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

typedef struct {
    double prio; /* lower pops first */
    int32_t left, right;
    int32_t a, b; /* BPE: the two ids; SPM: the merged byte length in a */
} cand;

typedef struct {
    cand *v;
    size_t n;
} heap;

static int before(const cand *x, const cand *y) {
    return x->prio < y->prio || (x->prio == y->prio && x->left < y->left);
}

static void heap_push(heap *h, cand c) {
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&c, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = c;
}

static cand heap_pop(heap *h) {
    cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= h->n) break;
        if (k + 1 < h->n && before(&h->v[k + 1], &h->v[k])) k++;
        if (!before(&h->v[k], &last)) break;
        h->v[i] = h->v[k];
        i = k;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Scratch for one word: symbols (id or start, length, links) and the heap.
 * Small words use the stack. */
#define SMALL 64
typedef struct {
    int32_t *id, *start, *len, *prev, *next;
    heap h;
    void *block;
    int32_t small[5][SMALL];
    cand small_heap[3 * SMALL];
} work;

static int work_init(work *w, size_t n) {
    w->block = NULL;
    w->h.n = 0;
    if (n <= SMALL) {
        w->id = w->small[0];
        w->start = w->small[1];
        w->len = w->small[2];
        w->prev = w->small[3];
        w->next = w->small[4];
        w->h.v = w->small_heap;
        return 1;
    }
    if (n > ((size_t)1 << 28)) return 0;
    w->block = malloc(n * 5 * sizeof(int32_t) + 3 * n * sizeof(cand));
    if (!w->block) return 0;
    w->h.v = w->block; /* cands first: they have the strictest alignment */
    int32_t *p = (int32_t *)(w->h.v + 3 * n);
    w->id = p;
    w->start = p + n;
    w->len = p + 2 * n;
    w->prev = p + 3 * n;
    w->next = p + 4 * n;
    return 1;
}

/* Unlinks symbol r, which has just been merged into its left neighbour l. */
static void unlink_right(work *w, int32_t l, int32_t r, int32_t n) {
    w->len[l] += w->len[r];
    w->len[r] = 0;
    w->next[l] = w->next[r];
    if (w->next[r] < n) w->prev[w->next[r]] = l;
}

/* ---- byte-level BPE ---- */

static void bpe_candidate(const bn_tokenizer *t, work *w, int32_t l, int32_t r) {
    int32_t rank, result;
    if (l < 0 || w->id[l] < 0 || w->id[r] < 0) return;
    if (!bn_tok_merge_lookup(t, w->id[l], w->id[r], &rank, &result)) return;
    heap_push(&w->h, (cand){rank, l, r, w->id[l], w->id[r]});
}

int bn_tok_bpe_word(const bn_tokenizer *t, const uint8_t *word, size_t len, bn_ids *out) {
    if (len == 0) return 1;
    if (len == 1) return t->byte_token[word[0]] < 0 || bn_ids_push(out, t->byte_token[word[0]]);
    if (t->ignore_merges && len <= t->max_text_len) { /* a word that is a token is taken whole */
        char stack[512], *text = len * 2 <= sizeof stack ? stack : malloc(len * 2);
        if (!text) return 0;
        size_t k = 0; /* each byte is one character of at most 2 bytes */
        for (size_t i = 0; i < len; i++) k += bn_utf8_encode(t->byte_cp[word[i]], text + k);
        int32_t id = bn_tok_find(t, text, k);
        if (text != stack) free(text);
        if (id >= 0) return bn_ids_push(out, id);
    }
    work w;
    if (!work_init(&w, len)) return 0;
    int32_t n = 0;
    for (size_t i = 0; i < len; i++) {
        /* a byte the vocabulary lacks (one of those valid UTF-8 rarely or
         * never holds) is left out, and its neighbours may merge, as the
         * reference drops a character that is not in its vocabulary */
        if (t->byte_token[word[i]] < 0) continue;
        w.id[n] = t->byte_token[word[i]];
        w.len[n] = 1;
        w.prev[n] = n - 1;
        w.next[n] = n + 1;
        n++;
    }
    for (int32_t i = 0; i + 1 < n; i++) bpe_candidate(t, &w, i, i + 1);
    while (w.h.n) {
        cand c = heap_pop(&w.h);
        /* stale when either side has changed since the pair was queued */
        if (w.len[c.left] == 0 || w.len[c.right] == 0 || w.next[c.left] != c.right || w.id[c.left] != c.a ||
            w.id[c.right] != c.b)
            continue;
        int32_t rank, result;
        bn_tok_merge_lookup(t, c.a, c.b, &rank, &result);
        w.id[c.left] = result;
        unlink_right(&w, c.left, c.right, n);
        bpe_candidate(t, &w, w.prev[c.left], c.left);
        if (w.next[c.left] < n) bpe_candidate(t, &w, c.left, w.next[c.left]);
    }
    int ok = 1;
    for (int32_t i = 0; i < n && ok; i = w.next[i])
        if (w.id[i] >= 0) ok = bn_ids_push(out, w.id[i]);
    free(w.block);
    return ok;
}

/* ---- SentencePiece BPE ---- */

/* Tokens a merge may produce: the reference merges into ordinary and
 * user-defined pieces, never into control, byte or unknown ones. */
static int mergeable(const bn_tokenizer *t, int32_t id) {
    return id >= 0 && (t->type[id] == BN_TT_NORMAL || t->type[id] == BN_TT_USER_DEFINED);
}

static void spm_candidate(const bn_tokenizer *t, work *w, const uint8_t *text, int32_t l, int32_t r) {
    if (l < 0) return;
    int32_t len = w->len[l] + w->len[r];
    int32_t id = bn_tok_find(t, (const char *)text + w->start[l], (size_t)len);
    if (!mergeable(t, id)) return;
    heap_push(&w->h, (cand){-(double)t->score[id], l, r, len, 0});
}

static int spm_emit(const bn_tokenizer *t, const uint8_t *s, size_t len, bn_ids *out) {
    int32_t id = bn_tok_find(t, (const char *)s, len);
    if (mergeable(t, id)) return bn_ids_push(out, id);
    for (size_t i = 0; i < len; i++) { /* byte fallback, else the unknown token */
        int32_t b = t->byte_token[s[i]] >= 0 ? t->byte_token[s[i]] : t->unk;
        if (b < 0) continue;
        if (!bn_ids_push(out, b)) return 0;
        if (b == t->unk) break; /* one unknown token per character */
    }
    return 1;
}

static int spm_chunk(const bn_tokenizer *t, const uint8_t *text, size_t len, bn_ids *out);

/* A byte that is in no multi-character token never takes part in a merge,
 * so the text splits there into chunks that merge independently: the same
 * result, with small heaps (a 1 MB text is mostly short lines). */
int bn_tok_spm_text(const bn_tokenizer *t, const uint8_t *text, size_t len, bn_ids *out) {
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] >= 128 || !t->spm_alone[text[i]]) continue;
        if (!spm_chunk(t, text + start, i - start, out) || !spm_emit(t, text + i, 1, out)) return 0;
        start = i + 1;
    }
    return spm_chunk(t, text + start, len - start, out);
}

static int spm_chunk(const bn_tokenizer *t, const uint8_t *text, size_t len, bn_ids *out) {
    if (len == 0) return 1;
    work w;
    if (!work_init(&w, len)) return 0;
    int32_t n = 0;
    for (size_t pos = 0; pos < len; n++) {
        uint32_t cp;
        size_t l = bn_utf8_decode(text + pos, len - pos, &cp);
        w.start[n] = (int32_t)pos;
        w.len[n] = (int32_t)l;
        w.prev[n] = n - 1;
        w.next[n] = n + 1;
        pos += l;
    }
    for (int32_t i = 0; i + 1 < n; i++) spm_candidate(t, &w, text, i, i + 1);
    while (w.h.n) {
        cand c = heap_pop(&w.h);
        if (w.len[c.left] == 0 || w.len[c.right] == 0 || w.next[c.left] != c.right ||
            w.len[c.left] + w.len[c.right] != c.a)
            continue;
        unlink_right(&w, c.left, c.right, n);
        spm_candidate(t, &w, text, w.prev[c.left], c.left);
        if (w.next[c.left] < n) spm_candidate(t, &w, text, c.left, w.next[c.left]);
    }
    int ok = 1;
    for (int32_t i = 0; i < n && ok; i = w.next[i]) ok = spm_emit(t, text + w.start[i], (size_t)w.len[i], out);
    free(w.block);
    return ok;
}
