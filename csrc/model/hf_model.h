/* hf_model.h: the loader of a Hugging Face model directory (config.json + safetensors). */
#ifndef BN_HF_MODEL_H
#define BN_HF_MODEL_H

#include "model/model.h"

bn_model *bn_model_load_hf(const char *dir, const bn_load_opts *opts, bn_err *err);

#endif
