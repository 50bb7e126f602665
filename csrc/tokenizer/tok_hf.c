/* tok_hf.c: a tokenizer from a Hugging Face tokenizer.json (model "BPE"),
 * with tokenizer_config.json for BOS/EOS settings.
 *
 * Supported shapes, which cover the BitNet families and the models whose
 * pre-tokenizers tok_pretok.c implements:
 *  - byte-level BPE: pre_tokenizer ByteLevel (GPT-2 regex), a Split with one
 *    of the known regexes (LLaMA-3, GPT-2, Qwen2, GPT-4o, Tekken) and
 *    ByteLevel(use_regex = false), or one of the known Sequences
 *    (StarCoder's Digits + ByteLevel, Falcon's, DeepSeek's); the steps must
 *    be exactly those of a known pre-tokenizer;
 *  - SentencePiece-converted BPE (LLaMA-2 style): `▁` for spaces through a
 *    Metaspace pre-tokenizer or Prepend/Replace normalizers, byte_fallback.
 *    Merges are applied by the score of the token they make (the score is
 *    minus the rank of the first merge making it), which is sentencepiece's
 *    own order.
 * Added tokens keep their lstrip / rstrip / single_word / normalized flags,
 * which encoding honours as Hugging Face does. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

#define LLAMA3_REGEX                                                                                        \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_REGEX                                                                                     \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define CASED_UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define CASED_LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define CONTRACTION "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
#define NOT_LN "[^\\r\\n\\p{L}\\p{N}]?"
#define CASED_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define GPT4O_REGEX                                                                                       \
    NOT_LN CASED_UPPER "*" CASED_LOWER "+" CONTRACTION "|" NOT_LN CASED_UPPER "+" CASED_LOWER "*" CONTRACTION \
    "|\\p{N}{1,3}" CASED_TAIL
#define TEKKEN_REGEX \
    NOT_LN CASED_UPPER "*" CASED_LOWER "+|" NOT_LN CASED_UPPER "+" CASED_LOWER "*|\\p{N}" CASED_TAIL
#define DEEPSEEK_CJK_REGEX "[\xE4\xB8\x80-\xE9\xBE\xA5\xE0\xA0\x80-\xE4\xB8\x80\xEA\xB0\x80-\xED\x9F\xBF]+"
#define DEEPSEEK_LLM_SYMBOLS_REGEX "\\s?[!-/:-~\xEF\xBC\x81-\xEF\xBC\x8F\xEF\xBC\x9A-\xEF\xBD\x9E\xE2\x80\x98-\xE2\x80\x9F\xE3\x80\x80-\xE3\x80\x82]+"
/* DeepSeek LLM's letters, as its tokenizer.json spells the class */
#define DEEPSEEK_LLM_LETTERS_REGEX \
    "\\s?[A-Za-z\xC2\xB5\xC3\x80-\xC3\x96\xC3\x98-\xC3\xB6\xC3\xB8-\xC6\xBA\xC6\xBC-\xC6\xBF\xC7\x84-\xCA" \
    "\x93\xCA\x95-\xCA\xAF\xCD\xB0-\xCD\xB3\xCD\xB6\xCD\xB7\xCD\xBB-\xCD\xBD\xCD\xBF\xCE\x86\xCE\x88-\xCE" \
    "\x8A\xCE\x8C\xCE\x8E-\xCE\xA1\xCE\xA3-\xCF\xB5\xCF\xB7-\xD2\x81\xD2\x8A-\xD4\xAF\xD4\xB1-\xD5\x96" \
    "\xE1\x82\xA0-\xE1\x83\x85\xE1\x8E\xA0-\xE1\x8F\xB5\xE1\x8F\xB8-\xE1\x8F\xBD\xE1\xB2\x90-\xE1\xB2\xBA" \
    "\xE1\xB2\xBD-\xE1\xB2\xBF\xE1\xB4\x80-\xE1\xB4\xAB\xE1\xB5\xAB-\xE1\xB5\xB7\xE1\xB5\xB9-\xE1\xB6\x9A" \
    "\xE1\xB8\x80-\xE1\xBC\x95\xE1\xBC\x98-\xE1\xBC\x9D\xE1\xBC\xA0-\xE1\xBD\x85\xE1\xBD\x88-\xE1\xBD\x8D" \
    "\xE1\xBD\x90-\xE1\xBD\x97\xE1\xBD\x99\xE1\xBD\x9B\xE1\xBD\x9D\xE1\xBD\x9F-\xE1\xBD\xBD\xE1\xBE\x80" \
    "-\xE1\xBE\xB4\xE1\xBE\xB6-\xE1\xBE\xBC\xE1\xBE\xBE\xE1\xBF\x82-\xE1\xBF\x84\xE1\xBF\x86-\xE1\xBF\x8C" \
    "\xE1\xBF\x90-\xE1\xBF\x93\xE1\xBF\x96-\xE1\xBF\x9B\xE1\xBF\xA0-\xE1\xBF\xAC\xE1\xBF\xB2-\xE1\xBF\xB4" \
    "\xE1\xBF\xB6-\xE1\xBF\xBC\xE2\x84\x82\xE2\x84\x87\xE2\x84\x8A-\xE2\x84\x93\xE2\x84\x95\xE2\x84\x99" \
    "-\xE2\x84\x9D\xE2\x84\xA4\xE2\x84\xA6\xE2\x84\xA8\xE2\x84\xAA-\xE2\x84\xAD\xE2\x84\xAF-\xE2\x84\xB4" \
    "\xE2\x84\xB9\xE2\x84\xBC-\xE2\x84\xBF\xE2\x85\x85-\xE2\x85\x89\xE2\x85\x8E\xE2\x86\x83\xE2\x86\x84" \
    "\xE2\xB0\x80-\xE2\xB1\xBB\xE2\xB1\xBE-\xE2\xB3\xA4\xE2\xB3\xAB-\xE2\xB3\xAE\xE2\xB3\xB2\xE2\xB3\xB3" \
    "\xEA\x99\x80-\xEA\x99\xAD\xEA\x9A\x80-\xEA\x9A\x9B\xEA\x9C\xA2-\xEA\x9D\xAF\xEA\x9D\xB1-\xEA\x9E\x87" \
    "\xEA\x9E\x8B-\xEA\x9E\x8E\xEA\xAD\xB0-\xEA\xAE\xBF\xEF\xAC\x80-\xEF\xAC\x86\xEF\xAC\x93-\xEF\xAC\x97" \
    "\xEF\xBC\xA1-\xEF\xBC\xBA\xEF\xBD\x81-\xEF\xBD\x9A\xF0\x90\x90\x80-\xF0\x90\x91\x8F\xF0\x90\x92\xB0" \
    "-\xF0\x90\x93\x93\xF0\x90\x93\x98-\xF0\x90\x93\xBB\xF0\x90\xB2\x80-\xF0\x90\xB2\xB2\xF0\x90\xB3\x80" \
    "-\xF0\x90\xB3\xB2\xF0\x91\xA2\xA0-\xF0\x91\xA3\x9F\xF0\x9E\xA4\x80-\xF0\x9E\xA5\x83]+"

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

