/* json_schema_emit.c: shapes as grammar (json_schema_internal.h).
 *
 * Lexemes follow the builder's rule: a reference to a rule ends a lexeme,
 * adjacent terminals merge. So every string and number value is a
 * reference to a rule shared by all values of the same regex, every object
 * and array is a rule, and the punctuation, whitespace and listed keys
 * between them are terminals that merge: `, "name": ` is one lexeme. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/json_schema_formats.h"
#include "grammar/json_schema_internal.h"
#include "grammar/json_schema_strings.h"

static bn_gx lit(js_ctx *c, const char *s) { return bn_gb_lit(c->gb, s); }

static bn_gx seq(js_ctx *c, const bn_gx *xs, size_t n) { return bn_gb_seq(c->gb, xs, n); }

static bn_gx nothing(js_ctx *c) { return bn_gb_alt(c->gb, NULL, 0); }

static bn_gx empty(js_ctx *c) { return bn_gb_seq(c->gb, NULL, 0); }

/* ws sep ws: the separators between tokens. */
static bn_gx punct(js_ctx *c, const char *p) {
    bn_gx xs[3] = {c->ws, lit(c, p), c->ws};
    return seq(c, xs, 3);
}

static bn_gx define_new(js_ctx *c, const char *hint, bn_gx body) {
    if (body == BN_GX_ERROR) return BN_GX_ERROR;
    int32_t rule = bn_gb_new_rule(c->gb, hint);
    if (rule < 0 || !bn_gb_define(c->gb, rule, body, c->err)) return BN_GX_ERROR;
    return bn_gb_ref(c->gb, rule);
}

/* "[" ws "]" | "[" ws first (ws "," ws rest)* ws "]" and the like. */
static bn_gx bracketed(js_ctx *c, const char *open, const char *close, bn_gx inner, int empty_ok) {
    bn_gx full[5] = {lit(c, open), c->ws, inner, c->ws, lit(c, close)};
    bn_gx bare[3] = {lit(c, open), c->ws, lit(c, close)};
    bn_gx alts[2] = {seq(c, full, 5), empty_ok ? seq(c, bare, 3) : nothing(c)};
    return bn_gb_alt(c->gb, alts, 2);
}

/* ---- any JSON value ---- */

static bn_rxid any_number_rx(js_ctx *c) {
    bn_jbound none = {0};
    return bn_jnum_numbers(c->rx, &none, &none);
}

bn_gx js_any_value(js_ctx *c, int object_only) {
    if (c->any_rule < 0) {
        int32_t value = bn_gb_new_rule(c->gb, "value"), object = bn_gb_new_rule(c->gb, "object");
        int32_t array = bn_gb_new_rule(c->gb, "array");
        if (value < 0 || object < 0 || array < 0) return BN_GX_ERROR;
        bn_gx string = js_rx_rule(c, bn_jstr_quoted(c->rx, bn_jstr_any(c->rx)), "string");
        bn_gx number = js_rx_rule(c, any_number_rx(c), "number");
        bn_gx vref = bn_gb_ref(c->gb, value);
        bn_gx member_parts[3] = {string, punct(c, ":"), vref};
        bn_gx member = seq(c, member_parts, 3);
        bn_gx more_members[2] = {member, bn_gb_repeat(c->gb, bn_gb_seq2(c->gb, punct(c, ","), member), 0, BN_RX_INF)};
        bn_gx more_values[2] = {vref, bn_gb_repeat(c->gb, bn_gb_seq2(c->gb, punct(c, ","), vref), 0, BN_RX_INF)};
        bn_gx values[7] = {bn_gb_ref(c->gb, object), bn_gb_ref(c->gb, array), string, number,
                           lit(c, "true"), lit(c, "false"), lit(c, "null")};
        if (!bn_gb_define(c->gb, object, bracketed(c, "{", "}", seq(c, more_members, 2), 1), c->err) ||
            !bn_gb_define(c->gb, array, bracketed(c, "[", "]", seq(c, more_values, 2), 1), c->err) ||
            !bn_gb_define(c->gb, value, bn_gb_alt(c->gb, values, 7), c->err))
            return BN_GX_ERROR;
        c->any_rule = value;
        c->any_object_rule = object;
    }
    return bn_gb_ref(c->gb, object_only ? c->any_object_rule : c->any_rule);
}

