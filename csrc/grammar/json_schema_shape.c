/* json_schema_shape.c: a branch's keywords merged into one shape, values
 * checked against shapes (to filter enum values), and proofs that two
 * shapes share no value (for oneOf).
 *
 * Checks and proofs must be exact or say they cannot tell: a proof of
 * disjointness licenses accepting a oneOf member's values, so it may use
 * only what the schema says, never the compiler's narrower grammar. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/json_schema_formats.h"
#include "grammar/json_schema_internal.h"
#include "grammar/json_schema_strings.h"

unsigned js_type_of_value(const cJSON *v) {
    if (cJSON_IsNull(v)) return JS_NULL;
    if (cJSON_IsBool(v)) return JS_BOOL;
    if (cJSON_IsNumber(v)) return v->valuedouble == floor(v->valuedouble) && isfinite(v->valuedouble) ? JS_INT : JS_FRAC;
    if (cJSON_IsString(v)) return JS_STR;
    if (cJSON_IsArray(v)) return JS_ARR;
    if (cJSON_IsObject(v)) return JS_OBJ;
    return 0;
}

int js_json_equal(const cJSON *a, const cJSON *b) {
    unsigned ta = js_type_of_value(a), tb = js_type_of_value(b);
    if ((ta & JS_NUM) && (tb & JS_NUM)) return a->valuedouble == b->valuedouble;
    if (ta != tb) return 0;
    switch (ta) {
    case JS_NULL: return 1;
    case JS_BOOL: return cJSON_IsTrue(a) == cJSON_IsTrue(b);
    case JS_STR: return strcmp(a->valuestring, b->valuestring) == 0;
    case JS_ARR: {
        const cJSON *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next)
            if (!js_json_equal(x, y)) return 0;
        return !x && !y;
    }
    case JS_OBJ: {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return 0;
        for (const cJSON *x = a->child; x; x = x->next) {
            const cJSON *y = js_kw(b, x->string);
            if (!y || !js_json_equal(x, y)) return 0;
        }
        return 1;
    }
    default: return 0;
    }
}

/* ---- reading keywords ---- */

static int read_count(js_ctx *c, const cJSON *v, uint32_t *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble))
        return js_fail(c, v, "'%s' is not a non-negative integer", v->string);
    *out = v->valuedouble >= 4294967295.0 ? BN_RX_INF - 1 : (uint32_t)v->valuedouble;
    return 1;
}

static int read_number(js_ctx *c, const cJSON *v, bn_jdec *out) {
    if (!cJSON_IsNumber(v) || !bn_jdec_from_double(v->valuedouble, out))
        return js_fail(c, v, "'%s' is not a finite number", v->string);
    return 1;
}

/* Tightens bound b with (v, exclusive): lower when is_lower. */
static void tighten(bn_jbound *b, const bn_jdec *v, int exclusive, int is_lower) {
    if (b->set) {
        int cmp = bn_jdec_cmp(v, &b->v);
        if (is_lower ? cmp < 0 : cmp > 0) return;
        if (cmp == 0) {
            b->exclusive |= exclusive;
            return;
        }
    }
    b->set = 1;
    b->v = *v;
    b->exclusive = exclusive;
}

/* The bounds as a validator of the schema's draft reads them (Python's
 * jsonschema): in draft 4 exclusiveMinimum makes minimum strict when it is
 * true (or any truthy value) and is no bound itself; later, minimum is
 * inclusive and exclusiveMinimum a strict bound of its own (a boolean
 * taken as the number 1 or 0). */
static int read_bound(js_ctx *c, const cJSON *node, js_shape *s, int lower) {
    const cJSON *v = js_kw(node, lower ? "minimum" : "maximum");
    const cJSON *ex = js_kw(node, lower ? "exclusiveMinimum" : "exclusiveMaximum");
    bn_jbound *b = lower ? &s->lo : &s->hi;
    bn_jdec d;
    if (v) {
        int strict = c->draft == 4 && ex && (cJSON_IsTrue(ex) || (cJSON_IsNumber(ex) && ex->valuedouble != 0));
        if (!read_number(c, v, &d)) return 0;
        tighten(b, &d, strict, lower);
    }
    if (ex && c->draft != 4 && (cJSON_IsNumber(ex) || cJSON_IsBool(ex))) {
        if (cJSON_IsBool(ex)) bn_jdec_from_double(cJSON_IsTrue(ex) ? 1 : 0, &d);
        else if (!read_number(c, ex, &d)) return 0;
        tighten(b, &d, 1, lower);
    }
    return 1;
}

static int read_bounds(js_ctx *c, const cJSON *node, js_shape *s) {
    return read_bound(c, node, s, 1) && read_bound(c, node, s, 0);
}

/* Intersects the enum candidates with list (an enum array or a const).
 * Duplicates are harmless (the regexes dedupe), so none are sought. */