/* The steps of a byte-level pre_tokenizer, in order. */
typedef enum {
    STEP_BYTE_LEVEL,       /* ByteLevel(use_regex = false): maps bytes, splits nothing */
    STEP_BYTE_LEVEL_GPT2,  /* ByteLevel(use_regex = true): GPT-2's regex, then the mapping */
    STEP_LLAMA3, STEP_GPT2, STEP_QWEN2, STEP_GPT4O, STEP_TEKKEN, /* Split(regex), Isolated */
    STEP_DIGITS_EACH,      /* Digits(individual_digits = true) */
    STEP_DIGIT_RUNS,       /* Digits(individual_digits = false) */
    STEP_PUNCT_RUNS,       /* Punctuation(Contiguous) */
    STEP_NEWLINE, STEP_SPACED_LETTERS, STEP_SPACED_PUNCT, STEP_DEEPSEEK_CJK, STEP_DEEPSEEK_LETTERS,
    STEP_DEEPSEEK_SYMBOLS, STEP_TRAILING_SPACE, STEP_THREE_DIGITS
} pretok_step;

#define MAX_STEPS 8

/* Each pre-tokenizer as its tokenizer.json writes it (a final
 * ByteLevel(use_regex = false) aside). */
static const struct {
    bn_pretok pre;
    int n;
    pretok_step steps[MAX_STEPS];
} known_shapes[] = {
    {BN_PRE_GPT2, 1, {STEP_BYTE_LEVEL_GPT2}},
    {BN_PRE_GPT2, 1, {STEP_GPT2}},
    {BN_PRE_LLAMA3, 1, {STEP_LLAMA3}},
    {BN_PRE_QWEN2, 1, {STEP_QWEN2}},
    {BN_PRE_GPT4O, 1, {STEP_GPT4O}},
    {BN_PRE_TEKKEN, 1, {STEP_TEKKEN}},
    {BN_PRE_STARCODER, 2, {STEP_DIGITS_EACH, STEP_BYTE_LEVEL_GPT2}},
    {BN_PRE_FALCON, 4, {STEP_PUNCT_RUNS, STEP_BYTE_LEVEL_GPT2, STEP_DIGIT_RUNS, STEP_THREE_DIGITS}},
    {BN_PRE_DEEPSEEK_CODER, 5,
     {STEP_NEWLINE, STEP_SPACED_LETTERS, STEP_SPACED_PUNCT, STEP_DEEPSEEK_CJK, STEP_DIGITS_EACH}},
    {BN_PRE_DEEPSEEK_LLM, 6,
     {STEP_NEWLINE, STEP_DEEPSEEK_LETTERS, STEP_DEEPSEEK_SYMBOLS, STEP_TRAILING_SPACE, STEP_DEEPSEEK_CJK,
      STEP_DIGITS_EACH}},
};

