/* tokenizer.h: the model's tokenizer: LLaMA SentencePiece BPE ("spm": `▁`
 * for spaces, byte fallback `<0xNN>`) and byte-level BPE ("bpe": the
 * pre-tokenizers of LLaMA-3, GPT-2, Qwen2, GPT-4o, Tekken, StarCoder,
 * Falcon and DeepSeek, see tok_pretok.c; tiktoken-style vocabularies), loaded from GGUF
 * metadata or a Hugging Face tokenizer.json, exact to the reference
 * tokenizers (llama.cpp's test vectors, made with Hugging Face tokenizers).
 *
 * A tokenizer is immutable once built and reference-counted, so it can be
 * shared between threads. Ids are 0-based. Encoding accepts any bytes:
 * invalid UTF-8 is encoded byte by byte (byte-level tokens or <0xNN>), so
 * decode(encode(s)) == s for every s the vocabulary can spell. */
#ifndef BN_TOKENIZER_H
#define BN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "formats/gguf.h"

typedef struct bn_tokenizer bn_tokenizer;

/* Bounds on what a tokenizer file may claim, checked before anything is
 * allocated for it. Real models stay far below: the largest vocabularies
 * are about 260,000 tokens (Gemma), merge lists about 500,000. A file over
 * a bound is refused with a message naming it; raise it here and rebuild
 * for a model that really needs more. */
#define BN_MAX_VOCAB 1000000
#define BN_MAX_MERGES 2000000

typedef enum { BN_TOKENIZER_SPM = 1, BN_TOKENIZER_BPE = 2 } bn_tokenizer_kind;

/* Growable arrays the encoder and decoder append to; free with the *_free
 * functions. Start from all-zero. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} bn_ids;
typedef struct {
    char *p;
    size_t n, cap;
} bn_bytes;
void bn_ids_free(bn_ids *v);
void bn_bytes_free(bn_bytes *b);

/* From a GGUF file's tokenizer.ggml.* metadata (model "llama" or "gpt2");
 * NULL with a message when the file has none or it is malformed. Copies
 * everything it keeps, so the file may be unmapped afterwards. */
bn_tokenizer *bn_tokenizer_from_gguf(const bn_gguf *g, bn_err *err);

/* From a Hugging Face tokenizer.json (a BPE model), with tokenizer_config.json
 * (may be NULL) for add_bos_token / add_eos_token / bos_token / eos_token.
 * NULL with a message naming the file when it is missing, malformed or of a
 * kind we do not support. */
bn_tokenizer *bn_tokenizer_from_hf(const char *tokenizer_json_path, const char *tokenizer_config_path, bn_err *err);

/* From any path: a GGUF file (vocabulary-only files too), a tokenizer.json,
 * or a directory holding tokenizer.json (and tokenizer_config.json). */
bn_tokenizer *bn_tokenizer_load(const char *path, bn_err *err);

/* Reference counting: a new tokenizer holds one reference; bn_tokenizer_free
 * drops one and frees at zero (NULL is ignored). */
void bn_tokenizer_retain(bn_tokenizer *t);
void bn_tokenizer_free(bn_tokenizer *t);

/* Encoding options. add_bos: -1 = the tokenizer's default
 * (bn_tokenizer_add_bos), 0 = no, 1 = yes. parse_special: 1 = texts of
 * control tokens (e.g. "<|eot_id|>") in the input become those tokens; 0 =
 * they are ordinary text. User-defined (non-special added) tokens are always
 * recognized, as the reference does. */
typedef struct {
    int add_bos;
    int parse_special;
} bn_encode_opts;

/* Appends the ids of text[0..len) to out. Returns 1, or 0 with a message
 * (out of memory; BOS asked for but the vocabulary has none). Also appends
 * EOS when the tokenizer's metadata asks for it (add_eos_token). */
int bn_tokenizer_encode(const bn_tokenizer *t, const char *text, size_t len, const bn_encode_opts *opts, bn_ids *out,
                        bn_err *err);

