/* rope_order.h: the two row orders of q/k projection weights. Hugging Face
 * checkpoints and the bitnet GGUF archs pair dimension i with i + hd/2 in
 * RoPE (rotate-half, NEOX); llama.cpp's `llama` arch pairs 2i with 2i+1, so
 * its converters reorder each head's rows. The forward pass uses
 * rotate-half; these translate. */
#ifndef BN_ROPE_ORDER_H
#define BN_ROPE_ORDER_H

#include <stdint.h>

#include "base/errbuf.h"
#include "model/ternary.h"

/* The rotate-half row held at row r of the pair-ordered matrix
 * (head_dim even; rows are heads of head_dim rows each). */
int64_t bn_rope_half_row(int64_t r, int64_t head_dim);

/* Reorders a pair-ordered matrix (as read from a `llama` GGUF) into
 * rotate-half order, with its per-block scales. Matrices used from the
 * mapping become owned copies. */
int bn_ternary_from_pair_order(bn_ternary *w, int n_heads, const char *what, bn_err *err);

#endif
