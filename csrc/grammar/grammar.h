/* grammar.h: a grammar compiled for one vocabulary, and matchers that
 * follow a text through it token by token and say which tokens may come
 * next (the masks of constrained decoding).
 *
 * How it works: the grammar's terminals are lexemes (regular expressions,
 * read by a lazily built DFA, lexer.h) and its structure is a context-free
 * grammar over them (an Earley parser, earley.h), so any GBNF grammar is
 * exact, left recursion and ambiguity included. A text may be read several
 * ways at once (where a lexeme may end or go on); the matcher keeps every
 * reading ("branch"). Masks: for each lexer state the tokens that stay
 * inside the current lexeme are computed once (a walk over the token trie)
 * and cached with the grammar; only the tokens that cross a lexeme's end
 * are checked against the parser for each mask.
 *
 * A bn_grammar is immutable to its users and reference-counted; its lazily
 * built parts (DFA states, token classes) are guarded by a mutex, so
 * matchers on several threads may share one grammar. A matcher is used by
 * one thread at a time. */
#ifndef BN_GRAMMAR_GRAMMAR_H
#define BN_GRAMMAR_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "grammar/gbuild.h"
#include "grammar/vocab.h"

typedef struct bn_grammar bn_grammar;
typedef struct bn_matcher bn_matcher;

/* Compiles gb for vocabulary v (retained). Takes gb: the grammar frees it
 * (at once on failure). NULL with a message for a missing start rule, a
 * rule used but not defined, or a budget exceeded. */
bn_grammar *bn_grammar_compile(bn_gb *gb, bn_vocab *v, bn_err *err);
void bn_grammar_retain(bn_grammar *g);
void bn_grammar_free(bn_grammar *g);
bn_vocab *bn_grammar_vocab(const bn_grammar *g);

typedef struct {
    size_t n_lexemes, n_nonterminals, n_productions, n_nfa_states;
    size_t n_dfa_states, n_cached_states, cache_bytes;
} bn_grammar_stats;
void bn_grammar_stats_get(bn_grammar *g, bn_grammar_stats *s);

/* A matcher at the start of the text. NULL with a message when out of memory. */
bn_matcher *bn_matcher_new(bn_grammar *g, bn_err *err);
void bn_matcher_free(bn_matcher *m);
/* Back to the start of the text. Returns 1, or 0 with a message. */
int bn_matcher_reset(bn_matcher *m, bn_err *err);

/* Result of commit and feed: */
#define BN_MATCH_OK 1
#define BN_MATCH_REJECT 0   /* not allowed; the matcher is unchanged */
#define BN_MATCH_ERROR (-1) /* a budget was exceeded (message set); the matcher is unchanged */

/* Reads token id (its bytes; an end-of-generation token is allowed exactly
 * when the text is complete, and ends it: nothing may follow). */
int bn_matcher_commit(bn_matcher *m, int32_t id, bn_err *err);
/* Reads bytes s[0..n) as text. */
int bn_matcher_feed(bn_matcher *m, const void *s, size_t n, bn_err *err);
/* Whether the text so far is a whole match. */
int bn_matcher_is_complete(bn_matcher *m);
/* Whether an end-of-generation token was committed. */
int bn_matcher_is_ended(const bn_matcher *m);

/* Computes the tokens allowed next into bits (bit i of bits[i / 32]; room
 * for bn_vocab_n_tokens bits) and *count. Returns 1, or 0 with a message
 * when a budget is exceeded. */
int bn_matcher_mask(bn_matcher *m, uint32_t *bits, size_t *count, bn_err *err);

/* A matcher in src's state (the same grammar): NULL with a message. */
bn_matcher *bn_matcher_clone(const bn_matcher *src, bn_err *err);
/* Puts dst (a matcher of the same grammar) in src's state. 0 with a message. */
int bn_matcher_copy_state(bn_matcher *dst, const bn_matcher *src, bn_err *err);
bn_grammar *bn_matcher_grammar(const bn_matcher *m);

/* The bytes every continuation of the text must start with (the grammar
 * allows only one way on), at most cap of them, into out; returns the
 * count (0 when there is a choice, or the text may end here). */
size_t bn_matcher_forced_bytes(bn_matcher *m, uint8_t *out, size_t cap);

#endif
