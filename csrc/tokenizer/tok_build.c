/* tok_build.c: building a tokenizer (used by the loaders): the text index,
 * the merge table, and what is derived once all tokens are known (decoded
 * pieces, byte tokens, special and end-of-generation lists); and freeing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t k) {
    k ^= k >> 33; /* a splitmix-style finalizer */
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

bn_tokenizer *bn_tok_new(bn_tokenizer_kind kind, int32_t n_vocab, size_t text_bytes, bn_err *err) {
    if (n_vocab <= 0) {
        bn_errf(err, "the vocabulary is empty");
        return NULL;
    }
    if (n_vocab > BN_MAX_VOCAB) {
        bn_errf(err, "vocabulary of %ld tokens: over the bound of %d (BN_MAX_VOCAB in csrc/tokenizer/tokenizer.h; raise it and rebuild)",
                (long)n_vocab, BN_MAX_VOCAB);
        return NULL;
    }
    if (text_bytes >= (1u << 31)) {
        bn_errf(err, "vocabulary texts are too large");
        return NULL;
    }
    bn_tokenizer *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    atomic_init(&t->refs, 1);
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->bos = t->eos = t->eot = t->eom = t->unk = t->pad = -1;
    t->fim_pre = t->fim_suf = t->fim_mid = -1;
    t->text_pool_cap = text_bytes;
    t->text_pool = malloc(text_bytes ? text_bytes : 1);
    t->text = calloc((size_t)n_vocab, sizeof *t->text);
    t->type = malloc((size_t)n_vocab);
    if (!t->text_pool || !t->text || !t->type) goto oom;
    memset(t->type, BN_TT_NORMAL, (size_t)n_vocab);
    if (kind == BN_TOKENIZER_SPM) {
        t->score = calloc((size_t)n_vocab, sizeof *t->score);
        if (!t->score) goto oom;
    }
    return t;
oom:
    bn_tokenizer_free(t);
    bn_errf(err, "out of memory");
    return NULL;
}

int bn_tok_set_text(bn_tokenizer *t, int32_t id, const char *s, size_t len, bn_err *err) {
    if (id < 0 || id >= t->n_vocab) return bn_errf(err, "token id %ld is out of range", (long)id);
    if (len > t->text_pool_cap - t->text_pool_used) return bn_errf(err, "vocabulary texts exceed their declared size");
    memcpy(t->text_pool + t->text_pool_used, s, len);
    t->text[id].off = (uint32_t)t->text_pool_used;
    t->text[id].len = (uint32_t)len;
    t->text_pool_used += len;
    return 1;
}

int32_t bn_tok_find(const bn_tokenizer *t, const char *s, size_t len) {
    uint32_t mask = t->text_index_mask;
    uint64_t h = hash_bytes(s, len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        const bn_text_slot *slot = &t->text_index[i];
        if (slot->id < 0) return -1;
        if (slot->tag == tag && t->text[slot->id].len == len &&
            memcmp(t->text_pool + t->text[slot->id].off, s, len) == 0)
            return slot->id;
    }
}

int bn_tok_index_texts(bn_tokenizer *t, bn_err *err) {
    uint32_t cap = pow2_at_least((size_t)t->n_vocab * 2);
    t->text_index = malloc(cap * sizeof *t->text_index);
    if (!t->text_index) return bn_errf(err, "out of memory");
    memset(t->text_index, 0xff, cap * sizeof *t->text_index);
    t->text_index_mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->text_pool + t->text[id].off;
        size_t len = t->text[id].len;
        if (len == 0) continue; /* holes in the id space: unused, never found */
        /* a text that appears twice is found as its first id; the later
         * one still decodes, but encoding never produces it */
        if (bn_tok_find(t, s, len) >= 0) continue;
        uint64_t h = hash_bytes(s, len);
        uint32_t i = (uint32_t)h & t->text_index_mask;
        while (t->text_index[i].id >= 0) i = (i + 1) & t->text_index_mask;
        t->text_index[i].id = id;
        t->text_index[i].tag = (uint32_t)(h >> 32);
    }
    return 1;
}

