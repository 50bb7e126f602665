/* json_schema.c: JSON Schema into a grammar builder (json_schema.h): the
 * compile's context and memory, $ref resolution, and the expansion of a
 * conjunction of schema nodes into branches without combinators, which
 * json_schema_shape.c merges and json_schema_emit.c writes as grammar.
 *
 * Every sub-value is compiled from the set of nodes it must satisfy, and
 * that set is memoized: the same set compiled twice is one grammar, and a
 * set met again while it is being compiled (a recursive $ref) becomes a
 * rule that refers to itself. */
#include "grammar/json_schema.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/ecma_regex.h"
#include "grammar/json_schema_formats.h"
#include "grammar/json_schema_internal.h"
#include "grammar/json_schema_strings.h"

/* ---- memory: one arena per compile ---- */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
} chunk;

void *js_alloc(js_ctx *c, size_t n) {
    n = (n + 15) & ~(size_t)15;
    chunk *h = c->chunks;
    if (!h || h->used + n > h->cap) {
        size_t cap = n > 65536 ? n : 65536;
        if (c->arena_bytes + cap > JS_MAX_ARENA) {
            js_fail(c, NULL, "schema too large to compile (memory budget spent)");
            return NULL;
        }
        h = malloc(sizeof *h + cap);
        if (!h) {
            js_fail(c, NULL, "out of memory");
            return NULL;
        }
        h->next = c->chunks;
        h->used = 0;
        h->cap = cap;
        c->chunks = h;
        c->arena_bytes += cap;
    }
    void *p = (char *)h->data + h->used;
    h->used += n;
    return p;
}

static void arena_free(js_ctx *c) {
    for (chunk *h = c->chunks, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    c->chunks = NULL;
}

/* ---- messages ---- */

/* Appends the pointer escape of s[0..n) to out (~ -> ~0, / -> ~1). */
static size_t put_token(char *out, size_t k, size_t cap, const char *s, size_t n) {
    for (size_t i = 0; i < n && k + 3 < cap; i++) {
        if (s[i] == '~' || s[i] == '/') {
            out[k++] = '~';
            out[k++] = s[i] == '~' ? '0' : '1';
        } else out[k++] = s[i];
    }
    return k;
}

static int find_path(const cJSON *at, const cJSON *node, char *out, size_t k, size_t cap, size_t *end, int depth) {
    if (at == node) {
        *end = k;
        return 1;
    }
    if (depth > 1000 || !(cJSON_IsObject(at) || cJSON_IsArray(at))) return 0;
    int i = 0;
    for (const cJSON *ch = at->child; ch; ch = ch->next, i++) {
        size_t m = k;
        if (m + 2 < cap) out[m++] = '/';
        if (cJSON_IsObject(at)) m = put_token(out, m, cap, ch->string, strlen(ch->string));
        else m += (size_t)snprintf(out + m, cap > m ? cap - m : 0, "%d", i);
        if (m >= cap) m = cap - 1;
        if (find_path(ch, node, out, m, cap, end, depth + 1)) return 1;
    }
    return 0;
}

void js_path(js_ctx *c, const cJSON *node, char *out, size_t cap) {
    size_t end = 0;
    if (!node || !find_path(c->root, node, out, 0, cap, &end, 0)) end = 0;
    out[end] = 0;
    if (end == 0) snprintf(out, cap, "%s", node && node != c->root ? "(inner schema)" : "/");
}

int js_fail(js_ctx *c, const cJSON *at, const char *fmt, ...) {
    if (c->err->msg[0]) return 0;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!at) return bn_errf(c->err, "%s", msg);
    char path[256];
    js_path(c, at, path, sizeof path);
    return bn_errf(c->err, "%s at %s", msg, path);
}

int js_unsupported(js_ctx *c, const char *keyword, const cJSON *at) {
    return js_fail(c, at, "unsupported keyword '%s'", keyword);
}

/* ---- small maps ---- */

/* A map from byte strings to values, for caches keyed by text. */
typedef struct js_cache {
    struct {
        const char *key;
        size_t n;
        intptr_t val;
        uint32_t hash;
    } *e;
    size_t mask, used;
} js_cache;

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int cache_get(js_cache *m, const char *key, size_t n, intptr_t *val) {
    if (!m || !m->e) return 0;
    uint32_t h = hash_bytes(key, n);
    for (size_t i = h & m->mask; m->e[i].key; i = (i + 1) & m->mask)
        if (m->e[i].hash == h && m->e[i].n == n && memcmp(m->e[i].key, key, n) == 0) {
            *val = m->e[i].val;
            return 1;
        }
    return 0;
}

static int cache_put(js_cache *m, const char *key, size_t n, intptr_t val) {
    if ((m->used + 1) * 2 > m->mask) {
        size_t mask = m->mask ? m->mask * 2 + 1 : 63;
        void *e = calloc(mask + 1, sizeof *m->e);
        if (!e) return 0;
        js_cache old = *m;
        m->e = e;
        m->mask = mask;
        for (size_t i = 0; old.e && i <= old.mask; i++) {
            if (!old.e[i].key) continue;
            size_t k = old.e[i].hash & mask;
            while (m->e[k].key) k = (k + 1) & mask;
            m->e[k] = old.e[i];
        }
        free(old.e);
    }
    uint32_t h = hash_bytes(key, n);
    size_t i = h & m->mask;
    while (m->e[i].key) i = (i + 1) & m->mask;
    m->e[i].key = key;
    m->e[i].n = n;
    m->e[i].val = val;
    m->e[i].hash = h;
    m->used++;
    return 1;
}

/* ---- helpers over schema nodes ---- */

const cJSON *js_kw(const cJSON *node, const char *key) {
    if (!cJSON_IsObject(node)) return NULL;
    for (const cJSON *ch = node->child; ch; ch = ch->next)
        if (ch->string && strcmp(ch->string, key) == 0) return ch;
    return NULL;
}

/* Keywords that never constrain a value. */
static int is_annotation(const char *k) {
    static const char *const names[] = {
        "title", "description", "default", "examples", "example", "$schema", "$id", "id", "$comment",
        "deprecated", "readOnly", "writeOnly", "$anchor", "$dynamicAnchor", "$recursiveAnchor", "definitions",
        "$defs", "contentMediaType", "contentEncoding", "contentSchema", "$vocabulary", "nullable", "discriminator",
        "xml", "externalDocs", "markdownDescription", "enumDescriptions", "markdownEnumDescriptions",
        "errorMessage", "then", "else", NULL};
    for (const char *const *p = names; *p; p++)
        if (strcmp(k, *p) == 0) return 1;
    return 0;
}

int js_draft_knows(const js_ctx *c, const char *k) {
    static const struct {
        const char *keyword;
        int since;
    } later[] = {{"const", 6}, {"contains", 6}, {"propertyNames", 6}, {"if", 7}, {"dependentRequired", 2019},
                 {"dependentSchemas", 2019}, {"unevaluatedProperties", 2019}, {"unevaluatedItems", 2019},
                 {"minContains", 2019}, {"maxContains", 2019}, {"$recursiveRef", 2019}, {"prefixItems", 2020},
                 {"$dynamicRef", 2020}};
    for (size_t i = 0; i < sizeof later / sizeof *later; i++)
        if (strcmp(k, later[i].keyword) == 0) return c->draft >= later[i].since;
    if (strcmp(k, "dependencies") == 0) return c->draft <= 2019;
    return 1;
}

