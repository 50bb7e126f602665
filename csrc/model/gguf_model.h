/* gguf_model.h: the loader of a GGUF file (llama.cpp and bitnet.cpp layouts). */
#ifndef BN_GGUF_MODEL_H
#define BN_GGUF_MODEL_H

#include "model/model.h"

bn_model *bn_model_load_gguf(const char *path, const bn_load_opts *opts, bn_err *err);

#endif
