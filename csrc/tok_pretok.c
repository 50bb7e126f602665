/* tok_pretok.c: the pre-tokenizers of byte-level BPE, written out by hand
 * from their regular expressions (the alternatives are tried in order, as
 * the regex engines of the references do):
 *
 * LLaMA-3 (also Falcon3, and the project's own model):
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * GPT-2:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * \p{L}, \p{N} and \s are Unicode's letter and number categories and its
 * White_Space property (unicode_tables.c). Bytes that are not valid UTF-8
 * are single characters of no class, like punctuation. */
#include "tok_internal.h"
#include "unicode.h"

typedef struct {
    uint32_t cp;
    int flags;
    size_t len;
} ch;

static ch char_at(const uint8_t *s, size_t n, size_t pos) {
    ch c;
    c.len = bn_utf8_decode(s + pos, n - pos, &c.cp);
    c.flags = bn_uc_flags(c.cp);
    return c;
}

static int is_letter(ch c) { return c.flags & BN_UC_LETTER; }
static int is_number(ch c) { return c.flags & BN_UC_NUMBER; }
static int is_space(ch c) { return c.flags & BN_UC_WHITESPACE; }
static int is_newline(ch c) { return c.cp == '\r' || c.cp == '\n'; }
/* [^\s\p{L}\p{N}] */
static int is_other(ch c) { return !(c.flags & (BN_UC_LETTER | BN_UC_NUMBER | BN_UC_WHITESPACE)); }

/* End of the run of characters satisfying pred from pos; at most max chars. */
static size_t run_end(const uint8_t *s, size_t n, size_t pos, int (*pred)(ch), size_t max) {
    for (size_t k = 0; pos < n && k < max; k++) {
        ch c = char_at(s, n, pos);
        if (!pred(c)) break;
        pos += c.len;
    }
    return pos;
}

/* Lower case for the contraction letters; (?i) also folds U+017F to 's'. */
static uint32_t fold(uint32_t cp, int ignore_case) {
    if (!ignore_case) return cp;
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    if (cp == 0x17F) return 's';
    return cp;
}

/* 's 't 're 've 'm 'll 'd at pos (s[pos] is '\''): end, or 0. */
static size_t contraction_end(const uint8_t *s, size_t n, size_t pos, int ignore_case) {
    size_t p = pos + 1;
    if (p >= n) return 0;
    ch a = char_at(s, n, p);
    uint32_t x = fold(a.cp, ignore_case);
    if (x == 's' || x == 't' || x == 'm' || x == 'd') return p + a.len;
    if (x != 'r' && x != 'v' && x != 'l') return 0;
    p += a.len;
    if (p >= n) return 0;
    ch b = char_at(s, n, p);
    uint32_t y = fold(b.cp, ignore_case);
    if ((x == 'l' && y == 'l') || (x != 'l' && y == 'e')) return p + b.len;
    return 0;
}

/* The whitespace alternatives shared by both: \s+(?!\S)|\s+ (s[pos] is
 * whitespace). With_newline adds LLaMA-3's \s*[\r\n]+ in front. */
static size_t space_end(const uint8_t *s, size_t n, size_t pos, int with_newline) {
    size_t p = pos, last_start = pos, after_newline = 0;
    while (p < n) {
        ch c = char_at(s, n, p);
        if (!is_space(c)) break;
        last_start = p;
        p += c.len;
        if (is_newline(c)) after_newline = p;
    }
    if (with_newline && after_newline) return after_newline; /* \s*[\r\n]+ */
    if (p == n) return p;                                     /* \s+(?!\S) at the end */
    if (last_start > pos) return last_start;                  /* \s+(?!\S): leave one for the next word */
    return p;                                                 /* \s+ */
}

static size_t llama3_end(const uint8_t *s, size_t n, size_t pos) {
    ch c = char_at(s, n, pos);
    if (c.cp == '\'') {
        size_t e = contraction_end(s, n, pos, 1);
        if (e) return e;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (is_letter(c)) return run_end(s, n, pos, is_letter, (size_t)-1);
    if (!is_newline(c) && !is_number(c) && pos + c.len < n && is_letter(char_at(s, n, pos + c.len)))
        return run_end(s, n, pos + c.len, is_letter, (size_t)-1);
    /* \p{N}{1,3} */
    if (is_number(c)) return run_end(s, n, pos, is_number, 3);
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t p = pos;
    if (c.cp == ' ' && pos + 1 < n && is_other(char_at(s, n, pos + 1))) p = pos + 1;
    if (is_other(char_at(s, n, p))) {
        p = run_end(s, n, p, is_other, (size_t)-1);
        return run_end(s, n, p, is_newline, (size_t)-1);
    }
    return space_end(s, n, pos, 1); /* c is whitespace here */
}

static size_t gpt2_end(const uint8_t *s, size_t n, size_t pos) {
    ch c = char_at(s, n, pos);
    if (c.cp == '\'') {
        size_t e = contraction_end(s, n, pos, 0);
        if (e) return e;
    }
    /*  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ */
    size_t p = pos;
    if (c.cp == ' ' && pos + 1 < n) {
        ch d = char_at(s, n, pos + 1);
        if (!is_space(d)) {
            p = pos + 1;
            c = d;
        }
    }
    if (is_letter(c)) return run_end(s, n, p, is_letter, (size_t)-1);
    if (is_number(c)) return run_end(s, n, p, is_number, (size_t)-1);
    if (is_other(c)) return run_end(s, n, p, is_other, (size_t)-1);
    return space_end(s, n, pos, 0);
}

size_t bn_pretok_word_end(bn_pretok pre, const uint8_t *s, size_t n, size_t pos) {
    switch (pre) {
    case BN_PRE_LLAMA3: return llama3_end(s, n, pos);
    case BN_PRE_GPT2: return gpt2_end(s, n, pos);
    default: return n;
    }
}
