/* score.c: log-softmax scoring over all positions, chunk by chunk. */
#include "runtime/score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* -log softmax(logits)[target], computed stably in double. */
static double nll_of(const float *logits, int64_t n_vocab, int32_t target) {
    float mx = logits[0];
    for (int64_t v = 1; v < n_vocab; v++)
        if (logits[v] > mx) mx = logits[v];
    double sum = 0.0;
    for (int64_t v = 0; v < n_vocab; v++) sum += exp((double)logits[v] - mx);
    return log(sum) - ((double)logits[target] - mx);
}

double bn_session_nll(bn_session *s, const int32_t *ids, int n, int from, bn_err *err) {
    int64_t V = s->model->hp.n_vocab;
    double total = 0.0;
    if (from == 0) { /* ids[0] is predicted by what the session already holds */
        total += nll_of(s->logits, V, ids[0]);
        from = 1;
    }
    float *chunk = malloc(sizeof(float) * (size_t)(BN_BATCH * V));
    if (!chunk) {
        bn_errf(err, "out of memory for %d x %lld logits", BN_BATCH, (long long)V);
        return NAN;
    }
    for (int i = 0; i < n; i += BN_BATCH) {
        int c = n - i < BN_BATCH ? n - i : BN_BATCH;
        if (bn_session_eval(s, ids + i, c, chunk) != 0) {
            free(chunk);
            bn_errf(err, "out of memory for the session's scratch");
            return NAN;
        }
        /* row t holds the logits after ids[i+t]: they predict ids[i+t+1] */
        for (int t = 0; t < c; t++) {
            int target = i + t + 1;
            if (target < n && target >= from) total += nll_of(chunk + (int64_t)t * V, V, ids[target]);
        }
    }
    free(chunk);
    return total;
}