/* ---- literal values (enum, const) ---- */

/* The spelling of a number literal: its exact decimal. Not also 1.0 for
 * 1: draft 4 does not count 1.0 as an integer. */
static bn_rxid number_literal(js_ctx *c, const cJSON *v) {
    bn_jdec d;
    if (!bn_jdec_from_double(v->valuedouble, &d)) return BN_RX_ERROR;
    char buf[2 * BN_JDEC_DIGITS + 4];
    bn_jdec_format(&d, buf);
    return bn_rx_literal(c->rx, buf, strlen(buf));
}

static bn_gx literal(js_ctx *c, const cJSON *v, unsigned depth);

/* Literal strings and numbers go into one rule per kind (one lexeme);
 * other values are spelled with whitespace between their tokens. */
static bn_gx literals(js_ctx *c, const cJSON **vs, uint32_t n, unsigned depth) {
    bn_rxid *strings = js_alloc(c, (n + 1) * sizeof *strings), *numbers = js_alloc(c, (n + 1) * sizeof *numbers);
    bn_gx *alts = js_alloc(c, (n + 2) * sizeof *alts);
    if (!strings || !numbers || !alts) return BN_GX_ERROR;
    uint32_t k = 0, ns = 0, nn = 0;
    for (uint32_t i = 0; i < n; i++) {
        const cJSON *v = vs[i];
        if (cJSON_IsString(v)) {
            size_t len = strlen(v->valuestring);
            if (bn_jstr_utf8_count(v->valuestring, len) < 0)
                return js_fail(c, v, "string is not valid UTF-8"), BN_GX_ERROR;
            strings[ns++] = bn_jstr_literal(c->rx, v->valuestring, len);
        } else if (cJSON_IsNumber(v)) {
            numbers[nn++] = number_literal(c, v);
        } else {
            alts[k++] = literal(c, v, depth);
        }
    }
    /* one alternation each: adding one by one would be quadratic */
    if (ns) alts[k++] = js_rx_rule(c, bn_jstr_quoted(c->rx, bn_rx_alt_n(c->rx, strings, ns)), "string");
    if (nn) alts[k++] = js_rx_rule(c, bn_rx_alt_n(c->rx, numbers, nn), "number");
    return k == 1 ? alts[0] : bn_gb_alt(c->gb, alts, k);
}

static bn_gx literal(js_ctx *c, const cJSON *v, unsigned depth) {
    if (depth > JS_MAX_DEPTH) return js_fail(c, v, "value nested too deeply"), BN_GX_ERROR;
    if (cJSON_IsNull(v)) return lit(c, "null");
    if (cJSON_IsTrue(v)) return lit(c, "true");
    if (cJSON_IsFalse(v)) return lit(c, "false");
    if (cJSON_IsString(v) || cJSON_IsNumber(v)) return literals(c, &v, 1, depth);
    int is_object = cJSON_IsObject(v);
    uint32_t n = (uint32_t)cJSON_GetArraySize(v);
    if (n == 0) return bracketed(c, is_object ? "{" : "[", is_object ? "}" : "]", nothing(c), 1);
    bn_gx *parts = js_alloc(c, (4 * n + 1) * sizeof *parts);
    if (!parts) return BN_GX_ERROR;
    size_t k = 0;
    for (const cJSON *x = v->child; x; x = x->next) {
        if (x != v->child) parts[k++] = punct(c, ",");
        if (is_object) {
            size_t len = strlen(x->string);
            if (bn_jstr_utf8_count(x->string, len) < 0) return js_fail(c, v, "key is not valid UTF-8"), BN_GX_ERROR;
            parts[k++] = bn_gb_term(c->gb, bn_jstr_quoted(c->rx, bn_jstr_literal(c->rx, x->string, len)));
            parts[k++] = punct(c, ":");
        }
        parts[k++] = literal(c, x, depth + 1);
    }
    return bracketed(c, is_object ? "{" : "[", is_object ? "}" : "]", seq(c, parts, k), 0);
}

/* ---- numbers ---- */

