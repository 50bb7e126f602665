/* lua_host.c: a minimal Lua 5.4 interpreter, `lua_host SCRIPT [ARGS...]`,
 * built with -fsanitize=thread by `make tsan` so the engine's specs run
 * under ThreadSanitizer without preloading its runtime into every shell the
 * specs start (a preloaded libtsan crashes /bin/sh). Sets `arg` as lua.c
 * does and exits with the script's os.exit status, or 1 on an error. */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: lua_host SCRIPT [ARGS...]\n");
        return 2;
    }
    lua_State *L = luaL_newstate();
    if (!L) return 1;
    luaL_openlibs(L);
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1); /* arg[0] is the script */
    }
    lua_setglobal(L, "arg");
    int status = luaL_loadfile(L, argv[1]);
    if (status == LUA_OK) {
        for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 0, 0);
    }
    if (status != LUA_OK) fprintf(stderr, "lua_host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
