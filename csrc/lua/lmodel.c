/* lmodel.c: bitnet.Model userdata: loading and introspection. */
#include <stdio.h>
#include <string.h>

#include "lua/lbitnet.h"
#include "model/model_cache.h"
#include "runtime/engine.h"
#include "runtime/session_file.h"

bn_model *bn_check_model(lua_State *L, int idx) {
    bn_lmodel *u = luaL_checkudata(L, idx, BN_MODEL_MT);
    if (!u->m) luaL_error(L, "bitnet.Model: the model is closed");
    return u->m;
}

void bn_push_model(lua_State *L, bn_model *m) {
    bn_lmodel *u = lua_newuserdata(L, sizeof *u);
    u->m = m;
    luaL_setmetatable(L, BN_MODEL_MT); /* only once the object is whole */
}

/* bitnet.load(path [, opts]) -> Model | nil, message
 * opts: threads (integer >= 0, 0 = one per physical core), kernel ("auto",
 * "ref", ...: force a kernel path), n_ctx (default session context),
 * scale_convention ("multiply" | "divide", for packed HF weights),
 * max_memory (bytes one session's KV-cache may take; default: the
 * machine's physical memory). */
static int l_load(lua_State *L) {
    static const char *const allowed[] = {"threads", "kernel", "n_ctx", "scale_convention", "output_head", "hugepages",
                                          "max_memory", NULL};
    const char *path = luaL_checkstring(L, 1);
    bn_check_options(L, 2, "bitnet.load", allowed);
    bn_load_opts o = {0};
    lua_Integer threads = bn_opt_integer(L, 2, "threads", 0, "bitnet.load");
    if (threads < 0 || threads > 256) luaL_error(L, "bitnet.load: option 'threads' must be 0..256");
    o.threads = (int)threads;
    o.kernel = bn_opt_string(L, 2, "kernel", NULL, "bitnet.load");
    if (o.kernel && !bn_kernels_select(o.kernel)) {
        char why[160];
        bn_kernels_refusal(o.kernel, why, sizeof why);
        luaL_error(L, "bitnet.load: %s", why);
    }
    o.output_head = bn_opt_string(L, 2, "output_head", NULL, "bitnet.load");
    if (o.output_head && strcmp(o.output_head, "native") && strcmp(o.output_head, "int8"))
        luaL_error(L, "bitnet.load: option 'output_head' must be \"native\" or \"int8\"");
    o.hugepages = bn_opt_boolean(L, 2, "hugepages", 0, "bitnet.load");
    lua_Integer n_ctx = bn_opt_integer(L, 2, "n_ctx", 0, "bitnet.load");
    if (n_ctx < 0 || n_ctx > (1 << 20)) luaL_error(L, "bitnet.load: option 'n_ctx' must be 0..1048576");
    o.scale_convention = bn_opt_string(L, 2, "scale_convention", NULL, "bitnet.load");
    if (o.scale_convention && strcmp(o.scale_convention, "multiply") && strcmp(o.scale_convention, "divide"))
        luaL_error(L, "bitnet.load: option 'scale_convention' must be \"multiply\" or \"divide\"");
    lua_Integer max_memory = bn_opt_integer(L, 2, "max_memory", 0, "bitnet.load"); /* 0: absent */
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "max_memory");
        int given = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (given && max_memory <= 0) luaL_error(L, "bitnet.load: option 'max_memory' must be a positive number of bytes");
    }
    o.max_memory = (uint64_t)max_memory;
    bn_err err = {0};
    bn_model *m = bn_model_open(path, &o, (int)n_ctx, &err);
    if (!m) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg[0] ? err.msg : "load failed");
        return 2;
    }
    bn_push_model(L, m);
    return 1;
}

/* bitnet.attach(id) -> Model | nil, message: another handle on the model
 * that model:id() named, loaded by any Lua state of this process and still
 * in use there (for hosts that can pass only numbers between states). */
static int l_attach(lua_State *L) {
    lua_Integer id = 0;
    if (!bn_isintegral(L, 1, &id)) luaL_error(L, "bitnet.attach: argument 1 (id) must be an integer");
    bn_model *m = bn_model_attach((int64_t)id);
    if (!m) {
        lua_pushnil(L);
        lua_pushfstring(L, "bitnet.attach: no model with id %d is loaded", (int)id);
        return 2;
    }
    bn_push_model(L, m);
    return 1;
}

