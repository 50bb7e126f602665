/* json_schema_numbers.c: number spellings within bounds (json_schema_numbers.h).
 *
 * Everything works on decimal digit strings, never on doubles, so a bound
 * like 1e20 or 0.1 is compared exactly as written. */
#include "grammar/json_schema_numbers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- exact decimals ---- */

int bn_jdec_from_double(double d, bn_jdec *out) {
    if (!isfinite(d)) return 0;
    char buf[400];
    if (fabs(d) >= 9007199254740992.0) {
        /* integral: its exact value, so integers compare with it exactly as
         * validators compare an int with a float */
        snprintf(buf, sizeof buf, "%.0fe0", d);
    } else {
        /* the shortest %e form that reads back as d */
        for (int prec = 0; prec < 17; prec++) {
            snprintf(buf, sizeof buf, "%.*e", prec, d);
            if (strtod(buf, NULL) == d) break;
        }
    }
    memset(out, 0, sizeof *out);
    const char *p = buf;
    if (*p == '-') {
        out->neg = 1;
        p++;
    }
    char mant[400];
    size_t nm = 0;
    int dot = -1;
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') dot = (int)nm;
        else if (*p >= '0' && *p <= '9') mant[nm++] = *p;
    }
    int exp = *p == 'e' ? atoi(p + 1) : 0;
    /* value = mant[0..dot) . mant[dot..] * 10^exp */
    long point = (long)exp + (dot < 0 ? (long)nm : dot);
    size_t ni = 0, nf = 0;
    if (point <= 0) {
        out->ip[ni++] = '0';
        for (long i = 0; i < -point; i++) out->fp[nf++] = '0';
        for (size_t i = 0; i < nm; i++) out->fp[nf++] = mant[i];
    } else {
        for (long i = 0; i < point; i++) out->ip[ni++] = (size_t)i < nm ? mant[i] : '0';
        for (size_t i = (size_t)point; i < nm; i++) out->fp[nf++] = mant[i];
    }
    /* strip leading zeros of ip, trailing zeros of fp */
    size_t lead = 0;
    while (lead + 1 < ni && out->ip[lead] == '0') lead++;
    memmove(out->ip, out->ip + lead, ni - lead);
    ni -= lead;
    out->ip[ni] = 0;
    while (nf > 0 && out->fp[nf - 1] == '0') nf--;
    out->fp[nf] = 0;
    if (ni == 1 && out->ip[0] == '0' && nf == 0) out->neg = 0;
    return 1;
}

int bn_jdec_is_integer(const bn_jdec *d) { return d->fp[0] == 0; }

static int is_zero(const bn_jdec *d) { return d->ip[0] == '0' && d->ip[1] == 0 && d->fp[0] == 0; }

/* Compares non-negative digit strings without leading zeros. */
static int cmp_int_digits(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return la < lb ? -1 : 1;
    int c = strcmp(a, b);
    return (c > 0) - (c < 0);
}

/* Compares fraction digit strings (as 0.a and 0.b). */
static int cmp_frac_digits(const char *a, const char *b) {
    for (;; a++, b++) {
        char x = *a ? *a : '0', y = *b ? *b : '0';
        if (x != y) return x < y ? -1 : 1;
        if (!*a && !*b) return 0;
    }
}

static int cmp_abs(const bn_jdec *a, const bn_jdec *b) {
    int c = cmp_int_digits(a->ip, b->ip);
    return c ? c : cmp_frac_digits(a->fp, b->fp);
}

int bn_jdec_cmp(const bn_jdec *a, const bn_jdec *b) {
    if (a->neg != b->neg) return a->neg ? -1 : 1;
    int c = cmp_abs(a, b);
    return a->neg ? -c : c;
}

void bn_jdec_format(const bn_jdec *d, char *out) {
    size_t k = 0;
    if (d->neg) out[k++] = '-';
    size_t ni = strlen(d->ip), nf = strlen(d->fp);
    memcpy(out + k, d->ip, ni);
    k += ni;
    if (nf) {
        out[k++] = '.';
        memcpy(out + k, d->fp, nf);
        k += nf;
    }
    out[k] = 0;
}

/* Adds one to the non-negative digit string s in place (it may grow). */
static void digits_inc(char *s) {
    size_t n = strlen(s);
    for (size_t i = n; i-- > 0;) {
        if (s[i] != '9') {
            s[i]++;
            return;
        }
        s[i] = '0';
    }
    memmove(s + 1, s, n + 1);
    s[0] = '1';
}

