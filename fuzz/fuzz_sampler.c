/* fuzz_sampler.c: the sampler's options and logit arrays. The input is read
 * as raw floats and integers (so NaN, infinities, huge and denormal values
 * all come up): the options, up to 8 logit-bias pairs, a history of
 * accepted tokens, then the logits. Every sample must be an id in the
 * vocabulary, or -1 with a message. No state between inputs. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "runtime/sampler.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static uint32_t take32(input *in) {
    uint32_t v = 0;
    size_t k = in->n < 4 ? in->n : 4;
    memcpy(&v, in->p, k);
    in->p += k;
    in->n -= k;
    return v;
}

static float takef(input *in) {
    uint32_t u = take32(in);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    input in = {data, size};
    bn_sampler_params p;
    bn_sampler_params_default(&p);
    uint32_t mask = take32(&in); /* which options the input sets */
    if (mask & 1) p.temperature = takef(&in);
    if (mask & 2) p.top_k = (int)take32(&in);
    if (mask & 4) p.top_p = takef(&in);
    if (mask & 8) p.min_p = takef(&in);
    if (mask & 16) p.typical_p = takef(&in);
    if (mask & 32) p.repeat_penalty = takef(&in);
    if (mask & 64) p.repeat_last_n = (int)(take32(&in) % 300);
    if (mask & 128) p.presence_penalty = takef(&in);
    if (mask & 256) p.frequency_penalty = takef(&in);
    p.seed = take32(&in);
    int n_bias = (mask >> 9) & 7;
    int32_t bias_ids[8];
    float bias[8];
    for (int i = 0; i < n_bias; i++) {
        bias_ids[i] = (int32_t)(take32(&in) % 4096);
        bias[i] = takef(&in);
    }
    int n_hist = (mask >> 12) & 15;
    int32_t hist[16];
    for (int i = 0; i < n_hist; i++) hist[i] = (int32_t)(take32(&in) % 2048);
    bn_err err = {0};
    bn_sampler *s = bn_sampler_new(&p, bias_ids, bias, n_bias, &err);
    if (!s) return 0;
    int n_vocab = (int)(in.n / 4);
    if (n_vocab < 1 || n_vocab > 65536) {
        bn_sampler_free(s);
        return 0;
    }
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    if (!logits) abort();
    memcpy(logits, in.p, sizeof(float) * (size_t)n_vocab);
    for (int i = 0; i < n_hist; i++) bn_sampler_accept(s, hist[i]);
    bn_sampler *c = bn_sampler_clone(s, &err);
    for (int round = 0; round < 3; round++) {
        bn_err e2 = {0};
        int32_t id = bn_sampler_sample(s, logits, n_vocab, &e2);
        if (id < -1 || id >= n_vocab || (id == -1 && !e2.msg[0])) {
            fprintf(stderr, "sampler returned %d for %d logits (%s)\n", (int)id, n_vocab, e2.msg);
            abort();
        }
        /* a clone makes the same choices */
        if (c) {
            bn_err e3 = {0};
            int32_t id2 = bn_sampler_sample(c, logits, n_vocab, &e3);
            if (id2 != id) {
                fprintf(stderr, "clone chose %d, source %d\n", (int)id2, (int)id);
                abort();
            }
            bn_sampler_accept(c, id2);
        }
        bn_sampler_accept(s, id);
    }
    bn_sampler_free(c);
    bn_sampler_free(s);
    free(logits);
    return 0;
}
