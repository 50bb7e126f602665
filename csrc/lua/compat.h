/* compat.h: the few Lua 5.2+ C API calls we use, for LuaJIT / Lua 5.1.
 * One source builds against Lua 5.4 and LuaJIT 2.1 (Neovim, OpenResty). */
#ifndef BN_COMPAT_H
#define BN_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
static inline int bn_lua_absindex(lua_State *L, int i) {
    return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}
#define lua_absindex(L, i) bn_lua_absindex((L), (i))
#endif

/* True when the value at idx is a number holding an exact integer
 * (5.4: an integer or an integral float; 5.1: an integral double). */
static inline int bn_isintegral(lua_State *L, int idx, lua_Integer *out) {
    if (lua_type(L, idx) != LUA_TNUMBER) return 0;
#if LUA_VERSION_NUM >= 503
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (!ok) return 0;
    *out = v;
    return 1;
#else
    lua_Number n = lua_tonumber(L, idx);
    if (n != n || n < -9007199254740992.0 || n > 9007199254740992.0) return 0;
    lua_Integer v = (lua_Integer)n;
    if ((lua_Number)v != n) return 0;
    *out = v;
    return 1;
#endif
}

#endif