/* Subtracts one from the positive digit string s in place. */
static void digits_dec(char *s) {
    size_t n = strlen(s);
    for (size_t i = n; i-- > 0;) {
        if (s[i] != '0') {
            s[i]--;
            break;
        }
        s[i] = '9';
    }
    if (n > 1 && s[0] == '0') memmove(s, s + 1, n);
}

/* d + 1 for an integer d. */
static void int_inc(bn_jdec *d) {
    if (!d->neg) digits_inc(d->ip);
    else {
        digits_dec(d->ip);
        if (strcmp(d->ip, "0") == 0) d->neg = 0;
    }
}

static void int_dec(bn_jdec *d) {
    if (d->neg) digits_inc(d->ip);
    else if (strcmp(d->ip, "0") == 0) {
        d->neg = 1;
        strcpy(d->ip, "1");
    } else digits_dec(d->ip);
}

/* The least integer within a lower bound / the greatest within an upper one. */
static void int_lower(const bn_jbound *b, bn_jdec *out) {
    *out = b->v;
    if (out->fp[0]) {
        out->fp[0] = 0; /* truncation toward zero */
        if (!out->neg) int_inc(out);
        else if (strcmp(out->ip, "0") == 0) out->neg = 0;
    } else if (b->exclusive) int_inc(out);
}

static void int_upper(const bn_jbound *b, bn_jdec *out) {
    *out = b->v;
    if (out->fp[0]) {
        out->fp[0] = 0;
        if (out->neg) int_dec(out);
        else if (strcmp(out->ip, "0") == 0) out->neg = 0;
    } else if (b->exclusive) int_dec(out);
}

int bn_jnum_int_nonempty(const bn_jbound *lo, const bn_jbound *hi) {
    if (!lo->set || !hi->set) return 1;
    bn_jdec a, b;
    int_lower(lo, &a);
    int_upper(hi, &b);
    return bn_jdec_cmp(&a, &b) <= 0;
}

/* ---- integer digit intervals ---- */

static bn_rxid digit_range(bn_rx *rx, int lo, int hi) {
    if (lo > hi) return bn_rx_nothing(rx);
    return bn_rx_byte_range(rx, (uint8_t)('0' + lo), (uint8_t)('0' + hi));
}

static int all_of(const char *s, size_t n, char c) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != c) return 0;
    return 1;
}

/* Strings of n digits (leading zeros allowed) between a and b inclusive. */
static bn_rxid same_length(bn_rx *rx, const char *a, const char *b, size_t n) {
    if (n == 0) return bn_rx_empty(rx);
    int a0 = a[0] - '0', b0 = b[0] - '0';
    if (a0 > b0) return bn_rx_nothing(rx);
    if (a0 == b0) return bn_rx_concat(rx, digit_range(rx, a0, a0), same_length(rx, a + 1, b + 1, n - 1));
    bn_rxid any = bn_rx_repeat(rx, digit_range(rx, 0, 9), (uint32_t)(n - 1), (uint32_t)(n - 1));
    if (all_of(a + 1, n - 1, '0') && all_of(b + 1, n - 1, '9')) return bn_rx_concat(rx, digit_range(rx, a0, b0), any);
    char nines[BN_JDEC_DIGITS], zeros[BN_JDEC_DIGITS];
    memset(nines, '9', n - 1);
    memset(zeros, '0', n - 1);
    bn_rxid alts[3] = {
        bn_rx_concat(rx, digit_range(rx, a0, a0), same_length(rx, a + 1, nines, n - 1)),
        bn_rx_concat(rx, digit_range(rx, a0 + 1, b0 - 1), any),
        bn_rx_concat(rx, digit_range(rx, b0, b0), same_length(rx, zeros, b + 1, n - 1)),
    };
    return bn_rx_alt_n(rx, alts, 3);
}

/* Spellings 0|[1-9][0-9]* of the integers lo..hi (digit strings; hi NULL:
 * unbounded). */
