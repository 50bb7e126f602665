/* lsampler.c: bitnet.Sampler userdata, the Lua face of sampler.c. Logits are
 * read where they live (a Session's last row) so no token costs a copy of the
 * vocabulary into Lua; only the few candidates asked for cross over. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "grammar/grammar.h"
#include "lua/lbitnet.h"
#include "runtime/sampler.h"


typedef struct {
    bn_sampler *s;
} bn_lsampler;

bn_sampler *bn_check_sampler(lua_State *L, int idx) {
    bn_lsampler *u = luaL_checkudata(L, idx, BN_SAMPLER_MT);
    if (!u->s) luaL_error(L, "bitnet.Sampler: the sampler is freed");
    return u->s;
}
#define check_sampler bn_check_sampler

/* A number option: absent/nil gives def; anything but a number raises. */
static float opt_number(lua_State *L, int idx, const char *key, float def) {
    if (lua_isnoneornil(L, idx)) return def;
    lua_getfield(L, idx, key);
    float v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "bitnet.sampler: option '%s' must be a number", key);
        v = (float)lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* Reads logit_bias = { [id] = bias, ... } into two arrays held by a
 * userdata left on the stack (freed by the GC whatever happens). */
static int read_logit_bias(lua_State *L, int opts, int32_t **ids, float **bias) {
    *ids = NULL;
    *bias = NULL;
    if (lua_isnoneornil(L, opts)) return 0;
    lua_getfield(L, opts, "logit_bias");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "bitnet.sampler: option 'logit_bias' must be a table of id = bias");
    int t = lua_gettop(L), n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        n++;
    }
    void *buf = lua_newuserdata(L, (size_t)(n ? n : 1) * (sizeof(int32_t) + sizeof(float)));
    *ids = buf;
    *bias = (float *)((int32_t *)buf + (n ? n : 1));
    int i = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_Integer id = 0;
        if (!bn_isintegral(L, -2, &id) || id < 0 || id > INT32_MAX)
            luaL_error(L, "bitnet.sampler: option 'logit_bias' keys must be token ids (integers >= 0)");
        if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) != lua_tonumber(L, -1))
            luaL_error(L, "bitnet.sampler: option 'logit_bias' value for id %d must be a number", (int)id);
        (*ids)[i] = (int32_t)id;
        (*bias)[i] = (float)lua_tonumber(L, -1);
        i++;
        lua_pop(L, 1);
    }
    return n;
}

/* A seed when none is given: differs between samplers and runs. */
static uint64_t fresh_seed(const void *salt) {
    uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20) ^ (uint64_t)(uintptr_t)salt;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x & 0xffffffffULL; /* fits a Lua number exactly, so it can be read back and reused */
}

/* bitnet.sampler([opts]) -> Sampler
 * opts: temperature (0 = greedy, default 0.8), top_k (0 = off, 40), top_p
 * (1 = off, 0.95), min_p (0 = off, 0.05), typical_p (1 = off), repeat_penalty
 * (1 = off), repeat_last_n (64), presence_penalty (0), frequency_penalty (0),
 * logit_bias ({ [id] = bias }, -math.huge bans), seed (integer; default: a
 * fresh one, see smp:seed()). Unknown keys and bad values raise. */
