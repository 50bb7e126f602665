/* tok_gguf.c: a tokenizer from GGUF metadata (tokenizer.ggml.*), as
 * llama.cpp's converters write it: model "llama" (SentencePiece) or "gpt2"
 * (byte-level BPE, with `pre` naming the pre-tokenizer). */
#include <stdlib.h>
#include <string.h>

#include "formats/mapfile.h"
#include "tokenizer/tokenizer_internal.h"

/* Pre-tokenizer names (tokenizer.ggml.pre) as llama.cpp's converters write
 * them, each for the pre-tokenizer of the models' tokenizer.json (see
 * tok_pretok.c). "default" (also what a file without the key means) is
 * taken as GPT-2's regex, which is what our converter means by it;
 * llama.cpp's own "default" is a legacy chain of regexes we do not
 * reproduce. */
static const struct {
    const char *name;
    bn_pretok pre;
} pretok_names[] = {
    {"llama3", BN_PRE_LLAMA3}, {"llama-v3", BN_PRE_LLAMA3}, {"llama-bpe", BN_PRE_LLAMA3},
    {"falcon3", BN_PRE_LLAMA3}, {"falcon_e", BN_PRE_LLAMA3}, {"falcon-h1", BN_PRE_LLAMA3},
    {"gpt2", BN_PRE_GPT2}, {"gpt-2", BN_PRE_GPT2}, {"default", BN_PRE_GPT2}, {"mpt", BN_PRE_GPT2},
    {"qwen2", BN_PRE_QWEN2}, {"gpt-4o", BN_PRE_GPT4O}, {"tekken", BN_PRE_TEKKEN},
    {"starcoder", BN_PRE_STARCODER}, {"refact", BN_PRE_STARCODER}, {"smollm", BN_PRE_STARCODER},
    {"command-r", BN_PRE_STARCODER}, {"falcon", BN_PRE_FALCON}, {"deepseek-coder", BN_PRE_DEEPSEEK_CODER},
    {"deepseek-llm", BN_PRE_DEEPSEEK_LLM},
};

static int pretok_from_name(bn_str name, bn_pretok *pre) {
    for (size_t i = 0; i < sizeof pretok_names / sizeof pretok_names[0]; i++)
        if (bn_str_eq(name, pretok_names[i].name)) return *pre = pretok_names[i].pre, 1;
    return 0;
}

/* An optional token id key; -1 when absent. */
static int get_id(const bn_gguf *g, bn_tokenizer *t, const char *key, int32_t *out, bn_err *err) {
    int64_t v;
    int r = bn_gguf_get_int(g, key, &v);
    if (r < 0) return bn_errf(err, "metadata '%s' is not an integer", key);
    if (r == 0) return 1;
    /* some converters write ids past the vocabulary for absent tokens */
    *out = (v >= 0 && v < t->n_vocab) ? (int32_t)v : -1;
    return 1;
}

static int get_flag(const bn_gguf *g, const char *key, int *out, bn_err *err) {
    int r = bn_gguf_get_bool(g, key, out);
    if (r < 0) return bn_errf(err, "metadata '%s' is not a boolean", key);
    return 1;
}

static int read_merges(const bn_gguf *g, bn_tokenizer *t, bn_err *err) {
    const bn_gguf_kv *kv = bn_gguf_find(g, "tokenizer.ggml.merges");
    if (!kv) return bn_errf(err, "byte-level BPE metadata has no 'tokenizer.ggml.merges'");
    if (kv->type != GGUF_T_ARRAY || kv->arr_type != GGUF_T_STRING)
        return bn_errf(err, "metadata 'tokenizer.ggml.merges' is not an array of strings");
    if (kv->count > BN_MAX_MERGES)
        return bn_errf(err, "'tokenizer.ggml.merges' has %llu merges: over the bound of %d (BN_MAX_MERGES in csrc/tokenizer/tokenizer.h; raise it and rebuild)",
                       (unsigned long long)kv->count, BN_MAX_MERGES);
    bn_str *m = malloc((size_t)(kv->count ? kv->count : 1) * sizeof *m);
    if (!m) return bn_errf(err, "out of memory");
    int ok = bn_gguf_arr_str(g, kv, m) && bn_tok_reserve_merges(t, (size_t)kv->count, err);
    if (!ok && !err->msg[0]) bn_errf(err, "metadata 'tokenizer.ggml.merges' is malformed");
    for (uint64_t i = 0; ok && i < kv->count; i++) {
        /* "left right": tokens never hold a plain space, but a merge may
         * start with one in exotic vocabularies, hence the search from 1 */
        const char *sp = m[i].len > 1 ? memchr(m[i].ptr + 1, ' ', (size_t)m[i].len - 1) : NULL;
        if (!sp) {
            ok = bn_errf(err, "merge %llu in 'tokenizer.ggml.merges' is not 'left right'", (unsigned long long)i);
            break;
        }
        size_t ll = (size_t)(sp - m[i].ptr);
        ok = bn_tok_add_merge(t, m[i].ptr, ll, sp + 1, (size_t)m[i].len - ll - 1, "tokenizer.ggml.merges", err);
    }
    free(m);
    return ok;
}

