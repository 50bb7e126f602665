/* kv_shift.c: context shift. Drops positions keep..keep+n-1 of a session,
 * moves the later ones down by n, and re-rotates their keys: a key is
 * stored after RoPE at its old position p (R(p*f) k per frequency f), and
 * R(-n*f) R(p*f) = R((p-n)*f), so one rotation by the position delta puts
 * it where a fresh evaluation at p - n would (up to float rounding: the
 * delta rotation is computed in double, the result stored as the cache's
 * float). Values do not depend on position and are only moved. What the
 * kept tokens' keys and values saw in their own earlier context is kept as
 * is: the cache is that of the text before the shift, an approximation a
 * long chat accepts, as llama.cpp's context shift does. */
#include <math.h>
#include <string.h>

#include "formats/floatfmt.h"
#include "runtime/session.h"

/* Where a key's element d for position pos sits in its (layer, head)
 * region: [tile][head_dim][BN_KV_TILE] (session.h). */
static size_t k_at(int pos, int d, int hd) {
    return (size_t)(pos / BN_KV_TILE) * (size_t)hd * BN_KV_TILE + (size_t)d * BN_KV_TILE + (size_t)(pos % BN_KV_TILE);
}

int bn_session_shift(bn_session *s, int keep, int n) {
    if (keep < 0 || n < 1 || keep + n > s->pos) return -1;
    const bn_hparams *hp = &s->model->hp;
    int hd = hp->head_dim, half = hd / 2;
    double cs[512], sn[512]; /* head_dim <= 1024: checked by bn_hparams_check */
    if (half > 512) return -1;
    for (int i = 0; i < half; i++) {
        /* inv_freq as forward.c's rope_table computes it, in fp32 */
        float inv_freq = 1.0f / powf(hp->rope_theta, (float)(2 * i) / (float)hd);
        double ang = -(double)n * (double)inv_freq;
        cs[i] = cos(ang);
        sn[i] = sin(ang);
    }
    for (int l = 0; l < hp->n_layers; l++)
        for (int h = 0; h < hp->n_kv_heads; h++) {
            void *kc = bn_session_kv(s, 0, l, h), *vc = bn_session_kv(s, 1, l, h);
            for (int p = keep + n; p < s->pos; p++) {
                int q = p - n;
                float k[1024];
                for (int d = 0; d < hd; d++)
                    k[d] = s->kv_f16 ? bn_f16_to_f32(((uint16_t *)kc)[k_at(p, d, hd)])
                                     : ((float *)kc)[k_at(p, d, hd)];
                for (int i = 0; i < half; i++) {
                    double a = k[i], b = k[i + half];
                    k[i] = (float)(a * cs[i] - b * sn[i]);
                    k[i + half] = (float)(b * cs[i] + a * sn[i]);
                }
                for (int d = 0; d < hd; d++) {
                    if (s->kv_f16) ((uint16_t *)kc)[k_at(q, d, hd)] = bn_f32_to_f16(k[d]);
                    else ((float *)kc)[k_at(q, d, hd)] = k[d];
                }
                size_t esz = s->kv_f16 ? 2 : 4;
                memmove((char *)vc + (size_t)q * hd * esz, (char *)vc + (size_t)p * hd * esz, (size_t)hd * esz);
            }
        }
    memmove(s->tokens + keep, s->tokens + keep + n, sizeof(int32_t) * (size_t)(s->pos - keep - n));
    s->pos -= n;
    s->have_logits = 0;
    return 0;
}

void bn_session_kv_read(const bn_session *s, int v, int l, int h, int pos, float *out) {
    int hd = s->model->hp.head_dim;
    const void *c = bn_session_kv(s, v, l, h);
    for (int d = 0; d < hd; d++) {
        size_t i = v ? (size_t)pos * hd + (size_t)d : k_at(pos, d, hd);
        out[d] = s->kv_f16 ? bn_f16_to_f32(((const uint16_t *)c)[i]) : ((const float *)c)[i];
    }
}
