/* gbuild.h: a grammar under construction, the form every front end (GBNF,
 * JSON Schema, regular expressions, any JSON) builds and grammar.c
 * compiles.
 *
 * A grammar is a set of named rules, each defined by an expression over
 * terminals (regular expressions, see regex.h) and references to rules.
 * Expressions are ids in the builder; constructors never fail on their own
 * except when the builder's budget is spent, in which case they return
 * BN_GX_ERROR (and so does any constructor given BN_GX_ERROR), so a front
 * end checks once (bn_gb_failed says why).
 *
 * How expressions are compiled (grammar.c): the parts of an expression that
 * hold no rule reference become regular expressions, and adjacent terminals
 * in a sequence merge into one lexeme; a reference to a rule always stays a
 * lexeme boundary unless inline_regular is set (then rules that are regular
 * and not recursive are inlined, as for hand-written GBNF). So a front end
 * chooses its lexemes by where it puts rules: JSON Schema makes each string,
 * number and value a rule, so equal strings share one lexeme. */
#ifndef BN_GRAMMAR_GBUILD_H
#define BN_GRAMMAR_GBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "base/errbuf.h"
#include "grammar/regex.h"

typedef struct bn_gb bn_gb;
typedef int32_t bn_gx;

#define BN_GX_ERROR ((bn_gx)-1)

typedef enum { BN_GX_TERM = 0, BN_GX_REF, BN_GX_SEQ, BN_GX_ALT, BN_GX_REPEAT } bn_gx_kind;

/* Budgets that bound what a grammar may cost to build and run; zero fields
 * take the defaults (bn_gb_default_limits). */
typedef struct {
    size_t max_rx_nodes;   /* regular expression nodes (default 1,000,000) */
    size_t max_exprs;      /* grammar expressions (default 1,000,000) */
    size_t max_rules;      /* rules (default 100,000) */
    size_t max_nfa_states; /* states of the lexemes' automaton (default 2,000,000) */
    size_t max_dfa_states; /* lexer states built lazily while matching (default 50,000) */
    size_t max_items;      /* parser items in one chart column (default 100,000) */
    size_t max_branches;   /* ways a matcher may be reading the text at once (default 256) */
    size_t max_work;       /* readings stepped and parser items made in one matcher call (default 1,000,000) */
} bn_grammar_limits;

void bn_gb_default_limits(bn_grammar_limits *lim);

/* A new builder (lim may be NULL: defaults). NULL when out of memory. */
bn_gb *bn_gb_new(const bn_grammar_limits *lim);
void bn_gb_free(bn_gb *gb);
const bn_grammar_limits *bn_gb_limits(const bn_gb *gb);
/* The arena the builder's terminals live in. */
bn_rx *bn_gb_rx(bn_gb *gb);
/* Why a constructor returned BN_GX_ERROR (NULL while none did). */
const char *bn_gb_failed(const bn_gb *gb);

/* The rule named name[0..len), declared on first use; -1 when the rule
 * budget is spent. Names are any bytes; front ends that make helper rules
 * should give them names no user can write (e.g. with a space). */
int32_t bn_gb_rule(bn_gb *gb, const char *name, size_t len);
/* A fresh rule with a unique name made from hint (for helper rules). */
int32_t bn_gb_new_rule(bn_gb *gb, const char *hint);
/* Defines rule as body. 0 with a message when it is already defined. */
int bn_gb_define(bn_gb *gb, int32_t rule, bn_gx body, bn_err *err);
int bn_gb_is_defined(const bn_gb *gb, int32_t rule);
const char *bn_gb_rule_name(const bn_gb *gb, int32_t rule, size_t *len);
size_t bn_gb_n_rules(const bn_gb *gb);
/* The rule a match starts from. */
void bn_gb_set_start(bn_gb *gb, int32_t rule);
int32_t bn_gb_start(const bn_gb *gb);
/* Inline rules that are regular and not recursive into their users (GBNF). */
void bn_gb_set_inline_regular(bn_gb *gb, int on);
int bn_gb_inline_regular(const bn_gb *gb);

bn_gx bn_gb_term(bn_gb *gb, bn_rxid re);
bn_gx bn_gb_lit(bn_gb *gb, const char *s); /* terminal: the bytes of s */
bn_gx bn_gb_ref(bn_gb *gb, int32_t rule);
bn_gx bn_gb_seq(bn_gb *gb, const bn_gx *xs, size_t n); /* n = 0: the empty string */
bn_gx bn_gb_seq2(bn_gb *gb, bn_gx a, bn_gx b);
bn_gx bn_gb_alt(bn_gb *gb, const bn_gx *xs, size_t n); /* n = 0: matches nothing */
bn_gx bn_gb_alt2(bn_gb *gb, bn_gx a, bn_gx b);
/* x repeated min..max times (BN_RX_INF: unbounded). */
bn_gx bn_gb_repeat(bn_gb *gb, bn_gx x, uint32_t min, uint32_t max);
bn_gx bn_gb_opt(bn_gb *gb, bn_gx x);

/* Inspection (for the compiler and tests). */
bn_gx_kind bn_gb_kind(const bn_gb *gb, bn_gx x);
bn_rxid bn_gb_term_rx(const bn_gb *gb, bn_gx x);
int32_t bn_gb_ref_rule(const bn_gb *gb, bn_gx x);
const bn_gx *bn_gb_parts(const bn_gb *gb, bn_gx x, size_t *n); /* SEQ, ALT; REPEAT: 1 */
void bn_gb_bounds(const bn_gb *gb, bn_gx x, uint32_t *min, uint32_t *max);
bn_gx bn_gb_body(const bn_gb *gb, int32_t rule); /* BN_GX_ERROR when undefined */
size_t bn_gb_n_exprs(const bn_gb *gb); /* ids are 0..n-1 */

#endif
