/* bench.c: the speed benchmark behind `make bench` (not part of CI).
 *
 * On the synthetic 2B-4T-shaped models of bench/cache (gen_model.c writes
 * the I2_S + F16 one; the other formats, TQ2_0 and TQ1_0 weights, Q6_K and
 * int8 (Q8_0) embeddings, are converted from it here, once),
 * for 1 and 2 threads: load time, prefill tok/s (128 and 512 tokens),
 * decode tok/s after 64 and after 1024 tokens of context, peak RSS; the
 * machine's read bandwidth (measured before and after each row) and decode as
 * a fraction of the bound it sets for each file; the same greedy decode loop driven from C and from Lua;
 * tokenizer MB/s. Each (file, threads) runs in a child process so that
 * peak RSS is its own. Results go to stdout and bench/RESULTS.md.
 *
 * Environment: BENCH_QUICK=1 (short prompts, fewer files: a smoke run),
 * BENCH_THREADS="1,2", BENCH_FILES=n (only the first n rows of the file
 * list), BENCH_NOTE (a line added to the report), BENCH_APPEND=1 (add
 * to the report instead of replacing it), BENCH_ROWS="5,7" (only these
 * files of the list, 1-based), BENCH_OUT (the report's path,
 * bench/RESULTS.md by default), BENCH_LONG=0 (skip the
 * 512-token prefill and the decode at 1024: a run short enough to make
 * while everything else on the machine is paused). */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/convert.h"
#include "model/load.h"
#include "formats/gguf.h"
#include "lua/lbitnet.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

int luaopen_bitnet_core(lua_State *L);

#define CACHE "bench/cache/"
#define BASE CACHE "synth-2b-i2_s-f16.gguf"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- read bandwidth: threads summing disjoint slices of a buffer ---- */

typedef struct {
    const uint64_t *p;
    size_t n;
    int prefetch; /* software prefetch 4 KB ahead */
    int streams;  /* the slice read as 1 or 2 interleaved sequential streams */
    uint64_t sum;
} bw_slice;

typedef uint64_t bw_vec __attribute__((vector_size(64)));

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static uint64_t bw_sum(const uint64_t *p, size_t n, int prefetch, int streams) {
    bw_vec a = {0}, b = {0};
    size_t per = n / (size_t)streams;
    for (size_t i = 0; i + 16 <= per; i += 16)
        for (int k = 0; k < streams; k++) {
            const uint64_t *q = p + (size_t)k * per + i;
            bw_vec x, y;
            if (prefetch) {
                __builtin_prefetch(q + 512);
                __builtin_prefetch(q + 520);
            }
            memcpy(&x, q, sizeof x);
            memcpy(&y, q + 8, sizeof y);
            a ^= x;
            b += y;
        }
    a ^= b;
    uint64_t s = 0;
    for (int i = 0; i < 8; i++) s += a[i];
    return s;
}

static void *bw_read(void *arg) {
    bw_slice *s = arg;
    s->sum = bw_sum(s->p, s->n, s->prefetch, s->streams);
    return NULL;
}

/* Best of several passes over 1 GB, in GB/s, each thread reading its own
 * slice with the widest vector loads the CPU has, with and without
 * software prefetch, as one or two streams (which wins depends on the
 * machine; the kernels prefetch too, so the bound is a fair one). */
