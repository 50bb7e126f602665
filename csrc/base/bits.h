/* bits.h: counting set bits without -mpopcnt (the library is built for any
 * x86-64 or ARM): a SWAR count the compiler turns into a few instructions. */
#ifndef BN_BITS_H
#define BN_BITS_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t bn_popcount32(uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    return (((x + (x >> 4)) & 0x0F0F0F0Fu) * 0x01010101u) >> 24;
}

/* The set bits of bits[0..words). */
static inline size_t bn_popcount_words(const uint32_t *bits, size_t words) {
    size_t c = 0;
    for (size_t w = 0; w < words; w++) c += bn_popcount32(bits[w]);
    return c;
}

#endif
