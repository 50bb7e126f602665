/* ltokenizer.c: bitnet.Tokenizer and bitnet.Decoder userdata, and the
 * model's tokenizer methods (model:tokenizer / tokenize / detokenize).
 * A Tokenizer or Decoder keeps what owns the tokenizer alive: the model it
 * came from, or the tokenizer itself when it was loaded on its own. */
#include <stdio.h>
#include <string.h>

#include "lua/lbitnet.h"
#include "tokenizer/tokenizer.h"

#define TOKENIZER_MT "bitnet.Tokenizer"
#define DECODER_MT "bitnet.Decoder"

typedef struct {
    bn_tokenizer *t;
    bn_model *m; /* owner when the tokenizer is a model's, else NULL */
} owner;

typedef struct {
    owner o;
    bn_detok d;
} ldecoder;

static void owner_retain(owner *o) {
    if (o->m) bn_model_retain(o->m);
    else bn_tokenizer_retain(o->t);
}

static void owner_release(owner *o) {
    if (o->m) bn_model_release(o->m);
    else if (o->t) bn_tokenizer_free(o->t);
    o->m = NULL;
    o->t = NULL;
}

static const bn_tokenizer *check_tokenizer(lua_State *L, int idx) {
    owner *o = luaL_checkudata(L, idx, TOKENIZER_MT);
    return o->t;
}

/* The model's tokenizer, or an error carrying why it has none. */
static bn_tokenizer *model_tokenizer(lua_State *L, bn_model *m, const char *fname) {
    if (!m->tokenizer) luaL_error(L, "%s: the model has no tokenizer: %s", fname, m->tokenizer_error);
    return m->tokenizer;
}

const bn_tokenizer *bn_check_tokenizer_of(lua_State *L, int idx, const char *fname) {
    owner *o = luaL_testudata(L, idx, TOKENIZER_MT);
    if (o) return o->t;
    if (luaL_testudata(L, idx, BN_MODEL_MT)) return model_tokenizer(L, bn_check_model(L, idx), fname);
    luaL_error(L, "%s: expected a bitnet.Tokenizer or bitnet.Model, got %s", fname, luaL_typename(L, idx));
    return NULL;
}

/* Pushes a Tokenizer userdata sharing o's ownership (retains). */
static void push_tokenizer(lua_State *L, owner o) {
    owner *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    owner_retain(&o);
    *u = o;
    luaL_setmetatable(L, TOKENIZER_MT);
}

/* ---- shared bodies of tok:* and model:* ---- */

static int encode_at(lua_State *L, const bn_tokenizer *t, const char *fname) {
    static const char *const allowed[] = {"bos", "special", NULL};
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    bn_check_options(L, 3, fname, allowed);
    bn_encode_opts o;
    o.add_bos = -1;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "bos");
        if (!lua_isnil(L, -1)) o.add_bos = bn_opt_boolean(L, 3, "bos", 0, fname);
        lua_pop(L, 1);
    }
    o.parse_special = bn_opt_boolean(L, 3, "special", 0, fname);
    bn_ids ids = {0};
    bn_err err = {0};
    if (!bn_tokenizer_encode(t, text, len, &o, &ids, &err)) {
        bn_ids_free(&ids);
        return luaL_error(L, "%s: %s", fname, err.msg);
    }
    lua_createtable(L, (int)(ids.n < 0x7fffffff ? ids.n : 0), 0);
    for (size_t i = 0; i < ids.n; i++) {
        lua_pushinteger(L, ids.v[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    bn_ids_free(&ids);
    return 1;
}

/* Reads decode options at idx into special / strip. */
static void decode_options(lua_State *L, int idx, const char *fname, int *special, int *strip) {
    static const char *const allowed[] = {"special", "strip_leading_space", NULL};
    bn_check_options(L, idx, fname, allowed);
    *special = bn_opt_boolean(L, idx, "special", 0, fname);
    *strip = bn_opt_boolean(L, idx, "strip_leading_space", 1, fname);
}

/* An integer as text (lua_pushfstring has no integer format on LuaJIT). */
static const char *integer_text(lua_Integer v, char buf[32]) {
    snprintf(buf, 32, "%lld", (long long)v);
    return buf;
}

/* A token id argument: an integer in the vocabulary, else an error naming it. */
static int32_t check_id(lua_State *L, const bn_tokenizer *t, int idx, const char *fname) {
    char buf[32];
    lua_Integer id = 0;
    if (!bn_isintegral(L, idx, &id)) luaL_error(L, "%s: token id must be an integer, got %s", fname, luaL_typename(L, idx));
    if (id < 0 || id >= bn_tokenizer_n_vocab(t))
        luaL_error(L, "%s: unknown token id %s (the vocabulary has %d)", fname, integer_text(id, buf),
                   (int)bn_tokenizer_n_vocab(t));
    return (int32_t)id;
}

static int decode_at(lua_State *L, const bn_tokenizer *t, const char *fname) {
    luaL_checktype(L, 2, LUA_TTABLE);
    int special, strip;
    decode_options(L, 3, fname, &special, &strip);
    size_t n = lua_rawlen(L, 2);
    bn_detok d;
    bn_detok_init(&d, t, special, strip);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    bn_bytes out = {0};
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, (int)i);
        lua_Integer id = 0;
        int bad = !bn_isintegral(L, -1, &id) || id < 0 || id >= bn_tokenizer_n_vocab(t);
        if (bad) {
            bn_bytes_free(&out);
            if (!bn_isintegral(L, -1, &id))
                return luaL_error(L, "%s: ids[%d] must be an integer, got %s", fname, (int)i, luaL_typename(L, -1));
            char buf[32];
            return luaL_error(L, "%s: unknown token id %s at ids[%d]", fname, integer_text(id, buf), (int)i);
        }
        lua_pop(L, 1);
        out.n = 0;
        if (bn_detok_feed(&d, (int32_t)id, &out) < 0) {
            bn_bytes_free(&out);
            return luaL_error(L, "%s: out of memory", fname);
        }
        luaL_addlstring(&b, out.p ? out.p : "", out.n);
    }
    out.n = 0;
    if (bn_detok_flush(&d, &out) < 0) {
        bn_bytes_free(&out);
        return luaL_error(L, "%s: out of memory", fname);
    }
    luaL_addlstring(&b, out.p ? out.p : "", out.n);
    bn_bytes_free(&out);
    luaL_pushresult(&b);
    return 1;
}