/* Keywords the compiler reads (everything else is an annotation). */
static int is_constraint(const char *k) {
    static const char *const names[] = {
        "type", "enum", "const", "properties", "required", "additionalProperties", "patternProperties",
        "items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems", "contains",
        "minContains", "maxContains", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minProperties", "maxProperties",
        "propertyNames", "dependencies", "dependentRequired", "dependentSchemas", "allOf", "anyOf", "oneOf",
        "not", "if", "$ref", "$dynamicRef", "$recursiveRef", "unevaluatedProperties", "unevaluatedItems", NULL};
    for (const char *const *p = names; *p; p++)
        if (strcmp(k, *p) == 0) return 1;
    return 0;
}

/* Whether keyword k constrains values under the schema's draft. */
static int constrains(const js_ctx *c, const char *k) {
    return !is_annotation(k) && is_constraint(k) && js_draft_knows(c, k);
}

int js_is_trivial(const js_ctx *c, const cJSON *node) {
    if (cJSON_IsTrue(node)) return 1;
    if (!cJSON_IsObject(node)) return 0;
    for (const cJSON *ch = node->child; ch; ch = ch->next)
        if (constrains(c, ch->string)) return 0;
    return 1;
}

js_list js_list_of(js_ctx *c, const cJSON *node) {
    js_list l = {NULL, 0};
    const cJSON **v = js_alloc(c, sizeof *v);
    if (!v) return l;
    v[0] = node;
    l.v = v;
    l.n = 1;
    return l;
}

js_list js_list_add(js_ctx *c, js_list l, const cJSON *node) {
    for (uint32_t i = 0; i < l.n; i++)
        if (l.v[i] == node) return l;
    const cJSON **v = js_alloc(c, (l.n + 1) * sizeof *v);
    if (!v) return l;
    if (l.n) memcpy(v, l.v, l.n * sizeof *v);
    v[l.n] = node;
    l.v = v;
    l.n++;
    return l;
}

/* ---- $ref ---- */

/* Percent-decodes s[0..n) into out (n + 1 bytes); 0 on a bad escape. */
static int percent_decode(const char *s, size_t n, char *out, size_t *len) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[k++] = s[i];
            continue;
        }
        if (i + 2 >= n) return 0;
        int v = 0;
        for (int d = 1; d <= 2; d++) {
            char h = s[i + (size_t)d];
            v = v * 16 + (h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1000);
        }
        if (v < 0) return 0;
        out[k++] = (char)v;
        i += 2;
    }
    out[k] = 0;
    *len = k;
    return 1;
}

