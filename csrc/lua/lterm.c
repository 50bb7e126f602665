/* lterm.c: core.term, what `bitnet repl` (lua/bitnet/repl.lua) needs from
 * the terminal that neither Lua 5.4 nor LuaJIT offers to Lua code:
 *
 *  - line editing and history through GNU readline or libedit, loaded with
 *    dlopen when the REPL asks (term.editor): no build or link dependency,
 *    so bitnet.core builds and loads where neither is installed, under any
 *    interpreter (Debian's lua5.4 links readline, LuaJIT does not), and
 *    readline's licence does not reach the module. Lines are read through
 *    readline's callback interface in a select loop, as Python's readline
 *    module does, so that Ctrl-C at the prompt clears the line instead of
 *    killing the process. Without a library, a line is read from the
 *    terminal as the kernel edits it (erase, kill-line).
 *  - Ctrl-C (term.catch, term.run, term.soft, term.interrupted): a SIGINT
 *    handler that counts presses, and, while term.run runs a chunk, sets a
 *    Lua hook raising "interrupted!" at the next instruction, as lua.c and
 *    luajit.c do. Under term.soft (a helper streaming a generation) the
 *    first press only counts, and the helper, checking between steps,
 *    cancels cleanly; the second sets the hook. One more press before the
 *    hook ran ends the process (see on_sigint).
 *
 * The state is process-wide (static), against the rule of the rest of the
 * binding: a signal handler can reach nothing else, and a process has one
 * terminal. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lua/lbitnet.h"

/* ---- Ctrl-C ---- */

enum { AT_PROMPT, RUNNING, SOFT };

static volatile sig_atomic_t presses; /* Ctrl-C presses not yet taken */
static volatile sig_atomic_t mode = AT_PROMPT;
static lua_State *volatile hooked_L; /* the state term.run runs a chunk in */
static int catching;
static struct sigaction previous;
static pthread_t main_thread; /* the one reading lines and running chunks */

static void stop_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    presses = 0;
    luaL_error(L, "interrupted!");
}

/* At the prompt a press only counts. Running a chunk, it sets the hook
 * (under term.soft, from the second press on); one more press before the
 * hook ran (code that never reaches it: a C call that does not return, a
 * loop LuaJIT compiled) ends the process as Ctrl-C does by default, as in
 * lua.c and luajit.c. */
