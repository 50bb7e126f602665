/* model_cache.h: one copy of a model's weights per process. Loading the
 * same file with the same options again returns the model already loaded
 * (another reference), so every Lua state of a process, every nginx worker
 * thread VM or luv thread, shares one set of weights; each model gets an id
 * that such hosts can pass around as a number. */
#ifndef BN_MODEL_CACHE_H
#define BN_MODEL_CACHE_H

#include <stdint.h>

#include "model/model.h"

/* bn_model_load through the cache: a new reference to the model loaded
 * from the same file (same device, inode, size and mtime) with the same
 * options and default context, or a fresh load registered for the next
 * caller. n_ctx becomes the model's default session context. */
bn_model *bn_model_open(const char *path, const bn_load_opts *opts, int n_ctx, bn_err *err);
/* A new reference to the live model with this id, or NULL. */
bn_model *bn_model_attach(int64_t id);
/* Called by the model's last release: forgets it. */
void bn_model_cache_forget(bn_model *m);

#endif
