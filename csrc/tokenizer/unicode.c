/* unicode.c: UTF-8 decoding and code point classes (see unicode.h). */
#include "tokenizer/unicode.h"

int bn_uc_flags(uint32_t cp) {
    if (cp < 0x80) { /* the common case, without the table */
        if (cp - 'a' < 26) return BN_UC_LETTER | BN_UC_LOWER;
        if (cp - 'A' < 26) return BN_UC_LETTER | BN_UC_UPPER;
        if (cp - '0' < 10) return BN_UC_NUMBER;
        if (cp == ' ') return BN_UC_SEPARATOR | BN_UC_WHITESPACE;
        if (cp - 9 < 5) return BN_UC_OTHER | BN_UC_WHITESPACE;
    }
    if (cp > 0x10FFFF) return BN_UC_OTHER;
    size_t lo = 0, hi = bn_uc_n_ranges; /* the range holding cp is in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (bn_uc_ranges[mid].first <= cp) lo = mid;
        else hi = mid;
    }
    return bn_uc_ranges[lo].flags;
}

/* Sequence length announced by a lead byte, 0 if it cannot lead. */
static size_t lead_length(uint8_t b) {
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0;
}

/* Whether byte c may follow lead byte b at position 1 (the narrower second
 * byte ranges that exclude overlongs, surrogates and values > 0x10FFFF). */
static int second_ok(uint8_t b, uint8_t c) {
    switch (b) {
    case 0xE0: return c >= 0xA0 && c <= 0xBF;
    case 0xED: return c >= 0x80 && c <= 0x9F;
    case 0xF0: return c >= 0x90 && c <= 0xBF;
    case 0xF4: return c >= 0x80 && c <= 0x8F;
    default: return (c & 0xC0) == 0x80;
    }
}

size_t bn_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b = s[0];
    size_t len = lead_length(b);
    if (len == 1) {
        *cp = b;
        return 1;
    }
    if (len == 0 || n < len || !second_ok(b, s[1])) goto bad;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) goto bad;
    uint32_t v = b & (0x7F >> len);
    for (size_t i = 1; i < len; i++) v = (v << 6) | (s[i] & 0x3F);
    *cp = v;
    return len;
bad:
    *cp = BN_UC_BAD_BYTE + b;
    return 1;
}

size_t bn_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t bn_utf8_complete_prefix(const uint8_t *s, size_t n) {
    /* only the last 3 bytes can belong to an unfinished sequence */
    size_t start = n > 3 ? n - 3 : 0;
    for (size_t i = start; i < n; i++) {
        size_t len = lead_length(s[i]);
        if (len < 2 || i + len <= n) continue;
        /* s[i..n) is shorter than its lead byte announces: is it a valid start? */
        int ok = (i + 1 >= n) || second_ok(s[i], s[i + 1]);
        for (size_t k = i + 2; ok && k < n; k++) ok = (s[k] & 0xC0) == 0x80;
        if (ok) return i;
    }
    return n;
}
