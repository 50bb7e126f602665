#include "model/encode.h"

#include <math.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "formats/gguf.h"

static void put_f16(uint8_t *p, float v) {
    uint16_t h = bn_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* Q8_0: per 32 values d = absmax / 127 (fp16), q = round(x / d). */
static void enc_q8_0(const float *x, int64_t n, uint8_t *b) {
    for (int64_t i = 0; i < n; i += 32, b += 34, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        put_f16(b, d);
        for (int j = 0; j < 32; j++) {
            float v = roundf(x[j] * id);
            ((int8_t *)(b + 2))[j] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : v);
        }
    }
}

/* The step for 16 values whose largest magnitude is m: m / -32 maps m to
 * the end of the 6-bit range without clipping; a slightly smaller step that
 * clips m a little often lowers the total squared error, so a few are tried. */
static float best_group_scale(const float *x, float m) {
    float best = m / -32.0f, best_err = INFINITY;
    if (m == 0.0f) return 0.0f;
    for (int k = 0; k <= 8; k++) {
        float s = m / -(32.0f + 0.5f * (float)k), err = 0.0f;
        for (int j = 0; j < 16; j++) {
            float l = roundf(x[j] / s);
            l = l > 31.0f ? 31.0f : l < -32.0f ? -32.0f : l;
            err += (x[j] - l * s) * (x[j] - l * s);
        }
        if (err < best_err) {
            best_err = err;
            best = s;
        }
    }
    return best;
}

/* Q6_K: 256 values = 16 groups of 16, each with an int8 scale (times one
 * fp16 d) and 6-bit values l - 32. Each group's step is chosen by
 * best_group_scale; the layout is the one floatfmt.c's decoder reads. */
static void enc_q6_k(const float *x, int64_t n, uint8_t *b) {
    for (int64_t i = 0; i < n; i += 256, b += 210, x += 256) {
        float gscale[16], max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int g = 0; g < 16; g++) {
            float m = 0.0f;
            for (int j = 0; j < 16; j++)
                if (fabsf(x[16 * g + j]) > fabsf(m)) m = x[16 * g + j];
            gscale[g] = best_group_scale(x + 16 * g, m);
            if (fabsf(gscale[g]) > max_abs_scale) {
                max_abs_scale = fabsf(gscale[g]);
                max_scale = gscale[g];
            }
        }
        uint8_t *ql = b, *qh = b + 128;
        int8_t *sc = (int8_t *)(b + 192);
        uint8_t L[256];
        if (max_abs_scale == 0.0f) {
            memset(b, 0, 210);
            for (int e = 0; e < 256; e++) L[e] = 32;
        } else {
            float iscale = -128.0f / max_scale, d = 1.0f / iscale;
            put_f16(b + 208, d);
            float dh = bn_f16_to_f32(bn_f32_to_f16(d)); /* the d the decoder will use */
            for (int g = 0; g < 16; g++) {
                float s = roundf(iscale * gscale[g]);
                sc[g] = (int8_t)(s > 127.0f ? 127 : s < -128.0f ? -128 : s);
                float gd = dh * sc[g];
                for (int j = 0; j < 16; j++) {
                    float l = gd != 0.0f ? roundf(x[16 * g + j] / gd) : 0.0f;
                    l = l > 31.0f ? 31.0f : l < -32.0f ? -32.0f : l;
                    L[16 * g + j] = (uint8_t)((int)l + 32);
                }
            }
        }
        for (int h = 0; h < 2; h++) {
            const uint8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[64 * h + l] = (uint8_t)((Lh[l] & 0xF) | (Lh[l + 64] & 0xF) << 4);
                ql[64 * h + l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | (Lh[l + 96] & 0xF) << 4);
                qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 |
                                           (Lh[l + 96] >> 4) << 6);
            }
        }
    }
}

int bn_encode_supported(uint32_t t) {
    return t == GGML_F32 || t == GGML_F16 || t == GGML_BF16 || t == GGML_Q8_0 || t == GGML_Q6_K;
}

void bn_encode_row(uint32_t t, const float *x, int64_t n, uint8_t *dst) {
    switch (t) {
    case GGML_F32: memcpy(dst, x, (size_t)n * 4); break;
    case GGML_F16:
        for (int64_t i = 0; i < n; i++) put_f16(dst + 2 * i, x[i]);
        break;
    case GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = bn_f32_to_bf16(x[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
        break;
    case GGML_Q8_0: enc_q8_0(x, n, dst); break;
    case GGML_Q6_K: enc_q6_k(x, n, dst); break;
    default: break;
    }
}

/* Five trits (t in 0..2, most significant first) in one byte: the base-3
 * number scaled to 0..255 rounding up, so that the decoder's
 * ((byte * 3^k) mod 256) * 3 >> 8 recovers digit k. */
static uint8_t pack_trits(const int8_t *v, int stride, int count, int shift_to_five) {
    unsigned q = 0;
    for (int k = 0; k < count; k++) q = q * 3 + (unsigned)(v[k * stride] + 1);
    for (int k = 0; k < shift_to_five; k++) q *= 3;
    return (uint8_t)((q * 256 + 242) / 243);
}

void bn_encode_tq_row(uint32_t t, const int8_t *v, const float *scales, int64_t n, uint8_t *dst) {
    for (int64_t blk = 0; blk < n / 256; blk++, v += 256) {
        if (t == GGML_TQ2_0) {
            uint8_t *qs = dst + blk * 66;
            memset(qs, 0, 64);
            for (int e = 0; e < 256; e++)
                qs[32 * (e / 128) + e % 32] |= (uint8_t)((v[e] + 1) << (2 * ((e % 128) / 32)));
            put_f16(qs + 64, scales[blk]);
        } else {
            uint8_t *b = dst + blk * 54;
            for (int m = 0; m < 32; m++) b[m] = pack_trits(v + m, 32, 5, 0);
            for (int m = 0; m < 16; m++) b[32 + m] = pack_trits(v + 160 + m, 16, 5, 0);
            for (int j = 0; j < 4; j++) b[48 + j] = pack_trits(v + 240 + j, 4, 4, 1);
            put_f16(b + 52, scales[blk]);
        }
    }
}