static int merge_enum(js_ctx *c, js_shape *s, const cJSON *values, int is_const) {
    if (!is_const && !cJSON_IsArray(values)) return js_fail(c, values, "enum is not an array");
    uint32_t n = is_const ? 1 : (uint32_t)cJSON_GetArraySize(values);
    if (!s->has_enum) {
        s->enum_v = js_alloc(c, (n + 1) * sizeof *s->enum_v);
        if (!s->enum_v) return 0;
        s->n_enum = 0;
        for (const cJSON *v = is_const ? values : values->child; v; v = is_const ? NULL : v->next) s->enum_v[s->n_enum++] = v;
        s->has_enum = 1;
        return 1;
    }
    if ((uint64_t)s->n_enum * n > 10000000) return js_fail(c, values, "enums too large to intersect");
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_enum; i++) {
        int found = 0;
        for (const cJSON *v = is_const ? values : values->child; v && !found; v = is_const ? NULL : v->next)
            found = js_json_equal(s->enum_v[i], v);
        if (found) s->enum_v[k++] = s->enum_v[i];
    }
    s->n_enum = k;
    return 1;
}

static int push_list(js_ctx *c, js_list *l, const cJSON *node) {
    *l = js_list_add(c, *l, node);
    return !c->err->msg[0];
}

/* ---- per-node object semantics ---- */

/* What a forbidden name's value must satisfy. */
static const cJSON false_schema = {NULL, NULL, NULL, cJSON_False, NULL, 0, 0, NULL};

/* Whether pattern (a `patternProperties` key) matches the name. */
static int pattern_matches(js_ctx *c, const char *pattern, const js_name *name, const cJSON *at) {
    cJSON tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.type = cJSON_String;
    tmp.valuestring = (char *)pattern;
    tmp.string = (char *)"patternProperties";
    bn_rxid re = js_pattern(c, &tmp);
    if (re == BN_RX_ERROR) return js_fail(c, at, "bad patternProperties key") - 1;
    char *spelled = js_alloc(c, 6 * name->n + 1);
    if (!spelled) return -1;
    size_t k = bn_jstr_spell(name->s, name->n, spelled);
    return bn_jrx_match(c->jrx, re, spelled, k);
}

/* The schemas a property `name` must satisfy under node n (those that
 * apply: its properties entry, the patternProperties it matches, else
 * additionalProperties), added to *l. *evaluated: whether some keyword of
 * n took the name (for unevaluatedProperties). */
static int name_schemas(js_ctx *c, const cJSON *n, const js_name *name, js_list *l, int *evaluated) {
    const cJSON *props = js_kw(n, "properties"), *pp = js_kw(n, "patternProperties");
    const cJSON *ap = js_kw(n, "additionalProperties");
    int taken = 0;
    if (cJSON_IsObject(props))
        for (const cJSON *p = props->child; p; p = p->next)
            if (strlen(p->string) == name->n && memcmp(p->string, name->s, name->n) == 0) {
                if (!push_list(c, l, p)) return 0;
                taken = 1;
            }
    if (cJSON_IsObject(pp))
        for (const cJSON *p = pp->child; p; p = p->next) {
            int m = pattern_matches(c, p->string, name, p);
            if (m < 0) return 0;
            if (m) {
                if (!push_list(c, l, p)) return 0;
                taken = 1;
            }
        }
    if (!taken && ap) {
        if (!push_list(c, l, ap)) return 0;
        taken = 1;
    }
    *evaluated |= taken;
    return 1;
}

/* The schemas the value of property `name` must satisfy in branch b (all
 * nodes), exactly as the schema says. */
static int property_list(js_ctx *c, const js_branch *b, const js_name *name, js_list *l) {
    int evaluated = 0;
    const cJSON *uneval = NULL;
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *n = b->nodes.v[i];
        if (!name_schemas(c, n, name, l, &evaluated)) return 0;
        const cJSON *u = js_kw(n, "unevaluatedProperties");
        if (u && js_draft_knows(c, "unevaluatedProperties")) uneval = u;
    }
    if (uneval && !evaluated && !push_list(c, l, uneval)) return 0;
    for (uint32_t i = 0; i < b->n_forbid; i++)
        if (b->forbid[i].n == name->n && memcmp(b->forbid[i].s, name->s, name->n) == 0) {
            if (!push_list(c, l, &false_schema)) return 0;
        }
    return 1;
}

static int list_has_false(js_list l) {
    for (uint32_t i = 0; i < l.n; i++)
        if (cJSON_IsFalse(l.v[i])) return 1;
    return 0;
}

/* The shape's listed names, indexed by a hash (objects may list many). */
typedef struct {
    int32_t *slot; /* prop index, -1 empty */
    size_t mask;
} name_index;

static uint32_t name_hash(const char *str, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)str[i]) * 16777619u;
    return h;
}

static int32_t name_find(const js_shape *s, const name_index *ix, const char *str, size_t n) {
    for (size_t h = name_hash(str, n) & ix->mask; ix->slot[h] >= 0; h = (h + 1) & ix->mask) {
        const js_name *x = &s->props[ix->slot[h]].name;
        if (x->n == n && memcmp(x->s, str, n) == 0) return ix->slot[h];
    }
    return -1;
}

/* Adds a name (once); props has room for every candidate. */
static int add_prop_name(js_ctx *c, js_shape *s, name_index *ix, const char *str, size_t n) {
    if (name_find(s, ix, str, n) >= 0) return 1;
    if (bn_jstr_utf8_count(str, n) < 0) return js_fail(c, NULL, "property name is not valid UTF-8");
    size_t h = name_hash(str, n) & ix->mask;
    while (ix->slot[h] >= 0) h = (h + 1) & ix->mask;
    ix->slot[h] = (int32_t)s->n_props;
    memset(&s->props[s->n_props], 0, sizeof *s->props);
    s->props[s->n_props++].name = (js_name){str, n};
    return 1;
}

