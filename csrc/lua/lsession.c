/* lsession.c: bitnet.Session userdata: feeding tokens, reading logits. */
#include <stdlib.h>
#include <string.h>

#include "lua/lbitnet.h"
#include "runtime/score.h"
#include "runtime/session_file.h"

bn_session *bn_check_session(lua_State *L, int idx) {
    bn_lsession *u = luaL_checkudata(L, idx, BN_SESSION_MT);
    if (!u->s) luaL_error(L, "bitnet.Session: the session is closed");
    return u->s;
}

bn_session *bn_claim_session(lua_State *L, int idx) {
    bn_session *s = bn_check_session(L, idx);
    if (bn_session_claim(s) != 0)
        luaL_error(L, "bitnet.Session: session in use (by an async generation or another thread)");
    return s;
}

/* Reads the Lua array at idx into a fresh int32 buffer after checking every
 * id against the vocabulary; raises on misuse. */
static int32_t *check_ids(lua_State *L, int idx, int n_vocab, int *n_out, const char *fname) {
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t n = lua_rawlen(L, idx);
    if (n > (1u << 24)) luaL_error(L, "%s: too many token ids (%d)", fname, (int)n);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) luaL_error(L, "%s: out of memory", fname);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        lua_Integer v = 0;
        int ok = bn_isintegral(L, -1, &v);
        lua_pop(L, 1);
        if (!ok || v < 0 || v >= n_vocab) {
            free(ids);
            if (!ok) luaL_error(L, "%s: token id at index %d is not an integer", fname, (int)i + 1);
            luaL_error(L, "%s: token id %d at index %d is out of range (vocabulary has %d ids, 0..%d)", fname,
                       (int)v, (int)i + 1, n_vocab, n_vocab - 1);
        }
        ids[i] = (int32_t)v;
    }
    *n_out = (int)n;
    return ids;
}

/* sess:feed(ids [, { max_tokens = N }]) -> number of tokens consumed.
 * Evaluates the ids (0-based) after what the session holds; with max_tokens
 * it consumes at most that many (chunked prefill for cooperative hosts). */
static int l_feed(lua_State *L) {
    static const char *const allowed[] = {"max_tokens", NULL};
    bn_session *s = bn_check_session(L, 1);
    bn_check_options(L, 3, "sess:feed", allowed);
    lua_Integer max = bn_opt_integer(L, 3, "max_tokens", -1, "sess:feed");
    int n;
    int32_t *ids = check_ids(L, 2, s->model->hp.n_vocab, &n, "sess:feed");
    if (bn_session_claim(s) != 0) {
        free(ids);
        luaL_error(L, "sess:feed: session in use (by an async generation or another thread)");
    }
    if (max >= 0 && max < n) n = (int)max;
    if (n > s->n_ctx - s->pos) {
        int pos = s->pos, ctx = s->n_ctx;
        bn_session_unclaim(s);
        free(ids);
        luaL_error(L, "sess:feed: %d tokens at position %d exceed the context of %d (n_ctx)", n, pos, ctx);
    }
    int failed = n > 0 && bn_session_eval(s, ids, n, NULL) != 0;
    bn_session_unclaim(s);
    free(ids);
    if (failed) luaL_error(L, "sess:feed: out of memory for the session's scratch");
    lua_pushinteger(L, n);
    return 1;
}

/* sess:nll(ids [, { from = k }]) -> nll, count
 * Feeds ids like sess:feed and returns the summed negative log-likelihood
 * (nats) of ids[k..#ids] given everything before each, and how many were
 * scored. from defaults to 2 (the first id has no prediction) or to 1 when
 * the session already holds tokens. The primitive behind perplexity. */
static int l_nll(lua_State *L) {
    static const char *const allowed[] = {"from", NULL};
    bn_session *s = bn_check_session(L, 1);
    bn_check_options(L, 3, "sess:nll", allowed);
    int n;
    int32_t *ids = check_ids(L, 2, s->model->hp.n_vocab, &n, "sess:nll");
    const char *problem = NULL;
    if (bn_session_claim(s) != 0) {
        free(ids);
        luaL_error(L, "sess:nll: session in use (by an async generation or another thread)");
    }
    lua_Integer from = s->have_logits ? 1 : 2;
    if (!lua_isnoneornil(L, 3)) {
        lua_getfield(L, 3, "from");
        if (!lua_isnil(L, -1) && !bn_isintegral(L, -1, &from)) problem = "option 'from' must be an integer";
        lua_pop(L, 1);
    }
    if (problem) {
    } else if (from < 1 || from > (lua_Integer)n + 1) problem = "option 'from' must be within 1..#ids+1";
    else if (from == 1 && !s->have_logits) problem = "option 'from' = 1 needs a session that already holds tokens";
    else if (n > s->n_ctx - s->pos) problem = "the ids exceed the context (n_ctx)";
    if (problem) {
        bn_session_unclaim(s);
        free(ids);
        luaL_error(L, "sess:nll: %s", problem);
    }
    bn_err err = {0};
    double nll = n ? bn_session_nll(s, ids, n, (int)from - 1, &err) : 0.0;
    bn_session_unclaim(s);
    free(ids);
    if (err.msg[0]) luaL_error(L, "sess:nll: %s", err.msg);
    lua_pushnumber(L, nll);
    lua_pushinteger(L, n - (from - 1) < 0 ? 0 : n - (from - 1));
    return 2;
}

