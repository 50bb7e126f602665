/* gbnf.h: llama.cpp's grammar format (GBNF) into a grammar builder.
 *
 *   root  ::= "{" ws pair ("," ws pair)* "}"   # a comment
 *   pair  ::= [a-z]+ ":" [0-9]{1,3}
 *
 * Rules `name ::= alternatives` (names of letters, digits and '-'), a rule
 * ending at the next line that starts a new `name ::=` (a body may span
 * lines); alternatives with '|', groups '( )', postfix '*', '+', '?',
 * '{m}', '{m,}', '{m,n}'; string literals "..." and character classes
 * [...] / [^...] with ranges and the escapes \n \r \t \\ \" \] \- \xHH
 * \uHHHH \UHHHHHHHH; '.' (any character); '#' comments. Literals and classes
 * are Unicode code points, matched as UTF-8. */
#ifndef BN_GRAMMAR_GBNF_H
#define BN_GRAMMAR_GBNF_H

#include <stddef.h>

#include "base/errbuf.h"
#include "grammar/gbuild.h"

/* Parses text[0..n) into gb (a fresh builder) and sets its start rule to
 * root (NULL: "root"). Returns 1, or 0 with a message naming the line and
 * column ("line 3, column 14: ...") for a syntax error, a rule used but
 * never defined, a rule defined twice, a missing root, or a repetition
 * bound over the limit. Left recursion is accepted (the parser is Earley). */
int bn_gbnf_parse(bn_gb *gb, const char *text, size_t n, const char *root, bn_err *err);

#endif