/* Marks the named property required (when listed). */
static void mark_required(js_shape *s, const name_index *ix, const char *str, size_t n) {
    int32_t i = name_find(s, ix, str, n);
    if (i >= 0) s->props[i].required = 1;
}

static int add_extra(js_ctx *c, js_shape *s, bn_rxid key, js_list value) {
    if (key == BN_RX_ERROR) return 0;
    if (bn_rx_kind_of(c->rx, key) == BN_RX_NOTHING || list_has_false(value)) return 1;
    js_extra *v = js_alloc(c, (s->n_extras + 1) * sizeof *v);
    if (!v) return 0;
    if (s->n_extras) memcpy(v, s->extras, s->n_extras * sizeof *v);
    v[s->n_extras] = (js_extra){key, value};
    s->extras = v;
    s->n_extras++;
    return 1;
}

#define MAX_EXACT_PATTERNS 4 /* 2^n regions of keys */

/* Every patternProperties regex of every node, and their schemas. */
typedef struct {
    const cJSON *node;
    const cJSON *schema; /* the patternProperties member (its key is the pattern) */
    bn_rxid re;
} pattern_prop;

/* Many patterns: a key matching pattern i of node N meets the schemas of
 * every pattern whose regex overlaps i's (stricter where a key matches one
 * and not the other; exact for disjoint patterns) and the
 * additionalProperties of the other nodes. */
static int pattern_extras_approx(js_ctx *c, const js_branch *b, js_shape *s, const pattern_prop *pps, uint32_t n_pp,
                                 const cJSON *closed, bn_rxid unlisted) {
    for (uint32_t i = 0; i < n_pp; i++) {
        if (closed && pps[i].node != closed) continue;
        js_list v = {NULL, 0};
        for (uint32_t j = 0; j < n_pp; j++)
            if ((i == j || bn_jrx_overlap(c->jrx, pps[i].re, pps[j].re) != 0) && !push_list(c, &v, pps[j].schema)) return 0;
        for (uint32_t j = 0; j < b->nodes.n; j++) {
            const cJSON *ap = js_kw(b->nodes.v[j], "additionalProperties");
            if (ap && b->nodes.v[j] != pps[i].node && !push_list(c, &v, ap)) return 0;
        }
        bn_rxid key = bn_jrx_product(c->jrx, pps[i].re, unlisted, 1);
        if (key == BN_RX_ERROR) continue; /* over budget: these keys left out, only narrower */
        if (!add_extra(c, s, key, v)) return 0;
    }
    return 1;
}

/* The value lists of the listed names, as property_list computes them
 * for one name, for all at once: each node's properties entry, the
 * patterns it matches, else additionalProperties; unevaluatedProperties
 * where no node took the name; false for forbidden names. */
static int listed_values(js_ctx *c, const js_branch *b, js_shape *s, const name_index *ix) {
    uint8_t *listed = js_alloc(c, s->n_props + 1), *taken = js_alloc(c, s->n_props + 1);
    if (!listed || !taken) return 0;
    memset(taken, 0, s->n_props + 1);
    const cJSON *uneval = NULL;
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *n = b->nodes.v[i], *props = js_kw(n, "properties");
        const cJSON *pp = js_kw(n, "patternProperties"), *ap = js_kw(n, "additionalProperties");
        if (js_kw(n, "unevaluatedProperties") && js_draft_knows(c, "unevaluatedProperties")) uneval = js_kw(n, "unevaluatedProperties");
        memset(listed, 0, s->n_props + 1);
        for (const cJSON *p = cJSON_IsObject(props) ? props->child : NULL; p; p = p->next) {
            int32_t k = name_find(s, ix, p->string, strlen(p->string));
            if (k < 0) continue;
            listed[k] = taken[k] = 1;
            if (!push_list(c, &s->props[k].value, p)) return 0;
        }
        if (!cJSON_IsObject(pp) && !ap) continue;
        for (uint32_t k = 0; k < s->n_props; k++) {
            int matched = 0;
            for (const cJSON *p = cJSON_IsObject(pp) ? pp->child : NULL; p; p = p->next) {
                int m = pattern_matches(c, p->string, &s->props[k].name, p);
                if (m < 0) return 0;
                if (m) {
                    matched = 1;
                    if (!push_list(c, &s->props[k].value, p)) return 0;
                }
            }
            if (!matched && !listed[k] && ap && !push_list(c, &s->props[k].value, ap)) return 0;
            taken[k] |= matched || ap != NULL;
        }
    }
    for (uint32_t k = 0; k < s->n_props; k++)
        if (uneval && !taken[k] && !push_list(c, &s->props[k].value, uneval)) return 0;
    for (uint32_t i = 0; i < b->n_forbid; i++) {
        int32_t k = name_find(s, ix, b->forbid[i].s, b->forbid[i].n);
        if (k >= 0 && !push_list(c, &s->props[k].value, &false_schema)) return 0;
    }
    return 1;
}

