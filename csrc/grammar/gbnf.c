/* gbnf.c: llama.cpp's grammar format (GBNF) into a grammar builder.
 *
 * The syntax follows llama.cpp's parser (src/llama-grammar.cpp), so every
 * grammar it reads reads here with the same meaning, with four choices of
 * our own:
 *  - a body continues over a newline when the next line does not start a
 *    new `name ::=` (llama.cpp ends it at the newline unless inside
 *    parentheses or after '|', and refuses what follows), so a rule may
 *    also be written with its alternatives on lines that start with '|';
 *  - a rule defined twice is an error (llama.cpp silently keeps the last);
 *  - names may contain '_' as llama.cpp's documentation says (its parser
 *    takes letters, digits and '-' only), and `{,n}` means `{0,n}`;
 *  - repetition bounds over GBNF_MAX_REPEAT are an error (llama.cpp turns
 *    a maximum over 2000 into "unbounded").
 * Token references (`<[1000]>`, `<think>`, `!<...>`) are refused: this
 * engine constrains text, which does not say which tokens spelled it. */
#include "grammar/gbnf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/unicode.h"

/* Most times one item may be repeated, counting nested repetitions
 * ((x{100}){100} repeats x 10000 times): bounds the automaton. */
#define GBNF_MAX_REPEAT 10000u
/* Deepest nesting of parentheses (the parser recurses on them). */
#define GBNF_MAX_DEPTH 200
#define NO_POS ((size_t)-1)

typedef struct {
    bn_gb *gb;
    bn_rx *rx;
    const char *text;
    size_t n, pos;
    bn_err *err;
    int failed; /* a message is set: unwind */
    int depth;
    /* Per rule id: where it is first used and where it is defined. */
    size_t *first_use, *defined_at;
    size_t n_slots;
} gbnf_parser;

/* A growable list of the items of a sequence or the alternatives of a
 * group, with how many times each repeats its innermost item. */
typedef struct {
    bn_gx *x;
    uint32_t *copies;
    size_t n, cap;
} item_list;

static void line_col(const char *text, size_t at, size_t *line, size_t *col) {
    size_t l = 1, c = 1;
    for (size_t i = 0; i < at; i++) {
        unsigned char b = (unsigned char)text[i];
        if (b == '\n') {
            l++;
            c = 1;
        } else if ((b & 0xC0) != 0x80) {
            c++; /* columns count characters, not bytes */
        }
    }
    *line = l;
    *col = c;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static bn_gx fail_at(gbnf_parser *p, size_t at, const char *fmt, ...) {
    if (!p->failed) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        size_t line, col;
        line_col(p->text, at, &line, &col);
        bn_errf(p->err, "line %zu, column %zu: %s", line, col, msg);
        p->failed = 1;
    }
    return BN_GX_ERROR;
}

/* The builder's budget ran out (its constructors returned an error). */
static bn_gx fail_budget(gbnf_parser *p) {
    const char *why = bn_gb_failed(p->gb);
    if (!why) why = bn_rx_failed(p->rx);
    return fail_at(p, p->pos, "grammar too large: %s", why ? why : "out of memory");
}

/* What stands at pos, for messages. */
static void describe(const gbnf_parser *p, size_t at, char out[32]) {
    if (at >= p->n) {
        snprintf(out, 32, "end of input");
        return;
    }
    unsigned char c = (unsigned char)p->text[at];
    if (c == '\n' || c == '\r')
        snprintf(out, 32, "end of line");
    else if (c >= 0x21 && c < 0x7F)
        snprintf(out, 32, "'%c'", c);
    else if (c == ' ' || c == '\t')
        snprintf(out, 32, "whitespace");
    else {
        uint32_t cp;
        bn_utf8_decode((const uint8_t *)p->text + at, p->n - at, &cp);
        if (cp >= BN_UC_BAD_BYTE)
            snprintf(out, 32, "byte 0x%02X", c);
        else
            snprintf(out, 32, "U+%04X", (unsigned)cp);
    }
}

