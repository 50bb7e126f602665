/* fuzz_tok_gguf.c: the tokenizer built from a GGUF file's tokenizer.ggml.*
 * metadata (with gguf_mutator.c), then a fixed text encoded and decoded
 * with whatever vocabulary it built. No state between inputs. */
#include "fuzz_util.h"
#include "gguf.h"
#include "tokenizer.h"

static const char TEXT[] = "Hello world! \xC3\xA9t\xC3\xA9 <s> <|eot_id|>\n\n  123 \xF0\x9F\x98\x80 \xFF\xFE end";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_err err = {{0}};
    bn_gguf g;
    if (!bn_gguf_parse(&g, data, size, "fuzz", &err)) return 0;
    bn_tokenizer *t = bn_tokenizer_from_gguf(&g, &err);
    bn_gguf_free(&g);
    if (!t) return 0;
    for (int special = 0; special < 2; special++) {
        bn_ids ids = {0};
        bn_bytes out = {0};
        bn_encode_opts o = {.add_bos = -1, .parse_special = special};
        size_t bad;
        if (bn_tokenizer_encode(t, TEXT, sizeof TEXT - 1, &o, &ids, &err))
            bn_tokenizer_decode(t, ids.v, ids.n, special, 1, &out, &bad);
        bn_ids_free(&ids);
        bn_bytes_free(&out);
    }
    bn_tokenizer_free(t);
    return 0;
}
