/* ecma_regex.c: ECMA-262 regular expressions (JSON Schema's `pattern`)
 * into terminals.
 *
 * The syntax is that of the Unicode mode ('u' flag: the pattern and the
 * text are code points, \u{...} escapes, surrogate pairs of \u escapes are
 * one character) with the leniencies of Annex B that validators without the
 * flag, and Python's re, also allow: a '{' that does not start a valid
 * quantifier and a lone '}' or ']' are literal characters, any ASCII
 * punctuation may be escaped (\- \@ \: ...), and in a class a range with
 * a class escape at either end ([\w-.]) is the escape, '-' and the other
 * end. No flags: case-insensitive, multiline and dotAll matching are not
 * part of JSON Schema. `{,n}` is a literal as in ECMA (Python reads it as
 * {0,n}).
 *
 * Anchors: ^ and $ match only at the ends of the text (no multiline). They
 * are accepted where they can only stand at an end: first (^) or last ($)
 * in an alternative whose group is itself first or last, up to the top.
 * So each compiled piece is kept as four languages, by whether its
 * matches are pinned to the start and to the end of the text; a search
 * then puts "any characters" before the unpinned ones and after them. */
#include "grammar/ecma_regex.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/unicode.h"

#define ECMA_DEFAULT_MAX_REPEAT 1000u
#define ECMA_MAX_DEPTH 200 /* groups nested deeper are refused (the parser recurses) */
#define MAX_CP 0x10FFFFu
#define NO_POS ((size_t)-1)

typedef struct {
    bn_rx *rx;
    const char *s;
    size_t n, pos;
    bn_ecma_spelling spelling;
    uint32_t max_repeat;
    bn_err *err;
    int failed;
    int depth;
} ecma_parser;

/* A compiled piece: lang[s][e] is what it matches when its match must
 * start at the start of the text (s) and end at its end (e). start_at /
 * end_at: where a ^ / $ inside it stands (NO_POS: none). */
typedef struct {
    bn_rxid lang[2][2];
    size_t start_at, end_at;
} piece;

/* A set of code points under construction. */
typedef struct {
    uint32_t (*r)[2];
    size_t n, cap;
} cp_set;

typedef struct {
    piece *v;
    size_t n, cap;
} piece_list;

