/* lgrammar.c: bitnet.Grammar and bitnet.Matcher userdata, and
 * core.grammar(spec, tokenizer_or_model): structured output's Lua face.
 *
 * The token trie a grammar needs is built once per tokenizer and shared by
 * the grammars made for it: a registry table maps the tokenizer to its
 * bitnet.Vocab userdata (weak values), and each Grammar keeps its Vocab
 * alive through a weak-keyed table. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "grammar/ecma_regex.h"
#include "grammar/gbnf.h"
#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "lua/lbitnet.h"

#define VOCAB_MT "bitnet.Vocab"
#define VOCAB_CACHE "bitnet.vocab_cache"
#define GRAMMAR_KEEP "bitnet.grammar_keep"

typedef struct { bn_vocab *v; } lvocab;
typedef struct { bn_grammar *g; } lgrammar;
typedef struct {
    bn_matcher *m;
    uint32_t *bits;  /* the last mask */
    int mask_valid;  /* bits match the current state */
    int32_t n_vocab;
} lmatcher;

static int l_vocab_gc(lua_State *L) {
    lvocab *u = luaL_checkudata(L, 1, VOCAB_MT);
    bn_vocab_free(u->v);
    u->v = NULL;
    return 0;
}

/* Pushes the Vocab userdata of tokenizer t (made on first use). */
static bn_vocab *push_vocab(lua_State *L, const bn_tokenizer *t) {
    lua_getfield(L, LUA_REGISTRYINDEX, VOCAB_CACHE);
    lua_pushlightuserdata(L, (void *)t);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1)) {
        lvocab *u = lua_touserdata(L, -1);
        lua_remove(L, -2);
        return u->v;
    }
    lua_pop(L, 1);
    lvocab *u = lua_newuserdata(L, sizeof *u);
    u->v = NULL;
    luaL_setmetatable(L, VOCAB_MT);
    bn_err err = {0};
    u->v = bn_vocab_new(t, &err);
    if (!u->v) luaL_error(L, "bitnet.grammar: %s", err.msg);
    lua_pushlightuserdata(L, (void *)t);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4); /* the vocab retains t, so its address names it while the entry lives */
    lua_remove(L, -2);
    return u->v;
}

static lgrammar *check_grammar(lua_State *L, int idx) {
    lgrammar *u = luaL_checkudata(L, idx, BN_GRAMMAR_MT);
    if (!u->g) luaL_error(L, "bitnet.Grammar: the grammar is closed");
    return u;
}

static lmatcher *check_matcher(lua_State *L, int idx) {
    lmatcher *u = luaL_checkudata(L, idx, BN_MATCHER_MT);
    if (!u->m) luaL_error(L, "bitnet.Matcher: the matcher is closed");
    return u;
}

bn_grammar *bn_check_grammar(lua_State *L, int idx) { return check_grammar(L, idx)->g; }

/* core.grammar(spec, tokenizer_or_model) -> Grammar | nil, message
 * spec: exactly one of json_schema (JSON text), gbnf (text), regex
 * (pattern), json (true: any value; "object": an object), and the options
 * root (GBNF start rule), whitespace ("flexible" | "compact"),
 * max_whitespace (integer), openapi_nullable (boolean). */