static int object_shape(js_ctx *c, const js_branch *b, js_shape *s) {
    /* listed names: properties in order, then required and needed names,
     * then forbidden ones */
    size_t n_candidates = b->n_need + b->n_forbid;
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *props = js_kw(b->nodes.v[i], "properties"), *req = js_kw(b->nodes.v[i], "required");
        if (props && !cJSON_IsObject(props)) return js_fail(c, props, "properties is not an object");
        if (req && !cJSON_IsBool(req) && !cJSON_IsArray(req)) return js_fail(c, req, "required is not an array");
        n_candidates += (size_t)cJSON_GetArraySize(props) + (cJSON_IsArray(req) ? (size_t)cJSON_GetArraySize(req) : 0);
    }
    name_index ix;
    ix.mask = 15;
    while (ix.mask < 2 * n_candidates) ix.mask = ix.mask * 2 + 1;
    ix.slot = js_alloc(c, (ix.mask + 1) * sizeof *ix.slot);
    s->props = js_alloc(c, (n_candidates + 1) * sizeof *s->props);
    if (!ix.slot || !s->props) return 0;
    memset(ix.slot, 0xff, (ix.mask + 1) * sizeof *ix.slot);
    s->n_props = 0;
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *props = js_kw(b->nodes.v[i], "properties");
        for (const cJSON *p = props ? props->child : NULL; p; p = p->next)
            if (!add_prop_name(c, s, &ix, p->string, strlen(p->string))) return 0;
    }
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *req = js_kw(b->nodes.v[i], "required"); /* draft 3's boolean form is not a keyword since */
        for (const cJSON *r = cJSON_IsArray(req) ? req->child : NULL; r; r = r->next) {
            if (!cJSON_IsString(r)) return js_fail(c, r, "required name is not a string");
            if (!add_prop_name(c, s, &ix, r->valuestring, strlen(r->valuestring))) return 0;
            mark_required(s, &ix, r->valuestring, strlen(r->valuestring));
        }
    }
    for (uint32_t i = 0; i < b->n_need; i++) {
        if (!add_prop_name(c, s, &ix, b->need[i].s, b->need[i].n)) return 0;
        mark_required(s, &ix, b->need[i].s, b->need[i].n);
    }
    for (uint32_t i = 0; i < b->n_forbid; i++)
        if (!add_prop_name(c, s, &ix, b->forbid[i].s, b->forbid[i].n)) return 0;
    if (!listed_values(c, b, s, &ix)) return 0;
    for (uint32_t k = 0; k < s->n_props; k++) {
        s->props[k].forbidden = list_has_false(s->props[k].value);
        if (s->props[k].required && s->props[k].forbidden) s->types &= ~(unsigned)JS_OBJ;
    }

    /* keys beyond the listed names */
    const char **names = js_alloc(c, (s->n_props + 1) * sizeof *names);
    size_t *lens = js_alloc(c, (s->n_props + 1) * sizeof *lens);
    if (!names || !lens) return 0;
    for (uint32_t i = 0; i < s->n_props; i++) {
        names[i] = s->props[i].name.s;
        lens[i] = s->props[i].name.n;
    }
    bn_rxid unlisted = bn_jstr_not_in(c->rx, &c->chars, names, lens, s->n_props);
    if (unlisted == BN_RX_ERROR)
        return js_fail(c, NULL, "property names too long (over %d bytes) or too many", BN_JSTR_MAX_NAME);
    uint32_t n_pp = 0, n_closed = 0, n_ap = 0;
    const cJSON *closed = NULL, *uneval = NULL;
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *n = b->nodes.v[i], *pp = js_kw(n, "patternProperties"), *ap = js_kw(n, "additionalProperties");
        if (pp && !cJSON_IsObject(pp)) return js_fail(c, pp, "patternProperties is not an object");
        n_pp += pp ? (uint32_t)cJSON_GetArraySize(pp) : 0;
        if (ap) n_ap++;
        if (ap && cJSON_IsFalse(ap)) {
            n_closed++;
            closed = n;
        }
        if (js_kw(n, "unevaluatedProperties") && js_draft_knows(c, "unevaluatedProperties")) uneval = js_kw(n, "unevaluatedProperties");
    }
    pattern_prop *pps = js_alloc(c, (n_pp + 1) * sizeof *pps);
    if (!pps) return 0;
    uint32_t k = 0;
    js_list all_pp = {NULL, 0}; /* every pattern schema */
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *pp = js_kw(b->nodes.v[i], "patternProperties");
        for (const cJSON *p = pp ? pp->child : NULL; p; p = p->next) {
            cJSON tmp;
            memset(&tmp, 0, sizeof tmp);
            tmp.type = cJSON_String;
            tmp.valuestring = p->string;
            bn_rxid re = js_pattern(c, &tmp);
            if (re == BN_RX_ERROR) return 0;
            pps[k++] = (pattern_prop){b->nodes.v[i], p, re};
            if (!push_list(c, &all_pp, p)) return 0;
        }
    }
    /* additionalProperties of the nodes other than `except` */
    js_list ap_all = {NULL, 0};
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *ap = js_kw(b->nodes.v[i], "additionalProperties");
        if (ap && !push_list(c, &ap_all, ap)) return 0;
    }
    if (n_pp == 0) {
        /* exact: every unlisted key meets every additionalProperties (or
         * unevaluatedProperties when none) */
        js_list v = ap_all;
        if (n_ap == 0 && uneval && !push_list(c, &v, uneval)) return 0;
        return add_extra(c, s, unlisted, v);
    }
    if (n_pp <= MAX_EXACT_PATTERNS) {
        /* exact: the unlisted keys fall into regions by which patterns they
         * match; a region's keys meet those patterns' schemas and the
         * additionalProperties of every node none of whose patterns they match */
        for (uint32_t set = 1; set < (1u << n_pp); set++) {
            bn_rxid key = unlisted;
            for (uint32_t i = 0; i < n_pp && key != BN_RX_ERROR && bn_rx_kind_of(c->rx, key) != BN_RX_NOTHING; i++)
                key = bn_jrx_product(c->jrx, key, pps[i].re, (set >> i) & 1);
            if (key == BN_RX_ERROR) continue; /* over budget: the region left out, only narrower */
            if (bn_rx_kind_of(c->rx, key) == BN_RX_NOTHING) continue;
            js_list v = {NULL, 0};
            for (uint32_t i = 0; i < n_pp; i++)
                if (((set >> i) & 1) && !push_list(c, &v, pps[i].schema)) return 0;
            for (uint32_t j = 0; j < b->nodes.n; j++) {
                const cJSON *ap = js_kw(b->nodes.v[j], "additionalProperties");
                int matched = 0;
                for (uint32_t i = 0; i < n_pp; i++) matched |= ((set >> i) & 1) && pps[i].node == b->nodes.v[j];
                if (ap && !matched && !push_list(c, &v, ap)) return 0;
            }
            if (!add_extra(c, s, key, v)) return 0;
        }
    } else {
        if (n_closed > 1) return 1; /* keys would have to match patterns of two nodes: none allowed (stricter) */
        if (!pattern_extras_approx(c, b, s, pps, n_pp, closed, unlisted)) return 0;
    }
    if (closed) return 1;
    /* keys matching no pattern: the additionalProperties of every node */
    bn_rxid any_pattern = bn_rx_nothing(c->rx);
    for (uint32_t i = 0; i < n_pp; i++) any_pattern = bn_rx_alt(c->rx, any_pattern, pps[i].re);
    bn_rxid rest = bn_jrx_product(c->jrx, unlisted, any_pattern, 0);
    js_list v = ap_all;
    if (n_ap == 0 && uneval && !push_list(c, &v, uneval)) return 0;
    if (rest == BN_RX_ERROR) {
        /* could not take the patterns out: every unlisted key meets everything */
        for (uint32_t i = 0; i < all_pp.n; i++)
            if (!push_list(c, &v, all_pp.v[i])) return 0;
        rest = unlisted;
    }
    return add_extra(c, s, rest, v);
}

