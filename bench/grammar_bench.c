/* grammar_bench.c: the structured-output benchmark behind `make
 * bench-grammar`, on JSONSchemaBench's MaskBench protocol.
 *
 * For each line of a JSONL file ({name, schema, tests: [{valid, text}]}):
 * compile the schema for Llama 3's vocabulary (timed), then for each test
 * instance tokenize text (no BOS) and, token by token, compute the mask
 * and commit the token (timed together, as MaskBench times them). A valid
 * instance must be allowed to its end and then allow end-of-generation; an
 * invalid one must be refused at some token or at the end. A schema passes
 * when it compiles and every instance is judged right.
 *
 * Usage: grammar_bench TOKENIZER_JSON SCHEMAS_JSONL [--failures FILE] [--slow FILE] [--quiet] [--cpu-time]
 * --cpu-time times with the thread's CPU clock instead of the wall clock:
 * for comparing builds on a busy machine (the published figures are wall
 * time on a quiet one).
 * Prints the figures (schemas passing, refused, invalid instances accepted,
 * --slow FILE lists each mask over 400 us: schema, token index, us, token
 * classes built, lexer states made, tokens allowed, the token.
 * mask and compile percentiles, the share of tokens the grammar forced). */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"

static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

typedef struct {
    double *v;
    size_t n, cap;
} samples;