static const uint32_t digit_ranges[][2] = {{'0', '9'}};
static const uint32_t word_ranges[][2] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
/* ECMA WhiteSpace and LineTerminator. */
static const uint32_t space_ranges[][2] = {
    {0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029},
    {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
/* What '.' does not match. */
static const uint32_t line_terminators[][2] = {{0x0A, 0x0A}, {0x0D, 0x0D}, {0x2028, 0x2029}};
static const uint32_t all_cps[][2] = {{0, MAX_CP}};

/* Messages count characters from 0, as offsets into the pattern text. */
static size_t char_offset(const ecma_parser *p, size_t byte_pos) {
    size_t k = 0;
    for (size_t i = 0; i < byte_pos && i < p->n; i++)
        if (((unsigned char)p->s[i] & 0xC0) != 0x80) k++;
    return k;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail_at(ecma_parser *p, size_t at, const char *fmt, ...) {
    if (!p->failed) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        bn_errf(p->err, "at offset %zu: %s", char_offset(p, at), msg);
        p->failed = 1;
    }
    return 0;
}

static int fail_budget(ecma_parser *p) {
    const char *why = bn_rx_failed(p->rx);
    return fail_at(p, p->pos, "pattern too large: %s", why ? why : "out of memory");
}

static int set_add(ecma_parser *p, cp_set *set, uint32_t lo, uint32_t hi) {
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 16;
        uint32_t (*nr)[2] = realloc(set->r, cap * sizeof *nr);
        if (!nr) return fail_at(p, p->pos, "out of memory");
        set->r = nr;
        set->cap = cap;
    }
    set->r[set->n][0] = lo;
    set->r[set->n][1] = hi;
    set->n++;
    return 1;
}

static int cmp_range(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Adds ranges[0..n), or with negate their complement within the code points. */
static int set_add_ranges(ecma_parser *p, cp_set *set, const uint32_t (*ranges)[2], size_t n, int negate) {
    if (!negate) {
        for (size_t i = 0; i < n; i++)
            if (!set_add(p, set, ranges[i][0], ranges[i][1])) return 0;
        return 1;
    }
    uint32_t (*sorted)[2] = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) return fail_at(p, p->pos, "out of memory");
    memcpy(sorted, ranges, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_range);
    uint32_t next = 0; /* the first code point not yet covered */
    int ok = 1, done = 0;
    for (size_t i = 0; i < n && ok && !done; i++) {
        if (sorted[i][0] > next) ok = set_add(p, set, next, sorted[i][0] - 1);
        if (sorted[i][1] >= next) {
            if (sorted[i][1] >= MAX_CP) done = 1;
            else next = sorted[i][1] + 1;
        }
    }
    if (ok && !done) ok = set_add(p, set, next, MAX_CP);
    free(sorted);
    return ok;
}

/* One character of a class, spelled as the caller asked. */
static bn_rxid make_class(ecma_parser *p, const uint32_t (*ranges)[2], size_t n, int negate) {
    if (p->spelling == BN_ECMA_JSON_STRING) return bn_rx_json_cp_class(p->rx, ranges, n, negate);
    return bn_rx_cp_class(p->rx, ranges, n, negate);
}

static bn_rxid make_char(ecma_parser *p, uint32_t cp) {
    const uint32_t r[1][2] = {{cp, cp}};
    return make_class(p, r, 1, 0);
}

static piece atom_piece(ecma_parser *p, bn_rxid re) {
    piece x;
    bn_rxid none = bn_rx_nothing(p->rx);
    x.lang[0][0] = re;
    x.lang[0][1] = x.lang[1][0] = x.lang[1][1] = none;
    x.start_at = x.end_at = NO_POS;
    return x;
}

static int piece_push(ecma_parser *p, piece_list *l, piece x) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        piece *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) return fail_at(p, p->pos, "out of memory");
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return 1;
}

static int peek(const ecma_parser *p, size_t at, char c) { return at < p->n && p->s[at] == c; }

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* exactly k hex digits at at into *v. */
static int hex_digits(const ecma_parser *p, size_t at, int k, uint32_t *v) {
    uint32_t x = 0;
    for (int i = 0; i < k; i++) {
        int h = at + (size_t)i < p->n ? hex_value(p->s[at + (size_t)i]) : -1;
        if (h < 0) return 0;
        x = x * 16 + (uint32_t)h;
    }
    *v = x;
    return 1;
}

/* The next character of the pattern (UTF-8) into *cp. */
static int next_cp(ecma_parser *p, uint32_t *cp) {
    size_t len = bn_utf8_decode((const uint8_t *)p->s + p->pos, p->n - p->pos, cp);
    if (*cp >= BN_UC_BAD_BYTE) return fail_at(p, p->pos, "invalid UTF-8 (byte 0x%02X)", (unsigned char)p->s[p->pos]);
    p->pos += len;
    return 1;
}

/* A decimal number at p->pos (saturating). 0 when there is none. */
static int parse_decimal(ecma_parser *p, uint32_t *out) {
    if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9') return 0;
    uint64_t v = 0;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        v = v * 10 + (uint64_t)(p->s[p->pos] - '0');
        if (v > UINT32_MAX - 1) v = UINT32_MAX - 1;
        p->pos++;
    }
    *out = (uint32_t)v;
    return 1;
}

/* A quantifier {m}, {m,} or {m,n} at p->pos: 1 (consumed) or 0 (not a
 * quantifier: the '{' is a literal, nothing consumed). */
