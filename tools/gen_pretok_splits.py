#!/usr/bin/env python3
"""gen_pretok_splits.py: expected pre-tokenizer splits from an implementation
we did not write in C: Python's `regex` module running each pre-tokenizer's
regexes, chained as Hugging Face's pre_tokenizer Sequence chains them (every
step splits every piece, keeping matches and the text between them; steps
after a ByteLevel with use_regex see one character per byte).

Writes spec/data/pretok-splits.inp (strings in llama.cpp's test-vector
format) and spec/data/pretok-splits.TYPE.out (one line per string: the
words, each as hex bytes, separated by spaces).

    /usr/bin/python3 tools/gen_pretok_splits.py spec/data/pretok-splits [count] [seed]

The regexes are the models' tokenizer.json ones (tiktoken's o200k_base for
GPT-4o; Mistral's Tekken; DeepSeek's classes as its tokenizer.json lists
them, cased letters U+0041..U+1E943).
"""
import random
import sys
import unicodedata

import regex

L3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = L3.replace(r"\p{N}{1,3}", r"\p{N}")
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
U, W = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
C = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
NOT_LN = r"[^\r\n\p{L}\p{N}]?"
TAIL = r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
GPT4O = NOT_LN + U + "*" + W + "+" + C + "|" + NOT_LN + U + "+" + W + "*" + C + r"|\p{N}{1,3}" + TAIL
TEKKEN = NOT_LN + U + "*" + W + "+|" + NOT_LN + U + "+" + W + r"*|\p{N}" + TAIL
CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
CASED = [(0x41, 0x5A), (0x61, 0x7A), (0xB5, 0xB5), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x1BA), (0x1BC, 0x1BF),
         (0x1C4, 0x293), (0x295, 0x2AF), (0x370, 0x373), (0x376, 0x377), (0x37B, 0x37D), (0x37F, 0x37F),
         (0x386, 0x386), (0x388, 0x38A), (0x38C, 0x38C), (0x38E, 0x3A1), (0x3A3, 0x3F5), (0x3F7, 0x481),
         (0x48A, 0x52F), (0x531, 0x556), (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1C90, 0x1CBA),
         (0x1CBD, 0x1CBF), (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1F15),
         (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59),
         (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC),
         (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB),
         (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102), (0x2107, 0x2107),
         (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126),
         (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139), (0x213C, 0x213F),
         (0x2145, 0x2149), (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4),
         (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF3), (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F),
         (0xA771, 0xA787), (0xA78B, 0xA78E), (0xAB70, 0xABBF), (0xFB00, 0xFB06), (0xFB13, 0xFB17),
         (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0x10400, 0x1044F), (0x104B0, 0x104D3), (0x104D8, 0x104FB),
         (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x118A0, 0x118DF), (0x1E900, 0x1E943)]
DS_LETTERS = r"\s?[" + "".join(chr(a) + "-" + chr(b) for a, b in CASED) + "]+"
DS_SYMBOLS = r"\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"


def isolated(pattern):
    r = regex.compile(pattern)

    def split(piece):
        out, pos = [], 0
        for m in r.finditer(piece):
            if m.start() > pos:
                out.append(piece[pos:m.start()])
            out.append(m.group())
            pos = m.end()
        if pos < len(piece):
            out.append(piece[pos:])
        return out
    return split


def contiguous(pred):
    """Hugging Face's Contiguous behaviour: runs of pred and of not-pred."""
    def split(piece):
        out, cur, kind = [], "", None
        for c in piece:
            k = pred(c)
            if cur and k != kind:
                out.append(cur)
                cur = ""
            cur, kind = cur + c, k
        if cur:
            out.append(cur)
        return out
    return split


def hf_punct(c):  # Hugging Face's is_punc: ASCII punctuation or \p{P}
    return (c.isascii() and 0x20 < ord(c) < 0x7F and not c.isalnum()) or unicodedata.category(c).startswith("P")