static int item_push(item_list *l, bn_gx x, uint32_t copies) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        bn_gx *nx = realloc(l->x, cap * sizeof *nx);
        if (!nx) return 0;
        l->x = nx;
        uint32_t *nc = realloc(l->copies, cap * sizeof *nc);
        if (!nc) return 0;
        l->copies = nc;
        l->cap = cap;
    }
    l->x[l->n] = x;
    l->copies[l->n] = copies;
    l->n++;
    return 1;
}

static void item_free(item_list *l) {
    free(l->x);
    free(l->copies);
}

static int is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int at_char(const gbnf_parser *p, size_t at, char c) { return at < p->n && p->text[at] == c; }

/* Spaces, tabs and comments; newlines too when newline_ok. */
static size_t skip_space(const gbnf_parser *p, size_t at, int newline_ok) {
    while (at < p->n) {
        char c = p->text[at];
        if (c == ' ' || c == '\t' || (newline_ok && (c == '\r' || c == '\n'))) {
            at++;
        } else if (c == '#') {
            while (at < p->n && p->text[at] != '\r' && p->text[at] != '\n') at++;
        } else {
            break;
        }
    }
    return at;
}

/* Whether a rule definition `name ::=` starts at at. */
static int starts_rule(const gbnf_parser *p, size_t at) {
    size_t i = at;
    while (i < p->n && is_name_char(p->text[i])) i++;
    if (i == at) return 0;
    i = skip_space(p, i, 0);
    return i + 3 <= p->n && memcmp(p->text + i, "::=", 3) == 0;
}

/* Whitespace inside a body: newlines always inside parentheses; at the top
 * level only when the body goes on (the next line does not start a rule). */
static void skip_body_space(gbnf_parser *p, int nested) {
    size_t at = skip_space(p, p->pos, 0);
    if (nested) {
        p->pos = skip_space(p, at, 1);
        return;
    }
    if (at < p->n && (p->text[at] == '\n' || p->text[at] == '\r')) {
        size_t next = skip_space(p, at, 1);
        if (next < p->n && !starts_rule(p, next)) at = next;
    }
    p->pos = at;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class at p->pos (an escape or a UTF-8
 * sequence) into *cp. 0 on error (message set). */
static int parse_char(gbnf_parser *p, uint32_t *cp) {
    size_t start = p->pos;
    const char *t = p->text;
    if (t[start] != '\\') {
        size_t len = bn_utf8_decode((const uint8_t *)t + start, p->n - start, cp);
        if (*cp >= BN_UC_BAD_BYTE) {
            fail_at(p, start, "invalid UTF-8 (byte 0x%02X)", (unsigned char)t[start]);
            return 0;
        }
        p->pos += len;
        return 1;
    }
    if (start + 1 >= p->n) {
        fail_at(p, start, "'\\' at end of input");
        return 0;
    }
    char e = t[start + 1];
    int digits = 0;
    switch (e) {
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    case 't': *cp = '\t'; break;
    case 'r': *cp = '\r'; break;
    case 'n': *cp = '\n'; break;
    case '\\': case '"': case '[': case ']': case '-': *cp = (uint32_t)e; break;
    default: {
        char what[32];
        describe(p, start + 1, what);
        fail_at(p, start, "unknown escape '\\' followed by %s (known: \\n \\r \\t \\\\ \\\" \\[ \\] \\- \\xHH "
                          "\\uHHHH \\UHHHHHHHH)", what);
        return 0;
    }
    }
    p->pos = start + 2;
    if (!digits) return 1;
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = p->pos < p->n ? hex_value(t[p->pos]) : -1;
        if (h < 0) {
            fail_at(p, start, "'\\%c' needs exactly %d hex digits", e, digits);
            return 0;
        }
        v = v * 16 + (uint32_t)h;
        p->pos++;
    }
    if (v > 0x10FFFF) {
        fail_at(p, start, "U+%X is beyond the last Unicode code point U+10FFFF", (unsigned)v);
        return 0;
    }
    *cp = v;
    return 1;
}