int bn_tok_reserve_merges(bn_tokenizer *t, size_t n, bn_err *err) {
    if (n > BN_MAX_MERGES)
        return bn_errf(err, "%zu merges: over the bound of %d (BN_MAX_MERGES in csrc/tokenizer/tokenizer.h; raise it and rebuild)", n,
                       BN_MAX_MERGES);
    uint32_t cap = pow2_at_least(n * 2);
    t->merges = calloc(cap, sizeof *t->merges);
    if (!t->merges) return bn_errf(err, "out of memory");
    t->merge_mask = cap - 1;
    return 1;
}

int bn_tok_add_merge(bn_tokenizer *t, const char *left, size_t llen, const char *right, size_t rlen, const char *what,
                     bn_err *err) {
    int32_t a = bn_tok_find(t, left, llen), b = bn_tok_find(t, right, rlen);
    if (a < 0 || b < 0)
        return bn_errf(err, "%s: merge %ld ('%.*s' '%.*s') names a token that is not in the vocabulary", what,
                       (long)t->n_merges, (int)(llen > 60 ? 60 : llen), left, (int)(rlen > 60 ? 60 : rlen), right);
    /* both sides are tokens, so the joined text is at most twice the longest */
    char stack[512], *joined = llen + rlen <= sizeof stack ? stack : malloc(llen + rlen);
    if (!joined) return bn_errf(err, "out of memory");
    memcpy(joined, left, llen);
    memcpy(joined + llen, right, rlen);
    int32_t r = bn_tok_find(t, joined, llen + rlen);
    if (joined != stack) free(joined);
    if (r < 0)
        return bn_errf(err, "%s: merge %ld ('%.*s' '%.*s') makes a token that is not in the vocabulary", what,
                       (long)t->n_merges, (int)(llen > 60 ? 60 : llen), left, (int)(rlen > 60 ? 60 : rlen), right);
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    key += 1; /* 0 marks empty slots; ids are < 2^24 so this cannot overflow into the left id */
    uint32_t i = (uint32_t)hash_pair(key) & t->merge_mask;
    while (t->merges[i].key && t->merges[i].key != key) i = (i + 1) & t->merge_mask;
    if (!t->merges[i].key) { /* the first occurrence of a pair has the lower rank */
        t->merges[i].key = key;
        t->merges[i].rank = t->n_merges;
        t->merges[i].result = r;
    }
    t->n_merges++;
    return 1;
}

/* The merge of the pair (a, b), or NULL. */
static const bn_merge_slot *find_merge(const bn_tokenizer *t, int32_t a, int32_t b) {
    if (!t->merges) return NULL;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    for (uint32_t i = (uint32_t)hash_pair(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key) return &t->merges[i];
        if (!t->merges[i].key) return NULL;
    }
}

int bn_tok_merge_lookup(const bn_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *result) {
    const bn_merge_slot *m = find_merge(t, a, b);
    if (!m) return 0;
    *rank = m->rank;
    *result = m->result;
    return 1;
}

/* GPT-2's byte-level alphabet: printable bytes stand for themselves, the
 * others (controls, space, DEL, NBSP, soft hyphen) for 256, 257, ... */
static void fill_byte_alphabet(uint32_t cp[256]) {
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp[b] = printable ? (uint32_t)b : next++;
    }
}

/* Size of the byte-level alphabet's code point range: 256 + the 68 bytes
 * that are remapped. */
#define ALPHABET_END (256 + 68)

/* The bytes a normal token decodes to. cp_byte inverts the byte-level
 * alphabet (-1: not of it). */
static void decode_text(const bn_tokenizer *t, const int16_t *cp_byte, const uint8_t *s, size_t len, char *out,
                        size_t *out_len) {
    size_t n = 0;
    if (t->kind == BN_TOKENIZER_BPE) {
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            size_t l = bn_utf8_decode(s + i, len - i, &cp);
            int byte = cp < ALPHABET_END ? cp_byte[cp] : -1;
            if (byte >= 0) out[n++] = (char)byte;
            else { /* not of the alphabet: kept as it is spelled */
                memcpy(out + n, s + i, l);
                n += l;
            }
            i += l;
        }
    } else {
        for (size_t i = 0; i < len;) {
            if (i + 3 <= len && memcmp(s + i, BN_SPM_SPACE, 3) == 0) {
                out[n++] = ' ';
                i += 3;
            } else out[n++] = (char)s[i++];
        }
    }
    *out_len = n;
}

