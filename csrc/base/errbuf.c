#include "base/errbuf.h"

#include <stdarg.h>
#include <stdio.h>

/* Sets the message unless one is kept already; whether it did. */
static int set_message(bn_err *err, const char *fmt, va_list ap) {
    if (!err || err->msg[0]) return 0;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return 1;
}

int bn_errf(bn_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_message(err, fmt, ap);
    va_end(ap);
    return 0;
}

int bn_errf_input(bn_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (set_message(err, fmt, ap)) err->input = 1;
    va_end(ap);
    return 0;
}