/* A terminal, or the failure of the arena that should have made it. */
static bn_gx term(gbnf_parser *p, bn_rxid re) {
    if (re == BN_RX_ERROR) return fail_budget(p);
    return bn_gb_term(p->gb, re);
}

/* "..." at p->pos. */
static bn_gx parse_literal(gbnf_parser *p) {
    size_t open = p->pos++;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (p->pos >= p->n) {
            free(buf);
            return fail_at(p, open, "unterminated string literal");
        }
        if (p->text[p->pos] == '"') break;
        size_t at = p->pos;
        uint32_t cp;
        if (!parse_char(p, &cp)) {
            free(buf);
            return BN_GX_ERROR;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            free(buf);
            return fail_at(p, at, "U+%04X is a surrogate, not a character", (unsigned)cp);
        }
        if (len + 4 > cap) {
            cap = cap ? cap * 2 : 64;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return fail_at(p, at, "out of memory");
            }
            buf = nb;
        }
        len += bn_utf8_encode(cp, buf + len);
    }
    p->pos++;
    bn_gx x = term(p, bn_rx_literal(p->rx, buf ? buf : "", len));
    free(buf);
    return x;
}

/* [...] or [^...] at p->pos. A range written backwards matches nothing,
 * as in llama.cpp. */
static bn_gx parse_class(gbnf_parser *p) {
    size_t open = p->pos++;
    int negate = 0;
    if (at_char(p, p->pos, '^')) {
        negate = 1;
        p->pos++;
    }
    uint32_t (*ranges)[2] = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (p->pos >= p->n) {
            free(ranges);
            return fail_at(p, open, "unterminated character class");
        }
        if (p->text[p->pos] == ']') break;
        uint32_t lo, hi;
        if (!parse_char(p, &lo)) {
            free(ranges);
            return BN_GX_ERROR;
        }
        hi = lo;
        if (at_char(p, p->pos, '-') && p->pos + 1 < p->n && p->text[p->pos + 1] != ']') {
            p->pos++;
            if (!parse_char(p, &hi)) {
                free(ranges);
                return BN_GX_ERROR;
            }
        }
        if (lo > hi) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t (*nr)[2] = realloc(ranges, cap * sizeof *nr);
            if (!nr) {
                free(ranges);
                return fail_at(p, open, "out of memory");
            }
            ranges = nr;
        }
        ranges[n][0] = lo;
        ranges[n][1] = hi;
        n++;
    }
    p->pos++;
    bn_gx x = term(p, bn_rx_cp_class(p->rx, (const uint32_t (*)[2])ranges, n, negate));
    free(ranges);
    return x;
}

/* Remembers where rule is first used or defined (for messages). */
static int note_rule(gbnf_parser *p, int32_t rule, size_t at, int defining) {
    if ((size_t)rule >= p->n_slots) {
        size_t slots = p->n_slots ? p->n_slots : 64;
        while (slots <= (size_t)rule) slots *= 2;
        size_t *fu = realloc(p->first_use, slots * sizeof *fu);
        if (!fu) return 0;
        p->first_use = fu;
        size_t *da = realloc(p->defined_at, slots * sizeof *da);
        if (!da) return 0;
        p->defined_at = da;
        for (size_t i = p->n_slots; i < slots; i++) fu[i] = da[i] = NO_POS;
        p->n_slots = slots;
    }
    size_t *slot = defining ? &p->defined_at[rule] : &p->first_use[rule];
    if (*slot == NO_POS) *slot = at;
    return 1;
}

static size_t parse_name(const gbnf_parser *p, size_t at) {
    while (at < p->n && is_name_char(p->text[at])) at++;
    return at;
}