/* Follows the JSON pointer p[0..n) (decoded) from node. */
static const cJSON *walk_pointer(const cJSON *node, const char *p, size_t n) {
    size_t i = 0;
    while (node && i < n) {
        if (p[i] != '/') return NULL;
        i++;
        char tok[512];
        size_t k = 0;
        for (; i < n && p[i] != '/'; i++) {
            if (k + 1 >= sizeof tok) return NULL;
            if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
                tok[k++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else tok[k++] = p[i];
        }
        tok[k] = 0;
        if (cJSON_IsObject(node)) {
            const cJSON *next = NULL;
            for (const cJSON *ch = node->child; ch; ch = ch->next)
                if (strlen(ch->string) == k && memcmp(ch->string, tok, k) == 0) {
                    next = ch;
                    break;
                }
            node = next;
        } else if (cJSON_IsArray(node)) {
            if (k == 0 || (tok[0] == '0' && k > 1)) return NULL;
            long idx = 0;
            for (size_t d = 0; d < k; d++) {
                if (tok[d] < '0' || tok[d] > '9' || idx > 100000000) return NULL;
                idx = idx * 10 + (tok[d] - '0');
            }
            node = cJSON_GetArrayItem(node, (int)idx);
        } else return NULL;
    }
    return node;
}

static int string_is(const cJSON *v, const char *s, size_t n, int strip_hash) {
    if (!cJSON_IsString(v)) return 0;
    size_t len = strlen(v->valuestring);
    if (strip_hash && len && v->valuestring[len - 1] == '#') len--;
    return len == n && memcmp(v->valuestring, s, n) == 0;
}

/* The node whose "$id" (or draft-4 "id") is uri, or with anchor: whose
 * "$anchor" is uri or whose "$id" is "#" uri (drafts 6-7). */
static const cJSON *find_id(const cJSON *node, const char *uri, size_t n, int anchor, int depth) {
    if (depth > 1000 || !(cJSON_IsObject(node) || cJSON_IsArray(node))) return NULL;
    if (cJSON_IsObject(node)) {
        if (anchor) {
            if (string_is(js_kw(node, "$anchor"), uri, n, 0) || string_is(js_kw(node, "$dynamicAnchor"), uri, n, 0))
                return node;
            for (int i = 0; i < 2; i++) {
                const cJSON *id = js_kw(node, i ? "id" : "$id");
                if (cJSON_IsString(id) && id->valuestring[0] == '#' && strlen(id->valuestring) == n + 1 &&
                    memcmp(id->valuestring + 1, uri, n) == 0)
                    return node;
            }
        } else if (string_is(js_kw(node, "$id"), uri, n, 1) || string_is(js_kw(node, "id"), uri, n, 1)) {
            return node;
        }
    }
    for (const cJSON *ch = node->child; ch; ch = ch->next) {
        if (cJSON_IsObject(node) && (strcmp(ch->string, "enum") == 0 || strcmp(ch->string, "const") == 0)) continue;
        const cJSON *r = find_id(ch, uri, n, anchor, depth + 1);
        if (r) return r;
    }
    return NULL;
}

/* The base URI of the root without its file name ("http://x/a/" of "http://x/a/b.json"). */
static size_t root_dir(const cJSON *root, const char **out) {
    const cJSON *id = js_kw(root, "$id");
    if (!cJSON_IsString(id)) id = js_kw(root, "id");
    if (!cJSON_IsString(id)) return 0;
    const char *s = id->valuestring, *slash = strrchr(s, '/');
    *out = s;
    return slash ? (size_t)(slash - s) + 1 : 0;
}

static const cJSON *resolve_ref(js_ctx *c, const cJSON *ref, const cJSON *at) {
    if (!cJSON_IsString(ref)) {
        js_fail(c, at, "$ref is not a string");
        return NULL;
    }
    const char *s = ref->valuestring;
    size_t n = strlen(s);
    intptr_t cached;
    if (cache_get(c->refs, s, n, &cached)) return (const cJSON *)cached;
    const char *hash = memchr(s, '#', n);
    size_t base_n = hash ? (size_t)(hash - s) : n;
    const char *frag = hash ? hash + 1 : s + n;
    size_t frag_n = n - base_n - (hash ? 1 : 0);
    const cJSON *doc = NULL;
    if (base_n == 0) doc = c->root;
    else {
        doc = find_id(c->root, s, base_n, 0, 0);
        const char *dir;
        size_t dn = root_dir(c->root, &dir);
        if (!doc && dn && base_n + dn < 2048) {
            char full[2048];
            memcpy(full, dir, dn);
            memcpy(full + dn, s, base_n);
            doc = find_id(c->root, full, dn + base_n, 0, 0);
            if (!doc && dn + base_n > 0) {
                /* the root itself, named by its full id */
                const cJSON *rid = js_kw(c->root, "$id");
                if (!cJSON_IsString(rid)) rid = js_kw(c->root, "id");
                if (cJSON_IsString(rid)) {
                    size_t rl = strlen(rid->valuestring);
                    if (rl && rid->valuestring[rl - 1] == '#') rl--;
                    if (rl == base_n && memcmp(rid->valuestring, s, base_n) == 0) doc = c->root;
                }
            }
        }
    }
    const cJSON *target = NULL;
    if (doc) {
        char *dec = js_alloc(c, frag_n + 1);
        size_t dn = 0;
        if (!dec) return NULL;
        if (percent_decode(frag, frag_n, dec, &dn)) {
            if (dn == 0) target = doc;
            else if (dec[0] == '/') target = walk_pointer(doc, dec, dn);
            else target = find_id(doc, dec, dn, 1, 0);
        }
    }
    if (!target) {
        char path[256];
        js_path(c, at, path, sizeof path);
        if (!c->err->msg[0]) bn_errf(c->err, "$ref '%s' at %s points nowhere", s, path);
        return NULL;
    }
    if (!c->refs) c->refs = calloc(1, sizeof *c->refs);
    if (c->refs) cache_put(c->refs, s, n, (intptr_t)target);
    return target;
}

/* ---- patterns ---- */

bn_rxid js_pattern(js_ctx *c, const cJSON *pattern) {
    if (!cJSON_IsString(pattern)) {
        js_fail(c, pattern, "pattern is not a string");
        return BN_RX_ERROR;
    }
    const char *s = pattern->valuestring;
    size_t n = strlen(s);
    intptr_t cached;
    if (cache_get(c->patterns, s, n, &cached)) return (bn_rxid)cached;
    bn_rxid out = BN_RX_ERROR;
    bn_err e = {0};
    if (!bn_ecma_regex(c->rx, s, n, BN_ECMA_SEARCH, BN_ECMA_JSON_STRING, 0, &out, &e)) {
        js_fail(c, pattern, "unsupported pattern /%s/ (%s)", s, e.msg);
        return BN_RX_ERROR;
    }
    if (!c->patterns) c->patterns = calloc(1, sizeof *c->patterns);
    if (c->patterns) cache_put(c->patterns, s, n, out);
    return out;
}

bn_rxid js_format(js_ctx *c, const char *name) {
    size_t n = strlen(name);
    char *key = js_alloc(c, n + 2);
    if (!key) return BN_RX_ERROR;
    key[0] = 1; /* formats and patterns share the cache; no pattern starts with \x01 */
    memcpy(key + 1, name, n + 1);
    intptr_t cached;
    if (cache_get(c->patterns, key, n + 1, &cached)) return (bn_rxid)cached;
    bn_rxid out = bn_jfmt_regex(c->rx, name);
    if (out == BN_RX_ERROR) {
        js_fail(c, NULL, "format '%s' could not be compiled", name);
        return out;
    }
    if (!c->patterns) c->patterns = calloc(1, sizeof *c->patterns);
    if (c->patterns) cache_put(c->patterns, key, n + 1, out);
    return out;
}

/* ---- rules by regex ---- */

bn_gx js_rx_rule(js_ctx *c, bn_rxid re, const char *hint) {
    if (re == BN_RX_ERROR) return BN_GX_ERROR;
    if (bn_rx_kind_of(c->rx, re) == BN_RX_NOTHING) return bn_gb_alt(c->gb, NULL, 0);
    if ((c->rx_rule_used + 1) * 2 > c->rx_rule_mask) {
        size_t mask = c->rx_rule_mask ? c->rx_rule_mask * 2 + 1 : 255;
        int32_t *k = malloc((mask + 1) * sizeof *k), *v = malloc((mask + 1) * sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            js_fail(c, NULL, "out of memory");
            return BN_GX_ERROR;
        }
        memset(k, 0xff, (mask + 1) * sizeof *k);
        for (size_t i = 0; c->rx_rule_keys && i <= c->rx_rule_mask; i++) {
            if (c->rx_rule_keys[i] < 0) continue;
            size_t h = ((uint32_t)c->rx_rule_keys[i] * 2654435761u) & mask;
            while (k[h] >= 0) h = (h + 1) & mask;
            k[h] = c->rx_rule_keys[i];
            v[h] = c->rx_rule_vals[i];
        }
        free(c->rx_rule_keys);
        free(c->rx_rule_vals);
        c->rx_rule_keys = k;
        c->rx_rule_vals = v;
        c->rx_rule_mask = mask;
    }
    size_t h = ((uint32_t)re * 2654435761u) & c->rx_rule_mask;
    while (c->rx_rule_keys[h] >= 0 && c->rx_rule_keys[h] != re) h = (h + 1) & c->rx_rule_mask;
    if (c->rx_rule_keys[h] == re) return bn_gb_ref(c->gb, c->rx_rule_vals[h]);
    int32_t rule = bn_gb_new_rule(c->gb, hint);
    if (rule < 0 || !bn_gb_define(c->gb, rule, bn_gb_term(c->gb, re), c->err)) return BN_GX_ERROR;
    c->rx_rule_keys[h] = re;
    c->rx_rule_vals[h] = rule;
    c->rx_rule_used++;
    return bn_gb_ref(c->gb, rule);
}

/* ---- branches ---- */

static js_branch *branch_new(js_ctx *c) {
    js_branch *b = js_alloc(c, sizeof *b);
    if (!b) return NULL;
    memset(b, 0, sizeof *b);
    b->types = JS_ALL;
    return b;
}

static void *dup(js_ctx *c, const void *p, size_t n) {
    if (!n) return NULL;
    void *q = js_alloc(c, n);
    if (q) memcpy(q, p, n);
    return q;
}

static js_branch *branch_clone(js_ctx *c, const js_branch *b) {
    js_branch *x = js_alloc(c, sizeof *x);
    if (!x) return NULL;
    *x = *b;
    x->cap = b->nodes.n + 4;
    x->nodes.v = js_alloc(c, x->cap * sizeof *x->nodes.v);
    if (!x->nodes.v) return NULL;
    if (b->nodes.n) memcpy(x->nodes.v, b->nodes.v, b->nodes.n * sizeof *b->nodes.v);
    x->forbid = dup(c, b->forbid, b->n_forbid * sizeof *b->forbid);
    x->need = dup(c, b->need, b->n_need * sizeof *b->need);
    x->excluded = dup(c, b->excluded, b->n_excluded * sizeof *b->excluded);
    x->not_pattern = dup(c, b->not_pattern, b->n_not_pattern * sizeof *b->not_pattern);
    return x;
}

static int branch_has(const js_branch *b, const cJSON *node) {
    for (uint32_t i = 0; i < b->nodes.n; i++)
        if (b->nodes.v[i] == node) return 1;
    return 0;
}

static int branch_push(js_ctx *c, js_branch *b, const cJSON *node) {
    if (b->nodes.n == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 8;
        const cJSON **v = js_alloc(c, cap * sizeof *v);
        if (!v) return 0;
        if (b->nodes.n) memcpy(v, b->nodes.v, b->nodes.n * sizeof *v);
        b->nodes.v = v;
        b->cap = cap;
    }
    b->nodes.v[b->nodes.n++] = node;
    return 1;
}

/* Appends to a grow-by-copy array in the arena. */
static int push_ptr(js_ctx *c, void **arr, uint32_t *n, const void *item, size_t size) {
    void *v = js_alloc(c, (*n + 1) * size);
    if (!v) return 0;
    if (*n) memcpy(v, *arr, *n * size);
    memcpy((char *)v + *n * size, item, size);
    *arr = v;
    (*n)++;
    return 1;
}

static int add_name(js_ctx *c, js_name **arr, uint32_t *n, const char *s) {
    js_name nm = {s, strlen(s)};
    for (uint32_t i = 0; i < *n; i++)
        if ((*arr)[i].n == nm.n && memcmp((*arr)[i].s, s, nm.n) == 0) return 1;
    return push_ptr(c, (void **)arr, n, &nm, sizeof nm);
}

static int set_push(js_ctx *c, js_bset *set, js_branch *b, const cJSON *at) {
    if (set->n >= JS_MAX_BRANCHES) return js_fail(c, at, "too many alternatives (anyOf/oneOf/dependencies multiply past %d)", JS_MAX_BRANCHES);
    if (set->n == set->cap) {
        uint32_t cap = set->cap ? set->cap * 2 : 4;
        js_branch **v = js_alloc(c, cap * sizeof *v);
        if (!v) return 0;
        if (set->n) memcpy(v, set->v, set->n * sizeof *v);
        set->v = v;
        set->cap = cap;
    }
    set->v[set->n++] = b;
    return 1;
}

static int set_clone(js_ctx *c, const js_bset *set, js_bset *out, const cJSON *at) {
    memset(out, 0, sizeof *out);
    for (uint32_t i = 0; i < set->n; i++) {
        js_branch *b = branch_clone(c, set->v[i]);
        if (!b || !set_push(c, out, b, at)) return 0;
    }
    return 1;
}

static int set_append(js_ctx *c, js_bset *set, const js_bset *more, const cJSON *at) {
    for (uint32_t i = 0; i < more->n; i++)
        if (!set_push(c, set, more->v[i], at)) return 0;
    return 1;
}

/* ---- expansion ---- */

static int expand_node(js_ctx *c, js_bset *set, const cJSON *node);
static int negate(js_ctx *c, js_bset *set, const cJSON *n, const cJSON *at, unsigned depth);

static unsigned type_names(js_ctx *c, const cJSON *t, int *ok) {
    *ok = 1;
    if (cJSON_IsString(t)) {
        static const struct {
            const char *name;
            unsigned mask;
        } types[] = {{"null", JS_NULL}, {"boolean", JS_BOOL}, {"integer", JS_INT}, {"number", JS_NUM},
                     {"string", JS_STR}, {"array", JS_ARR}, {"object", JS_OBJ}, {"any", JS_ALL}};
        for (size_t i = 0; i < sizeof types / sizeof *types; i++)
            if (strcmp(t->valuestring, types[i].name) == 0) return types[i].mask;
        *ok = 0;
        js_fail(c, t, "unknown type '%s'", t->valuestring);
        return 0;
    }
    if (cJSON_IsArray(t)) {
        unsigned m = 0;
        for (const cJSON *x = t->child; x; x = x->next) {
            m |= type_names(c, x, ok);
            if (!*ok) return 0;
        }
        return m;
    }
    *ok = 0;
    js_fail(c, t, "type is not a string or an array");
    return 0;
}

unsigned js_type_mask(js_ctx *c, const cJSON *node, const cJSON *t, int *ok) {
    unsigned m = type_names(c, t, ok);
    if (*ok && c->opts.openapi_nullable && cJSON_IsTrue(js_kw(node, "nullable"))) m |= JS_NULL;
    return m;
}

/* anyOf / oneOf: one copy of the set per member. */
static int split(js_ctx *c, js_bset *set, const cJSON *members, const cJSON *at, int exclusive) {
    if (!cJSON_IsArray(members) || !members->child)
        return js_fail(c, at, "%s is not a non-empty array", exclusive ? "oneOf" : "anyOf");
    if (!members->child->next) return expand_node(c, set, members->child); /* one member: allOf */
    uint32_t n_groups = (uint32_t)cJSON_GetArraySize(members);
    js_bset *groups = js_alloc(c, n_groups * sizeof *groups);
    if (!groups) return 0;
    uint32_t g = 0;
    for (const cJSON *m = members->child; m; m = m->next, g++) {
        if (!set_clone(c, set, &groups[g], at) || !expand_node(c, &groups[g], m)) return 0;
    }
    if (exclusive) {
        /* a value may match only one member: where the branches of two
         * members are not proved disjoint, each member's branches also
         * take the negation of the other (exact, or refused) */
        js_shape **shapes = js_alloc(c, n_groups * sizeof *shapes);
        uint8_t *apart = js_alloc(c, (size_t)n_groups * n_groups);
        if (!shapes || !apart) return 0;
        bn_err *saved = c->err, scratch = {0};
        c->err = &scratch;
        int ok = 1;
        for (g = 0; g < n_groups && ok; g++) {
            shapes[g] = js_alloc(c, (groups[g].n + 1) * sizeof **shapes);
            ok = shapes[g] != NULL;
            for (uint32_t x = 0; ok && x < groups[g].n; x++) ok = js_shape_of(c, groups[g].v[x], &shapes[g][x]);
        }
        uint32_t n_close = 0;
        for (uint32_t i = 0; i < n_groups; i++)
            for (uint32_t j = i + 1; j < n_groups; j++) {
                int disjoint = ok;
                for (uint32_t x = 0; disjoint && x < groups[i].n; x++)
                    for (uint32_t y = 0; disjoint && y < groups[j].n; y++)
                        disjoint = js_shapes_disjoint(c, &shapes[i][x], &shapes[j][y], 0);
                apart[i * n_groups + j] = apart[j * n_groups + i] = (uint8_t)disjoint;
                n_close += !disjoint;
            }
        c->err = saved;
        if (n_close > 64) return js_fail(c, at, "unsupported keyword 'oneOf' (%u pairs of members may overlap)", n_close);
        g = 0;
        for (const cJSON *m = members->child; m; m = m->next, g++) {
            uint32_t j = 0;
            for (const cJSON *o = members->child; o; o = o->next, j++) {
                if (j == g || apart[g * n_groups + j]) continue;
                bn_err *outer = c->err, why = {0};
                c->err = &why;
                int negated = negate(c, &groups[g], o, at, 0);
                c->err = outer;
                if (!negated)
                    return js_fail(c, at, "unsupported keyword 'oneOf' (members %u and %u may overlap; negating %u: %.300s)", g, j, j, why.msg);
            }
        }
    }
    js_bset out = {0};
    for (g = 0; g < n_groups; g++)
        if (!set_append(c, &out, &groups[g], at)) return 0;
    *set = out;
    return 1;
}

/* dependencies / dependentRequired / dependentSchemas: for each key, the
 * objects without it, and the objects with it that meet its dependency. */
static int dependencies(js_ctx *c, js_bset *set, const cJSON *deps, int schemas_only, int names_only) {
    if (!cJSON_IsObject(deps)) return js_fail(c, deps, "%s is not an object", deps->string);
    for (const cJSON *d = deps->child; d; d = d->next) {
        int is_names = cJSON_IsArray(d);
        if ((is_names && schemas_only) || (!is_names && names_only)) return js_fail(c, d, "malformed %s", deps->string);
        if (is_names ? d->child == NULL : js_is_trivial(c, d)) continue;
        js_bset present;
        if (!set_clone(c, set, &present, d)) return 0;
        for (uint32_t i = 0; i < set->n; i++)
            if (!add_name(c, &set->v[i]->forbid, &set->v[i]->n_forbid, d->string)) return 0;
        for (uint32_t i = 0; i < present.n; i++) {
            js_branch *b = present.v[i];
            b->types &= JS_OBJ;
            if (!add_name(c, &b->need, &b->n_need, d->string)) return 0;
            if (is_names)
                for (const cJSON *x = d->child; x; x = x->next) {
                    if (!cJSON_IsString(x)) return js_fail(c, x, "dependency is not a string");
                    if (!add_name(c, &b->need, &b->n_need, x->valuestring)) return 0;
                }
        }
        if (!is_names && !expand_node(c, &present, d)) return 0;
        if (!set_append(c, set, &present, d)) return 0;
    }
    return 1;
}

static int expand_node(js_ctx *c, js_bset *set, const cJSON *node) {
    if (++c->work > JS_MAX_WORK) return js_fail(c, node, "schema too large to compile (expansion budget spent)");
    if (cJSON_IsTrue(node)) return 1;
    if (cJSON_IsFalse(node)) {
        set->n = 0;
        return 1;
    }
    if (!cJSON_IsObject(node)) return js_fail(c, node, "schema is not an object or a boolean");
    /* a node met again while it is being expanded: a $ref loop that
     * consumes nothing (only a property or an item may recur) */
    for (uint32_t i = 0; i < c->n_stack; i++)
        if (c->stack[i] == node) return js_fail(c, node, "$ref cycle with no base case");
    int all_have = 1;
    for (uint32_t i = 0; i < set->n && all_have; i++) all_have = branch_has(set->v[i], node);
    if (set->n == 0 || all_have) return 1;
    if (c->n_stack >= JS_MAX_DEPTH) return js_fail(c, node, "schema nested too deeply");
    const cJSON *ref = js_kw(node, "$ref");
    if (!ref) ref = js_kw(node, "$recursiveRef");
    if (!ref) ref = js_kw(node, "$dynamicRef");
    c->stack[c->n_stack++] = node;
    if (ref && c->draft <= 7) {
        /* drafts 4-7: a $ref's siblings are ignored */
        const cJSON *target = resolve_ref(c, ref, node);
        int ok = target && expand_node(c, set, target);
        c->n_stack--;
        return ok;
    }
    /* properties are listed in the order the text shows them: a node whose
     * $ref or allOf comes before its own properties goes after them */
    int late = 0;
    for (const cJSON *k = node->child; k; k = k->next) {
        if (strcmp(k->string, "properties") == 0) break;
        if (strcmp(k->string, "$ref") == 0 || strcmp(k->string, "allOf") == 0) late = 1;
    }
    if (!js_kw(node, "properties")) late = 0;
    for (uint32_t i = 0; !late && i < set->n; i++)
        if (!branch_has(set->v[i], node) && !branch_push(c, set->v[i], node)) return 0;
    int ok = 1;
    if (ref) {
        const cJSON *target = resolve_ref(c, ref, node);
        ok = target && expand_node(c, set, target);
    }
    const cJSON *k;
    if (ok && (k = js_kw(node, "allOf"))) {
        if (!cJSON_IsArray(k)) ok = js_fail(c, k, "allOf is not an array");
        for (const cJSON *m = k->child; ok && m; m = m->next) ok = expand_node(c, set, m);
    }
    if (ok && (k = js_kw(node, "anyOf"))) ok = split(c, set, k, k, 0);
    if (ok && (k = js_kw(node, "oneOf"))) ok = split(c, set, k, k, 1);
    if (ok && (k = js_kw(node, "not"))) ok = negate(c, set, k, k, 0);
    if (ok && (k = js_kw(node, "dependencies")) && js_draft_knows(c, "dependencies")) ok = dependencies(c, set, k, 0, 0);
    if (ok && (k = js_kw(node, "dependentRequired")) && js_draft_knows(c, "dependentRequired")) ok = dependencies(c, set, k, 0, 1);
    if (ok && (k = js_kw(node, "dependentSchemas")) && js_draft_knows(c, "dependentSchemas")) ok = dependencies(c, set, k, 1, 0);
    if (ok && (k = js_kw(node, "if")) && js_draft_knows(c, "if")) {
        const cJSON *then = js_kw(node, "then"), *els = js_kw(node, "else");
        if (then || els) {
            js_bset no;
            ok = set_clone(c, set, &no, k) && expand_node(c, set, k) && (!then || expand_node(c, set, then)) &&
                 negate(c, &no, k, k, 0) && (!els || expand_node(c, &no, els)) && set_append(c, set, &no, k);
        }
    }
    for (uint32_t i = 0; ok && late && i < set->n; i++)
        if (!branch_has(set->v[i], node) && !branch_push(c, set->v[i], node)) ok = 0;
    c->n_stack--;
    return ok;
}

/* ---- negation ---- */

/* Synthetic schema nodes (what a negation leaves to check), in the arena. */
static cJSON *syn_node(js_ctx *c, int type, const char *key) {
    cJSON *n = js_alloc(c, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->type = type;
    n->string = (char *)key;
    return n;
}

static void syn_add(cJSON *obj, cJSON *member) {
    if (!obj->child) {
        obj->child = member;
        member->prev = member;
        return;
    }
    cJSON *last = obj->child->prev;
    last->next = member;
    member->prev = last;
    obj->child->prev = member;
}

/* {"type": type, key: number} */
static cJSON *syn_bound(js_ctx *c, const char *type, const char *key, double v) {
    cJSON *o = syn_node(c, cJSON_Object, NULL), *t = syn_node(c, cJSON_String, "type"), *k = syn_node(c, cJSON_Number, key);
    if (!o || !t || !k) return NULL;
    t->valuestring = (char *)type;
    k->valuedouble = v;
    k->valueint = v >= 2147483647.0 ? 2147483647 : v <= -2147483648.0 ? -2147483647 - 1 : (int)v;
    syn_add(o, t);
    syn_add(o, k);
    return o;
}

/* {"type": "number"} bounded above (upper) or below by v, strictly or not,
 * spelled as the schema's draft reads it. */
static cJSON *syn_number_bound(js_ctx *c, int upper, double v, int strict) {
    if (c->draft == 4) {
        cJSON *o = syn_bound(c, "number", upper ? "maximum" : "minimum", v);
        cJSON *ex = syn_node(c, strict ? cJSON_True : cJSON_False, upper ? "exclusiveMaximum" : "exclusiveMinimum");
        if (!o || !ex) return NULL;
        syn_add(o, ex);
        return o;
    }
    return syn_bound(c, "number", strict ? (upper ? "exclusiveMaximum" : "exclusiveMinimum") : (upper ? "maximum" : "minimum"), v);
}

/* {"properties": {name: {"not": schema}}} */
static cJSON *syn_property_not(js_ctx *c, const char *name, const cJSON *schema) {
    cJSON *o = syn_node(c, cJSON_Object, NULL), *props = syn_node(c, cJSON_Object, "properties");
    cJSON *p = syn_node(c, cJSON_Object, name), *not_ = js_alloc(c, sizeof *not_);
    if (!o || !props || !p || !not_) return NULL;
    *not_ = *schema; /* shares the schema's members, read only */
    not_->string = (char *)"not";
    not_->next = not_->prev = NULL;
    syn_add(p, not_);
    syn_add(props, p);
    syn_add(o, props);
    return o;
}

static int set_restrict_types(js_bset *set, unsigned keep) {
    for (uint32_t i = 0; i < set->n; i++) set->v[i]->types &= keep;
    return 1;
}

/* The values that fail one keyword k of a schema (of the schema node n),
 * into set. Returns 1, 0 with a message (unsupported: refused), or -1
 * when the keyword is not a constraint alone (handled with another). */
static int negate_keyword(js_ctx *c, js_bset *set, const cJSON *n, const cJSON *k, unsigned depth) {
    const char *kw = k->string;
    int ok = 1;
    if (strcmp(kw, "type") == 0) {
        unsigned tm = js_type_mask(c, n, k, &ok);
        return ok && set_restrict_types(set, ~tm & JS_ALL);
    }
    if (strcmp(kw, "enum") == 0 || strcmp(kw, "const") == 0) {
        int is_enum = kw[0] == 'e';
        if (is_enum && !cJSON_IsArray(k)) return js_fail(c, k, "enum is not an array");
        for (const cJSON *v = is_enum ? k->child : k; v; v = is_enum ? v->next : NULL)
            for (uint32_t i = 0; i < set->n; i++)
                if (!push_ptr(c, (void **)&set->v[i]->excluded, &set->v[i]->n_excluded, &v, sizeof v)) return 0;
        return 1;
    }
    if (strcmp(kw, "required") == 0) {
        if (!cJSON_IsArray(k)) return js_fail(c, k, "required is not an array");
        /* objects missing one of the names */
        js_bset out = {0};
        for (const cJSON *x = k->child; x; x = x->next) {
            if (!cJSON_IsString(x)) return js_fail(c, x, "required name is not a string");
            js_bset copy;
            if (!set_clone(c, set, &copy, k)) return 0;
            for (uint32_t i = 0; i < copy.n; i++)
                if (!add_name(c, &copy.v[i]->forbid, &copy.v[i]->n_forbid, x->valuestring)) return 0;
            set_restrict_types(&copy, JS_OBJ);
            if (!set_append(c, &out, &copy, k)) return 0;
        }
        *set = out;
        return 1;
    }
    if (strcmp(kw, "properties") == 0) {
        const cJSON *ap = js_kw(n, "additionalProperties"), *pp = js_kw(n, "patternProperties");
        if ((ap && !js_is_trivial(c, ap)) || (pp && cJSON_GetArraySize(pp) > 0)) return js_unsupported(c, "not", k);
        if (!cJSON_IsObject(k)) return js_fail(c, k, "properties is not an object");
        /* objects with one of the properties present and failing its schema */
        js_bset out = {0};
        for (const cJSON *p = k->child; p; p = p->next) {
            if (js_is_trivial(c, p)) continue;
            js_bset copy;
            cJSON *syn = syn_property_not(c, p->string, p);
            if (!syn || !set_clone(c, set, &copy, k)) return 0;
            for (uint32_t i = 0; i < copy.n; i++)
                if (!add_name(c, &copy.v[i]->need, &copy.v[i]->n_need, p->string)) return 0;
            set_restrict_types(&copy, JS_OBJ);
            if (!expand_node(c, &copy, syn) || !set_append(c, &out, &copy, k)) return 0;
        }
        *set = out;
        return 1;
    }
    if (strcmp(kw, "additionalProperties") == 0 || strcmp(kw, "patternProperties") == 0) {
        if (js_kw(n, "properties")) return -1; /* with properties */
        int trivial = kw[0] == 'a' ? js_is_trivial(c, k) : cJSON_IsObject(k);
        for (const cJSON *p = kw[0] == 'p' && cJSON_IsObject(k) ? k->child : NULL; p; p = p->next) trivial &= js_is_trivial(c, p);
        if (trivial) {
            set->n = 0; /* every value meets it */
            return 1;
        }
        return js_unsupported(c, "not", k);
    }
    if (strcmp(kw, "not") == 0) return expand_node(c, set, k);
    if (strcmp(kw, "$ref") == 0) {
        const cJSON *target = resolve_ref(c, k, n);
        return target && negate(c, set, target, k, depth + 1);
    }
    if (strcmp(kw, "anyOf") == 0) {
        if (!cJSON_IsArray(k)) return js_fail(c, k, "anyOf is not an array");
        for (const cJSON *m = k->child; m; m = m->next)
            if (!negate(c, set, m, k, depth + 1)) return 0;
        return 1;
    }
    if (strcmp(kw, "allOf") == 0) {
        if (!cJSON_IsArray(k)) return js_fail(c, k, "allOf is not an array");
        js_bset out = {0};
        for (const cJSON *m = k->child; m; m = m->next) {
            js_bset copy;
            if (!set_clone(c, set, &copy, k) || !negate(c, &copy, m, k, depth + 1) || !set_append(c, &out, &copy, k))
                return 0;
        }
        *set = out;
        return 1;
    }
    if (strcmp(kw, "pattern") == 0) {
        for (uint32_t i = 0; i < set->n; i++)
            if (!push_ptr(c, (void **)&set->v[i]->not_pattern, &set->v[i]->n_not_pattern, &k, sizeof k)) return 0;
        return set_restrict_types(set, JS_STR);
    }
    /* bounds: the values beyond them, as a synthetic schema */
    const char *type = NULL, *key = NULL;
    double v = cJSON_IsNumber(k) ? k->valuedouble : 0;
    if (strcmp(kw, "minLength") == 0 || strcmp(kw, "minItems") == 0 || strcmp(kw, "minProperties") == 0) {
        if (!cJSON_IsNumber(k) || v < 0) return js_fail(c, k, "'%s' is not a non-negative integer", kw);
        if (v < 1) {
            set->n = 0; /* every length is at least 0 */
            return 1;
        }
        type = kw[3] == 'L' ? "string" : kw[3] == 'I' ? "array" : "object";
        key = kw[3] == 'L' ? "maxLength" : kw[3] == 'I' ? "maxItems" : "maxProperties";
        v = ceil(v) - 1;
    } else if (strcmp(kw, "maxLength") == 0 || strcmp(kw, "maxItems") == 0 || strcmp(kw, "maxProperties") == 0) {
        if (!cJSON_IsNumber(k) || v < 0) return js_fail(c, k, "'%s' is not a non-negative integer", kw);
        type = kw[3] == 'L' ? "string" : kw[3] == 'I' ? "array" : "object";
        key = kw[3] == 'L' ? "minLength" : kw[3] == 'I' ? "minItems" : "minProperties";
        v = floor(v) + 1;
    } else if (strcmp(kw, "minimum") == 0 || strcmp(kw, "maximum") == 0 || strcmp(kw, "exclusiveMinimum") == 0 ||
               strcmp(kw, "exclusiveMaximum") == 0) {
        /* as read_bound reads them: the numbers beyond the bound */
        int lower = strstr(kw, "inimum") != NULL, is_ex = kw[0] == 'e', strict;
        if (is_ex) {
            if (c->draft == 4) return -1; /* part of minimum / maximum */
            if (!cJSON_IsNumber(k) && !cJSON_IsBool(k)) return js_fail(c, k, "'%s' is not a number", kw);
            v = cJSON_IsNumber(k) ? k->valuedouble : cJSON_IsTrue(k) ? 1 : 0;
            strict = 1;
        } else {
            if (!cJSON_IsNumber(k)) return js_fail(c, k, "'%s' is not a number", kw);
            const cJSON *ex = js_kw(n, lower ? "exclusiveMinimum" : "exclusiveMaximum");
            strict = c->draft == 4 && ex && (cJSON_IsTrue(ex) || (cJSON_IsNumber(ex) && ex->valuedouble != 0));
        }
        cJSON *syn = syn_number_bound(c, lower, v, !strict); /* below a lower bound: an upper one */
        return syn && expand_node(c, set, syn);
    }
    if (!type) return js_unsupported(c, "not", k);
    cJSON *syn = syn_bound(c, type, key, v);
    return syn && expand_node(c, set, syn);
}

/* Restricts set to the values that fail n: the union, over n's
 * constraining keywords, of the values that fail that keyword. */
static int negate(js_ctx *c, js_bset *set, const cJSON *n, const cJSON *at, unsigned depth) {
    if (depth > 32) return js_unsupported(c, "not", at);
    if (cJSON_IsFalse(n)) return 1;
    if (js_is_trivial(c, n)) {
        set->n = 0;
        return 1;
    }
    if (!cJSON_IsObject(n)) return js_fail(c, n, "schema is not an object or a boolean");
    const cJSON *ref = js_kw(n, "$ref");
    if (ref && c->draft <= 7) {
        const cJSON *target = resolve_ref(c, ref, n);
        return target && negate(c, set, target, at, depth + 1);
    }
    js_bset out = {0};
    for (const cJSON *k = n->child; k; k = k->next) {
        /* a keyword the draft does not know constrains nothing there */
        if (!constrains(c, k->string)) continue;
        js_bset copy;
        if (!set_clone(c, set, &copy, at)) return 0;
        int r = negate_keyword(c, &copy, n, k, depth);
        if (r == 0) return 0;
        if (r > 0 && !set_append(c, &out, &copy, at)) return 0;
    }
    *set = out;
    return 1;
}

int js_expand(js_ctx *c, js_list list, js_bset *out) {
    memset(out, 0, sizeof *out);
    js_branch *b = branch_new(c);
    if (!b || !set_push(c, out, b, NULL)) return 0;
    for (uint32_t i = 0; i < list.n; i++)
        if (!expand_node(c, out, list.v[i])) return 0;
    return 1;
}

/* ---- the memo of compiled conjunctions ---- */

typedef struct {
    const cJSON **key;
    uint32_t n;
    uint32_t hash;
    bn_gx gx;
    int32_t rule; /* the rule made when the set recurred while compiling, or -1 */
    int done;
} memo_entry;

struct js_memo {
    memo_entry *e;
    size_t n, cap;
    int32_t *table;
    size_t mask;
};

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (const cJSON *const *)a, y = (uintptr_t) * (const cJSON *const *)b;
    return (x > y) - (x < y);
}

static uint32_t hash_key(const cJSON **key, uint32_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < n; i++) h = (h ^ (uint64_t)(uintptr_t)key[i]) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

static int32_t memo_find(js_memo *m, const cJSON **key, uint32_t n, uint32_t h) {
    if (!m->table) return -1;
    for (size_t i = h & m->mask; m->table[i] >= 0; i = (i + 1) & m->mask) {
        memo_entry *e = &m->e[m->table[i]];
        if (e->hash == h && e->n == n && memcmp(e->key, key, n * sizeof *key) == 0) return m->table[i];
    }
    return -1;
}

static int32_t memo_insert(js_ctx *c, const cJSON **key, uint32_t n, uint32_t h) {
    js_memo *m = c->memo;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        memo_entry *e = realloc(m->e, cap * sizeof *e);
        if (!e) return js_fail(c, NULL, "out of memory") - 1;
        m->e = e;
        m->cap = cap;
    }
    if ((m->n + 1) * 2 > m->mask) {
        size_t mask = m->mask ? m->mask * 2 + 1 : 127;
        int32_t *t = malloc((mask + 1) * sizeof *t);
        if (!t) return js_fail(c, NULL, "out of memory") - 1;
        memset(t, 0xff, (mask + 1) * sizeof *t);
        for (size_t i = 0; i < m->n; i++) {
            size_t k = m->e[i].hash & mask;
            while (t[k] >= 0) k = (k + 1) & mask;
            t[k] = (int32_t)i;
        }
        free(m->table);
        m->table = t;
        m->mask = mask;
    }
    size_t k = h & m->mask;
    while (m->table[k] >= 0) k = (k + 1) & m->mask;
    m->table[k] = (int32_t)m->n;
    m->e[m->n] = (memo_entry){key, n, h, BN_GX_ERROR, -1, 0};
    return (int32_t)m->n++;
}

