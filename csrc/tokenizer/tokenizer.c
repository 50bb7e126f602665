/* tokenizer.c: encoding (special-token splitting, pre-tokenizing, BOS/EOS),
 * decoding, lookups and loading by path. Building is in tok_build.c, the
 * loaders in tok_gguf.c and tok_hf.c, the merge loops in tok_merge.c, the
 * id and byte vectors they share in ids.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

/* ---- growable arrays ---- */

static int bytes_append(bn_bytes *b, const void *s, size_t len) {
    if (b->cap - b->n < len) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < len) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    if (len) memcpy(b->p + b->n, s, len);
    b->n += len;
    return 1;
}

/* ---- encoding ---- */

typedef struct {
    const bn_tokenizer *t;
    bn_ids *out;
} bpe_words;

static int merge_word(void *ctx, const uint8_t *word, size_t len) {
    bpe_words *w = ctx;
    return bn_tok_bpe_word(w->t, word, len, w->out);
}

/* Byte-level BPE over one segment free of special tokens. */
static int encode_bpe(const bn_tokenizer *t, const uint8_t *s, size_t n, bn_ids *out) {
    uint8_t *prefixed = NULL;
    if (t->add_prefix_space && n > 0 && s[0] != ' ') {
        prefixed = malloc(n + 1);
        if (!prefixed) return 0;
        prefixed[0] = ' ';
        memcpy(prefixed + 1, s, n);
        s = prefixed;
        n++;
    }
    bpe_words w = {t, out};
    int ok = bn_pretok_split(t->pre, s, n, merge_word, &w);
    free(prefixed);
    return ok;
}

int bn_tokenizer_pretokenize(const bn_tokenizer *t, const char *text, size_t len, bn_word_fn word, void *ctx) {
    return bn_pretok_split(t->pre, (const uint8_t *)text, len, word, ctx);
}

/* Merges each word (a "▁" and what follows up to the next one) apart. */
static int spm_words(const bn_tokenizer *t, const uint8_t *s, size_t n, bn_ids *out) {
    size_t start = 0;
    for (size_t i = 1; i + 3 <= n; i++) {
        if (memcmp(s + i, BN_SPM_SPACE, 3) != 0) continue;
        if (!bn_tok_spm_text(t, s + start, i - start, out)) return 0;
        start = i;
        i += 2;
    }
    return bn_tok_spm_text(t, s + start, n - start, out);
}

/* SentencePiece over one segment (the text, or a piece of it between special
 * tokens): spaces become "▁", and a "▁" goes first, except after a special
 * token when the prefix belongs to the start of the text only. */
static int encode_spm(const bn_tokenizer *t, const uint8_t *s, size_t n, int at_start, bn_ids *out) {
    if (n == 0) return 1;
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    int prefix = t->add_space_prefix && (at_start || !t->prefix_first_only);
    size_t len = n + spaces * 2 + (prefix ? 3 : 0);
    uint8_t *buf = malloc(len);
    if (!buf) return 0;
    size_t k = 0;
    if (prefix) {
        memcpy(buf, BN_SPM_SPACE, 3);
        k = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(buf + k, BN_SPM_SPACE, 3);
            k += 3;
        } else buf[k++] = s[i];
    }
    int ok = t->split_words ? spm_words(t, buf, k, out) : bn_tok_spm_text(t, buf, k, out);
    free(buf);
    return ok;
}

/* The added token of the given pass that starts at s[0..n), or -1 (the
 * longest, as specials are sorted longest first). */
static int32_t special_at(const bn_tokenizer *t, const uint8_t *s, size_t n, int parse_special, int pass) {
    for (int32_t i = 0; i < t->n_specials; i++) {
        int32_t id = t->specials[i];
        if (!parse_special && t->type[id] != BN_TT_USER_DEFINED) continue;
        int normalized = t->added_flags && (t->added_flags[id] & BN_ADDED_NORMALIZED);
        if (normalized != pass) continue;
        size_t len = t->text[id].len;
        if (len <= n && memcmp(s, t->text_pool + t->text[id].off, len) == 0) return id;
    }
    return -1;
}

static int encode_segment(const bn_tokenizer *t, const uint8_t *s, size_t n, int at_start, bn_ids *out) {
    if (t->kind == BN_TOKENIZER_SPM) return encode_spm(t, s, n, at_start, out);
    return encode_bpe(t, s, n, out);
}

/* Hugging Face's \w (Alphabetic, marks, digits, connector punctuation), as
 * near as our classes come: letters, marks, numbers and '_'. */
static int is_word_char(uint32_t cp) {
    return cp == '_' || (bn_uc_flags(cp) & (BN_UC_LETTER | BN_UC_MARK | BN_UC_NUMBER));
}

