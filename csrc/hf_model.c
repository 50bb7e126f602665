/* hf_model.c: Hugging Face directories (placeholder until issue 4 lands). */
#include "model.h"

bn_model *bn_model_load_hf(const char *dir, const bn_load_opts *opts, bn_err *err) {
    (void)opts;
    bn_errf(err, "%s: Hugging Face model directories are not supported yet", dir);
    return NULL;
}
