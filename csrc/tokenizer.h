/* tokenizer.h: the model's tokenizer (LLaMA SentencePiece BPE, byte-level BPE). */
#ifndef BN_TOKENIZER_H
#define BN_TOKENIZER_H

#include "errbuf.h"
#include "gguf.h"

typedef struct bn_tokenizer bn_tokenizer;

/* From a GGUF file's tokenizer.ggml.* metadata; NULL with a message when the
 * file has none or it is malformed. */
bn_tokenizer *bn_tokenizer_from_gguf(const bn_gguf *g, bn_err *err);
void bn_tokenizer_free(bn_tokenizer *t);

#endif
