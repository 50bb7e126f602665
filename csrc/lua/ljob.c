/* ljob.c: bitnet.Job userdata, the Lua face of the background engine
 * (engine.h). bitnet.generate builds async generations on it; every call
 * here returns at once except job:wait and the collection of a job still
 * running (which waits for the engine's current step). */
#include <stdlib.h>
#include <string.h>

#include "runtime/engine.h"
#include "lua/lbitnet.h"

typedef struct {
    bn_job *j;
} bn_ljob;

static bn_job *check_job(lua_State *L, int idx) {
    bn_ljob *u = luaL_checkudata(L, idx, BN_JOB_MT);
    if (!u->j) luaL_error(L, "bitnet.Job: the job is closed");
    return u->j;
}

/* core.job(session, sampler, ids, n_prefix [, opts]) -> Job
 * Starts generating on the session's model's engine: the session (which
 * must hold ids[1..n_prefix]) is claimed until the job is closed; the job
 * samples with a copy of sampler (job:sampler_into copies the state back).
 * opts: max_tokens (default 256), n_draft, ngram (speculative decoding),
 * context_shift and keep, logprobs and prompt_logprobs (alternatives per
 * token, 0..20), pooling ("mean" | "last": an embedding job; see engine.h). */
static int l_job(lua_State *L) {
    static const char *const allowed[] = {"max_tokens", "n_draft", "ngram", "context_shift", "keep",
                                          "logprobs", "prompt_logprobs", "pooling", NULL};
    bn_session *s = bn_check_session(L, 1);
    bn_sampler *smp = bn_check_sampler(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n_prefix = 0;
    if (!bn_isintegral(L, 4, &n_prefix)) luaL_error(L, "bitnet.job: argument 4 (n_prefix) must be an integer");
    bn_check_options(L, 5, "bitnet.job", allowed);
    bn_job_opts o;
    o.max_tokens = (int)bn_opt_integer(L, 5, "max_tokens", 256, "bitnet.job");
    o.n_draft = (int)bn_opt_integer(L, 5, "n_draft", 0, "bitnet.job");
    o.ngram = (int)bn_opt_integer(L, 5, "ngram", 3, "bitnet.job");
    o.context_shift = bn_opt_boolean(L, 5, "context_shift", 0, "bitnet.job");
    o.keep = (int)bn_opt_integer(L, 5, "keep", 0, "bitnet.job");
    o.logprobs = (int)bn_opt_integer(L, 5, "logprobs", -1, "bitnet.job");
    o.prompt_logprobs = (int)bn_opt_integer(L, 5, "prompt_logprobs", -1, "bitnet.job");
    const char *pooling = bn_opt_string(L, 5, "pooling", "none", "bitnet.job");
    o.pooling = !strcmp(pooling, "mean") ? BN_POOL_MEAN : !strcmp(pooling, "last") ? BN_POOL_LAST : BN_POOL_NONE;
    if (o.pooling == BN_POOL_NONE && strcmp(pooling, "none"))
        luaL_error(L, "bitnet.job: option 'pooling' must be \"mean\", \"last\" or \"none\"");
    if (o.max_tokens < 0) luaL_error(L, "bitnet.job: option 'max_tokens' must be >= 0");
    size_t n = lua_rawlen(L, 3);
    if (n == 0 || n > (size_t)s->n_ctx) luaL_error(L, "bitnet.job: the prompt must hold 1..%d ids", s->n_ctx);
    int V = s->model->hp.n_vocab;
    int32_t *ids = lua_newuserdata(L, n * sizeof *ids); /* freed by the GC whatever happens */
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 3, (int)i + 1);
        lua_Integer v = -1;
        if (!bn_isintegral(L, -1, &v) || v < 0 || v >= V)
            luaL_error(L, "bitnet.job: prompt entry %d is not a token id (0..%d)", (int)i + 1, V - 1);
        lua_pop(L, 1);
        ids[i] = (int32_t)v;
    }
    bn_ljob *u = lua_newuserdata(L, sizeof *u);
    u->j = NULL;
    luaL_setmetatable(L, BN_JOB_MT);
    bn_err err = {0};
    bn_sampler *copy = bn_sampler_clone(smp, &err);
    if (!copy) luaL_error(L, "bitnet.job: %s", err.msg);
    u->j = bn_job_start(s, copy, ids, (int)n, (int)n_prefix, &o, &err);
    if (!u->j) luaL_error(L, "bitnet.job: %s", err.msg);
    return 1;
}

static const char *const end_names[] = {NULL, "stop", "length", "cancelled", "error"};

static void set_number(lua_State *L, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* job:poll() -> ids, state [, logprobs]
 * The tokens produced since the last poll (a table, maybe empty) and the
 * job's state: { finish, error, error_input, n_sampled, prompt_fed,
 * prefill_seconds, decode_seconds, drafted, accepted, passes }, where
 * finish is nil while it runs, then "stop" | "length" | "cancelled" |
 * "error" (error_input: the request's fault, see bn_err.input); with the
 * logprobs option, a third table of each token's record ({ id, logprob,
 * top }). Never waits. */
