/* ljson.c: bitnet.core.json_decode, JSON text to Lua values through cJSON
 * (the Hub's API answers; the Lua side has no JSON reader of its own). */
#include <cjson/cJSON.h>

#include "lua/lbitnet.h"

enum { MAX_DEPTH = 64 };

static int depth_of(const cJSON *v) {
    int d = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        int c = depth_of(e);
        if (c > d) d = c;
        if (d > MAX_DEPTH) break;
    }
    return d + 1;
}

/* (depth checked beforehand: nothing here raises but out-of-memory) */
static void push_value(lua_State *L, const cJSON *v, int depth) {
    if (cJSON_IsString(v)) {
        lua_pushstring(L, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == (double)(long long)d && d > -9007199254740992.0 && d < 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsBool(v)) {
        lua_pushboolean(L, cJSON_IsTrue(v));
    } else if (cJSON_IsArray(v)) {
        lua_newtable(L);
        int i = 0;
        for (const cJSON *e = v->child; e; e = e->next) {
            push_value(L, e, depth + 1);
            lua_rawseti(L, -2, ++i);
        }
    } else if (cJSON_IsObject(v)) {
        lua_newtable(L);
        for (const cJSON *e = v->child; e; e = e->next) {
            if (cJSON_IsNull(e) || !e->string) continue; /* null members are absent */
            push_value(L, e, depth + 1);
            lua_setfield(L, -2, e->string);
        }
    } else {
        lua_pushboolean(L, 0); /* null inside an array keeps its place */
    }
}

/* core.json_decode(text) -> value | nil, message. Objects and arrays become
 * tables; null members of objects are left out, null array items are false. */
static int l_json_decode(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        lua_pushnil(L);
        lua_pushstring(L, "not valid JSON");
        return 2;
    }
    if (depth_of(root) > MAX_DEPTH || !lua_checkstack(L, 2 * MAX_DEPTH + 8)) {
        cJSON_Delete(root);
        lua_pushnil(L);
        lua_pushfstring(L, "JSON nested deeper than %d", MAX_DEPTH);
        return 2;
    }
    push_value(L, root, 0);
    cJSON_Delete(root);
    return 1;
}

void bn_open_json(lua_State *L) {
    lua_pushcfunction(L, l_json_decode);
    lua_setfield(L, -2, "json_decode");
}