static int parse_braces(ecma_parser *p, uint32_t *min, uint32_t *max) {
    size_t open = p->pos;
    p->pos++;
    if (!parse_decimal(p, min)) {
        p->pos = open;
        return 0;
    }
    *max = *min;
    if (peek(p, p->pos, ',')) {
        p->pos++;
        if (!parse_decimal(p, max)) *max = BN_RX_INF;
    }
    if (!peek(p, p->pos, '}')) {
        p->pos = open;
        return 0;
    }
    p->pos++;
    return 1;
}

/* Which class escape (\d \D \w \W \s \S) e is: its ranges, count and
 * negation. 0 for other letters. */
static int class_escape(char e, const uint32_t (**ranges)[2], size_t *n, int *negate) {
    switch (e) {
    case 'd': case 'D': *ranges = digit_ranges; *n = 1; break;
    case 'w': case 'W': *ranges = word_ranges; *n = 4; break;
    case 's': case 'S': *ranges = space_ranges; *n = sizeof space_ranges / sizeof space_ranges[0]; break;
    default: return 0;
    }
    *negate = e == 'D' || e == 'W' || e == 'S';
    return 1;
}

/* The character escapes shared by atoms and classes, after the '\' (at
 * p->pos, the escape's letter). Returns 1 with *cp, or 0 with a message. */
