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
    uint8_t spare[3];
} bn_trie_node;

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
/* The bytes of token id (NULL for a token not in the trie). */
const uint8_t *bn_vocab_bytes(const bn_vocab *v, int32_t id, size_t *len);
size_t bn_vocab_max_len(const bn_vocab *v);
/* End-of-generation tokens. */
const int32_t *bn_vocab_eog(const bn_vocab *v, size_t *n);
const bn_tokenizer *bn_vocab_tokenizer(const bn_vocab *v);

#endif