static int parse_byte_token(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

typedef struct {
    uint32_t len;
    int32_t id;
} len_id;

static int longest_first(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int32_t find_control(const bn_tokenizer *t, const char *s) {
    int32_t id = bn_tok_find(t, s, strlen(s));
    return id >= 0 && (t->type[id] == BN_TT_CONTROL || t->type[id] == BN_TT_USER_DEFINED) ? id : -1;
}

/* End-of-generation tokens: the declared ones plus control tokens whose text
 * ends a turn in some chat format. */
static int collect_eog(bn_tokenizer *t) {
    static const char *const turn_ends[] = {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>", "<EOT>", NULL};
    if (t->eot < 0)
        for (int i = 0; turn_ends[i] && t->eot < 0; i++)
            if (strcmp(turn_ends[i], "<|endoftext|>") != 0) t->eot = find_control(t, turn_ends[i]);
    if (t->eom < 0) t->eom = find_control(t, "<|eom_id|>");
    t->eog = malloc(16 * sizeof *t->eog);
    if (!t->eog) return 0;
    int32_t cand[16];
    int n = 0;
    cand[n++] = t->eos;
    cand[n++] = t->eot;
    cand[n++] = t->eom;
    for (int i = 0; turn_ends[i]; i++) cand[n++] = find_control(t, turn_ends[i]);
    for (int i = 0; i < n; i++) {
        if (cand[i] < 0) continue;
        int dup = 0;
        for (int k = 0; k < t->n_eog; k++) dup |= t->eog[k] == cand[i];
        if (!dup) t->eog[t->n_eog++] = cand[i];
    }
    return 1;
}

/* Fill-in-the-middle tokens when the metadata named none: the spellings of
 * the model families that have them (Qwen/CodeGemma, StarCoder/Refact,
 * DeepSeek Coder, Code Llama), all three control tokens of one family. */
#define BAR "\xef\xbd\x9c"
#define SPACE "\xe2\x96\x81"
static void collect_fim(bn_tokenizer *t) {
    static const char *const families[][3] = {
        {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"},
        {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"},
        /* DeepSeek Coder's fullwidth bars and the SentencePiece space, as UTF-8 */
        {"<" BAR "fim" SPACE "begin" BAR ">", "<" BAR "fim" SPACE "hole" BAR ">", "<" BAR "fim" SPACE "end" BAR ">"},
        {"<PRE>", "<SUF>", "<MID>"},
    };
    if (t->fim_pre >= 0 && t->fim_suf >= 0 && t->fim_mid >= 0) return;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        int32_t pre = find_control(t, families[f][0]), suf = find_control(t, families[f][1]),
                mid = find_control(t, families[f][2]);
        if (pre >= 0 && suf >= 0 && mid >= 0) {
            t->fim_pre = pre, t->fim_suf = suf, t->fim_mid = mid;
            return;
        }
    }
    t->fim_pre = t->fim_suf = t->fim_mid = -1; /* a partial set is no use */
}
#undef BAR
#undef SPACE

int bn_tok_finish(bn_tokenizer *t, const char *what, bn_err *err) {
    fill_byte_alphabet(t->byte_cp);
    int16_t cp_byte[ALPHABET_END];
    for (int i = 0; i < ALPHABET_END; i++) cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_byte[t->byte_cp[b]] = (int16_t)b;
    /* byte tokens */
    for (int b = 0; b < 256; b++) {
        char buf[8];
        size_t len;
        if (t->kind == BN_TOKENIZER_BPE) len = bn_utf8_encode(t->byte_cp[b], buf);
        else len = (size_t)snprintf(buf, sizeof buf, "<0x%02X>", b);
        t->byte_token[b] = bn_tok_find(t, buf, len);
    }
    /* decoded pieces: never longer than the texts */
    t->piece_pool = malloc(t->text_pool_used ? t->text_pool_used : 1);
    t->piece = calloc((size_t)t->n_vocab, sizeof *t->piece);
    if (!t->piece_pool || !t->piece) return bn_errf(err, "out of memory");
    size_t used = 0;
    int n_special = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const uint8_t *s = (const uint8_t *)t->text_pool + t->text[id].off;
        size_t len = t->text[id].len, n = len;
        if (len > t->max_text_len) t->max_text_len = len;
        int byte;
        if (t->type[id] == BN_TT_BYTE && (byte = parse_byte_token((const char *)s, len)) >= 0) {
            t->piece_pool[used] = (char)byte;
            n = 1;
        } else if (t->type[id] == BN_TT_NORMAL) {
            decode_text(t, cp_byte, s, len, t->piece_pool + used, &n);
        } else memcpy(t->piece_pool + used, s, len);
        t->piece[id].off = (uint32_t)used;
        t->piece[id].len = (uint32_t)n;
        used += n;
        if ((t->type[id] == BN_TT_CONTROL || t->type[id] == BN_TT_USER_DEFINED) && len > 0) n_special++;
    }
    /* tokens recognized in text, longest first so that "<|eot_id|>" wins
     * over any shorter text it starts with */
    len_id *order = malloc((size_t)(n_special ? n_special : 1) * sizeof *order);
    t->specials = malloc((size_t)(n_special ? n_special : 1) * sizeof *t->specials);
    if (!order || !t->specials) {
        free(order);
        return bn_errf(err, "out of memory");
    }
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->type[id] == BN_TT_CONTROL || t->type[id] == BN_TT_USER_DEFINED) && t->text[id].len > 0)
            order[t->n_specials++] = (len_id){t->text[id].len, id};
    qsort(order, (size_t)t->n_specials, sizeof *order, longest_first);
    for (int32_t i = 0; i < t->n_specials; i++) {
        t->specials[i] = order[i].id;
        t->special_first_byte[(uint8_t)t->text_pool[t->text[order[i].id].off]] = 1;
    }
    free(order);
    if (t->kind == BN_TOKENIZER_SPM) {
        memset(t->spm_alone, 1, sizeof t->spm_alone);
        for (int32_t id = 0; id < t->n_vocab; id++) {
            if (t->text[id].len < 2 || (t->type[id] != BN_TT_NORMAL && t->type[id] != BN_TT_USER_DEFINED)) continue;
            const uint8_t *s = (const uint8_t *)t->text_pool + t->text[id].off;
            for (uint32_t i = 0; i < t->text[id].len; i++)
                if (s[i] < 128) t->spm_alone[s[i]] = 0;
        }
    }
    if (!collect_eog(t)) return bn_errf(err, "out of memory");
    collect_fim(t);
    /* a byte-level vocabulary needs at least one byte token; a byte without
     * one (GPT-NeoX's and StarCoder's lack 0xC0, 0xC1, 0xF5-0xFF; Falcon's
     * some control bytes) is left out when encoding, as llama.cpp and the
     * Hugging Face tokenizer do */
    if (t->kind == BN_TOKENIZER_BPE) {
        int any = 0;
        for (int b = 0; b < 256 && !any; b++) any = t->byte_token[b] >= 0;
        if (!any) return bn_errf(err, "%s: the byte-level vocabulary has no token for any byte", what);
    }
    return 1;
}

void bn_tokenizer_retain(bn_tokenizer *t) { atomic_fetch_add(&t->refs, 1); }

void bn_tokenizer_free(bn_tokenizer *t) {
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
    free(t->text_pool);
    free(t->text);
    free(t->piece_pool);
    free(t->piece);
    free(t->score);
    free(t->type);
    free(t->text_index);
    free(t->merges);
    free(t->specials);
    free(t->added_flags);
    free(t->eog);
    free(t);
}
