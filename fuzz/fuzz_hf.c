/* fuzz_hf.c: the Hugging Face directory loader: a safetensors header and a
 * config.json. The input holds config.json then model.safetensors
 * (fuzz_split), padded or not (fuzz_unpad: the padding extends the
 * safetensors file). Both go to a scratch directory; the safetensors
 * reader runs on the file alone, then the loader on the directory, and one
 * token runs through the model when it loads. No state between inputs. */
#include <fcntl.h>

#include "fuzz_util.h"
#include "model/load.h"
#include "model/model.h"
#include "formats/safetensors.h"
#include "runtime/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t pad;
    fuzz_unpad(&data, &size, &pad);
    const uint8_t *cfg, *st;
    size_t ncfg, nst;
    fuzz_split(data, size, &cfg, &ncfg, &st, &nst);
    char dir[256], stpath[300];
    fuzz_dir(dir, sizeof dir);
    if (!fuzz_put(dir, "config.json", cfg, ncfg, 0) || !fuzz_put(dir, "model.safetensors", st, nst, pad)) return 0;
    snprintf(stpath, sizeof stpath, "%s/model.safetensors", dir);
    int fd = open(stpath, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    const uint8_t *file = fuzz_map(fd, nst + pad);
    close(fd);
    bn_err err = {0};
    bn_st_set set = {0};
    int parsed = file && bn_st_parse(&set, file, nst + pad, "fuzz", &err);
    bn_st_free(&set);
    if (file) munmap((void *)file, nst + pad);
    if (!parsed) return 0;
    bn_load_opts o = {.threads = 1};
    bn_model *m = bn_model_load(dir, &o, &err);
    if (!m) return 0;
    fuzz_run_model(m);
    bn_model_release(m);
    return 0;
}
