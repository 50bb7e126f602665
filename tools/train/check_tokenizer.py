"""Print test cases (text + our ids) as JSON for check_tokenizer.mjs.

Cases: the held-out eval text, the train text in 64 KB slices, and llama.cpp's
tokenizer test strings (odd whitespace, unicode, digits, contractions).
"""
import json
import os
import sys

import bpe
import data

d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(data.WORK, "tokenizer")
tok = bpe.load(d)
train_text, eval_text, _ = data.load()
texts = [eval_text] + [train_text[i:i + 65536] for i in range(0, len(train_text), 65536)]
inp = "/work/shared/tokenizer-tests/ggml-vocab-llama-bpe.gguf.inp"
if os.path.exists(inp):
    texts += open(inp, encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
json.dump([{"text": t, "ids": tok.encode(t)} for t in texts], sys.stdout)
