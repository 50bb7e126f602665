/* fuzz_grammar.h: what the grammar fuzz targets share: the vocabulary
 * (the shipped model's, loaded once in LLVMFuzzerInitialize: read-only
 * after that), small budgets so a target cannot spend a second on one
 * input, and the run of a compiled grammar over a text. Header-only. */
#ifndef BN_FUZZ_GRAMMAR_H
#define BN_FUZZ_GRAMMAR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/grammar.h"

static bn_vocab *fuzz_vocab;
static const bn_grammar_limits fuzz_limits = {100000, 100000, 10000, 200000, 2000, 20000, 64, 100000};

static int fuzz_grammar_init(void) {
    const char *path = getenv("BITNET_FUZZ_VOCAB");
    if (!path) path = "models/kjv-bitnet-6m/kjv-bitnet-6m.gguf";
    bn_err err = {0};
    bn_tokenizer *t = bn_tokenizer_load(path, &err);
    if (!t) {
        fprintf(stderr, "fuzz: %s (set BITNET_FUZZ_VOCAB or run from the checkout)\n", err.msg);
        exit(1);
    }
    fuzz_vocab = bn_vocab_new(t, &err);
    bn_tokenizer_free(t);
    if (!fuzz_vocab) exit(1);
    return 0;
}

/* Compiles gb (taken), reads text byte by byte with a mask at each step:
 * every token the mask allows must commit on a copy, a few that it does
 * not must be refused. Aborts on a disagreement. */
static void fuzz_grammar_run(bn_gb *gb, const uint8_t *text, size_t n) {
    bn_err err = {0};
    bn_grammar *g = bn_grammar_compile(gb, fuzz_vocab, &err);
    if (!g) {
        if (!err.msg[0]) abort();
        return;
    }
    int32_t nv = bn_vocab_n_tokens(fuzz_vocab);
    uint32_t *bits = calloc(((size_t)nv + 31) / 32, sizeof *bits);
    bn_matcher *m = bn_matcher_new(g, &err);
    if (m && bits) {
        for (size_t i = 0; i <= n && i < 24; i++) {
            size_t count;
            if (!bn_matcher_mask(m, bits, &count, &err)) break;
            /* check 4 tokens spread over the vocabulary against commit */
            for (int32_t k = 0; k < 4; k++) {
                int32_t id = (int32_t)(((uint32_t)k * 2654435761u + (uint32_t)i * 40503u) % (uint32_t)nv);
                bn_matcher *c = bn_matcher_clone(m, &err);
                if (!c) break;
                int r = bn_matcher_commit(c, id, &err);
                int allowed = (int)(bits[id >> 5] >> (id & 31) & 1);
                if (r != BN_MATCH_ERROR && (r == BN_MATCH_OK) != allowed) abort();
                bn_matcher_free(c);
            }
            if (i == n || bn_matcher_feed(m, text + i, 1, &err) != BN_MATCH_OK) break;
        }
        bn_matcher_is_complete(m);
        uint8_t forced[64];
        bn_matcher_forced_bytes(m, forced, sizeof forced);
    }
    bn_matcher_free(m);
    free(bits);
    bn_grammar_free(g);
}

#endif
