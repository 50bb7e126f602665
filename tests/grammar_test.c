/* grammar_test.c: the grammar engine's matcher against brute force: for
 * hand-built grammars and texts, every token the mask allows is one that
 * commits, and every token that commits is allowed (Llama 3's vocabulary).
 * Usage: grammar_test TOKENIZER_JSON */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/grammar.h"
#include "grammar/gbnf.h"
#include "grammar/json_schema.h"

#include <cjson/cJSON.h>

static int failures;
#define CHECK(c, ...) do { if (!(c)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static bn_grammar *gbnf(bn_vocab *v, const char *text) {
    bn_err err = {0};
    bn_gb *gb = bn_gb_new(NULL);
    if (!bn_gbnf_parse(gb, text, strlen(text), NULL, &err)) {
        printf("gbnf: %s\n", err.msg);
        bn_gb_free(gb);
        return NULL;
    }
    bn_grammar *g = bn_grammar_compile(gb, v, &err);
    if (!g) printf("compile: %s\n", err.msg);
    return g;
}

static bn_grammar *schema(bn_vocab *v, const char *text) {
    bn_err err = {0};
    cJSON *doc = cJSON_Parse(text);
    bn_gb *gb = bn_gb_new(NULL);
    bn_json_opts jo = {BN_JSON_WS_FLEXIBLE, 0, 0};
    bn_grammar *g = NULL;
    if (doc && bn_json_schema_compile(gb, doc, &jo, &err)) g = bn_grammar_compile(gb, v, &err);
    else bn_gb_free(gb);
    cJSON_Delete(doc);
    if (!g) printf("schema: %s\n", err.msg);
    return g;
}

/* Every token: mask bit == (feed prefix, commit token succeeds). */
static void brute(bn_grammar *g, const char *prefix, int stride) {
    bn_err err = {0};
    bn_vocab *v = bn_grammar_vocab(g);
    int32_t n = bn_vocab_n_tokens(v);
    uint32_t *bits = calloc(((size_t)n + 31) / 32, 4);
    bn_matcher *m = bn_matcher_new(g, &err);
    CHECK(bn_matcher_feed(m, prefix, strlen(prefix), &err) == BN_MATCH_OK, "prefix '%s' rejected", prefix);
    size_t count;
    CHECK(bn_matcher_mask(m, bits, &count, &err), "mask: %s", err.msg);
    int bad = 0;
    for (int32_t t = 0; t < n && bad < 5; t += stride) {
        bn_matcher *x = bn_matcher_new(g, &err);
        bn_matcher_feed(x, prefix, strlen(prefix), &err);
        int ok = bn_matcher_commit(x, t, &err) == BN_MATCH_OK;
        int allowed = (int)(bits[t >> 5] >> (t & 31) & 1);
        if (ok != allowed) {
            size_t len;
            const uint8_t *b = bn_vocab_bytes(v, t, &len);
            CHECK(0, "prefix '%s' token %d '%.*s': mask %d, commit %d", prefix, t, (int)len, b ? (const char *)b : "", allowed, ok);
            bad++;
        }
        bn_matcher_free(x);
    }
    printf("prefix '%s': %zu allowed\n", prefix, count);
    bn_matcher_free(m);
    free(bits);
}

static void accepts(bn_grammar *g, const char *text, int want) {
    bn_err err = {0};
    bn_matcher *m = bn_matcher_new(g, &err);
    int r = bn_matcher_feed(m, text, strlen(text), &err);
    int ok = r == BN_MATCH_OK && bn_matcher_is_complete(m);
    CHECK(ok == want, "'%s': accepted %d, wanted %d (%s)", text, ok, want, err.msg);
    bn_matcher_free(m);
}

static void bn_ids_push_test(bn_ids *v, int32_t id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->v = realloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = id;
}

/* Tokenizes text with the vocabulary's tokenizer and reads it token by
 * token: each token must be in the mask before it is committed, and the
 * end must be complete with end-of-generation allowed. */
