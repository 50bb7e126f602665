/* load.h: loading a model from a path, whatever its format (load.c). */
#ifndef BN_LOAD_H
#define BN_LOAD_H

#include "model/model.h"

/* Loads any supported path (GGUF file, Hugging Face directory) and applies
 * the options' transforms. NULL with a message on failure. */
bn_model *bn_model_load(const char *path, const bn_load_opts *opts, bn_err *err);

#endif
