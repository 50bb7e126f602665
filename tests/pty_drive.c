/* pty_drive: runs a command on a pseudo-terminal and follows a script of
 * keystrokes and expectations against what it prints, for the specs of
 * `bitnet repl` (spec/repl_spec.lua).
 *
 *   pty_drive SCRIPT COMMAND [ARGS...]
 *
 * SCRIPT lines (TEXT with C escapes: \n \r \t \e \\ \xHH):
 *   send TEXT        types TEXT
 *   paste FILE       types FILE's bytes inside bracketed-paste marks, as a
 *                    terminal sends a paste
 *   expect TEXT      waits until TEXT appears in the output after the last
 *                    match (timeout: BITNET_PTY_TIMEOUT seconds, default 20)
 *   sleep MS         reads the output for MS milliseconds
 *   quiet MS         fails when anything but terminal control sequences is
 *                    printed within MS milliseconds
 *   wait             waits for the command to exit
 * The output is matched and copied to stdout with terminal control
 * sequences and carriage returns taken out. The last stdout line is
 * "status=N" (the command's exit status; 128+S for a signal S). Exit
 * status 0 when every step held, 1 otherwise (the failed step on stderr).
 * PTY_DRIVE_DEBUG=1 prints each step's time on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int master = -1;
static pid_t child;
static int exited, exit_status = -1;
static int drained; /* the terminal has no writer left and nothing unread */

/* the output, without control sequences */
static char *out;
static size_t out_len, out_cap, matched;
static int esc_state; /* 0 text, 1 after ESC, 2 in CSI, 3 in OSC */

static void die(const char *what) {
    perror(what);
    exit(2);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void keep(char c) {
    if (out_len + 1 >= out_cap) {
        out_cap = out_cap ? out_cap * 2 : 65536;
        out = realloc(out, out_cap);
        if (!out) die("realloc");
    }
    out[out_len++] = c;
    out[out_len] = '\0';
}

/* Takes raw output bytes; returns how many printable ones were kept. */
static size_t take(const char *buf, size_t n) {
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        switch (esc_state) {
        case 0:
            if (c == 0x1b) esc_state = 1;
            else if (c != '\r' && c != '\a' && c != '\b') keep((char)c), kept++;
            break;
        case 1:
            esc_state = c == '[' ? 2 : c == ']' ? 3 : 0;
            break;
        case 2:
            if (c >= 0x40 && c <= 0x7e) esc_state = 0;
            break;
        case 3:
            if (c == '\a') esc_state = 0;
            else if (c == 0x1b) esc_state = 1;
            break;
        }
    }
    return kept;
}

static void reap(int block) {
    if (exited) return;
    int st;
    pid_t r = waitpid(child, &st, block ? 0 : WNOHANG);
    if (r == child) {
        exited = 1;
        exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
}

/* bytes still to type */
static const char *typing;
static size_t typing_left;

/* Reads (and types what is left to type) for up to `seconds`, or until
 * stop() says so. Returns the printable bytes read. */
static size_t pump(double seconds, int (*stop)(void)) {
    double end = now() + seconds;
    size_t kept = 0;
    for (;;) {
        if (stop && stop()) break;
        double left = end - now();
        if (left <= 0 || drained) break;
        struct pollfd p = {master, POLLIN, 0};
        if (typing_left > 0) p.events |= POLLOUT;
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) die("poll");
        if (r <= 0) continue;
        if (p.revents & POLLIN) {
            char buf[65536];
            ssize_t got = read(master, buf, sizeof buf);
            if (got > 0) kept += take(buf, (size_t)got);
            else if (got == 0 || (errno != EAGAIN && errno != EINTR)) { /* EIO: every writer has gone */
                drained = 1;
                reap(1);
            }
        } else if (p.revents & (POLLHUP | POLLERR)) {
            drained = 1;
            reap(1);
        }
        if ((p.revents & POLLOUT) && typing_left > 0) {
            ssize_t w = write(master, typing, typing_left);
            if (w > 0) {
                typing += w;
                typing_left -= (size_t)w;
            }
        }
        reap(0);
    }
    return kept;
}

static int typed(void) { return typing_left == 0; }

