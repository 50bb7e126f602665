/* json_schema_strings.h: regular expressions for JSON string content (the
 * bytes between the quotes), for the JSON Schema compiler.
 *
 * Two spellings: "any" accepts every way JSON lets a string be written
 * (\/ and \u0041 included), for strings nothing constrains; "canonical" is
 * the one spelling json.dumps(ensure_ascii=False) writes (the spelling of
 * bn_rx_json_cp_class), for strings whose value is constrained, so that one
 * value has one spelling and a regex over spellings is a set of values. */
#ifndef BN_GRAMMAR_JSON_SCHEMA_STRINGS_H
#define BN_GRAMMAR_JSON_SCHEMA_STRINGS_H

#include <stddef.h>
#include <stdint.h>

#include "grammar/regex.h"

/* Every JSON spelling of every string's content. */
bn_rxid bn_jstr_any(bn_rx *rx);

/* The canonical code point and its parts, built once per arena. */
typedef struct {
    bn_rxid any;       /* one code point */
    bn_rxid non_ascii; /* U+0080 and up, as UTF-8 */
    bn_rxid escaped;   /* the escaped ones: '"', '\\' and the controls */
} bn_jstr_chars;
/* Fills ch; 0 when the arena is spent. */
int bn_jstr_chars_init(bn_rx *rx, bn_jstr_chars *ch);

/* Canonical content of min..max code points (max BN_RX_INF: unbounded). */
bn_rxid bn_jstr_length(bn_rx *rx, const bn_jstr_chars *ch, uint32_t min, uint32_t max);
/* content between quotes: '"' content '"'. */
bn_rxid bn_jstr_quoted(bn_rx *rx, bn_rxid content);

/* The number of code points of s[0..n) when it is valid UTF-8 (no
 * surrogates, no overlong forms), else -1. */
long bn_jstr_utf8_count(const char *s, size_t n);
/* Writes the canonical spelling of valid UTF-8 s[0..n) (at most 6n bytes)
 * to out and returns its length. */
size_t bn_jstr_spell(const char *s, size_t n, char *out);
/* The canonical content spelling the string s[0..n) (valid UTF-8). */
bn_rxid bn_jstr_literal(bn_rx *rx, const char *s, size_t n);
/* Canonical content of every string except the n strings strs[i][0..lens[i])
 * (valid UTF-8, at most BN_JSTR_MAX_NAME bytes each, else BN_RX_ERROR): the
 * complement of their trie. */
#define BN_JSTR_MAX_NAME 4096
bn_rxid bn_jstr_not_in(bn_rx *rx, const bn_jstr_chars *ch, const char *const *strs, const size_t *lens, size_t n);

#endif
