/* errbuf.h: a caller-owned buffer for human-readable error messages.
 * Loaders fill it and return failure; the Lua face turns it into nil, message. */
#ifndef BN_ERRBUF_H
#define BN_ERRBUF_H

#include <stddef.h>

typedef struct {
    char msg[512];
    /* the message says what is wrong with the caller's input (a grammar
     * past its budget, options that leave no token), not that the library
     * failed (out of memory): hosts answer the first as a bad request */
    int input;
} bn_err;

/* printf-style; keeps the first message set (the root cause). Returns 0 so
 * callers can write `return bn_errf(err, ...)` from int-returning functions. */
int bn_errf(bn_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* bn_errf for a message about the caller's input: marks err->input when
 * this message is the one kept. */
int bn_errf_input(bn_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
