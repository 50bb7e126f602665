/* grammar_front_test.c: the GBNF and ECMA regex front ends (gbnf.c,
 * ecma_regex.c), checked without the matcher core: regexes with regex.h's
 * reference matcher, grammars with a small end-set matcher over the
 * builder (fine for the non-left-recursive fixture grammars).
 *
 *   grammar_front_test [spec/data/gbnf] [maskbench-dev.jsonl]
 *   grammar_front_test --diff FILE   (lines: pattern TAB text TAB 0/1, a
 *                                     search in raw spelling, from Python)
 *   grammar_front_test --diff-json FILE  (the same with text spelled as
 *                                     JSON string content) */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/ecma_regex.h"
#include "grammar/gbnf.h"

static int failures;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            failures++;                                                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                           \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fputc('\n', stderr);                                                                           \
        }                                                                                                  \
    } while (0)

/* ---- ECMA regex ---- */

typedef struct {
    const char *pattern;
    bn_ecma_mode mode;
    bn_ecma_spelling spelling;
    const char *accept[12];
    const char *reject[12];
} rx_case;

#define S BN_ECMA_SEARCH
#define F BN_ECMA_FULLMATCH
#define RAW BN_ECMA_RAW
#define JS BN_ECMA_JSON_STRING

static const rx_case rx_cases[] = {
    {"^[a-z]+$", S, RAW, {"abc", "z"}, {"", "abC", "ab1", "1ab", "ab\n"}},
    {"[a-z]+", S, RAW, {"abc", "1a2", "ABCd"}, {"", "123", "ABC"}},
    {"abc", F, RAW, {"abc"}, {"xabc", "abcx", "ab"}},
    {"^abc$", F, RAW, {"abc"}, {"xabc", ""}},
    {"^\\d{4}-\\d{2}-\\d{2}$", S, RAW, {"2024-01-31"}, {"2024-1-31", "x2024-01-31", "2024-01-311"}},
    {"^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", S, RAW, {"a@b.co", "first.last@example.org"},
     {"a@b.c", "a b@c.de", "a@@b.de", "@b.de"}},
    {"^dev|alpha|beta$", S, RAW, {"dev", "devx", "xalphax", "xbeta"}, {"xdev", "betax", "gamma"}},
    {"^$|^a+$", S, RAW, {"", "a", "aaa"}, {"b", "ab"}},
    {"^$|(^(?:\\S+\\s+){0,2}\\S+$)", S, RAW, {"", "one", "one two", "a b c"}, {"a b c d", " a", "a "}},
    {"(^gs://(.+))|(^http://(.+))", S, RAW, {"gs://x", "http://y/z"}, {"xgs://x", "gs://", "ftp://a"}},
    {"(^a|b)c$", S, RAW, {"ac", "bc", "xbc"}, {"xac", "acx", "c"}},
    {"^(?:a|b)?$", S, RAW, {"", "a", "b"}, {"ab", "c"}},
    {"(^a)?b", S, RAW, {"ab", "b", "xb", "bx", "xab"}, {"a", "x"}},
    {"^", S, RAW, {"", "anything"}, {NULL}},
    {"", S, RAW, {"", "x"}, {NULL}},
    {"", F, RAW, {""}, {"x"}},
    {"^.$", S, RAW, {"a", "\xc3\xa9", "\xe4\xb8\x96", "\xf0\x9f\x98\x80"}, {"\n", "\r", "\xe2\x80\xa8", "ab", ""}},
    {"^[\\u00e9-\\u00ea\\u{1F600}]$", S, RAW, {"\xc3\xa9", "\xc3\xaa", "\xf0\x9f\x98\x80"}, {"e", "\xc3\xab"}},
    {"^\\uD83D\\uDE00$", S, RAW, {"\xf0\x9f\x98\x80"}, {"x"}},
    {"^\\x41\\u0042\\u{43}\\cJ\\t$", F, RAW, {"ABC\n\t"}, {"ABC"}},
    {"\\s", F, RAW, {" ", "\t", "\v", "\f", "\xc2\xa0", "\xe3\x80\x80", "\xef\xbb\xbf", "\xe2\x80\xa8"}, {"a", "\xc2\x85"}},
    {"[\\S]", F, RAW, {"a", "\xc2\x85"}, {" ", "\n"}},
    {"\\w\\W\\d\\D", F, RAW, {"a-1x", "_ 9-"}, {"a-1", "-a1x", "aa1x", "a-11"}},
    {"[^\\d\\s]", F, RAW, {"a", "-"}, {"1", " "}},
    {"[\\w.-]+", F, RAW, {"a.b-c_d"}, {"a b", "a/b"}},
    {"[\\w-.]+", F, RAW, {"a.b-c"}, {"a,b"}},
    {"[a-]", F, RAW, {"a", "-"}, {"b"}},
    {"[-a]", F, RAW, {"a", "-"}, {"b"}},
    {"[\\]\\[\\\\]", F, RAW, {"]", "[", "\\"}, {"a"}},
    {"[^]", F, RAW, {"a", "\n"}, {""}},
    {"[]", F, RAW, {NULL}, {"", "a"}},
    {"[\\b]", F, RAW, {"\b"}, {"b"}},
    {"a{2}", F, RAW, {"aa"}, {"a", "aaa"}},
    {"a{2,}", F, RAW, {"aa", "aaaa"}, {"a"}},
    {"a{1,3}?", F, RAW, {"a", "aaa"}, {"", "aaaa"}},
    {"a*?b+?c??", F, RAW, {"b", "aabbc"}, {"c", "abcc"}},
    {"a{,2}", F, RAW, {"a{,2}"}, {"aa", ""}},
    {"a{", F, RAW, {"a{"}, {"a"}},
    {"x{1}}", F, RAW, {"x}"}, {"x"}},
    {"]", F, RAW, {"]"}, {NULL}},
    {"\\{\\{ \\$index \\}\\}", F, RAW, {"{{ $index }}"}, {NULL}},
    {"^\\S+\\@\\S+\\.\\w+$", S, RAW, {"a@b.c"}, {"a@b"}},
    {"(?<year>\\d{4})-(?<month>\\d\\d)", F, RAW, {"2020-12"}, {"2020-1"}},
    {"^([a-zA-Z%_/$]|[\\x80-\\xFFFF])+$", S, RAW, {"a$", "\xc3\xbf", "F"}, {"\xc4\x80", "1"}},
    {"^(a|b)*c(d|e){0,2}$", F, RAW, {"c", "ababcde"}, {"cddd"}},
    /* A lone surrogate is no character of UTF-8 text: it matches nothing. */
    {"^a\\uD800?$", S, RAW, {"a"}, {"a\xed\xa0\x80"}},
    {"[\\uD800-\\uDFFF]", S, RAW, {NULL}, {"", "a", "\xed\xa0\x80"}},
    /* JSON string spelling: the pattern matches the text the JSON escapes spell. */
    {"^a\"b$", S, JS, {"a\\\"b"}, {"a\"b"}},
    {"^\\\\$", S, JS, {"\\\\"}, {"\\"}},
    {"^\\n$", S, JS, {"\\n"}, {"\n"}},
    {"^\\u0001$", S, JS, {"\\u0001", "\\u0001"}, {"\x01"}},
    {"^.$", S, JS, {"a", "\\\"", "\\t", "\xc3\xa9"}, {"\\n", "\\r", "\\/"}},
    {"^[^a]$", S, JS, {"\\\\", "\\n", "b"}, {"a", "\\"}},
    {"ab", S, JS, {"ab", "\\\"ab\\n"}, {"a\\nb"}},
    {"\\d+", S, JS, {"x1y"}, {"xy"}},
};