static double bandwidth(int threads) {
    size_t bytes = (size_t)1 << 30, n = bytes / 8;
    uint64_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return 0.0;
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    double best = 0.0;
    for (int pass = 0; pass < 8; pass++) {
        pthread_t th[16];
        bw_slice sl[16];
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            sl[t].p = buf + n / threads * t;
            sl[t].n = n / threads;
            sl[t].prefetch = pass % 2;
            sl[t].streams = 1 + (pass / 2) % 2;
            if (t) pthread_create(&th[t], NULL, bw_read, &sl[t]);
        }
        bw_read(&sl[0]);
        for (int t = 1; t < threads; t++) pthread_join(th[t], NULL);
        double gbs = (double)bytes / (now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    munmap(buf, bytes);
    return best;
}

/* ---- the files ---- */

typedef struct {
    const char *file, *label, *head; /* head: load option output_head */
    int huge;                        /* load option hugepages */
    uint32_t linear, embd;           /* conversion from BASE */
    int quick;                       /* part of a quick run */
} bench_file;

static const bench_file files[] = {
    {CACHE "synth-2b-i2_s-f16.gguf", "I2_S + F16 embeddings", NULL, 0, 0, 0, 1},
    {CACHE "synth-2b-i2_s-f16.gguf", "I2_S + F16, huge pages", NULL, 1, 0, 0, 1},
    {CACHE "synth-2b-i2_s-f16.gguf", "I2_S + F16, int8 output head", "int8", 0, 0, 0, 1},
    {CACHE "synth-2b-i2_s-f16.gguf", "I2_S + F16, int8 head, huge pages", "int8", 1, 0, 0, 1},
    {CACHE "synth-2b-i2_s-q6_k.gguf", "I2_S + Q6_K embeddings", NULL, 0, GGML_I2_S, GGML_Q6_K, 0},
    {CACHE "synth-2b-i2_s-q8_0.gguf", "I2_S + Q8_0 embeddings", NULL, 0, GGML_I2_S, GGML_Q8_0, 0},
    {CACHE "synth-2b-tq2_0-f16.gguf", "TQ2_0 + F16 embeddings", NULL, 0, GGML_TQ2_0, GGML_F16, 0},
    {CACHE "synth-2b-tq2_0-q6_k.gguf", "TQ2_0 + Q6_K embeddings", NULL, 0, GGML_TQ2_0, GGML_Q6_K, 0},
    {CACHE "synth-2b-tq1_0-q6_k.gguf", "TQ1_0 + Q6_K embeddings", NULL, 0, GGML_TQ1_0, GGML_Q6_K, 0},
};
#define N_FILES (int)(sizeof files / sizeof files[0])

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int make_file(const bench_file *f) {
    if (exists(f->file) || !f->linear) return 1;
    fprintf(stderr, "bench: converting %s from %s (once)\n", f->file, BASE);
    bn_err err = {0};
    bn_load_opts lo = {0};
    bn_model *m = bn_model_load(BASE, &lo, &err);
    if (!m) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 0;
    }
    bn_convert_opts o = {f->linear, f->embd, BN_CONVERT_NONE, NULL, NULL};
    int ok = bn_convert_model(m, f->file, &o, &err);
    if (!ok) fprintf(stderr, "bench: %s\n", err.msg);
    bn_model_release(m);
    return ok;
}

/* ---- one (file, threads) run, in a child ---- */

typedef struct {
    int ok;
    double load_s, pp128, pp512, tg64, tg1024, rss_mb, file_mb, bytes_per_token, kv_bytes_per_pos;
    double c_ms, lua_ms; /* per decoded token, same loop from C and from Lua */
} run_result;

static int32_t argmax(const float *v, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static void prompt_ids(int32_t *ids, int n, int seed) {
    uint32_t x = (uint32_t)seed * 2654435761u + 1;
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = (int32_t)(x % 128000u);
    }
}

/* Greedy decode of n tokens from the session's logits; seconds per token. */
static double decode(bn_session *s, int n) {
    int32_t id = argmax(s->logits, s->model->hp.n_vocab);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        bn_session_eval(s, &id, 1, NULL);
        id = argmax(s->logits, s->model->hp.n_vocab);
    }
    return (now() - t0) / n;
}

static int l_now(lua_State *L) {
    lua_pushnumber(L, now());
    return 1;
}

/* The decode loop of `decode` written in Lua against the public API
 * (greedy bitnet.Sampler, sess:feed): ms per token. */
