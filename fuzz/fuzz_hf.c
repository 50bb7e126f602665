/* fuzz_hf.c: the Hugging Face directory loader: a safetensors header and a
 * config.json. The input holds config.json then model.safetensors
 * (fuzz_split); the safetensors reader runs on the bytes alone, then both
 * files go to a scratch directory for the loader, and one token runs
 * through the model when it loads. No state between inputs. */
#include "fuzz_util.h"
#include "model/load.h"
#include "model/model.h"
#include "formats/safetensors.h"
#include "runtime/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *cfg, *st;
    size_t ncfg, nst;
    fuzz_split(data, size, &cfg, &ncfg, &st, &nst);
    bn_err err = {{0}};
    bn_st_set set = {0};
    int parsed = bn_st_parse(&set, st, nst, "fuzz", &err);
    bn_st_free(&set);
    if (!parsed) return 0;
    char dir[256];
    fuzz_dir(dir, sizeof dir);
    if (!fuzz_put(dir, "config.json", cfg, ncfg) || !fuzz_put(dir, "model.safetensors", st, nst)) return 0;
    bn_load_opts o = {.threads = 1};
    bn_model *m = bn_model_load(dir, &o, &err);
    if (!m) return 0;
    fuzz_run_model(m);
    bn_model_release(m);
    return 0;
}