static int l_sampler(lua_State *L) {
    static const char *const allowed[] = {"temperature",      "top_k",          "top_p",
                                          "min_p",            "typical_p",      "repeat_penalty",
                                          "repeat_last_n",    "presence_penalty", "frequency_penalty",
                                          "logit_bias",       "seed",           NULL};
    const char *fname = "bitnet.sampler";
    lua_settop(L, 1); /* the options (or nil) at 1, whatever was passed */
    bn_check_options(L, 1, fname, allowed);
    bn_sampler_params p;
    bn_sampler_params_default(&p);
    p.temperature = opt_number(L, 1, "temperature", p.temperature);
    lua_Integer top_k = bn_opt_integer(L, 1, "top_k", p.top_k, fname);
    if (top_k < 0 || top_k > INT32_MAX) luaL_error(L, "%s: option 'top_k' must be >= 0", fname);
    p.top_k = (int)top_k;
    p.top_p = opt_number(L, 1, "top_p", p.top_p);
    p.min_p = opt_number(L, 1, "min_p", p.min_p);
    p.typical_p = opt_number(L, 1, "typical_p", p.typical_p);
    p.repeat_penalty = opt_number(L, 1, "repeat_penalty", p.repeat_penalty);
    lua_Integer last_n = bn_opt_integer(L, 1, "repeat_last_n", p.repeat_last_n, fname);
    if (last_n < 0 || last_n > (1 << 20)) luaL_error(L, "%s: option 'repeat_last_n' must be 0..1048576", fname);
    p.repeat_last_n = (int)last_n;
    p.presence_penalty = opt_number(L, 1, "presence_penalty", p.presence_penalty);
    p.frequency_penalty = opt_number(L, 1, "frequency_penalty", p.frequency_penalty);
    bn_lsampler *u = lua_newuserdata(L, sizeof *u);
    u->s = NULL;
    int top = lua_gettop(L);
    int has_seed = 0;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "seed");
        has_seed = !lua_isnil(L, -1);
        lua_pop(L, 1);
    }
    p.seed = has_seed ? (uint64_t)bn_opt_integer(L, 1, "seed", 0, fname) : fresh_seed(u);
    int32_t *ids;
    float *bias;
    int n_bias = read_logit_bias(L, 1, &ids, &bias);
    bn_err err = {0};
    bn_sampler *s = bn_sampler_new(&p, ids, bias, n_bias, &err);
    if (!s) luaL_error(L, "%s: %s", fname, err.msg);
    u->s = s;
    lua_settop(L, top); /* drops the bias buffer and table, leaving the userdata */
    luaL_setmetatable(L, BN_SAMPLER_MT);
    return 1;
}

/* The logits at idx: a Session's last row, or a Lua array (index id + 1)
 * copied into a GC-owned buffer pushed on the stack. */
static const float *source_logits(lua_State *L, int idx, int *n_vocab, const char *fname) {
    if (lua_istable(L, idx)) {
        size_t n = lua_rawlen(L, idx);
        if (n == 0 || n > (1u << 26)) luaL_error(L, "%s: argument 1 must be a non-empty array of logits", fname);
        float *buf = lua_newuserdata(L, n * sizeof *buf);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, idx, (int)i + 1);
            if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: logit at index %d is not a number", fname, (int)i + 1);
            buf[i] = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        *n_vocab = (int)n;
        return buf;
    }
    if (!luaL_testudata(L, idx, BN_SESSION_MT))
        luaL_error(L, "%s: argument 1 must be a Session or an array of logits, got %s", fname, luaL_typename(L, idx));
    bn_session *sess = bn_check_session(L, idx);
    if (atomic_load(&sess->busy)) luaL_error(L, "%s: session in use (by an async generation or another thread)", fname);
    if (!sess->have_logits) luaL_error(L, "%s: the session has no logits yet: feed tokens first", fname);
    *n_vocab = sess->model->hp.n_vocab;
    return sess->logits;
}

/* smp:sample(sess_or_logits) -> id
 * The whole chain over the session's last logits (or a Lua array of logits,
 * index id + 1). Does not record the token: call smp:accept(id). */
static int l_sample(lua_State *L) {
    bn_sampler *s = check_sampler(L, 1);
    int n;
    const float *logits = source_logits(L, 2, &n, "smp:sample");
    bn_err err = {0};
    int32_t id = bn_sampler_sample(s, logits, n, &err);
    if (id < 0) luaL_error(L, "smp:sample: %s", err.msg);
    lua_pushinteger(L, id);
    return 1;
}

/* smp:candidates(sess_or_logits, k) -> ids, logits, probs
 * The k best tokens after penalties and logit bias, best first (ties: lower
 * id): their ids, adjusted logits, and probabilities (softmax over the whole
 * vocabulary at temperature 1). For sampling policies written in Lua. */