static const char *lua_loop =
    "local bitnet, m, prompt, n, now = ...\n"
    "local s = m:session({ n_ctx = #prompt + n + 8 })\n"
    "s:feed(prompt)\n"
    "local smp = bitnet.sampler({ temperature = 0 })\n"
    "local id = smp:sample(s)\n"
    "local t0 = now()\n"
    "for i = 1, n do s:feed({ id }); id = smp:sample(s) end\n"
    "local dt = now() - t0\n"
    "s:close()\n"
    "return dt / n * 1000\n";

static double lua_decode_ms(bn_model *m, const int32_t *prompt, int np, int n) {
    lua_State *L = luaL_newstate();
    if (!L) return -1.0;
    luaL_openlibs(L);
    if (luaL_dostring(L, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path") != LUA_OK) lua_pop(L, 1);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_bitnet_core); /* the core linked into this program */
    lua_setfield(L, -2, "bitnet.core");
    lua_pop(L, 1);
    double ms = -1.0;
    if (luaL_loadstring(L, lua_loop) == LUA_OK) {
        lua_getglobal(L, "require");
        lua_pushstring(L, "bitnet");
        if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
            bn_model_retain(m);
            bn_push_model(L, m);
            lua_createtable(L, np, 0);
            for (int i = 0; i < np; i++) {
                lua_pushinteger(L, prompt[i]);
                lua_rawseti(L, -2, i + 1);
            }
            lua_pushinteger(L, n);
            lua_pushcfunction(L, l_now);
            if (lua_pcall(L, 5, 1, 0) == LUA_OK) ms = lua_tonumber(L, -1);
        }
    }
    if (ms < 0) fprintf(stderr, "bench: Lua loop: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return ms;
}

/* The Lua layer's own cost per token, measured where the forward pass is
 * tiny (a test fixture: 3 layers of 256) so that it is not lost in noise:
 * microseconds per token, Lua loop minus C loop, best of five each. */
static double lua_overhead_us(void) {
    const char *path = "../shared/fixtures/gguf/b158-relu2-i2_s/model.gguf";
    bn_err err = {0};
    bn_load_opts lo = {0};
    lo.threads = 1;
    bn_model *m = bn_model_load(path, &lo, &err);
    if (!m) return -1.0;
    bn_session *s = bn_session_new(m, 256, &err);
    int32_t ids[16];
    prompt_ids(ids, 16, 3);
    for (int i = 0; i < 16; i++) ids[i] %= m->hp.n_vocab;
    double c = 1e30, l = 1e30;
    for (int rep = 0; rep < 5 && s; rep++) {
        bn_session_rewind(s, 0);
        bn_session_eval(s, ids, 16, NULL);
        double cm = decode(s, 200) * 1000, lm = lua_decode_ms(m, ids, 16, 200);
        if (cm < c) c = cm;
        if (lm >= 0 && lm < l) l = lm;
    }
    bn_session_free(s);
    bn_model_release(m);
    return l < 1e30 ? (l - c) * 1000.0 : -1.0;
}

static void run_child(const bench_file *f, int threads, int quick, int lua_loop_too, run_result *r) {
    memset(r, 0, sizeof *r);
    bn_err err = {0};
    bn_load_opts lo = {0};
    lo.threads = threads;
    lo.output_head = f->head;
    lo.hugepages = f->huge;
    double t0 = now();
    bn_model *m = bn_model_load(f->file, &lo, &err);
    r->load_s = now() - t0;
    if (!m) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return;
    }
    const bn_hparams *hp = &m->hp;
    /* bytes one decoded token reads: every ternary row, the head, the cache */
    double bytes = 0;
    for (int l = 0; l < hp->n_layers; l++) {
        const bn_ternary *t[7] = {&m->layers[l].wq, &m->layers[l].wk, &m->layers[l].wv, &m->layers[l].wo,
                                  &m->layers[l].wgate, &m->layers[l].wup, &m->layers[l].wdown};
        for (int i = 0; i < 7; i++) bytes += (double)t[i]->rows * (double)t[i]->row_bytes;
    }
    bytes += m->head_i8 ? (double)hp->n_vocab * (double)((hp->n_embd + 63) / 64 * 64)
                        : (double)m->output.rows * (double)m->output.row_bytes;
    r->bytes_per_token = bytes;
    r->kv_bytes_per_pos = 2.0 * hp->n_layers * hp->n_kv_heads * hp->head_dim * 4;
    r->file_mb = (double)m->file_size / 1048576.0;
    int n_long = quick ? 128 : 512, ctx_long = quick ? 256 : 1024, nd = quick ? 4 : 16;
    bn_session *s = bn_session_new(m, ctx_long + 64 + nd + 8, &err);
    if (!s) {
        fprintf(stderr, "bench: %s\n", err.msg);
        bn_model_release(m);
        return;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)ctx_long);
    prompt_ids(ids, ctx_long, 1);
    bn_session_eval(s, ids, 8, NULL); /* warm up: page in the weights */
    bn_session_rewind(s, 0);
    /* best of three: other tenants of the machine move single runs by tens
     * of percent */
    for (int rep = 0; rep < 3; rep++) {
        bn_session_rewind(s, 0);
        t0 = now();
        bn_session_eval(s, ids, 128, NULL);
        double pp = 128 / (now() - t0);
        bn_session_rewind(s, 64);
        double tg = 1.0 / decode(s, nd);
        if (pp > r->pp128) r->pp128 = pp;
        if (tg > r->tg64) r->tg64 = tg;
    }
    if (!getenv("BENCH_LONG") || atoi(getenv("BENCH_LONG"))) {
        bn_session_rewind(s, 0);
        t0 = now();
        bn_session_eval(s, ids, n_long, NULL);
        r->pp512 = n_long / (now() - t0);
        bn_session_eval(s, ids + n_long, ctx_long - n_long, NULL);
        for (int rep = 0; rep < 2; rep++) {
            double tg = 1.0 / decode(s, nd);
            if (tg > r->tg1024) r->tg1024 = tg;
            bn_session_rewind(s, ctx_long);
        }
    }
    if (lua_loop_too) { /* alternating, best of three each: the machine's noise is larger than the gap */
        int nl = quick ? 8 : 32;
        r->c_ms = r->lua_ms = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            bn_session_rewind(s, 0);
            bn_session_eval(s, ids, 16, NULL);
            double c = decode(s, nl) * 1000, l = lua_decode_ms(m, ids, 16, nl);
            if (c < r->c_ms) r->c_ms = c;
            if (l >= 0 && l < r->lua_ms) r->lua_ms = l;
        }
    }
    free(ids);
    bn_session_free(s);
    bn_model_release(m);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r->rss_mb = (double)ru.ru_maxrss / 1024.0;
    r->ok = 1;
}

