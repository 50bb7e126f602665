/* lbitnet.c: luaopen_bitnet_core, the module table of the C core. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* core.exec(file, args) -> nil, message: replaces this process with
 * `file` (searched on PATH when it has no slash) run with the argument list
 * args (args[1] is argv[0]); returns only when that fails. `bitnet serve`
 * uses it so that nginx itself receives Ctrl-C and SIGTERM. */
static int l_exec(lua_State *L) {
    const char *file = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_rawlen(L, 2);
    if (n < 1) return luaL_argerror(L, 2, "needs at least argv[0]");
    if (n > 4096) return luaL_argerror(L, 2, "more than 4096 arguments");
    const char **argv = lua_newuserdata(L, (n + 1) * sizeof *argv);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (int)(i + 1));
        if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "exec: argument %d must be a string", (int)(i + 1));
        argv[i] = lua_tostring(L, -1);
        lua_pop(L, 1); /* still referenced by the table */
    }
    argv[n] = NULL;
    fflush(NULL);
    execvp(file, (char *const *)argv);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot run %s: %s", file, strerror(errno));
    return 2;
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
    bn_open_grammar(L);
    bn_open_hub(L);
    bn_open_json(L);
    bn_open_term(L);
    lua_pushcfunction(L, l_clock);
    lua_setfield(L, -2, "clock");
    lua_pushcfunction(L, l_exec);
    lua_setfield(L, -2, "exec");
    return 1;
}
