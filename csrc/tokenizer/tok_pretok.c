/* tok_pretok.c: the pre-tokenizers of byte-level BPE, written out by hand
 * from their definitions in the models' tokenizer.json (Hugging Face's
 * pre_tokenizer, the reference the test vectors come from).
 *
 * A pre-tokenizer is a list of stages, as Hugging Face's Sequence is: each
 * stage splits every piece the previous one made, keeping both its matches
 * and the text between them ("Isolated"), so the last stage's pieces are the
 * words that merge apart. A stage finds the leftmost match in a piece, the
 * way a regex search does; the pieces are its whole subject, so `$` and
 * lookaheads stop at a piece's end. Alternatives are tried in order, as the
 * references' regex engines do. The regexes:
 *
 * LLAMA-3 (also Falcon3, and the project's own model); Qwen2 has \p{N} in
 * place of \p{N}{1,3}:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * GPT-2 (Hugging Face's ByteLevel with use_regex; MPT):
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * GPT-4o (tiktoken's o200k_base), with U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}],
 * W = [\p{Ll}\p{Lm}\p{Lo}\p{M}], C = (?i:'s|'t|'re|'ve|'m|'ll|'d):
 *   [^\r\n\p{L}\p{N}]?U*W+C?|[^\r\n\p{L}\p{N}]?U+W*C?|\p{N}{1,3}
 *   | ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * Tekken (Mistral): GPT-4o's without the C? suffixes and with \p{N}.
 *
 * Sequences of stages:
 * StarCoder, Refact, SmolLM, Command-R: Digits(individual) -- each \p{N}
 *   alone -- then GPT-2's regex.
 * Falcon: Punctuation(Contiguous) -- runs of \p{P} and ASCII punctuation --,
 *   GPT-2's regex, Digits (runs), then [0-9][0-9][0-9]. The last two run on
 *   the byte-level text (ByteLevel maps as it splits), where a byte stands for
 *   one character: 0x30-0x39, and the bytes whose Latin-1 characters are
 *   numbers (superscripts, fractions), are digits.
 * DeepSeek Coder: [\r\n], \s?\p{L}+, \s?\p{P}+, [一-龥ࠀ-一가-퟿]+, then each
 *   \p{N} alone.
 * DeepSeek LLM: [\r\n], \s?[cased letters]+ (the tokenizer.json lists the
 *   ranges), \s?[!-/:-~！-／：-～‘-‟　-。]+, \s+$, [一-龥ࠀ-一가-퟿]+,
 *   then each \p{N} alone.
 *
 * \p{L}, \p{N}, \p{P}, \p{M}, the case of letters and \s are Unicode's
 * general categories and its White_Space property (unicode_tables.c). Bytes
 * that are not valid UTF-8 are single characters of no class, like
 * punctuation. */
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

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
static int is_punct(ch c) { return c.flags & BN_UC_PUNCT; }
/* [^\s\p{L}\p{N}] */
static int is_other(ch c) { return !(c.flags & (BN_UC_LETTER | BN_UC_NUMBER | BN_UC_WHITESPACE)); }
/* [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]: what may open a word, before its lower case */
static int is_upper_part(ch c) { return (is_letter(c) && !(c.flags & BN_UC_LOWER)) || (c.flags & BN_UC_MARK); }
/* [\p{Ll}\p{Lm}\p{Lo}\p{M}] */
static int is_lower_part(ch c) { return (is_letter(c) && !(c.flags & BN_UC_UPPER)) || (c.flags & BN_UC_MARK); }

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