static int run(const bench_file *f, int threads, int quick, int lua_loop_too, run_result *r) {
    int fd[2];
    if (pipe(fd) != 0) return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        run_result res;
        run_child(f, threads, quick, lua_loop_too, &res);
        ssize_t w = write(fd[1], &res, sizeof res);
        _exit(w == (ssize_t)sizeof res ? 0 : 1);
    }
    close(fd[1]);
    memset(r, 0, sizeof *r);
    ssize_t got = pid > 0 ? read(fd[0], r, sizeof *r) : -1;
    close(fd[0]);
    if (pid > 0) waitpid(pid, NULL, 0);
    return got == (ssize_t)sizeof *r && r->ok;
}

/* ---- tokenizer throughput ---- */

static double tokenizer_mbs(void) {
    const char *vocab = "../shared/tokenizer-tests/ggml-vocab-llama3-bpe.gguf";
    const char *text_path = "../shared/corpora/sherlock.txt";
    bn_err err = {0};
    bn_tokenizer *t = bn_tokenizer_load(vocab, &err);
    FILE *fp = fopen(text_path, "rb");
    if (!t || !fp) {
        if (fp) fclose(fp);
        bn_tokenizer_free(t);
        return 0.0;
    }
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = malloc((size_t)len);
    size_t n = text ? fread(text, 1, (size_t)len, fp) : 0;
    fclose(fp);
    bn_encode_opts o = {0, 0};
    double best = 0.0;
    for (int pass = 0; pass < 3; pass++) {
        bn_ids ids = {0};
        double t0 = now();
        int ok = bn_tokenizer_encode(t, text, n, &o, &ids, &err);
        double mbs = (double)n / 1e6 / (now() - t0);
        bn_ids_free(&ids);
        if (ok && mbs > best) best = mbs;
    }
    free(text);
    bn_tokenizer_free(t);
    return best;
}

