/* json_schema_formats.h: JSON Schema's `format` values as regular
 * expressions over string content, for the formats validators check.
 *
 * Each regex is the format's own grammar (RFC 3339 dates with real month
 * lengths and leap years, RFC 3986 URIs, RFC 4291 IPv6, ...) or, where a
 * format is not regular or a validator's reading is unclear, a part of it
 * every validator accepts (a hostname of at most 253 characters is
 * approximated by label counts and lengths that stay under it; `regex`
 * by strings without regex metacharacters that could break one). Never
 * more than the format allows: a grammar must not accept what a
 * validator rejects. */
#ifndef BN_GRAMMAR_JSON_SCHEMA_FORMATS_H
#define BN_GRAMMAR_JSON_SCHEMA_FORMATS_H

#include "grammar/regex.h"

/* Whether format name is one this compiler enforces (others are
 * annotations it ignores). */
int bn_jfmt_known(const char *name);
/* The content regex (canonical spelling) of format name;
 * BN_RX_ERROR when unknown or the arena is spent. */
bn_rxid bn_jfmt_regex(bn_rx *rx, const char *name);

#endif
