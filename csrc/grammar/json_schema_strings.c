/* json_schema_strings.c: JSON string content as regular expressions (any
 * spelling, canonical spelling, literals, and the complement of a set of
 * strings for the keys an object may add to its listed ones). */
#include "grammar/json_schema_strings.h"

#include <stdlib.h>
#include <string.h>

bn_rxid bn_jstr_any(bn_rx *rx) {
    /* raw code points: all but controls, '"' and '\' */
    static const uint32_t raw[3][2] = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}};
    bn_rxid hex = bn_rx_alt(rx, bn_rx_byte_range(rx, '0', '9'),
                            bn_rx_alt(rx, bn_rx_byte_range(rx, 'a', 'f'), bn_rx_byte_range(rx, 'A', 'F')));
    uint64_t simple[4] = {0, 0, 0, 0};
    for (const char *p = "\"\\/bfnrt"; *p; p++) simple[(uint8_t)*p >> 6] |= 1ull << ((uint8_t)*p & 63);
    bn_rxid esc_tail = bn_rx_alt(rx, bn_rx_byteset(rx, simple),
                                 bn_rx_concat(rx, bn_rx_literal(rx, "u", 1), bn_rx_repeat(rx, hex, 4, 4)));
    bn_rxid one = bn_rx_alt(rx, bn_rx_cp_class(rx, raw, 3, 0), bn_rx_concat(rx, bn_rx_literal(rx, "\\", 1), esc_tail));
    return bn_rx_repeat(rx, one, 0, BN_RX_INF);
}

int bn_jstr_chars_init(bn_rx *rx, bn_jstr_chars *ch) {
    /* the language of bn_rx_json_cp_class over every code point, built
     * directly: raw code points, then the escapes \" \\ \b \f \n \r \t and
     * \u00XX for the other controls (hex digits in either case) */
    static const uint32_t raw[3][2] = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}};
    static const uint32_t high[1][2] = {{0x80, 0x10FFFF}};
    uint64_t named[4] = {0, 0, 0, 0}, low[4] = {0, 0, 0, 0}, hex[4] = {0, 0, 0, 0};
    for (const char *p = "\"\\bfnrt"; *p; p++) named[(uint8_t)*p >> 6] |= 1ull << ((uint8_t)*p & 63);
    for (const char *p = "01234567bBeEfF"; *p; p++) low[(uint8_t)*p >> 6] |= 1ull << ((uint8_t)*p & 63);
    for (const char *p = "0123456789abcdefABCDEF"; *p; p++) hex[(uint8_t)*p >> 6] |= 1ull << ((uint8_t)*p & 63);
    bn_rxid controls = bn_rx_alt(rx, bn_rx_concat(rx, bn_rx_literal(rx, "0", 1), bn_rx_byteset(rx, low)),
                                 bn_rx_concat(rx, bn_rx_literal(rx, "1", 1), bn_rx_byteset(rx, hex)));
    bn_rxid tail = bn_rx_alt(rx, bn_rx_byteset(rx, named), bn_rx_concat(rx, bn_rx_literal(rx, "u00", 3), controls));
    ch->escaped = bn_rx_concat(rx, bn_rx_literal(rx, "\\", 1), tail);
    ch->any = bn_rx_alt(rx, bn_rx_cp_class(rx, raw, 3, 0), ch->escaped);
    ch->non_ascii = bn_rx_cp_class(rx, high, 1, 0);
    return ch->any != BN_RX_ERROR && ch->non_ascii != BN_RX_ERROR;
}

bn_rxid bn_jstr_length(bn_rx *rx, const bn_jstr_chars *ch, uint32_t min, uint32_t max) {
    return bn_rx_repeat(rx, ch->any, min, max);
}

bn_rxid bn_jstr_quoted(bn_rx *rx, bn_rxid content) {
    bn_rxid q = bn_rx_literal(rx, "\"", 1);
    return bn_rx_concat(rx, q, bn_rx_concat(rx, content, q));
}

/* Decodes one strictly valid UTF-8 character at s[0..n); its length, or 0. */
static size_t utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0;
    if (len == 0 || len > n || b > 0xF4) return 0;
    uint32_t c = b & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_of_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_of_len[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

long bn_jstr_utf8_count(const char *s, size_t n) {
    long count = 0;
    for (size_t i = 0; i < n; count++) {
        uint32_t cp;
        size_t len = utf8_next((const uint8_t *)s + i, n - i, &cp);
        if (!len) return -1;
        i += len;
    }
    return count;
}

size_t bn_jstr_spell(const char *s, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        const char *named = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
        if (named) {
            out[k++] = named[0];
            out[k++] = named[1];
        } else if (c < 0x20) {
            memcpy(out + k, "\\u00", 4);
            out[k + 4] = hex[c >> 4];
            out[k + 5] = hex[c & 15];
            k += 6;
        } else {
            out[k++] = (char)c;
        }
    }
    return k;
}