static int l_candidates(lua_State *L) {
    bn_sampler *s = check_sampler(L, 1);
    lua_Integer k = 0;
    if (!bn_isintegral(L, 3, &k) || k < 1) luaL_error(L, "smp:candidates: argument 2 (k) must be an integer >= 1");
    int n;
    const float *logits = source_logits(L, 2, &n, "smp:candidates");
    bn_err err = {0};
    bn_cand *c = bn_sampler_prepare(s, logits, n, &err);
    if (!c) luaL_error(L, "smp:candidates: %s", err.msg);
    double lse = bn_cand_logsumexp(c, n);
    /* no finite softmax: +inf logits share the mass; all -inf have none */
    int n_inf = 0;
    if (lse == INFINITY)
        for (int i = 0; i < n; i++) n_inf += c[i].logit == INFINITY;
    int m = bn_cand_top(c, n, k > n ? n : (int)k);
    lua_createtable(L, m, 0);
    lua_createtable(L, m, 0);
    lua_createtable(L, m, 0);
    int t = lua_gettop(L) - 2;
    for (int i = 0; i < m; i++) {
        lua_pushinteger(L, c[i].id);
        lua_rawseti(L, t, i + 1);
        lua_pushnumber(L, c[i].logit);
        lua_rawseti(L, t + 1, i + 1);
        double p = isfinite(lse) ? exp((double)c[i].logit - lse) : (n_inf && c[i].logit == INFINITY ? 1.0 / n_inf : 0.0);
        lua_pushnumber(L, p);
        lua_rawseti(L, t + 2, i + 1);
    }
    return 3;
}

/* smp:choose(ids, logits) -> id
 * The rest of the chain (top-k, typical, top-p, min-p, temperature, draw)
 * over a candidate list of your own, e.g. what a policy returned from
 * smp:candidates; penalties and bias are not applied again. */
static int l_choose(lua_State *L) {
    bn_sampler *s = check_sampler(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    size_t n = lua_rawlen(L, 2);
    if (n == 0) luaL_error(L, "smp:choose: argument 1 (ids) is empty");
    if (lua_rawlen(L, 3) != n)
        luaL_error(L, "smp:choose: %d ids but %d logits", (int)n, (int)lua_rawlen(L, 3));
    if (n > (1u << 26)) luaL_error(L, "smp:choose: too many candidates");
    bn_cand *c = bn_sampler_scratch(s, (int)n);
    if (!c) luaL_error(L, "smp:choose: out of memory");
    for (size_t i = 0; i < n; i++) {
        lua_Integer id = 0;
        lua_rawgeti(L, 2, (int)i + 1);
        if (!bn_isintegral(L, -1, &id) || id < 0 || id > INT32_MAX)
            luaL_error(L, "smp:choose: ids[%d] is not a token id", (int)i + 1);
        lua_rawgeti(L, 3, (int)i + 1);
        if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "smp:choose: logits[%d] is not a number", (int)i + 1);
        c[i] = (bn_cand){(int32_t)id, (float)lua_tonumber(L, -1), 0.0f};
        lua_pop(L, 2);
    }
    lua_pushinteger(L, bn_sampler_pick(s, c, (int)n));
    return 1;
}

/* smp:accept(id_or_ids): records chosen (or prompt) tokens for the
 * repetition, presence and frequency penalties. */
static int l_accept(lua_State *L) {
    bn_sampler *s = check_sampler(L, 1);
    lua_Integer id = 0;
    if (lua_istable(L, 2)) {
        size_t n = lua_rawlen(L, 2);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, 2, (int)i + 1);
            if (!bn_isintegral(L, -1, &id) || id < 0 || id > INT32_MAX)
                luaL_error(L, "smp:accept: ids[%d] is not a token id", (int)i + 1);
            lua_pop(L, 1);
            bn_sampler_accept(s, (int32_t)id);
        }
        return 0;
    }
    if (!bn_isintegral(L, 2, &id) || id < 0 || id > INT32_MAX)
        luaL_error(L, "smp:accept: argument 1 must be a token id or an array of them");
    bn_sampler_accept(s, (int32_t)id);
    return 0;
}

/* smp:reset(): forgets accepted tokens and restarts the random generator
 * from the seed, so the sampler repeats its choices. */