/* 's 't 're 've 'm 'll 'd at pos: end, or 0. */
static size_t contraction_end(const uint8_t *s, size_t n, size_t pos, int ignore_case) {
    if (pos >= n || s[pos] != '\'') return 0;
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

/* The whitespace alternatives shared by the regexes: \s+(?!\S)|\s+ (s[pos]
 * is whitespace). With_newline adds \s*[\r\n]+ in front. */
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

/*  ?[^\s\p{L}\p{N}]+ then a run of tail characters ([\r\n]* or [\r\n/]*);
 * pos when it does not match. */
static size_t symbols_end(const uint8_t *s, size_t n, size_t pos, int (*tail)(ch)) {
    size_t p = pos;
    if (s[p] == ' ' && p + 1 < n && is_other(char_at(s, n, p + 1))) p++;
    if (!is_other(char_at(s, n, p))) return pos;
    p = run_end(s, n, p, is_other, (size_t)-1);
    return tail ? run_end(s, n, p, tail, (size_t)-1) : p;
}

static int is_newline_or_slash(ch c) { return is_newline(c) || c.cp == '/'; }

/* ---- whole-text regexes: a word starts wherever the last one ended ---- */

/* LLaMA-3's regex; Qwen2's with max_digits 1. */
static size_t llama3_end(const uint8_t *s, size_t n, size_t pos, size_t max_digits) {
    ch c = char_at(s, n, pos);
    size_t e = contraction_end(s, n, pos, 1);
    if (e) return e;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (is_letter(c)) return run_end(s, n, pos, is_letter, (size_t)-1);
    if (!is_newline(c) && !is_number(c) && pos + c.len < n && is_letter(char_at(s, n, pos + c.len)))
        return run_end(s, n, pos + c.len, is_letter, (size_t)-1);
    if (is_number(c)) return run_end(s, n, pos, is_number, max_digits);
    if ((e = symbols_end(s, n, pos, is_newline)) > pos) return e;
    return space_end(s, n, pos, 1); /* c is whitespace here */
}

static size_t gpt2_end(const uint8_t *s, size_t n, size_t pos) {
    ch c = char_at(s, n, pos);
    size_t e = contraction_end(s, n, pos, 0);
    if (e) return e;
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

/* U*W+ at p (see the header): end, or p. U* takes the whole run of U, then
 * W+ goes on from there; if it cannot, U* gives characters back, and W+
 * takes the last one that is also of W (Lm, Lo or a mark). */
static size_t lower_word_end(const uint8_t *s, size_t n, size_t p) {
    size_t q = p, last_shared = p;
    while (q < n) {
        ch c = char_at(s, n, q);
        if (!is_upper_part(c)) break;
        q += c.len;
        if (is_lower_part(c)) last_shared = q;
    }
    if (q < n && is_lower_part(char_at(s, n, q))) return run_end(s, n, q, is_lower_part, (size_t)-1);
    return last_shared;
}

/* U+W* at p: end, or p. */
static size_t upper_word_end(const uint8_t *s, size_t n, size_t p) {
    size_t q = run_end(s, n, p, is_upper_part, (size_t)-1);
    return q == p ? p : run_end(s, n, q, is_lower_part, (size_t)-1);
}

/* GPT-4o's regex; Tekken's without contractions and with max_digits 1. */
static size_t cased_end(const uint8_t *s, size_t n, size_t pos, size_t max_digits, int contractions) {
    ch c = char_at(s, n, pos);
    size_t after = pos + c.len, e = pos;
    /* [^\r\n\p{L}\p{N}]? is tried with the character first, then without */
    int prefix = !is_newline(c) && !is_letter(c) && !is_number(c) && after < n;
    if (prefix && (e = lower_word_end(s, n, after)) > after) goto word;
    if ((e = lower_word_end(s, n, pos)) > pos) goto word;
    if (prefix && (e = upper_word_end(s, n, after)) > after) goto word;
    if ((e = upper_word_end(s, n, pos)) > pos) goto word;
    if (is_number(c)) return run_end(s, n, pos, is_number, max_digits);
    if ((e = symbols_end(s, n, pos, is_newline_or_slash)) > pos) return e;
    return space_end(s, n, pos, 1);
word:
    if (contractions) {
        size_t k = contraction_end(s, n, e, 1);
        if (k) e = k;
    }
    return e;
}

/* ---- stages ---- */

/* A stage: the leftmost match in s[from..n), 1 with [*start, *end) (never
 * empty), or 0. */
typedef int (*stage_fn)(const uint8_t *s, size_t n, size_t from, size_t *start, size_t *end);

#define WHOLE_TEXT_STAGE(name, expr)                                                                 \
    static int name(const uint8_t *s, size_t n, size_t from, size_t *start, size_t *end) {           \
        *start = from;                                                                               \
        *end = (expr);                                                                               \
        return 1;                                                                                    \
    }
WHOLE_TEXT_STAGE(gpt2_stage, gpt2_end(s, n, from))
WHOLE_TEXT_STAGE(llama3_stage, llama3_end(s, n, from, 3))
WHOLE_TEXT_STAGE(qwen2_stage, llama3_end(s, n, from, 1))
WHOLE_TEXT_STAGE(gpt4o_stage, cased_end(s, n, from, 3, 1))
WHOLE_TEXT_STAGE(tekken_stage, cased_end(s, n, from, 1, 0))

/* The first run (of at most max) of characters satisfying pred. */
static int find_run(const uint8_t *s, size_t n, size_t from, int (*pred)(ch), size_t max, size_t *start,
                    size_t *end) {
    for (size_t p = from; p < n;) {
        ch c = char_at(s, n, p);
        if (pred(c)) {
            *start = p;
            *end = run_end(s, n, p, pred, max);
            return 1;
        }
        p += c.len;
    }
    return 0;
}

/* The first run of pred, with one whitespace character before it if there
 * is one: \s?[pred]+. */
static int find_spaced_run(const uint8_t *s, size_t n, size_t from, int (*pred)(ch), size_t *start, size_t *end) {
    size_t space = n; /* start of the whitespace character just before p, if any */
    for (size_t p = from; p < n;) {
        ch c = char_at(s, n, p);
        if (pred(c)) {
            *start = space < p ? space : p;
            *end = run_end(s, n, p, pred, (size_t)-1);
            return 1;
        }
        space = is_space(c) ? p : n;
        p += c.len;
    }
    return 0;
}

static int in_ranges(uint32_t cp, const uint32_t (*r)[2], size_t count) {
    size_t lo = 0, hi = count; /* binary search over sorted, disjoint ranges */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* DeepSeek's [一-龥ࠀ-一가-퟿]: U+0800..U+9FA5 (the first two ranges meet) and
 * U+AC00..U+D7FF. */
static int is_deepseek_cjk(ch c) { return (c.cp >= 0x800 && c.cp <= 0x9FA5) || (c.cp >= 0xAC00 && c.cp <= 0xD7FF); }

/* DeepSeek LLM's letter class: the cased letters (Lu, Ll, Lt) its
 * tokenizer.json lists, adjacent ranges joined. */
static int is_deepseek_letter(ch c) {
    static const uint32_t r[][2] = {
        {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA}, {0x1BC, 0x1BF},
        {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D}, {0x37F, 0x37F},
        {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481},
        {0x48A, 0x52F}, {0x531, 0x556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
        {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15},
        {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
        {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC},
        {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB},
        {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107},
        {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
        {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F},
        {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4},
        {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F},
        {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17},
        {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
        {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
    };
    return in_ranges(c.cp, r, sizeof r / sizeof r[0]);
}

/* DeepSeek LLM's [!-/:-~！-／：-～‘-‟　-。]: ASCII punctuation and symbols,
 * their full-width forms, curly quotes, and the ideographic space, comma
 * and full stop. */
static int is_deepseek_symbol(ch c) {
    static const uint32_t r[][2] = {{0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002},
                                    {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}};
    return in_ranges(c.cp, r, sizeof r / sizeof r[0]);
}

/* Hugging Face's punctuation (Punctuation, BERT): \p{P} or ASCII punctuation. */
static int is_hf_punct(ch c) { return is_punct(c) || (c.cp < 0x80 && c.cp > 0x20 && !is_letter(c) && !is_number(c) && c.cp != 0x7F); }

static int newline_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    return find_run(s, n, from, is_newline, 1, a, b);
}
static int digit_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    return find_run(s, n, from, is_number, 1, a, b);
}
static int punct_run_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    return find_run(s, n, from, is_hf_punct, (size_t)-1, a, b);
}
static int cjk_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    return find_run(s, n, from, is_deepseek_cjk, (size_t)-1, a, b);
}
static int spaced_letters_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    return find_spaced_run(s, n, from, is_letter, a, b);
}
static int spaced_punct_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    return find_spaced_run(s, n, from, is_punct, a, b);
}
static int spaced_deepseek_letters_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    return find_spaced_run(s, n, from, is_deepseek_letter, a, b);
}
static int spaced_deepseek_symbols_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    return find_spaced_run(s, n, from, is_deepseek_symbol, a, b);
}

