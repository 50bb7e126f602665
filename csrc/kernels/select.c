/* select.c: runtime choice of the kernel path. */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

const bn_kernels *bn_kernels_select(const char *force) {
    if (!force || !*force) force = getenv("BITNET_KERNEL");
    if (force && *force && strcmp(force, "auto") != 0) {
        if (strcmp(force, "ref") == 0) return &bn_kernels_ref;
        return NULL;
    }
    return &bn_kernels_ref;
}