/* sess:logits() -> array of n_vocab numbers for the last position fed
 * (index id + 1). */
static int l_logits(lua_State *L) {
    bn_session *s = bn_check_session(L, 1);
    int V = s->model->hp.n_vocab;
    lua_createtable(L, V, 0);
    bn_claim_session(L, 1);
    if (!s->have_logits) {
        bn_session_unclaim(s);
        luaL_error(L, "sess:logits: no logits yet: feed tokens first");
    }
    for (int i = 0; i < V; i++) { /* rawseti into a presized array part does not allocate */
        lua_pushnumber(L, s->logits[i]);
        lua_rawseti(L, -2, i + 1);
    }
    bn_session_unclaim(s);
    return 1;
}

/* sess:pos() -> number of positions the session holds. */
static int l_pos(lua_State *L) {
    bn_session *s = bn_claim_session(L, 1);
    int pos = s->pos;
    bn_session_unclaim(s);
    lua_pushinteger(L, pos);
    return 1;
}

/* sess:tokens() -> the token ids the session holds, one per position. */
static int l_tokens(lua_State *L) {
    bn_session *s = bn_check_session(L, 1);
    lua_createtable(L, s->n_ctx, 0);
    bn_claim_session(L, 1);
    for (int i = 0; i < s->pos; i++) {
        lua_pushinteger(L, s->tokens[i]);
        lua_rawseti(L, -2, i + 1);
    }
    bn_session_unclaim(s);
    return 1;
}

/* sess:n_ctx() -> the session's context size. */
static int l_n_ctx(lua_State *L) {
    lua_pushinteger(L, bn_check_session(L, 1)->n_ctx);
    return 1;
}

/* sess:rewind(n): drops every position from n on (0 <= n <= pos). */
static int l_rewind(lua_State *L) {
    lua_Integer n = 0;
    bn_check_session(L, 1);
    if (!bn_isintegral(L, 2, &n)) luaL_error(L, "sess:rewind: argument 1 must be an integer position");
    bn_session *s = bn_claim_session(L, 1);
    int pos = s->pos;
    if (n >= 0 && n <= pos) bn_session_rewind(s, (int)n);
    bn_session_unclaim(s);
    if (n < 0 || n > pos) luaL_error(L, "sess:rewind: position %d is outside 0..%d", (int)n, pos);
    return 0;
}

/* sess:reset(): empties the session (same as rewind(0)). */
static int l_reset(lua_State *L) {
    bn_session *s = bn_claim_session(L, 1);
    bn_session_rewind(s, 0);
    bn_session_unclaim(s);
    return 0;
}

/* sess:save(path) -> true | nil, message: writes the session (tokens, the
 * KV-cache of the positions held, the last logits) to path, atomically
 * (through path.part); model:load_session reads it back. */
