/* tokenizer_internal.h: the tokenizer's data, shared by the files that build it
 * (tok_build.c, tok_gguf.c, tok_hf.c), run it (tokenizer.c, tok_merge.c, tok_pretok.c)
 * and by nothing else: callers use tokenizer.h. */
#ifndef BN_TOKENIZER_INTERNAL_H
#define BN_TOKENIZER_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

#define BN_SPM_SPACE "\xE2\x96\x81" /* U+2581 "▁", sentencepiece's space */

/* Token types, numbered as GGUF's tokenizer.ggml.token_type. */
enum {
    BN_TT_NORMAL = 1, BN_TT_UNKNOWN = 2, BN_TT_CONTROL = 3,
    BN_TT_USER_DEFINED = 4, BN_TT_UNUSED = 5, BN_TT_BYTE = 6
};

/* How an added token is matched in text (tokenizer.json's flags). */
enum {
    BN_ADDED_LSTRIP = 1,      /* takes the whitespace before it */
    BN_ADDED_RSTRIP = 2,      /* takes the whitespace after it */
    BN_ADDED_SINGLE_WORD = 4, /* only where no word character touches it */
    BN_ADDED_NORMALIZED = 8   /* matched in the second pass, in what the first left */
};

/* Pre-tokenizers: how byte-level BPE splits text into words before merging
 * (tok_pretok.c says what each does). */
typedef enum {
    BN_PRE_NONE = 0,
    BN_PRE_LLAMA3,
    BN_PRE_GPT2,
    BN_PRE_QWEN2,
    BN_PRE_GPT4O,
    BN_PRE_TEKKEN,
    BN_PRE_STARCODER,
    BN_PRE_FALCON,
    BN_PRE_DEEPSEEK_CODER,
    BN_PRE_DEEPSEEK_LLM
} bn_pretok;

typedef struct {
    uint32_t off, len;
} bn_span;

typedef struct {
    int32_t id;  /* -1 marks an empty slot */
    uint32_t tag; /* high bits of the text's hash: most misses end here */
} bn_text_slot;

typedef struct {
    uint64_t key;   /* (left id << 32) | right id; 0 marks an empty slot */
    int32_t rank;   /* position in the merge list: lower merges first */
    int32_t result; /* id of the merged token */
} bn_merge_slot;

struct bn_tokenizer {
    atomic_int refs;
    bn_tokenizer_kind kind;
    bn_pretok pre;
    int32_t n_vocab;
    char *text_pool;  /* token texts as the vocabulary spells them */
    bn_span *text;
    size_t text_pool_used, text_pool_cap;
    char *piece_pool; /* the bytes each token decodes to */
    bn_span *piece;
    float *score;     /* SPM merge priority (higher first); NULL for BPE */
    uint8_t *type;    /* BN_TT_* */

    size_t max_text_len;  /* the longest token text, in bytes */
    bn_text_slot *text_index; /* open-addressing hash: text -> id */
    uint32_t text_index_mask;

    bn_merge_slot *merges; /* BPE: pair -> rank and result */
    uint32_t merge_mask;
    int32_t n_merges;

    int32_t *specials;    /* ids matched in text (control and user-defined), longest first */
    uint8_t *added_flags; /* per id, tokenizer.json's added-token flags (BN_ADDED_*); NULL: none set */
    int32_t n_specials;
    uint8_t special_first_byte[256]; /* 1 when some special text starts with that byte */

    uint8_t spm_alone[128]; /* SPM: ASCII bytes in no multi-character token, which
                             * never merge, so the text can be split there */
    int32_t byte_token[256]; /* SPM: <0xNN>; BPE: the byte's one-character token; -1 none */
    uint32_t byte_cp[256];   /* BPE: byte -> code point of the byte-level alphabet */

    int32_t bos, eos, eot, eom, unk, pad; /* -1 when absent */
    int32_t fim_pre, fim_suf, fim_mid;    /* fill-in-the-middle; -1 when absent */
    int32_t *eog;
    int32_t n_eog;
    int add_bos, add_eos;
    int add_space_prefix; /* SPM: a space before the text, as sentencepiece does */
    int prefix_first_only; /* SPM: ... but not again after a special token */
    int split_words;       /* SPM: merge within words that start at each `▁` */
    int add_prefix_space; /* byte-level BPE (GPT-2 option): a space before the text */
    int ignore_merges;    /* BPE: a word that is itself a token is not merged */
    int byte_fallback;
};

/* Building (used by the loaders, in this order). */
/* A tokenizer of n_vocab tokens whose texts total at most text_bytes. */
bn_tokenizer *bn_tok_new(bn_tokenizer_kind kind, int32_t n_vocab, size_t text_bytes, bn_err *err);
/* Sets the text of token id (copied). */
int bn_tok_set_text(bn_tokenizer *t, int32_t id, const char *s, size_t len, bn_err *err);
/* Indexes the texts; call once all are set. Fails only when out of memory. */
int bn_tok_index_texts(bn_tokenizer *t, bn_err *err);
/* Id of the token spelled exactly s, or -1. */
int32_t bn_tok_find(const bn_tokenizer *t, const char *s, size_t len);
/* Reserves room for n merges (BPE). */
int bn_tok_reserve_merges(bn_tokenizer *t, size_t n, bn_err *err);
/* Adds merge `left right` with the next rank; fails naming the merge when a
 * side or the result is not in the vocabulary. */
int bn_tok_add_merge(bn_tokenizer *t, const char *left, size_t llen, const char *right, size_t rlen, const char *what,
                     bn_err *err);
/* Derives decoded pieces, byte tokens, special and end-of-generation lists;
 * call last. */
int bn_tok_finish(bn_tokenizer *t, const char *what, bn_err *err);

/* The merge of pair (a, b): 1 with its rank and result, 0 if none. */
int bn_tok_merge_lookup(const bn_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *result);

/* Loads a GGUF file's tokenizer (tok_gguf.c). */
bn_tokenizer *bn_tokenizer_from_gguf_file(const char *path, bn_err *err);

/* Merging (tok_merge.c). Appends the ids of one pre-tokenized word. */
int bn_tok_bpe_word(const bn_tokenizer *t, const uint8_t *word, size_t len, bn_ids *out);
int bn_tok_spm_text(const bn_tokenizer *t, const uint8_t *text, size_t len, bn_ids *out);

/* Pre-tokenizing (tok_pretok.c): calls emit with each word of s[0..n), in
 * order, by the given pre-tokenizer's rules (BN_PRE_NONE: the whole text is
 * one word). Returns 1, or 0 as soon as emit does. */
int bn_pretok_split(bn_pretok pre, const uint8_t *s, size_t n, bn_word_fn emit, void *ctx);

/* Appends to a growable array; 0 when out of memory. */
int bn_ids_push(bn_ids *v, int32_t id);

#endif