typedef struct {
    const char *pattern;
    const char *message; /* a substring of the error */
} rx_error_case;

static const rx_error_case rx_errors[] = {
    {"(?=a)", "at offset 0: lookahead"},
    {"a(?!b)", "at offset 1: lookahead"},
    {"(?<=a)b", "lookbehind"},
    {"(?<!a)b", "lookbehind"},
    {"(a)\\1", "at offset 3: backreferences"},
    {"(?<n>a)\\k<n>", "backreferences"},
    {"\\bword\\b", "word boundary"},
    {"a\\B", "word boundary"},
    {"a^b", "at offset 1: '^' in the middle"},
    {"a$b", "at offset 1: '$' in the middle"},
    {"(^a)+", "'^' inside a repeated group"},
    {"(a$)*", "'$' inside a repeated group"},
    {"a{1001}", "at offset 1: repetition count 1001 is over the limit of 1000"},
    {"a{2,1}", "out of order"},
    {"[z-a]", "range out of order"},
    {"*a", "nothing to repeat"},
    {"a**", "nothing to repeat"},
    {"a{2}{3}", "nothing to repeat"},
    {"^*", "cannot repeat"},
    {"(a", "at offset 0: missing ')'"},
    {"a)", "at offset 1: ')' without"},
    {"[a", "unterminated character class"},
    {"a\\", "'\\' at end"},
    {"\\q", "unknown escape '\\q'"},
    {"\\p{L}", "property escapes"},
    {"(?i)a", "unsupported group syntax"},
    {"\\x4", "two hex digits"},
    {"\\u{110000}", "code point"},
    {"\\01", "octal"},
    {"\xff", "invalid UTF-8"},
    {"\xc3\xa9(?=x)", "at offset 1: lookahead"},
    {"((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a",
     "groups nested deeper than 200"},
};