/* Whether the character that ends at s[end] (not before from) is a word character. */
static int word_before(const uint8_t *s, size_t from, size_t end) {
    if (end == from) return 0;
    size_t k = end - 1; /* back to the lead byte of the last character */
    while (k > from && end - k < 4 && (s[k] & 0xC0) == 0x80) k--;
    uint32_t cp;
    return bn_utf8_decode(s + k, end - k, &cp) == end - k && is_word_char(cp);
}

static int word_after(const uint8_t *s, size_t start, size_t to) {
    uint32_t cp;
    return start < to && (bn_utf8_decode(s + start, to - start, &cp), is_word_char(cp));
}

/* Start of the whitespace that ends at s[end], not before from. */
static size_t space_before(const uint8_t *s, size_t from, size_t end) {
    size_t start = end, p = from;
    while (p < end) {
        uint32_t cp;
        size_t l = bn_utf8_decode(s + p, end - p, &cp);
        if (!(bn_uc_flags(cp) & BN_UC_WHITESPACE)) start = end;
        else if (start == end) start = p;
        p += l;
    }
    return start;
}

static size_t space_after(const uint8_t *s, size_t start, size_t to) {
    while (start < to) {
        uint32_t cp;
        size_t l = bn_utf8_decode(s + start, to - start, &cp);
        if (!(bn_uc_flags(cp) & BN_UC_WHITESPACE)) break;
        start += l;
    }
    return start;
}

typedef struct {
    const bn_tokenizer *t;
    const uint8_t *text;
    int parse_special;
    bn_ids *out;
} encoding;

/* Added tokens split the text before anything else, as Hugging Face does:
 * pass 0 finds the tokens that are not normalized, pass 1 the normalized
 * ones in what pass 0 left (the same text: no normalizer changes it here),
 * leftmost and longest first. A single_word token touched by a word
 * character stays text (and its match is passed over whole); lstrip and
 * rstrip tokens take the whitespace beside them, which then encodes to
 * nothing. Past the passes, the plain text is encoded. */
static int encode_added(const encoding *e, size_t from, size_t to, int pass) {
    const bn_tokenizer *t = e->t;
    const uint8_t *s = e->text;
    if (pass == 2) return encode_segment(t, s + from, to - from, from == 0, e->out);
    size_t gap = from; /* start of the text not yet handed on */
    for (size_t i = from; i < to;) {
        int32_t id = t->special_first_byte[s[i]] ? special_at(t, s + i, to - i, e->parse_special, pass) : -1;
        if (id < 0) {
            i++;
            continue;
        }
        size_t start = i, stop = i + t->text[id].len;
        int flags = t->added_flags ? t->added_flags[id] : 0;
        if ((flags & BN_ADDED_SINGLE_WORD) && (word_before(s, from, start) || word_after(s, stop, to))) {
            i = stop;
            continue;
        }
        if (flags & BN_ADDED_LSTRIP) start = space_before(s, gap, start);
        if (flags & BN_ADDED_RSTRIP) stop = space_after(s, stop, to);
        if (!encode_added(e, gap, start, pass + 1) || !bn_ids_push(e->out, id)) return 0;
        gap = i = stop;
    }
    return encode_added(e, gap, to, pass + 1);
}

int bn_tokenizer_encode(const bn_tokenizer *t, const char *text, size_t len, const bn_encode_opts *opts, bn_ids *out,
                        bn_err *err) {
    int add_bos = opts && opts->add_bos >= 0 ? opts->add_bos : bn_tokenizer_add_bos(t);
    int parse_special = opts ? opts->parse_special : 0;
    if (add_bos) {
        if (t->bos < 0) return bn_errf(err, "the tokenizer has no BOS token");
        if (!bn_ids_push(out, t->bos)) goto oom;
    }
    int any_special = 0;
    for (int32_t i = 0; i < t->n_specials && !any_special; i++)
        any_special = parse_special || t->type[t->specials[i]] == BN_TT_USER_DEFINED;
    encoding e = {t, (const uint8_t *)text, parse_special, out};
    if (!encode_added(&e, 0, len, any_special ? 0 : 2)) goto oom;
    if (t->add_eos && t->eos >= 0 && !bn_ids_push(out, t->eos)) goto oom;
    return 1;
oom:
    return bn_errf(err, "out of memory");
}

/* ---- decoding ---- */

void bn_detok_init(bn_detok *d, const bn_tokenizer *t, int special, int strip_leading_space) {
    memset(d, 0, sizeof *d);
    d->t = t;
    d->special = special;
    d->strip_space = strip_leading_space && t->kind == BN_TOKENIZER_SPM && t->add_space_prefix;
    d->at_start = 1;
}

