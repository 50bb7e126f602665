/* json_schema_formats.c: the formats as ECMA patterns, compiled by
 * ecma_regex.c (json_schema_formats.h). Every pattern is ASCII: its
 * canonical spelling is its text. */
#include "grammar/json_schema_formats.h"

#include <string.h>

#include "base/errbuf.h"
#include "grammar/ecma_regex.h"

/* RFC 3339 (full-date, full-time), with month lengths and leap years as
 * Python's date and rfc3339-validator check them; no leap second, year 0
 * refused, 'T' and 'Z' upper case. */
#define YEAR "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
#define LEAP_YEAR "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
#define MONTH_DAY \
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
#define DATE "(?:" YEAR "-" MONTH_DAY "|" LEAP_YEAR "-02-29)"
#define HOUR "(?:[01][0-9]|2[0-3])"
#define TIME HOUR ":[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?(?:Z|[+-]" HOUR ":[0-5][0-9])"

#define OCTET "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
#define IPV4 "(?:" OCTET "\\.){3}" OCTET
#define H16 "[0-9A-Fa-f]{1,4}"
#define LS32 "(?:" H16 ":" H16 "|" IPV4 ")"
#define IPV6                                                                                                        \
    "(?:(?:" H16 ":){6}" LS32 "|::(?:" H16 ":){5}" LS32 "|(?:" H16 ")?::(?:" H16 ":){4}" LS32 "|(?:(?:" H16       \
    ":){0,1}" H16 ")?::(?:" H16 ":){3}" LS32 "|(?:(?:" H16 ":){0,2}" H16 ")?::(?:" H16 ":){2}" LS32 "|(?:(?:" H16 \
    ":){0,3}" H16 ")?::" H16 ":" LS32 "|(?:(?:" H16 ":){0,4}" H16 ")?::" LS32 "|(?:(?:" H16 ":){0,5}" H16         \
    ")?::" H16 "|(?:(?:" H16 ":){0,6}" H16 ")?::)"

/* Host names: labels of letters, digits and inner hyphens, the last one
 * starting with a letter; the 253-character limit kept by three shapes
 * (up to 4 labels of 62, 8 of 30, 16 of 14 characters). */
#define LABEL(n) "[A-Za-z0-9](?:[A-Za-z0-9-]{0," #n "}[A-Za-z0-9])?"
#define TOP_LABEL(n) "[A-Za-z](?:[A-Za-z0-9-]{0," #n "}[A-Za-z0-9])?"
#define HOSTNAME                                                                                      \
    "(?:(?:" LABEL(60) "\\.){0,3}" TOP_LABEL(60) "|(?:" LABEL(28) "\\.){4,7}" TOP_LABEL(28) "|(?:" \
    LABEL(12) "\\.){8,15}" TOP_LABEL(12) ")"

#define ATEXT "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
#define EMAIL ATEXT "+(?:\\." ATEXT "+)*@(?:" LABEL(61) "\\.)+[A-Za-z]{2,63}"

/* RFC 3986 */
#define PCT "%[0-9A-Fa-f]{2}"
#define UNRESERVED "A-Za-z0-9\\-._~"
#define SUB_DELIMS "!$&'()*+,;="
#define PCHAR "(?:[" UNRESERVED SUB_DELIMS ":@]|" PCT ")"
#define SCHEME "[A-Za-z][A-Za-z0-9+.\\-]*"
#define USERINFO "(?:[" UNRESERVED SUB_DELIMS ":]|" PCT ")*"
#define REG_NAME "(?:[" UNRESERVED SUB_DELIMS "]|" PCT ")*"
#define IP_LITERAL "\\[(?:" IPV6 "|v[0-9A-Fa-f]+\\.[" UNRESERVED SUB_DELIMS ":]+)\\]"
#define AUTHORITY "(?:" USERINFO "@)?(?:" IP_LITERAL "|" REG_NAME ")(?::[0-9]*)?"
#define PATH_ABEMPTY "(?:/" PCHAR "*)*"
#define SEGMENT_NZ_NC "(?:[" UNRESERVED SUB_DELIMS "@]|" PCT ")+"
#define QUERY_FRAGMENT "(?:\\?(?:" PCHAR "|[/?])*)?(?:#(?:" PCHAR "|[/?])*)?"
#define HIER_PART "(?://" AUTHORITY PATH_ABEMPTY "|/(?:" PCHAR "+" PATH_ABEMPTY ")?|" PCHAR "+" PATH_ABEMPTY ")?"
#define URI SCHEME ":" HIER_PART QUERY_FRAGMENT
#define RELATIVE_REF \
    "(?://" AUTHORITY PATH_ABEMPTY "|/(?:" PCHAR "+" PATH_ABEMPTY ")?|" SEGMENT_NZ_NC PATH_ABEMPTY ")?" QUERY_FRAGMENT

#define JSON_POINTER "(?:/(?:[^~/]|~[01])*)*"
#define DIGITS "[0-9]+"
#define DUR_TIME "T(?:" DIGITS "H(?:" DIGITS "M(?:" DIGITS "S)?)?|" DIGITS "M(?:" DIGITS "S)?|" DIGITS "S)"
#define DURATION                                                                                              \
    "P(?:(?:" DIGITS "D|" DIGITS "M(?:" DIGITS "D)?|" DIGITS "Y(?:" DIGITS "M(?:" DIGITS "D)?)?)(?:" DUR_TIME \
    ")?|" DUR_TIME "|" DIGITS "W)"

typedef struct {
    const char *name;
    const char *pattern;
} format;

static const format formats[] = {
    {"date-time", DATE "T" TIME},
    {"date", DATE},
    {"time", TIME},
    {"email", EMAIL},
    {"idn-email", EMAIL},
    {"hostname", HOSTNAME},
    {"idn-hostname", HOSTNAME},
    {"ipv4", IPV4},
    {"ipv6", IPV6},
    {"uri", URI},
    {"iri", URI},
    {"uri-reference", "(?:" URI "|" RELATIVE_REF ")"},
    {"iri-reference", "(?:" URI "|" RELATIVE_REF ")"},
    {"uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"},
    {"json-pointer", JSON_POINTER},
    {"relative-json-pointer", "(?:0|[1-9][0-9]*)(?:#|" JSON_POINTER ")"},
    {"duration", DURATION},
    /* not regular: strings without the characters that can break a regex */
    {"regex", "[^()\\[\\]{}*+?\\\\|]*"},
    /* literals and simple {var,...} expressions */
    {"uri-template", "(?:[A-Za-z0-9\\-._~:/?#\\[\\]@!$&()*+,;=]|" PCT "|\\{[+#./;?&]?[A-Za-z0-9_]+(?:,[A-Za-z0-9_]+)*\\})*"},
};

static const format *find(const char *name) {
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
        if (strcmp(formats[i].name, name) == 0) return &formats[i];
    return NULL;
}

int bn_jfmt_known(const char *name) { return find(name) != NULL; }

bn_rxid bn_jfmt_regex(bn_rx *rx, const char *name) {
    const format *f = find(name);
    if (!f) return BN_RX_ERROR;
    bn_rxid out = BN_RX_ERROR;
    bn_err err = {0};
    if (!bn_ecma_regex(rx, f->pattern, strlen(f->pattern), BN_ECMA_FULLMATCH, BN_ECMA_JSON_STRING, 0, &out, &err))
        return BN_RX_ERROR;
    return out;
}