static void tokens_accepted(bn_grammar *g, const bn_tokenizer *t, const char *text) {
    bn_err err = {0};
    bn_ids ids = {0};
    bn_encode_opts eo = {0, 0};
    bn_vocab *v = bn_grammar_vocab(g);
    if (bn_tokenizer_get_kind(t) == BN_TOKENIZER_BPE)
        bn_tokenizer_encode(t, text, strlen(text), &eo, &ids, &err);
    else {
        /* SentencePiece puts a space before a text of its own: spell the
         * continuation greedily instead, longest token first (byte tokens
         * cover what no piece does) */
        size_t n_nodes;
        const bn_trie_node *nodes = bn_vocab_trie(v, &n_nodes);
        const int32_t *order = bn_vocab_order(v);
        for (size_t at = 0, len = strlen(text); at < len;) {
            int32_t best = -1;
            size_t best_len = 0, i = 1;
            for (size_t d = 0; at + d < len && i < n_nodes;) {
                /* find the child of the current node with the next byte */
                size_t end = d == 0 ? n_nodes : nodes[i - 1].end, j = i;
                while (j < end && nodes[j].byte != (uint8_t)text[at + d]) j = nodes[j].end;
                if (j >= end) break;
                d++;
                if (nodes[j].tok_n) best = order[nodes[j].tok_first], best_len = d;
                i = j + 1;
            }
            if (best < 0) break;
            bn_ids_push_test(&ids, best);
            at += best_len;
        }
    }
    uint32_t *bits = calloc(((size_t)bn_vocab_n_tokens(v) + 31) / 32, 4);
    bn_matcher *m = bn_matcher_new(g, &err);
    size_t count;
    int ok = 1;
    for (size_t i = 0; i < ids.n && ok; i++) {
        int32_t id = ids.v[i];
        ok = bn_matcher_mask(m, bits, &count, &err) && (bits[id >> 5] >> (id & 31) & 1) &&
             bn_matcher_commit(m, id, &err) == BN_MATCH_OK;
        CHECK(ok, "'%s': token %zu (id %d) refused", text, i, (int)id);
    }
    if (ok) {
        CHECK(bn_matcher_mask(m, bits, &count, &err), "mask: %s", err.msg);
        size_t n_eog;
        const int32_t *eog = bn_vocab_eog(v, &n_eog);
        CHECK(bn_matcher_is_complete(m), "'%s': not complete at the end", text);
        for (size_t i = 0; i < n_eog; i++) CHECK(bits[eog[i] >> 5] >> (eog[i] & 31) & 1, "'%s': end not allowed", text);
        if (n_eog) CHECK(bn_matcher_commit(m, eog[0], &err) == BN_MATCH_OK && bn_matcher_is_ended(m), "eog commit");
    }
    bn_matcher_free(m);
    free(bits);
    bn_ids_free(&ids);
}