/* ---- report ---- */

/* Whether the comma-separated list holds the number i. */
static int has_index(const char *list, int i) {
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (atoi(p) == i) return 1;
    return 0;
}

static void shell_line(const char *cmd, char *out, size_t cap) {
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (fgets(out, (int)cap, p)) out[strcspn(out, "\n")] = 0;
    pclose(p);
}

int main(void) {
    int quick = getenv("BENCH_QUICK") && atoi(getenv("BENCH_QUICK"));
    int n_files = getenv("BENCH_FILES") ? atoi(getenv("BENCH_FILES")) : N_FILES;
    if (n_files < 1 || n_files > N_FILES) n_files = N_FILES;
    const char *tspec = getenv("BENCH_THREADS") ? getenv("BENCH_THREADS") : "1,2";
    int thr[8], nthr = 0;
    for (const char *p = tspec; *p && nthr < 8;) {
        int v = atoi(p);
        if (v > 0) thr[nthr++] = v;
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    if (!exists(BASE)) {
        fprintf(stderr, "bench: %s is missing: run `make bench` (it writes it with build/gen_model)\n", BASE);
        return 1;
    }
    for (int i = 0; i < n_files; i++)
        if ((!quick || files[i].quick) && !make_file(&files[i])) return 1;

    char cpu[256], commit[64], dirty[16], date[64], load[64];
    shell_line("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'", cpu, sizeof cpu);
    shell_line("git rev-parse --short HEAD", commit, sizeof commit);
    shell_line("git diff --quiet HEAD -- csrc bench || echo ' (modified)'", dirty, sizeof dirty);
    shell_line("date -u '+%Y-%m-%d %H:%M UTC'", date, sizeof date);
    shell_line("cut -d' ' -f1-3 /proc/loadavg", load, sizeof load);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    double bw[8];
    for (int i = 0; i < nthr; i++) bw[i] = bandwidth(thr[i]);
    double tok = tokenizer_mbs();

    static char md[65536];
    size_t o = 0;
#define OUT(...) (o += (size_t)snprintf(md + o, o < sizeof md ? sizeof md - o : 0, __VA_ARGS__))
    OUT(getenv("BENCH_APPEND") && atoi(getenv("BENCH_APPEND")) ? "\n## Another run\n\n" : "# Benchmark results\n\n");
    OUT("Machine: %s, %ld CPUs; kernel path: %s. Date: %s. Commit: %s%s. Load average at start: %s.\n\n", cpu,
        ncpu, bn_kernels_select(NULL) ? bn_kernels_select(NULL)->name : "?", date, commit, dirty, load);
    if (getenv("BENCH_NOTE")) OUT("%s\n\n", getenv("BENCH_NOTE"));
    OUT("Synthetic models of microsoft/bitnet-b1.58-2B-4T's shape (random ternary weights, `bench/gen_model.c`). "
        "Prefill: a fresh prompt of 128 / %d tokens; decode: greedy, %d tokens after 64 / %d tokens of context "
        "(f32 KV-cache); best of three runs (two at the long context). Decode bound = read bandwidth / bytes read per token (ternary rows + output head + KV at that "
        "context), with the read bandwidth measured just before and just after each row, the higher of the two (the "
        "machine's bandwidth drifts by tens of percent over minutes, so a row can still exceed 100%%).%s\n\n",
        quick ? 128 : 512, quick ? 4 : 16, quick ? 256 : 1024, quick ? " QUICK RUN: short prompts." : "");
    OUT("Read bandwidth at the start (this program, 1 GB buffer; each row has its own measurement):");
    for (int i = 0; i < nthr; i++) OUT(" %d thread%s %.1f GB/s%s", thr[i], thr[i] > 1 ? "s" : "", bw[i], i + 1 < nthr ? ";" : ".");
    OUT(" Tokenizer (LLaMA-3 BPE, sherlock.txt): %.2f MB/s.\n\n", tok);
    OUT("| file | threads | load s | prefill 128 tok/s | prefill %d tok/s | decode @64 tok/s | decode @%d tok/s | "
        "read GB/s | decode / bound @64 | peak RSS MB (file MB) |\n|---|---|---|---|---|---|---|---|---|---|\n",
        quick ? 128 : 512, quick ? 256 : 1024);
    double c_ms = 0, lua_ms = 0;
    int lua_threads = 0;
    const char *only = getenv("BENCH_ROWS"); /* e.g. "5,7": only these files (1-based) */
    for (int i = 0; i < n_files; i++) {
        if (quick && !files[i].quick) continue;
        if (only && !has_index(only, i + 1)) continue;
        for (int k = 0; k < nthr; k++) {
            run_result r;
            int lua_too = i == 0 && k == nthr - 1;
            size_t row = o;
            double gbs = bandwidth(thr[k]);
            int ok = run(&files[i], thr[k], quick, lua_too, &r);
            double after = bandwidth(thr[k]); /* the higher of the two: the stricter bound */
            if (after > gbs) gbs = after;
            if (!ok) {
                OUT("| %s | %d | failed | | | | | | | |\n", files[i].label, thr[k]);
            } else {
                double bound = gbs * 1e9 / (r.bytes_per_token + 64 * r.kv_bytes_per_pos);
                char pp512[32] = "-", tg1024[32] = "-"; /* not measured in a BENCH_LONG=0 run */
                if (r.pp512 > 0) snprintf(pp512, sizeof pp512, "%.1f", r.pp512);
                if (r.tg1024 > 0) snprintf(tg1024, sizeof tg1024, "%.1f", r.tg1024);
                OUT("| %s | %d | %.3f | %.1f | %s | %.1f | %s | %.1f | %.0f%% of %.1f | %.0f (%.0f) |\n",
                    files[i].label, thr[k], r.load_s, r.pp128, pp512, r.tg64, tg1024, gbs, 100.0 * r.tg64 / bound,
                    bound, r.rss_mb, r.file_mb);
                if (lua_too) c_ms = r.c_ms, lua_ms = r.lua_ms, lua_threads = thr[k];
            }
            fputs(md + row, stderr); /* progress */
        }
    }
    double lua_us = lua_overhead_us();
    if (lua_us > -1.0 && c_ms > 0)
        OUT("\nThe Lua layer's own cost, measured on a tiny model (a 3-layer test fixture) where it is not lost in "
            "noise: %.1f microseconds per token (Lua loop minus C loop, best of five): %.3f%% of the %.1f ms the "
            "first file decodes a token in from C.\n",
            lua_us, 100.0 * lua_us / 1000.0 / c_ms, c_ms);
    if (c_ms > 0 && lua_ms > 0)
        OUT("\nDecode loop on the first file, %d thread(s), greedy: from C (bn_session_eval + argmax) %.2f ms/token, "
            "from Lua (sess:feed + bitnet.Sampler) %.2f ms/token (best of three, alternating): the Lua layer costs "
            "%+.1f%%.\n",
            lua_threads, c_ms, lua_ms, 100.0 * (lua_ms - c_ms) / c_ms);
    fputs(md, stdout);
    int append = getenv("BENCH_APPEND") && atoi(getenv("BENCH_APPEND"));
    const char *out_path = getenv("BENCH_OUT") ? getenv("BENCH_OUT") : "bench/RESULTS.md";
    FILE *out = fopen(out_path, append ? "a" : "w");
    if (!out || fputs(md, out) < 0 || fclose(out) != 0) {
        perror(out_path);
        return 1;
    }
    return 0;
}