/* The rule named text[start..end), used there. */
static int32_t use_rule(gbnf_parser *p, size_t start, size_t end) {
    int32_t rule = bn_gb_rule(p->gb, p->text + start, end - start);
    if (rule < 0) {
        fail_budget(p);
        return -1;
    }
    if (!note_rule(p, rule, start, 0)) {
        fail_at(p, start, "out of memory");
        return -1;
    }
    return rule;
}

/* A decimal count at p->pos (saturating, so huge numbers stay huge). */
static int parse_count(gbnf_parser *p, uint32_t *out) {
    if (p->pos >= p->n || p->text[p->pos] < '0' || p->text[p->pos] > '9') return 0;
    uint64_t v = 0;
    while (p->pos < p->n && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') {
        v = v * 10 + (uint64_t)(p->text[p->pos] - '0');
        if (v > UINT32_MAX - 1) v = UINT32_MAX - 1;
        p->pos++;
    }
    *out = (uint32_t)v;
    return 1;
}

/* The bounds of {m}, {m,}, {m,n} or {,n} at p->pos (spaces allowed inside
 * the braces, as llama.cpp allows them). */
static int parse_braces(gbnf_parser *p, uint32_t *min, uint32_t *max) {
    size_t open = p->pos;
    p->pos = skip_space(p, p->pos + 1, 0);
    int has_min = parse_count(p, min);
    if (!has_min) *min = 0;
    p->pos = skip_space(p, p->pos, 0);
    if (has_min && at_char(p, p->pos, '}')) {
        *max = *min;
    } else if (at_char(p, p->pos, ',')) {
        p->pos = skip_space(p, p->pos + 1, 0);
        if (!parse_count(p, max)) {
            if (!has_min) {
                fail_at(p, open, "'{,}' needs a bound");
                return 0;
            }
            *max = BN_RX_INF;
        }
        p->pos = skip_space(p, p->pos, 0);
        if (!at_char(p, p->pos, '}')) {
            char what[32];
            describe(p, p->pos, what);
            fail_at(p, p->pos, "expected '}' to close the repetition, found %s", what);
            return 0;
        }
    } else {
        char what[32];
        describe(p, p->pos, what);
        fail_at(p, p->pos, "expected a repetition count like {2}, {2,}, {2,5} or {,5}, found %s", what);
        return 0;
    }
    p->pos++;
    if (*max != BN_RX_INF && *min > *max) {
        fail_at(p, open, "repetition {%u,%u} has its minimum above its maximum", (unsigned)*min,
                (unsigned)*max);
        return 0;
    }
    uint32_t big = *max != BN_RX_INF ? *max : *min;
    if (big > GBNF_MAX_REPEAT) {
        fail_at(p, open, "repetition count %u is over the limit of %u", (unsigned)big, GBNF_MAX_REPEAT);
        return 0;
    }
    return 1;
}

static bn_gx parse_alternatives(gbnf_parser *p, int nested, uint32_t *copies);

/* A sequence of items with their postfix operators, up to '|', ')', the
 * end of the rule or something that cannot start an item. */