static uint64_t gcd(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static bn_rxid number_rx(js_ctx *c, const js_shape *s) {
    unsigned t = s->types & JS_NUM;
    if (t == JS_FRAC) return js_unsupported(c, "not", NULL), BN_RX_ERROR; /* numbers that are not integers */
    int int_only = t == JS_INT;
    uint64_t m = 1;
    for (uint32_t i = 0; i < s->n_multiple_of; i++) {
        double d = s->multiple_of[i];
        if (d == floor(d) && d <= 1e9) {
            uint64_t x = (uint64_t)d;
            m = m / gcd(m, x) * x;
            if (m > 1000000000ull) return js_unsupported(c, "multipleOf", NULL), BN_RX_ERROR;
            continue;
        }
        /* a fraction 1/2^k divides every integer exactly, even in floating point */
        double inv = 1.0 / d;
        int pow2 = inv == floor(inv) && inv <= 1048576.0 && ((uint64_t)inv & ((uint64_t)inv - 1)) == 0;
        if (!pow2) return js_unsupported(c, "multipleOf", NULL), BN_RX_ERROR;
        int_only = 1;
    }
    if (s->n_multiple_of && !int_only) int_only = 1; /* multiples of an integer: written as integers */
    if (m > 1) {
        int ok = 0;
        bn_rxid r = bn_jnum_multiples(c->rx, (uint32_t)m, &s->lo, &s->hi, &ok);
        if (!ok) return js_unsupported(c, "multipleOf", NULL), BN_RX_ERROR;
        return r;
    }
    return int_only ? bn_jnum_integers(c->rx, &s->lo, &s->hi) : bn_jnum_numbers(c->rx, &s->lo, &s->hi);
}

/* ---- strings ---- */

static bn_rxid intersect(js_ctx *c, bn_rxid acc, bn_rxid re) {
    if (acc == BN_RX_ERROR || re == BN_RX_ERROR) return BN_RX_ERROR;
    if (acc == -2) return re; /* nothing yet */
    return bn_jrx_product(c->jrx, acc, re, 1);
}

/* Whether re is C{a,b} where every string of C is one character (as
 * string content spells it). */
static int one_char_repeat(js_ctx *c, bn_rxid re) {
    if (bn_rx_kind_of(c->rx, re) != BN_RX_REPEAT) return 0;
    bn_rxid part = bn_rx_parts(c->rx, re, &(size_t){0})[0];
    bn_rxid beyond = bn_jrx_product(c->jrx, part, c->chars.any, 0);
    return beyond != BN_RX_ERROR && bn_rx_kind_of(c->rx, beyond) == BN_RX_NOTHING;
}

bn_rxid js_string_content(js_ctx *c, const js_shape *s, int superset) {
    const js_branch *b = s->branch;
    int lengths = s->min_len > 0 || s->max_len != BN_RX_INF;
    int n_formats = superset ? 0 : (int)s->n_formats;
    uint32_t n_excluded_strings = 0;
    for (uint32_t i = 0; i < b->n_excluded; i++) n_excluded_strings += cJSON_IsString(b->excluded[i]);
    if (!lengths && !s->n_patterns && !n_formats && !n_excluded_strings && !b->n_not_pattern) return bn_jstr_any(c->rx);
    bn_rxid acc = -2;
    for (uint32_t i = 0; i < s->n_patterns; i++) acc = intersect(c, acc, js_pattern(c, s->patterns[i]));
    for (int i = 0; i < n_formats; i++) acc = intersect(c, acc, js_format(c, s->formats[i]));
    if (acc == -2) acc = bn_jstr_length(c->rx, &c->chars, s->min_len, s->max_len);
    else if (lengths && acc != BN_RX_ERROR && one_char_repeat(c, acc)) {
        /* C{a,b} with C one character (`^[^,"]+$` and its like): the
         * lengths narrow the counts. A product would spell the counts out
         * as nested options, where the lexer sees a new state per
         * character instead of one counted repetition. */
        uint32_t lo, hi;
        bn_rx_bounds(c->rx, acc, &lo, &hi);
        if (s->min_len > lo) lo = s->min_len;
        if (s->max_len < hi) hi = s->max_len;
        acc = bn_rx_repeat(c->rx, bn_rx_parts(c->rx, acc, &(size_t){0})[0], lo, hi);
    } else if (lengths && acc != BN_RX_ERROR) {
        /* the product's states are about the pattern's times the lengths
         * counted: where that passes the budget, allow fewer characters
         * than the schema does (never more), down to 8 */
        long states = bn_jrx_states(c->jrx, acc);
        uint32_t max = s->max_len;
        if (states > 0 && max != BN_RX_INF && (uint64_t)states * (max + 1) > JS_PRODUCT_STATES) {
            uint64_t cap = JS_PRODUCT_STATES / (uint64_t)states;
            max = cap > 0 ? (uint32_t)(cap - 1) : 0;
            if (max < s->min_len || max < 8) states = -1;
        }
        /* kept as an automaton: spelled as an expression, the product of
         * a format with a length of hundreds derives slowly (seconds per
         * character for a uri of up to 255) */
        acc = states < 0 ? BN_RX_ERROR : bn_jrx_intersect_table(c->jrx, acc, bn_jstr_length(c->rx, &c->chars, s->min_len, max));
    }
    if (n_excluded_strings) {
        bn_rxid *out = js_alloc(c, n_excluded_strings * sizeof *out);
        if (!out) return BN_RX_ERROR;
        uint32_t k = 0;
        for (uint32_t i = 0; i < b->n_excluded; i++) {
            const cJSON *v = b->excluded[i];
            if (!cJSON_IsString(v)) continue;
            size_t len = strlen(v->valuestring);
            if (bn_jstr_utf8_count(v->valuestring, len) < 0) continue; /* no such string can be written */
            out[k++] = bn_jstr_literal(c->rx, v->valuestring, len);
        }
        acc = acc == BN_RX_ERROR ? acc : bn_jrx_product(c->jrx, acc, bn_rx_alt_n(c->rx, out, k), 0);
    }
    for (uint32_t i = 0; i < b->n_not_pattern; i++) {
        bn_rxid p = js_pattern(c, b->not_pattern[i]);
        acc = acc == BN_RX_ERROR || p == BN_RX_ERROR ? BN_RX_ERROR : bn_jrx_product(c->jrx, acc, p, 0);
    }
    return acc;
}

/* ---- arrays ---- */

static bn_gx emit_array(js_ctx *c, const js_shape *s) {
    uint32_t min = s->min_items, max = s->max_items, k = s->n_prefix;
    if (s->contains_at) return js_unsupported(c, "contains", s->contains_at), BN_GX_ERROR;
    if (s->unique_at && max > 1) return js_unsupported(c, "uniqueItems", s->unique_at), BN_GX_ERROR;
    if (max == 0) return define_new(c, "array", bracketed(c, "[", "]", nothing(c), 1));
    bn_gx comma = punct(c, ",");
    bn_gx rest_item = BN_GX_ERROR;
    if (max > k) {
        rest_item = js_compile_list(c, s->rest);
        if (rest_item == BN_GX_ERROR) return BN_GX_ERROR;
    }
    /* the items after the first, from the end: beyond the prefix any
     * number of rest items in the bounds, then each prefix position */
    bn_gx tail = empty(c);
    if (max > k) {
        uint32_t lo = min > k ? min - k : 0, hi = max == BN_RX_INF ? BN_RX_INF : max - k;
        if (k == 0) { /* the first item is a rest item too */
            lo = lo ? lo - 1 : 0;
            hi = hi == BN_RX_INF ? hi : hi - 1;
        }
        tail = bn_gb_repeat(c->gb, bn_gb_seq2(c->gb, comma, rest_item), lo, hi);
    }
    bn_gx first = rest_item;
    for (uint32_t i = k; i-- > 0;) {
        if (i >= max) continue;
        bn_gx item = js_compile_list(c, s->prefix[i]);
        if (item == BN_GX_ERROR) return BN_GX_ERROR;
        if (i == 0) {
            first = item;
            break;
        }
        bn_gx step = bn_gb_seq2(c->gb, bn_gb_seq2(c->gb, comma, item), tail);
        tail = i < min ? step : bn_gb_opt(c->gb, step);
    }
    return define_new(c, "array", bracketed(c, "[", "]", bn_gb_seq2(c->gb, first, tail), min == 0));
}

/* ---- objects ---- */

/* The content regex of the names propertyNames allows (canonical). */
static bn_rxid property_names_rx(js_ctx *c, const js_shape *s) {
    bn_err *saved = c->err, scratch = {0};
    c->err = &scratch;
    js_bset set;
    bn_rxid acc = bn_rx_nothing(c->rx);
    if (!js_expand(c, s->property_names, &set)) acc = BN_RX_ERROR;
    for (uint32_t i = 0; acc != BN_RX_ERROR && i < set.n; i++) {
        js_shape n;
        if (!js_shape_of(c, set.v[i], &n)) acc = BN_RX_ERROR;
        else if (!(n.types & JS_STR)) continue;
        else if (n.has_enum) {
            for (uint32_t k = 0; k < n.n_enum; k++) {
                const cJSON *v = n.enum_v[k];
                if (!cJSON_IsString(v) || js_shape_accepts_member(c, &n, v, 1) != 1) continue;
                size_t len = strlen(v->valuestring);
                if (bn_jstr_utf8_count(v->valuestring, len) >= 0)
                    acc = bn_rx_alt(c->rx, acc, bn_jstr_literal(c->rx, v->valuestring, len));
            }
        } else acc = bn_rx_alt(c->rx, acc, js_string_content(c, &n, 0));
    }
    c->err = saved;
    return acc;
}

static bn_gx emit_object(js_ctx *c, const js_shape *s) {
    uint32_t m = 0, n_required = 0;
    int32_t first_required = -1;
    js_prop *props = js_alloc(c, (s->n_props + 1) * sizeof *props);
    if (!props) return BN_GX_ERROR;
    for (uint32_t i = 0; i < s->n_props; i++) {
        if (s->props[i].forbidden) continue;
        if (s->property_names.n) {
            /* a name propertyNames refuses cannot appear */
            int allowed = js_name_allowed(c, s, s->props[i].name.s);
            if (allowed < 0) return js_unsupported(c, "propertyNames", s->property_names.v[0]), BN_GX_ERROR;
            if (!allowed) {
                if (s->props[i].required) return nothing(c);
                continue;
            }
        }
        if (s->props[i].required) {
            if (first_required < 0) first_required = (int32_t)m;
            n_required++;
        }
        props[m++] = s->props[i];
    }
    js_extra *extras = s->extras;
    uint32_t n_extras = s->n_extras;
    if (s->property_names.n && n_extras) {
        bn_rxid names = property_names_rx(c, s);
        extras = js_alloc(c, n_extras * sizeof *extras);
        if (names == BN_RX_ERROR || !extras) return js_unsupported(c, "propertyNames", s->property_names.v[0]), BN_GX_ERROR;
        uint32_t k = 0;
        for (uint32_t i = 0; i < n_extras; i++) {
            bn_rxid key = bn_jrx_product(c->jrx, s->extras[i].key, names, 1);
            if (key == BN_RX_ERROR) return js_unsupported(c, "propertyNames", s->property_names.v[0]), BN_GX_ERROR;
            if (bn_rx_kind_of(c->rx, key) != BN_RX_NOTHING) extras[k++] = (js_extra){key, s->extras[i].value};
        }
        n_extras = k;
    }
    bn_gx colon = punct(c, ":"), comma = punct(c, ",");
    if (m == 0 && (s->min_props > 1 || s->max_props != BN_RX_INF)) {
        /* a map: only additional members, so min/maxProperties count them */
        bn_gx *alts = js_alloc(c, (n_extras + 1) * sizeof *alts);
        if (!alts) return BN_GX_ERROR;
        for (uint32_t i = 0; i < n_extras; i++) {
            bn_gx parts[3] = {js_rx_rule(c, bn_jstr_quoted(c->rx, extras[i].key), "key"), colon, js_compile_list(c, extras[i].value)};
            if (parts[2] == BN_GX_ERROR) return BN_GX_ERROR;
            alts[i] = seq(c, parts, 3);
        }
        bn_gx one = bn_gb_alt(c->gb, alts, n_extras);
        uint32_t lo = s->min_props > 1 ? s->min_props - 1 : 0, hi = s->max_props == BN_RX_INF ? BN_RX_INF : s->max_props - 1;
        bn_gx members = s->max_props == 0 ? nothing(c) : bn_gb_seq2(c->gb, one, bn_gb_repeat(c->gb, bn_gb_seq2(c->gb, comma, one), lo, hi));
        return define_new(c, "object", bracketed(c, "{", "}", members, s->min_props == 0));
    }
    int empty_ok = n_required == 0;
    if (s->min_props > n_required) {
        if (s->min_props == 1) empty_ok = 0; /* at least one member: drop only the empty object */
        else return js_unsupported(c, "minProperties", s->min_props_at), BN_GX_ERROR;
    }
    if (s->max_props != BN_RX_INF && (n_extras > 0 || m > s->max_props)) {
        if (n_required > s->max_props) return nothing(c);
        if (s->max_props > 1) return js_unsupported(c, "maxProperties", s->max_props_at), BN_GX_ERROR;
        /* at most one member: one of them, or the required one */
        bn_gx *alts = js_alloc(c, (m + n_extras + 1) * sizeof *alts);
        if (!alts) return BN_GX_ERROR;
        uint32_t k = 0;
        for (uint32_t i = 0; i < m && s->max_props == 1; i++) {
            if (n_required && !props[i].required) continue;
            bn_gx key = bn_gb_term(c->gb, bn_jstr_quoted(c->rx, bn_jstr_literal(c->rx, props[i].name.s, props[i].name.n)));
            bn_gx parts[3] = {key, colon, js_compile_list(c, props[i].value)};
            if (parts[2] == BN_GX_ERROR) return BN_GX_ERROR;
            alts[k++] = seq(c, parts, 3);
        }
        for (uint32_t i = 0; i < n_extras && !n_required && s->max_props == 1; i++) {
            bn_gx parts[3] = {js_rx_rule(c, bn_jstr_quoted(c->rx, extras[i].key), "key"), colon, js_compile_list(c, extras[i].value)};
            if (parts[2] == BN_GX_ERROR) return BN_GX_ERROR;
            alts[k++] = seq(c, parts, 3);
        }
        return define_new(c, "object", bracketed(c, "{", "}", bn_gb_alt(c->gb, alts, k), empty_ok));
    }
    /* an additional member, and any number of them after a member */
    bn_gx extra = nothing(c);
    if (n_extras) {
        bn_gx *alts = js_alloc(c, n_extras * sizeof *alts);
        if (!alts) return BN_GX_ERROR;
        for (uint32_t i = 0; i < n_extras; i++) {
            bn_gx key = js_rx_rule(c, bn_jstr_quoted(c->rx, extras[i].key), "key");
            bn_gx parts[3] = {key, colon, js_compile_list(c, extras[i].value)};
            if (parts[2] == BN_GX_ERROR) return BN_GX_ERROR;
            alts[i] = seq(c, parts, 3);
        }
        extra = bn_gb_alt(c->gb, alts, n_extras);
    }
    bn_gx extras_rep = n_extras ? bn_gb_repeat(c->gb, bn_gb_seq2(c->gb, comma, extra), 0, BN_RX_INF) : empty(c);
    bn_gx *member = js_alloc(c, (m + 1) * sizeof *member);
    if (!member) return BN_GX_ERROR;
    for (uint32_t i = 0; i < m; i++) {
        bn_gx key = bn_gb_term(c->gb, bn_jstr_quoted(c->rx, bn_jstr_literal(c->rx, props[i].name.s, props[i].name.n)));
        bn_gx parts[3] = {key, colon, js_compile_list(c, props[i].value)};
        if (parts[2] == BN_GX_ERROR) return BN_GX_ERROR;
        member[i] = seq(c, parts, 3);
    }
    /* tail[j]: the listed members from j on, each after a comma and
     * followed by additional members; long tails are rules, so the
     * alternatives below share them instead of copying */
    bn_gx *tail = js_alloc(c, (m + 1) * sizeof *tail);
    if (!tail) return BN_GX_ERROR;
    tail[m] = empty(c);
    for (uint32_t j = m; j-- > 0;) {
        bn_gx step[3] = {comma, member[j], extras_rep};
        bn_gx x = seq(c, step, 3);
        if (!props[j].required) x = bn_gb_opt(c->gb, x);
        tail[j] = bn_gb_seq2(c->gb, x, tail[j + 1]);
        if (m - j > 4 && j > 0 && (first_required < 0 || j <= (uint32_t)first_required + 1))
            tail[j] = define_new(c, "members", tail[j]);
        if (tail[j] == BN_GX_ERROR) return BN_GX_ERROR;
    }
    /* the first member: an additional one, or listed member j when all
     * before it are absent (up to the first required one) */
    uint32_t last_first = first_required >= 0 ? (uint32_t)first_required : (m ? m - 1 : 0);
    bn_gx *firsts = js_alloc(c, (m + 2) * sizeof *firsts);
    if (!firsts) return BN_GX_ERROR;
    uint32_t nf = 0;
    if (n_extras) {
        bn_gx parts[3] = {extra, extras_rep, tail[0]};
        firsts[nf++] = seq(c, parts, 3);
    }
    for (uint32_t j = 0; j < m && j <= last_first; j++) {
        bn_gx parts[3] = {member[j], extras_rep, tail[j + 1]};
        firsts[nf++] = seq(c, parts, 3);
    }
    return define_new(c, "object", bracketed(c, "{", "}", bn_gb_alt(c->gb, firsts, nf), empty_ok));
}

/* ---- a shape ---- */

bn_gx js_emit_shape(js_ctx *c, const js_shape *s) {
    const js_branch *b = s->branch;
    if (s->has_enum) {
        const cJSON **keep = js_alloc(c, (s->n_enum + 1) * sizeof *keep);
        if (!keep) return BN_GX_ERROR;
        uint32_t k = 0;
        for (uint32_t i = 0; i < s->n_enum; i++) {
            unsigned t = js_type_of_value(s->enum_v[i]);
            if (!(t & s->types)) continue;
            /* keep what the other keywords certainly accept */
            if (js_shape_accepts_member(c, s, s->enum_v[i], 1) == 1) keep[k++] = s->enum_v[i];
        }
        if (c->err->msg[0]) return BN_GX_ERROR;
        return k ? literals(c, keep, k, 0) : nothing(c);
    }
    bn_gx alts[7];
    uint32_t n = 0;
    unsigned types = s->types;
    /* values `not` excluded: possible for the few types with few values */
    for (uint32_t i = 0; i < b->n_excluded; i++) {
        const cJSON *v = b->excluded[i];
        unsigned t = js_type_of_value(v);
        if (!(t & types)) continue;
        if (t == JS_NULL) types &= ~(unsigned)JS_NULL;
        else if ((t & JS_NUM) || t == JS_ARR || t == JS_OBJ) return js_unsupported(c, "not", NULL), BN_GX_ERROR;
    }
    if (types & JS_NULL) alts[n++] = lit(c, "null");
    if (types & JS_BOOL) {
        int t_ok = 1, f_ok = 1;
        for (uint32_t i = 0; i < b->n_excluded; i++) {
            if (cJSON_IsTrue(b->excluded[i])) t_ok = 0;
            if (cJSON_IsFalse(b->excluded[i])) f_ok = 0;
        }
        if (t_ok) alts[n++] = lit(c, "true");
        if (f_ok) alts[n++] = lit(c, "false");
    }
    if (types & JS_NUM) {
        bn_rxid re = number_rx(c, s);
        if (re == BN_RX_ERROR) return BN_GX_ERROR;
        alts[n++] = js_rx_rule(c, re, "number");
    }
    if (types & JS_STR) {
        bn_rxid re = js_string_content(c, s, 0);
        if (re == BN_RX_ERROR) {
            if (!c->err->msg[0]) js_fail(c, s->n_patterns ? s->patterns[0] : NULL, "unsupported combination of string keywords (automaton too large)");
            return BN_GX_ERROR;
        }
        alts[n++] = js_rx_rule(c, bn_jstr_quoted(c->rx, re), "string");
    }
    if (types & JS_ARR) alts[n++] = emit_array(c, s);
    if (types & JS_OBJ) alts[n++] = emit_object(c, s);
    for (uint32_t i = 0; i < n; i++)
        if (alts[i] == BN_GX_ERROR) return BN_GX_ERROR;
    return n == 1 ? alts[0] : bn_gb_alt(c->gb, alts, n);
}
