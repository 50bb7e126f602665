/* lhub.c: the network and cache-directory primitives lua/bitnet/hub.lua
 * builds `bitnet pull` from: bitnet.core.http, .fetch, .lock and the fs_*
 * helpers. Argument checks and conversions only; the Hub's protocol is
 * spoken in Lua. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsops.h"
#include "lua/lbitnet.h"
#include "net/fetch.h"
#include "net/http.h"

#define LOCK_MT "bitnet.Lock"

/* The "Name: value" lines of opts.headers (an array of strings), as a
 * NULL-terminated array in a userdata kept on the stack. */
static const char **header_lines(lua_State *L, int opts, const char *fname) {
    lua_getfield(L, opts, "headers");
    size_t n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
    if (!lua_isnil(L, -1) && !lua_istable(L, -1)) luaL_error(L, "%s: option 'headers' must be a table", fname);
    const char **lines = lua_newuserdata(L, (n + 1) * sizeof *lines);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -2, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: headers[%d] must be a string", fname, (int)i + 1);
        lines[i] = lua_tostring(L, -1); /* kept alive by the headers table */
        lua_pop(L, 1);
    }
    lines[n] = NULL;
    lua_remove(L, -2);
    return lines;
}

/* Pushes a table of the header block's fields, names in lower case (the
 * last of repeated names wins). */
static void push_headers(lua_State *L, const char *block) {
    lua_newtable(L);
    const char *p = strchr(block, '\n'); /* skip the status line */
    while (p && *++p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (colon) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *c = p; c < colon; c++) luaL_addchar(&b, (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c));
            luaL_pushresult(&b);
            const char *v = colon + 1, *ve = p + len;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            lua_pushlstring(L, v, (size_t)(ve - v));
            lua_rawset(L, -3);
        }
        p = end;
    }
}

/* core.http({ url, method, headers, body, follow, connect_timeout,
 * stall_timeout, max_body }) -> { status, headers, body, url } | nil, message */
static int l_http(lua_State *L) {
    static const char *const allowed[] = {"url", "method", "headers", "body", "follow", "connect_timeout",
                                          "stall_timeout", "max_body", NULL};
    const char *fname = "bitnet.core.http";
    luaL_checktype(L, 1, LUA_TTABLE);
    bn_check_options(L, 1, fname, allowed);
    bn_http_req req = {0};
    req.url = bn_opt_string(L, 1, "url", NULL, fname);
    if (!req.url) luaL_error(L, "%s: option 'url' is required", fname);
    req.method = bn_opt_string(L, 1, "method", "GET", fname);
    if (strcmp(req.method, "GET") && strcmp(req.method, "HEAD") && strcmp(req.method, "POST"))
        luaL_error(L, "%s: option 'method' must be GET, HEAD or POST", fname);
    lua_getfield(L, 1, "body");
    req.body = lua_tolstring(L, -1, &req.body_len);
    lua_pop(L, 1); /* the string stays referenced by the table */
    req.follow = bn_opt_boolean(L, 1, "follow", 1, fname);
    req.connect_timeout = (long)bn_opt_integer(L, 1, "connect_timeout", 10, fname);
    req.stall_timeout = (long)bn_opt_integer(L, 1, "stall_timeout", 30, fname);
    req.max_body = (size_t)bn_opt_integer(L, 1, "max_body", 64 << 20, fname);
    req.headers = header_lines(L, 1, fname);
    bn_http_resp resp;
    bn_err err = {0};
    if (!bn_http_request(&req, &resp, &err)) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_newtable(L);
    lua_pushinteger(L, resp.status);
    lua_setfield(L, -2, "status");
    push_headers(L, resp.headers);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, resp.body, resp.body_len);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, resp.url);
    lua_setfield(L, -2, "url");
    bn_http_resp_free(&resp);
    return 1;
}

typedef struct {
    lua_State *L;
    int fn;     /* stack index of the progress function */
    int raised; /* it raised: the error value is on the stack */
} fetch_progress;