bn_gx js_compile_list(js_ctx *c, js_list list) {
    /* the key: the set of nodes that constrain, sorted */
    const cJSON **key = js_alloc(c, (list.n + 1) * sizeof *key);
    if (!key) return BN_GX_ERROR;
    uint32_t n = 0;
    for (uint32_t i = 0; i < list.n; i++) {
        if (cJSON_IsFalse(list.v[i])) return bn_gb_alt(c->gb, NULL, 0);
        if (!cJSON_IsTrue(list.v[i])) key[n++] = list.v[i];
    }
    qsort(key, n, sizeof *key, cmp_ptr);
    uint32_t u = 0;
    for (uint32_t i = 0; i < n; i++)
        if (u == 0 || key[u - 1] != key[i]) key[u++] = key[i];
    n = u;
    int trivial = 1;
    for (uint32_t i = 0; i < n && trivial; i++) trivial = js_is_trivial(c, key[i]);
    if (trivial) return js_any_value(c, 0);
    uint32_t h = hash_key(key, n);
    int32_t idx = memo_find(c->memo, key, n, h);
    if (idx >= 0) {
        memo_entry *e = &c->memo->e[idx];
        if (e->done) return e->gx;
        if (e->rule < 0) {
            e->rule = bn_gb_new_rule(c->gb, "schema");
            if (e->rule < 0) return BN_GX_ERROR;
        }
        return bn_gb_ref(c->gb, e->rule);
    }
    if (c->depth >= JS_MAX_DEPTH) return js_fail(c, list.n ? list.v[0] : NULL, "schema nested too deeply"), BN_GX_ERROR;
    idx = memo_insert(c, key, n, h);
    if (idx < 0) return BN_GX_ERROR;
    c->depth++;
    js_bset set;
    bn_gx result = BN_GX_ERROR;
    if (js_expand(c, list, &set)) {
        bn_gx *alts = js_alloc(c, (set.n + 1) * sizeof *alts);
        uint32_t k = 0;
        for (uint32_t i = 0; alts && i < set.n; i++) {
            js_shape s;
            if (!js_shape_of(c, set.v[i], &s)) break;
            bn_gx g = js_emit_shape(c, &s);
            if (g == BN_GX_ERROR) break;
            alts[k++] = g;
        }
        if (alts && k == set.n && !c->err->msg[0]) result = k == 1 ? alts[0] : bn_gb_alt(c->gb, alts, k);
    }
    c->depth--;
    memo_entry *e = &c->memo->e[idx];
    if (result != BN_GX_ERROR && e->rule >= 0) {
        if (!bn_gb_define(c->gb, e->rule, result, c->err)) result = BN_GX_ERROR;
        else result = bn_gb_ref(c->gb, e->rule);
    }
    e->gx = result;
    e->done = result != BN_GX_ERROR;
    if (result == BN_GX_ERROR && !c->err->msg[0]) {
        const char *why = bn_gb_failed(c->gb);
        js_fail(c, NULL, "grammar budget spent (%s)", why ? why : "unknown");
    }
    return result;
}