static int l_poll(lua_State *L) {
    bn_job *j = check_job(L, 1);
    int32_t buf[64];
    bn_logprobs lp[64];
    bn_job_status st;
    lua_newtable(L);
    lua_newtable(L);
    int total = 0, got, with_lp = bn_job_options(j)->logprobs >= 0;
    do {
        got = bn_job_poll_logprobs(j, buf, lp, 64, &st);
        for (int i = 0; i < got; i++) {
            lua_pushinteger(L, buf[i]);
            lua_rawseti(L, -3, ++total);
            if (!with_lp) continue;
            bn_push_logprobs(L, &lp[i]);
            lua_rawseti(L, -2, total);
        }
    } while (got == 64);
    if (!with_lp) lua_pop(L, 1);
    lua_createtable(L, 0, 10);
    if (st.end != BN_JOB_RUNNING) {
        lua_pushstring(L, end_names[st.end]);
        lua_setfield(L, -2, "finish");
    }
    if (st.end == BN_JOB_ERROR) {
        lua_pushstring(L, st.error);
        lua_setfield(L, -2, "error");
        lua_pushboolean(L, st.error_input);
        lua_setfield(L, -2, "error_input");
    }
    set_number(L, "n_sampled", st.n_sampled);
    set_number(L, "prompt_fed", st.prompt_fed);
    set_number(L, "prefill_seconds", st.prefill_seconds);
    set_number(L, "decode_seconds", st.decode_seconds);
    set_number(L, "drafted", (double)st.drafted);
    set_number(L, "accepted", (double)st.accepted);
    set_number(L, "passes", (double)st.passes);
    if (with_lp) lua_insert(L, -2);
    return with_lp ? 3 : 2;
}

/* job:prompt_logprobs() -> list | nil: each prompt token's record (the
 * first without `top`: nothing predicts it), once the prompt is fed; nil
 * before, or without the prompt_logprobs option. */
static int l_prompt_logprobs(lua_State *L) {
    bn_job *j = check_job(L, 1);
    int n = bn_job_prompt_logprobs(j, NULL, 0);
    if (n < 0) return 0;
    bn_logprobs *buf = lua_newuserdata(L, sizeof *buf * (size_t)(n > 0 ? n : 1));
    bn_job_prompt_logprobs(j, buf, n);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        bn_push_logprobs(L, &buf[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* job:embedding() -> list of n_embd numbers | nil: an embedding job's
 * pooled, L2-normalised vector once its prompt is fed. */
static int l_embedding(lua_State *L) {
    bn_job *j = check_job(L, 1);
    int64_t E = bn_job_model(j)->hp.n_embd;
    float *v = lua_newuserdata(L, sizeof(float) * (size_t)E);
    if (bn_job_embedding(j, v) != 0) return 0;
    lua_createtable(L, (int)E, 0);
    for (int64_t i = 0; i < E; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* job:cancel(): the job ends within one engine step ("cancelled"). */
static int l_cancel(lua_State *L) {
    bn_job_cancel(check_job(L, 1));
    return 0;
}

/* job:wait([timeout]) -> news: blocks until job:poll has something to
 * return (tokens or the end) or timeout seconds have passed (no timeout:
 * as long as it takes). */
static int l_wait(lua_State *L) {
    bn_job *j = check_job(L, 1);
    double timeout = luaL_optnumber(L, 2, -1.0);
    if (timeout != timeout) luaL_error(L, "job:wait: timeout must be a number of seconds");
    lua_pushboolean(L, bn_job_wait(j, timeout));
    return 1;
}

/* job:fd() -> integer: a descriptor that is readable when the job has news
 * (poll clears it); for event loops (vim.loop poll handles, luv, cqueues). */
static int l_fd(lua_State *L) {
    int fd = bn_job_fd(check_job(L, 1));
    if (fd < 0) luaL_error(L, "job:fd: cannot make a descriptor");
    lua_pushinteger(L, fd);
    return 1;
}

/* job:sampler_into(sampler): gives sampler the job's sampler state (the
 * history and random generator after the job's choices). After the end. */
static int l_sampler_into(lua_State *L) {
    bn_job *j = check_job(L, 1);
    bn_sampler *dst = bn_check_sampler(L, 2);
    bn_job_status st;
    int32_t none[1];
    if (bn_job_poll(j, none, 0, &st), st.end == BN_JOB_RUNNING) luaL_error(L, "job:sampler_into: the job is running");
    bn_sampler_copy_state(dst, bn_job_sampler(j));
    return 0;
}

/* job:close(): cancels the job if running, waits for the engine's step to
 * let go of it, releases its session. __gc and __close do the same. */
static int l_close(lua_State *L) {
    bn_ljob *u = luaL_checkudata(L, 1, BN_JOB_MT);
    bn_job *j = u->j;
    u->j = NULL;
    bn_job_free(j);
    return 0;
}

static int l_tostring(lua_State *L) {
    bn_ljob *u = luaL_checkudata(L, 1, BN_JOB_MT);
    lua_pushstring(L, u->j ? "bitnet.Job" : "bitnet.Job<closed>");
    return 1;
}

static const luaL_Reg job_methods[] = {{"prompt_logprobs", l_prompt_logprobs}, {"embedding", l_embedding},
                                       {"poll", l_poll},     {"cancel", l_cancel}, {"wait", l_wait},
                                       {"fd", l_fd},         {"sampler_into", l_sampler_into},
                                       {"close", l_close},   {NULL, NULL}};

void bn_open_job(lua_State *L) {
    bn_open_class(L, BN_JOB_MT, NULL, job_methods, l_close, l_tostring);
    lua_pushcfunction(L, l_job);
    lua_setfield(L, -2, "job");
}
