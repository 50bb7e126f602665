/* tokenizer.c: placeholder until the tokenizer lands (issue 3). */
#include "tokenizer.h"

bn_tokenizer *bn_tokenizer_from_gguf(const bn_gguf *g, bn_err *err) {
    (void)g;
    bn_errf(err, "tokenizers are not implemented yet");
    return NULL;
}

void bn_tokenizer_free(bn_tokenizer *t) { (void)t; }
