/* states_test.c: one model shared by Lua states on several OS threads.
 * Each thread opens its own Lua 5.4 state, loads the shipped model (the
 * process-wide cache gives every state the same weights: the same id),
 * generates synchronously and asynchronously (the engines' jobs of all
 * states batched on one engine thread), uses a session while the engine
 * holds it ("session in use", never a race), attaches to the model by id, and
 * closes everything; the main thread checks that every state saw the same
 * id and the same text. Run under ThreadSanitizer by `make tsan`. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define THREADS 4

static const char *const script =
    "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n"
    "package.cpath = BUILD .. '/?.so;' .. package.cpath\n"
    "local bitnet = require 'bitnet'\n"
    "local m = assert(bitnet.load())\n"
    "local again = assert(bitnet.attach(m:id()))\n"
    "assert(again:id() == m:id())\n"
    "local sync = m:generate('In the beginning', { max_tokens = 24, temperature = 0.7, seed = 3 })\n"
    "local gens = {}\n"
    "for i = 1, 3 do gens[i] = m:generate('In the beginning', { max_tokens = 24, temperature = 0.7, seed = 3, async = true }) end\n"
    "local cancelled = m:generate('And God said', { max_tokens = 200, async = true })\n"
    "cancelled:cancel()\n"
    "for i = 1, 3 do assert(gens[i]:wait(60)); local t = {}\n"
    "  while true do local p = gens[i]:poll(); if not p then break end; t[#t + 1] = p end\n"
    "  assert(table.concat(t) == sync, 'async text differs in a state') end\n"
    "local s = m:session({ n_ctx = 256 }) -- the engine's thread and this one on one session\n"
    "local held = m:generate('In the beginning', { max_tokens = 100, session = s, async = true })\n"
    "for _ = 1, 50 do local ok, err = pcall(s.pos, s)\n"
    "  assert(ok or tostring(err):find('session in use', 1, true), err) end\n"
    "held:close(); assert(s:pos() >= 0) -- free again once closed\n"
    "s:close()\n"
    "cancelled:close(); again:close()\n"
    "BARRIER() -- every state holds the model here: one id for all\n"
    "return m:id(), sync\n";

static int l_barrier(lua_State *L) {
    pthread_barrier_wait(lua_touserdata(L, lua_upvalueindex(1)));
    return 0;
}

typedef struct {
    pthread_barrier_t *all_loaded;
    const char *build;
    long long id;
    char text[4096];
    char error[1024];
} job;

static void *run(void *arg) {
    job *j = arg;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushstring(L, j->build);
    lua_setglobal(L, "BUILD");
    lua_pushlightuserdata(L, j->all_loaded);
    lua_pushcclosure(L, l_barrier, 1);
    lua_setglobal(L, "BARRIER");
    if (luaL_dostring(L, script) != LUA_OK) {
        snprintf(j->error, sizeof j->error, "%s", lua_tostring(L, -1));
        pthread_barrier_wait(j->all_loaded); /* let the others go on */
    } else {
        j->id = (long long)lua_tointeger(L, -2);
        snprintf(j->text, sizeof j->text, "%s", lua_tostring(L, -1));
    }
    lua_close(L);
    return NULL;
}

int main(int argc, char **argv) {
    const char *build = argc > 1 ? argv[1] : "build/lua5.4";
    job jobs[THREADS] = {{0}};
    pthread_t t[THREADS];
    pthread_barrier_t all_loaded;
    pthread_barrier_init(&all_loaded, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        jobs[i].build = build;
        jobs[i].all_loaded = &all_loaded;
        pthread_create(&t[i], NULL, run, &jobs[i]);
    }
    int failed = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        if (jobs[i].error[0]) {
            fprintf(stderr, "state %d: %s\n", i, jobs[i].error);
            failed = 1;
        }
    }
    for (int i = 1; i < THREADS && !failed; i++)
        if (strcmp(jobs[i].text, jobs[0].text) != 0) {
            fprintf(stderr, "state %d generated other text\n", i);
            failed = 1;
        }
    for (int i = 1; i < THREADS && !failed; i++)
        if (jobs[i].id != jobs[0].id || jobs[0].id <= 0) {
            fprintf(stderr, "state %d has model id %lld, state 0 has %lld: weights not shared\n", i, jobs[i].id,
                    jobs[0].id);
            failed = 1;
        }
    pthread_barrier_destroy(&all_loaded);
    /* in busted's summary form, which .ci/run adds up */
    printf("%d success / %d failures / 0 errors / 0 pending : states_test (%d Lua states on %d threads, model id %lld)\n",
           !failed, failed, THREADS, THREADS, jobs[0].id);
    return failed;
}