static void add(samples *s, double x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) abort();
    }
    s->v[s->n++] = x;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(samples *s, double p) {
    if (!s->n) return 0;
    qsort(s->v, s->n, sizeof *s->v, cmp_d);
    size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
    return s->v[i];
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON SCHEMAS_JSONL [--failures FILE] [--slow FILE] [--quiet] [--cpu-time]\n", argv[0]);
        return 2;
    }
    FILE *failures = NULL, *slow = NULL;
    int quiet = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--failures") && i + 1 < argc) failures = fopen(argv[++i], "w");
        else if (!strcmp(argv[i], "--slow") && i + 1 < argc) slow = fopen(argv[++i], "w");
        else if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else if (!strcmp(argv[i], "--cpu-time")) bench_clock = CLOCK_THREAD_CPUTIME_ID;
    }
    bn_err err = {0};
    bn_tokenizer *tok = bn_tokenizer_load(argv[1], &err);
    if (!tok) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    bn_vocab *vocab = bn_vocab_new(tok, &err);
    if (!vocab) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    int32_t n_tok = bn_vocab_n_tokens(vocab);
    uint32_t *bits = malloc(((size_t)n_tok + 31) / 32 * sizeof *bits);
    samples mask_us = {0}, compile_us = {0};
    size_t n_schema = 0, n_pass = 0, n_refused = 0, n_valid = 0, n_invalid = 0, valid_rejected = 0,
           invalid_accepted = 0, n_tokens = 0, n_forced = 0, n_errors = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bn_encode_opts eo = {0, 0};
    bn_json_opts jo = {BN_JSON_WS_FLEXIBLE, 0, 0};
    while ((len = getline(&line, &cap, f)) > 0) {
        cJSON *doc = cJSON_ParseWithLength(line, (size_t)len);
        if (!doc) continue;
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(doc, "name"));
        const char *schema_text = cJSON_GetStringValue(cJSON_GetObjectItem(doc, "schema"));
        cJSON *tests = cJSON_GetObjectItem(doc, "tests");
        n_schema++;
        cJSON *schema = schema_text ? cJSON_Parse(schema_text) : NULL;
        double t0 = now_us();
        bn_err cerr = {0};
        bn_grammar *g = NULL;
        if (schema) {
            bn_gb *gb = bn_gb_new(NULL);
            if (bn_json_schema_compile(gb, schema, &jo, &cerr)) g = bn_grammar_compile(gb, vocab, &cerr);
            else bn_gb_free(gb);
        } else
            bn_errf(&cerr, "schema is not JSON");
        double t1 = now_us();
        cJSON_Delete(schema);
        if (!g) {
            n_refused++;
            if (failures) fprintf(failures, "%s\trefused\t%s\n", name, cerr.msg);
            cJSON_Delete(doc);
            continue;
        }
        add(&compile_us, t1 - t0);
        int pass = 1;
        double schema_mask_max = 0, schema_mask_sum = 0;
        size_t schema_tokens = 0;
        cJSON *test;
        cJSON_ArrayForEach(test, tests) {
            int valid = cJSON_IsTrue(cJSON_GetObjectItem(test, "valid"));
            const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(test, "text"));
            if (!text) continue;
            valid ? n_valid++ : n_invalid++;
            bn_ids ids = {0};
            bn_tokenizer_encode(tok, text, strlen(text), &eo, &ids, &err);
            bn_matcher *m = bn_matcher_new(g, &err);
            int accepted = 1, error = 0;
            size_t at = 0;
            for (size_t i = 0; i < ids.n && accepted; i++) {
                size_t count;
                bn_grammar_stats st0, st1;
                if (slow) bn_grammar_stats_get(g, &st0);
                double a = now_us();
                int ok = bn_matcher_mask(m, bits, &count, &err);
                int32_t t = ids.v[i];
                int allowed = ok && (bits[t >> 5] >> (t & 31) & 1);
                int r = allowed ? bn_matcher_commit(m, t, &err) : BN_MATCH_REJECT;
                double b = now_us();
                add(&mask_us, b - a);
                if (slow && b - a > 400) {
                    bn_grammar_stats_get(g, &st1);
                    size_t tl;
                    const uint8_t *tb = bn_vocab_bytes(vocab, t, &tl);
                    fprintf(slow, "%s\t%zu\t%.0f\t%zu\t%zu\t%zu\t%.*s\n", name, i, b - a,
                            st1.n_cached_states - st0.n_cached_states, st1.n_dfa_states - st0.n_dfa_states, count,
                            tb ? (int)tl : 0, tb ? (const char *)tb : "");
                }
                if (b - a > schema_mask_max) schema_mask_max = b - a;
                schema_mask_sum += b - a;
                schema_tokens++;
                n_tokens++;
                if (count == 1) n_forced++;
                if (!ok || r == BN_MATCH_ERROR) error = 1;
                if (allowed && r != BN_MATCH_OK && r != BN_MATCH_ERROR) {
                    /* the mask allowed what commit refused: a bug */
                    if (failures) fprintf(failures, "%s\tMASK/COMMIT DISAGREE at token %zu\n", name, i);
                }
                if (!allowed || r != BN_MATCH_OK) accepted = 0, at = i;
            }
            if (accepted) accepted = bn_matcher_is_complete(m), at = ids.n;
            if (error) n_errors++;
            bn_matcher_free(m);
            bn_ids_free(&ids);
            if (valid && !accepted) {
                valid_rejected++;
                pass = 0;
                if (failures)
                    fprintf(failures, "%s\tvalid rejected at token %zu%s%s\t%.300s\n", name, at, error ? ": " : "",
                            error ? err.msg : "", text);
            } else if (!valid && accepted) {
                invalid_accepted++;
                pass = 0;
                if (failures) fprintf(failures, "%s\tINVALID ACCEPTED\t%.300s\n", name, text);
            }
            err.msg[0] = 0;
        }
        if (pass) n_pass++;
        if (failures) {
            bn_grammar_stats st;
            bn_grammar_stats_get(g, &st);
            fprintf(failures, "%s\tstats\tcompile %.2f ms, %zu tokens, mask max %.0f us, sum %.0f us, lexemes %zu, nfa %zu, dfa %zu, cached %zu, %zu KB\n",
                    name, (t1 - t0) / 1e3, schema_tokens, schema_mask_max, schema_mask_sum, st.n_lexemes, st.n_nfa_states,
                    st.n_dfa_states, st.n_cached_states, st.cache_bytes / 1024);
        }
        bn_grammar_free(g);
        cJSON_Delete(doc);
        if (!quiet && n_schema % 50 == 0) fprintf(stderr, "%zu schemas...\n", n_schema);
    }
    free(line);
    fclose(f);
    if (failures) fclose(failures);
    if (slow) fclose(slow);
    printf("schemas: %zu, passing: %zu (%.1f%%), refused at compile: %zu (%.1f%%)\n", n_schema, n_pass,
           100.0 * (double)n_pass / (double)n_schema, n_refused, 100.0 * (double)n_refused / (double)n_schema);
    printf("instances: %zu valid (%zu rejected), %zu invalid (%zu ACCEPTED), %zu with budget errors\n", n_valid,
           valid_rejected, n_invalid, invalid_accepted, n_errors);
    printf("mask+commit per token (%zu tokens): p50 %.1f us, p99 %.1f us, max %.1f us\n", n_tokens,
           pct(&mask_us, 50), pct(&mask_us, 99), pct(&mask_us, 100));
    printf("compile (%zu schemas): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", compile_us.n, pct(&compile_us, 50) / 1e3,
           pct(&compile_us, 99) / 1e3, pct(&compile_us, 100) / 1e3);
    printf("forced tokens (one allowed): %.1f%%\n", n_tokens ? 100.0 * (double)n_forced / (double)n_tokens : 0.0);
    free(bits);
    free(mask_us.v);
    free(compile_us.v);
    bn_vocab_free(vocab);
    bn_tokenizer_free(tok);
    return 0;
}
