/* lexer.h: the lexemes of a grammar (regular expressions, regex.h) read
 * through a DFA built lazily, state by state, as text asks for it, from
 * Brzozowski derivatives: a state is each live lexeme with what is left of
 * its expression, plus whether any byte was read since the lexeme began;
 * it knows which lexemes may end where it stands. Counted repetitions cost
 * a state per count reached, never an expansion up front.
 *
 * A lexeme never matches the empty string: the compiler (grammar.c) puts
 * the empty case in the grammar instead.
 *
 * Not thread-safe: the grammar that owns a lexer serializes its users. */
#ifndef BN_GRAMMAR_LEXER_H
#define BN_GRAMMAR_LEXER_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "grammar/regex.h"

typedef struct bn_lexer bn_lexer;

#define BN_LEX_DEAD (-1)   /* no lexeme can go on */
#define BN_LEX_BUDGET (-2) /* the DFA state budget is spent */

/* A lexer over expressions of rx (which its derivatives grow: the arena's
 * node budget bounds them). max_nfa_states is unused (kept for the limits'
 * layout); max_dfa_states bounds the states. */
bn_lexer *bn_lexer_new(bn_rx *rx, size_t max_nfa_states, size_t max_dfa_states);
void bn_lexer_free(bn_lexer *lx);
/* The lexeme of regular expression re (the same id for the same re), or -1
 * with a message when the NFA budget is spent. */
int32_t bn_lexer_add(bn_lexer *lx, bn_rxid re, bn_err *err);
/* Call once after the last add: splits the bytes into classes. */
int bn_lexer_finish(bn_lexer *lx, bn_err *err);
int32_t bn_lexer_n_lexemes(const bn_lexer *lx);
bn_rxid bn_lexer_regex(const bn_lexer *lx, int32_t lexeme);
size_t bn_lexer_n_nfa(const bn_lexer *lx); /* expression nodes in the arena */
size_t bn_lexer_n_dfa(const bn_lexer *lx);

/* The state before the first byte of any of lexemes[0..n) (sorted, unique):
 * a state id, BN_LEX_DEAD or BN_LEX_BUDGET. */
int32_t bn_lexer_start(bn_lexer *lx, const int32_t *lexemes, size_t n);
/* The state after byte b: a state id, BN_LEX_DEAD or BN_LEX_BUDGET. */
int32_t bn_lexer_next(bn_lexer *lx, int32_t state, uint8_t b);
/* Whether state has read a byte of its lexeme (a start state has not). */
int bn_lexer_started(const bn_lexer *lx, int32_t state);
/* A state reads several lexemes (or readings of one) at once: its parts.
 * bn_lexer_part is the state of part i alone (made if new): a state id or
 * BN_LEX_BUDGET. What every part says of a text, the whole says too. */
size_t bn_lexer_n_parts(const bn_lexer *lx, int32_t state);
int32_t bn_lexer_part(bn_lexer *lx, int32_t state, size_t i);
bn_rxid bn_lexer_part_regex(const bn_lexer *lx, int32_t state, size_t i); /* what is left of its expression */
/* The lexemes that may end at state (sorted; none at a start state). */
const int32_t *bn_lexer_accepts(const bn_lexer *lx, int32_t state, size_t *n);
/* The state that reads every text of at most horizon bytes as state does,
 * with repetition bounds above the horizon clamped (so a string with 4000
 * characters left and one with 3000 are one state for tokens of at most
 * 128 bytes): what masks key their cache on. A state id, or BN_LEX_BUDGET.
 * A lexer keeps one horizon (a call with another forgets the clamps). */
int32_t bn_lexer_clamped(bn_lexer *lx, int32_t state, uint32_t horizon);

/* Whether every byte of the set leads from state back to itself: 1, 0, or
 * -1 when the budget is spent. Builds only the transitions it needs, and
 * remembers the answers per byte class. */
int bn_lexer_loops_on(bn_lexer *lx, int32_t state, const uint64_t bytes[4]);

/* A view of the transition table for tight loops: bn_lexer_step reads it
 * and falls back to bn_lexer_next (which may move the table, so the view
 * is refreshed) for a transition not built yet. */
typedef struct {
    const int32_t *trans;  /* n_states * n_classes; -3: not built yet */
    const uint8_t *cls;    /* byte -> class */
    const uint8_t *starts; /* per state: 1 when it has read a byte (bn_lexer_started) */
    const uint16_t *n_acc; /* per state: lexemes that may end there (capped at 65535) */
    size_t nc;
} bn_lexer_view;

void bn_lexer_view_of(const bn_lexer *lx, bn_lexer_view *v);

static inline int32_t bn_lexer_step(bn_lexer *lx, bn_lexer_view *v, int32_t s, uint8_t b) {
    int32_t t = v->trans[(size_t)s * v->nc + v->cls[b]];
    if (t != -3) return t;
    t = bn_lexer_next(lx, s, b);
    bn_lexer_view_of(lx, v);
    return t;
}

/* Bytes that lead from state back to itself, as a 256-bit set (computes
 * every transition of the state). NULL when the budget is spent. */
const uint64_t *bn_lexer_self_loop(bn_lexer *lx, int32_t state);

#endif
