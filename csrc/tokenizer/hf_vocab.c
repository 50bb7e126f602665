#include "tokenizer/hf_vocab.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/jsonfile.h"

#define MAX_TOKENIZER_JSON ((long)256 << 20)

/* llama.cpp's token types */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static cJSON *parse_file(const char *path, int *absent, bn_err *err) {
    return bn_json_read_object(path, MAX_TOKENIZER_JSON, absent, err);
}

/* A special token in tokenizer_config.json: "text" or {"content": "text"}. */
static const char *token_text(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

typedef struct {
    char **text;     /* borrowed from the JSON, or owned pads */
    uint8_t *owned;  /* text[i] is ours to free */
    int32_t *type;
    float *score;
    int n;
} vocab;

static int id_of(const vocab *v, const char *s) {
    if (!s) return -1;
    for (int i = 0; i < v->n; i++)
        if (v->text[i] && strcmp(v->text[i], s) == 0) return i;
    return -1;
}

static int is_byte_token(const char *s) {
    return strlen(s) == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>';
}

/* Whether the pre-tokenizer is LLaMA-3's (llama.cpp calls it "llama-bpe"). */
static int is_llama3_pretok(const cJSON *tok) {
    char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tok, "pre_tokenizer"));
    int yes = s && strstr(s, "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}") != NULL;
    free(s);
    return yes;
}

static int write_merges(bn_gguf_writer *w, const cJSON *merges, const char *path, bn_err *err) {
    int n = cJSON_GetArraySize(merges);
    const char **strs = calloc((size_t)n + 1, sizeof *strs);
    char **owned = calloc((size_t)n + 1, sizeof *owned); /* joined pairs */
    int i = 0, ok = strs && owned ? 1 : bn_errf(err, "out of memory");
    for (const cJSON *m = ok ? merges->child : NULL; m && ok; m = m->next, i++) {
        if (cJSON_IsString(m)) { /* "a b" */
            strs[i] = m->valuestring;
        } else if (cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            size_t a = strlen(m->child->valuestring), b = strlen(m->child->next->valuestring);
            char *s = owned[i] = malloc(a + b + 2); /* newer files write ["a", "b"] */
            if (!s) {
                ok = bn_errf(err, "out of memory");
                break;
            }
            memcpy(s, m->child->valuestring, a);
            s[a] = ' ';
            memcpy(s + a + 1, m->child->next->valuestring, b + 1);
            strs[i] = s;
        } else {
            ok = bn_errf(err, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", path, i);
        }
    }
    if (ok) ok = bn_gw_set_str_array(w, "tokenizer.ggml.merges", strs, NULL, (uint64_t)n, err);
    for (int k = 0; owned && k < n; k++) free(owned[k]);
    free(owned);
    free(strs);
    return ok;
}

static int fill_vocab(vocab *v, const cJSON *model, const cJSON *added, int n_vocab, int spm, const char *path,
                      bn_err *err) {
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(map)) return bn_errf(err, "%s: model.vocab is not an object", path);
    v->n = n_vocab;
    v->text = calloc((size_t)n_vocab, sizeof *v->text);
    v->type = calloc((size_t)n_vocab, sizeof *v->type);
    v->score = calloc((size_t)n_vocab, sizeof *v->score);
    v->owned = calloc((size_t)n_vocab, 1);
    if (!v->text || !v->type || !v->score || !v->owned) return bn_errf(err, "out of memory");
    for (const cJSON *e = map->child; e; e = e->next) {
        double id = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(id >= 0 && id < n_vocab) || id != (double)(int)id)
            return bn_errf(err, "%s: token '%.40s' has id %g, outside the model's %d", path, e->string, id, n_vocab);
        v->text[(int)id] = e->string;
        v->type[(int)id] = spm && is_byte_token(e->string) ? TT_BYTE : TT_NORMAL;
        /* SentencePiece BPE merges by score: the vocabulary is in merge order */
        v->score[(int)id] = spm && v->type[(int)id] == TT_NORMAL ? -(float)id : 0.0f;
    }
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id"), *c = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(c)) return bn_errf(err, "%s: an added token lacks id or content", path);
        int i = id->valueint;
        if (i < 0 || i >= n_vocab) return bn_errf(err, "%s: added token '%.40s' has id %d, outside the model's %d", path, c->valuestring, i, n_vocab);
        v->text[i] = c->valuestring;
        v->type[i] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special")) ? TT_CONTROL : TT_USER_DEFINED;
        v->score[i] = 0.0f;
    }
    const char *unk = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(model, "unk_token"))
                          ? cJSON_GetObjectItemCaseSensitive(model, "unk_token")->valuestring : NULL;
    int u = id_of(v, unk);
    if (u >= 0) v->type[u] = TT_UNKNOWN;
    for (int i = 0; i < n_vocab; i++)
        if (!v->text[i]) { /* ids the tokenizer leaves undefined: unused pads */
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            size_t len = strlen(pad) + 1;
            if (!(v->text[i] = malloc(len))) return bn_errf(err, "out of memory");
            memcpy(v->text[i], pad, len);
            v->owned[i] = 1;
            v->type[i] = TT_UNUSED;
        }
    return 1;
}

static void free_vocab(vocab *v) {
    if (v->owned)
        for (int i = 0; i < v->n; i++)
            if (v->owned[i]) free(v->text[i]);
    free(v->owned);
    free(v->text);
    free(v->type);
    free(v->score);
}