static int char_escape(ecma_parser *p, size_t backslash, int in_class, uint32_t *cp) {
    char e = p->s[p->pos];
    switch (e) {
    case 'n': *cp = '\n'; p->pos++; return 1;
    case 't': *cp = '\t'; p->pos++; return 1;
    case 'r': *cp = '\r'; p->pos++; return 1;
    case 'f': *cp = '\f'; p->pos++; return 1;
    case 'v': *cp = '\v'; p->pos++; return 1;
    case '0':
        if (p->pos + 1 < p->n && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9')
            return fail_at(p, backslash, "octal escapes are not supported");
        *cp = 0;
        p->pos++;
        return 1;
    case 'c': {
        char x = p->pos + 1 < p->n ? p->s[p->pos + 1] : 0;
        if (!((x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z')))
            return fail_at(p, backslash, "'\\c' must be followed by a letter");
        *cp = (uint32_t)x % 32;
        p->pos += 2;
        return 1;
    }
    case 'x':
        if (!hex_digits(p, p->pos + 1, 2, cp)) return fail_at(p, backslash, "'\\x' must be followed by two hex digits");
        p->pos += 3;
        return 1;
    case 'u': {
        if (peek(p, p->pos + 1, '{')) {
            size_t at = p->pos + 2;
            uint64_t v = 0;
            int digits = 0;
            for (; at < p->n && hex_value(p->s[at]) >= 0; at++, digits++) {
                v = v * 16 + (uint64_t)hex_value(p->s[at]);
                if (v > MAX_CP) break;
            }
            if (!digits || v > MAX_CP || !peek(p, at, '}'))
                return fail_at(p, backslash, "'\\u{...}' needs hex digits of a code point up to 10FFFF");
            *cp = (uint32_t)v;
            p->pos = at + 1;
            return 1;
        }
        if (!hex_digits(p, p->pos + 1, 4, cp))
            return fail_at(p, backslash, "'\\u' must be followed by four hex digits or {code point}");
        p->pos += 5;
        /* A surrogate pair spelled as two escapes is one character. */
        uint32_t low;
        if (*cp >= 0xD800 && *cp <= 0xDBFF && peek(p, p->pos, '\\') && peek(p, p->pos + 1, 'u') &&
            hex_digits(p, p->pos + 2, 4, &low) && low >= 0xDC00 && low <= 0xDFFF) {
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (low - 0xDC00);
            p->pos += 6;
        }
        return 1;
    }
    case 'b':
        if (in_class) {
            *cp = 0x08;
            p->pos++;
            return 1;
        }
        return fail_at(p, backslash, "word boundary assertions (\\b) are not supported");
    case 'B': return fail_at(p, backslash, "word boundary assertions (\\B) are not supported");
    case 'k':
        if (peek(p, p->pos + 1, '<')) return fail_at(p, backslash, "backreferences (\\k<name>) are not supported");
        break;
    case 'p': case 'P':
        return fail_at(p, backslash, "Unicode property escapes (\\%c{...}) are not supported", e);
    default:
        if (e >= '1' && e <= '9') return fail_at(p, backslash, "backreferences (\\%c) are not supported", e);
        break;
    }
    unsigned char b = (unsigned char)e;
    if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9'))
        return fail_at(p, backslash, "unknown escape '\\%c'", e);
    /* Identity escape: the character itself. */
    return next_cp(p, cp);
}

/* [...] at p->pos into *re. */
static int parse_class(ecma_parser *p, bn_rxid *re) {
    size_t open = p->pos++;
    int negate = 0;
    if (peek(p, p->pos, '^')) {
        negate = 1;
        p->pos++;
    }
    cp_set set = {0};
    int ok = 1;
    for (;;) {
        if (p->pos >= p->n) {
            ok = fail_at(p, open, "unterminated character class");
            break;
        }
        if (p->s[p->pos] == ']') {
            p->pos++;
            break;
        }
        /* One class atom: a character (lo) or a class escape (esc). */
        uint32_t lo = 0, hi;
        const uint32_t (*esc)[2] = NULL;
        size_t esc_n = 0;
        int esc_neg = 0;
        if (p->s[p->pos] == '\\') {
            size_t backslash = p->pos++;
            if (p->pos >= p->n) {
                ok = fail_at(p, backslash, "'\\' at end of pattern");
                break;
            }
            if (class_escape(p->s[p->pos], &esc, &esc_n, &esc_neg)) {
                p->pos++;
            } else if (p->s[p->pos] == '-') {
                lo = '-';
                p->pos++;
            } else if (!char_escape(p, backslash, 1, &lo)) {
                ok = 0;
                break;
            }
        } else if (!next_cp(p, &lo)) {
            ok = 0;
            break;
        }
        if (esc) {
            if (!set_add_ranges(p, &set, esc, esc_n, esc_neg)) {
                ok = 0;
                break;
            }
            continue; /* a following '-' is a literal (Annex B) */
        }
        if (!(peek(p, p->pos, '-') && p->pos + 1 < p->n && p->s[p->pos + 1] != ']')) {
            if (!set_add(p, &set, lo, lo)) {
                ok = 0;
                break;
            }
            continue;
        }
        size_t dash = p->pos++;
        /* The upper end of a range. */
        const uint32_t (*esc2)[2] = NULL;
        if (p->s[p->pos] == '\\') {
            size_t backslash = p->pos++;
            if (p->pos >= p->n) {
                ok = fail_at(p, backslash, "'\\' at end of pattern");
                break;
            }
            if (class_escape(p->s[p->pos], &esc2, &esc_n, &esc_neg)) {
                p->pos++;
            } else if (p->s[p->pos] == '-') {
                hi = '-';
                p->pos++;
            } else if (!char_escape(p, backslash, 1, &hi)) {
                ok = 0;
                break;
            }
        } else if (!next_cp(p, &hi)) {
            ok = 0;
            break;
        }
        if (esc2) { /* [a-\d]: a, '-', and the digits (Annex B) */
            if (!set_add(p, &set, lo, lo) || !set_add(p, &set, '-', '-') ||
                !set_add_ranges(p, &set, esc2, esc_n, esc_neg)) {
                ok = 0;
                break;
            }
            continue;
        }
        if (lo > hi) {
            ok = fail_at(p, dash, "range out of order in character class (U+%04X > U+%04X)", (unsigned)lo,
                         (unsigned)hi);
            break;
        }
        if (!set_add(p, &set, lo, hi)) {
            ok = 0;
            break;
        }
    }
    if (ok) *re = make_class(p, (const uint32_t (*)[2])set.r, set.n, negate);
    free(set.r);
    return ok;
}

static int parse_disjunction(ecma_parser *p, piece *out);

/* (...), (?:...), (?<name>...) at p->pos. */
static int parse_group(ecma_parser *p, piece *out) {
    size_t open = p->pos++;
    if (peek(p, p->pos, '?')) {
        char k = p->pos + 1 < p->n ? p->s[p->pos + 1] : 0;
        if (k == ':') {
            p->pos += 2;
        } else if (k == '=' || k == '!') {
            return fail_at(p, open, "lookahead (?%c...) is not supported", k);
        } else if (k == '<' && (peek(p, p->pos + 2, '=') || peek(p, p->pos + 2, '!'))) {
            return fail_at(p, open, "lookbehind (?<%c...) is not supported", p->s[p->pos + 2]);
        } else if (k == '<') {
            size_t at = p->pos + 2;
            while (at < p->n && p->s[at] != '>' && p->s[at] != ')') {
                unsigned char c = (unsigned char)p->s[at];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '$' || c >= 0x80))
                    break;
                at++;
            }
            if (at == p->pos + 2 || !peek(p, at, '>') || (p->s[p->pos + 2] >= '0' && p->s[p->pos + 2] <= '9'))
                return fail_at(p, open, "invalid group name in (?<name>...)");
            p->pos = at + 1;
        } else {
            return fail_at(p, open,
                           "unsupported group syntax '(?%c': only (?:...) and (?<name>...) are ECMA-262 groups "
                           "(inline flags are not supported)",
                           k ? k : ' ');
        }
    }
    if (p->depth >= ECMA_MAX_DEPTH) return fail_at(p, open, "groups nested deeper than %d", ECMA_MAX_DEPTH);
    p->depth++;
    int ok = parse_disjunction(p, out);
    p->depth--;
    if (!ok) return 0;
    if (!peek(p, p->pos, ')')) return fail_at(p, open, "missing ')' for this group");
    p->pos++;
    return 1;
}

/* One atom at p->pos into *out. */
static int parse_atom(ecma_parser *p, piece *out) {
    size_t at = p->pos;
    char c = p->s[at];
    bn_rxid re;
    if (c == '(') return parse_group(p, out);
    if (c == '.') {
        p->pos++;
        re = make_class(p, line_terminators, sizeof line_terminators / sizeof line_terminators[0], 1);
    } else if (c == '[') {
        if (!parse_class(p, &re)) return 0;
    } else if (c == '\\') {
        p->pos++;
        if (p->pos >= p->n) return fail_at(p, at, "'\\' at end of pattern");
        const uint32_t (*ranges)[2];
        size_t n;
        int negate;
        if (class_escape(p->s[p->pos], &ranges, &n, &negate)) {
            p->pos++;
            re = make_class(p, ranges, n, negate);
        } else {
            uint32_t cp;
            if (!char_escape(p, at, 0, &cp)) return 0;
            re = make_char(p, cp);
        }
    } else if (c == '*' || c == '+' || c == '?') {
        return fail_at(p, at, "'%c' has nothing to repeat", c);
    } else {
        uint32_t cp, lo, hi;
        if (c == '{' && parse_braces(p, &lo, &hi)) return fail_at(p, at, "quantifier has nothing to repeat");
        if (!next_cp(p, &cp)) return 0;
        re = make_char(p, cp);
    }
    if (re == BN_RX_ERROR) return fail_budget(p);
    *out = atom_piece(p, re);
    return 1;
}

/* Applies min..max repetition to x. */
static int repeat_piece(ecma_parser *p, piece *x, uint32_t min, uint32_t max) {
    bn_rx *rx = p->rx;
    if (max <= 1) {
        /* At most once: anchors inside stay where they were. */
        if (max == 0) {
            *x = atom_piece(p, bn_rx_empty(rx));
        } else if (min == 0) {
            x->lang[0][0] = bn_rx_optional(rx, x->lang[0][0]);
        }
        return 1;
    }
    if (x->start_at != NO_POS) return fail_at(p, x->start_at, "'^' inside a repeated group is not supported");
    if (x->end_at != NO_POS) return fail_at(p, x->end_at, "'$' inside a repeated group is not supported");
    x->lang[0][0] = bn_rx_repeat(rx, x->lang[0][0], min, max);
    return 1;
}

/* A quantifier after an atom, if one follows. */
static int parse_quantifier(ecma_parser *p, piece *x) {
    size_t at = p->pos;
    if (at >= p->n) return 1;
    char c = p->s[at];
    uint32_t min, max;
    if (c == '*') {
        min = 0, max = BN_RX_INF;
        p->pos++;
    } else if (c == '+') {
        min = 1, max = BN_RX_INF;
        p->pos++;
    } else if (c == '?') {
        min = 0, max = 1;
        p->pos++;
    } else if (c == '{') {
        if (!parse_braces(p, &min, &max)) return 1; /* a literal '{' (Annex B) */
        if (max != BN_RX_INF && min > max)
            return fail_at(p, at, "numbers out of order in {%u,%u} quantifier", (unsigned)min, (unsigned)max);
        uint32_t big = max != BN_RX_INF ? max : min;
        if (big > p->max_repeat)
            return fail_at(p, at, "repetition count %u is over the limit of %u", (unsigned)big,
                           (unsigned)p->max_repeat);
    } else {
        return 1;
    }
    if (peek(p, p->pos, '?')) p->pos++; /* lazy: the same language */
    if (!repeat_piece(p, x, min, max)) return 0;
    /* a** and a{2}{3} are errors in ECMA, not stacked repetitions. */
    if (p->pos < p->n) {
        char d = p->s[p->pos];
        uint32_t lo, hi;
        size_t save = p->pos;
        if (d == '*' || d == '+' || d == '?') return fail_at(p, p->pos, "'%c' has nothing to repeat", d);
        if (d == '{' && parse_braces(p, &lo, &hi)) return fail_at(p, save, "quantifier has nothing to repeat");
    }
    return 1;
}

/* Concatenates the terms of one alternative: only the first may be pinned
 * to the start, only the last to the end. */
static int join_terms(ecma_parser *p, const piece_list *terms, piece *out) {
    bn_rx *rx = p->rx;
    size_t k = terms->n;
    if (k == 0) {
        *out = atom_piece(p, bn_rx_empty(rx));
        return 1;
    }
    for (size_t i = 0; i < k; i++) {
        if (i > 0 && terms->v[i].start_at != NO_POS)
            return fail_at(p, terms->v[i].start_at, "'^' in the middle of the pattern is not supported "
                                                     "(only at the start of the pattern or of an alternative)");
        if (i + 1 < k && terms->v[i].end_at != NO_POS)
            return fail_at(p, terms->v[i].end_at, "'$' in the middle of the pattern is not supported "
                                                   "(only at the end of the pattern or of an alternative)");
    }
    if (k == 1) {
        *out = terms->v[0];
        return 1;
    }
    bn_rxid mid = bn_rx_empty(rx);
    for (size_t i = 1; i + 1 < k; i++) mid = bn_rx_concat(rx, mid, terms->v[i].lang[0][0]);
    const piece *first = &terms->v[0], *last = &terms->v[k - 1];
    for (int s = 0; s < 2; s++)
        for (int e = 0; e < 2; e++)
            out->lang[s][e] = bn_rx_concat(rx, bn_rx_concat(rx, first->lang[s][0], mid), last->lang[0][e]);
    out->start_at = first->start_at;
    out->end_at = last->end_at;
    return 1;
}

/* Terms up to '|', ')' or the end. */
static int parse_alternative(ecma_parser *p, piece *out) {
    piece_list terms = {0};
    int ok = 1;
    while (ok && p->pos < p->n && p->s[p->pos] != '|' && p->s[p->pos] != ')') {
        size_t at = p->pos;
        char c = p->s[at];
        piece x;
        if (c == '^' || c == '$') {
            p->pos++;
            x = atom_piece(p, bn_rx_nothing(p->rx));
            if (c == '^') {
                x.lang[1][0] = bn_rx_empty(p->rx);
                x.start_at = at;
            } else {
                x.lang[0][1] = bn_rx_empty(p->rx);
                x.end_at = at;
            }
            char d = p->pos < p->n ? p->s[p->pos] : 0;
            uint32_t lo, hi;
            if (d == '*' || d == '+' || d == '?') {
                ok = fail_at(p, p->pos, "'%c' cannot repeat the assertion '%c'", d, c);
                break;
            }
            if (d == '{' && parse_braces(p, &lo, &hi)) {
                ok = fail_at(p, at + 1, "a quantifier cannot repeat the assertion '%c'", c);
                break;
            }
        } else {
            ok = parse_atom(p, &x) && parse_quantifier(p, &x);
            if (!ok) break;
        }
        ok = piece_push(p, &terms, x);
    }
    if (ok) ok = join_terms(p, &terms, out);
    free(terms.v);
    return ok;
}

static int parse_disjunction(ecma_parser *p, piece *out) {
    if (!parse_alternative(p, out)) return 0;
    while (peek(p, p->pos, '|')) {
        p->pos++;
        piece alt;
        if (!parse_alternative(p, &alt)) return 0;
        for (int s = 0; s < 2; s++)
            for (int e = 0; e < 2; e++) out->lang[s][e] = bn_rx_alt(p->rx, out->lang[s][e], alt.lang[s][e]);
        if (out->start_at == NO_POS) out->start_at = alt.start_at;
        if (out->end_at == NO_POS) out->end_at = alt.end_at;
    }
    return 1;
}

int bn_ecma_regex(bn_rx *rx, const char *pattern, size_t n, bn_ecma_mode mode, bn_ecma_spelling spelling,
                  uint32_t max_repeat, bn_rxid *out, bn_err *err) {
    ecma_parser p = {0};
    p.rx = rx;
    p.s = pattern ? pattern : "";
    p.n = pattern ? n : 0;
    p.spelling = spelling;
    p.max_repeat = max_repeat ? max_repeat : ECMA_DEFAULT_MAX_REPEAT;
    p.err = err;
    *out = BN_RX_ERROR;

    piece whole;
    if (!parse_disjunction(&p, &whole)) return 0;
    if (p.pos < p.n) return fail_at(&p, p.pos, "')' without a matching '('");

    for (int s = 0; s < 2; s++)
        for (int e = 0; e < 2; e++)
            if (whole.lang[s][e] == BN_RX_ERROR) return fail_budget(&p);
    bn_rxid re;
    if (mode == BN_ECMA_FULLMATCH) {
        /* The text is the match: anchors say nothing more. */
        re = bn_rx_alt(rx, bn_rx_alt(rx, whole.lang[0][0], whole.lang[0][1]),
                       bn_rx_alt(rx, whole.lang[1][0], whole.lang[1][1]));
    } else {
        bn_rxid any = bn_rx_repeat(rx, make_class(&p, all_cps, 1, 0), 0, BN_RX_INF);
        /* A side left free that can match "" makes every text match. */
        if (bn_rx_nullable(rx, whole.lang[0][0]) || bn_rx_nullable(rx, whole.lang[0][1]) ||
            bn_rx_nullable(rx, whole.lang[1][0])) {
            re = any;
        } else {
            bn_rxid parts[4] = {
                whole.lang[1][1],
                bn_rx_concat(rx, whole.lang[1][0], any),
                bn_rx_concat(rx, any, whole.lang[0][1]),
                bn_rx_concat(rx, any, bn_rx_concat(rx, whole.lang[0][0], any)),
            };
            re = bn_rx_alt_n(rx, parts, 4);
        }
    }
    if (re == BN_RX_ERROR) return fail_budget(&p);
    *out = re;
    return 1;
}
