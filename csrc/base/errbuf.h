/* errbuf.h: a caller-owned buffer for human-readable error messages.
 * Loaders fill it and return failure; the Lua face turns it into nil, message. */
#ifndef BN_ERRBUF_H
#define BN_ERRBUF_H

#include <stddef.h>

typedef struct {
    char msg[512];
} bn_err;

/* printf-style; keeps the first message set (the root cause). Returns 0 so
 * callers can write `return bn_errf(err, ...)` from int-returning functions. */
int bn_errf(bn_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
