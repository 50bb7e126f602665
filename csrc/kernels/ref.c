/* ref.c: the portable reference kernels. */
#include <math.h>
#include <string.h>

#include "kernels.h"

float bn_quantize_act(const float *x, int64_t n, int8_t *q, int64_t npad) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m) m = a;
    }
    float s = 127.0f / (m > 1e-5f ? m : 1e-5f);
    for (int64_t i = 0; i < n; i++) {
        float v = rintf(x[i] * s); /* default rounding mode: ties to even */
        q[i] = (int8_t)(v > 127.0f ? 127 : v < -128.0f ? -128 : v);
    }
    if (npad > n) memset(q + n, 0, (size_t)(npad - n));
    return s;
}

static void ref_ternary_dot_rows(const uint8_t *w, size_t row_bytes, int nblocks, const int8_t *q,
                                 int64_t nrows, int32_t *out) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        int32_t sum = 0;
        for (int b = 0; b < nblocks; b++) {
            const uint8_t *blk = row + b * 32;
            const int8_t *qb = q + b * 128;
            for (int j = 0; j < 32; j++) {
                uint8_t byte = blk[j];
                sum += ((byte >> 6) - 1) * qb[j] + (((byte >> 4) & 3) - 1) * qb[32 + j] +
                       (((byte >> 2) & 3) - 1) * qb[64 + j] + ((byte & 3) - 1) * qb[96 + j];
            }
        }
        out[r] = sum;
    }
}

static float ref_dot_f32(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

const bn_kernels bn_kernels_ref = {"ref", ref_ternary_dot_rows, ref_dot_f32};
