/* fuzz_tok_gguf.c: the tokenizer built from a GGUF file's tokenizer.ggml.*
 * metadata (with gguf_mutator.c), then a fixed text encoded and decoded
 * with whatever vocabulary it built. No state between inputs. */
#include "fuzz_util.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_err err = {0};
    bn_gguf g;
    if (!bn_gguf_parse(&g, data, size, "fuzz", &err)) return 0;
    bn_tokenizer *t = bn_tokenizer_from_gguf(&g, &err);
    bn_gguf_free(&g);
    if (!t) return 0;
    fuzz_run_tokenizer(t);
    bn_tokenizer_free(t);
    return 0;
}