/* ---- arrays ---- */

static int array_shape(js_ctx *c, const js_branch *b, js_shape *s) {
    uint32_t k = 0;
    int any_rest = 0;
    const cJSON *uneval = NULL;
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *n = b->nodes.v[i], *items = js_kw(n, "items"), *prefix = js_draft_knows(c, "prefixItems") ? js_kw(n, "prefixItems") : NULL;
        if (prefix && !cJSON_IsArray(prefix)) return js_fail(c, prefix, "prefixItems is not an array");
        if (!prefix && cJSON_IsArray(items)) prefix = items;
        uint32_t len = prefix ? (uint32_t)cJSON_GetArraySize(prefix) : 0;
        if (len > k) k = len;
        if (js_kw(n, "unevaluatedItems") && js_draft_knows(c, "unevaluatedItems")) uneval = js_kw(n, "unevaluatedItems");
    }
    s->n_prefix = k;
    s->prefix = js_alloc(c, (k + 1) * sizeof *s->prefix);
    if (!s->prefix) return 0;
    memset(s->prefix, 0, (k + 1) * sizeof *s->prefix);
    for (uint32_t i = 0; i < b->nodes.n; i++) {
        const cJSON *n = b->nodes.v[i], *items = js_kw(n, "items"), *prefix = js_draft_knows(c, "prefixItems") ? js_kw(n, "prefixItems") : NULL;
        const cJSON *rest = NULL;
        if (prefix) rest = items;
        else if (cJSON_IsArray(items)) {
            prefix = items;
            rest = js_kw(n, "additionalItems");
        } else rest = items;
        if (rest) any_rest = 1;
        uint32_t j = 0;
        for (const cJSON *p = prefix ? prefix->child : NULL; p; p = p->next, j++)
            if (!push_list(c, &s->prefix[j], p)) return 0;
        for (; j < k; j++)
            if (rest && !push_list(c, &s->prefix[j], rest)) return 0;
        if (rest && !push_list(c, &s->rest, rest)) return 0;
    }
    if (uneval && !any_rest && !push_list(c, &s->rest, uneval)) return 0;
    /* an impossible position ends the array before it */
    for (uint32_t i = 0; i < k; i++)
        if (list_has_false(s->prefix[i]) && s->max_items > i) s->max_items = i;
    if (list_has_false(s->rest) && s->max_items > k) s->max_items = k;
    return 1;
}

/* ---- the shape ---- */

