/* kernels.h: the ternary x int8 kernels behind one table of function
 * pointers, chosen once at load. The portable C path (ref.c) is the
 * definition of correct; every other path must give identical integers. */
#ifndef BN_KERNELS_H
#define BN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct bn_kernels {
    const char *name;
    /* out[r] = sum over the row's nblocks*128 elements of (code - 1) * q[e],
     * for rows 0..nrows-1 starting at w (rows row_bytes apart). q holds
     * nblocks*128 int8 values (zero past the real row length). */
    void (*ternary_dot_rows)(const uint8_t *w, size_t row_bytes, int nblocks, const int8_t *q,
                             int64_t nrows, int32_t *out);
    /* sum of a[i]*b[i], accumulated in the order the path chooses */
    float (*dot_f32)(const float *a, const float *b, int64_t n);
} bn_kernels;

extern const bn_kernels bn_kernels_ref;

/* Picks the best path for this CPU, or the one named by `force` (a load
 * option or the BITNET_KERNEL environment variable); NULL if no such path. */
const bn_kernels *bn_kernels_select(const char *force);

/* Per-token absmax int8 quantization, the BitNet b1.58 definition:
 * s = 127 / max(max|x|, 1e-5), q = clamp(round_half_even(x*s), -128, 127).
 * Writes n values and zero-pads q up to npad; returns s. */
float bn_quantize_act(const float *x, int64_t n, int8_t *q, int64_t npad);

#endif