static void test_ecma(void) {
    for (size_t i = 0; i < sizeof rx_cases / sizeof rx_cases[0]; i++) {
        const rx_case *c = &rx_cases[i];
        bn_rx *rx = bn_rx_new(0);
        bn_err err = {0};
        bn_rxid re;
        int ok = bn_ecma_regex(rx, c->pattern, strlen(c->pattern), c->mode, c->spelling, 0, &re, &err);
        CHECK(ok, "pattern /%s/ refused: %s", c->pattern, err.msg);
        if (ok) {
            for (int k = 0; k < 12 && c->accept[k]; k++)
                CHECK(bn_rx_matches(rx, re, c->accept[k], strlen(c->accept[k])), "/%s/ (mode %d, spelling %d) "
                      "should match \"%s\"", c->pattern, (int)c->mode, (int)c->spelling, c->accept[k]);
            for (int k = 0; k < 12 && c->reject[k]; k++)
                CHECK(!bn_rx_matches(rx, re, c->reject[k], strlen(c->reject[k])), "/%s/ (mode %d, spelling %d) "
                      "should not match \"%s\"", c->pattern, (int)c->mode, (int)c->spelling, c->reject[k]);
        }
        bn_rx_free(rx);
    }
    for (size_t i = 0; i < sizeof rx_errors / sizeof rx_errors[0]; i++) {
        const rx_error_case *c = &rx_errors[i];
        bn_rx *rx = bn_rx_new(0);
        bn_err err = {0};
        bn_rxid re;
        int ok = bn_ecma_regex(rx, c->pattern, strlen(c->pattern), BN_ECMA_SEARCH, BN_ECMA_RAW, 0, &re, &err);
        CHECK(!ok && strstr(err.msg, c->message), "/%s/: expected an error with \"%s\", got %s \"%s\"", c->pattern,
              c->message, ok ? "success" : "error", err.msg);
        bn_rx_free(rx);
    }
    bn_rx *rx = bn_rx_new(0);
    bn_err err = {0};
    bn_rxid re;
    /* \0 is U+0000 (strlen cannot show it above). */
    CHECK(bn_ecma_regex(rx, "a\\0b", 4, BN_ECMA_FULLMATCH, BN_ECMA_RAW, 0, &re, &err), "%s", err.msg);
    CHECK(bn_rx_matches(rx, re, "a\0b", 3) && !bn_rx_matches(rx, re, "ab", 2), "\\0");
    /* max_repeat is the caller's. */
    CHECK(bn_ecma_regex(rx, "a{50}", 5, BN_ECMA_FULLMATCH, BN_ECMA_RAW, 50, &re, &err), "%s", err.msg);
    CHECK(!bn_ecma_regex(rx, "a{,}b{51,}", 10, BN_ECMA_FULLMATCH, BN_ECMA_RAW, 50, &re, &err) &&
              strstr(err.msg, "at offset 5: repetition count 51 is over the limit of 50"),
          "got \"%s\"", err.msg);
    bn_rx_free(rx);
}

/* ---- a reference matcher over a grammar builder ---- */

