/* lbitnet.c: luaopen_bitnet_core, the module table of the C core. */
#include "lbitnet.h"

#define BN_VERSION "0.1.0"

int luaopen_bitnet_core(lua_State *L);

int luaopen_bitnet_core(lua_State *L) {
    lua_newtable(L);
    lua_pushstring(L, BN_VERSION);
    lua_setfield(L, -2, "version");
    bn_open_model(L);
    bn_open_session(L);
    return 1;
}