int js_shape_of(js_ctx *c, const js_branch *b, js_shape *s) {
    memset(s, 0, sizeof *s);
    s->branch = b;
    s->types = b->types;
    s->max_len = BN_RX_INF;
    s->max_items = BN_RX_INF;
    s->max_props = BN_RX_INF;
    int ok = 1;
    for (uint32_t i = 0; i < b->nodes.n && ok; i++) {
        const cJSON *n = b->nodes.v[i];
        for (const cJSON *k = n->child; k && ok; k = k->next) {
            const char *kw = k->string;
            uint32_t u;
            if (!js_draft_knows(c, kw)) continue;
            if (strcmp(kw, "type") == 0) s->types &= js_type_mask(c, n, k, &ok);
            else if (strcmp(kw, "enum") == 0) ok = merge_enum(c, s, k, 0);
            else if (strcmp(kw, "const") == 0) ok = merge_enum(c, s, k, 1);
            else if (strcmp(kw, "minLength") == 0) {
                if ((ok = read_count(c, k, &u)) && u > s->min_len) s->min_len = u;
            } else if (strcmp(kw, "maxLength") == 0) {
                if ((ok = read_count(c, k, &u)) && u < s->max_len) s->max_len = u;
            } else if (strcmp(kw, "pattern") == 0) {
                const cJSON **v = js_alloc(c, (s->n_patterns + 1) * sizeof *v);
                ok = v != NULL;
                if (ok) {
                    if (s->n_patterns) memcpy(v, s->patterns, s->n_patterns * sizeof *v);
                    v[s->n_patterns++] = k;
                    s->patterns = v;
                }
            } else if (strcmp(kw, "format") == 0) {
                if (cJSON_IsString(k) && bn_jfmt_known(k->valuestring)) {
                    const char **v = js_alloc(c, (s->n_formats + 1) * sizeof *v);
                    ok = v != NULL;
                    if (ok) {
                        if (s->n_formats) memcpy(v, s->formats, s->n_formats * sizeof *v);
                        v[s->n_formats++] = k->valuestring;
                        s->formats = v;
                    }
                }
            } else if (strcmp(kw, "multipleOf") == 0) {
                if (!cJSON_IsNumber(k) || !(k->valuedouble > 0) || !isfinite(k->valuedouble))
                    ok = js_fail(c, k, "multipleOf is not a positive number");
                else {
                    double *v = js_alloc(c, (s->n_multiple_of + 1) * sizeof *v);
                    ok = v != NULL;
                    if (ok) {
                        if (s->n_multiple_of) memcpy(v, s->multiple_of, s->n_multiple_of * sizeof *v);
                        v[s->n_multiple_of++] = k->valuedouble;
                        s->multiple_of = v;
                    }
                }
            } else if (strcmp(kw, "minItems") == 0) {
                if ((ok = read_count(c, k, &u)) && u > s->min_items) s->min_items = u;
            } else if (strcmp(kw, "maxItems") == 0) {
                if ((ok = read_count(c, k, &u)) && u < s->max_items) s->max_items = u;
            } else if (strcmp(kw, "uniqueItems") == 0) {
                if (cJSON_IsTrue(k)) s->unique_at = k;
            } else if (strcmp(kw, "contains") == 0) {
                if (js_is_trivial(c, k)) {
                    if (s->min_items < 1) s->min_items = 1; /* some item matches {} */
                } else s->contains_at = k;
            } else if (strcmp(kw, "minProperties") == 0) {
                if ((ok = read_count(c, k, &u)) && u > s->min_props) {
                    s->min_props = u;
                    s->min_props_at = k;
                }
            } else if (strcmp(kw, "maxProperties") == 0) {
                if ((ok = read_count(c, k, &u)) && u < s->max_props) {
                    s->max_props = u;
                    s->max_props_at = k;
                }
            } else if (strcmp(kw, "propertyNames") == 0) {
                if (!js_is_trivial(c, k) && !push_list(c, &s->property_names, k)) ok = 0;
            }
        }
        if (ok) ok = read_bounds(c, n, s);
    }
    if (!ok) return 0;
    if (s->min_len > s->max_len) s->types &= ~(unsigned)JS_STR;
    if (s->min_items > s->max_items) s->types &= ~(unsigned)JS_ARR;
    if ((s->types & JS_ARR) && !array_shape(c, b, s)) return 0;
    if (s->min_items > s->max_items) s->types &= ~(unsigned)JS_ARR;
    if ((s->types & JS_OBJ) && !object_shape(c, b, s)) return 0;
    if (s->has_enum) {
        unsigned t = 0;
        for (uint32_t i = 0; i < s->n_enum; i++) t |= js_type_of_value(s->enum_v[i]);
        s->types &= t;
    }
    return 1;
}

/* ---- checking a value ---- */