typedef struct {
    const bn_gb *gb;
    bn_rx *rx;
    const char *s;
    size_t n, words;
    uint64_t *memo;  /* per (rule, position): the end positions */
    uint8_t *state;  /* 0 unknown, 1 being computed, 2 known */
} gmatch;

static uint64_t *bits_new(const gmatch *m) { return calloc(m->words, sizeof(uint64_t)); }
static void bits_or(const gmatch *m, uint64_t *a, const uint64_t *b) {
    for (size_t w = 0; w < m->words; w++) a[w] |= b[w];
}
static int bits_any(const gmatch *m, const uint64_t *a) {
    for (size_t w = 0; w < m->words; w++)
        if (a[w]) return 1;
    return 0;
}
static int bits_subset(const gmatch *m, const uint64_t *a, const uint64_t *b) {
    for (size_t w = 0; w < m->words; w++)
        if (a[w] & ~b[w]) return 0;
    return 1;
}
static int bit(const uint64_t *a, size_t i) { return (int)((a[i >> 6] >> (i & 63)) & 1); }
static void set_bit(uint64_t *a, size_t i) { a[i >> 6] |= (uint64_t)1 << (i & 63); }

static void ends(gmatch *m, bn_gx x, size_t i, uint64_t *out);

/* out |= the ends of regex re matched from every start in from (bn_rx_matches
 * per start and end would be quadratic in calls). */
static void rx_ends_from(gmatch *m, bn_rxid re, const uint64_t *from, uint64_t *out) {
    size_t np;
    const bn_rxid *parts;
    switch (bn_rx_kind_of(m->rx, re)) {
    case BN_RX_NOTHING: return;
    case BN_RX_EMPTY: bits_or(m, out, from); return;
    case BN_RX_BYTES: {
        const uint64_t *set = bn_rx_set(m->rx, re);
        for (size_t i = 0; i < m->n; i++) {
            unsigned char b = (unsigned char)m->s[i];
            if (bit(from, i) && ((set[b >> 6] >> (b & 63)) & 1)) set_bit(out, i + 1);
        }
        return;
    }
    case BN_RX_CONCAT: {
        parts = bn_rx_parts(m->rx, re, &np);
        uint64_t *mid = bits_new(m);
        rx_ends_from(m, parts[0], from, mid);
        if (bits_any(m, mid)) rx_ends_from(m, parts[1], mid, out);
        free(mid);
        return;
    }
    case BN_RX_ALT:
        parts = bn_rx_parts(m->rx, re, &np);
        for (size_t k = 0; k < np; k++) rx_ends_from(m, parts[k], from, out);
        return;
    case BN_RX_REPEAT: {
        parts = bn_rx_parts(m->rx, re, &np);
        uint32_t min, max;
        bn_rx_bounds(m->rx, re, &min, &max);
        uint64_t *cur = bits_new(m), *seen = bits_new(m);
        bits_or(m, cur, from);
        if (min == 0) bits_or(m, out, from);
        for (uint32_t t = 1; t <= max && bits_any(m, cur); t++) {
            uint64_t *next = bits_new(m);
            rx_ends_from(m, parts[0], cur, next);
            free(cur);
            cur = next;
            if (t >= min) {
                int stale = bits_subset(m, cur, seen);
                bits_or(m, out, cur);
                bits_or(m, seen, cur);
                if (stale) break;
            }
        }
        free(cur);
        free(seen);
        return;
    }
    }
}

/* out |= the ends of x from every start in from. */
static void ends_from(gmatch *m, bn_gx x, const uint64_t *from, uint64_t *out) {
    for (size_t i = 0; i <= m->n; i++)
        if (bit(from, i)) ends(m, x, i, out);
}