static int l_grammar(lua_State *L) {
    static const char *const allowed[] = {"json_schema", "gbnf", "regex", "json", "root", "whitespace",
                                          "max_whitespace", "openapi_nullable", NULL};
    const char *fname = "bitnet.grammar";
    luaL_checktype(L, 1, LUA_TTABLE);
    bn_check_options(L, 1, fname, allowed);
    const bn_tokenizer *t = bn_check_tokenizer_of(L, 2, fname);
    int kinds = 0;
    const char *which = NULL;
    static const char *const kind_keys[] = {"json_schema", "gbnf", "regex", "json"};
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, 1, kind_keys[i]);
        if (!lua_isnil(L, -1) && !(i == 3 && lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
            kinds++;
            which = kind_keys[i];
        }
        lua_pop(L, 1);
    }
    if (kinds != 1)
        return luaL_error(L, "%s: the spec needs exactly one of json_schema, gbnf, regex or json (got %d)", fname, kinds);
    const char *root = bn_opt_string(L, 1, "root", NULL, fname);
    const char *ws = bn_opt_string(L, 1, "whitespace", "flexible", fname);
    lua_Integer max_ws = bn_opt_integer(L, 1, "max_whitespace", 0, fname);
    bn_json_opts jo = {BN_JSON_WS_FLEXIBLE, 0, bn_opt_boolean(L, 1, "openapi_nullable", 0, fname)};
    if (!strcmp(ws, "compact")) jo.whitespace = BN_JSON_WS_COMPACT;
    else if (strcmp(ws, "flexible") != 0)
        return luaL_error(L, "%s: option 'whitespace' must be \"flexible\" or \"compact\", got \"%s\"", fname, ws);
    if (max_ws < 0 || max_ws > 1000000) return luaL_error(L, "%s: option 'max_whitespace' must be 0..1000000", fname);
    jo.max_whitespace = (unsigned)max_ws;
    if (root && strcmp(which, "gbnf") != 0) return luaL_error(L, "%s: option 'root' is only for gbnf", fname);
    if (jo.openapi_nullable && strcmp(which, "json_schema") != 0)
        return luaL_error(L, "%s: option 'openapi_nullable' is only for json_schema", fname);

    bn_vocab *v = push_vocab(L, t); /* stack: ..., vocab */
    int vocab_idx = lua_gettop(L);
    bn_err err = {0};
    bn_gb *gb = bn_gb_new(NULL);
    if (!gb) return luaL_error(L, "%s: out of memory", fname);
    int ok = 0;
    size_t len = 0;
    if (!strcmp(which, "json")) {
        lua_getfield(L, 1, "json");
        int object_only = 0;
        if (lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "object")) object_only = 1;
        else if (!lua_isboolean(L, -1)) {
            bn_gb_free(gb);
            return luaL_error(L, "%s: option 'json' must be true or \"object\"", fname);
        }
        lua_pop(L, 1);
        ok = bn_json_any_compile(gb, object_only, &jo, &err);
    } else {
        lua_getfield(L, 1, which);
        if (lua_type(L, -1) != LUA_TSTRING) {
            bn_gb_free(gb);
            return luaL_error(L, "%s: '%s' must be a string (bitnet.grammar in Lua encodes schema tables)", fname, which);
        }
        const char *text = lua_tolstring(L, -1, &len);
        if (!strcmp(which, "gbnf")) ok = bn_gbnf_parse(gb, text, len, root, &err);
        else if (!strcmp(which, "regex")) {
            bn_rxid re;
            ok = bn_ecma_regex(bn_gb_rx(gb), text, len, BN_ECMA_FULLMATCH, BN_ECMA_RAW, 0, &re, &err);
            if (ok) {
                int32_t r = bn_gb_rule(gb, "root", 4);
                ok = r >= 0 && bn_gb_define(gb, r, bn_gb_term(gb, re), &err);
                if (ok) bn_gb_set_start(gb, r);
                else bn_errf(&err, "%s", bn_gb_failed(gb) ? bn_gb_failed(gb) : "out of memory");
            }
        } else {
            cJSON *schema = cJSON_ParseWithLength(text, len);
            if (!schema) bn_errf(&err, "json_schema is not valid JSON (near byte %ld)",
                                 (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - text : 0));
            else ok = bn_json_schema_compile(gb, schema, &jo, &err);
            cJSON_Delete(schema);
        }
        lua_pop(L, 1);
    }
    if (!ok) {
        bn_gb_free(gb);
        lua_pushnil(L);
        lua_pushfstring(L, "%s", err.msg[0] ? err.msg : "the grammar could not be compiled");
        return 2;
    }
    bn_grammar *g = bn_grammar_compile(gb, v, &err);
    if (!g) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lgrammar *u = lua_newuserdata(L, sizeof *u);
    u->g = g;
    luaL_setmetatable(L, BN_GRAMMAR_MT);
    lua_getfield(L, LUA_REGISTRYINDEX, GRAMMAR_KEEP);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, vocab_idx);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return 1;
}

static int l_grammar_close(lua_State *L) {
    lgrammar *u = luaL_checkudata(L, 1, BN_GRAMMAR_MT);
    if (u->g) bn_grammar_free(u->g);
    u->g = NULL;
    return 0;
}

static int l_grammar_tostring(lua_State *L) {
    lgrammar *u = luaL_checkudata(L, 1, BN_GRAMMAR_MT);
    if (!u->g) {
        lua_pushstring(L, "bitnet.Grammar<closed>");
        return 1;
    }
    bn_grammar_stats s;
    bn_grammar_stats_get(u->g, &s);
    lua_pushfstring(L, "bitnet.Grammar<%d lexemes, %d rules>", (int)s.n_lexemes, (int)s.n_nonterminals);
    return 1;
}