/* ---- entry points ---- */

static int ctx_init(js_ctx *c, bn_gb *gb, const cJSON *root, const bn_json_opts *opts, bn_err *err) {
    memset(c, 0, sizeof *c);
    c->gb = gb;
    c->rx = bn_gb_rx(gb);
    c->err = err;
    c->root = root;
    if (opts) c->opts = *opts;
    c->any_rule = c->any_object_rule = -1;
    /* the draft decides what a validator reads: drafts 4 to 7 ignore the
     * keywords beside a $ref, each draft ignores the keywords of later
     * ones; a schema that names none is read as the latest */
    const cJSON *draft = js_kw(root, "$schema");
    c->draft = 2020;
    if (cJSON_IsString(draft)) {
        const char *v = draft->valuestring;
        c->draft = strstr(v, "draft-03") || strstr(v, "draft-04") ? 4 : strstr(v, "draft-06") ? 6
                 : strstr(v, "draft-07") ? 7 : strstr(v, "2019-09") ? 2019 : 2020;
    }
    c->jrx = bn_jrx_new(c->rx, JS_PRODUCT_STATES);
    c->memo = calloc(1, sizeof *c->memo);
    c->stack = malloc(JS_MAX_DEPTH * sizeof *c->stack);
    if (!c->jrx || !c->memo || !c->stack) return bn_errf(err, "out of memory");
    if (!bn_jstr_chars_init(c->rx, &c->chars)) return bn_errf(err, "grammar budget spent");
    if (c->opts.whitespace == BN_JSON_WS_COMPACT) c->ws = bn_gb_seq(gb, NULL, 0);
    else {
        uint64_t set[4] = {0, 0, 0, 0};
        set[0] = (1ull << ' ') | (1ull << '\t') | (1ull << '\n') | (1ull << '\r');
        uint32_t max = c->opts.max_whitespace ? c->opts.max_whitespace : BN_RX_INF;
        c->ws = bn_gb_term(gb, bn_rx_repeat(c->rx, bn_rx_byteset(c->rx, set), 0, max));
    }
    return c->ws != BN_GX_ERROR || bn_errf(err, "grammar budget spent");
}

