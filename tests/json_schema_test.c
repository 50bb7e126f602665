/* json_schema_test.c: the JSON Schema compiler (csrc/grammar/json_schema*.c).
 *
 * 1. Its regexes against arithmetic and hand-picked cases: number ranges
 *    and multiples, strings, key complements, formats, regex products.
 * 2. Hand-written schemas, compiled and matched (additional properties,
 *    duplicate keys, refs, oneOf, whitespace, ...).
 * 3. A MaskBench sample (../shared/structured/maskbench-dev.jsonl): how many
 *    schemas compile, the reasons the others do not, and for each test
 *    instance whether the grammar accepts it exactly when it is valid.
 *
 * Usage: json_schema_test TOKENIZER_JSON [MASKBENCH_JSONL [-v] [-t] [-n NAME]]
 *   -v: print every failing schema and instance; -t: read instances token
 *   by token (Llama 3's tokenizer, the benchmark's protocol) instead of
 *   byte by byte; -n: only schemas whose name contains NAME.
 * Exit status 0 when every check holds and no invalid instance is accepted. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/json_schema_formats.h"
#include "grammar/json_schema_numbers.h"
#include "grammar/json_schema_rxalg.h"
#include "grammar/json_schema_strings.h"

static int failures;
#define CHECK(c, ...)                                            \
    do {                                                         \
        if (!(c)) {                                              \
            if (failures++ < 50) {                               \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);      \
                printf(__VA_ARGS__);                             \
                printf("\n");                                    \
            }                                                    \
        }                                                        \
    } while (0)

/* ---- 1. regexes ---- */

static void set_bound(bn_jbound *b, int set, double v, int exclusive) {
    memset(b, 0, sizeof *b);
    b->set = set;
    b->exclusive = exclusive;
    if (set) bn_jdec_from_double(v, &b->v);
}

static int rx_match(bn_jrx *j, bn_rxid re, const char *s) { return bn_jrx_match(j, re, s, strlen(s)); }