/* model:id() -> integer: the model's id in this process (see bitnet.attach);
 * loading the same file with the same options gives the same model. */
static int l_id(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)bn_check_model(L, 1)->cache_id);
    return 1;
}

/* bitnet.core.kernels() -> array of the kernel paths this CPU can run,
 * best first (names for the `kernel` load option). */
static int l_kernels(lua_State *L) {
    const bn_kernels *k[16];
    int n = bn_kernels_available(k, 16);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, k[i]->name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* model:info() -> table describing the model (see README). */
static int l_info(lua_State *L) {
    bn_model *m = bn_check_model(L, 1);
    const bn_hparams *hp = &m->hp;
    lua_createtable(L, 0, 20);
    lua_pushstring(L, m->arch);
    lua_setfield(L, -2, "arch");
    set_int(L, "n_layers", hp->n_layers);
    set_int(L, "n_embd", hp->n_embd);
    set_int(L, "n_heads", hp->n_heads);
    set_int(L, "n_kv_heads", hp->n_kv_heads);
    set_int(L, "head_dim", hp->head_dim);
    set_int(L, "n_ff", hp->n_ff);
    set_int(L, "n_vocab", hp->n_vocab);
    set_int(L, "n_ctx_train", hp->n_ctx_train);
    lua_pushnumber(L, hp->rope_theta);
    lua_setfield(L, -2, "rope_theta");
    lua_pushnumber(L, hp->norm_eps);
    lua_setfield(L, -2, "norm_eps");
    lua_pushstring(L, hp->act == BN_ACT_RELU2 ? "relu2" : "silu");
    lua_setfield(L, -2, "activation");
    lua_pushstring(L, m->format);
    lua_setfield(L, -2, "format");
    lua_pushstring(L, m->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, m->name);
    lua_setfield(L, -2, "name");
    lua_pushboolean(L, m->tied);
    lua_setfield(L, -2, "tied_embeddings");
    lua_createtable(L, 0, m->n_types);
    for (int i = 0; i < m->n_types; i++) {
        lua_pushinteger(L, m->types[i].count);
        lua_setfield(L, -2, m->types[i].name);
    }
    lua_setfield(L, -2, "tensor_types");
    set_int(L, "n_params", (lua_Integer)m->n_params);
    set_int(L, "file_size", (lua_Integer)m->file_size);
    lua_pushstring(L, m->kern->name);
    lua_setfield(L, -2, "kernel");
    set_int(L, "threads", m->threads);
    lua_pushstring(L, m->head_i8 ? "int8" : "native");
    lua_setfield(L, -2, "output_head");
    return 1;
}

/* model:session([{ n_ctx = N, kv_type = "f32"|"f16", jitter = r,
 * jitter_seed = k }]) -> Session with its own KV-cache (f32 by default; f16
 * halves its memory and bandwidth). jitter perturbs input embeddings by a
 * relative r (deterministic per seed): a probe of how sensitive logits are to float
 * rounding, which int8 activation rounding can amplify. */
static int l_session(lua_State *L) {
    static const char *const allowed[] = {"n_ctx", "jitter", "jitter_seed", "kv_type", NULL};
    bn_model *m = bn_check_model(L, 1);
    bn_check_options(L, 2, "model:session", allowed);
    lua_Integer n_ctx = bn_opt_integer(L, 2, "n_ctx", m->default_n_ctx, "model:session");
    if (n_ctx < 0 || n_ctx > (1 << 20)) luaL_error(L, "model:session: option 'n_ctx' must be 1..1048576");
    float jitter = 0.0f;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "jitter");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "model:session: option 'jitter' must be a number");
            jitter = (float)lua_tonumber(L, -1);
            if (!(jitter >= 0.0f && jitter < 0.01f)) luaL_error(L, "model:session: option 'jitter' must be in [0, 0.01)");
        }
        lua_pop(L, 1);
    }
    lua_Integer jseed = bn_opt_integer(L, 2, "jitter_seed", 1, "model:session");
    const char *kv_type = bn_opt_string(L, 2, "kv_type", "f32", "model:session");
    if (strcmp(kv_type, "f32") && strcmp(kv_type, "f16"))
        luaL_error(L, "model:session: option 'kv_type' must be \"f32\" or \"f16\"");
    bn_session_opts so = {(int)n_ctx, strcmp(kv_type, "f16") == 0};
    bn_lsession *u = lua_newuserdata(L, sizeof *u);
    u->s = NULL;
    bn_err err = {0};
    bn_session *s = bn_session_open(m, &so, &err);
    if (!s) luaL_error(L, "model:session: %s", err.msg);
    s->jitter = jitter;
    s->jitter_seed = (uint64_t)jseed;
    u->s = s;
    luaL_setmetatable(L, BN_SESSION_MT);
    return 1;
}

