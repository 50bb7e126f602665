#include "base/errbuf.h"

#include <stdarg.h>
#include <stdio.h>

int bn_errf(bn_err *err, const char *fmt, ...) {
    if (!err || err->msg[0]) return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return 0;
}

int bn_errf_input(bn_err *err, const char *fmt, ...) {
    if (!err || err->msg[0]) return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->input = 1;
    return 0;
}