static void on_sigint(int sig) {
    if (!pthread_equal(pthread_self(), main_thread)) {
        /* the kernel may pick any thread (the model's workers): the main
         * one must see it, for its wait at the prompt to end */
        pthread_kill(main_thread, sig);
        return;
    }
    lua_State *L = hooked_L;
    int n = presses + 1;
    presses = n;
    if (mode == AT_PROMPT || !L) return;
    if (n >= (mode == SOFT ? 3 : 2)) {
        signal(sig, SIG_DFL);
        raise(sig); /* delivered when this handler returns */
        return;
    }
    /* lua_sethook is the one Lua call meant to be safe in a signal handler */
    if (mode == RUNNING || n >= 2) lua_sethook(L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* term.catch(on): on = true installs the SIGINT handler (an interactive
 * session); false puts back what was there. Without it Ctrl-C does what it
 * did (kills a piped run). No SA_RESTART: a read or select waiting at the
 * prompt returns with EINTR. */
static int l_catch(lua_State *L) {
    int on = lua_toboolean(L, 1);
    if (on && !catching) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        main_thread = pthread_self();
        if (sigaction(SIGINT, &sa, &previous) != 0) luaL_error(L, "term.catch: %s", strerror(errno));
        catching = 1;
    } else if (!on && catching) {
        sigaction(SIGINT, &previous, NULL);
        catching = 0;
    }
    presses = 0;
    return 0;
}

/* term.interrupted() -> boolean: whether Ctrl-C was pressed since the last
 * call (the flag is cleared). */
static int l_interrupted(lua_State *L) {
    lua_pushboolean(L, presses != 0);
    presses = 0;
    return 1;
}

/* term.soft(on) -> was: inside term.run, whether the first Ctrl-C only sets
 * the flag (true) or raises "interrupted!" (false, the default). */
static int l_soft(lua_State *L) {
    int was = mode == SOFT;
    if (mode != AT_PROMPT) mode = lua_toboolean(L, 1) ? SOFT : RUNNING;
    lua_pushboolean(L, was);
    return 1;
}

/* term.run(msgh, f, ...) -> true, results... | false, msgh's value: xpcall
 * with Ctrl-C raising "interrupted!" inside f (once term.catch is on).
 * The hook is cleared before returning to the caller's Lua code, so an
 * interrupt arriving as f returns cannot land in the REPL's own code. */
static int l_run(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checkany(L, 2);
    if (mode != AT_PROMPT) luaL_error(L, "term.run: already running a chunk");
    int nargs = lua_gettop(L) - 2;
    hooked_L = L;
    presses = 0;
    mode = RUNNING;
    int status = lua_pcall(L, nargs, LUA_MULTRET, 1);
    mode = AT_PROMPT;
    if (lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
    hooked_L = NULL;
    presses = 0;
    lua_pushboolean(L, status == 0);
    lua_replace(L, 1);
    return lua_gettop(L);
}

/* ---- the line editor ---- */

typedef void line_fn(char *);
static struct {
    const char *name;
    void (*install)(const char *, line_fn *);
    void (*read_char)(void);
    void (*remove)(void);
    void (*add_history)(const char *);
    int (*read_history)(const char *);
    int (*write_history)(const char *);
    void (*stifle_history)(int);
    void (*free_line_state)(void);     /* the three a Ctrl-C calls: */
    void (*callback_sigcleanup)(void); /* optional (readline 7+) */
    void (*cleanup_after_signal)(void);
    int *catch_signals;
    const char **readline_name;
    int (**getc_function)(FILE *);  /* optional: reading in blocks (below) */
    int (**input_available_hook)(void);
    int (*set_keyboard_input_timeout)(int);
} ed;
static char history_path[4096];

/* Readline reads a key at a time, a read and a select for each byte: a
 * paste of 1 MB took 8 s of system time. It reads through these instead:
 * the terminal read in blocks, the bytes handed out one at a time. */
static unsigned char in_buf[65536];
static size_t in_pos, in_len;

static int block_getc(FILE *f) {
    (void)f;
    while (in_pos == in_len) {
        ssize_t n = read(STDIN_FILENO, in_buf, sizeof in_buf);
        if (n > 0) {
            in_pos = 0;
            in_len = (size_t)n;
        } else if (n == 0 || errno != EINTR) {
            return EOF;
        }
    }
    return in_buf[in_pos++];
}

/* Whether a key is waiting, within readline's keyboard timeout (how it
 * tells a lone ESC from the start of a key's escape sequence). */
static int block_available(void) {
    if (in_pos < in_len) return 1;
    int usec = ed.set_keyboard_input_timeout ? ed.set_keyboard_input_timeout(-1) : 100000;
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(STDIN_FILENO, &fds);
    struct timeval tv = {usec / 1000000, usec % 1000000};
    return select(STDIN_FILENO + 1, &fds, NULL, NULL, &tv) > 0;
}

#define SYM(lib, field, symbol) (*(void **)&ed.field = dlsym(lib, symbol))

/* term.editor(names) -> name | nil, message: loads the first library of
 * the list (file names for dlopen) that has readline's callback interface;
 * later calls return the one loaded. */
static int l_editor(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (ed.name) {
        lua_pushstring(L, ed.name);
        return 1;
    }
    /* an interpreter linked with one (Debian's lua5.4) has it already: a
     * second one in the process would see the first's symbols */
    Dl_info own;
    void *linked = dlsym(RTLD_DEFAULT, "rl_callback_handler_install");
    if (linked && dladdr(linked, &own) && own.dli_fname) {
        lua_newtable(L);
        lua_pushstring(L, own.dli_fname);
        lua_rawseti(L, -2, 1);
        lua_replace(L, 1);
    }
    size_t n = lua_rawlen(L, 1);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, (int)i);
        const char *name = lua_tostring(L, -1);
        void *lib = name ? dlopen(name, RTLD_NOW | RTLD_LOCAL) : NULL;
        if (lib && SYM(lib, install, "rl_callback_handler_install") && SYM(lib, read_char, "rl_callback_read_char")
            && SYM(lib, remove, "rl_callback_handler_remove") && SYM(lib, add_history, "add_history")) {
            SYM(lib, read_history, "read_history");
            SYM(lib, write_history, "write_history");
            SYM(lib, stifle_history, "stifle_history");
            SYM(lib, free_line_state, "rl_free_line_state");
            SYM(lib, callback_sigcleanup, "rl_callback_sigcleanup");
            SYM(lib, cleanup_after_signal, "rl_cleanup_after_signal");
            SYM(lib, catch_signals, "rl_catch_signals");
            SYM(lib, readline_name, "rl_readline_name");
            if (ed.catch_signals) *ed.catch_signals = 0; /* SIGINT is ours */
            if (ed.readline_name) *ed.readline_name = "bitnet"; /* for $if in ~/.inputrc */
            SYM(lib, getc_function, "rl_getc_function");
            SYM(lib, input_available_hook, "rl_input_available_hook");
            SYM(lib, set_keyboard_input_timeout, "rl_set_keyboard_input_timeout");
            if (ed.getc_function && ed.input_available_hook) {
                *ed.getc_function = block_getc;
                *ed.input_available_hook = block_available;
            }
            static char kept[256]; /* the file's name, which outlives the list */
            const char *slash = strrchr(name, '/');
            snprintf(kept, sizeof kept, "%s", slash ? slash + 1 : name);
            ed.name = kept;
            lua_pushstring(L, kept);
            return 1;
        }
        if (lib) dlclose(lib);
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    lua_pushstring(L, "no line-editing library (readline or libedit) could be loaded");
    return 2;
}

static char *got_line;
static int got;

static void on_line(char *line) {
    got_line = line;
    got = 1;
    ed.remove();
}

/* Waits until stdin can be read: 1, 0 on Ctrl-C (taken), -1 on an error.
 * The caller blocks SIGINT; it is let in only during the wait (pselect),
 * so a press just before the wait is not lost. */
static int wait_input(const sigset_t *open) {
    for (;;) {
        if (presses) {
            presses = 0;
            return 0;
        }
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(STDIN_FILENO, &fds);
        int r = pselect(STDIN_FILENO + 1, &fds, NULL, NULL, NULL, open);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return -1; /* EINTR: Ctrl-C (seen above), SIGWINCH and the like */
    }
}

/* Reads a line with the editor: the line, or NULL with *status 0 at the
 * end of input, 1 on Ctrl-C, -1 on an error (errno). */
static char *read_edited(const char *prompt, int *status, const sigset_t *open) {
    got = 0;
    got_line = NULL;
    ed.install(prompt, on_line);
    while (!got) {
        int w = in_pos < in_len ? (presses ? wait_input(open) : 1) : wait_input(open); /* keys read already */
        if (w > 0) {
            ed.read_char();
            continue;
        }
        int e = errno;
        if (w == 0) {
            in_pos = in_len = 0; /* the rest of what was typed goes with the line */
            if (ed.free_line_state) ed.free_line_state();
            if (ed.callback_sigcleanup) ed.callback_sigcleanup();
            if (ed.cleanup_after_signal) ed.cleanup_after_signal();
        }
        ed.remove();
        errno = e;
        *status = w == 0 ? 1 : -1;
        return NULL;
    }
    *status = 0;
    return got_line;
}

/* Reads a line as the terminal gives it (no library): pushes it, or
 * returns the status as read_edited does. */
static int read_plain(lua_State *L, const char *prompt, int *status, const sigset_t *open) {
    FILE *out = isatty(STDOUT_FILENO) ? stdout : stderr;
    fputs(prompt, out);
    fflush(out);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t n = 0;
    for (;;) {
        int w = wait_input(open);
        if (w <= 0) {
            *status = w == 0 ? 1 : -1;
            return 0;
        }
        char c;
        ssize_t r = read(STDIN_FILENO, &c, 1);
        if (r == 1) {
            if (c == '\n') break;
            luaL_addchar(&b, c);
            n++;
        } else if (r == 0) {
            if (n > 0) break; /* a last line without a newline */
            *status = 0;
            return 0;
        } else if (errno != EINTR) {
            *status = -1;
            return 0;
        }
    }
    luaL_pushresult(&b);
    return 1;
}

/* term.readline(prompt) -> line (without its newline) | nil at the end of
 * input | false on Ctrl-C (the line is dropped and a newline written):
 * with the editor term.editor loaded, else as the terminal gives it. The
 * prompt goes to stdout, or to stderr when stdout is not a terminal. */
static int l_readline(lua_State *L) {
    const char *prompt = luaL_optstring(L, 1, "");
    int status = 0, pushed = 0;
    fflush(stdout);
    sigset_t sigint, open;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigint, &open);
    sigdelset(&open, SIGINT);
    if (ed.name && isatty(STDOUT_FILENO)) {
        char *line = read_edited(prompt, &status, &open);
        if (line) {
            lua_pushstring(L, line); /* (a memory error here leaves SIGINT blocked: the process ends anyway) */
            free(line);
            pushed = 1;
        }
    } else {
        pushed = read_plain(L, prompt, &status, &open);
    }
    pthread_sigmask(SIG_SETMASK, &open, NULL);
    if (pushed) return 1;
    if (status == 1) {
        fputc('\n', isatty(STDOUT_FILENO) ? stdout : stderr);
        lua_pushboolean(L, 0);
        return 1;
    }
    if (status < 0) luaL_error(L, "term.readline: %s", strerror(errno));
    lua_pushnil(L);
    return 1;
}