/* ---- bitnet.Tokenizer ---- */

/* core.tokenizer(path) -> Tokenizer | nil, message. path: a tokenizer.json,
 * a directory holding tokenizer.json [+ tokenizer_config.json], or a GGUF
 * file (vocabulary-only files too). */
static int l_tokenizer_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    bn_err err = {0};
    bn_tokenizer *t = bn_tokenizer_load(path, &err);
    if (!t) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg[0] ? err.msg : "cannot load the tokenizer");
        return 2;
    }
    owner o = {t, NULL};
    push_tokenizer(L, o);
    bn_tokenizer_free(t); /* the userdata holds its own reference */
    return 1;
}

/* tok:encode(text [, { bos = bool, special = bool }]) -> { id, ... } (0-based).
 * bos: add BOS; default tok:add_bos(): GGUF tokenizer.ggml.add_bos_token,
 * else true for SentencePiece and LLaMA-3 BPE (llama.cpp's defaults); for a
 * tokenizer.json, tokenizer_config.json's add_bos_token, else whether the
 * post_processor template starts with a special token, else true for
 * SentencePiece-style and false for byte-level. Asking for BOS when the
 * vocabulary has none raises. special: texts of control tokens (e.g.
 * "<|eot_id|>") become those tokens (default false: they are plain text).
 * Non-special added tokens are always recognized, as the reference does.
 * Any bytes are accepted: invalid UTF-8 is encoded byte by byte. */
static int l_encode(lua_State *L) { return encode_at(L, check_tokenizer(L, 1), "tok:encode"); }

/* tok:decode(ids [, { special = bool, strip_leading_space = bool }]) -> bytes.
 * special: render control tokens as their text (default false: nothing).
 * strip_leading_space (default true): SPM only, drop the one space
 * sentencepiece puts before the text; pass false for a continuation.
 * An id outside the vocabulary raises an error naming it. */
static int l_decode(lua_State *L) { return decode_at(L, check_tokenizer(L, 1), "tok:decode"); }

/* tok:piece(id) -> the bytes of token id (control tokens: their text). */
typedef struct {
    lua_State *L;
    int n;
} word_list;

static int push_word(void *ctx, const uint8_t *word, size_t len) {
    word_list *w = ctx;
    lua_pushlstring(w->L, (const char *)word, len);
    lua_rawseti(w->L, -2, ++w->n);
    return 1;
}