static int l_save(lua_State *L) {
    bn_check_session(L, 1);
    const char *path = luaL_checkstring(L, 2);
    bn_session *s = bn_claim_session(L, 1);
    bn_err err = {0};
    int rc = bn_session_save(s, path, &err);
    bn_session_unclaim(s);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sess:shift(keep, n): context shift: drops positions keep+1..keep+n (the
 * first keep stay), moves the rest down with their keys re-rotated to their
 * new positions (csrc/runtime/kv_shift.c says what is approximate). */
static int l_shift(lua_State *L) {
    lua_Integer keep = 0, n = 0;
    bn_check_session(L, 1);
    if (!bn_isintegral(L, 2, &keep) || !bn_isintegral(L, 3, &n))
        luaL_error(L, "sess:shift: arguments keep and n must be integers");
    bn_session *s = bn_claim_session(L, 1);
    int pos = s->pos;
    int ok = keep >= 0 && n >= 1 && keep + n <= pos && bn_session_shift(s, (int)keep, (int)n) == 0;
    bn_session_unclaim(s);
    if (!ok) luaL_error(L, "sess:shift: keep (%d) >= 0, n (%d) >= 1 and keep + n <= pos (%d) are needed", (int)keep, (int)n, pos);
    return 0;
}

/* sess:copy_prefix(src, n): makes this session hold src's first n
 * positions (tokens and KV-cache, and the logits when n is all src holds),
 * so several sequences continue one evaluated prompt. Both of one model and
 * KV type; n within src's position and this session's context. */
static int l_copy_prefix(lua_State *L) {
    lua_Integer n = 0;
    bn_session *d = bn_check_session(L, 1), *src = bn_check_session(L, 2);
    if (!bn_isintegral(L, 3, &n)) luaL_error(L, "sess:copy_prefix: argument 3 (n) must be an integer");
    if (d == src) luaL_error(L, "sess:copy_prefix: the source is this session");
    bn_session *dst = bn_claim_session(L, 1);
    if (bn_session_claim(src) != 0) {
        bn_session_unclaim(dst);
        luaL_error(L, "bitnet.Session: session in use (by an async generation or another thread)");
    }
    int ok = n >= 0 && n <= INT32_MAX && bn_session_copy_prefix(dst, src, (int)n) == 0;
    int spos = src->pos, dctx = dst->n_ctx;
    bn_session_unclaim(src);
    bn_session_unclaim(dst);
    if (!ok)
        luaL_error(L, "sess:copy_prefix: n (%d) must be within 0..%d (the source's position) and %d (this context), "
                      "both sessions of one model and KV type",
                   (int)n, spos, dctx);
    return 0;
}

/* sess:kv(layer, head, pos) -> k, v: the cached key and value vectors of
 * KV head `head` of layer `layer` at position `pos` (all 1-based), as
 * arrays of head_dim numbers; for inspection and tests. */
static int l_kv(lua_State *L) {
    lua_Integer l = 0, h = 0, p = 0;
    bn_session *s = bn_check_session(L, 1);
    const bn_hparams *hp = &s->model->hp;
    if (!bn_isintegral(L, 2, &l) || !bn_isintegral(L, 3, &h) || !bn_isintegral(L, 4, &p))
        luaL_error(L, "sess:kv: layer, head and pos must be integers");
    float k[1024], v[1024];
    s = bn_claim_session(L, 1);
    int pos = s->pos, bad = l < 1 || l > hp->n_layers || h < 1 || h > hp->n_kv_heads || p < 1 || p > pos;
    if (!bad) {
        bn_session_kv_read(s, 0, (int)l - 1, (int)h - 1, (int)p - 1, k);
        bn_session_kv_read(s, 1, (int)l - 1, (int)h - 1, (int)p - 1, v);
    }
    bn_session_unclaim(s);
    if (bad) luaL_error(L, "sess:kv: layer 1..%d, head 1..%d, pos 1..%d", hp->n_layers, hp->n_kv_heads, pos);
    for (int which = 0; which < 2; which++) {
        lua_createtable(L, hp->head_dim, 0);
        for (int d = 0; d < hp->head_dim; d++) {
            lua_pushnumber(L, which ? v[d] : k[d]);
            lua_rawseti(L, -2, d + 1);
        }
    }
    return 2;
}

/* sess:close(): frees the KV-cache now; __close and __gc do the same. Safe
 * to call twice; any other use of a closed session raises. */
static int l_close(lua_State *L) {
    bn_lsession *u = luaL_checkudata(L, 1, BN_SESSION_MT);
    if (u->s) bn_session_free(u->s);
    u->s = NULL;
    return 0;
}

/* sess:model() -> the Model this session runs. */
static int l_model(lua_State *L) {
    bn_session *s = bn_check_session(L, 1);
    bn_model_retain(s->model);
    bn_push_model(L, s->model);
    return 1;
}

static int l_tostring(lua_State *L) {
    bn_lsession *u = luaL_checkudata(L, 1, BN_SESSION_MT);
    if (!u->s) lua_pushstring(L, "bitnet.Session<closed>");
    else lua_pushfstring(L, "bitnet.Session<%d/%d positions, %s>", u->s->pos, u->s->n_ctx, u->s->model->arch);
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"feed", l_feed},   {"nll", l_nll},     {"logits", l_logits}, {"pos", l_pos},       {"tokens", l_tokens},
    {"save", l_save},   {"shift", l_shift}, {"kv", l_kv},         {"n_ctx", l_n_ctx},   {"rewind", l_rewind},
    {"reset", l_reset}, {"close", l_close}, {"model", l_model},   {"copy_prefix", l_copy_prefix}, {NULL, NULL}};

void bn_open_session(lua_State *L) {
    bn_open_class(L, BN_SESSION_MT, "Session", session_methods, l_close, l_tostring);
}