bn_rxid bn_jstr_literal(bn_rx *rx, const char *s, size_t n) {
    char *buf = malloc(6 * n + 1);
    if (!buf) return BN_RX_ERROR;
    size_t k = bn_jstr_spell(s, n, buf);
    bn_rxid r = bn_rx_literal(rx, buf, k);
    free(buf);
    return r;
}

/* ---- the complement of a finite set of strings ---- */

typedef struct {
    const char *s;
    size_t n;
} str_ref;

static int cmp_str(const void *a, const void *b) {
    const str_ref *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    if (c) return c;
    return (x->n > y->n) - (x->n < y->n);
}

/* The canonical spelling of one code point (its UTF-8 bytes when plain). */
static bn_rxid spell_cp(bn_rx *rx, const char *utf8, size_t len) {
    char buf[8];
    size_t k = bn_jstr_spell(utf8, len, buf);
    return bn_rx_literal(rx, buf, k);
}

/* One code point (canonically spelled) outside the n code points cps: a
 * byte set when they are all plain ASCII (property names mostly are). */
static bn_rxid other_char(bn_rx *rx, const uint32_t (*cps)[2], size_t n, const bn_jstr_chars *ch) {
    uint64_t set[4] = {0, 0, 0, 0};
    for (uint32_t b = 0x20; b < 0x80; b++)
        if (b != '"' && b != '\\') set[b >> 6] |= 1ull << (b & 63);
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = cps[i][0];
        if (cp < 0x20 || cp >= 0x80 || cp == '"' || cp == '\\') return bn_rx_json_cp_class(rx, cps, n, 1);
        set[cp >> 6] &= ~(1ull << (cp & 63));
    }
    bn_rxid alts[3] = {bn_rx_byteset(rx, set), ch->non_ascii, ch->escaped};
    return bn_rx_alt_n(rx, alts, 3);
}

/* Strings v[lo..hi) (sorted, distinct) share their first off bytes; the
 * contents whose first off bytes are that prefix and whose rest is none
 * of the strings' rests. UTF-8 order is code point order, so the strings
 * that continue with one code point are adjacent. */
static bn_rxid not_in_range(bn_rx *rx, const str_ref *v, size_t lo, size_t hi, size_t off, const bn_jstr_chars *ch) {
    bn_rxid *alts = malloc((hi - lo + 2) * sizeof *alts);
    uint32_t(*cps)[2] = malloc((hi - lo + 1) * sizeof *cps);
    if (!alts || !cps) {
        free(alts);
        free(cps);
        return BN_RX_ERROR;
    }
    size_t na = 0, nc = 0, i = lo;
    if (v[i].n == off) i++; /* one string ends here: "" is excluded */
    else alts[na++] = bn_rx_empty(rx);
    while (i < hi) {
        uint32_t cp = 0;
        size_t len = utf8_next((const uint8_t *)v[i].s + off, v[i].n - off, &cp);
        if (!len) {
            free(alts);
            free(cps);
            return BN_RX_ERROR;
        }
        size_t j = i + 1;
        while (j < hi && v[j].n >= off + len && memcmp(v[j].s + off, v[i].s + off, len) == 0) j++;
        cps[nc][0] = cps[nc][1] = cp;
        nc++;
        alts[na++] = bn_rx_concat(rx, spell_cp(rx, v[i].s + off, len), not_in_range(rx, v, i, j, off + len, ch));
        i = j;
    }
    /* a code point that leaves the trie, then anything */
    alts[na++] = bn_rx_concat(rx, other_char(rx, (const uint32_t(*)[2])cps, nc, ch), bn_rx_repeat(rx, ch->any, 0, BN_RX_INF));
    bn_rxid r = bn_rx_alt_n(rx, alts, na);
    free(alts);
    free(cps);
    return r;
}

bn_rxid bn_jstr_not_in(bn_rx *rx, const bn_jstr_chars *ch, const char *const *strs, const size_t *lens, size_t n) {
    if (n == 0) return bn_rx_repeat(rx, ch->any, 0, BN_RX_INF);
    for (size_t i = 0; i < n; i++)
        if (lens[i] > BN_JSTR_MAX_NAME) return BN_RX_ERROR; /* the trie walk recurses once per character */
    str_ref *v = malloc(n * sizeof *v);
    if (!v) return BN_RX_ERROR;
    for (size_t i = 0; i < n; i++) v[i] = (str_ref){strs[i], lens[i]};
    qsort(v, n, sizeof *v, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || cmp_str(&v[u - 1], &v[i]) != 0) v[u++] = v[i];
    bn_rxid r = not_in_range(rx, v, 0, u, 0, ch);
    free(v);
    return r;
}
