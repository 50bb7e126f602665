#include "model/ternary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "formats/gguf.h"

int bn_ternary_alloc(bn_ternary *t, int64_t rows, int64_t cols, bn_err *err) {
    memset(t, 0, sizeof *t);
    t->rows = rows;
    t->cols = cols;
    t->nblocks = (int)((cols + BN_QK - 1) / BN_QK);
    t->row_bytes = (size_t)t->nblocks * BN_QK_BYTES;
    t->owned = malloc(t->row_bytes * (size_t)rows);
    if (!t->owned) return bn_errf(err, "out of memory for a %lld x %lld ternary matrix", (long long)rows,
                                  (long long)cols);
    memset(t->owned, 0x55, t->row_bytes * (size_t)rows); /* every code 1: zero */
    t->codes = t->owned;
    t->scale = 1.0f;
    return 1;
}

void bn_ternary_free(bn_ternary *t) {
    free(t->owned);
    free(t->block_scale);
    memset(t, 0, sizeof *t);
}

void bn_pack_row_i2(const int8_t *v, int64_t cols, uint8_t *dst) {
    int nb = (int)((cols + BN_QK - 1) / BN_QK);
    for (int b = 0; b < nb; b++) {
        for (int j = 0; j < 32; j++) {
            uint8_t byte = 0;
            for (int g = 0; g < 4; g++) {
                int64_t e = (int64_t)b * BN_QK + g * 32 + j;
                int code = e < cols ? v[e] + 1 : 1;
                byte |= (uint8_t)(code << (6 - 2 * g));
            }
            dst[b * BN_QK_BYTES + j] = byte;
        }
    }
}

void bn_ternary_set_row(bn_ternary *t, int64_t row, const int8_t *values) {
    bn_pack_row_i2(values, t->cols, t->owned + (size_t)row * t->row_bytes);
}

void bn_ternary_get_row(const bn_ternary *t, int64_t row, int8_t *v) {
    const uint8_t *src = t->codes + (size_t)row * t->row_bytes;
    for (int64_t e = 0; e < t->cols; e++) {
        int64_t b = e / BN_QK, w = e % BN_QK;
        uint8_t byte = src[b * BN_QK_BYTES + w % 32];
        v[e] = (int8_t)(((byte >> (6 - 2 * (w / 32))) & 3) - 1);
    }
}

int bn_ternary_from_i2s(bn_ternary *t, const uint8_t *data, int64_t rows, int64_t cols,
                        const char *what, bn_err *err) {
    memset(t, 0, sizeof *t);
    if (cols % BN_QK) return bn_errf(err, "%s: I2_S rows must be a multiple of 128, not %lld", what, (long long)cols);
    t->rows = rows;
    t->cols = cols;
    t->nblocks = (int)(cols / BN_QK);
    t->row_bytes = (size_t)t->nblocks * BN_QK_BYTES;
    t->codes = data; /* used in place: the file holds our layout */
    memcpy(&t->scale, data + t->row_bytes * (size_t)rows, 4);
    if (!isfinite(t->scale)) return bn_errf(err, "%s: I2_S scale is not a finite number", what);
    return 1;
}

/* TQ2_0 stores the codes we use (value + 1) with a byte's four planes in
 * the opposite order (element j of each 32 in bits 1:0, not 7:6), and its
 * two 128-halves are our two blocks: one table per byte repacks it. An
 * invalid code 3 becomes 2 (+1). */
static void tq2_table(uint8_t lut[256]) {
    for (int v = 0; v < 256; v++) {
        uint8_t out = 0;
        for (int g = 0; g < 4; g++) {
            int c = (v >> (2 * g)) & 3;
            out |= (uint8_t)((c == 3 ? 2 : c) << (6 - 2 * g));
        }
        lut[v] = out;
    }
}

/* One TQ2_0 block into our blocks 2k and 2k+1 at dst; returns its scale
 * and sets *nz when any weight is nonzero. */
static float tq2_block(const uint8_t lut[256], const uint8_t *b, uint8_t *dst, int *nz) {
    int any = 0;
    for (int j = 0; j < 64; j++) {
        dst[j] = lut[b[j]];
        any |= dst[j] ^ 0x55;
    }
    *nz = any != 0;
    uint16_t h;
    memcpy(&h, b + 64, 2);
    return bn_f16_to_f32(h);
}

/* TQ1_0 packs base-3 digits (codes 0..2, value + 1), most significant
 * first, as byte = ceil(v * 256 / 243): digit n of byte x is
 * ((uint8_t)(x * 3^n) * 3) >> 8. Elements 0..159 are digit n of qs[m]
 * (m < 32) at n * 32 + m, 160..239 digit n of qs[32 + m] (m < 16), 240..255
 * digit n of qh[j] (n, j < 4). A table holds each byte's five digits. */
static void tq1_table(uint8_t digits[256][5]) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    for (int v = 0; v < 256; v++)
        for (int n = 0; n < 5; n++) digits[v][n] = (uint8_t)(((uint16_t)(uint8_t)(v * pow3[n]) * 3) >> 8);
}

/* One TQ1_0 block into our blocks 2k and 2k+1 at dst, as tq2_block. */
static float tq1_block(const uint8_t digits[256][5], const uint8_t *b, uint8_t *dst, int *nz) {
    uint8_t c[256];
    int e = 0;
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 32; m++) c[e++] = digits[b[m]][n];
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 16; m++) c[e++] = digits[b[32 + m]][n];
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 4; j++) c[e++] = digits[b[48 + j]][n];
    int any = 0;
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 32; j++) {
            const uint8_t *ch = c + 128 * h;
            dst[32 * h + j] = (uint8_t)(ch[j] << 6 | ch[32 + j] << 4 | ch[64 + j] << 2 | ch[96 + j]);
            any |= dst[32 * h + j] ^ 0x55;
        }
    *nz = any != 0;
    uint16_t h;
    memcpy(&h, b + 52, 2);
    return bn_f16_to_f32(h);
}