static int on_fetch_progress(void *ud, long long done, long long total) {
    fetch_progress *p = ud;
    lua_State *L = p->L;
    lua_pushvalue(L, p->fn);
    lua_pushinteger(L, (lua_Integer)done);
    if (total >= 0) lua_pushinteger(L, (lua_Integer)total);
    else lua_pushnil(L);
    if (lua_pcall(L, 2, 1, 0) != 0) {
        p->raised = 1;
        return 1;
    }
    int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

/* core.fetch({ url, path, headers, size, sha256, retries, backoff,
 * connect_timeout, stall_timeout, progress }) -> result | nil, message, result
 * result: { bytes, sha256, attempts, resumed_from, status, cancelled }. */
static int l_fetch(lua_State *L) {
    static const char *const allowed[] = {"url", "path", "headers", "size", "sha256", "retries", "backoff",
                                          "connect_timeout", "stall_timeout", "progress", NULL};
    const char *fname = "bitnet.core.fetch";
    luaL_checktype(L, 1, LUA_TTABLE);
    bn_check_options(L, 1, fname, allowed);
    bn_fetch_req req = {0};
    req.url = bn_opt_string(L, 1, "url", NULL, fname);
    req.path = bn_opt_string(L, 1, "path", NULL, fname);
    if (!req.url || !req.path) luaL_error(L, "%s: options 'url' and 'path' are required", fname);
    req.size = (long long)bn_opt_integer(L, 1, "size", -1, fname);
    req.sha256 = bn_opt_string(L, 1, "sha256", NULL, fname);
    if (req.sha256 && strlen(req.sha256) != 64) luaL_error(L, "%s: option 'sha256' must be 64 hex digits", fname);
    req.retries = (int)bn_opt_integer(L, 1, "retries", 3, fname);
    if (req.retries < 0 || req.retries > 100) luaL_error(L, "%s: option 'retries' must be within 0..100", fname);
    lua_getfield(L, 1, "backoff");
    req.backoff = lua_isnil(L, -1) ? 1.0 : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    if (!(req.backoff >= 0 && req.backoff <= 600)) luaL_error(L, "%s: option 'backoff' must be within 0..600", fname);
    req.connect_timeout = (long)bn_opt_integer(L, 1, "connect_timeout", 10, fname);
    req.stall_timeout = (long)bn_opt_integer(L, 1, "stall_timeout", 30, fname);
    req.headers = header_lines(L, 1, fname);
    fetch_progress prog = {L, 0, 0};
    lua_getfield(L, 1, "progress");
    if (lua_isfunction(L, -1)) {
        prog.fn = lua_gettop(L);
        req.progress = on_fetch_progress;
        req.ud = &prog;
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "%s: option 'progress' must be a function", fname);
    }
    bn_fetch_result res;
    bn_err err = {0};
    int ok = bn_fetch(&req, &res, &err);
    if (prog.raised) return lua_error(L); /* the callback's error, after the cleanup */
    int top = lua_gettop(L);
    lua_newtable(L);
    lua_pushinteger(L, (lua_Integer)res.bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushstring(L, res.sha256);
    lua_setfield(L, -2, "sha256");
    lua_pushinteger(L, res.attempts);
    lua_setfield(L, -2, "attempts");
    lua_pushinteger(L, (lua_Integer)res.resumed_from);
    lua_setfield(L, -2, "resumed_from");
    lua_pushinteger(L, res.status);
    lua_setfield(L, -2, "status");
    lua_pushboolean(L, res.cancelled);
    lua_setfield(L, -2, "cancelled");
    if (ok) return 1;
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    lua_pushvalue(L, top + 1);
    return 3;
}

/* ---- locks ---- */

typedef struct { int fd; } lock_ud;

/* core.lock(path) -> Lock | nil, message: an exclusive flock, waited for;
 * lock:release() (or __gc / __close) gives it up. */
static int l_lock(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lock_ud *u = lua_newuserdata(L, sizeof *u);
    u->fd = -1;
    luaL_getmetatable(L, LOCK_MT);
    lua_setmetatable(L, -2);
    bn_err err = {0};
    u->fd = bn_lock(path, &err);
    if (u->fd < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    return 1;
}

static int l_lock_release(lua_State *L) {
    lock_ud *u = luaL_checkudata(L, 1, LOCK_MT);
    bn_unlock(u->fd);
    u->fd = -1;
    return 0;
}

static int l_lock_tostring(lua_State *L) {
    lock_ud *u = luaL_checkudata(L, 1, LOCK_MT);
    lua_pushstring(L, u->fd >= 0 ? "bitnet.Lock<held>" : "bitnet.Lock<released>");
    return 1;
}

/* ---- file system ---- */

static int push_result(lua_State *L, int ok, const bn_err *err) {
    if (ok) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, err->msg);
    return 2;
}

/* core.fs_mkdirs(path) -> true | nil, message */
static int l_mkdirs(lua_State *L) {
    bn_err err = {0};
    return push_result(L, bn_mkdirs(luaL_checkstring(L, 1), &err), &err);
}

/* core.fs_symlink(target, link) -> true | nil, message (replaces link) */
static int l_symlink(lua_State *L) {
    bn_err err = {0};
    return push_result(L, bn_symlink(luaL_checkstring(L, 1), luaL_checkstring(L, 2), &err), &err);
}

/* core.fs_remove(path) -> true | nil, message (directories whole) */
static int l_remove(lua_State *L) {
    bn_err err = {0};
    return push_result(L, bn_remove_tree(luaL_checkstring(L, 1), &err), &err);
}

static int add_name(void *ud, const char *name) {
    lua_State *L = ud;
    lua_pushstring(L, name);
    lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
    return 1;
}

/* core.fs_list(dir) -> array of names (sorted by the caller) | nil, message */
static int l_list(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_newtable(L);
    bn_err err = {0};
    if (!bn_list_dir(path, add_name, L, &err)) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    return 1;
}

/* core.fs_stat(path [, follow]) -> { type = "file" | "dir" | "link" | "other",
 * size } | nil (missing). Links are not followed unless follow is true. */
static int l_stat(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if ((lua_toboolean(L, 2) ? stat(path, &st) : lstat(path, &st)) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_newtable(L);
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "link" : "other");
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    return 1;
}

/* core.fs_readlink(path) -> target | nil */
static int l_readlink(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    char buf[4096];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

void bn_open_hub(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"http", l_http},         {"fetch", l_fetch},         {"lock", l_lock},       {"fs_mkdirs", l_mkdirs},
        {"fs_symlink", l_symlink}, {"fs_remove", l_remove},    {"fs_list", l_list},    {"fs_stat", l_stat},
        {"fs_readlink", l_readlink}, {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
    static const luaL_Reg lock_methods[] = {{"release", l_lock_release}, {NULL, NULL}};
    bn_open_class(L, LOCK_MT, NULL, lock_methods, l_lock_release, l_lock_tostring);
}
