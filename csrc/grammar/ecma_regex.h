/* ecma_regex.h: the regular expressions of JSON Schema's `pattern` (the
 * ECMA-262 syntax, in its Unicode mode) into terminals (regex.h).
 *
 * Supported: literals and escapes (\n \t \r \f \v \0 \xHH \uHHHH \u{H..}
 * \cX, escaped punctuation), '.', classes [...] [^...] with ranges and the
 * class escapes \d \D \w \W \s \S, groups ( ) (?: ) (?<name> ),
 * alternation, quantifiers * + ? {m} {m,} {m,n} and their lazy forms (the
 * language is the same), and the anchors ^ and $ at the ends of the
 * expression or of top-level alternatives. Not supported, and refused
 * naming the construct: lookaround, backreferences, \b \B, anchors elsewhere. */
#ifndef BN_GRAMMAR_ECMA_REGEX_H
#define BN_GRAMMAR_ECMA_REGEX_H

#include <stddef.h>

#include "base/errbuf.h"
#include "grammar/regex.h"

typedef enum {
    BN_ECMA_FULLMATCH = 0, /* the whole text must match (a `regex` grammar) */
    BN_ECMA_SEARCH = 1     /* JSON Schema's `pattern`: a match anywhere, unless anchored */
} bn_ecma_mode;

typedef enum {
    BN_ECMA_RAW = 0,        /* characters as UTF-8 bytes */
    BN_ECMA_JSON_STRING = 1 /* characters spelled as JSON string content (bn_rx_json_cp_class) */
} bn_ecma_spelling;

/* Compiles pattern[0..n) into *out. Returns 1, or 0 with a message naming
 * the position ("at offset 7: ...") and the problem. Repetition counts are
 * capped by max_repeat (0: 1000) to bound the automaton. */
int bn_ecma_regex(bn_rx *rx, const char *pattern, size_t n, bn_ecma_mode mode, bn_ecma_spelling spelling,
                  uint32_t max_repeat, bn_rxid *out, bn_err *err);

#endif
