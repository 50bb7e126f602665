/* lopts.c: option-table checking shared by every function taking options. */
#include <string.h>

#include "lua/lbitnet.h"

void bn_check_options(lua_State *L, int idx, const char *fname, const char *const *allowed) {
    if (lua_isnoneornil(L, idx)) return;
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx)) luaL_error(L, "%s: options must be a table, got %s", fname, luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: option keys must be strings", fname);
        const char *k = lua_tostring(L, -1);
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0) ok = 1;
        if (!ok) luaL_error(L, "%s: unknown option '%s'", fname, k);
    }
}

static int opt_field(lua_State *L, int idx, const char *key) {
    if (lua_isnoneornil(L, idx)) return 0;
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

lua_Integer bn_opt_integer(lua_State *L, int idx, const char *key, lua_Integer def, const char *fname) {
    if (!opt_field(L, idx, key)) return def;
    lua_Integer v = 0;
    if (!bn_isintegral(L, -1, &v)) luaL_error(L, "%s: option '%s' must be an integer", fname, key);
    lua_pop(L, 1);
    return v;
}

const char *bn_opt_string(lua_State *L, int idx, const char *key, const char *def, const char *fname) {
    if (!opt_field(L, idx, key)) return def;
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: option '%s' must be a string", fname, key);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by the options table */
    return s;
}

int bn_opt_boolean(lua_State *L, int idx, const char *key, int def, const char *fname) {
    if (!opt_field(L, idx, key)) return def;
    if (!lua_isboolean(L, -1)) luaL_error(L, "%s: option '%s' must be a boolean", fname, key);
    int b = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return b;
}