static bn_rxid int_range(bn_rx *rx, const char *lo_in, const char *hi) {
    if (hi && cmp_int_digits(lo_in, hi) > 0) return bn_rx_nothing(rx);
    char lo[BN_JDEC_DIGITS];
    strcpy(lo, lo_in);
    bn_rxid acc = bn_rx_nothing(rx);
    if (strcmp(lo, "0") == 0) {
        acc = bn_rx_literal(rx, "0", 1);
        if (hi && strcmp(hi, "0") == 0) return acc;
        strcpy(lo, "1");
    }
    size_t la = strlen(lo), lb = hi ? strlen(hi) : la;
    char a[BN_JDEC_DIGITS], b[BN_JDEC_DIGITS];
    for (size_t len = la; len <= lb; len++) {
        if (len == la) memcpy(a, lo, len);
        else {
            memset(a, '0', len);
            a[0] = '1';
        }
        if (hi && len == lb) memcpy(b, hi, len);
        else memset(b, '9', len);
        acc = bn_rx_alt(rx, acc, same_length(rx, a, b, len));
    }
    if (!hi) {
        bn_rxid longer = bn_rx_concat(rx, digit_range(rx, 1, 9), bn_rx_repeat(rx, digit_range(rx, 0, 9), (uint32_t)la, BN_RX_INF));
        acc = bn_rx_alt(rx, acc, longer);
    }
    return acc;
}

bn_rxid bn_jnum_integers(bn_rx *rx, const bn_jbound *lo, const bn_jbound *hi) {
    bn_jdec a, b;
    if (lo->set) int_lower(lo, &a);
    if (hi->set) int_upper(hi, &b);
    if (lo->set && hi->set && bn_jdec_cmp(&a, &b) > 0) return bn_rx_nothing(rx);
    bn_rxid acc = bn_rx_nothing(rx);
    /* non-negative values: max(a, 0) .. b */
    if (!hi->set || !b.neg) {
        const char *from = lo->set && !a.neg ? a.ip : "0";
        acc = bn_rx_alt(rx, acc, int_range(rx, from, hi->set ? b.ip : NULL));
    }
    /* negative values: "-" then |v| in max(1, -b) .. -a */
    if (!lo->set || a.neg) {
        const char *from = hi->set && b.neg ? b.ip : "1";
        bn_rxid neg = int_range(rx, from, lo->set ? a.ip : NULL);
        acc = bn_rx_alt(rx, acc, bn_rx_concat(rx, bn_rx_literal(rx, "-", 1), neg));
    }
    return acc;
}

/* ---- decimals ---- */

/* Digit strings t (empty allowed when allow_empty) with lo <= 0.t <= hi,
 * strict where the flags say; hi NULL: no upper bound. lo and hi have no
 * trailing zeros, so a non-empty one is above 0. Each step consumes a
 * digit of lo or hi, or ends in a closed form. */
static bn_rxid frac_digits(bn_rx *rx, const char *lo, int lo_ex, const char *hi, int hi_ex, int allow_empty) {
    bn_rxid digit = digit_range(rx, 0, 9);
    uint32_t min = allow_empty ? 0 : 1;
    if (!*lo && (!hi || !*hi)) {
        if (!hi) {
            if (!lo_ex) return bn_rx_repeat(rx, digit, min, BN_RX_INF);
            bn_rxid any = bn_rx_repeat(rx, digit, 0, BN_RX_INF); /* some digit is not 0 */
            return bn_rx_concat(rx, any, bn_rx_concat(rx, digit_range(rx, 1, 9), any));
        }
        if (lo_ex || hi_ex) return bn_rx_nothing(rx); /* exactly 0, excluded */
        return bn_rx_repeat(rx, bn_rx_literal(rx, "0", 1), min, BN_RX_INF);
    }
    bn_rxid acc = bn_rx_nothing(rx);
    if (allow_empty && !*lo && !lo_ex && (!hi || *hi)) acc = bn_rx_empty(rx); /* 0.t = 0 fits */
    int l0 = *lo ? *lo - '0' : 0, h0 = hi ? (*hi ? *hi - '0' : 0) : 10;
    const char *lrest = *lo ? lo + 1 : lo, *hrest = hi ? (*hi ? hi + 1 : hi) : NULL;
    if (l0 > h0) return acc;
    if (l0 == h0)
        return bn_rx_alt(rx, acc, bn_rx_concat(rx, digit_range(rx, l0, l0), frac_digits(rx, lrest, lo_ex, hrest, hi_ex, 1)));
    bn_rxid alts[4] = {
        acc,
        bn_rx_concat(rx, digit_range(rx, l0 + 1, h0 - 1), bn_rx_repeat(rx, digit, 0, BN_RX_INF)),
        bn_rx_concat(rx, digit_range(rx, l0, l0), frac_digits(rx, lrest, lo_ex, NULL, 0, 1)),
        h0 <= 9 ? bn_rx_concat(rx, digit_range(rx, h0, h0), frac_digits(rx, "", 0, hrest, hi_ex, 1)) : bn_rx_nothing(rx),
    };
    return bn_rx_alt_n(rx, alts, 4);
}

