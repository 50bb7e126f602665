/* json_schema_rxalg.h: operations on regular expressions that regex.h does
 * not offer and JSON Schema needs: matching a string at compile time
 * (a listed property name against patternProperties, an enum value
 * against pattern), intersection (pattern with minLength), difference
 * (keys no pattern matches) and emptiness (oneOf branches that cannot
 * overlap).
 *
 * All work by Brzozowski derivatives over the arena's hash-consed nodes:
 * the derivatives of an expression are finitely many ids, so they are the
 * states of its DFA; a product DFA gives intersection and difference, and
 * state elimination turns it back into an expression. Every automaton is
 * bounded by max_states, and all of them together by 8 times that; an
 * operation past its budget returns BN_RX_ERROR (or -1). */
#ifndef BN_GRAMMAR_JSON_SCHEMA_RXALG_H
#define BN_GRAMMAR_JSON_SCHEMA_RXALG_H

#include <stddef.h>
#include <stdint.h>

#include "grammar/regex.h"

typedef struct bn_jrx bn_jrx;

/* Derivative memo over rx (which it does not own). NULL when out of memory. */
bn_jrx *bn_jrx_new(bn_rx *rx, size_t max_states);
void bn_jrx_free(bn_jrx *j);

/* The expression matching the rests of id's strings that start with byte. */
bn_rxid bn_jrx_deriv(bn_jrx *j, bn_rxid id, uint8_t byte);
/* Whether id matches s[0..n) exactly: 1, 0, or -1 when the arena is spent. */
int bn_jrx_match(bn_jrx *j, bn_rxid id, const void *s, size_t n);
/* The strings of a that are also in b (both_in = 1) or not in b (0). */
bn_rxid bn_jrx_product(bn_jrx *j, bn_rxid a, bn_rxid b, int both_in);
/* The strings in both a and b, as an automaton in the arena (BN_RX_DFA):
 * each derivative is a lookup where the expression bn_jrx_product spells
 * can be huge to derive. */
bn_rxid bn_jrx_intersect_table(bn_jrx *j, bn_rxid a, bn_rxid b);
/* The number of states of a's DFA, or -1 past the budget. */
long bn_jrx_states(bn_jrx *j, bn_rxid a);
/* Whether some string is in a and in b: 1, 0, or -1 past the budget. */
int bn_jrx_overlap(bn_jrx *j, bn_rxid a, bn_rxid b);

#endif