/* model:load_session(path [, { n_ctx = N }]) -> Session | nil, message
 * A session saved by sess:save, for this model: it continues exactly as
 * the saved one would. n_ctx (default: the saved size) must hold the saved
 * positions. A missing, truncated, corrupt, newer or other model's file
 * returns nil and a message naming the file and the problem. */
static int l_load_session(lua_State *L) {
    static const char *const allowed[] = {"n_ctx", NULL};
    bn_model *m = bn_check_model(L, 1);
    const char *path = luaL_checkstring(L, 2);
    bn_check_options(L, 3, "model:load_session", allowed);
    lua_Integer n_ctx = bn_opt_integer(L, 3, "n_ctx", 0, "model:load_session");
    if (n_ctx < 0 || n_ctx > (1 << 20)) luaL_error(L, "model:load_session: option 'n_ctx' must be 1..1048576");
    bn_lsession *u = lua_newuserdata(L, sizeof *u);
    u->s = NULL;
    bn_err err = {0};
    bn_session *s = bn_session_load(m, path, (int)n_ctx, &err);
    if (!s) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    u->s = s;
    luaL_setmetatable(L, BN_SESSION_MT);
    return 1;
}

/* model:chat_template() -> the Jinja chat template the model's files carry
 * (GGUF tokenizer.chat_template or tokenizer_config.json), or nil. */
static int l_chat_template(lua_State *L) {
    bn_model *m = bn_check_model(L, 1);
    if (m->chat_template) lua_pushstring(L, m->chat_template);
    else lua_pushnil(L);
    return 1;
}

static int l_tostring(lua_State *L) {
    bn_lmodel *u = luaL_checkudata(L, 1, BN_MODEL_MT);
    if (!u->m) {
        lua_pushstring(L, "bitnet.Model<closed>");
        return 1;
    }
    bn_model *m = u->m;
    char params[32];
    snprintf(params, sizeof params, "%.1fM", (double)m->n_params / 1e6);
    lua_pushfstring(L, "bitnet.Model<%s, %s params, %d layers, %s, %s>", m->arch, params, m->hp.n_layers,
                    m->format, m->path);
    return 1;
}

/* model:close(): drops this handle's reference to the weights now (they go
 * when sessions and async generations using them are done too); __close
 * and __gc do the same. Any other use of a closed model raises. */
static int l_gc(lua_State *L) {
    bn_lmodel *u = luaL_checkudata(L, 1, BN_MODEL_MT);
    if (u->m) bn_model_release(u->m);
    u->m = NULL;
    return 0;
}

/* model:jobs() -> how many generations the model's engine holds (running,
 * or cancelled and not yet let go): 0 once every one was released. */
static int l_jobs(lua_State *L) {
    lua_pushinteger(L, bn_engine_jobs(bn_check_model(L, 1)));
    return 1;
}

static const luaL_Reg model_methods[] = {
    {"info", l_info}, {"session", l_session}, {"chat_template", l_chat_template}, {"close", l_gc}, {"id", l_id}, {"load_session", l_load_session},
    {"jobs", l_jobs}, {NULL, NULL}};

void bn_open_model(lua_State *L) {
    /* module.Model: the methods, for the Lua layer to extend */
    bn_open_class(L, BN_MODEL_MT, "Model", model_methods, l_gc, l_tostring);
    lua_pushcfunction(L, l_load);
    lua_setfield(L, -2, "load");
    lua_pushcfunction(L, l_attach);
    lua_setfield(L, -2, "attach");
    lua_pushcfunction(L, l_kernels);
    lua_setfield(L, -2, "kernels");
}