static int l_reset(lua_State *L) {
    bn_sampler_reset(check_sampler(L, 1));
    return 0;
}

/* smp:seed() -> the seed (the one given, or the fresh one chosen). */
static int l_seed(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)bn_sampler_params_of(check_sampler(L, 1))->seed);
    return 1;
}

/* smp:options() -> a table of the sampler's settings (the keys
 * bitnet.sampler takes, without logit_bias). */
static int l_options(lua_State *L) {
    const bn_sampler_params *p = bn_sampler_params_of(check_sampler(L, 1));
    const struct { const char *key; double value; } numbers[] = {
        {"temperature", p->temperature},       {"top_p", p->top_p},
        {"min_p", p->min_p},                   {"typical_p", p->typical_p},
        {"repeat_penalty", p->repeat_penalty}, {"presence_penalty", p->presence_penalty},
        {"frequency_penalty", p->frequency_penalty},
    };
    lua_createtable(L, 0, 10);
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        lua_pushnumber(L, (lua_Number)(float)numbers[i].value);
        lua_setfield(L, -2, numbers[i].key);
    }
    lua_pushinteger(L, p->top_k);
    lua_setfield(L, -2, "top_k");
    lua_pushinteger(L, p->repeat_last_n);
    lua_setfield(L, -2, "repeat_last_n");
    lua_pushinteger(L, (lua_Integer)p->seed);
    lua_setfield(L, -2, "seed");
    return 1;
}

/* smp:greedy() -> true when the sampler always takes the best token. */
static int l_greedy(lua_State *L) {
    const bn_sampler_params *p = bn_sampler_params_of(check_sampler(L, 1));
    lua_pushboolean(L, p->temperature <= 0.0f || p->top_k == 1);
    return 1;
}

/* smp:set_grammar(grammar | nil): from now on only tokens the grammar
 * allows are drawn (the sampler follows its own matcher, which smp:reset
 * restarts); nil removes it. */
static int l_set_grammar(lua_State *L) {
    bn_sampler *s = check_sampler(L, 1);
    struct bn_grammar *g = lua_isnoneornil(L, 2) ? NULL : bn_check_grammar(L, 2);
    bn_err err = {0};
    if (!bn_sampler_set_grammar(s, g, &err)) luaL_error(L, "smp:set_grammar: %s", err.msg);
    return 0;
}

/* smp:commit(id): moves the grammar past generated token id (prompt tokens
 * are for smp:accept alone); raises when the grammar does not allow it.
 * Without a grammar it does nothing. */
static int l_commit(lua_State *L) {
    bn_sampler *s = check_sampler(L, 1);
    lua_Integer id = 0;
    if (!bn_isintegral(L, 2, &id) || id < 0 || id > INT32_MAX) luaL_error(L, "smp:commit: argument 1 must be a token id");
    bn_err err = {0};
    if (!bn_sampler_grammar_commit(s, (int32_t)id, &err)) luaL_error(L, "smp:commit: %s", err.msg);
    return 0;
}

/* smp:forced_tokens(max) -> ids: while the grammar allows exactly one
 * token, commits it; returns those tokens (at most max; {} when a choice
 * is next or there is no grammar). */
static int l_forced_tokens(lua_State *L) {
    bn_sampler *s = check_sampler(L, 1);
    lua_Integer max = luaL_checkinteger(L, 2);
    if (max < 0) max = 0;
    if (max > 4096) max = 4096;
    int32_t *ids = lua_newuserdata(L, (size_t)(max ? max : 1) * sizeof *ids);
    bn_err err = {0};
    int n = bn_sampler_grammar_forced(s, ids, (int)max, &err);
    if (n < 0) luaL_error(L, "smp:forced_tokens: %s", err.msg);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* smp:grammar_state() -> nil without a grammar, else { complete = bool,
 * ended = bool, forced = the bytes the grammar forces next (up to 256) }. */
static int l_grammar_state(lua_State *L) {
    struct bn_matcher *m = bn_sampler_matcher(check_sampler(L, 1));
    if (!m) return 0;
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, bn_matcher_is_complete(m));
    lua_setfield(L, -2, "complete");
    lua_pushboolean(L, bn_matcher_is_ended(m));
    lua_setfield(L, -2, "ended");
    uint8_t buf[256];
    size_t n = bn_matcher_forced_bytes(m, buf, sizeof buf);
    lua_pushlstring(L, (const char *)buf, n);
    lua_setfield(L, -2, "forced");
    return 1;
}

