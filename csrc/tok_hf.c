/* tok_hf.c: a tokenizer from a Hugging Face tokenizer.json (model "BPE"),
 * with tokenizer_config.json for BOS/EOS settings.
 *
 * Supported shapes, which cover the BitNet families:
 *  - byte-level BPE: pre_tokenizer ByteLevel (GPT-2 regex), or a Sequence of
 *    Split(LLaMA-3 or GPT-2 regex) and ByteLevel(use_regex = false);
 *  - SentencePiece-converted BPE (LLaMA-2 style): `▁` for spaces through a
 *    Metaspace pre-tokenizer or Prepend/Replace normalizers, byte_fallback.
 *    Merges are applied by the score of the token they make (the score is
 *    minus the rank of the first merge making it), which is sentencepiece's
 *    own order. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define LLAMA3_REGEX                                                                                        \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* The largest tokenizer.json files in use are tens of MB (LLaMA-3's is
 * 9 MB); cJSON needs several times the file in memory. */
#define MAX_JSON_BYTES ((size_t)256 << 20)

/* The whole file, NUL-terminated; NULL with a message. */
static char *read_file(const char *path, size_t *size, bn_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return bn_errf(err, "%s: cannot open", path), NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) != 0) goto bad;
    long n = ftell(f);
    if (n < 0 || (size_t)n > MAX_JSON_BYTES || fseek(f, 0, SEEK_SET) != 0) goto bad;
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) goto bad;
    buf[n] = 0;
    *size = (size_t)n;
    fclose(f);
    return buf;
bad:
    free(buf);
    fclose(f);
    bn_errf(err, "%s: cannot read (or larger than 256 MiB)", path);
    return NULL;
}

static cJSON *parse_json(const char *path, bn_err *err) {
    size_t size;
    char *text = read_file(path, &size, err);
    if (!text) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, size);
    free(text);
    if (!j) bn_errf(err, "%s: not valid JSON", path);
    return j;
}

static const char *str_field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int is_type(const cJSON *o, const char *type) {
    const char *t = str_field(o, "type");
    return t && strcmp(t, type) == 0;
}

static int bool_field(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* A token id from JSON: an integral number in [0, 2^24). */
static int json_id(const cJSON *v, int32_t *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= (double)(1 << 24) ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return 0;
    *out = (int32_t)v->valuedouble;
    return 1;
}

/* What the pre_tokenizer / normalizer say about splitting. */
typedef struct {
    bn_pretok pre;
    int byte_level;       /* a ByteLevel step is present */
    int add_prefix_space; /* ByteLevel's option */
    int metaspace;        /* SentencePiece-style `▁` spaces */
    int prepend_space;    /* `▁` before the text */
    int prepend_first;    /* ... only before the first section (Metaspace "first") */
    int split_words;      /* Metaspace split = true: merges stay inside words */
    const char *unsupported;
} split_rules;

static void read_pretok(const cJSON *p, split_rules *r) {
    if (!p || cJSON_IsNull(p)) return;
    if (is_type(p, "Sequence")) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) read_pretok(item, r);
    } else if (is_type(p, "ByteLevel")) {
        r->byte_level = 1;
        r->add_prefix_space = bool_field(p, "add_prefix_space", 0);
        if (bool_field(p, "use_regex", 1)) {
            if (r->pre != BN_PRE_NONE) r->unsupported = "two splitting regexes";
            r->pre = BN_PRE_GPT2;
        }
    } else if (is_type(p, "Split")) {
        const char *re = str_field(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "Regex");
        const char *behavior = str_field(p, "behavior");
        if (!re || (behavior && strcmp(behavior, "Isolated") != 0) || bool_field(p, "invert", 0))
            r->unsupported = "a Split other than an isolating regex";
        else if (strcmp(re, LLAMA3_REGEX) == 0) r->pre = BN_PRE_LLAMA3;
        else if (strcmp(re, GPT2_REGEX) == 0) r->pre = BN_PRE_GPT2;
        else r->unsupported = "a Split regex other than LLaMA-3's or GPT-2's";
    } else if (is_type(p, "Metaspace")) {
        r->metaspace = 1;
        const char *scheme = str_field(p, "prepend_scheme");
        r->prepend_space = scheme ? strcmp(scheme, "never") != 0 : bool_field(p, "add_prefix_space", 1);
        r->prepend_first = scheme && strcmp(scheme, "first") == 0;
        r->split_words = bool_field(p, "split", 1);
        const char *rep = str_field(p, "replacement");
        if (rep && strcmp(rep, BN_SPM_SPACE) != 0) r->unsupported = "a Metaspace replacement other than '\xE2\x96\x81'";
    } else r->unsupported = str_field(p, "type") ? str_field(p, "type") : "an untyped pre-tokenizer";
}

