/* lbitnet.c: luaopen_bitnet_core, the module table of the C core. */
#include <time.h>

#include "lua/lbitnet.h"

#define BN_VERSION "0.1.0"

int luaopen_bitnet_core(lua_State *L);

void bn_open_class(lua_State *L, const char *name, const char *field, const luaL_Reg *methods, lua_CFunction close,
                   lua_CFunction tostring) {
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    if (field) lua_setfield(L, -3, field);
    else lua_pop(L, 1);
    lua_pop(L, 1);
}

/* core.clock() -> seconds on a monotonic wall clock (for timings; os.clock
 * counts CPU time of every thread, os.time whole seconds). */
static int l_clock(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

int luaopen_bitnet_core(lua_State *L) {
    lua_newtable(L);
    lua_pushstring(L, BN_VERSION);
    lua_setfield(L, -2, "version");
    bn_open_model(L);
    bn_open_session(L);
    bn_open_sampler(L);
    bn_open_tokenizer(L); /* after bn_open_model: adds methods to module.Model */
    bn_open_convert(L);
    bn_open_job(L);
    lua_pushcfunction(L, l_clock);
    lua_setfield(L, -2, "clock");
    return 1;
}