/* The post-processor's TemplateProcessing (alone or in a Sequence), or NULL. */
static const cJSON *template_processing(const cJSON *pp) {
    const char *type = cJSON_IsObject(pp) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(pp, "type"))
                           ? cJSON_GetObjectItemCaseSensitive(pp, "type")->valuestring : "";
    if (strcmp(type, "TemplateProcessing") == 0) return pp;
    if (strcmp(type, "Sequence") != 0) return NULL;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors");
    for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next) {
        const cJSON *tp = template_processing(e);
        if (tp) return tp;
    }
    return NULL;
}

/* Whether encoding a single text adds the special token `text` (at the
 * start when at_start, else at the end), as the post-processor says. */
static int template_adds(const cJSON *tp, const char *text, int at_start) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(tp, "single");
    int n = cJSON_GetArraySize(single);
    const cJSON *e = cJSON_GetArrayItem(single, at_start ? 0 : n - 1);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(st, "id");
    return text && cJSON_IsString(id) && strcmp(id->valuestring, text) == 0;
}

static int special_ids(bn_gguf_writer *w, const vocab *v, const cJSON *tok, const cJSON *tcfg, const char *dir,
                       bn_err *err) {
    static const char *const names[][2] = {{"bos_token", "bos"}, {"eos_token", "eos"}, {"unk_token", "unknown"},
                                           {"pad_token", "padding"}};
    char key[64], path[1200];
    int absent;
    bn_err ignored = {0};
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg = parse_file(path, &absent, &ignored);
    int ok = 1;
    for (int k = 0; k < 4 && ok; k++) {
        int id = id_of(v, tcfg ? token_text(tcfg, names[k][0]) : NULL);
        char idkey[32];
        snprintf(idkey, sizeof idkey, "%.3s_token_id", names[k][0]);
        const cJSON *c = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, idkey) : NULL;
        if (id < 0 && cJSON_IsNumber(c) && c->valueint >= 0 && c->valueint < v->n) id = c->valueint;
        snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", names[k][1]);
        if (id >= 0) ok = bn_gw_set_u32(w, key, (uint32_t)id, err);
    }
    /* Whether BOS / EOS are added: tokenizer_config.json's flags, else what
     * tokenizer.json's post-processor does (Hugging Face adds nothing
     * without a template). Written always, so that a GGUF reader's own
     * default (llama.cpp adds BOS for LLaMA-3 vocabularies) cannot differ
     * from the source. */
    const cJSON *ab = tcfg ? cJSON_GetObjectItemCaseSensitive(tcfg, "add_bos_token") : NULL;
    const cJSON *ae = tcfg ? cJSON_GetObjectItemCaseSensitive(tcfg, "add_eos_token") : NULL;
    const cJSON *tp = template_processing(cJSON_GetObjectItemCaseSensitive(tok, "post_processor"));
    const char *bos = tcfg ? token_text(tcfg, "bos_token") : NULL, *eos = tcfg ? token_text(tcfg, "eos_token") : NULL;
    int add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : tp && template_adds(tp, bos, 1);
    int add_eos = cJSON_IsBool(ae) ? cJSON_IsTrue(ae) : tp && template_adds(tp, eos, 0);
    if (ok) ok = bn_gw_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos, err) &&
                 bn_gw_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos, err);
    cJSON_Delete(cfg);
    return ok;
}

int bn_hf_vocab_to_gguf(const char *dir, int n_vocab, bn_gguf_writer *w, bn_err *err) {
    char path[1200], cpath[1200];
    int absent;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *tok = parse_file(path, &absent, err);
    if (!tok) return absent; /* no tokenizer: nothing to write */
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    cJSON *tcfg = parse_file(cpath, &absent, err);
    int ok = tcfg || absent;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const char *type = cJSON_IsObject(model) ? (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(model, "type"))
                                                    ? cJSON_GetObjectItemCaseSensitive(model, "type")->valuestring : "BPE")
                                             : NULL;
    if (ok && (!type || strcmp(type, "BPE") != 0))
        ok = bn_errf(err, "%s: tokenizer model '%s' cannot be written to GGUF (BPE only)", path, type ? type : "none");
    int spm = ok && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    vocab v = {0};
    ok = ok && fill_vocab(&v, model, cJSON_GetObjectItemCaseSensitive(tok, "added_tokens"), n_vocab, spm, path, err);
    if (ok) {
        ok = bn_gw_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2", err) &&
             bn_gw_set_str(w, "tokenizer.ggml.pre", spm ? "default" : is_llama3_pretok(tok) ? "llama-bpe" : "default", err) &&
             bn_gw_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v.text, NULL, (uint64_t)v.n, err) &&
             bn_gw_set_array(w, "tokenizer.ggml.token_type", GGUF_T_I32, v.type, (uint64_t)v.n, err) &&
             (!spm || bn_gw_set_array(w, "tokenizer.ggml.scores", GGUF_T_F32, v.score, (uint64_t)v.n, err));
        const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
        if (ok && !spm && cJSON_IsArray(merges)) ok = write_merges(w, merges, path, err);
        ok = ok && special_ids(w, &v, tok, tcfg, dir, err);
    }
    free_vocab(&v);
    cJSON_Delete(tcfg);
    cJSON_Delete(tok);
    return ok;
}
