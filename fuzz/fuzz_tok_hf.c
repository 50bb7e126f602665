/* fuzz_tok_hf.c: a Hugging Face tokenizer: tokenizer_config.json then
 * tokenizer.json in one input (fuzz_split), written to a scratch directory
 * and loaded; a fixed text is encoded and decoded when it loads. No state
 * between inputs. */
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *cfg, *tok;
    size_t ncfg, ntok;
    fuzz_split(data, size, &cfg, &ncfg, &tok, &ntok);
    char dir[256], tpath[300], cpath[300];
    fuzz_dir(dir, sizeof dir);
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", dir);
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    if (!fuzz_put(dir, "tokenizer.json", tok, ntok, 0) || !fuzz_put(dir, "tokenizer_config.json", cfg, ncfg, 0)) return 0;
    bn_err err = {0};
    bn_tokenizer *t = bn_tokenizer_from_hf(tpath, ncfg ? cpath : NULL, &err);
    if (!t) return 0;
    fuzz_run_tokenizer(t);
    bn_tokenizer_free(t);
    return 0;
}