/* Makes the directories of path (mkdir -p of its dirname), mode 0700. */
static void make_parents(const char *path) {
    char dir[sizeof history_path];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(dir, 0700); /* EEXIST and the like: write_history will say */
        *p = '/';
    }
}

/* term.history(path, max) -> boolean: keeps at most max entries, reads
 * path (if it exists) and writes it after each term.history_add; false
 * when the editor has no history file functions. */
static int l_history(lua_State *L) {
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    lua_Integer max = luaL_checkinteger(L, 2);
    if (len >= sizeof history_path) luaL_argerror(L, 1, "path too long");
    if (!ed.name || !ed.read_history || !ed.write_history) {
        lua_pushboolean(L, 0);
        return 1;
    }
    memcpy(history_path, path, len + 1);
    make_parents(history_path);
    if (ed.stifle_history) ed.stifle_history((int)max);
    ed.read_history(history_path);
    lua_pushboolean(L, 1);
    return 1;
}

/* term.history_add(line) -> true | nil, message: adds an entry (a no-op
 * without the editor) and rewrites the history file, if any. */
static int l_history_add(lua_State *L) {
    const char *line = luaL_checkstring(L, 1);
    if (!ed.name) {
        lua_pushboolean(L, 1);
        return 1;
    }
    ed.add_history(line);
    if (history_path[0] && ed.write_history) {
        int e = ed.write_history(history_path);
        if (e != 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot write %s: %s", history_path, strerror(e > 0 ? e : errno));
            return 2;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* term.isatty(fd) -> boolean */
static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* Sets module.term on the module table at the top of the stack. */
void bn_open_term(lua_State *L) {
    static const luaL_Reg fns[] = {{"catch", l_catch},     {"interrupted", l_interrupted}, {"soft", l_soft},
                                   {"run", l_run},         {"editor", l_editor},           {"readline", l_readline},
                                   {"history", l_history}, {"history_add", l_history_add}, {"isatty", l_isatty},
                                   {NULL, NULL}};
    lua_newtable(L);
    for (const luaL_Reg *r = fns; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -2, r->name);
    }
    lua_setfield(L, -2, "term");
}