static void run_vocab(const char *path) {
    bn_err err = {0};
    bn_tokenizer *t = bn_tokenizer_load(path, &err);
    if (!t) {
        CHECK(0, "%s: %s", path, err.msg);
        return;
    }
    bn_vocab *v = bn_vocab_new(t, &err);
    size_t nn;
    bn_vocab_trie(v, &nn);
    int32_t n = bn_vocab_n_tokens(v);
    int stride = n > 40000 ? 5 : 1; /* about 25,000 brute-force commits per prefix */
    printf("%s: %d tokens, %zu trie nodes, longest %zu bytes\n", path, n, nn, bn_vocab_max_len(v));

    bn_grammar *g = gbnf(v, "root ::= \"{\" ws pair (\",\" ws pair)* ws \"}\"\n"
                            "pair ::= \"\\\"\" [a-z\\u00e9\\u4e2d]+ \"\\\"\" ws \":\" ws num\n"
                            "num ::= \"-\"? [0-9]+\n"
                            "ws ::= [ \\t\\n]*\n");
    if (g) {
        accepts(g, "{\"a\": 1}", 1);
        accepts(g, "{\"ab\":12, \"c\": -3 }", 1);
        accepts(g, "{\"a\": 1", 0);
        accepts(g, "{\"a\": x}", 0);
        brute(g, "", stride);
        brute(g, "{\"a", stride);
        brute(g, "{\"\xc3", stride); /* inside a UTF-8 character */
        brute(g, "{\"a\": 1", stride);
        brute(g, "{\"a\": 1, ", stride);
        tokens_accepted(g, t, "{\"caf\xc3\xa9\": 12, \"\xe4\xb8\xad\": -3,\n  \"zz\":0}");
        tokens_accepted(g, t, "{\"a\":1}");
        bn_grammar_free(g);
    }
    /* ambiguity (where the first word ends) and left recursion */
    g = gbnf(v, "root ::= w w\nw ::= [a-z]+\n");
    if (g) {
        accepts(g, "ab", 1);
        accepts(g, "a", 0);
        accepts(g, "abcdefghijklmnop", 1);
        brute(g, "abc", stride);
        tokens_accepted(g, t, "helloworld");
        bn_grammar_free(g);
    }
    g = gbnf(v, "root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= \"(\" expr \")\" | [0-9]+\n");
    if (g) {
        accepts(g, "1+(2+3)+45", 1);
        accepts(g, "1+(2+3", 0);
        brute(g, "1+(2", stride);
        tokens_accepted(g, t, "12+(345+6)+78");
        bn_grammar_free(g);
    }
    /* counted repetitions: masks are cached per state clamped to the longest
     * token, so 290 characters left and 150 left share one entry */
    g = gbnf(v, "root ::= \"\\\"\" [a-z ]{3,300} \"\\\"\" \",\" [0-9]{1,200}\n");
    if (g) {
        char buf[512];
        for (int k = 0; k <= 300; k += k < 5 ? 1 : k < 290 ? 37 : 1) {
            buf[0] = '"';
            for (int i = 0; i < k; i++) buf[1 + i] = (char)('a' + i % 26);
            buf[1 + k] = 0;
            if (k == 0 || k == 2 || k == 150 || k == 260 || k == 298 || k == 300) brute(g, buf, stride * 3);
            else accepts(g, buf, 0);
        }
        accepts(g, "\"abc\",1", 1);
        accepts(g, "\"ab\",1", 0);
        bn_grammar_free(g);
    }
    /* string interiors, where the class walk takes plain-text tokens in
     * bulk: any plain text, counted (the count's last characters), with
     * excluded characters, and a union of keys with any string */
    g = gbnf(v, "root ::= \"[\" s (\",\" s)* \"]\"\n"
                "s ::= \"\\\"\" ([^\"\\\\\\x00-\\x1f] | \"\\\\\" [\"\\\\nt])* \"\\\"\"\n");
    if (g) {
        accepts(g, "[\"a\\\"b\",\"\"]", 1);
        brute(g, "[\"", stride);
        brute(g, "[\"ab", stride);
        brute(g, "[\"\xe4\xb8", stride);
        brute(g, "[\"a\\", stride);
        bn_grammar_free(g);
    }
    g = gbnf(v, "root ::= \"\\\"\" [^\"\\\\]{0,12} \"\\\"\" [0-9]\n");
    if (g) {
        brute(g, "\"", stride);
        brute(g, "\"abcdefg", stride);
        brute(g, "\"abcdefghijk", stride);
        brute(g, "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", stride);
        bn_grammar_free(g);
    }
    g = gbnf(v, "root ::= (\"\\\"\" [^,\"\\\\]+ \"\\\"\" \",\")+\n");
    if (g) {
        accepts(g, "\"a b\",\"c\",", 1);
        accepts(g, "\"a,b\",", 0);
        brute(g, "\"", stride);
        brute(g, "\"a", stride);
        brute(g, "\"a\",\"\xe4", stride);
        bn_grammar_free(g);
    }
    g = gbnf(v, "root ::= \"{\\\"\" (\"alpha\" | \"alps\" | \"beta\" | [^\"\\\\]+) \"\\\":1}\"\n");
    if (g) {
        brute(g, "{\"", stride);
        brute(g, "{\"al", stride);
        brute(g, "{\"alp", stride);
        tokens_accepted(g, t, "{\"alphabet soup\":1}");
        bn_grammar_free(g);
    }
    /* a pattern or format with lengths: the product kept as an automaton
     * (BN_RX_DFA); its dead states must be gone, so "ab" cannot stop at 2
     * characters or go past 4 */
    g = schema(v, "{\"type\": \"string\", \"pattern\": \"^(ab)+$\", \"minLength\": 3, \"maxLength\": 5}");
    if (g) {
        accepts(g, "\"abab\"", 1);
        accepts(g, "\"ab\"", 0);
        accepts(g, "\"ababab\"", 0);
        brute(g, "\"", stride);
        brute(g, "\"ab", stride);
        brute(g, "\"aba", stride);
        brute(g, "\"abab", stride);
        bn_grammar_free(g);
    }
    g = schema(v, "{\"type\": \"string\", \"format\": \"uri\", \"maxLength\": 14}");
    if (g) {
        accepts(g, "\"http://a.b/cd\"", 1);
        accepts(g, "\"http://a.b/cdef\"", 0);
        brute(g, "\"", stride);
        brute(g, "\"http://a.b", stride);
        brute(g, "\"http://a.b/c", stride);
        bn_grammar_free(g);
    }
    /* listed keys with any other key besides (the complement of the names):
     * key states after different prefixes share classes made from the
     * same walks */
    g = schema(v, "{\"properties\": {\"alpha\": {\"type\": \"integer\"}, \"alps\": {\"type\": \"string\"},"
                  " \"beta\": {\"type\": \"integer\"}}, \"additionalProperties\": {\"type\": \"boolean\"}}");
    if (g) {
        accepts(g, "{\"alpha\": 1, \"alpine\": true}", 1);
        accepts(g, "{\"alpha\": true}", 0);
        brute(g, "{\"", stride);
        brute(g, "{\"al", stride);
        brute(g, "{\"alp", stride);
        brute(g, "{\"alpha", stride);
        brute(g, "{\"b", stride);
        brute(g, "{\"alpha\": 1, \"", stride);
        brute(g, "{\"alpha\": 1, \"z", stride);
        bn_grammar_free(g);
    }
    bn_vocab_free(v);
    bn_tokenizer_free(t);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s TOKENIZER_TESTS_DIR\n", argv[0]);
        return 2;
    }
    /* byte-level BPE (Llama 3, 128k), SentencePiece with byte fallback (LLaMA, Phi-3), other BPE families */
    const char *files[] = {"llama3/tokenizer.json", "ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf",
                           "ggml-vocab-deepseek-coder.gguf", "ggml-vocab-starcoder.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", argv[1], files[i]);
        run_vocab(path);
    }
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures);
    return failures != 0;
}