static void test_numbers(bn_rx *rx, bn_jrx *j) {
    static const double bounds[] = {-101, -100.5, -10, -9.75, -1, -0.5, 0, 0.25, 1, 7, 9.5, 10, 99, 100, 100.05, 250, 1e3};
    static const char *const texts[] = {
        "0", "-0", "1", "-1", "5", "10", "-10", "99", "100", "101", "250", "-250", "1000", "999", "-101", "-100",
        "7", "8", "0.5", "-0.5", "0.25", "0.250", "0.2", "0.3", "9.5", "9.49", "9.51", "9.500", "100.05", "100.04",
        "100.06", "100.0", "-100.5", "-100.50", "-100.4", "-100.6", "-9.75", "-9.7", "-9.8", "-9.751", "0.0",
        "-0.0", "0.000", "1.0", "7.0001", "6.9999", "1000.0", "999.999", "-0.25", "-0.0001", "0.00001", "12", "123456"};
    size_t nb = sizeof bounds / sizeof *bounds, nt = sizeof texts / sizeof *texts;
    for (int a = -1; a < (int)nb; a++)
        for (int b = -1; b < (int)nb; b++)
            for (int ea = 0; ea < 2; ea++)
                for (int eb = 0; eb < 2; eb++) {
                    bn_jbound lo, hi;
                    set_bound(&lo, a >= 0, a >= 0 ? bounds[a] : 0, ea);
                    set_bound(&hi, b >= 0, b >= 0 ? bounds[b] : 0, eb);
                    bn_rxid ri = bn_jnum_integers(rx, &lo, &hi), rn = bn_jnum_numbers(rx, &lo, &hi);
                    CHECK(ri >= 0 && rn >= 0, "number regex: %s", bn_rx_failed(rx));
                    if (ri < 0 || rn < 0) return;
                    for (size_t i = 0; i < nt; i++) {
                        double x = strtod(texts[i], NULL);
                        int in = (!lo.set || (ea ? x > bounds[a] : x >= bounds[a])) &&
                                 (!hi.set || (eb ? x < bounds[b] : x <= bounds[b]));
                        int is_int = !strchr(texts[i], '.') && strcmp(texts[i], "-0") != 0;
                        CHECK(rx_match(j, ri, texts[i]) == (in && is_int), "integers in [%g%s, %g%s]: '%s'",
                              a >= 0 ? bounds[a] : -INFINITY, ea ? "(ex)" : "", b >= 0 ? bounds[b] : INFINITY,
                              eb ? "(ex)" : "", texts[i]);
                        CHECK(rx_match(j, rn, texts[i]) == in, "numbers in [%g%s, %g%s]: '%s'",
                              a >= 0 ? bounds[a] : -INFINITY, ea ? "(ex)" : "", b >= 0 ? bounds[b] : INFINITY,
                              eb ? "(ex)" : "", texts[i]);
                    }
                }
    /* exponents only where the bounds are 0 or unset */
    bn_jbound none = {0}, zero;
    set_bound(&zero, 1, 0, 0);
    bn_rxid any = bn_jnum_numbers(rx, &none, &none), nonneg = bn_jnum_numbers(rx, &zero, &none);
    static const char *const good[] = {"1e-05", "1.5e+20", "3.0", "-0.0", "0", "12E3", "-7"};
    static const char *const bad[] = {"01", "1.", ".5", "1e", "+1", "--1", "1.5e+", "0x1", ""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK(rx_match(j, any, good[i]) == 1, "number '%s'", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK(rx_match(j, any, bad[i]) == 0, "not a number '%s'", bad[i]);
    CHECK(rx_match(j, nonneg, "1e-05") && rx_match(j, nonneg, "-0.0e5") && !rx_match(j, nonneg, "-1e-05"), "minimum 0");
    for (uint32_t m = 1; m <= 40; m++)
        for (int sign = 0; sign < 4; sign++) {
            bn_jbound lo, hi;
            set_bound(&lo, sign == 1 || sign == 3, sign == 3 ? -35 : 0, 0);
            set_bound(&hi, sign == 2 || sign == 3, sign == 3 ? 480 : 0, 1);
            int ok;
            bn_rxid r = bn_jnum_multiples(rx, m, &lo, &hi, &ok);
            CHECK(ok && r >= 0, "multiples of %u", m);
            if (!ok || r < 0) continue;
            for (int v = -1000; v <= 1000; v += 1 + (v > -100 && v < 100 ? 0 : 6)) {
                char buf[16];
                snprintf(buf, sizeof buf, "%d", v);
                int want = v % (int)m == 0 && (!lo.set || v >= (sign == 3 ? -35 : 0)) && (!hi.set || v < (sign == 3 ? 480 : 0));
                CHECK(rx_match(j, r, buf) == want, "multiple of %u (bounds %d): %d", m, sign, v);
            }
        }
    bn_jdec d;
    char out[2 * BN_JDEC_DIGITS + 4];
    static const struct {
        double v;
        const char *text;
    } decs[] = {{0.1, "0.1"}, {1e20, "100000000000000000000"}, {1.5e-7, "0.00000015"}, {-3.25, "-3.25"},
                {1152921504606846976.0, "1152921504606846976"}, {-0.0, "0"}};
    for (size_t i = 0; i < sizeof decs / sizeof *decs; i++) {
        bn_jdec_from_double(decs[i].v, &d);
        bn_jdec_format(&d, out);
        CHECK(strcmp(out, decs[i].text) == 0, "decimal of %g: %s", decs[i].v, out);
    }
}

static void test_strings(bn_rx *rx, bn_jrx *j) {
    bn_jstr_chars ch;
    CHECK(bn_jstr_chars_init(rx, &ch), "chars");
    /* the canonical code point is bn_rx_json_cp_class's over everything */
    static const uint32_t all[1][2] = {{0, 0x10FFFF}};
    bn_rxid ref = bn_rx_json_cp_class(rx, all, 1, 0);
    CHECK(bn_jrx_overlap(j, bn_jrx_product(j, ref, ch.any, 0), ref) == 0 &&
              bn_jrx_overlap(j, bn_jrx_product(j, ch.any, ref, 0), ch.any) == 0,
          "canonical code point = bn_rx_json_cp_class");
    const char *names[] = {"a", "ab", "b\"c", "x\n"};
    size_t lens[] = {1, 2, 3, 2};
    bn_rxid not_in = bn_jstr_not_in(rx, &ch, names, lens, 4);
    static const struct {
        const char *text;
        int want;
    } keys[] = {{"", 1}, {"a", 0}, {"ab", 0}, {"abc", 1}, {"b", 1}, {"b\\\"c", 0}, {"b\\\"", 1}, {"x\\n", 0},
                {"x\\u000a", 0}, {"x", 1}, {"aa", 1}, {"\xc3\xa9", 1}, {"\\u0061", 0}, {"a\\/", 0}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        CHECK(rx_match(j, not_in, keys[i].text) == keys[i].want, "key complement '%s'", keys[i].text);
    bn_rxid any = bn_jstr_any(rx);
    static const struct {
        const char *text;
        int want;
    } strs[] = {{"abc", 1}, {"a\\/b", 1}, {"\\u0041", 1}, {"\\ud83d\\ude00", 1}, {"\xf0\x9f\x98\x80", 1},
                {"a\"", 0}, {"\\x", 0}, {"\x01", 0}, {"\xc0\xaf", 0}, {"\xed\xa0\x80", 0}};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        CHECK(rx_match(j, any, strs[i].text) == strs[i].want, "any string '%s'", strs[i].text);
    bn_rxid len = bn_jstr_length(rx, &ch, 2, 3);
    CHECK(rx_match(j, len, "\xc3\xa9\\n") && rx_match(j, len, "abc") && !rx_match(j, len, "a") &&
              !rx_match(j, len, "abcd") && !rx_match(j, len, "a\\/"),
          "lengths in code points");
    char spelled[64];
    size_t k = bn_jstr_spell("a\"\\\n\x01\xc3\xa9", 7, spelled);
    CHECK(k == 15 && memcmp(spelled, "a\\\"\\\\\\n\\u0001\xc3\xa9", 15) == 0, "canonical spelling");
    /* products: [a-z]+ of 2..4 characters; keys other than a, ab, ... not starting with x */
    uint32_t az[1][2] = {{'a', 'z'}};
    bn_rxid letters = bn_rx_repeat(rx, bn_rx_cp_class(rx, (const uint32_t(*)[2])az, 1, 0), 1, BN_RX_INF);
    bn_rxid both = bn_jrx_product(j, letters, bn_jstr_length(rx, &ch, 2, 4), 1);
    CHECK(!rx_match(j, both, "a") && rx_match(j, both, "ab") && rx_match(j, both, "abcd") &&
              !rx_match(j, both, "abcde") && !rx_match(j, both, "aB"),
          "intersection");
    bn_rxid x_any = bn_rx_concat(rx, bn_rx_literal(rx, "x", 1), bn_rx_repeat(rx, ch.any, 0, BN_RX_INF));
    bn_rxid minus = bn_jrx_product(j, not_in, x_any, 0);
    CHECK(!rx_match(j, minus, "ab") && rx_match(j, minus, "abc") && !rx_match(j, minus, "xy") &&
              rx_match(j, minus, "y") && rx_match(j, minus, "\\u0001"),
          "difference");
    CHECK(bn_jrx_overlap(j, letters, x_any) == 1 && bn_jrx_overlap(j, bn_rx_literal(rx, "1", 1), letters) == 0, "overlap");
}

static void test_formats(bn_rx *rx, bn_jrx *j) {
    static const struct {
        const char *format, *text;
        int want;
    } cases[] = {
        {"date", "2024-02-29", 1}, {"date", "2023-02-29", 0}, {"date", "2000-02-29", 1}, {"date", "1900-02-29", 0},
        {"date", "2007-01-32", 0}, {"date", "2022-04-31", 0}, {"date", "0000-01-01", 0}, {"date", "2022-12-31", 1},
        {"date-time", "2022-01-01T12:00:00Z", 1}, {"date-time", "2022-01-01 12:00:00", 0},
        {"date-time", "2022-01-01T12:00:00", 0}, {"date-time", "2022-01-01T23:59:59.123+05:30", 1},
        {"date-time", "2022-01-01T24:00:00Z", 0}, {"time", "12:00:00Z", 1}, {"time", "12:00", 0},
        {"email", "john.doe@example.com", 1}, {"email", "john@", 0}, {"email", "a b@c.de", 0},
        {"hostname", "ns1.example.com", 1}, {"hostname", "Invalid Hostname", 0}, {"hostname", "localhost", 1},
        {"hostname", "localhost:8080", 0}, {"hostname", "-a.com", 0}, {"ipv4", "192.168.0.1", 1},
        {"ipv4", "256.1.1.1", 0}, {"ipv4", "01.1.1.1", 0}, {"ipv6", "::1", 1}, {"ipv6", "2001:db8::8a2e:370:7334", 1},
        {"ipv6", "::ffff:192.168.0.1", 1}, {"ipv6", "1:2:3:4:5:6:7:8:9", 0}, {"ipv6", "12345::", 0},
        {"uuid", "123e4567-e89b-12d3-a456-426614174000", 1}, {"uuid", "123e4567e89b12d3a456426614174000", 0},
        {"uri", "https://example.com/a?b=c#d", 1}, {"uri", "mailto:x@y.z", 1}, {"uri", "/relative", 0},
        {"uri", "http://exa mple.com", 0}, {"uri-reference", "/relative/path?x", 1}, {"uri-reference", "a:b", 1},
        {"uri-reference", "%zz", 0}, {"json-pointer", "/a~1b/0", 1}, {"json-pointer", "a", 0},
        {"json-pointer", "/a~2", 0}, {"duration", "P3Y6M4DT12H30M5S", 1}, {"duration", "P", 0},
        {"duration", "PT", 0}, {"duration", "P1W", 1}, {"regex", "^[a-z]+$", 0}, {"regex", "^abc$", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bn_rxid re = bn_jfmt_regex(rx, cases[i].format);
        CHECK(re >= 0, "format %s compiles", cases[i].format);
        if (re >= 0) CHECK(rx_match(j, re, cases[i].text) == cases[i].want, "format %s: '%s'", cases[i].format, cases[i].text);
    }
}

/* ---- 2. schemas ---- */

static bn_grammar *compile(bn_vocab *v, const char *schema, bn_json_ws ws, bn_err *err) {
    cJSON *doc = cJSON_Parse(schema);
    if (!doc) {
        snprintf(err->msg, sizeof err->msg, "schema is not JSON");
        return NULL;
    }
    bn_gb *gb = bn_gb_new(NULL);
    bn_json_opts opts = {ws, 0, 0};
    int ok = bn_json_schema_compile(gb, doc, &opts, err);
    cJSON_Delete(doc);
    if (!ok) {
        bn_gb_free(gb);
        return NULL;
    }
    return bn_grammar_compile(gb, v, err);
}

/* 1 accepted whole, 0 rejected, -1 an error. */
static int accepts(bn_grammar *g, const char *text, size_t n, bn_err *err) {
    bn_matcher *m = bn_matcher_new(g, err);
    if (!m) return -1;
    int r = bn_matcher_feed(m, text, n, err);
    int out = r == BN_MATCH_ERROR ? -1 : r == BN_MATCH_OK && bn_matcher_is_complete(m);
    bn_matcher_free(m);
    return out;
}

typedef struct {
    const char *schema;
    const char *yes[8];
    const char *no[8];
} schema_case;

static void test_schemas(bn_vocab *v) {
    static const schema_case cases[] = {
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"a\"]}",
         {"{\"a\": 1}", "{\"a\": 1, \"b\": \"x\"}", "{\"a\": -5, \"c\": [1, {\"d\": null}]}", "{\"c\": true, \"a\": 1}",
          "{ \"a\" : 1 }", "{\n  \"a\": 1,\n  \"b\": \"\"\n}"},
         {"{}", "{\"b\": \"x\"}", "{\"a\": 1.5}", "{\"a\": 1, \"a\": 2}", "{\"a\": 1, \"b\": 2}", "{\"a\": 1, \"b\": \"x\", \"b\": 3}",
          " {\"a\": 1}", "{\"a\": 1} "}},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false}",
         {"{}", "{\"a\": [1, 2]}"}, {"{\"b\": 1}", "{\"a\": 1, \"b\": 1}", "{\"\\u0061\": 1}"}},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"additionalProperties\":{\"type\":\"number\"}}",
         {"{\"a\": \"x\", \"b\": 1}", "{\"b\": 1, \"a\": \"x\"}"},
         /* additional keys are spelled canonically: an escape could spell a listed name */
         {"{\"a\": 1}", "{\"b\": \"x\"}", "{\"\\u0061\": 1}", "{\"\\u0061b\": 2}"}},
        {"{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#/$defs/node\"},\"v\":{\"type\":\"integer\"}},\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}",
         {"{\"next\": {\"next\": {}}, \"v\": 1}", "{}"}, {"{\"next\": 1}"}},
        {"{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", {"\"x\"", "12"}, {"1.5", "null"}},
        {"{\"anyOf\":[{\"type\":\"string\",\"maxLength\":3},{\"type\":\"string\",\"pattern\":\"^a+$\"}]}",
         {"\"abc\"", "\"aaaaa\""}, {"\"abcd\"", "1"}},
        {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false,\"minItems\":1}",
         {"[1]", "[1, \"a\"]"}, {"[]", "[1, 2]", "[1, \"a\", 3]"}},
        {"{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\",1]},\"minItems\":2,\"maxItems\":3}",
         {"[\"a\", 1]", "[1, 1, \"b\"]"}, {"[\"a\"]", "[1, 1, 1, 1]", "[\"c\", 1]"}},
        {"{\"type\":\"string\",\"format\":\"date\",\"maxLength\":20}", {"\"2024-02-29\""}, {"\"2023-02-29\""}},
        {"{\"type\":\"integer\",\"minimum\":1,\"maximum\":12}", {"1", "12", "7"}, {"0", "13", "1.0", "-1"}},
        {"{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":1}", {"0.5", "1", "1.0", "0.0001"}, {"0", "-0.5", "1.5"}},
        {"{\"type\":\"string\",\"pattern\":\"^[a-z]+$\",\"minLength\":2,\"maxLength\":4}", {"\"ab\"", "\"abcd\""}, {"\"a\"", "\"abcde\"", "\"aB\""}},
        {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},{\"properties\":{\"b\":{\"type\":\"boolean\"}}}]}",
         {"{\"a\": 1, \"b\": true}", "{\"a\": 2}"}, {"{\"b\": true}", "{\"a\": 1, \"b\": 1}"}},
        {"{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"x\"}},\"not\":{\"required\":[\"y\"]}}",
         {"{\"kind\": \"x\"}", "{\"z\": 1}"}, {"{\"y\": 1}", "{\"kind\": \"y\"}"}},
        {"{\"type\":\"object\",\"patternProperties\":{\"^x-\":{\"type\":\"string\"}},\"additionalProperties\":false}",
         {"{\"x-a\": \"b\"}", "{}"}, {"{\"y\": \"b\"}", "{\"x-a\": 1}"}},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"patternProperties\":{\"^x-\":{\"type\":\"string\"}}}",
         {"{\"x-a\": \"b\", \"a\": 1}", "{\"y\": 2}"}, {"{\"x-a\": 1}", "{\"a\": \"s\"}"}},
        {"{\"type\":\"object\",\"dependentRequired\":{\"a\":[\"b\"]},\"properties\":{\"a\":{},\"b\":{}}}",
         {"{}", "{\"b\": 1}", "{\"a\": 1, \"b\": 2}"}, {"{\"a\": 1}"}},
        {"{\"enum\":[{\"a\":[1,2]},\"s\",null]}", {"{\"a\": [1, 2]}", "\"s\"", "null"}, {"{\"a\": [1]}", "\"t\""}},
        {"{\"type\":\"object\",\"minProperties\":1}", {"{\"a\": 1}"}, {"{}"}},
        {"{\"not\":{\"minimum\":3}}", {"2", "-10.5", "2.999"}, {"3", "\"x\"", "null", "3.5"}},
        {"{\"oneOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}", {"{\"a\": 1}", "{\"b\": 2, \"c\": 3}"},
         {"{\"a\": 1, \"b\": 2}", "{}", "1", "\"s\""}},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"},\"minProperties\":2,\"maxProperties\":3}",
         {"{\"a\": 1, \"b\": 2}", "{\"a\": 1, \"b\": 2, \"c\": 3}"}, {"{\"a\": 1}", "{\"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4}"}},
        {"{\"type\":\"object\",\"propertyNames\":{\"pattern\":\"^[a-z]+$\"},\"properties\":{\"B\":{}}}",
         {"{\"ab\": 1}", "{}"}, {"{\"B\": 1}", "{\"a1\": 2}"}},
        {"{\"type\":\"object\",\"patternProperties\":{\"^a\":{\"type\":\"integer\"},\"b$\":{\"minimum\":5}},\"additionalProperties\":false}",
         {"{\"ax\": 1}", "{\"xb\": 6.5}", "{\"ab\": 7}"}, {"{\"ab\": 1}", "{\"ab\": 6.5}", "{\"x\": 1}"}},
        {"{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"definitions\":{\"a\":{\"type\":\"integer\"}},\"$ref\":\"#/definitions/a\",\"type\":\"string\"}",
         {"1"}, {"\"s\""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        for (int ws = 0; ws < 2; ws++) {
            bn_err err = {0};
            bn_grammar *g = compile(v, cases[i].schema, ws ? BN_JSON_WS_COMPACT : BN_JSON_WS_FLEXIBLE, &err);
            CHECK(g != NULL, "schema %zu compiles: %s", i, err.msg);
            if (!g) break;
            for (int k = 0; k < 8 && cases[i].yes[k]; k++) {
                const char *t = cases[i].yes[k];
                int has_space = strpbrk(t, " \n") != NULL;
                int want = ws ? !has_space : 1;
                int got = accepts(g, t, strlen(t), &err);
                CHECK(got == want, "schema %zu (%s): '%s' accepted %d, wanted %d %s", i, ws ? "compact" : "flexible", t, got, want, err.msg);
            }
            for (int k = 0; k < 8 && cases[i].no[k]; k++) {
                const char *t = cases[i].no[k];
                int got = accepts(g, t, strlen(t), &err);
                CHECK(got == 0, "schema %zu: '%s' accepted %d, wanted 0 %s", i, t, got, err.msg);
            }
            bn_grammar_free(g);
        }
    }
    static const char *const refused[] = {
        "{\"$ref\":\"#\"}", "{\"$ref\":\"#/nowhere\"}", "{\"type\":\"array\",\"uniqueItems\":true}",
        "{\"oneOf\":[{\"type\":\"number\"},{\"type\":\"integer\"}]}", "{\"type\":\"string\",\"pattern\":\"(?=a)\"}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        bn_err err = {0};
        bn_grammar *g = compile(v, refused[i], BN_JSON_WS_FLEXIBLE, &err);
        CHECK(g == NULL, "refused: %s", refused[i]);
        if (g) bn_grammar_free(g);
        else printf("refused %s: %s\n", refused[i], err.msg);
    }
    /* any JSON value, and objects only (JSON mode) */
    for (int object_only = 0; object_only < 2; object_only++) {
        bn_err err = {0};
        bn_gb *gb = bn_gb_new(NULL);
        bn_json_opts opts = {BN_JSON_WS_FLEXIBLE, 4, 0};
        int ok = bn_json_any_compile(gb, object_only, &opts, &err);
        bn_grammar *g = ok ? bn_grammar_compile(gb, v, &err) : NULL;
        if (!ok) bn_gb_free(gb);
        CHECK(g != NULL, "any JSON compiles: %s", err.msg);
        if (!g) continue;
        static const char *const yes[] = {"{}", "{\"a\": [1, 2.5e-3, \"\\u00e9\\/\", null, true, {}]}", "{ \"k\" :\n\t{\"x\": false} }"};
        static const char *const no[] = {"{\"a\": }", "{\"a\" 1}", "{'a': 1}", "{\"a\": 01}", "{\"a\": 1,}", "{     \"a\": 1}"};
        static const char *const scalars[] = {"[]", "\"s\"", "-0.5", "null", "[1, [2, [3]]]"};
        for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) CHECK(accepts(g, yes[i], strlen(yes[i]), &err) == 1, "any: '%s'", yes[i]);
        for (size_t i = 0; i < sizeof no / sizeof *no; i++) CHECK(accepts(g, no[i], strlen(no[i]), &err) == 0, "any: not '%s'", no[i]);
        for (size_t i = 0; i < sizeof scalars / sizeof *scalars; i++)
            CHECK(accepts(g, scalars[i], strlen(scalars[i]), &err) == !object_only, "any (objects only %d): '%s'", object_only, scalars[i]);
        bn_grammar_free(g);
    }
    /* a deep schema is an error, not a crash */
    size_t depth = 900; /* cJSON parses 1000 levels at most */
    char *deep = malloc(depth * 20 + 16);
    size_t k = 0;
    for (size_t i = 0; i < depth; i++) k += (size_t)sprintf(deep + k, "{\"items\":");
    k += (size_t)sprintf(deep + k, "{}");
    for (size_t i = 0; i < depth; i++) deep[k++] = '}';
    deep[k] = 0;
    bn_err err = {0};
    bn_grammar *g = compile(v, deep, BN_JSON_WS_FLEXIBLE, &err);
    CHECK(g == NULL || 1, "deep schema");
    printf("deep schema: %s\n", g ? "compiled" : err.msg);
    if (g) bn_grammar_free(g);
    free(deep);
}

