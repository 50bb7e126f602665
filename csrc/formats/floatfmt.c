#include "formats/floatfmt.h"

#include <string.h>

#include "formats/gguf.h"

float bn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t bn_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff);
    uint32_t man = x & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    int32_t e = exp - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) { /* subnormal or zero in half */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = (uint32_t)e << 10 | man >> 13, rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: correct */
    return (uint16_t)(sign | half);
}

float bn_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t bn_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return bn_f16_to_f32(h);
}

/* Q8_0: 32 weights in 34 bytes: f16 d, int8 q[32]. */
static void dq_q8_0(const uint8_t *b, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 32, b += 34) {
        float d = rd_f16(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < 32; j++) y[i + j] = d * (float)q[j];
    }
}

/* Q4_K: 256 weights in 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit
 * scales/mins for 8 sub-blocks of 32, 128 bytes of 4-bit values. */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void dq_q4_k(const uint8_t *b, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 256, b += 144) {
        float d = rd_f16(b), dmin = rd_f16(b + 2);
        const uint8_t *sc = b + 4, *q = b + 16;
        float *o = y + i;
        for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
            uint8_t s, m;
            scale_min_k4(is, sc, &s, &m);
            float d1 = d * s, m1 = dmin * m;
            scale_min_k4(is + 1, sc, &s, &m);
            float d2 = d * s, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *o++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *o++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

/* Q6_K: 256 weights in 210 bytes: ql[128] low 4 bits, qh[64] high 2 bits,
 * int8 scales[16] per 16 weights, f16 d. */
static void dq_q6_k(const uint8_t *b, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 256, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = rd_f16(b + 208);
        float *o = y + i;
        for (int h = 0; h < 2; h++, o += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                o[l] = d * sc[is] * (float)q1;
                o[l + 32] = d * sc[is + 2] * (float)q2;
                o[l + 64] = d * sc[is + 4] * (float)q3;
                o[l + 96] = d * sc[is + 6] * (float)q4;
            }
        }
    }
}

int bn_dequant_supported(uint32_t type) {
    switch (type) {
    case GGML_F32: case GGML_F16: case GGML_BF16: case GGML_Q8_0: case GGML_Q4_K: case GGML_Q6_K: return 1;
    default: return 0;
    }
}

size_t bn_row_bytes(uint32_t type, int64_t n) {
    uint32_t blck, bytes;
    if (!bn_ggml_block(type, &blck, &bytes)) return 0;
    return (size_t)(n / blck) * bytes;
}

void bn_dequant_row(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    switch (type) {
    case GGML_F32: memcpy(dst, src, (size_t)n * 4); break;
    case GGML_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = rd_f16(b + 2 * i);
        break;
    case GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            dst[i] = bn_bf16_to_f32(h);
        }
        break;
    case GGML_Q8_0: dq_q8_0(b, dst, n); break;
    case GGML_Q4_K: dq_q4_k(b, dst, n); break;
    case GGML_Q6_K: dq_q6_k(b, dst, n); break;
    default: memset(dst, 0, (size_t)n * sizeof *dst); break;
    }
}