static const struct {
    const char *regex;
    pretok_step step;
} known_splits[] = {
    {LLAMA3_REGEX, STEP_LLAMA3},
    {GPT2_REGEX, STEP_GPT2},
    {QWEN2_REGEX, STEP_QWEN2},
    {GPT4O_REGEX, STEP_GPT4O},
    {TEKKEN_REGEX, STEP_TEKKEN},
    {"[\r\n]", STEP_NEWLINE},
    {"\\s?\\p{L}+", STEP_SPACED_LETTERS},
    {"\\s?\\p{P}+", STEP_SPACED_PUNCT},
    {DEEPSEEK_CJK_REGEX, STEP_DEEPSEEK_CJK},
    {DEEPSEEK_LLM_LETTERS_REGEX, STEP_DEEPSEEK_LETTERS},
    {DEEPSEEK_LLM_SYMBOLS_REGEX, STEP_DEEPSEEK_SYMBOLS},
    {"\\s+$", STEP_TRAILING_SPACE},
    {"[0-9][0-9][0-9]", STEP_THREE_DIGITS},
};

/* What the pre_tokenizer / normalizer say about splitting. */
typedef struct {
    pretok_step steps[MAX_STEPS];
    int n_steps;
    int byte_level;       /* a ByteLevel step is present */
    int add_prefix_space; /* ByteLevel's option */
    int metaspace;        /* SentencePiece-style `▁` spaces */
    int prepend_space;    /* `▁` before the text */
    int prepend_first;    /* ... only before the first section (Metaspace "first") */
    int split_words;      /* Metaspace split = true: merges stay inside words */
    const char *unsupported;
} split_rules;

static void add_step(split_rules *r, pretok_step step) {
    if (r->n_steps == MAX_STEPS) r->unsupported = "a pre_tokenizer Sequence longer than any we know";
    else r->steps[r->n_steps++] = step;
}

