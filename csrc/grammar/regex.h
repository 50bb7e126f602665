/* regex.h: regular expressions over bytes, the terminals of grammars.
 *
 * Expressions live in an arena (bn_rx) as a hash-consed DAG: building the
 * same expression twice gives the same id, so equal terminals are one
 * lexeme. Constructors simplify (nothing absorbs a concatenation, empty is
 * its unit, alternatives are flattened, sorted and deduplicated), so ids
 * stay canonical enough to compare.
 *
 * Code-point classes are compiled to UTF-8 byte sequences (surrogates
 * excluded), so a matcher running over bytes accepts exactly the valid
 * UTF-8 spellings and every prefix of them (a token may end inside a
 * character).
 *
 * Every constructor returns BN_RX_ERROR when an argument is BN_RX_ERROR or
 * the arena's node budget is spent: a caller can build a whole expression
 * and check once at the end (bn_rx_failed then says why). */
#ifndef BN_GRAMMAR_REGEX_H
#define BN_GRAMMAR_REGEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct bn_rx bn_rx;
typedef int32_t bn_rxid;

#define BN_RX_ERROR ((bn_rxid)-1)
#define BN_RX_INF UINT32_MAX /* unbounded repetition */

typedef enum {
    BN_RX_NOTHING = 0, /* matches no string */
    BN_RX_EMPTY,       /* matches "" */
    BN_RX_BYTES,       /* one byte of a set */
    BN_RX_CONCAT,      /* a then b */
    BN_RX_ALT,         /* any of n alternatives */
    BN_RX_REPEAT,      /* a, min..max times */
    BN_RX_DFA          /* a state of an automaton kept in the arena: what is left to match from it */
} bn_rx_kind;

/* A new arena that holds at most max_nodes distinct nodes (0: a default of
 * 1,000,000). NULL when out of memory. */
bn_rx *bn_rx_new(size_t max_nodes);
void bn_rx_free(bn_rx *rx);
/* Why the last constructor returned BN_RX_ERROR (NULL while none did). */
const char *bn_rx_failed(const bn_rx *rx);

bn_rxid bn_rx_nothing(bn_rx *rx);
bn_rxid bn_rx_empty(bn_rx *rx);
/* One byte of set (bit b of set[b >> 6] is byte b); an empty set is nothing. */
bn_rxid bn_rx_byteset(bn_rx *rx, const uint64_t set[4]);
bn_rxid bn_rx_byte_range(bn_rx *rx, uint8_t lo, uint8_t hi);
/* The bytes s[0..n) in order. */
bn_rxid bn_rx_literal(bn_rx *rx, const void *s, size_t n);
/* One code point of the union of ranges[0..n) (pairs lo, hi inclusive,
 * any order, may overlap), or with negate of its complement within
 * U+0000..U+10FFFF; UTF-8 encoded, surrogates never matched. */
bn_rxid bn_rx_cp_class(bn_rx *rx, const uint32_t (*ranges)[2], size_t n, int negate);
/* The same class, spelled as JSON string content writes a character: '"'
 * as \", '\' as \\, controls below U+0020 as \b \f \n \r \t or \u00XX
 * (hex digits in either case), every other code point as its UTF-8 bytes.
 * The one spelling Python's json.dumps(ensure_ascii=False) and every JSON
 * library agree on; other escapes (\/, \u0041) are not accepted here. */
bn_rxid bn_rx_json_cp_class(bn_rx *rx, const uint32_t (*ranges)[2], size_t n, int negate);
bn_rxid bn_rx_concat(bn_rx *rx, bn_rxid a, bn_rxid b);
bn_rxid bn_rx_concat_n(bn_rx *rx, const bn_rxid *parts, size_t n); /* n = 0: empty */
bn_rxid bn_rx_alt(bn_rx *rx, bn_rxid a, bn_rxid b);
bn_rxid bn_rx_alt_n(bn_rx *rx, const bn_rxid *parts, size_t n); /* n = 0: nothing */
/* a repeated min..max times (max BN_RX_INF: unbounded); min > max is nothing. */
bn_rxid bn_rx_repeat(bn_rx *rx, bn_rxid a, uint32_t min, uint32_t max);
bn_rxid bn_rx_optional(bn_rx *rx, bn_rxid a); /* a{0,1} */

/* Automata. An intersection of expressions (a pattern with lengths) is
 * a product automaton; spelled back as an expression it can be huge, and
 * each derivative of it copies much of it. Kept as a table instead, a
 * derivative is one lookup. The table: n_states states, bytes in classes
 * (class_of), next[state * n_classes + class] the next state or -1 (no
 * match can go on: the caller keeps only states from which an accepting
 * one is reachable, so every state that is not -1 matches something),
 * accept[state] whether a match may end there. Returns the table's id, or
 * -1 past the node budget or out of memory (bn_rx_failed says which). */
int32_t bn_rx_dfa_new(bn_rx *rx, int32_t n_states, const uint8_t class_of[256], int n_classes, const int32_t *next,
                      const uint8_t *accept);
/* The expression "from state of table on" (-1: nothing). */
bn_rxid bn_rx_dfa_state(bn_rx *rx, int32_t table, int32_t state);
/* BN_RX_DFA: its derivative by byte (a lookup). */
bn_rxid bn_rx_dfa_step(bn_rx *rx, bn_rxid id, uint8_t byte);
/* BN_RX_DFA: the bytes that keep it alive (bit b of out[b >> 6]). */
void bn_rx_dfa_first(const bn_rx *rx, bn_rxid id, uint64_t out[4]);
/* BN_RX_DFA: the number of its table's byte classes, and the bytes of class
 * cls (bit b of out[b >> 6]): a lexer's classes must split along them. */
int bn_rx_dfa_n_classes(const bn_rx *rx, bn_rxid id);
void bn_rx_dfa_class_bytes(const bn_rx *rx, bn_rxid id, int cls, uint64_t out[4]);

/* Inspection (for compiling to automata and for tests). */
bn_rx_kind bn_rx_kind_of(const bn_rx *rx, bn_rxid id);
int bn_rx_nullable(const bn_rx *rx, bn_rxid id); /* matches "" */
/* BN_RX_BYTES: its set. */
const uint64_t *bn_rx_set(const bn_rx *rx, bn_rxid id);
/* BN_RX_CONCAT, BN_RX_ALT: the parts (a concatenation has 2); BN_RX_REPEAT: 1. */
const bn_rxid *bn_rx_parts(const bn_rx *rx, bn_rxid id, size_t *n);
/* BN_RX_REPEAT: its bounds. */
void bn_rx_bounds(const bn_rx *rx, bn_rxid id, uint32_t *min, uint32_t *max);
size_t bn_rx_count(const bn_rx *rx); /* nodes in the arena */
/* Whether the string s[0..n) matches id exactly (a slow reference matcher
 * for tests: backtracking with memo, fine for short strings). */
int bn_rx_matches(const bn_rx *rx, bn_rxid id, const void *s, size_t n);

#endif