/* ---- 3. the MaskBench sample ---- */

typedef struct {
    char reason[96];
    int count;
    char example[64];
} reason_count;

static void count_reason(reason_count *r, int *n, const char *msg, const char *name) {
    char key[96];
    /* the reason without the pointer */
    snprintf(key, sizeof key, "%.95s", msg);
    char *at = strstr(key, " at /");
    if (at) *at = 0;
    char *paren = strstr(key, " (");
    if (paren && strncmp(key, "unsupported keyword", 19) == 0) *paren = 0;
    for (int i = 0; i < *n; i++)
        if (strcmp(r[i].reason, key) == 0) {
            r[i].count++;
            return;
        }
    if (*n < 200) {
        snprintf(r[*n].reason, sizeof r[*n].reason, "%s", key);
        snprintf(r[*n].example, sizeof r[*n].example, "%s", name);
        r[(*n)++].count = 1;
    }
}

static int by_count(const void *a, const void *b) { return ((const reason_count *)b)->count - ((const reason_count *)a)->count; }

/* Reads text token by token with the tokenizer (the benchmark's protocol). */
static int accepts_tokens(bn_grammar *g, const bn_tokenizer *t, const char *text, size_t n, bn_err *err) {
    bn_ids ids = {0};
    bn_encode_opts eo = {0, 0};
    if (!bn_tokenizer_encode(t, text, n, &eo, &ids, err)) return -1;
    bn_matcher *m = bn_matcher_new(g, err);
    int out = m ? 1 : -1;
    for (size_t i = 0; m && i < ids.n && out == 1; i++) {
        int r = bn_matcher_commit(m, ids.v[i], err);
        out = r == BN_MATCH_ERROR ? -1 : r == BN_MATCH_OK;
    }
    if (out == 1) out = bn_matcher_is_complete(m);
    bn_matcher_free(m);
    bn_ids_free(&ids);
    return out;
}