static void read_normalizer(const cJSON *n, split_rules *r) {
    if (!n || cJSON_IsNull(n)) return;
    if (is_type(n, "Sequence")) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) read_normalizer(item, r);
    } else if (is_type(n, "Prepend")) {
        const char *s = str_field(n, "prepend");
        if (s && strcmp(s, BN_SPM_SPACE) == 0) r->prepend_space = 1;
        else r->unsupported = "a Prepend normalizer other than '\xE2\x96\x81'";
    } else if (is_type(n, "Replace")) {
        const char *from = str_field(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String");
        const char *to = str_field(n, "content");
        if (from && to && strcmp(from, " ") == 0 && strcmp(to, BN_SPM_SPACE) == 0) r->metaspace = 1;
        else r->unsupported = "a Replace normalizer other than ' ' -> '\xE2\x96\x81'";
    } else r->unsupported = "a normalizer (only SentencePiece's Prepend/Replace are supported)";
}

/* TemplateProcessing in the post_processor: a special token before (BOS)
 * or after (EOS) the single sequence. */
static void read_template(const cJSON *p, bn_tokenizer *t) {
    if (!p || cJSON_IsNull(p)) return;
    if (is_type(p, "Sequence")) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(p, "processors")) read_template(item, t);
        return;
    }
    if (!is_type(p, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    int n = cJSON_GetArraySize(single);
    for (int i = 0; i < n; i += n - 1 > 0 ? n - 1 : 1) {
        const char *name = str_field(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, i), "SpecialToken"), "id");
        if (!name) continue;
        int32_t id = bn_tok_find(t, name, strlen(name));
        if (id < 0) continue;
        if (i == 0) {
            t->bos = id;
            t->add_bos = 1;
        } else {
            t->eos = id;
            t->add_eos = 1;
        }
    }
}

/* bos_token / eos_token in tokenizer_config.json: a string or {content}. */
static int32_t config_token(const bn_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : str_field(v, "content");
    return s ? bn_tok_find(t, s, strlen(s)) : -1;
}

static int32_t first_found(const bn_tokenizer *t, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        int32_t id = bn_tok_find(t, names[i], strlen(names[i]));
        if (id >= 0) return id;
    }
    return -1;
}

/* Adds every merge; fills SPM scores from merge ranks. */
static int read_merges(bn_tokenizer *t, const cJSON *merges, bn_err *err) {
    int n = cJSON_GetArraySize(merges);
    if (!bn_tok_reserve_merges(t, (size_t)n, err)) return 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *left, *right;
        size_t ll, rl;
        if (cJSON_IsString(m)) { /* "left right" */
            const char *s = m->valuestring;
            const char *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (!sp) return bn_errf(err, "merge %ld is not 'left right'", (long)t->n_merges);
            left = s, ll = (size_t)(sp - s), right = sp + 1, rl = strlen(sp + 1);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            left = cJSON_GetArrayItem(m, 0)->valuestring, ll = strlen(left);
            right = cJSON_GetArrayItem(m, 1)->valuestring, rl = strlen(right);
        } else return bn_errf(err, "merge %ld is neither a string nor a pair of strings", (long)t->n_merges);
        int32_t rank = t->n_merges;
        if (!bn_tok_add_merge(t, left, ll, right, rl, "model.merges", err)) return 0;
        if (t->score) {
            int32_t r, result;
            int32_t a = bn_tok_find(t, left, ll), b = bn_tok_find(t, right, rl);
            if (bn_tok_merge_lookup(t, a, b, &r, &result) && t->score[result] == 0.0f)
                t->score[result] = -(float)(rank + 1);
        }
    }
    return 1;
}

