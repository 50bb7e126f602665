/* score.h: negative log-likelihood of a token sequence under a session,
 * the primitive behind perplexity. */
#ifndef BN_SCORE_H
#define BN_SCORE_H

#include <stdint.h>

#include "runtime/session.h"

/* Feeds ids[0..n) after the session's position and returns the summed
 * -log p(ids[i] | everything before it), in nats, over i >= from (0-based).
 * ids[0] can be scored only when the session already has logits. Logits
 * are taken in chunks, so memory stays at one chunk times the vocabulary.
 * The caller has checked ids and room in the context. */
double bn_session_nll(bn_session *s, const int32_t *ids, int n, int from, bn_err *err);

#endif