static void read_split(const cJSON *p, split_rules *r) {
    const char *re = str_field(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "Regex");
    const char *behavior = str_field(p, "behavior");
    if (!re || (behavior && strcmp(behavior, "Isolated") != 0) || bool_field(p, "invert", 0)) {
        r->unsupported = "a Split other than an isolating regex";
        return;
    }
    for (size_t i = 0; i < sizeof known_splits / sizeof known_splits[0]; i++)
        if (strcmp(re, known_splits[i].regex) == 0) return add_step(r, known_splits[i].step);
    r->unsupported = "a Split regex that no supported pre-tokenizer uses";
}

static void read_pretok(const cJSON *p, split_rules *r) {
    if (!p || cJSON_IsNull(p)) return;
    if (is_type(p, "Sequence")) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) read_pretok(item, r);
    } else if (is_type(p, "ByteLevel")) {
        r->byte_level = 1;
        r->add_prefix_space = bool_field(p, "add_prefix_space", 0);
        add_step(r, bool_field(p, "use_regex", 1) ? STEP_BYTE_LEVEL_GPT2 : STEP_BYTE_LEVEL);
    } else if (is_type(p, "Split")) {
        read_split(p, r);
    } else if (is_type(p, "Digits")) {
        add_step(r, bool_field(p, "individual_digits", 0) ? STEP_DIGITS_EACH : STEP_DIGIT_RUNS);
    } else if (is_type(p, "Punctuation")) {
        const char *behavior = str_field(p, "behavior");
        if (behavior && strcmp(behavior, "Contiguous") == 0) add_step(r, STEP_PUNCT_RUNS);
        else r->unsupported = "a Punctuation pre-tokenizer other than Contiguous";
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

/* The pre-tokenizer whose steps these are; BN_PRE_NONE when none is. */
static bn_pretok pretok_of_steps(const split_rules *r) {
    int n = r->n_steps;
    if (n > 1 && r->steps[n - 1] == STEP_BYTE_LEVEL) n--; /* the mapping after the splits */
    for (size_t i = 0; i < sizeof known_shapes / sizeof known_shapes[0]; i++) {
        if (known_shapes[i].n != n) continue;
        int same = 1;
        for (int k = 0; k < n && same; k++) same = known_shapes[i].steps[k] == r->steps[k];
        if (same) return known_shapes[i].pre;
    }
    return BN_PRE_NONE;
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
    bn_pretok pre = kind == BN_TOKENIZER_BPE ? pretok_of_steps(&rules) : BN_PRE_NONE;
    if (kind == BN_TOKENIZER_BPE && pre == BN_PRE_NONE)
        return bn_errf(err, "unsupported tokenizer.json: a byte-level pre_tokenizer that is none of LLaMA-3's, GPT-2's, "
                            "Qwen2's, GPT-4o's, Tekken's, StarCoder's, Falcon's or DeepSeek's"),
               NULL;

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
    t->pre = pre;
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
        int special = bool_field(e, "special", 0);
        t->type[id] = special ? BN_TT_CONTROL : BN_TT_USER_DEFINED;
        /* Hugging Face's defaults: not stripped, any word, normalized unless special */
        uint8_t flags = (uint8_t)((bool_field(e, "lstrip", 0) ? BN_ADDED_LSTRIP : 0) |
                                  (bool_field(e, "rstrip", 0) ? BN_ADDED_RSTRIP : 0) |
                                  (bool_field(e, "single_word", 0) ? BN_ADDED_SINGLE_WORD : 0) |
                                  (bool_field(e, "normalized", !special) ? BN_ADDED_NORMALIZED : 0));
        if (flags && !t->added_flags && !(t->added_flags = calloc((size_t)t->n_vocab, 1))) {
            bn_errf(err, "out of memory");
            goto fail;
        }
        if (t->added_flags) t->added_flags[id] = flags;
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
        bn_err inner = {0};
        t = build(j, cfg, &inner);
        if (!t) bn_errf(err, "%s: %s", tokenizer_json_path, inner.msg);
    }
    cJSON_Delete(j);
    cJSON_Delete(cfg);
    return t;
}