static int accepts_string(js_ctx *c, const js_shape *s, const cJSON *v) {
    size_t n = strlen(v->valuestring);
    long len = bn_jstr_utf8_count(v->valuestring, n);
    if (len < 0) return -1;
    if ((uint32_t)len < s->min_len || (s->max_len != BN_RX_INF && (uint32_t)len > s->max_len)) return 0;
    if (!s->n_patterns && !s->n_formats && !s->branch->n_not_pattern) return 1;
    char *spelled = js_alloc(c, 6 * n + 1);
    if (!spelled) return -1;
    size_t k = bn_jstr_spell(v->valuestring, n, spelled);
    int verdict = 1;
    for (uint32_t i = 0; i < s->n_patterns; i++) {
        bn_rxid re = js_pattern(c, s->patterns[i]);
        int m = re == BN_RX_ERROR ? -1 : bn_jrx_match(c->jrx, re, spelled, k);
        if (m <= 0) return m;
    }
    for (uint32_t i = 0; i < s->branch->n_not_pattern; i++) {
        bn_rxid re = js_pattern(c, s->branch->not_pattern[i]);
        int m = re == BN_RX_ERROR ? -1 : bn_jrx_match(c->jrx, re, spelled, k);
        if (m != 0) return m < 0 ? -1 : 0;
    }
    /* formats: the compiler's regexes are narrower than the formats, so a
     * miss proves nothing */
    for (uint32_t i = 0; i < s->n_formats; i++) {
        bn_rxid re = js_format(c, s->formats[i]);
        int m = re == BN_RX_ERROR ? -1 : bn_jrx_match(c->jrx, re, spelled, k);
        if (m != 1) verdict = -1;
    }
    return verdict;
}

static int accepts_number(const js_shape *s, const cJSON *v) {
    bn_jdec d;
    if (!bn_jdec_from_double(v->valuedouble, &d)) return -1;
    if (s->lo.set) {
        int cmp = bn_jdec_cmp(&d, &s->lo.v);
        if (cmp < 0 || (cmp == 0 && s->lo.exclusive)) return 0;
    }
    if (s->hi.set) {
        int cmp = bn_jdec_cmp(&d, &s->hi.v);
        if (cmp > 0 || (cmp == 0 && s->hi.exclusive)) return 0;
    }
    for (uint32_t i = 0; i < s->n_multiple_of; i++) {
        double m = s->multiple_of[i], x = v->valuedouble;
        if (m != floor(m) || x != floor(x) || fabs(x) > 9e15) return -1;
        if (fmod(x, m) != 0) return 0;
    }
    return 1;
}

static int accepts_array(js_ctx *c, const js_shape *s, const cJSON *v) {
    uint32_t n = (uint32_t)cJSON_GetArraySize(v);
    if (n < s->min_items || (s->max_items != BN_RX_INF && n > s->max_items)) return 0;
    if (s->contains_at) return -1;
    int verdict = 1;
    uint32_t i = 0;
    for (const cJSON *x = v->child; x; x = x->next, i++) {
        int r = js_list_accepts(c, i < s->n_prefix ? s->prefix[i] : s->rest, x);
        if (r == 0) return 0;
        if (r < 0) verdict = -1;
    }
    if (s->unique_at)
        for (const cJSON *x = v->child; x; x = x->next)
            for (const cJSON *y = x->next; y; y = y->next)
                if (js_json_equal(x, y)) return 0;
    return verdict;
}

static int accepts_object(js_ctx *c, const js_shape *s, const cJSON *v) {
    uint32_t n = (uint32_t)cJSON_GetArraySize(v);
    if (n < s->min_props || (s->max_props != BN_RX_INF && n > s->max_props)) return 0;
    for (uint32_t i = 0; i < s->n_props; i++)
        if (s->props[i].required && !js_kw(v, s->props[i].name.s)) return 0;
    int verdict = 1;
    for (const cJSON *x = v->child; x; x = x->next) {
        js_list l = {NULL, 0};
        js_name name = {x->string, strlen(x->string)};
        if (s->property_names.n) {
            int r = js_name_allowed(c, s, x->string);
            if (r == 0) return 0;
            if (r < 0) verdict = -1;
        }
        if (!property_list(c, s->branch, &name, &l)) return -1;
        int r = js_list_accepts(c, l, x);
        if (r == 0) return 0;
        if (r < 0) verdict = -1;
    }
    return verdict;
}

int js_name_allowed(js_ctx *c, const js_shape *s, const char *name) {
    cJSON str;
    memset(&str, 0, sizeof str);
    str.type = cJSON_String;
    str.valuestring = (char *)name;
    return js_list_accepts(c, s->property_names, &str);
}

int js_shape_accepts(js_ctx *c, const js_shape *s, const cJSON *v) { return js_shape_accepts_member(c, s, v, 0); }

int js_shape_accepts_member(js_ctx *c, const js_shape *s, const cJSON *v, int of_enum) {
    unsigned t = js_type_of_value(v);
    if (!(t & s->types)) return 0;
    if (s->has_enum && !of_enum) {
        int found = 0;
        for (uint32_t i = 0; i < s->n_enum && !found; i++) found = js_json_equal(s->enum_v[i], v);
        if (!found) return 0;
    }
    for (uint32_t i = 0; i < s->branch->n_excluded; i++)
        if (js_json_equal(s->branch->excluded[i], v)) return 0;
    switch (t) {
    case JS_STR: return accepts_string(c, s, v);
    case JS_INT:
    case JS_FRAC: return accepts_number(s, v);
    case JS_ARR: return accepts_array(c, s, v);
    case JS_OBJ: return accepts_object(c, s, v);
    default: return 1;
    }
}

