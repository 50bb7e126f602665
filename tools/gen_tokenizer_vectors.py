#!/usr/bin/env python3
"""gen_tokenizer_vectors.py: random hard test strings for the byte-level BPE
tokenizer, with expected ids from an implementation we did not write in C:
the `regex` module's LLaMA-3 pattern and the Python BPE of tools/train/bpe.py.

Writes spec/data/llama3-fuzz.inp / .out in llama.cpp's test-vector format
(strings separated by "\\n__ggml_vocab_test__\\n", one line of ids per string).

    /usr/bin/python3 tools/gen_tokenizer_vectors.py \\
        ../shared/tokenizer-tests/llama3 spec/data/llama3-fuzz [count] [seed] [gpt2]

With `gpt2` the pre-tokenizer is GPT-2's regex instead (the same vocabulary:
the spec loads it with a ByteLevel(use_regex) pre_tokenizer in its place).

Characters are drawn from pools that stress the pre-tokenizer's Unicode
classes (letters of many scripts, combining marks, numbers of every kind,
White_Space variants, \\r\\n runs, contractions in both cases, U+017F which
folds to 's'). Only characters assigned in this Python's Unicode version are
used, so that table versions cannot disagree.
"""
import os
import random
import sys
import unicodedata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "train"))
import bpe  # noqa: E402

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", " \n",
    ".,;:!?-_()[]{}<>\"'`~@#$%^&*+=/\\|",
    "\u00a0\u2003\u3000\u0085\u2028\u200a\u1680\u202f\u000b\u000c",  # White_Space beyond ASCII
    "\u0301\u0308\u0327\u094d\u093e\u200d\u200c\ufe0f",  # marks, joiners (not letters)
    "éÅßøłñçÆĳǅ",  # Latin letters, including a titlecase digraph
    "привет мир Ελληνικά",
    "你好世界日本語한국어",
    "مرحبا שלום",
    "नमस्ते",
    "٣٤٥۱۲²³½¼ⅫⅣ①",  # Nd of other scripts, No, Nl
    "😀🚀👍🏽❤✅🇩🇪",
    "™©®€£¥§¶°±×÷",
    ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "'ſ", "'x", "'"],
    ["<|eot_id|>", "<|begin_of_text|>", "<s>", "</s>"],  # as plain text (special = false)
]


def assigned(c):
    return all(unicodedata.category(x) != "Cn" for x in c)


def random_string(rng):
    parts = []
    for _ in range(rng.randint(1, 24)):
        pool = rng.choice(POOLS)
        item = rng.choice(pool) if isinstance(pool, list) else rng.choice(pool)
        if isinstance(pool, str) and rng.random() < 0.3:  # runs of one class
            item = "".join(rng.choice(pool) for _ in range(rng.randint(2, 6)))
        parts.append(item)
    s = "".join(parts)
    return "".join(c for c in s if assigned(c))


def main():
    src, out = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    if len(sys.argv) > 5 and sys.argv[5] == "gpt2":
        bpe.PRE_RE = bpe.regex.compile(GPT2_PATTERN)
    tok = bpe.load(src)
    strings = [random_string(rng) for _ in range(count)]
    with open(out + ".inp", "w", encoding="utf-8", newline="") as f:
        for s in strings:
            f.write(s + "\n__ggml_vocab_test__\n")
    with open(out + ".out", "w", encoding="utf-8", newline="") as f:
        for s in strings:
            f.write("".join(" %d" % i for i in tok.encode(s)) + "\n")


if __name__ == "__main__":
    main()