/* \s+$: the whitespace that ends the piece. */
static int trailing_space_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    size_t run = n; /* start of the current whitespace run, n outside one */
    for (size_t p = from; p < n;) {
        ch c = char_at(s, n, p);
        if (!is_space(c)) run = n;
        else if (run == n) run = p;
        p += c.len;
    }
    if (run == n) return 0;
    *a = run;
    *b = n;
    return 1;
}

/* Falcon's stages after ByteLevel see one character per byte: the digits
 * are 0-9 and the bytes of ² ³ ¹ ¼ ½ ¾ (Latin-1 numbers). */
static int is_byte_level_digit(uint8_t b) {
    return (b >= '0' && b <= '9') || b == 0xB2 || b == 0xB3 || b == 0xB9 || (b >= 0xBC && b <= 0xBE);
}

static int byte_digits_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    for (size_t p = from; p < n; p++) {
        if (!is_byte_level_digit(s[p])) continue;
        size_t q = p;
        while (q < n && is_byte_level_digit(s[q])) q++;
        *a = p;
        *b = q;
        return 1;
    }
    return 0;
}

/* [0-9][0-9][0-9] */
static int three_digits_stage(const uint8_t *s, size_t n, size_t from, size_t *a, size_t *b) {
    size_t run = 0; /* ASCII digits just before p */
    for (size_t p = from; p < n; p++) {
        run = (s[p] >= '0' && s[p] <= '9') ? run + 1 : 0;
        if (run == 3) {
            *a = p - 2;
            *b = p + 1;
            return 1;
        }
    }
    return 0;
}