static bn_gx parse_sequence(gbnf_parser *p, int nested, uint32_t *copies) {
    item_list items = {0};
    bn_gx result = BN_GX_ERROR;
    while (p->pos < p->n && !p->failed) {
        size_t at = p->pos;
        char c = p->text[at];
        bn_gx x = BN_GX_ERROR;
        uint32_t x_copies = 1;
        if (c == '"') {
            x = parse_literal(p);
        } else if (c == '[') {
            x = parse_class(p);
        } else if (c == '.') {
            static const uint32_t all[1][2] = {{0, 0x10FFFF}};
            p->pos++;
            x = term(p, bn_rx_cp_class(p->rx, all, 1, 0));
        } else if (c == '<' || c == '!') {
            fail_at(p, at, "token references (<[id]>, <token>, !<...>) are not supported: "
                           "grammars here constrain text, not token ids");
        } else if (is_name_char(c)) {
            size_t end = parse_name(p, at);
            int32_t rule = use_rule(p, at, end);
            p->pos = end;
            if (rule >= 0) x = bn_gb_ref(p->gb, rule);
        } else if (c == '(') {
            if (p->depth >= GBNF_MAX_DEPTH) {
                fail_at(p, at, "parentheses nested deeper than %d", GBNF_MAX_DEPTH);
                break;
            }
            p->depth++;
            p->pos = skip_space(p, at + 1, 1);
            x = parse_alternatives(p, 1, &x_copies);
            p->depth--;
            if (p->failed) break;
            if (!at_char(p, p->pos, ')')) {
                char what[32];
                describe(p, p->pos, what);
                size_t line, col;
                line_col(p->text, at, &line, &col);
                fail_at(p, p->pos, "expected ')' to close the '(' of line %zu, column %zu, found %s", line, col,
                        what);
                break;
            }
            p->pos++;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            uint32_t min = 0, max = BN_RX_INF;
            if (c == '{') {
                if (!parse_braces(p, &min, &max)) break;
            } else {
                p->pos++;
                if (c == '+') min = 1;
                if (c == '?') max = 1;
            }
            if (items.n == 0) {
                fail_at(p, at, "'%c' has nothing before it to repeat", c);
                break;
            }
            /* Repetitions stack, as in llama.cpp: x*? and (x{2}){3} are fine. */
            uint32_t times = max != BN_RX_INF ? max : min;
            if (times < 1) times = 1;
            uint64_t total = (uint64_t)items.copies[items.n - 1] * times;
            if (total > GBNF_MAX_REPEAT) {
                fail_at(p, at, "nested repetitions repeat an item %llu times, over the limit of %u",
                        (unsigned long long)total, GBNF_MAX_REPEAT);
                break;
            }
            items.x[items.n - 1] = bn_gb_repeat(p->gb, items.x[items.n - 1], min, max);
            items.copies[items.n - 1] = (uint32_t)total;
            skip_body_space(p, nested);
            continue;
        } else {
            break; /* '|', ')', a newline ending the rule, or an error the caller names */
        }
        if (p->failed) break;
        if (!item_push(&items, x, x_copies)) {
            fail_at(p, at, "out of memory");
            break;
        }
        skip_body_space(p, nested);
    }
    if (!p->failed) {
        uint32_t most = 1;
        for (size_t i = 0; i < items.n; i++)
            if (items.copies[i] > most) most = items.copies[i];
        *copies = most;
        result = items.n == 1 ? items.x[0] : bn_gb_seq(p->gb, items.x, items.n);
    }
    item_free(&items);
    return result;
}

static bn_gx parse_alternatives(gbnf_parser *p, int nested, uint32_t *copies) {
    item_list alts = {0};
    bn_gx result = BN_GX_ERROR;
    for (;;) {
        size_t at = p->pos;
        uint32_t c = 1;
        bn_gx seq = parse_sequence(p, nested, &c);
        if (p->failed) break;
        if (!item_push(&alts, seq, c)) {
            fail_at(p, at, "out of memory");
            break;
        }
        if (!at_char(p, p->pos, '|')) break;
        p->pos++;
        skip_body_space(p, nested);
    }
    if (!p->failed) {
        uint32_t most = 1;
        for (size_t i = 0; i < alts.n; i++)
            if (alts.copies[i] > most) most = alts.copies[i];
        *copies = most;
        result = alts.n == 1 ? alts.x[0] : bn_gb_alt(p->gb, alts.x, alts.n);
    }
    item_free(&alts);
    return result;
}

/* name ::= alternatives, up to the end of its line (or of its last
 * continuation line). */
