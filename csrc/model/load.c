/* load.c: loading a model by path, above the loaders: picks the loader by
 * the path's type (a directory is a Hugging Face model, a file GGUF), then
 * applies the load options' transforms (the int8 head, huge pages). The
 * loaders and transforms use model.c; model.c calls none of them. */
#include "model/load.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/threadpool.h"
#include "model/gguf_model.h"
#include "model/head.h"
#include "model/hf_model.h"
#include "model/hugepages.h"

/* The machine's physical memory: what a KV-cache may take by default. */
static uint64_t physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
}

bn_model *bn_model_load(const char *path, const bn_load_opts *opts, bn_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        bn_errf(err, "%s: no such file or directory", path);
        return NULL;
    }
    const bn_kernels *k = bn_kernels_select(opts ? opts->kernel : NULL);
    if (!k) {
        /* the load option was empty or absent: the environment forced it */
        int from_env = !(opts && opts->kernel && *opts->kernel);
        char why[160];
        bn_kernels_refusal(from_env ? getenv("BITNET_KERNEL") : opts->kernel, why, sizeof why);
        bn_errf(err, "%s%s", from_env ? "BITNET_KERNEL: " : "", why);
        return NULL;
    }
    bn_model *m = S_ISDIR(st.st_mode) ? bn_model_load_hf(path, opts, err) : bn_model_load_gguf(path, opts, err);
    if (m) m->kern = k;
    if (m) m->max_memory = opts && opts->max_memory ? opts->max_memory : physical_memory();
    if (m && m->threads <= 0) m->threads = bn_physical_cores();
    if (m && opts && opts->output_head && strcmp(opts->output_head, "int8") == 0 && !bn_head_i8_build(m, err)) {
        bn_model_release(m);
        return NULL;
    }
    if (m && opts && opts->hugepages > 0 && !bn_model_to_hugepages(m, err)) {
        bn_model_release(m);
        return NULL;
    }
    return m;
}