static int l_pretokenize(lua_State *L) {
    const bn_tokenizer *t = check_tokenizer(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    lua_newtable(L);
    word_list w = {L, 0};
    bn_tokenizer_pretokenize(t, text, len, push_word, &w);
    return 1;
}

static int l_piece(lua_State *L) {
    const bn_tokenizer *t = check_tokenizer(L, 1);
    size_t len;
    const char *p = bn_tokenizer_piece(t, check_id(L, t, 2, "tok:piece"), &len);
    lua_pushlstring(L, p, len);
    return 1;
}

/* tok:text(id) -> the token as the vocabulary spells it ("ĠHello", "▁Hello"). */
static int l_text(lua_State *L) {
    const bn_tokenizer *t = check_tokenizer(L, 1);
    size_t len;
    const char *p = bn_tokenizer_text(t, check_id(L, t, 2, "tok:text"), &len);
    lua_pushlstring(L, p, len);
    return 1;
}

/* tok:id(text) -> the id of the token spelled exactly text, or nil. */
static int l_id(lua_State *L) {
    const bn_tokenizer *t = check_tokenizer(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    int32_t id = bn_tokenizer_find(t, s, len);
    if (id < 0) lua_pushnil(L);
    else lua_pushinteger(L, id);
    return 1;
}

/* tok:score(id) -> the SentencePiece score of id (merge priority, higher
 * first), or nil for byte-level BPE, which merges by rank instead. */
static int l_score(lua_State *L) {
    const bn_tokenizer *t = check_tokenizer(L, 1);
    float score;
    if (bn_tokenizer_score(t, check_id(L, t, 2, "tok:score"), &score)) lua_pushnumber(L, score);
    else lua_pushnil(L);
    return 1;
}

static void push_id_or_nil(lua_State *L, int32_t id) {
    if (id < 0) lua_pushnil(L);
    else lua_pushinteger(L, id);
}

/* tok:n_vocab() -> number of ids. */
static int l_n_vocab(lua_State *L) {
    lua_pushinteger(L, bn_tokenizer_n_vocab(check_tokenizer(L, 1)));
    return 1;
}

/* tok:bos(), tok:eos(), tok:eot() -> id, or nil when the vocabulary has none. */
static int l_bos(lua_State *L) {
    push_id_or_nil(L, bn_tokenizer_bos(check_tokenizer(L, 1)));
    return 1;
}
static int l_eos(lua_State *L) {
    push_id_or_nil(L, bn_tokenizer_eos(check_tokenizer(L, 1)));
    return 1;
}
static int l_eot(lua_State *L) {
    push_id_or_nil(L, bn_tokenizer_eot(check_tokenizer(L, 1)));
    return 1;
}

/* tok:fim() -> prefix, suffix, middle ids for fill-in-the-middle prompts,
 * or nil when the vocabulary lacks them. */
static int l_fim(lua_State *L) {
    int32_t pre, suf, mid;
    if (!bn_tokenizer_fim(check_tokenizer(L, 1), &pre, &suf, &mid)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, pre);
    lua_pushinteger(L, suf);
    lua_pushinteger(L, mid);
    return 3;
}

/* tok:add_bos() -> whether encode adds BOS by default. */
static int l_add_bos(lua_State *L) {
    lua_pushboolean(L, bn_tokenizer_add_bos(check_tokenizer(L, 1)));
    return 1;
}

/* tok:is_eog(id) -> whether id ends generation (EOS, EOT, EOM, or another
 * end-of-turn control token). */
static int l_is_eog(lua_State *L) {
    const bn_tokenizer *t = check_tokenizer(L, 1);
    lua_pushboolean(L, bn_tokenizer_is_eog(t, check_id(L, t, 2, "tok:is_eog")));
    return 1;
}

/* tok:is_control(id) -> whether id is a control token (rendered by decode
 * only with special = true). */
static int l_is_control(lua_State *L) {
    const bn_tokenizer *t = check_tokenizer(L, 1);
    lua_pushboolean(L, bn_tokenizer_is_control(t, check_id(L, t, 2, "tok:is_control")));
    return 1;
}

/* tok:type() -> "spm" (SentencePiece BPE) or "bpe" (byte-level BPE). */
static int l_type(lua_State *L) {
    lua_pushstring(L, bn_tokenizer_get_kind(check_tokenizer(L, 1)) == BN_TOKENIZER_SPM ? "spm" : "bpe");
    return 1;
}

/* tok:decoder([{ special = bool, strip_leading_space = bool }]) -> Decoder,
 * a streaming decode with the options of tok:decode. */
static int l_decoder(lua_State *L) {
    owner *o = luaL_checkudata(L, 1, TOKENIZER_MT);
    int special, strip;
    decode_options(L, 2, "tok:decoder", &special, &strip);
    ldecoder *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->o = *o;
    owner_retain(&u->o);
    bn_detok_init(&u->d, u->o.t, special, strip);
    luaL_setmetatable(L, DECODER_MT);
    return 1;
}

static int l_tokenizer_tostring(lua_State *L) {
    const bn_tokenizer *t = check_tokenizer(L, 1);
    lua_pushfstring(L, "bitnet.Tokenizer<%s, %d tokens>", bn_tokenizer_get_kind(t) == BN_TOKENIZER_SPM ? "spm" : "bpe",
                    (int)bn_tokenizer_n_vocab(t));
    return 1;
}

static int l_tokenizer_gc(lua_State *L) {
    owner_release(luaL_checkudata(L, 1, TOKENIZER_MT));
    return 0;
}

/* ---- bitnet.Decoder ---- */

static ldecoder *check_decoder(lua_State *L) { return luaL_checkudata(L, 1, DECODER_MT); }

/* dec:feed(id) -> the complete UTF-8 this id releases (possibly ""); an
 * unfinished sequence is carried to the next feed. */
static int l_dec_feed(lua_State *L) {
    ldecoder *u = check_decoder(L);
    int32_t id = check_id(L, u->o.t, 2, "dec:feed");
    bn_bytes out = {0};
    int r = bn_detok_feed(&u->d, id, &out);
    if (r < 0) {
        bn_bytes_free(&out);
        return luaL_error(L, "dec:feed: out of memory");
    }
    lua_pushlstring(L, out.p ? out.p : "", out.n);
    bn_bytes_free(&out);
    return 1;
}

/* dec:flush() -> the bytes still carried (an unfinished sequence), or "". */
static int l_dec_flush(lua_State *L) {
    ldecoder *u = check_decoder(L);
    bn_bytes out = {0};
    if (bn_detok_flush(&u->d, &out) < 0) return luaL_error(L, "dec:flush: out of memory");
    lua_pushlstring(L, out.p ? out.p : "", out.n);
    bn_bytes_free(&out);
    return 1;
}

/* dec:reset() -> drops carried bytes and starts over (as a new decoder). */
static int l_dec_reset(lua_State *L) {
    ldecoder *u = check_decoder(L);
    bn_detok_init(&u->d, u->o.t, u->d.special, u->d.strip_space);
    return 0;
}

static int l_dec_gc(lua_State *L) {
    owner_release(&check_decoder(L)->o);
    return 0;
}

/* ---- model methods ---- */

/* model:tokenizer() -> the model's Tokenizer (keeps the model alive). */
static int l_model_tokenizer(lua_State *L) {
    bn_model *m = bn_check_model(L, 1);
    owner o = {model_tokenizer(L, m, "model:tokenizer"), m};
    push_tokenizer(L, o);
    return 1;
}

/* model:tokenize(text [, opts]) -> ids: the model's tok:encode. */
static int l_model_tokenize(lua_State *L) {
    bn_model *m = bn_check_model(L, 1);
    return encode_at(L, model_tokenizer(L, m, "model:tokenize"), "model:tokenize");
}

/* model:detokenize(ids [, opts]) -> bytes: the model's tok:decode. */
static int l_model_detokenize(lua_State *L) {
    bn_model *m = bn_check_model(L, 1);
    return decode_at(L, model_tokenizer(L, m, "model:detokenize"), "model:detokenize");
}

static const luaL_Reg tokenizer_methods[] = {
    {"encode", l_encode}, {"decode", l_decode}, {"pretokenize", l_pretokenize}, {"piece", l_piece}, {"text", l_text}, {"id", l_id}, {"score", l_score},
    {"n_vocab", l_n_vocab}, {"bos", l_bos}, {"eos", l_eos}, {"eot", l_eot}, {"fim", l_fim}, {"add_bos", l_add_bos},
    {"is_eog", l_is_eog}, {"is_control", l_is_control}, {"type", l_type}, {"decoder", l_decoder}, {NULL, NULL}};

static const luaL_Reg decoder_methods[] = {
    {"feed", l_dec_feed}, {"flush", l_dec_flush}, {"reset", l_dec_reset}, {NULL, NULL}};

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc) {
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_newtable(L);
    for (const luaL_Reg *r = methods; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -2, r->name);
    }
    lua_setfield(L, -2, "__index");
}

/* Expects the module table on top of the stack, with module.Model already
 * set (bn_open_model first). Leaves the stack as it was. */
void bn_open_tokenizer(lua_State *L) {
    new_class(L, TOKENIZER_MT, tokenizer_methods, l_tokenizer_gc);
    lua_pushcfunction(L, l_tokenizer_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    new_class(L, DECODER_MT, decoder_methods, l_dec_gc);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_tokenizer_load);
    lua_setfield(L, -2, "tokenizer");
    lua_getfield(L, -1, "Model");
    if (lua_istable(L, -1)) {
        lua_pushcfunction(L, l_model_tokenizer);
        lua_setfield(L, -2, "tokenizer");
        lua_pushcfunction(L, l_model_tokenize);
        lua_setfield(L, -2, "tokenize");
        lua_pushcfunction(L, l_model_detokenize);
        lua_setfield(L, -2, "detokenize");
    }
    lua_pop(L, 1);
}