static void parse_rule(gbnf_parser *p) {
    size_t name_start = p->pos;
    size_t name_end = parse_name(p, name_start);
    if (name_end == name_start) {
        char what[32];
        describe(p, name_start, what);
        fail_at(p, name_start, "expected a rule name (letters, digits, '-', '_'), found %s", what);
        return;
    }
    p->pos = skip_space(p, name_end, 0);
    if (p->pos + 3 > p->n || memcmp(p->text + p->pos, "::=", 3) != 0) {
        char what[32];
        describe(p, p->pos, what);
        fail_at(p, p->pos, "expected '::=' after the rule name '%.*s', found %s", (int)(name_end - name_start),
                p->text + name_start, what);
        return;
    }
    int32_t rule = bn_gb_rule(p->gb, p->text + name_start, name_end - name_start);
    if (rule < 0) {
        fail_budget(p);
        return;
    }
    if (bn_gb_is_defined(p->gb, rule) && (size_t)rule < p->n_slots) {
        size_t line, col;
        line_col(p->text, p->defined_at[rule], &line, &col);
        fail_at(p, name_start, "rule '%.*s' is already defined at line %zu, column %zu", (int)(name_end - name_start),
                p->text + name_start, line, col);
        return;
    }
    if (!note_rule(p, rule, name_start, 1)) {
        fail_at(p, name_start, "out of memory");
        return;
    }
    p->pos += 3;
    skip_body_space(p, 0); /* `a ::=` alone on its line, then `b ::= ...`: a is empty */
    uint32_t copies;
    bn_gx body = parse_alternatives(p, 0, &copies);
    if (p->failed) return;
    if (p->pos < p->n && p->text[p->pos] != '\n' && p->text[p->pos] != '\r') {
        char what[32];
        describe(p, p->pos, what);
        if (p->text[p->pos] == ')')
            fail_at(p, p->pos, "')' without a matching '('");
        else
            fail_at(p, p->pos, "unexpected %s in the rule '%.*s'", what, (int)(name_end - name_start),
                    p->text + name_start);
        return;
    }
    if (body == BN_GX_ERROR) {
        fail_budget(p);
        return;
    }
    bn_err derr = {0};
    if (!bn_gb_define(p->gb, rule, body, &derr)) fail_at(p, name_start, "%s", derr.msg);
}

int bn_gbnf_parse(bn_gb *gb, const char *text, size_t n, const char *root, bn_err *err) {
    gbnf_parser p = {0};
    p.gb = gb;
    p.rx = bn_gb_rx(gb);
    p.text = text ? text : "";
    p.n = text ? n : 0;
    p.err = err;
    if (!root) root = "root";
    bn_gb_set_inline_regular(gb, 1);

    p.pos = skip_space(&p, 0, 1);
    while (p.pos < p.n && !p.failed) {
        parse_rule(&p);
        if (!p.failed) p.pos = skip_space(&p, p.pos, 1);
    }
    if (!p.failed) {
        /* A rule used but never defined: name its first use in the text. */
        size_t first = NO_POS;
        int32_t which = -1;
        size_t n_rules = bn_gb_n_rules(gb);
        for (size_t r = 0; r < n_rules && r < p.n_slots; r++) {
            if (!bn_gb_is_defined(gb, (int32_t)r) && p.first_use[r] < first) {
                first = p.first_use[r];
                which = (int32_t)r;
            }
        }
        if (which >= 0) {
            size_t len;
            const char *name = bn_gb_rule_name(gb, which, &len);
            fail_at(&p, first, "rule '%.*s' is used but never defined", (int)len, name);
        }
    }
    if (!p.failed) {
        int32_t start = bn_gb_rule(gb, root, strlen(root));
        if (start < 0) {
            fail_budget(&p);
        } else if (!bn_gb_is_defined(gb, start)) {
            bn_errf(err, "grammar has no rule '%s'", root);
            p.failed = 1;
        } else {
            bn_gb_set_start(gb, start);
        }
    }
    free(p.first_use);
    free(p.defined_at);
    return !p.failed;
}
