/* fuzz_gguf.c: the GGUF reader (header, metadata, tensor infos), the
 * tokenizer in its metadata, then the model loader on the same bytes and
 * one token through the forward pass when a model loads. An input is a
 * GGUF file or a padded one (fuzz_unpad: its headers, the zero tensor data
 * implied). gguf_mutator.c keeps mutated headers consistent. No state
 * between inputs. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "formats/gguf.h"
#include "model/load.h"
#include "model/model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t pad;
    fuzz_unpad(&data, &size, &pad);
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    const uint8_t *file = fuzz_pad_fd(fd, size, pad) ? fuzz_map(fd, size + pad) : NULL;
    bn_err err = {0};
    bn_gguf g;
    int parsed = file && bn_gguf_parse(&g, file, size + pad, "fuzz", &err);
    if (parsed) {
        bn_tokenizer_free(bn_tokenizer_from_gguf(&g, &err));
        bn_gguf_free(&g);
    }
    if (file) munmap((void *)file, size + pad);
    bn_model *m = NULL;
    if (parsed) {
        bn_load_opts o = {.threads = 1};
        m = bn_model_load(path, &o, &err);
    }
    close(fd);
    if (!m) return 0;
    fuzz_run_model(m);
    bn_model_release(m);
    return 0;
}
