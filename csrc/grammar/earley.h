/* earley.h: a context-free grammar over lexemes, flattened for parsing, and
 * the Earley parser's chart columns (Aycock-Horspool's treatment of nullable
 * rules; any context-free grammar, left recursion and ambiguity included).
 *
 * A column is immutable once built, so charts that share a prefix share
 * its columns: a matcher reading a text several ways at once, or trying a
 * token ahead of committing it, builds only the columns that differ. */
#ifndef BN_GRAMMAR_EARLEY_H
#define BN_GRAMMAR_EARLEY_H

#include <stddef.h>
#include <stdint.h>

/* Symbols: a nonterminal is >= 0; lexeme L is -(L + 1); BN_SYM_END closes a production. */
#define BN_SYM_END INT32_MIN
#define BN_SYM_LEX(l) (-(int32_t)(l) - 1)

typedef struct {
    int32_t n_nt, start;
    int32_t *syms;      /* every production's symbols, each followed by BN_SYM_END */
    size_t n_syms;
    int32_t *lhs;       /* per position in syms: the production's nonterminal */
    int32_t *prods;     /* production start positions, grouped by nonterminal */
    int32_t *nt_first;  /* per nonterminal: its productions are prods[nt_first[a]..nt_first[a+1]) */
    uint8_t *nullable;  /* per nonterminal */
} bn_cfg;

void bn_cfg_free(bn_cfg *g);

typedef struct {
    int32_t dot, origin;
} bn_item;

typedef struct bn_column {
    int32_t index;
    int32_t n_items;
    bn_item *items;
    int32_t n_wait; /* items whose next symbol is a nonterminal, by that nonterminal */
    int32_t *wait_nt;
    bn_item *wait;
    int32_t n_scan; /* items whose next symbol is a lexeme, by that lexeme */
    int32_t *scan_lex;
    bn_item *scan;
    int32_t n_allowed; /* the distinct lexemes that may come next, sorted */
    int32_t *allowed;
    int32_t lex_start; /* lexer start state for allowed (set by the matcher; -3 unknown) */
    uint8_t accepting; /* the start symbol is complete here */
    uint8_t kept;      /* owned by a matcher's committed state */
} bn_column;

/* Columns 0..n-1 of a chart: base[0..n_base) then extra[0..n-n_base). */
typedef struct {
    bn_column *const *base;
    int32_t n_base;
    bn_column *const *extra;
    int32_t n_extra;
} bn_chart_view;

/* Reusable work space for building columns. */
typedef struct bn_earley_work bn_earley_work;
bn_earley_work *bn_earley_work_new(void);
void bn_earley_work_free(bn_earley_work *w);

/* Status of a build: */
#define BN_EARLEY_OK 1
#define BN_EARLEY_NONE 0     /* nothing to build: the lexeme is not allowed */
#define BN_EARLEY_BUDGET (-1) /* more than max_items items, or out of memory */

/* Column 0. */
int bn_earley_first(const bn_cfg *g, bn_earley_work *w, size_t max_items, bn_column **out);
/* The column after lexeme at the end of the chart v. */
int bn_earley_scan(const bn_cfg *g, bn_earley_work *w, const bn_chart_view *v, int32_t lexeme, size_t max_items,
                   bn_column **out);
void bn_column_free(bn_column *c);

#endif