static int type_bytes(const char *s, size_t n, double timeout) {
    typing = s;
    typing_left = n;
    pump(timeout, typed);
    int ok = typing_left == 0;
    typing_left = 0;
    return ok;
}

static const char *expect_text;
static size_t expect_len;
static int hit;
static int found(void) {
    char *at = out_len >= matched + expect_len ? memmem(out + matched, out_len - matched, expect_text, expect_len) : NULL;
    if (!at) return 0;
    matched = (size_t)(at - out) + expect_len;
    hit = 1;
    return 1;
}
static int has_exited(void) { return exited && drained; }

static size_t unescape(const char *s, char *dst) {
    size_t n = 0;
    while (*s) {
        if (*s != '\\') { dst[n++] = *s++; continue; }
        s++;
        switch (*s) {
        case 'n': dst[n++] = '\n'; s++; break;
        case 'r': dst[n++] = '\r'; s++; break;
        case 't': dst[n++] = '\t'; s++; break;
        case 'e': dst[n++] = 0x1b; s++; break;
        case 'x': {
            unsigned v = 0;
            s++;
            for (int k = 0; k < 2 && *s; k++, s++) {
                char c = *s;
                v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 32) - 'a' + 10);
            }
            dst[n++] = (char)v;
            break;
        }
        case '\0': break;
        default: dst[n++] = *s++; break;
        }
    }
    return n;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) die(path);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int fail(int line, const char *step) {
    fprintf(stderr, "pty_drive: script line %d failed: %s\n", line, step);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: pty_drive SCRIPT COMMAND [ARGS...]\n");
        return 2;
    }
    size_t script_len;
    char *script = read_file(argv[1], &script_len);
    script[script_len] = '\0';
    const char *t = getenv("BITNET_PTY_TIMEOUT");
    double timeout = t ? atof(t) : 20.0;

    double started = now();
    struct winsize ws = {50, 200, 0, 0};
    child = forkpty(&master, NULL, NULL, &ws);
    if (child < 0) die("forkpty");
    if (child == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);

    int failed = 0, line_no = 0;
    for (char *line = strtok(script, "\n"); line && !failed; line = strtok(NULL, "\n")) {
        line_no++;
        char *arg = strchr(line, ' ');
        arg = arg ? arg + 1 : line + strlen(line);
        char *buf = malloc(strlen(arg) + 1);
        size_t n = unescape(arg, buf);
        if (!strncmp(line, "send ", 5)) {
            if (!type_bytes(buf, n, timeout)) failed = fail(line_no, line);
        } else if (!strncmp(line, "paste ", 6)) {
            size_t len;
            char *data = read_file(arg, &len);
            if (!type_bytes("\x1b[200~", 6, timeout) || !type_bytes(data, len, timeout)
                || !type_bytes("\x1b[201~", 6, timeout))
                failed = fail(line_no, line);
            free(data);
        } else if (!strncmp(line, "expect ", 7)) {
            expect_text = buf;
            expect_len = n;
            hit = 0;
            pump(timeout, found);
            if (!hit && !found()) failed = fail(line_no, line); /* a last look after an exit */
        } else if (!strncmp(line, "sleep ", 6)) {
            pump(atof(arg) / 1000, has_exited);
        } else if (!strncmp(line, "quiet ", 6)) {
            if (pump(atof(arg) / 1000, has_exited) > 0) failed = fail(line_no, line);
        } else if (!strcmp(line, "wait")) {
            pump(timeout, has_exited);
            if (!exited) reap(0);
            if (!exited) failed = fail(line_no, line);
        } else if (line[0] != '#' && line[0] != '\0') {
            failed = fail(line_no, "unknown step");
        }
        free(buf);
        if (getenv("PTY_DRIVE_DEBUG")) fprintf(stderr, "pty_drive: %.3f s line %d: %s\n", now() - started, line_no, line);
    }
    if (!exited) {
        pump(failed ? 0.2 : 0, NULL);
        kill(child, SIGTERM);
        pump(1, has_exited);
        if (!exited) kill(child, SIGKILL);
        reap(1);
    }
    fwrite(out ? out : "", 1, out_len, stdout);
    printf("\nstatus=%d\n", exit_status);
    return failed;
}
