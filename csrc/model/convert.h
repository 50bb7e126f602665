/* convert.h: writes a loaded model as a GGUF file that llama.cpp (TQ1_0,
 * TQ2_0, F16/F32: arch `bitnet`) and bitnet.cpp (I2_S: arch `bitnet-b1.58`
 * for squared-ReLU models, `bitnet` for SiLU ones) load, with the same
 * ternary codes, the scales rounded to the format's precision, and the
 * source's tokenizer metadata and chat template.
 *
 * Models without sub-norms (Falcon3, Llama3-1.58) are written as arch
 * `llama`, the way llama.cpp's and bitnet.cpp's converters write them: q/k
 * rows permuted for llama's adjacent-pair RoPE, untied head as output.weight.
 * An untied head on a model with sub-norms is written as output.weight too:
 * our loader reads it, but upstream llama.cpp's `bitnet` always uses the
 * embeddings as the head and would refuse the extra tensor (no published
 * BitNet checkpoint has that combination). */
#ifndef BN_CONVERT_H
#define BN_CONVERT_H

#include <stdint.h>

#include "base/errbuf.h"
#include "model/model.h"

#define BN_CONVERT_KEEP UINT32_MAX /* embd_type: the source's own type */
#define BN_CONVERT_NONE UINT32_MAX /* fallback_type: refuse instead */

typedef struct {
    uint32_t linear_type;   /* GGML_I2_S, GGML_TQ1_0, GGML_TQ2_0, GGML_F16 or GGML_F32 */
    uint32_t embd_type;     /* GGML_F32/F16/BF16/Q8_0/Q6_K, or BN_CONVERT_KEEP */
    uint32_t fallback_type; /* GGML_F16/F32 for linear tensors linear_type cannot
                               hold (rows not a multiple of its block), or
                               BN_CONVERT_NONE to refuse them */
    /* called after each tensor; returning 0 stops the conversion (the
     * partial file is removed and the message is "cancelled") */
    int (*progress)(void *ud, int done, int total);
    void *progress_ud;
} bn_convert_opts;

/* Writes m to dst (through dst.part, renamed when complete). Everything is
 * checked before the file is created: a shape the type cannot hold is
 * refused with a message naming the tensor. Returns 1, or 0 with err set. */
int bn_convert_model(const bn_model *m, const char *dst, const bn_convert_opts *o, bn_err *err);

/* The GGUF architecture bn_convert_model writes for m with linear_type. */
const char *bn_convert_arch(const bn_model *m, uint32_t linear_type);

#endif