static int l_tostring(lua_State *L) {
    bn_lsampler *u = luaL_checkudata(L, 1, BN_SAMPLER_MT);
    if (!u->s) {
        lua_pushstring(L, "bitnet.Sampler<freed>");
        return 1;
    }
    const bn_sampler_params *p = bn_sampler_params_of(u->s);
    char buf[320];
    snprintf(buf, sizeof buf,
             "bitnet.Sampler<temperature=%g, top_k=%d, top_p=%g, min_p=%g, typical_p=%g, repeat_penalty=%g, "
             "repeat_last_n=%d, presence_penalty=%g, frequency_penalty=%g, seed=%llu>",
             (double)p->temperature, p->top_k, (double)p->top_p, (double)p->min_p, (double)p->typical_p,
             (double)p->repeat_penalty, p->repeat_last_n, (double)p->presence_penalty, (double)p->frequency_penalty,
             (unsigned long long)p->seed);
    lua_pushstring(L, buf);
    return 1;
}

static int l_gc(lua_State *L) {
    bn_lsampler *u = luaL_checkudata(L, 1, BN_SAMPLER_MT);
    bn_sampler_free(u->s);
    u->s = NULL;
    return 0;
}

void bn_push_logprobs(lua_State *L, const void *record) {
    const bn_logprobs *r = record;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r->id);
    lua_setfield(L, -2, "id");
    lua_pushnumber(L, r->logprob);
    lua_setfield(L, -2, "logprob");
    if (r->n_top < 0) return;
    lua_createtable(L, r->n_top, 0);
    for (int i = 0; i < r->n_top; i++) {
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, r->top_id[i]);
        lua_setfield(L, -2, "id");
        lua_pushnumber(L, r->top_logprob[i]);
        lua_setfield(L, -2, "logprob");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "top");
}

/* smp:set_logprobs(k): from now on each pick records the log-probabilities
 * of the distribution it drew from with the k (0..20) most likely tokens
 * (see bn_sampler_set_logprobs); nil or a negative k turns it off. */
static int l_set_logprobs(lua_State *L) {
    bn_sampler *s = check_sampler(L, 1);
    lua_Integer k = -1;
    if (!lua_isnoneornil(L, 2) && (!bn_isintegral(L, 2, &k) || k > BN_MAX_TOP_LOGPROBS))
        luaL_error(L, "smp:set_logprobs: k must be an integer <= %d", BN_MAX_TOP_LOGPROBS);
    bn_sampler_set_logprobs(s, (int)k);
    return 0;
}

/* smp:last_logprobs() -> { id, logprob, top } | nil: the record of the last
 * pick (nil when logprobs are off or nothing was picked). */
static int l_last_logprobs(lua_State *L) {
    const bn_logprobs *r = bn_sampler_last_logprobs(check_sampler(L, 1));
    if (!r) return 0;
    bn_push_logprobs(L, r);
    return 1;
}

static const luaL_Reg sampler_methods[] = {{"set_logprobs", l_set_logprobs}, {"last_logprobs", l_last_logprobs},{"sample", l_sample}, {"candidates", l_candidates}, {"choose", l_choose},
                                           {"accept", l_accept}, {"reset", l_reset},           {"seed", l_seed},
                                           {"greedy", l_greedy}, {"options", l_options},
                                           {"set_grammar", l_set_grammar}, {"commit", l_commit},
                                           {"grammar_state", l_grammar_state}, {"forced_tokens", l_forced_tokens},
                                           {NULL, NULL}};

void bn_open_sampler(lua_State *L) {
    bn_open_class(L, BN_SAMPLER_MT, "Sampler", sampler_methods, l_gc, l_tostring);
    lua_pushcfunction(L, l_sampler);
    lua_setfield(L, -2, "sampler");
}
