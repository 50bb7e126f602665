/* fuzz_template.c: the Jinja template engine (lua/bitnet/template) on fuzzed
 * template source, rendered with a fixed chat context and small budgets.
 * Findings: a crash of the interpreter, an error that is not the engine's
 * own "bitnet.template: ..." message or that names an internal Lua file
 * (a bug in the engine, not in the template), and a render the budgets do
 * not stop: a count hook aborts after HARD_STOP Lua instructions.
 *
 * Coverage: the Lua interpreter is not instrumented, so a line hook counts
 * the (source, line) pairs each render runs into libFuzzer's extra
 * counters: new lines of the engine reached are new coverage.
 *
 * State: one Lua state per process, made in LLVMFuzzerInitialize (loading
 * the engine per input would dominate the time), and the extra-counter
 * array, which libFuzzer's API requires to be a global in that section.
 * Each render gets fresh tables; the engine keeps nothing between
 * compile/render calls. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HARD_STOP 100000000 /* Lua instructions: seconds of work, far past any budget */

static lua_State *L; /* set once in LLVMFuzzerInitialize */
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t lines_run[1 << 16];

static const char SETUP[] =
    "package.path = (os.getenv('BITNET_LUA') or 'lua') .. '/?.lua;' .. (os.getenv('BITNET_LUA') or 'lua') ..\n"
    "  '/?/init.lua;' .. package.path\n"
    "local T = require('bitnet.template')\n"
    "local LIMITS = { max_output = 65536, max_string = 65536, max_iterations = 2000, max_items = 1000,\n"
    "  max_depth = 40 }\n"
    "return function(src)\n"
    "  local ctx = { messages = T.array({ { role = 'system', content = 'Be brief.' },\n"
    "      { role = 'user', content = 'Hi <b>&' }, { role = 'assistant', content = 'Hello.' },\n"
    "      { role = 'user', content = 'Again' } }),\n"
    "    bos_token = '<s>', eos_token = '</s>', add_generation_prompt = true,\n"
    "    tools = T.array({ { name = 'f', parameters = { x = 1 } } }), n = 3, f = 1.5, s = 'abc' }\n"
    "  local ok, err = pcall(function() return T.compile(src, LIMITS):render(ctx) end)\n"
    "  if ok then return nil end\n"
    "  if type(err) ~= 'string' then return 'error of type ' .. type(err) end\n"
    "  if err:sub(1, 17) ~= 'bitnet.template: ' then return err end\n"
    "  if err:find('%.lua:%d+:') then return err end\n"
    "  return nil\n"
    "end\n";

static void hook(lua_State *l, lua_Debug *ar) {
    if (ar->event == LUA_HOOKLINE) {
        lua_getinfo(l, "S", ar);
        uintptr_t h = ((uintptr_t)ar->source * 2654435761u) ^ ((uintptr_t)ar->currentline * 40503u);
        uint8_t *c = &lines_run[(h ^ (h >> 16)) & (sizeof lines_run - 1)];
        if (*c < 255) (*c)++;
        return;
    }
    fprintf(stderr, "fuzz_template: a render ran %d Lua instructions: the budgets did not stop it\n", HARD_STOP);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L, SETUP) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_template: %s (run from the checkout or set BITNET_LUA)\n", lua_tostring(L, -1));
        exit(1);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "bitnet.fuzz.render");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_getfield(L, LUA_REGISTRYINDEX, "bitnet.fuzz.render");
    lua_pushlstring(L, (const char *)data, size);
    lua_sethook(L, hook, LUA_MASKCOUNT | LUA_MASKLINE, HARD_STOP);
    int st = lua_pcall(L, 1, 1, 0);
    lua_sethook(L, NULL, 0, 0);
    if (st != LUA_OK || !lua_isnil(L, -1)) {
        fprintf(stderr, "fuzz_template: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_pop(L, 1);
    return 0;
}
