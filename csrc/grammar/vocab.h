/* vocab.h: a tokenizer's vocabulary as the grammar engine reads it: the
 * bytes each token stands for, in a trie laid out in depth-first order so
 * a walk can skip a whole subtree in one step.
 *
 * Built once per tokenizer and shared (reference-counted, immutable) by
 * every grammar compiled for it. Control tokens and tokens that decode to
 * nothing are left out of the trie: no grammar text can contain them;
 * end-of-generation tokens are allowed by the matcher when the text is
 * complete. */
#ifndef BN_GRAMMAR_VOCAB_H
#define BN_GRAMMAR_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    uint32_t end;       /* one past the last node of this node's subtree */
    uint32_t tok_first; /* tokens ending here: order[tok_first..tok_first+tok_n) */
    uint16_t tok_n;
    uint16_t depth;     /* bytes from the root (the root is 0) */
    uint8_t byte;       /* the byte leading here from the parent */
    uint8_t flags;      /* BN_TRIE_* */
    uint16_t max_below; /* the depth of the deepest token at or below (capped at 65535) */
} bn_trie_node;

#define BN_TRIE_NOT_PLAIN 1 /* some token at or below is not plain text (bn_plain_next) */

/* Plain text: UTF-8 characters other than controls (below U+0020), '"'
 * and the backslash, the bytes of a JSON string's content that need no escape,
 * possibly cut inside the last character. A DFA over bytes: state
 * BN_PLAIN_START is a character boundary, states 1..7 are inside a
 * character, BN_PLAIN_DEAD has left plain text. Tokens of plain text are
 * what most of a vocabulary is and what a string's interior accepts, so
 * the token-class walk treats them in bulk (grammar.c). */
#define BN_PLAIN_START 0
#define BN_PLAIN_STATES 8
#define BN_PLAIN_DEAD 255
static inline uint8_t bn_plain_next(uint8_t state, uint8_t b) {
    switch (state) {
    case 0:
        if (b < 0x80) return b >= 0x20 && b != '"' && b != '\\' ? 0 : BN_PLAIN_DEAD;
        if (b >= 0xC2 && b <= 0xDF) return 1; /* one continuation byte to come */
        if (b == 0xE0) return 4;              /* then A0..BF (no overlong form) */
        if (b == 0xED) return 5;              /* then 80..9F (no surrogates) */
        if (b >= 0xE1 && b <= 0xEF) return 2; /* two to come */
        if (b == 0xF0) return 6;              /* then 90..BF */
        if (b >= 0xF1 && b <= 0xF3) return 3; /* three to come */
        if (b == 0xF4) return 7;              /* then 80..8F (up to U+10FFFF) */
        return BN_PLAIN_DEAD;
    case 1: case 2: case 3:
        return b >= 0x80 && b <= 0xBF ? (uint8_t)(state - 1) : BN_PLAIN_DEAD;
    case 4: return b >= 0xA0 && b <= 0xBF ? 1 : BN_PLAIN_DEAD;
    case 5: return b >= 0x80 && b <= 0x9F ? 1 : BN_PLAIN_DEAD;
    case 6: return b >= 0x90 && b <= 0xBF ? 2 : BN_PLAIN_DEAD;
    case 7: return b >= 0x80 && b <= 0x8F ? 2 : BN_PLAIN_DEAD;
    default: return BN_PLAIN_DEAD;
    }
}

typedef struct bn_vocab bn_vocab;

bn_vocab *bn_vocab_new(const bn_tokenizer *t, bn_err *err);
void bn_vocab_retain(bn_vocab *v);
void bn_vocab_free(bn_vocab *v);

int32_t bn_vocab_n_tokens(const bn_vocab *v); /* the tokenizer's vocabulary size */
/* The trie: nodes[0] is the root; nodes in depth-first order. */
const bn_trie_node *bn_vocab_trie(const bn_vocab *v, size_t *n_nodes);
/* Per node: every byte on a path below it, as a 256-bit set. */
const uint64_t (*bn_vocab_below(const bn_vocab *v))[4];
/* Per node i (and n_nodes): how many tokens end at nodes before i, so the
 * tokens of nodes i..j-1 are order[first[i]..first[j]). */
const uint32_t *bn_vocab_first_tok(const bn_vocab *v);
/* Token ids in trie order (the trie's nodes index into it). */
const int32_t *bn_vocab_order(const bn_vocab *v);
/* Tokens of plain text (bn_plain_next) as bits by token id: all of them,
 * and those of at most L bytes for L <= BN_VOCAB_PLAIN_LE_MAX. */
#define BN_VOCAB_PLAIN_LE_MAX 64
const uint32_t *bn_vocab_plain_bits(const bn_vocab *v);
const uint32_t *bn_vocab_plain_le(const bn_vocab *v, size_t L);
/* Per trie-order position (as bn_vocab_order): the token's length when it
 * is plain text (capped at 65535), 0 when it is not. */
const uint16_t *bn_vocab_plain_len(const bn_vocab *v);
/* The bytes of token id (NULL for a token not in the trie). */
const uint8_t *bn_vocab_bytes(const bn_vocab *v, int32_t id, size_t *len);
size_t bn_vocab_max_len(const bn_vocab *v);
/* End-of-generation tokens. */
const int32_t *bn_vocab_eog(const bn_vocab *v, size_t *n);
const bn_tokenizer *bn_vocab_tokenizer(const bn_vocab *v);

#endif