static bn_tokenizer *build(const bn_gguf *g, bn_err *err) {
    bn_str model;
    int r = bn_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (r == 0) return bn_errf(err, "the file has no tokenizer (no 'tokenizer.ggml.model')"), NULL;
    if (r < 0) return bn_errf(err, "metadata 'tokenizer.ggml.model' is not a string"), NULL;
    bn_tokenizer_kind kind;
    if (bn_str_eq(model, "llama")) kind = BN_TOKENIZER_SPM;
    else if (bn_str_eq(model, "gpt2")) kind = BN_TOKENIZER_BPE;
    else
        return bn_errf(err, "tokenizer model '%.*s' is not supported (only 'llama' and 'gpt2')",
                       (int)(model.len > 40 ? 40 : model.len), model.ptr),
               NULL;
    bn_pretok pre = BN_PRE_NONE;
    if (kind == BN_TOKENIZER_BPE) {
        bn_str name = {"default", 7};
        if (bn_gguf_get_str(g, "tokenizer.ggml.pre", &name) < 0)
            return bn_errf(err, "metadata 'tokenizer.ggml.pre' is not a string"), NULL;
        if (!pretok_from_name(name, &pre))
            return bn_errf(err,
                           "pre-tokenizer '%.*s' is not supported (llama-bpe, llama3, falcon3, qwen2, gpt-4o, tekken, "
                           "gpt-2, mpt, starcoder, refact, smollm, command-r, falcon, deepseek-coder, deepseek-llm)",
                           (int)(name.len > 40 ? 40 : name.len), name.ptr),
                   NULL;
    }
    const bn_gguf_kv *tokens = bn_gguf_find(g, "tokenizer.ggml.tokens");
    if (!tokens || tokens->type != GGUF_T_ARRAY || tokens->arr_type != GGUF_T_STRING)
        return bn_errf(err, "metadata 'tokenizer.ggml.tokens' is missing or not an array of strings"), NULL;
    if (tokens->count == 0) return bn_errf(err, "metadata 'tokenizer.ggml.tokens' is empty"), NULL;
    if (tokens->count > BN_MAX_VOCAB)
        return bn_errf(err, "'tokenizer.ggml.tokens' has %llu tokens: over the bound of %d (BN_MAX_VOCAB in csrc/tokenizer/tokenizer.h; raise it and rebuild)",
                       (unsigned long long)tokens->count, BN_MAX_VOCAB),
               NULL;
    int32_t n = (int32_t)tokens->count;
    bn_str *text = malloc((size_t)n * sizeof *text);
    if (!text) return bn_errf(err, "out of memory"), NULL;
    bn_tokenizer *t = NULL;
    if (!bn_gguf_arr_str(g, tokens, text)) {
        bn_errf(err, "metadata 'tokenizer.ggml.tokens' is malformed");
        goto fail;
    }
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (text[i].len > 65536) {
            bn_errf(err, "token %ld is %llu bytes long", (long)i, (unsigned long long)text[i].len);
            goto fail;
        }
        total += (size_t)text[i].len;
    }
    t = bn_tok_new(kind, n, total, err);
    if (!t) goto fail;
    t->pre = pre;
    for (int32_t i = 0; i < n; i++)
        if (!bn_tok_set_text(t, i, text[i].ptr, (size_t)text[i].len, err)) goto fail;
    free(text);
    text = NULL;
    const bn_gguf_kv *kv = bn_gguf_find(g, "tokenizer.ggml.token_type");
    if (kv) {
        int64_t *types = kv->count == (uint64_t)n ? malloc((size_t)n * sizeof *types) : NULL;
        int ok = types && bn_gguf_arr_i64(g, kv, types);
        for (int32_t i = 0; ok && i < n; i++) {
            ok = types[i] >= BN_TT_NORMAL && types[i] <= BN_TT_BYTE;
            t->type[i] = (uint8_t)types[i];
        }
        free(types);
        if (!ok) {
            bn_errf(err, "metadata 'tokenizer.ggml.token_type' is malformed (%llu entries for %ld tokens, values 1..6)",
                    (unsigned long long)kv->count, (long)n);
            goto fail;
        }
    }
    kv = bn_gguf_find(g, "tokenizer.ggml.scores");
    if (kind == BN_TOKENIZER_SPM) {
        if (!kv || kv->count != (uint64_t)n || !bn_gguf_arr_f32(g, kv, t->score)) {
            bn_errf(err, "metadata 'tokenizer.ggml.scores' is missing or malformed (one number per token)");
            goto fail;
        }
    }
    if (!bn_tok_index_texts(t, err)) goto fail;
    if (kind == BN_TOKENIZER_BPE && !read_merges(g, t, err)) goto fail;
    /* llama.cpp's defaults: BOS for SentencePiece and for LLaMA-3's and Tekken's BPE */
    t->add_bos = kind == BN_TOKENIZER_SPM || pre == BN_PRE_LLAMA3 || pre == BN_PRE_TEKKEN;
    t->add_space_prefix = kind == BN_TOKENIZER_SPM;
    /* as llama.cpp: a word that is a token is taken whole (tiktoken's rule) */
    t->ignore_merges = pre == BN_PRE_LLAMA3 || pre == BN_PRE_TEKKEN;
    if (!get_id(g, t, "tokenizer.ggml.bos_token_id", &t->bos, err) ||
        !get_id(g, t, "tokenizer.ggml.eos_token_id", &t->eos, err) ||
        !get_id(g, t, "tokenizer.ggml.eot_token_id", &t->eot, err) ||
        !get_id(g, t, "tokenizer.ggml.eom_token_id", &t->eom, err) ||
        !get_id(g, t, "tokenizer.ggml.unknown_token_id", &t->unk, err) ||
        !get_id(g, t, "tokenizer.ggml.padding_token_id", &t->pad, err) ||
        /* llama.cpp's older names first, the current ones override */
        !get_id(g, t, "tokenizer.ggml.prefix_token_id", &t->fim_pre, err) ||
        !get_id(g, t, "tokenizer.ggml.suffix_token_id", &t->fim_suf, err) ||
        !get_id(g, t, "tokenizer.ggml.middle_token_id", &t->fim_mid, err) ||
        !get_id(g, t, "tokenizer.ggml.fim_pre_token_id", &t->fim_pre, err) ||
        !get_id(g, t, "tokenizer.ggml.fim_suf_token_id", &t->fim_suf, err) ||
        !get_id(g, t, "tokenizer.ggml.fim_mid_token_id", &t->fim_mid, err) ||
        !get_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err) ||
        !get_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err) ||
        !get_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err))
        goto fail;
    if (!bn_tok_finish(t, "tokenizer.ggml.tokens", err)) goto fail;
    return t;
fail:
    free(text);
    bn_tokenizer_free(t);
    return NULL;
}

bn_tokenizer *bn_tokenizer_from_gguf(const bn_gguf *g, bn_err *err) { return build(g, err); }

bn_tokenizer *bn_tokenizer_from_gguf_file(const char *path, bn_err *err) {
    bn_mapfile mf;
    if (!bn_mapfile_open(&mf, path, err)) return NULL;
    bn_gguf g;
    bn_tokenizer *t = NULL;
    if (bn_gguf_parse(&g, mf.data, mf.size, path, err)) {
        bn_err inner = {0};
        t = build(&g, &inner);
        if (!t) bn_errf(err, "%s: %s", path, inner.msg);
        bn_gguf_free(&g);
    }
    bn_mapfile_close(&mf);
    return t;
}