/* The optional fraction (\.[0-9]+)? with lo <= 0.t <= hi. */
static bn_rxid fraction(bn_rx *rx, const char *lo, int lo_ex, const char *hi, int hi_ex) {
    bn_rxid zero_fits = !*lo && !lo_ex && (!hi || *hi || !hi_ex) ? bn_rx_empty(rx) : bn_rx_nothing(rx);
    bn_rxid dotted = bn_rx_concat(rx, bn_rx_literal(rx, ".", 1), frac_digits(rx, lo, lo_ex, hi, hi_ex, 0));
    return bn_rx_alt(rx, zero_fits, dotted);
}

/* Plain decimals I(\.F)? with lo <= value <= hi (both >= 0; hi NULL:
 * unbounded). */
static bn_rxid nonneg_decimals(bn_rx *rx, const bn_jdec *lo, int lo_ex, const bn_jdec *hi, int hi_ex) {
    if (hi) {
        int c = cmp_abs(lo, hi);
        if (c > 0 || (c == 0 && (lo_ex || hi_ex))) return bn_rx_nothing(rx);
        if (strcmp(lo->ip, hi->ip) == 0)
            return bn_rx_concat(rx, bn_rx_literal(rx, lo->ip, strlen(lo->ip)), fraction(rx, lo->fp, lo_ex, hi->fp, hi_ex));
    }
    bn_rxid alts[3];
    alts[0] = bn_rx_concat(rx, bn_rx_literal(rx, lo->ip, strlen(lo->ip)), fraction(rx, lo->fp, lo_ex, NULL, 0));
    char from[BN_JDEC_DIGITS + 1], to[BN_JDEC_DIGITS + 1];
    strcpy(from, lo->ip);
    digits_inc(from);
    alts[1] = bn_rx_nothing(rx);
    alts[2] = bn_rx_nothing(rx);
    if (hi) {
        strcpy(to, hi->ip);
        if (strcmp(to, "0") != 0) {
            digits_dec(to);
            alts[1] = bn_rx_concat(rx, int_range(rx, from, to), fraction(rx, "", 0, NULL, 0));
        }
        alts[2] = bn_rx_concat(rx, bn_rx_literal(rx, hi->ip, strlen(hi->ip)), fraction(rx, "", 0, hi->fp, hi_ex));
    } else {
        alts[1] = bn_rx_concat(rx, int_range(rx, from, NULL), fraction(rx, "", 0, NULL, 0));
    }
    return bn_rx_alt_n(rx, alts, 3);
}

static const bn_jdec dec_zero = {0, "0", ""};

/* Which signs (positive, zero, negative) the bounds let through. */
static void signs(const bn_jbound *lo, const bn_jbound *hi, int *pos, int *zero, int *neg) {
    int lo_c = lo->set ? bn_jdec_cmp(&lo->v, &dec_zero) : -1; /* sign of lo */
    int hi_c = hi->set ? bn_jdec_cmp(&hi->v, &dec_zero) : 1;
    *pos = hi_c > 0;
    *neg = lo_c < 0;
    *zero = (lo_c < 0 || (lo_c == 0 && !lo->exclusive)) && (hi_c > 0 || (hi_c == 0 && !hi->exclusive));
}

static int sign_only(const bn_jbound *b) { return !b->set || is_zero(&b->v); }

