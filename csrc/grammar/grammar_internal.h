/* grammar_internal.h: the compiled grammar's data, shared by grammar.c
 * (compiling, the token-class cache) and matcher.c, and by nothing else. */
#ifndef BN_GRAMMAR_INTERNAL_H
#define BN_GRAMMAR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "grammar/earley.h"
#include "grammar/grammar.h"
#include "grammar/lexer.h"

/* The tokens that may end the current lexeme partway and go on from there
 * are kept per lexeme as a trie of what is left of them (their remainders,
 * depth-first like the vocabulary's trie), so a mask walks each shared
 * remainder prefix once and skips a dead subtree in one step. */
typedef struct {
    uint32_t end;       /* one past this node's subtree */
    uint32_t tok_first; /* tokens whose remainder ends here: tokens[tok_first..+tok_n) */
    uint32_t tok_n;
    uint16_t depth;     /* bytes into the remainder (1 for a root's child) */
    uint8_t byte;
} bn_rem_node;

typedef struct {
    int32_t lexeme;
    uint32_t first, n; /* its nodes: nodes[first..first+n) */
} bn_rem_group;

/* All tokens below vocabulary trie node `node` may end lexeme `lexeme`
 * at that node and go on: their remainders are the trie's own paths below
 * it (used for large subtrees, where copying remainders would cost more). */
typedef struct {
    int32_t lexeme;
    uint32_t node;
} bn_sub_group;

/* What a lexer state says of every token, independent of the parser. */
typedef struct {
    uint32_t *inside_bits; /* tokens read whole inside the lexeme(s), as bits; or */
    int32_t *inside_ids;   /* ... as a list when few */
    int32_t n_inside;
    bn_rem_group *groups;
    int32_t n_groups;
    bn_rem_node *nodes;
    int32_t *tokens;
    bn_sub_group *subs;
    int32_t n_subs;
    size_t bytes;
    int refs;           /* states whose classes these are (token_classes.c shares them) */
    uint32_t *replayed; /* how they were made, when wholly from the walk memo: */
    size_t n_replayed;  /* root answer (2 words), then the memo entries replayed */
} bn_token_classes;

struct bn_grammar {
    atomic_int refs;
    bn_gb *gb; /* owns the regular expressions the lexer reads */
    bn_vocab *vocab;
    bn_lexer *lexer;
    bn_cfg cfg;
    bn_grammar_limits lim;
    size_t n_productions;
    pthread_mutex_t lock; /* guards lexer, classes */
    bn_token_classes **classes; /* per DFA state, NULL until asked */
    size_t cap_classes;
    size_t cache_bytes, max_cache_bytes;
    struct bn_walk_level *walk; /* scratch for the trie walk: one per depth (token_classes.c) */
    /* per lexer state and plain-text state: what plain text the state
     * reads whole (token_classes.c), and the byte sets those answers name */
    struct bn_absorb *absorb;
    size_t cap_absorb;
    /* what walking a subtree below the root did, per (state, node,
     * region), to replay when another state's walk reaches it
     * (token_classes.c) */
    struct bn_walk_memo *memo;
    size_t memo_mask, memo_used;
    struct bn_walk_op *memo_ops;
    size_t n_memo_ops, cap_memo_ops;
    /* classes made wholly from the memo, by what they replayed: another
     * state's walk that replays the same gets the same classes */
    bn_token_classes **shared;
    size_t shared_mask, shared_used;
    uint8_t *plain_rx; /* per expression: 1 some match is all plain bytes, 2 none, 0 not asked */
    size_t cap_plain_rx;
    uint64_t (*ksets)[4];
    size_t n_ksets, cap_ksets;
    uint8_t edges[BN_PLAIN_STATES][256]; /* per plain state: a byte of each (lexer class, next plain state) */
    uint16_t n_edges[BN_PLAIN_STATES];
    int edges_ready;
};

void bn_token_classes_free(bn_token_classes *tc);
/* Allocates g's scratch for the walk (0 when out of memory). */
int bn_token_walk_init(bn_grammar *g);

/* The token classes of lexer state s (built on first use). NULL with a
 * message when a budget is exceeded. Call with g->lock held. */
const bn_token_classes *bn_grammar_classes(bn_grammar *g, int32_t s, bn_err *err);

#endif
