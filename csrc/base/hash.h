/* hash.h: spreading a 64-bit key over every bit, for the open-addressing
 * tables of the grammar engine. Their keys pack small fields (an id above
 * a byte or an origin); a plain multiply leaves the low bits of the product
 * blind to the high fields, so keys that differ only there collide. */
#ifndef BN_HASH_H
#define BN_HASH_H

#include <stdint.h>

/* SplitMix64's finalizer: every output bit depends on every input bit. */
static inline uint64_t bn_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

#endif