/* Positive / zero mantissas I(\.F)? and the optional exponent. */
static bn_rxid mantissa(bn_rx *rx, int nonzero) {
    bn_rxid digit = digit_range(rx, 0, 9), digits = bn_rx_repeat(rx, digit, 0, BN_RX_INF);
    bn_rxid zero_frac = bn_rx_optional(rx, bn_rx_concat(rx, bn_rx_literal(rx, ".", 1), bn_rx_repeat(rx, bn_rx_literal(rx, "0", 1), 1, BN_RX_INF)));
    if (!nonzero) return bn_rx_concat(rx, bn_rx_literal(rx, "0", 1), zero_frac);
    bn_rxid frac = bn_rx_optional(rx, bn_rx_concat(rx, bn_rx_literal(rx, ".", 1), bn_rx_repeat(rx, digit, 1, BN_RX_INF)));
    bn_rxid big = bn_rx_concat(rx, digit_range(rx, 1, 9), bn_rx_concat(rx, digits, frac));
    bn_rxid small = bn_rx_concat_n(rx, (bn_rxid[]){bn_rx_literal(rx, "0.", 2), digits, digit_range(rx, 1, 9), digits}, 4);
    return bn_rx_alt(rx, big, small);
}

static bn_rxid exponent(bn_rx *rx) {
    uint64_t e[4] = {0}, s[4] = {0};
    e['e' >> 6] |= 1ull << ('e' & 63);
    e['E' >> 6] |= 1ull << ('E' & 63);
    s['+' >> 6] |= 1ull << ('+' & 63);
    s['-' >> 6] |= 1ull << ('-' & 63);
    bn_rxid parts[3] = {bn_rx_byteset(rx, e), bn_rx_optional(rx, bn_rx_byteset(rx, s)),
                        bn_rx_repeat(rx, digit_range(rx, 0, 9), 1, BN_RX_INF)};
    return bn_rx_optional(rx, bn_rx_concat_n(rx, parts, 3));
}

/* Numbers of the allowed signs, any spelling. */
static bn_rxid signed_numbers(bn_rx *rx, int pos, int zero, int neg) {
    bn_rxid minus = bn_rx_literal(rx, "-", 1), exp = exponent(rx);
    bn_rxid alts[3] = {bn_rx_nothing(rx), bn_rx_nothing(rx), bn_rx_nothing(rx)};
    if (pos) alts[0] = mantissa(rx, 1);
    if (neg) alts[1] = bn_rx_concat(rx, minus, mantissa(rx, 1));
    if (zero) alts[2] = bn_rx_concat(rx, bn_rx_optional(rx, minus), mantissa(rx, 0));
    return bn_rx_concat(rx, bn_rx_alt_n(rx, alts, 3), exp);
}

bn_rxid bn_jnum_numbers(bn_rx *rx, const bn_jbound *lo, const bn_jbound *hi) {
    int pos, zero, neg;
    signs(lo, hi, &pos, &zero, &neg);
    if (sign_only(lo) && sign_only(hi)) return signed_numbers(rx, pos, zero, neg);
    if (lo->set && hi->set) {
        int c = bn_jdec_cmp(&lo->v, &hi->v);
        if (c > 0 || (c == 0 && (lo->exclusive || hi->exclusive))) return bn_rx_nothing(rx);
    }
    bn_rxid acc = bn_rx_nothing(rx);
    /* spellings without '-': values max(lo, 0) .. hi */
    if (pos || zero) {
        const bn_jdec *from = lo->set && !lo->v.neg ? &lo->v : &dec_zero;
        int from_ex = lo->set && !lo->v.neg ? lo->exclusive : 0;
        acc = nonneg_decimals(rx, from, from_ex, hi->set ? &hi->v : NULL, hi->exclusive);
    }
    /* spellings with '-': |value| in max(-hi, 0) .. -lo (-0 when 0 fits) */
    if (neg || zero) {
        bn_jdec from = dec_zero, to;
        int from_ex = 0;
        if (hi->set && (hi->v.neg || is_zero(&hi->v))) {
            from = hi->v;
            from.neg = 0;
            from_ex = hi->exclusive;
        }
        if (lo->set) {
            to = lo->v;
            to.neg = 0;
        }
        if (!lo->set || lo->v.neg || is_zero(&lo->v)) {
            bn_rxid abs = nonneg_decimals(rx, &from, from_ex, lo->set ? &to : NULL, lo->exclusive);
            acc = bn_rx_alt(rx, acc, bn_rx_concat(rx, bn_rx_literal(rx, "-", 1), abs));
        }
    }
    return acc;
}

/* ---- multiples ---- */

/* The integer d as int64 when it has at most 17 digits. */
static int small_int(const bn_jdec *d, long long *out) {
    if (strlen(d->ip) > 17) return 0;
    long long v = atoll(d->ip);
    *out = d->neg ? -v : v;
    return 1;
}

