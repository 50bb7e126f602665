/* hf_vocab.h: a Hugging Face tokenizer.json (+ tokenizer_config.json and
 * config.json for the special ids) turned into GGUF tokenizer.ggml.*
 * metadata, as llama.cpp's converter writes it: byte-level BPE becomes model
 * "gpt2" with merges, SentencePiece-style BPE (byte_fallback) model "llama"
 * with scores. Used when converting a Hugging Face directory to GGUF. */
#ifndef BN_HF_VOCAB_H
#define BN_HF_VOCAB_H

#include "base/errbuf.h"
#include "formats/gguf_writer.h"

/* Writes the tokenizer metadata of directory dir into w. A directory
 * without tokenizer.json writes nothing and succeeds. n_vocab is the
 * model's vocabulary size: ids the tokenizer does not define up to it are
 * written as unused "[PADn]" tokens, as llama.cpp does. */
int bn_hf_vocab_to_gguf(const char *dir, int n_vocab, bn_gguf_writer *w, bn_err *err);

#endif