static void ctx_free(js_ctx *c) {
    bn_jrx_free(c->jrx);
    if (c->memo) {
        free(c->memo->e);
        free(c->memo->table);
        free(c->memo);
    }
    if (c->patterns) free(c->patterns->e);
    if (c->refs) free(c->refs->e);
    free(c->patterns);
    free(c->refs);
    free(c->rx_rule_keys);
    free(c->rx_rule_vals);
    free(c->stack);
    arena_free(c);
}

/* Makes gx the start: its rule when it is a reference, else a new one. */
static int set_start(js_ctx *c, bn_gx gx) {
    if (gx == BN_GX_ERROR) return 0;
    if (bn_gb_kind(c->gb, gx) == BN_GX_REF) {
        bn_gb_set_start(c->gb, bn_gb_ref_rule(c->gb, gx));
        return 1;
    }
    int32_t rule = bn_gb_new_rule(c->gb, "json");
    if (rule < 0 || !bn_gb_define(c->gb, rule, gx, c->err)) return js_fail(c, NULL, "grammar budget spent");
    bn_gb_set_start(c->gb, rule);
    return 1;
}

int bn_json_schema_compile(bn_gb *gb, const cJSON *schema, const bn_json_opts *opts, bn_err *err) {
    js_ctx c;
    if (!ctx_init(&c, gb, schema, opts, err)) {
        ctx_free(&c);
        return 0;
    }
    bn_gx gx = js_compile_list(&c, js_list_of(&c, schema));
    int ok = gx != BN_GX_ERROR && !err->msg[0];
    if (ok && bn_gb_kind(gb, gx) == BN_GX_ALT) {
        size_t n;
        bn_gb_parts(gb, gx, &n);
        if (n == 0) ok = bn_errf(err, "the schema accepts no value");
    }
    ok = ok && set_start(&c, gx);
    if (ok && bn_gb_failed(gb)) ok = bn_errf(err, "grammar budget spent (%s)", bn_gb_failed(gb));
    ctx_free(&c);
    return ok;
}

int bn_json_any_compile(bn_gb *gb, int object_only, const bn_json_opts *opts, bn_err *err) {
    js_ctx c;
    if (!ctx_init(&c, gb, NULL, opts, err)) {
        ctx_free(&c);
        return 0;
    }
    int ok = set_start(&c, js_any_value(&c, object_only));
    if (ok && bn_gb_failed(gb)) ok = bn_errf(err, "grammar budget spent (%s)", bn_gb_failed(gb));
    ctx_free(&c);
    return ok;
}