/* Each pre-tokenizer's stages, NULL-terminated. */
static const stage_fn *stages_of(bn_pretok pre) {
    static const stage_fn gpt2[] = {gpt2_stage, NULL};
    static const stage_fn llama3[] = {llama3_stage, NULL};
    static const stage_fn qwen2[] = {qwen2_stage, NULL};
    static const stage_fn gpt4o[] = {gpt4o_stage, NULL};
    static const stage_fn tekken[] = {tekken_stage, NULL};
    static const stage_fn starcoder[] = {digit_stage, gpt2_stage, NULL};
    static const stage_fn falcon[] = {punct_run_stage, gpt2_stage, byte_digits_stage, three_digits_stage, NULL};
    static const stage_fn deepseek_coder[] = {newline_stage, spaced_letters_stage, spaced_punct_stage, cjk_stage,
                                              digit_stage, NULL};
    static const stage_fn deepseek_llm[] = {newline_stage, spaced_deepseek_letters_stage,
                                            spaced_deepseek_symbols_stage, trailing_space_stage, cjk_stage,
                                            digit_stage, NULL};
    switch (pre) {
    case BN_PRE_LLAMA3: return llama3;
    case BN_PRE_GPT2: return gpt2;
    case BN_PRE_QWEN2: return qwen2;
    case BN_PRE_GPT4O: return gpt4o;
    case BN_PRE_TEKKEN: return tekken;
    case BN_PRE_STARCODER: return starcoder;
    case BN_PRE_FALCON: return falcon;
    case BN_PRE_DEEPSEEK_CODER: return deepseek_coder;
    case BN_PRE_DEEPSEEK_LLM: return deepseek_llm;
    default: return NULL;
    }
}

/* Splits s[0..n) by stages[0], handing the matches and the text between
 * them to the next stage; past the last stage, to emit. */
static int split(const stage_fn *stages, const uint8_t *s, size_t n, bn_word_fn emit, void *ctx) {
    if (n == 0) return 1;
    if (!stages[0]) return emit(ctx, s, n);
    size_t pos = 0, a, b;
    while (pos < n && stages[0](s, n, pos, &a, &b)) {
        if (a > pos && !split(stages + 1, s + pos, a - pos, emit, ctx)) return 0;
        if (!split(stages + 1, s + a, b - a, emit, ctx)) return 0;
        pos = b;
    }
    return split(stages + 1, s + pos, n - pos, emit, ctx);
}

int bn_pretok_split(bn_pretok pre, const uint8_t *s, size_t n, bn_word_fn emit, void *ctx) {
    const stage_fn *stages = stages_of(pre);
    if (!stages) return n == 0 || emit(ctx, s, n);
    return split(stages, s, n, emit, ctx);
}
