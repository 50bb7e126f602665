/* json_schema_internal.h: what the files of the JSON Schema compiler share.
 *
 * The compiler works on conjunctions of schema nodes (js_list: the nodes
 * of the document a value must satisfy together). json_schema.c expands a
 * conjunction into branches (following $ref, allOf, anyOf, oneOf, not,
 * dependencies: a branch is a conjunction with no combinator left, plus
 * the few constraints negation adds); json_schema_shape.c merges a
 * branch's keywords into a shape (bounds, properties, items, ...);
 * json_schema_emit.c writes a shape as grammar. Sub-values (a property's
 * value, an array's items) are again conjunctions, compiled through one
 * memo, so a recursive schema becomes a recursive rule. */
#ifndef BN_GRAMMAR_JSON_SCHEMA_INTERNAL_H
#define BN_GRAMMAR_JSON_SCHEMA_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "grammar/gbuild.h"
#include "grammar/json_schema.h"
#include "grammar/json_schema_numbers.h"
#include "grammar/json_schema_rxalg.h"
#include "grammar/json_schema_strings.h"

/* JSON types; "number" is JS_INT | JS_FRAC (a value with a fraction). */
enum {
    JS_NULL = 1, JS_BOOL = 2, JS_INT = 4, JS_FRAC = 8, JS_STR = 16, JS_ARR = 32, JS_OBJ = 64,
    JS_NUM = JS_INT | JS_FRAC, JS_ALL = 127
};

typedef struct {
    const cJSON **v;
    uint32_t n;
} js_list;

typedef struct {
    const char *s;
    size_t n;
} js_name;

/* A conjunction without combinators. */
typedef struct {
    js_list nodes;
    uint32_t cap;
    unsigned types;           /* types `not` and dependencies leave */
    js_name *forbid, *need;   /* property names that must be absent / present */
    uint32_t n_forbid, n_need;
    const cJSON **excluded;   /* values the instance must not equal */
    uint32_t n_excluded;
    const cJSON **not_pattern; /* patterns a string must not match */
    uint32_t n_not_pattern;
} js_branch;

typedef struct {
    js_branch **v;
    uint32_t n, cap;
} js_bset;

typedef struct {
    js_name name;
    js_list value;
    int required, forbidden;
} js_prop;

/* Keys beyond the listed ones: key (canonical content regex) and value. */
typedef struct {
    bn_rxid key;
    js_list value;
} js_extra;

/* A branch's keywords merged. */
typedef struct {
    const js_branch *branch;
    unsigned types;
    /* enum / const: candidate values (NULL: no enum) */
    const cJSON **enum_v;
    uint32_t n_enum;
    int has_enum;
    /* strings */
    uint32_t min_len, max_len; /* max BN_RX_INF: none */
    const cJSON **patterns;    /* the pattern keywords (strings) */
    uint32_t n_patterns;
    const char **formats; /* known formats */
    uint32_t n_formats;
    /* numbers */
    bn_jbound lo, hi;
    double *multiple_of;
    uint32_t n_multiple_of;
    /* arrays */
    uint32_t min_items, max_items;
    js_list *prefix;
    uint32_t n_prefix;
    js_list rest;
    const cJSON *unique_at, *contains_at; /* nodes with uniqueItems: true / contains */
    /* objects */
    js_prop *props;
    uint32_t n_props;
    js_extra *extras;
    uint32_t n_extras;
    uint32_t min_props, max_props;
    js_list property_names; /* the propertyNames schemas */
    const cJSON *min_props_at, *max_props_at;
} js_shape;

typedef struct js_memo js_memo;

typedef struct {
    bn_gb *gb;
    bn_rx *rx;
    bn_jrx *jrx;
    bn_err *err;
    const cJSON *root;
    bn_json_opts opts;
    /* arena */
    void *chunks;
    size_t arena_bytes;
    /* memo of compiled conjunctions */
    js_memo *memo;
    /* rules by regex: string and number values, keys */
    int32_t *rx_rule_keys, *rx_rule_vals;
    size_t rx_rule_mask, rx_rule_used;
    /* caches: pattern text -> regex; $ref string -> node */
    struct js_cache *patterns, *refs;
    int32_t any_rule, any_object_rule;
    bn_gx ws;
    bn_jstr_chars chars; /* the canonical code point */
    /* expansion */
    const cJSON **stack; /* nodes being expanded ($ref cycle check) */
    uint32_t n_stack;
    unsigned depth;
    size_t work; /* expansion steps so far (budget) */
    int draft; /* 4 (and 3), 6, 7, 2019, 2020 (also when the schema names none) */
} js_ctx;