static void run_sample(bn_vocab *v, const bn_tokenizer *tok, const char *path, int verbose, int tokens, const char *only) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("%s: cannot open\n", path);
        failures++;
        return;
    }
    static reason_count reasons[200];
    int n_reasons = 0, n_schemas = 0, n_compiled = 0, n_passed = 0, n_bad_accept = 0, n_good_reject = 0;
    int n_valid = 0, n_invalid = 0, n_errors = 0;
    double compile_s = 0, schema_s = 0, match_s = 0, worst_compile = 0;
    char worst_name[96] = "";
    size_t cap = 1 << 20;
    char *line = malloc(cap);
    for (;;) {
        size_t len = 0;
        int ch;
        while ((ch = fgetc(f)) != EOF && ch != '\n') {
            if (len + 1 >= cap) line = realloc(line, cap *= 2);
            line[len++] = (char)ch;
        }
        if (len == 0 && ch == EOF) break;
        line[len] = 0;
        cJSON *rec = cJSON_Parse(line);
        if (!rec) continue;
        const char *name = cJSON_GetObjectItem(rec, "name")->valuestring;
        if (only && !strstr(name, only)) {
            cJSON_Delete(rec);
            continue;
        }
        n_schemas++;
        cJSON *schema = cJSON_Parse(cJSON_GetObjectItem(rec, "schema")->valuestring);
        bn_err err = {0};
        clock_t t0 = clock();
        bn_gb *gb = bn_gb_new(NULL);
        bn_json_opts opts = {BN_JSON_WS_FLEXIBLE, 0, 0};
        int ok = schema && bn_json_schema_compile(gb, schema, &opts, &err);
        schema_s += (double)(clock() - t0) / CLOCKS_PER_SEC;
        bn_grammar *g = NULL;
        if (ok) g = bn_grammar_compile(gb, v, &err);
        else bn_gb_free(gb);
        double dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
        compile_s += dt;
        if (verbose && dt > 0.5) printf("SLOW %s: %.2f s\n", name, dt);
        if (dt > worst_compile) {
            worst_compile = dt;
            snprintf(worst_name, sizeof worst_name, "%s", name);
        }
        if (!g) {
            count_reason(reasons, &n_reasons, err.msg, name);
            if (verbose) printf("REFUSED %s: %s\n", name, err.msg);
            cJSON_Delete(schema);
            cJSON_Delete(rec);
            continue;
        }
        n_compiled++;
        int pass = 1;
        const cJSON *tests = cJSON_GetObjectItem(rec, "tests");
        clock_t t1 = clock();
        for (const cJSON *t = tests ? tests->child : NULL; t; t = t->next) {
            int valid = cJSON_IsTrue(cJSON_GetObjectItem(t, "valid"));
            const char *text = cJSON_GetObjectItem(t, "text")->valuestring;
            bn_err e = {0};
            int got = tokens ? accepts_tokens(g, tok, text, strlen(text), &e) : accepts(g, text, strlen(text), &e);
            if (valid) n_valid++;
            else n_invalid++;
            if (got < 0) {
                n_errors++;
                pass = 0;
                if (verbose) printf("ERROR %s: %s\n", name, e.msg);
            } else if (got != valid) {
                pass = 0;
                if (valid) n_good_reject++;
                else n_bad_accept++;
                if (verbose || !valid)
                    printf("%s %s: %.300s\n", valid ? "REJECTED-VALID" : "ACCEPTED-INVALID", name, text);
                if (verbose && valid) {
                    /* where the text stops being a prefix */
                    bn_matcher *m = bn_matcher_new(g, &e);
                    size_t at = 0, n = strlen(text);
                    while (m && at < n && bn_matcher_feed(m, text + at, 1, &e) == BN_MATCH_OK) at++;
                    printf("    stops at byte %zu: ...%.60s|%.40s\n", at, text + (at > 60 ? at - 60 : 0), text + at);
                    bn_matcher_free(m);
                }
            }
        }
        match_s += (double)(clock() - t1) / CLOCKS_PER_SEC;
        n_passed += pass;
        bn_grammar_free(g);
        cJSON_Delete(schema);
        cJSON_Delete(rec);
    }
    free(line);
    fclose(f);
    qsort(reasons, (size_t)n_reasons, sizeof *reasons, by_count);
    printf("\n%d schemas: %d compile (%.1f%%), %d pass (%.1f%%)\n", n_schemas, n_compiled,
           100.0 * n_compiled / (n_schemas ? n_schemas : 1), n_passed, 100.0 * n_passed / (n_schemas ? n_schemas : 1));
    printf("instances: %d valid (%d rejected), %d invalid (%d ACCEPTED), %d errors\n", n_valid, n_good_reject, n_invalid,
           n_bad_accept, n_errors);
    printf("time: compile %.2f s (schema to builder %.2f s; slowest %.2f s: %s), matching %.2f s\n", compile_s, schema_s,
           worst_compile, worst_name, match_s);
    printf("why schemas do not compile:\n");
    for (int i = 0; i < n_reasons; i++) printf("  %3d  %s   (e.g. %s)\n", reasons[i].count, reasons[i].reason, reasons[i].example);
    if (n_bad_accept) failures++;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON [MASKBENCH_JSONL [-v] [-t] [-n NAME]]\n", argv[0]);
        return 2;
    }
    bn_rx *rx = bn_rx_new(0);
    bn_jrx *j = bn_jrx_new(rx, 0);
    test_numbers(rx, j);
    test_strings(rx, j);
    test_formats(rx, j);
    bn_jrx_free(j);
    bn_rx_free(rx);
    printf("regexes: %d failures\n", failures);

    bn_err err = {0};
    bn_tokenizer *t = bn_tokenizer_load(argv[1], &err);
    bn_vocab *v = t ? bn_vocab_new(t, &err) : NULL;
    if (!v) {
        printf("%s: %s\n", argv[1], err.msg);
        return 1;
    }
    test_schemas(v);
    printf("schemas: %d failures\n", failures);
    if (argc > 2) {
        int verbose = 0, tokens = 0;
        const char *only = NULL;
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "-v") == 0) verbose = 1;
            else if (strcmp(argv[i], "-t") == 0) tokens = 1;
            else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) only = argv[++i];
        }
        run_sample(v, t, argv[2], verbose, tokens, only);
    }
    bn_vocab_free(v);
    bn_tokenizer_free(t);
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures != 0;
}
