/* lconvert.c: bitnet.core.convert, the Lua face of convert.c. */
#include <string.h>

#include "model/convert.h"
#include "model/load.h"
#include "formats/gguf.h"
#include "lua/lbitnet.h"

typedef struct {
    lua_State *L;
    int fn;        /* stack index of the progress function, 0 if none */
    int raised;    /* the callback raised: its error value is on the stack */
    int cancelled; /* the callback returned false */
} progress_ctx;

static int on_progress(void *ud, int done, int total) {
    progress_ctx *p = ud;
    lua_State *L = p->L;
    lua_pushvalue(L, p->fn);
    lua_pushinteger(L, done);
    lua_pushinteger(L, total);
    if (lua_pcall(L, 2, 1, 0) != 0) {
        p->raised = 1; /* keep the error value for after the cleanup */
        return 0;
    }
    int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (stop) p->cancelled = 1;
    return !stop;
}

static uint32_t type_named(lua_State *L, const char *s, const char *key, int dense) {
    static const struct { const char *name; uint32_t type; int linear, dense; } types[] = {
        {"i2_s", GGML_I2_S, 1, 0}, {"tq1_0", GGML_TQ1_0, 1, 0}, {"tq2_0", GGML_TQ2_0, 1, 0},
        {"f16", GGML_F16, 1, 1},   {"f32", GGML_F32, 1, 1},     {"bf16", GGML_BF16, 0, 1},
        {"q8_0", GGML_Q8_0, 0, 1}, {"q6_k", GGML_Q6_K, 0, 1},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].name, s) == 0 && (dense ? types[i].dense : types[i].linear)) return types[i].type;
    luaL_error(L, "bitnet.convert: option '%s' cannot be \"%s\" (%s)", key, s,
               dense ? "f16, bf16, f32, q8_0 or q6_k" : "i2_s, tq1_0, tq2_0, f16 or f32");
    return 0;
}

/* bitnet.convert(src, dst [, opts]) -> true | nil, message
 * src: a path bitnet.load reads (GGUF file or Hugging Face directory) or a
 * loaded Model. opts: type ("i2_s" default, "tq1_0", "tq2_0", "f16",
 * "f32": the linear weights), embeddings ("f16", "bf16", "f32", "q8_0",
 * "q6_k"; default: the source's type), fallback ("f16" | "f32": for linear
 * tensors whose rows the type cannot hold; default: refuse),
 * scale_convention (as bitnet.load), progress (function(done, total) called
 * after each tensor; returning false cancels; an error it raises
 * propagates after the partial file is removed). */
static int l_convert(lua_State *L) {
    static const char *const allowed[] = {"type", "embeddings", "fallback", "scale_convention", "progress", NULL};
    int is_model = luaL_testudata(L, 1, BN_MODEL_MT) != NULL;
    if (!is_model && lua_type(L, 1) != LUA_TSTRING)
        luaL_error(L, "bitnet.convert: argument 'src' must be a path or a Model, got %s", luaL_typename(L, 1));
    const char *dst = luaL_checkstring(L, 2);
    bn_check_options(L, 3, "bitnet.convert", allowed);
    bn_convert_opts o = {GGML_I2_S, BN_CONVERT_KEEP, BN_CONVERT_NONE, NULL, NULL};
    o.linear_type = type_named(L, bn_opt_string(L, 3, "type", "i2_s", "bitnet.convert"), "type", 0);
    const char *e = bn_opt_string(L, 3, "embeddings", NULL, "bitnet.convert");
    if (e) o.embd_type = type_named(L, e, "embeddings", 1);
    const char *fb = bn_opt_string(L, 3, "fallback", NULL, "bitnet.convert");
    if (fb && strcmp(fb, "f16") && strcmp(fb, "f32"))
        luaL_error(L, "bitnet.convert: option 'fallback' must be \"f16\" or \"f32\"");
    if (fb) o.fallback_type = strcmp(fb, "f16") == 0 ? GGML_F16 : GGML_F32;
    bn_load_opts lo = {0};
    lo.scale_convention = bn_opt_string(L, 3, "scale_convention", NULL, "bitnet.convert");
    if (lo.scale_convention && strcmp(lo.scale_convention, "multiply") && strcmp(lo.scale_convention, "divide"))
        luaL_error(L, "bitnet.convert: option 'scale_convention' must be \"multiply\" or \"divide\"");
    progress_ctx p = {L, 0, 0, 0};
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "progress");
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
            luaL_error(L, "bitnet.convert: option 'progress' must be a function");
        if (lua_isfunction(L, -1)) {
            p.fn = lua_gettop(L);
            o.progress = on_progress;
            o.progress_ud = &p;
        } else {
            lua_pop(L, 1);
        }
    }
    bn_err err = {0};
    bn_model *m;
    if (is_model) {
        m = bn_check_model(L, 1);
        bn_model_retain(m);
    } else {
        m = bn_model_load(lua_tostring(L, 1), &lo, &err);
        if (!m) {
            lua_pushnil(L);
            lua_pushstring(L, err.msg);
            return 2;
        }
    }
    int ok = bn_convert_model(m, dst, &o, &err);
    bn_model_release(m);
    if (p.raised) return lua_error(L); /* the callback's own error value */
    if (!ok) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

void bn_open_convert(lua_State *L) {
    lua_pushcfunction(L, l_convert);
    lua_setfield(L, -2, "convert");
}