/* g:stats() -> { lexemes, nonterminals, productions, nfa_states, dfa_states, cached_states, cache_bytes } */
static int l_grammar_stats(lua_State *L) {
    bn_grammar_stats s;
    bn_grammar_stats_get(check_grammar(L, 1)->g, &s);
    lua_createtable(L, 0, 7);
#define FIELD(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
    FIELD("lexemes", s.n_lexemes);
    FIELD("nonterminals", s.n_nonterminals);
    FIELD("productions", s.n_productions);
    FIELD("nfa_states", s.n_nfa_states);
    FIELD("dfa_states", s.n_dfa_states);
    FIELD("cached_states", s.n_cached_states);
    FIELD("cache_bytes", s.cache_bytes);
#undef FIELD
    return 1;
}

/* g:n_vocab() -> the vocabulary size masks cover. */
static int l_grammar_n_vocab(lua_State *L) {
    lua_pushinteger(L, bn_vocab_n_tokens(bn_grammar_vocab(check_grammar(L, 1)->g)));
    return 1;
}

/* Pushes a new Matcher for g. */
static void push_matcher(lua_State *L, bn_grammar *g) {
    lmatcher *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, BN_MATCHER_MT);
    bn_err err = {0};
    u->n_vocab = bn_vocab_n_tokens(bn_grammar_vocab(g));
    u->bits = calloc(((size_t)u->n_vocab + 31) / 32 + 1, sizeof *u->bits);
    if (!u->bits) luaL_error(L, "bitnet.Grammar:matcher: out of memory");
    u->m = bn_matcher_new(g, &err);
    if (!u->m) luaL_error(L, "bitnet.Grammar:matcher: %s", err.msg);
}

/* g:matcher() -> a Matcher at the start of the text. */
static int l_grammar_matcher(lua_State *L) {
    push_matcher(L, check_grammar(L, 1)->g);
    return 1;
}

static int l_matcher_close(lua_State *L) {
    lmatcher *u = luaL_checkudata(L, 1, BN_MATCHER_MT);
    bn_matcher_free(u->m);
    free(u->bits);
    u->m = NULL;
    u->bits = NULL;
    return 0;
}

static int l_matcher_tostring(lua_State *L) {
    lmatcher *u = luaL_checkudata(L, 1, BN_MATCHER_MT);
    lua_pushstring(L, !u->m ? "bitnet.Matcher<closed>" : bn_matcher_is_ended(u->m) ? "bitnet.Matcher<ended>"
                                                                                      : "bitnet.Matcher");
    return 1;
}

static void compute_mask(lua_State *L, lmatcher *u, size_t *count) {
    bn_err err = {0};
    size_t c = 0;
    if (!bn_matcher_mask(u->m, u->bits, &c, &err)) luaL_error(L, "bitnet.Matcher:mask: %s", err.msg);
    u->mask_valid = 1;
    if (count) *count = c;
}

/* m:mask() -> how many tokens may come next (computes the mask). */
static int l_matcher_mask(lua_State *L) {
    lmatcher *u = check_matcher(L, 1);
    size_t count;
    compute_mask(L, u, &count);
    lua_pushinteger(L, (lua_Integer)count);
    return 1;
}

static int32_t check_token(lua_State *L, lmatcher *u, int idx, const char *fname) {
    lua_Integer id = 0;
    if (!bn_isintegral(L, idx, &id)) luaL_error(L, "%s: token id must be an integer", fname);
    if (id < 0 || id >= u->n_vocab) luaL_error(L, "%s: token id %d is outside the vocabulary (0..%d)", fname, (int)id, (int)u->n_vocab - 1);
    return (int32_t)id;
}

/* m:allows(id) -> whether token id may come next. */
static int l_matcher_allows(lua_State *L) {
    lmatcher *u = check_matcher(L, 1);
    int32_t id = check_token(L, u, 2, "bitnet.Matcher:allows");
    if (!u->mask_valid) compute_mask(L, u, NULL);
    lua_pushboolean(L, (int)(u->bits[id >> 5] >> (id & 31) & 1));
    return 1;
}

/* m:allowed() -> the list of token ids that may come next. */
static int l_matcher_allowed(lua_State *L) {
    lmatcher *u = check_matcher(L, 1);
    if (!u->mask_valid) compute_mask(L, u, NULL);
    lua_newtable(L);
    lua_Integer k = 0;
    for (int32_t w = 0; w < (u->n_vocab + 31) / 32; w++)
        for (uint32_t b = u->bits[w]; b; b &= b - 1) {
            lua_pushinteger(L, (lua_Integer)w * 32 + __builtin_ctz(b));
            lua_rawseti(L, -2, (int)++k);
        }
    return 1;
}