static void ends(gmatch *m, bn_gx x, size_t i, uint64_t *out) {
    size_t np;
    switch (bn_gb_kind(m->gb, x)) {
    case BN_GX_TERM: {
        uint64_t *from = bits_new(m);
        set_bit(from, i);
        rx_ends_from(m, bn_gb_term_rx(m->gb, x), from, out);
        free(from);
        return;
    }
    case BN_GX_REF: {
        int32_t r = bn_gb_ref_rule(m->gb, x);
        size_t slot = (size_t)r * (m->n + 1) + i;
        if (m->state[slot] == 1) return; /* left recursion: not for this matcher */
        if (m->state[slot] == 0) {
            m->state[slot] = 1;
            uint64_t *e = bits_new(m);
            ends(m, bn_gb_body(m->gb, r), i, e);
            memcpy(m->memo + slot * m->words, e, m->words * sizeof *e);
            free(e);
            m->state[slot] = 2;
        }
        bits_or(m, out, m->memo + slot * m->words);
        return;
    }
    case BN_GX_SEQ: {
        const bn_gx *parts = bn_gb_parts(m->gb, x, &np);
        uint64_t *cur = bits_new(m);
        set_bit(cur, i);
        for (size_t k = 0; k < np && bits_any(m, cur); k++) {
            uint64_t *next = bits_new(m);
            ends_from(m, parts[k], cur, next);
            free(cur);
            cur = next;
        }
        bits_or(m, out, cur);
        free(cur);
        return;
    }
    case BN_GX_ALT: {
        const bn_gx *parts = bn_gb_parts(m->gb, x, &np);
        for (size_t k = 0; k < np; k++) ends(m, parts[k], i, out);
        return;
    }
    case BN_GX_REPEAT: {
        const bn_gx *parts = bn_gb_parts(m->gb, x, &np);
        uint32_t min, max;
        bn_gb_bounds(m->gb, x, &min, &max);
        uint64_t *cur = bits_new(m), *seen = bits_new(m);
        set_bit(cur, i);
        if (min == 0) set_bit(out, i);
        for (uint32_t t = 1; t <= max && bits_any(m, cur); t++) {
            uint64_t *next = bits_new(m);
            ends_from(m, parts[0], cur, next);
            free(cur);
            cur = next;
            if (t >= min) {
                int stale = bits_subset(m, cur, seen);
                bits_or(m, out, cur);
                bits_or(m, seen, cur);
                if (stale) break;
            }
        }
        free(cur);
        free(seen);
        return;
    }
    }
}

static int gb_accepts(bn_gb *gb, const char *s, size_t n) {
    gmatch m = {gb, bn_gb_rx(gb), s, n, (n + 1 + 63) / 64, NULL, NULL};
    size_t slots = bn_gb_n_rules(gb) * (n + 1);
    m.memo = calloc(slots * m.words, sizeof(uint64_t));
    m.state = calloc(slots, 1);
    uint64_t *e = bits_new(&m);
    ends(&m, bn_gb_body(gb, bn_gb_start(gb)), 0, e);
    int ok = bit(e, n);
    free(e);
    free(m.memo);
    free(m.state);
    return ok;
}

/* Whether re matches all of s[0..n). */
static int rx_accepts(bn_rx *rx, bn_rxid re, const char *s, size_t n) {
    gmatch m = {NULL, rx, s, n, (n + 1 + 63) / 64, NULL, NULL};
    uint64_t *from = bits_new(&m), *out = bits_new(&m);
    set_bit(from, 0);
    rx_ends_from(&m, re, from, out);
    int ok = bit(out, n);
    free(from);
    free(out);
    return ok;
}

/* ---- GBNF ---- */

static int parse_gbnf(bn_gb **gb, const char *text, bn_err *err) {
    *gb = bn_gb_new(NULL);
    memset(err, 0, sizeof *err);
    return bn_gbnf_parse(*gb, text, strlen(text), NULL, err);
}

static int accepts(const char *grammar, const char *s) {
    bn_gb *gb;
    bn_err err;
    int ok = parse_gbnf(&gb, grammar, &err);
    CHECK(ok, "grammar refused: %s\n%s", err.msg, grammar);
    int r = ok && gb_accepts(gb, s, strlen(s));
    bn_gb_free(gb);
    return r;
}

typedef struct {
    const char *grammar;
    const char *message;
} gbnf_error_case;

