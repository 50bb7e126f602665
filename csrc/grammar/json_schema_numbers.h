/* json_schema_numbers.h: JSON number spellings within bounds, as regular
 * expressions, for the JSON Schema compiler (minimum, maximum, exclusive
 * forms, multipleOf).
 *
 * Bounds are exact decimals (the shortest decimal that reads back as the
 * schema's double), compared digit by digit, so the regexes are exact: an
 * integer range is the classic digit-interval construction, a decimal
 * range adds the fraction digits. Exponent forms (1e-05) are accepted when
 * no bound other than 0 is set; under other bounds only plain decimals. */
#ifndef BN_GRAMMAR_JSON_SCHEMA_NUMBERS_H
#define BN_GRAMMAR_JSON_SCHEMA_NUMBERS_H

#include <stdint.h>

#include "grammar/regex.h"

#define BN_JDEC_DIGITS 400 /* more than a double's longest exact decimal part */

/* An exact decimal: [-] ip . fp, ip without leading zeros ("0" for none),
 * fp without trailing zeros ("" for none); zero is never negative. */
typedef struct {
    int neg;
    char ip[BN_JDEC_DIGITS];
    char fp[BN_JDEC_DIGITS];
} bn_jdec;

/* A lower or upper bound. */
typedef struct {
    int set;       /* 0: unbounded */
    int exclusive; /* strict comparison */
    bn_jdec v;
} bn_jbound;

/* The shortest decimal reading back as d; 0 when d is not finite. */
int bn_jdec_from_double(double d, bn_jdec *out);
int bn_jdec_cmp(const bn_jdec *a, const bn_jdec *b);
int bn_jdec_is_integer(const bn_jdec *d);
/* Writes d in JSON spelling (at most 2 * BN_JDEC_DIGITS + 2 bytes). */
void bn_jdec_format(const bn_jdec *d, char *out);

/* Whether integers between lo and hi exist / numbers exist. */
int bn_jnum_int_nonempty(const bn_jbound *lo, const bn_jbound *hi);
/* Integer spellings -?(0|[1-9][0-9]*) whose value lies within the bounds
 * (either may be unset). */
bn_rxid bn_jnum_integers(bn_rx *rx, const bn_jbound *lo, const bn_jbound *hi);
/* Number spellings whose value lies within the bounds: every JSON number
 * when both are unset; with exponent forms when the set bounds are 0;
 * else plain decimals -?(0|[1-9][0-9]*)(\.[0-9]+)?. */
bn_rxid bn_jnum_numbers(bn_rx *rx, const bn_jbound *lo, const bn_jbound *hi);
/* Integer spellings of the multiples of m (>= 1) within the bounds: listed
 * when the bounds close a short interval, else by the automaton of the
 * residue mod m when m <= BN_JNUM_MAX_MODULUS and the set bounds are 0.
 * *ok = 0 (and BN_RX_ERROR) otherwise: the caller must refuse. */
#define BN_JNUM_MAX_MODULUS 64
bn_rxid bn_jnum_multiples(bn_rx *rx, uint32_t m, const bn_jbound *lo, const bn_jbound *hi, int *ok);

#endif