#define JS_MAX_DEPTH 256
#define JS_MAX_BRANCHES 256
#define JS_MAX_WORK 2000000
#define JS_MAX_ARENA ((size_t)256 << 20)
#define JS_PRODUCT_STATES 16000 /* what one intersection of regexes may build */

/* json_schema.c */
void *js_alloc(js_ctx *c, size_t n);
int js_fail(js_ctx *c, const cJSON *at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int js_unsupported(js_ctx *c, const char *keyword, const cJSON *at);
/* The JSON pointer of node within the document (for messages). */
void js_path(js_ctx *c, const cJSON *node, char *out, size_t cap);
/* Expands list into branches (into *out). Returns 1, or 0 with a message. */
int js_expand(js_ctx *c, js_list list, js_bset *out);
/* The grammar of a value satisfying every node of list. */
bn_gx js_compile_list(js_ctx *c, js_list list);
js_list js_list_of(js_ctx *c, const cJSON *node);
js_list js_list_add(js_ctx *c, js_list l, const cJSON *node);
/* The regex of a `pattern` (canonical content, search semantics); BN_RX_ERROR with a message. */
bn_rxid js_pattern(js_ctx *c, const cJSON *pattern);
/* The content regex of a known format (compiled once). */
bn_rxid js_format(js_ctx *c, const char *name);
/* A rule whose body is the terminal re (one per regex). */
bn_gx js_rx_rule(js_ctx *c, bn_rxid re, const char *hint);
/* Whether a node has no constraining keyword (true, {}, annotations and
 * keywords its draft does not know). */
int js_is_trivial(const js_ctx *c, const cJSON *node);
/* Keyword of node or NULL. */
const cJSON *js_kw(const cJSON *node, const char *key);
/* Whether the schema's draft has keyword k. The compiler reads a schema
 * as a validator of its draft does (Python's jsonschema: the draft its
 * $schema names, else 2020-12), so the others are annotations: that keeps
 * negations and disjointness proofs exact. */
int js_draft_knows(const js_ctx *c, const char *k);
/* The types keyword t of node allows (JS_* bits; with the openapi_nullable
 * option, null too where node says "nullable": true). */
unsigned js_type_mask(js_ctx *c, const cJSON *node, const cJSON *t, int *ok);

/* json_schema_shape.c */
int js_shape_of(js_ctx *c, const js_branch *b, js_shape *s);
/* Whether value satisfies the shape / list: 1, 0, or -1 when it cannot tell. */
int js_shape_accepts(js_ctx *c, const js_shape *s, const cJSON *value);
/* The same for a value of the shape's own enum (not looked up again). */
int js_shape_accepts_member(js_ctx *c, const js_shape *s, const cJSON *value, int of_enum);
int js_list_accepts(js_ctx *c, js_list list, const cJSON *value);
/* Whether a property name meets the shape's propertyNames: 1, 0, -1. */
int js_name_allowed(js_ctx *c, const js_shape *s, const char *name);
/* Whether no value satisfies both: 1 proved, 0 not proved. */
int js_shapes_disjoint(js_ctx *c, const js_shape *a, const js_shape *b, unsigned depth);
int js_lists_disjoint(js_ctx *c, js_list a, js_list b, unsigned depth);
int js_json_equal(const cJSON *a, const cJSON *b);
unsigned js_type_of_value(const cJSON *v);

/* json_schema_emit.c */
bn_gx js_emit_shape(js_ctx *c, const js_shape *s);
bn_gx js_any_value(js_ctx *c, int object_only);
/* The canonical content regex of the strings s accepts; with superset,
 * formats are left out (the compiler's format regexes are narrower than
 * the formats, so only the superset may prove strings disjoint). */
bn_rxid js_string_content(js_ctx *c, const js_shape *s, int superset);

#endif