static bn_tokenizer *build(const cJSON *j, const cJSON *cfg, bn_err *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsObject(model)) return bn_errf(err, "no 'model' object"), NULL;
    const char *mtype = str_field(model, "type");
    if (mtype && strcmp(mtype, "BPE") != 0)
        return bn_errf(err, "tokenizer model '%s' is not supported (only BPE)", mtype), NULL;
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix", NULL};
    for (int i = 0; affixes[i]; i++)
        if (str_field(model, affixes[i]) && str_field(model, affixes[i])[0])
            return bn_errf(err, "unsupported tokenizer.json: BPE with a %s", affixes[i]), NULL;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return bn_errf(err, "'model.vocab' must be an object and 'model.merges' an array"), NULL;
    if (added && !cJSON_IsArray(added)) return bn_errf(err, "'added_tokens' must be an array"), NULL;

    split_rules rules = {0};
    read_pretok(cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"), &rules);
    read_normalizer(cJSON_GetObjectItemCaseSensitive(j, "normalizer"), &rules);
    if (rules.unsupported) return bn_errf(err, "unsupported tokenizer.json: %s", rules.unsupported), NULL;
    bn_tokenizer_kind kind;
    if (rules.byte_level && !rules.metaspace) kind = BN_TOKENIZER_BPE;
    else if (rules.metaspace && !rules.byte_level) kind = BN_TOKENIZER_SPM;
    else return bn_errf(err, "unsupported tokenizer.json: neither byte-level nor SentencePiece-style"), NULL;
    if (kind == BN_TOKENIZER_BPE && rules.pre == BN_PRE_NONE)
        return bn_errf(err, "unsupported tokenizer.json: byte-level BPE without a splitting regex"), NULL;

    /* sizes first: the id space and the bytes of all texts */
    int32_t max_id = -1;
    size_t total = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id;
        if (!json_id(e, &id)) return bn_errf(err, "vocabulary entry '%.60s' has a bad id", e->string), NULL;
        if (id > max_id) max_id = id;
        total += strlen(e->string);
    }
    cJSON_ArrayForEach(e, added) {
        int32_t id;
        const char *content = str_field(e, "content");
        if (!json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) || !content)
            return bn_errf(err, "an added token lacks a valid 'id' or 'content'"), NULL;
        if (id > max_id) max_id = id;
        total += strlen(content);
    }
    /* ids may leave holes, but not so many that a tiny file could make us
     * allocate for millions of tokens */
    int n_entries = cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added);
    if (max_id >= 2 * n_entries + 1024)
        return bn_errf(err, "token id %ld is far beyond the %d tokens defined", (long)max_id, n_entries), NULL;
    bn_tokenizer *t = bn_tok_new(kind, max_id + 1, total, err);
    if (!t) return NULL;
    t->pre = rules.pre;
    t->add_prefix_space = rules.add_prefix_space;
    t->add_space_prefix = rules.prepend_space;
    t->prefix_first_only = rules.prepend_first;
    t->split_words = rules.split_words;
    t->ignore_merges = bool_field(model, "ignore_merges", 0);
    t->byte_fallback = bool_field(model, "byte_fallback", 0);
    memset(t->type, BN_TT_UNUSED, (size_t)t->n_vocab); /* holes in the id space stay unused */
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        if (t->text[id].len) {
            bn_errf(err, "id %ld appears twice in the vocabulary", (long)id);
            goto fail;
        }
        if (!bn_tok_set_text(t, id, e->string, strlen(e->string), err)) goto fail;
        t->type[id] = BN_TT_NORMAL;
    }
    cJSON_ArrayForEach(e, added) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        const char *content = str_field(e, "content");
        size_t len = strlen(content);
        const char *old = t->text_pool + t->text[id].off;
        if (t->type[id] != BN_TT_UNUSED && (t->text[id].len != len || memcmp(old, content, len) != 0)) {
            bn_errf(err, "added token %ld ('%.60s') differs from the vocabulary's", (long)id, content);
            goto fail;
        }
        if (t->type[id] == BN_TT_UNUSED && !bn_tok_set_text(t, id, content, len, err)) goto fail;
        t->type[id] = bool_field(e, "special", 0) ? BN_TT_CONTROL : BN_TT_USER_DEFINED;
    }
    if (!bn_tok_index_texts(t, err)) goto fail;
    if (kind == BN_TOKENIZER_SPM) {
        for (int b = 0; b < 256; b++) { /* byte-fallback pieces */
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            int32_t id = bn_tok_find(t, name, 6);
            if (id >= 0 && t->type[id] == BN_TT_NORMAL) t->type[id] = BN_TT_BYTE;
        }
    }
    const char *unk = str_field(model, "unk_token");
    if (unk && (t->unk = bn_tok_find(t, unk, strlen(unk))) >= 0) t->type[t->unk] = BN_TT_UNKNOWN;
    if (!read_merges(t, merges, err)) goto fail;

    /* BOS/EOS: the post-processor's template, then tokenizer_config.json */
    t->add_bos = kind == BN_TOKENIZER_SPM; /* sentencepiece models add BOS unless told otherwise */
    read_template(cJSON_GetObjectItemCaseSensitive(j, "post_processor"), t);
    if (cfg) {
        int32_t id;
        if ((id = config_token(t, cfg, "bos_token")) >= 0) t->bos = id;
        if ((id = config_token(t, cfg, "eos_token")) >= 0) t->eos = id;
        t->add_bos = bool_field(cfg, "add_bos_token", t->add_bos);
        t->add_eos = bool_field(cfg, "add_eos_token", t->add_eos);
    }
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", NULL};
    if (t->bos < 0) t->bos = first_found(t, bos_names);
    if (t->eos < 0) t->eos = first_found(t, eos_names);
    if (!bn_tok_finish(t, "model.vocab", err)) goto fail;
    return t;
fail:
    bn_tokenizer_free(t);
    return NULL;
}

bn_tokenizer *bn_tokenizer_from_hf(const char *tokenizer_json_path, const char *tokenizer_config_path, bn_err *err) {
    cJSON *j = parse_json(tokenizer_json_path, err);
    if (!j) return NULL;
    cJSON *cfg = NULL;
    if (tokenizer_config_path && !(cfg = parse_json(tokenizer_config_path, err))) {
        cJSON_Delete(j);
        return NULL;
    }
    bn_tokenizer *t = NULL;
    if (!cJSON_IsObject(j) || (cfg && !cJSON_IsObject(cfg)))
        bn_errf(err, "%s: the JSON is not an object", cJSON_IsObject(j) ? tokenizer_config_path : tokenizer_json_path);
    else {
        bn_err inner = {{0}};
        t = build(j, cfg, &inner);
        if (!t) bn_errf(err, "%s: %s", tokenizer_json_path, inner.msg);
    }
    cJSON_Delete(j);
    cJSON_Delete(cfg);
    return t;
}