int js_list_accepts(js_ctx *c, js_list list, const cJSON *v) {
    if (c->depth > JS_MAX_DEPTH) return -1;
    bn_err *saved = c->err, scratch = {0};
    c->err = &scratch;
    c->depth++;
    js_bset set;
    int verdict = 0;
    if (!js_expand(c, list, &set)) verdict = -1;
    for (uint32_t i = 0; verdict == 0 && i < set.n; i++) {
        js_shape s;
        if (!js_shape_of(c, set.v[i], &s)) {
            verdict = -1;
            break;
        }
        int r = js_shape_accepts(c, &s, v);
        if (r == 1) verdict = 1;
        else if (r < 0) verdict = -1;
    }
    c->depth--;
    c->err = saved;
    return verdict;
}

/* ---- disjointness ---- */

/* Whether b certainly rejects every value a could take of the types in mask. */
static int numbers_disjoint(const js_shape *a, const js_shape *b) {
    const js_shape *x = a, *y = b;
    for (int pass = 0; pass < 2; pass++) {
        if (x->hi.set && y->lo.set) {
            int cmp = bn_jdec_cmp(&x->hi.v, &y->lo.v);
            if (cmp < 0 || (cmp == 0 && (x->hi.exclusive || y->lo.exclusive))) return 1;
        }
        x = b;
        y = a;
    }
    return 0;
}

static int strings_disjoint(js_ctx *c, const js_shape *a, const js_shape *b) {
    if ((a->max_len != BN_RX_INF && a->max_len < b->min_len) || (b->max_len != BN_RX_INF && b->max_len < a->min_len))
        return 1;
    if (!a->n_patterns && !b->n_patterns) return 0;
    bn_rxid x = js_string_content(c, a, 1), y = js_string_content(c, b, 1);
    if (x == BN_RX_ERROR || y == BN_RX_ERROR) return 0;
    return bn_jrx_overlap(c->jrx, x, y) == 0;
}

/* A property every object of x has, whose value no object of y allows. */
static int objects_disjoint(js_ctx *c, const js_shape *a, const js_shape *b, unsigned depth) {
    const js_shape *x = a, *y = b;
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < x->n_props; i++) {
            const js_prop *p = &x->props[i];
            if (!p->required) continue;
            js_list l = {NULL, 0};
            if (!property_list(c, y->branch, &p->name, &l)) return 0;
            if (list_has_false(l) || (l.n && js_lists_disjoint(c, p->value, l, depth + 1))) return 1;
        }
        x = b;
        y = a;
    }
    return 0;
}

static int arrays_disjoint(js_ctx *c, const js_shape *a, const js_shape *b, unsigned depth) {
    if ((a->max_items != BN_RX_INF && a->max_items < b->min_items) ||
        (b->max_items != BN_RX_INF && b->max_items < a->min_items))
        return 1;
    uint32_t both = a->min_items < b->min_items ? a->min_items : b->min_items;
    for (uint32_t i = 0; i < both && i < 16; i++) {
        js_list x = i < a->n_prefix ? a->prefix[i] : a->rest, y = i < b->n_prefix ? b->prefix[i] : b->rest;
        if (js_lists_disjoint(c, x, y, depth + 1)) return 1;
    }
    return 0;
}

/* The values of x's enum that y might accept: none means disjoint. */
static int enum_disjoint(js_ctx *c, const js_shape *x, const js_shape *y) {
    for (uint32_t i = 0; i < x->n_enum; i++)
        if (js_shape_accepts_member(c, x, x->enum_v[i], 1) != 0 && js_shape_accepts(c, y, x->enum_v[i]) != 0) return 0;
    return 1;
}

int js_shapes_disjoint(js_ctx *c, const js_shape *a, const js_shape *b, unsigned depth) {
    if (depth > 6) return 0;
    if (a->has_enum && enum_disjoint(c, a, b)) return 1;
    if (b->has_enum && enum_disjoint(c, b, a)) return 1;
    unsigned common = a->types & b->types;
    for (unsigned t = 1; t <= JS_OBJ; t <<= 1) {
        if (!(common & t)) continue;
        switch (t) {
        case JS_INT:
        case JS_FRAC:
            if (!numbers_disjoint(a, b)) return 0;
            break;
        case JS_STR:
            if (!strings_disjoint(c, a, b)) return 0;
            break;
        case JS_ARR:
            if (!arrays_disjoint(c, a, b, depth)) return 0;
            break;
        case JS_OBJ:
            if (!objects_disjoint(c, a, b, depth)) return 0;
            break;
        default: return 0; /* null, booleans */
        }
    }
    return 1;
}

int js_lists_disjoint(js_ctx *c, js_list a, js_list b, unsigned depth) {
    if (depth > 6) return 0;
    bn_err *saved = c->err, scratch = {0};
    c->err = &scratch;
    js_bset x, y;
    int ok = js_expand(c, a, &x) && js_expand(c, b, &y);
    js_shape *sx = ok ? js_alloc(c, (x.n + 1) * sizeof *sx) : NULL;
    js_shape *sy = ok ? js_alloc(c, (y.n + 1) * sizeof *sy) : NULL;
    ok = sx && sy;
    for (uint32_t i = 0; ok && i < x.n; i++) ok = js_shape_of(c, x.v[i], &sx[i]);
    for (uint32_t i = 0; ok && i < y.n; i++) ok = js_shape_of(c, y.v[i], &sy[i]);
    for (uint32_t i = 0; ok && i < x.n; i++)
        for (uint32_t j = 0; ok && j < y.n; j++) ok = js_shapes_disjoint(c, &sx[i], &sy[j], depth);
    c->err = saved;
    return ok;
}