static const gbnf_error_case gbnf_errors[] = {
    {"", "grammar has no rule 'root'"},
    {"main ::= \"a\"\n", "grammar has no rule 'root'"},
    {"root ::= a\n", "line 1, column 10: rule 'a' is used but never defined"},
    {"root ::= \"x\" b\n\nb ::= c | \"y\"\n", "line 3, column 7: rule 'c' is used but never defined"},
    {"root ::= \"a\"\nroot ::= \"b\"\n", "line 2, column 1: rule 'root' is already defined at line 1, column 1"},
    {"root ::= \"a\n", "line 1, column 10: unterminated string literal"},
    {"root ::= [a-z\n", "line 1, column 10: unterminated character class"},
    {"root ::= (\"a\" | \"b\"\n", "line 2, column 1: expected ')'"},
    {"root ::= \"a\")\n", "line 1, column 13: ')' without a matching '('"},
    {"root ::= * \"a\"\n", "line 1, column 10: '*' has nothing before it to repeat"},
    {"root = \"a\"\n", "line 1, column 6: expected '::=' after the rule name 'root'"},
    {"root ::= \"\\q\"\n", "line 1, column 11: unknown escape"},
    {"root ::= \"\\x4\"\n", "line 1, column 11: '\\x' needs exactly 2 hex digits"},
    {"root ::= \"\\U00110000\"\n", "beyond the last Unicode code point"},
    {"root ::= \"\\uD800\"\n", "surrogate"},
    {"root ::= \"a\"{10001}\n", "line 1, column 13: repetition count 10001 is over the limit of 10000"},
    {"root ::= (\"a\"{200}){100}\n", "nested repetitions repeat an item 20000 times"},
    {"root ::= \"a\"{3,2}\n", "minimum above its maximum"},
    {"root ::= \"a\"{x}\n", "expected a repetition count"},
    {"root ::= <[1000]>\n", "line 1, column 10: token references"},
    {"root ::= !<think>\n", "token references"},
    {"root ::= \"a\" @\n", "line 1, column 14: unexpected '@' in the rule 'root'"},
    {"| \"a\"\n", "line 1, column 1: expected a rule name"},
    {"root ::= \"\xc3\xa9\" \"\xff\"\n", "line 1, column 15: invalid UTF-8"},
    {"root ::= x\n  # comment\n  y\n", "line 1, column 10: rule 'x' is used"},
};

typedef struct {
    const char *grammar;
    const char *accept[8];
    const char *reject[8];
} gbnf_case;

static const gbnf_case gbnf_cases[] = {
    /* Alternatives continue on lines that start with '|' (our leniency) and after a trailing '|'. */
    {"root ::= \"a\"\n  | \"b\" |\n  \"c\"\nother ::= \"z\"\n", {"a", "b", "c"}, {"z", ""}},
    /* An empty alternative, as llama.cpp allows. */
    {"root ::= \"x\" |\n", {"x", ""}, {"y"}},
    {"root ::= ( \"x\" | )\n", {"x", ""}, {"y"}},
    /* Newlines inside parentheses, comments everywhere. */
    {"# head\nroot ::= ( # c1\n \"a\" # c2\n \"b\"\n) # c3\n", {"ab"}, {"a"}},
    /* Repetitions. */
    {"root ::= \"a\"{2} \"b\"{1,} \"c\"{0,2} \"d\"{,1} \"e\"{ 1 , 2 }\n", {"aabe", "aabbbccdee"}, {"abe", "aabcccde"}},
    {"root ::= (\"ab\" \"c\"?)* \"d\"+\n", {"d", "abcabddd"}, {"", "abb"}},
    {"root ::= \"x\"*?\n", {"", "xxx"}, {"y"}},
    /* Escapes and classes. */
    {"root ::= \"\\x41\\u00e9\\U0001F600\\t\\r\\n\\\\\\\"\\[\\]\\-\"\n", {"A\xc3\xa9\xf0\x9f\x98\x80\t\r\n\\\"[]-"}, {"A"}},
    {"root ::= [^\"\\\\] [a-c\\-] [\\]] []? [^]\n", {"xa]q", "\xc3\xa9-]\n"}, {"\"a]q", "xd]q"}},
    {"root ::= [z-a] | \"ok\"\n", {"ok"}, {"z", "a"}},
    {"root ::= . .\n", {"ab", "\xe4\xb8\x96\n"}, {"a", "abc"}},
    /* Rule names with digits, '-' and '_'; a name may start with a digit. */
    {"root ::= 1st-rule_b\n1st-rule_b ::= \"ok\"\n", {"ok"}, {""}},
    /* Left recursion is a grammar like any other (only the test matcher cannot run it). */
    {"root ::= \"(\" root \")\" | \"\"\n", {"", "(())"}, {"(()"}},
    /* CRLF line ends. */
    {"root ::= a\r\na ::= \"x\"\r\n", {"x"}, {"\r"}},
    /* A body may start on the next line; an empty body is the empty string. */
    {"root ::=\n  a\na ::=\nb ::= \"b\"\n", {""}, {"b"}},
    /* Literal with a raw newline inside, as llama.cpp reads it. */
    {"root ::= \"a\nb\"\n", {"a\nb"}, {"ab"}},
};