/* m:commit(id) -> true, or false when id is not allowed (nothing changes). */
static int l_matcher_commit(lua_State *L) {
    lmatcher *u = check_matcher(L, 1);
    int32_t id = check_token(L, u, 2, "bitnet.Matcher:commit");
    bn_err err = {0};
    int r = bn_matcher_commit(u->m, id, &err);
    if (r == BN_MATCH_ERROR) return luaL_error(L, "bitnet.Matcher:commit: %s", err.msg);
    if (r == BN_MATCH_OK) u->mask_valid = 0;
    lua_pushboolean(L, r == BN_MATCH_OK);
    return 1;
}

/* m:feed(text) -> true, or false when the text is not allowed (nothing changes). */
static int l_matcher_feed(lua_State *L) {
    lmatcher *u = check_matcher(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    bn_err err = {0};
    int r = bn_matcher_feed(u->m, s, len, &err);
    if (r == BN_MATCH_ERROR) return luaL_error(L, "bitnet.Matcher:feed: %s", err.msg);
    if (r == BN_MATCH_OK) u->mask_valid = 0;
    lua_pushboolean(L, r == BN_MATCH_OK);
    return 1;
}

/* m:is_complete() -> whether the text so far is a whole match. */
static int l_matcher_is_complete(lua_State *L) {
    lua_pushboolean(L, bn_matcher_is_complete(check_matcher(L, 1)->m));
    return 1;
}

/* m:is_ended() -> whether an end-of-generation token was committed. */
static int l_matcher_is_ended(lua_State *L) {
    lua_pushboolean(L, bn_matcher_is_ended(check_matcher(L, 1)->m));
    return 1;
}

/* m:forced([max]) -> the bytes every continuation must start with ("" when there is a choice). */
static int l_matcher_forced(lua_State *L) {
    lmatcher *u = check_matcher(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 256);
    if (max < 0 || max > 65536) return luaL_argerror(L, 2, "must be 0..65536");
    uint8_t *buf = lua_newuserdata(L, (size_t)max + 1);
    size_t n = bn_matcher_forced_bytes(u->m, buf, (size_t)max);
    lua_pushlstring(L, (const char *)buf, n);
    return 1;
}

/* m:reset() -> the matcher, back at the start of the text. */
static int l_matcher_reset(lua_State *L) {
    lmatcher *u = check_matcher(L, 1);
    bn_err err = {0};
    if (!bn_matcher_reset(u->m, &err)) return luaL_error(L, "bitnet.Matcher:reset: %s", err.msg);
    u->mask_valid = 0;
    lua_settop(L, 1);
    return 1;
}

bn_matcher *bn_check_matcher(lua_State *L, int idx) { return check_matcher(L, idx)->m; }

static const luaL_Reg grammar_methods[] = {{"matcher", l_grammar_matcher}, {"stats", l_grammar_stats},
                                           {"n_vocab", l_grammar_n_vocab}, {"close", l_grammar_close}, {NULL, NULL}};
static const luaL_Reg matcher_methods[] = {
    {"mask", l_matcher_mask},       {"allows", l_matcher_allows}, {"allowed", l_matcher_allowed},
    {"commit", l_matcher_commit},   {"feed", l_matcher_feed},     {"is_complete", l_matcher_is_complete},
    {"is_ended", l_matcher_is_ended}, {"forced", l_matcher_forced}, {"reset", l_matcher_reset},
    {"close", l_matcher_close},     {NULL, NULL}};

void bn_open_grammar(lua_State *L) {
    luaL_newmetatable(L, VOCAB_MT);
    lua_pushcfunction(L, l_vocab_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_newtable(L); /* tokenizer -> Vocab, weak values */
    lua_newtable(L);
    lua_pushstring(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, VOCAB_CACHE);
    lua_newtable(L); /* Grammar -> Vocab, weak keys */
    lua_newtable(L);
    lua_pushstring(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, GRAMMAR_KEEP);
    bn_open_class(L, BN_GRAMMAR_MT, "Grammar", grammar_methods, l_grammar_close, l_grammar_tostring);
    bn_open_class(L, BN_MATCHER_MT, "Matcher", matcher_methods, l_matcher_close, l_matcher_tostring);
    lua_pushcfunction(L, l_grammar);
    lua_setfield(L, -2, "grammar");
}