BYTE_LEVEL = "byte-level"  # the mapping: one character per byte from here on
TYPES = {
    "gpt2": [isolated(GPT2)],
    "llama3": [isolated(L3)],
    "qwen2": [isolated(QWEN2)],
    "gpt4o": [isolated(GPT4O)],
    "tekken": [isolated(TEKKEN)],
    "starcoder": [isolated(r"\p{N}"), isolated(GPT2)],
    "falcon": [contiguous(hf_punct), isolated(GPT2), BYTE_LEVEL, contiguous(str.isnumeric),
               isolated("[0-9][0-9][0-9]")],
    "deepseek-coder": [isolated("[\r\n]"), isolated(r"\s?\p{L}+"), isolated(r"\s?\p{P}+"), isolated(CJK),
                       isolated(r"\p{N}")],
    "deepseek-llm": [isolated("[\r\n]"), isolated(DS_LETTERS), isolated(DS_SYMBOLS), isolated(r"\s+$"),
                     isolated(CJK), isolated(r"\p{N}")],
}


def split(kind, s):
    pieces, mapped = [s], False
    for step in TYPES[kind]:
        if step == BYTE_LEVEL:  # GPT-2's byte-to-character map keeps 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF
            pieces, mapped = [p.encode().decode("latin-1") for p in pieces], True
            continue
        pieces = [q for p in pieces for q in step(p)]
    return [p.encode("latin-1") if mapped else p.encode() for p in pieces]


# characters that tell the pre-tokenizers apart: cases (Lu, Ll, Lt, Lm, Lo),
# marks, numbers of every kind, White_Space, newlines and slashes, ASCII and
# Unicode punctuation and symbols, CJK and Hangul, contractions
POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
    " ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "/\n/", "//",
    ".,;:!?-_()[]{}<>\"'`~@#$%^&*+=/\\|",
    "\u00a0\u2003\u3000\u0085\u2028\u000b",
    "\u0301\u0308\u0327\u094d\u093e\u200d",
    "\u00e9\u00c5\u00df\u00f8\u0142\u00f1\u00c6\u0133\u01c5\u02b0\u1d2c",
    "\u043f\u0440\u0438\u0432\u0435\u0442 \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "\u4f60\u597d\u4e16\u754c\u65e5\u672c\u8a9e\ud55c\uad6d\uc5b4\u3042\u30ab",
    "\u0645\u0631\u062d\u0628\u0627", "\u0928\u092e\u0938\u094d\u0924\u0947",
    "\u0663\u0664\u0665\u06f1\u06f2\u00b2\u00b3\u00bd\u00bc\u216b\u2163\u2460",
    "\U0001f600\U0001f680\u2764",
    "\u2122\u00a9\u00ae\u20ac\u00a3\u00a7\u00b6\u00b0\u00b1\u00d7\u00f7\u00ab\u00bb\u2013\u2014\u2018\u2019\u201c\u201d",
    "\uff01\uff0c\u3002\uff1a\uff5e",
    ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "'x", "'"],
    ["HelloWorld", "iPhone", "XMLParser", "WORLDwide", "don't", "DON'T", "I'M", "x.\n/y"],
]


def random_string(rng):
    parts = []
    for _ in range(rng.randint(1, 16)):
        pool = rng.choice(POOLS)
        if isinstance(pool, list) or rng.random() < 0.3:
            parts.append(rng.choice(pool))
        else:
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
    return "".join(parts)


def main():
    base = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 14)
    strings = [random_string(rng) for _ in range(count)]
    with open(base + ".inp", "w", encoding="utf-8", newline="") as f:
        for s in strings:
            f.write(s + "\n__ggml_vocab_test__\n")
    for kind in TYPES:
        with open(base + "." + kind + ".out", "w") as f:
            for s in strings:
                f.write(" ".join(w.hex() for w in split(kind, s)) + "\n")


if __name__ == "__main__":
    main()