static void test_gbnf_cases(void) {
    for (size_t i = 0; i < sizeof gbnf_errors / sizeof gbnf_errors[0]; i++) {
        bn_gb *gb;
        bn_err err;
        int ok = parse_gbnf(&gb, gbnf_errors[i].grammar, &err);
        CHECK(!ok && strstr(err.msg, gbnf_errors[i].message), "grammar %s: expected an error with \"%s\", got %s \"%s\"",
              gbnf_errors[i].grammar, gbnf_errors[i].message, ok ? "success" : "error", err.msg);
        bn_gb_free(gb);
    }
    for (size_t i = 0; i < sizeof gbnf_cases / sizeof gbnf_cases[0]; i++) {
        const gbnf_case *c = &gbnf_cases[i];
        for (int k = 0; k < 8 && c->accept[k]; k++)
            CHECK(accepts(c->grammar, c->accept[k]), "grammar %s should accept \"%s\"", c->grammar, c->accept[k]);
        for (int k = 0; k < 8 && c->reject[k]; k++)
            CHECK(!accepts(c->grammar, c->reject[k]), "grammar %s should reject \"%s\"", c->grammar, c->reject[k]);
    }
    /* Parentheses nested past the parser's depth limit. */
    char deep[1024] = "root ::= ";
    for (int k = 0; k < 201; k++) strcat(deep, "(");
    strcat(deep, "\"a\"");
    for (int k = 0; k < 201; k++) strcat(deep, ")");
    bn_gb *dgb;
    bn_err derr;
    CHECK(!parse_gbnf(&dgb, deep, &derr) && strstr(derr.msg, "line 1, column 210: parentheses nested deeper than 200"),
          "got \"%s\"", derr.msg);
    bn_gb_free(dgb);
    /* A root other than "root". */
    bn_gb *gb = bn_gb_new(NULL);
    bn_err err = {0};
    const char *g = "start ::= \"s\"\n";
    CHECK(bn_gbnf_parse(gb, g, strlen(g), "start", &err), "%s", err.msg);
    CHECK(gb_accepts(gb, "s", 1), "root 'start'");
    bn_gb_free(gb);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

/* The llama.cpp grammars parse and match their examples. */
static void test_gbnf_fixtures(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/examples.json", dir);
    char *text = read_file(path, NULL);
    CHECK(text, "cannot read %s", path);
    if (!text) return;
    cJSON *all = cJSON_Parse(text);
    free(text);
    CHECK(all, "%s is not JSON", path);
    int n_grammars = 0, n_examples = 0;
    for (cJSON *entry = all ? all->child : NULL; entry; entry = entry->next) {
        snprintf(path, sizeof path, "%s/%s", dir, entry->string);
        size_t len;
        char *g = read_file(path, &len);
        CHECK(g, "cannot read %s", path);
        if (!g) continue;
        bn_gb *gb = bn_gb_new(NULL);
        bn_err err = {0};
        int ok = bn_gbnf_parse(gb, g, len, NULL, &err);
        CHECK(ok, "%s: %s", entry->string, err.msg);
        n_grammars++;
        for (int want = 1; ok && want >= 0; want--) {
            cJSON *list = cJSON_GetObjectItem(entry, want ? "accept" : "reject");
            for (cJSON *s = list ? list->child : NULL; s; s = s->next) {
                int got = gb_accepts(gb, s->valuestring, strlen(s->valuestring));
                CHECK(got == want, "%s should %s \"%s\"", entry->string, want ? "accept" : "reject", s->valuestring);
                n_examples++;
            }
        }
        bn_gb_free(gb);
        free(g);
    }
    cJSON_Delete(all);
    printf("gbnf fixtures: %d grammars, %d examples\n", n_grammars, n_examples);
}

/* ---- the patterns of the JSON Schema dev sample ---- */

typedef struct {
    int total, ok;
} tally;

static void try_pattern(const char *pattern, const char *where, tally *t) {
    bn_rx *rx = bn_rx_new(0);
    bn_err err = {0};
    bn_rxid re;
    t->total++;
    if (bn_ecma_regex(rx, pattern, strlen(pattern), BN_ECMA_SEARCH, BN_ECMA_JSON_STRING, 0, &re, &err))
        t->ok++;
    else
        printf("  refused (%s) /%s/: %s\n", where, pattern, err.msg);
    bn_rx_free(rx);
}

static void walk_schema(const cJSON *x, tally *t) {
    if (cJSON_IsObject(x)) {
        for (const cJSON *k = x->child; k; k = k->next) {
            if (!strcmp(k->string, "pattern") && cJSON_IsString(k)) try_pattern(k->valuestring, "pattern", t);
            if (!strcmp(k->string, "patternProperties") && cJSON_IsObject(k))
                for (const cJSON *p = k->child; p; p = p->next) try_pattern(p->string, "patternProperties", t);
            walk_schema(k, t);
        }
    } else if (cJSON_IsArray(x)) {
        for (const cJSON *k = x->child; k; k = k->next) walk_schema(k, t);
    }
}

static void test_dev_patterns(const char *path) {
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        printf("dev sample %s not found: skipped\n", path);
        return;
    }
    tally t = {0, 0};
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *o = cJSON_Parse(line);
        cJSON *schema_text = cJSON_GetObjectItem(o, "schema");
        cJSON *schema = cJSON_IsString(schema_text) ? cJSON_Parse(schema_text->valuestring) : NULL;
        walk_schema(schema, &t);
        cJSON_Delete(schema);
        cJSON_Delete(o);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    printf("dev sample patterns: %d of %d compile\n", t.ok, t.total);
}