int bn_ternary_from_tq(bn_ternary *t, uint32_t type, const uint8_t *data, int64_t rows, int64_t cols,
                       const char *what, bn_err *err) {
    if (cols % 256) return bn_errf(err, "%s: TQ rows must be a multiple of 256, not %lld", what, (long long)cols);
    if (!bn_ternary_alloc(t, rows, cols, err)) return 0;
    size_t blk_bytes = type == GGML_TQ2_0 ? 66 : 54;
    int64_t nq = cols / 256;
    float *scales = malloc(sizeof(float) * (size_t)(rows * nq));
    if (!scales) {
        bn_ternary_free(t);
        return bn_errf(err, "%s: out of memory", what);
    }
    /* one scale for the tensor when every block that has a nonzero weight
     * carries the same one (converters write a per tensor) */
    int uniform = 1, have = 0;
    float common = 0.0f;
    uint8_t lut[256], digits[256][5];
    if (type == GGML_TQ2_0) tq2_table(lut);
    else tq1_table(digits);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < nq; k++) {
            const uint8_t *b = data + (size_t)(r * nq + k) * blk_bytes;
            int nz = 0;
            uint8_t *dst = t->owned + (size_t)r * t->row_bytes + (size_t)k * 64;
            float d = type == GGML_TQ2_0 ? tq2_block(lut, b, dst, &nz) : tq1_block(digits, b, dst, &nz);
            scales[r * nq + k] = d;
            if (!isfinite(d)) {
                free(scales);
                bn_ternary_free(t);
                return bn_errf(err, "%s: block scale is not a finite number", what);
            }
            if (nz) {
                if (!have) { common = d; have = 1; }
                else if (d != common) uniform = 0;
            }
        }
    }
    if (uniform) {
        t->scale = have ? common : 0.0f;
        free(scales);
    } else { /* each 256-block covers two of our 128-blocks */
        t->block_scale = malloc(sizeof(float) * (size_t)(rows * t->nblocks));
        if (!t->block_scale) {
            free(scales);
            bn_ternary_free(t);
            return bn_errf(err, "%s: out of memory", what);
        }
        for (int64_t r = 0; r < rows; r++)
            for (int b = 0; b < t->nblocks; b++) t->block_scale[r * t->nblocks + b] = scales[r * nq + b / 2];
        free(scales);
        t->scale = 1.0f;
    }
    return 1;
}

static float float_at(uint32_t type, const uint8_t *data, size_t i) {
    uint16_t h;
    float f;
    switch (type) {
    case GGML_F32: memcpy(&f, data + 4 * i, 4); return f;
    case GGML_F16: memcpy(&h, data + 2 * i, 2); return bn_f16_to_f32(h);
    default: memcpy(&h, data + 2 * i, 2); return bn_bf16_to_f32(h);
    }
}

/* Packs float weights as T = clamp(round(W / a), -1, 1) with scale a: the
 * one rule for both ternarized files (W/a is exactly -1, 0 or 1 there) and
 * float masters. */
static int pack_floats(bn_ternary *t, uint32_t type, const uint8_t *data, int64_t rows, int64_t cols, float a,
                       const char *what, bn_err *err) {
    if (!bn_ternary_alloc(t, rows, cols, err)) return 0;
    int8_t *row = malloc((size_t)cols);
    if (!row) {
        bn_ternary_free(t);
        return bn_errf(err, "%s: out of memory", what);
    }
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            float q = a > 0.0f ? rintf(float_at(type, data, (size_t)(r * cols + c)) / a) : 0.0f;
            row[c] = (int8_t)(q > 1.0f ? 1 : q < -1.0f ? -1 : (int)q);
        }
        bn_ternary_set_row(t, r, row);
    }
    free(row);
    t->scale = a;
    return 1;
}

int bn_ternary_from_ternary_floats(bn_ternary *t, uint32_t type, const uint8_t *data, int64_t rows,
                                   int64_t cols, const char *what, bn_err *err) {
    size_t n = (size_t)(rows * cols);
    float a = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float v = fabsf(float_at(type, data, i));
        if (!isfinite(v)) return bn_errf(err, "%s: weight %zu is not a finite number", what, i);
        if (v == 0.0f) continue;
        if (a == 0.0f) a = v;
        else if (v != a)
            return bn_errf(err, "%s: float weights are not ternary (magnitudes %g and %g); BitNet files hold T*a",
                           what, (double)a, (double)v);
    }
    return pack_floats(t, type, data, rows, cols, a, what, err);
}

int bn_ternary_from_master(bn_ternary *t, uint32_t type, const uint8_t *data, int64_t rows, int64_t cols,
                           const char *what, bn_err *err) {
    size_t n = (size_t)(rows * cols);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        float v = float_at(type, data, i);
        if (!isfinite(v)) return bn_errf(err, "%s: weight %zu is not a finite number", what, i);
        sum += fabsf(v);
    }
    /* torch computes mean|W| in fp32; the double sum rounded once is as close */
    float a = (float)(sum / (double)n);
    if (a < 1e-5f) a = 1e-5f;
    return pack_floats(t, type, data, rows, cols, a, what, err);
}