/* Multiples of m in a short closed interval, listed. */
static bn_rxid listed_multiples(bn_rx *rx, uint32_t m, long long a, long long b) {
    long long first = a % (long long)m == 0 ? a : a + ((long long)m - ((a % (long long)m) + (long long)m) % (long long)m);
    bn_rxid acc = bn_rx_nothing(rx);
    for (long long v = first; v <= b; v += (long long)m) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%lld", v);
        acc = bn_rx_alt(rx, acc, bn_rx_literal(rx, buf, (size_t)n));
    }
    return acc;
}

#define MAX_LISTED_MULTIPLES 4096

bn_rxid bn_jnum_multiples(bn_rx *rx, uint32_t m, const bn_jbound *lo, const bn_jbound *hi, int *ok) {
    *ok = 0;
    if (m < 1) return BN_RX_ERROR;
    if (lo->set && hi->set) {
        bn_jdec a, b;
        long long x, y;
        int_lower(lo, &a);
        int_upper(hi, &b);
        if (small_int(&a, &x) && small_int(&b, &y) && (x > y || (y - x) / (long long)m <= MAX_LISTED_MULTIPLES)) {
            *ok = 1;
            return x > y ? bn_rx_nothing(rx) : listed_multiples(rx, m, x, y);
        }
    }
    *ok = sign_only(lo) && sign_only(hi) && m <= BN_JNUM_MAX_MODULUS;
    if (!*ok) return BN_RX_ERROR;
    int pos, zero, neg;
    signs(lo, hi, &pos, &zero, &neg);
    bn_rxid nonzero;
    if (m == 1) {
        nonzero = bn_rx_concat(rx, digit_range(rx, 1, 9), bn_rx_repeat(rx, digit_range(rx, 0, 9), 0, BN_RX_INF));
    } else {
        /* a first digit d in 1..9 leads to state d mod m; then paths to 0.
         * Computing paths from every state: eliminate with a fresh start. */
        size_t n = (size_t)m + 2; /* states, S = m, F = m + 1 */
        bn_rxid *r = malloc(n * n * sizeof *r);
        if (!r) return BN_RX_ERROR;
        bn_rxid nothing = bn_rx_nothing(rx);
        for (size_t i = 0; i < n * n; i++) r[i] = nothing;
        for (uint32_t s = 0; s < m; s++)
            for (int d = 0; d < 10; d++) {
                size_t t = ((size_t)s * 10 + (size_t)d) % m;
                r[s * n + t] = bn_rx_alt(rx, r[s * n + t], digit_range(rx, d, d));
            }
        for (int d = 1; d < 10; d++) {
            size_t t = (size_t)d % m;
            r[m * n + t] = bn_rx_alt(rx, r[m * n + t], digit_range(rx, d, d));
        }
        r[0 * n + m + 1] = bn_rx_empty(rx);
        for (size_t k = 0; k < m && !bn_rx_failed(rx); k++) {
            bn_rxid loop = bn_rx_repeat(rx, r[k * n + k], 0, BN_RX_INF);
            for (size_t i = 0; i < n; i++) {
                if (i == k || bn_rx_kind_of(rx, r[i * n + k]) == BN_RX_NOTHING) continue;
                bn_rxid head = bn_rx_concat(rx, r[i * n + k], loop);
                for (size_t j = 0; j < n; j++) {
                    if (j == k || bn_rx_kind_of(rx, r[k * n + j]) == BN_RX_NOTHING) continue;
                    r[i * n + j] = bn_rx_alt(rx, r[i * n + j], bn_rx_concat(rx, head, r[k * n + j]));
                }
            }
            for (size_t i = 0; i < n; i++) r[i * n + k] = r[k * n + i] = nothing;
        }
        nonzero = r[m * n + m + 1];
        free(r);
    }
    bn_rxid minus = bn_rx_literal(rx, "-", 1);
    bn_rxid alts[3] = {pos ? nonzero : bn_rx_nothing(rx), neg ? bn_rx_concat(rx, minus, nonzero) : bn_rx_nothing(rx),
                       zero ? bn_rx_literal(rx, "0", 1) : bn_rx_nothing(rx)};
    return bn_rx_alt_n(rx, alts, 3);
}