/* Lines "pattern \t text \t expected" (a search, raw spelling) from a
 * reference engine. */
static void test_diff(const char *path, bn_ecma_spelling spelling) {
    size_t len;
    char *text = read_file(path, &len);
    CHECK(text, "cannot read %s", path);
    if (!text) return;
    int n = 0, bad = 0, refused = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (t2) {
            *t1 = *t2 = 0;
            int want = t2[1] == '1';
            bn_rx *rx = bn_rx_new(0);
            bn_err err = {0};
            bn_rxid re;
            if (bn_ecma_regex(rx, line, strlen(line), BN_ECMA_SEARCH, spelling, 0, &re, &err)) {
                int got = rx_accepts(rx, re, t1 + 1, strlen(t1 + 1));
                /* Now and then, regex.h's own reference matcher too. */
                if (n % 25 == 0)
                    CHECK(bn_rx_matches(rx, re, t1 + 1, strlen(t1 + 1)) == got, "matchers disagree on /%s/ \"%s\"",
                          line, t1 + 1);
                if (got != want) {
                    bad++;
                    if (bad <= 20) printf("  /%s/ on \"%s\": got %d, reference %d\n", line, t1 + 1, got, want);
                }
                n++;
            } else {
                refused++;
            }
            bn_rx_free(rx);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    printf("diff: %d checks, %d disagree, %d refused\n", n, bad, refused);
    CHECK(bad == 0, "%d disagreements", bad);
}

int main(int argc, char **argv) {
    if (argc == 3 && (!strcmp(argv[1], "--diff") || !strcmp(argv[1], "--diff-json"))) {
        test_diff(argv[2], strcmp(argv[1], "--diff") ? BN_ECMA_JSON_STRING : BN_ECMA_RAW);
        return failures ? 1 : 0;
    }
    test_ecma();
    test_gbnf_cases();
    test_gbnf_fixtures(argc > 1 ? argv[1] : "spec/data/gbnf");
    test_dev_patterns(argc > 2 ? argv[2] : "../shared/structured/maskbench-dev.jsonl");
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("grammar front ends: all tests passed\n");
    return 0;
}