/* Calls word with each word of text[0..len) as the byte-level BPE
 * pre-tokenizer splits it before merging (SentencePiece: the whole text), in
 * order, stopping when word returns 0. Special tokens are not looked for and
 * no prefix space is added: the split alone, to check it against the
 * pre-tokenizer's definition. Returns 1, or 0 when word stopped it. */
typedef int (*bn_word_fn)(void *ctx, const uint8_t *word, size_t len);
int bn_tokenizer_pretokenize(const bn_tokenizer *t, const char *text, size_t len, bn_word_fn word, void *ctx);

/* A streaming decoder: turns ids into bytes, releasing only complete UTF-8
 * and carrying an unfinished sequence to the next token. Plain data; it does
 * not own the tokenizer, which must outlive it. */
typedef struct {
    const bn_tokenizer *t;
    int special;     /* render control tokens as their text */
    int strip_space; /* SPM: drop the one leading space sentencepiece adds */
    int at_start;    /* nothing released yet */
    size_t n_carry;
    uint8_t carry[4];
} bn_detok;

/* special: render control/unknown/unused tokens (default: they render as
 * nothing). strip_leading_space: for SPM tokenizers that add a space before
 * the text, remove one space from the start of the output (as Hugging Face's
 * decoder does; pass 0 when decoding a continuation). */
void bn_detok_init(bn_detok *d, const bn_tokenizer *t, int special, int strip_leading_space);
/* Appends what token id releases (possibly nothing). Returns 1, 0 if id is
 * not in the vocabulary, -1 out of memory. */
int bn_detok_feed(bn_detok *d, int32_t id, bn_bytes *out);
/* Appends the bytes still carried (an unfinished UTF-8 sequence) and resets
 * the carry. Returns 1, or -1 out of memory. */
int bn_detok_flush(bn_detok *d, bn_bytes *out);

/* Decodes ids[0..n) into out (one decoder, fed every id, then flushed).
 * Returns 1; 0 when ids[*bad] is not in the vocabulary; -1 out of memory. */
int bn_tokenizer_decode(const bn_tokenizer *t, const int32_t *ids, size_t n, int special, int strip_leading_space,
                        bn_bytes *out, size_t *bad);

/* The bytes token id decodes to (control tokens: their text), or NULL when
 * id is out of range. Points into the tokenizer. */
const char *bn_tokenizer_piece(const bn_tokenizer *t, int32_t id, size_t *len);
/* The token's text as the vocabulary spells it (e.g. "ĠHello", "▁Hello"). */
const char *bn_tokenizer_text(const bn_tokenizer *t, int32_t id, size_t *len);
/* SentencePiece score of id (merge priority, higher first): 1 and *score,
 * or 0 for byte-level BPE (merge ranks instead) or an id out of range. */
int bn_tokenizer_score(const bn_tokenizer *t, int32_t id, float *score);
/* Id of the token whose vocabulary text is exactly s, or -1. */
int32_t bn_tokenizer_find(const bn_tokenizer *t, const char *s, size_t len);

int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t);
bn_tokenizer_kind bn_tokenizer_get_kind(const bn_tokenizer *t);
/* Special ids, -1 when the vocabulary has none. */
int32_t bn_tokenizer_bos(const bn_tokenizer *t);
int32_t bn_tokenizer_eos(const bn_tokenizer *t);
int32_t bn_tokenizer_eot(const bn_tokenizer *t);
/* Fill-in-the-middle: the prefix, suffix and middle tokens (GGUF
 * tokenizer.ggml.fim_*_token_id, else a family's usual spellings); 0 when
 * the vocabulary lacks any of the three. */
int bn_tokenizer_fim(const bn_tokenizer *t, int32_t *pre, int32_t *suf, int32_t *mid);
/* Whether encoding adds BOS by default. */
int bn_tokenizer_add_bos(const bn_tokenizer *t);
/* Whether id ends generation: EOS, EOT, EOM, or another control token whose
 * text marks an end of turn ("<|im_end|>", "<|endoftext|>", ...). */
int bn_tokenizer_is_eog(const bn_tokenizer *t, int32_t id);
/* Whether id is a control token (rendered only when decoding with special). */
int bn_tokenizer_is_control(const bn_tokenizer *t, int32_t id);

#endif
