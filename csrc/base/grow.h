/* grow.h: the growable array every builder needs: make room for `need`
 * elements of `size` bytes in *p (capacity *cap, doubled from 64). */
#ifndef BN_GROW_H
#define BN_GROW_H

#include <stdlib.h>

/* Returns 1, or 0 when out of memory (then *p and *cap are unchanged). */
static inline int bn_grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

#endif
