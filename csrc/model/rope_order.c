#include "model/rope_order.h"

#include <stdlib.h>
#include <string.h>

int64_t bn_rope_half_row(int64_t r, int64_t head_dim) {
    int64_t h = r / head_dim, rem = r % head_dim;
    return h * head_dim + (rem % 2) * (head_dim / 2) + rem / 2;
}

int bn_ternary_from_pair_order(bn_ternary *w, int n_heads, const char *what, bn_err *err) {
    if (n_heads < 1 || w->rows % n_heads || (w->rows / n_heads) % 2)
        return bn_errf(err, "%s: %lld rows do not split into %d heads of an even size", what, (long long)w->rows, n_heads);
    int64_t hd = w->rows / n_heads;
    uint8_t *codes = malloc(w->row_bytes * (size_t)w->rows);
    float *bs = w->block_scale ? malloc(sizeof(float) * (size_t)(w->rows * w->nblocks)) : NULL;
    if (!codes || (w->block_scale && !bs)) {
        free(codes);
        free(bs);
        return bn_errf(err, "%s: out of memory", what);
    }
    for (int64_t r = 0; r < w->rows; r++) {
        int64_t d = bn_rope_half_row(r, hd);
        memcpy(codes + (size_t)d * w->row_bytes, w->codes + (size_t)r * w->row_bytes, w->row_bytes);
        if (bs) memcpy(bs + d * w->nblocks, w->block_scale + r * w->nblocks, sizeof(float) * (size_t)w->nblocks);
    }
    free(w->owned);
    w->owned = codes;
    w->codes = codes;
    if (bs) {
        free(w->block_scale);
        w->block_scale = bs;
    }
    return 1;
}