int bn_detok_feed(bn_detok *d, int32_t id, bn_bytes *out) {
    const bn_tokenizer *t = d->t;
    if (id < 0 || id >= t->n_vocab) return 0;
    uint8_t ty = t->type[id];
    if (!d->special && (ty == BN_TT_CONTROL || ty == BN_TT_UNKNOWN || ty == BN_TT_UNUSED)) return 1;
    const uint8_t *p = (const uint8_t *)t->piece_pool + t->piece[id].off;
    size_t n = t->piece[id].len;
    if (n == 0) return 1;
    if (d->at_start) {
        d->at_start = 0;
        if (d->strip_space && p[0] == ' ') {
            p++;
            n--;
        }
    }
    /* join the carried bytes with the new ones, release the complete part */
    uint8_t joined[8];
    size_t nc = d->n_carry;
    if (nc) {
        size_t take = n < 4 ? n : 4;
        memcpy(joined, d->carry, nc);
        memcpy(joined + nc, p, take);
        size_t ready = bn_utf8_complete_prefix(joined, nc + take);
        if (ready < nc) { /* still unfinished: everything stays carried */
            memcpy(d->carry, joined, nc + take);
            d->n_carry = nc + take;
            return 1;
        }
        if (!bytes_append(out, d->carry, nc)) return -1;
        d->n_carry = 0;
    }
    size_t ready = bn_utf8_complete_prefix(p, n);
    if (!bytes_append(out, p, ready)) return -1;
    memcpy(d->carry, p + ready, n - ready);
    d->n_carry = n - ready;
    return 1;
}

int bn_detok_flush(bn_detok *d, bn_bytes *out) {
    if (!bytes_append(out, d->carry, d->n_carry)) return -1;
    d->n_carry = 0;
    return 1;
}

int bn_tokenizer_decode(const bn_tokenizer *t, const int32_t *ids, size_t n, int special, int strip_leading_space,
                        bn_bytes *out, size_t *bad) {
    bn_detok d;
    bn_detok_init(&d, t, special, strip_leading_space);
    for (size_t i = 0; i < n; i++) {
        int r = bn_detok_feed(&d, ids[i], out);
        if (r <= 0) {
            if (r == 0 && bad) *bad = i;
            return r;
        }
    }
    return bn_detok_flush(&d, out);
}

/* ---- lookups ---- */

const char *bn_tokenizer_piece(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->piece[id].len;
    return t->piece_pool + t->piece[id].off;
}

const char *bn_tokenizer_text(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->text[id].len;
    return t->text_pool + t->text[id].off;
}

int bn_tokenizer_score(const bn_tokenizer *t, int32_t id, float *score) {
    if (!t->score || id < 0 || id >= t->n_vocab) return 0;
    *score = t->score[id];
    return 1;
}

int32_t bn_tokenizer_find(const bn_tokenizer *t, const char *s, size_t len) { return len ? bn_tok_find(t, s, len) : -1; }
int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t) { return t->n_vocab; }
bn_tokenizer_kind bn_tokenizer_get_kind(const bn_tokenizer *t) { return t->kind; }
int32_t bn_tokenizer_bos(const bn_tokenizer *t) { return t->bos; }
int32_t bn_tokenizer_eos(const bn_tokenizer *t) { return t->eos; }
int32_t bn_tokenizer_eot(const bn_tokenizer *t) { return t->eot; }
int bn_tokenizer_fim(const bn_tokenizer *t, int32_t *pre, int32_t *suf, int32_t *mid) {
    *pre = t->fim_pre, *suf = t->fim_suf, *mid = t->fim_mid;
    return t->fim_pre >= 0 && t->fim_suf >= 0 && t->fim_mid >= 0;
}
int bn_tokenizer_add_bos(const bn_tokenizer *t) { return t->add_bos && t->bos >= 0; }

int bn_tokenizer_is_eog(const bn_tokenizer *t, int32_t id) {
    for (int32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return 1;
    return 0;
}

int bn_tokenizer_is_control(const bn_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->type[id] == BN_TT_CONTROL;
}

/* ---- loading from a path ---- */

bn_tokenizer *bn_tokenizer_load(const char *path, bn_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        bn_errf(err, "%s: no such file or directory", path);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        char json[4096], config[4096];
        snprintf(json, sizeof json, "%s/tokenizer.json", path);
        snprintf(config, sizeof config, "%s/tokenizer_config.json", path);
        return bn_tokenizer_from_hf(json, stat(config, &st) == 0 ? config : NULL, err);
    }
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        bn_errf(err, "%s: cannot open", path);
        return NULL;
    }
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return bn_tokenizer_from_gguf_file(path, err);
    return bn_tokenizer_from_hf(path, NULL, err);
}
