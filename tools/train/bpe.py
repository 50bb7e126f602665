"""Byte-level BPE: trainer, encoder/decoder, and Hugging Face tokenizer.json I/O.

Same scheme as the LLaMA-3 tokenizer (the tokenizer of bitnet-b1.58-2B-4T):
  * text is split into pre-tokens with the LLaMA-3 regex (`regex` module),
  * each pre-token's UTF-8 bytes are mapped to printable unicode characters with
    the GPT-2 byte-to-unicode table,
  * merges are applied by rank within each pre-token (lowest rank first, all
    occurrences left to right), which is what HF `tokenizers` BPE does.

Token ids: 0..255 are the single bytes in byte order, then one token per merge
in rank order, then the special tokens at the end.

    /usr/bin/python3 bpe.py --vocab 4096 --out work/tokenizer
"""
import argparse
import heapq
import json
import os
import sys
from collections import Counter

import regex

PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
           r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_RE = regex.compile(PATTERN)

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
EOT = "<|eot_id|>"
SPECIALS = [BOS, EOS, "<|start_header_id|>", "<|end_header_id|>", EOT,
            "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
            "<|reserved_special_token_2|>"]

# 2B-4T style chat: "<bos>User: hi<|eot_id|>Assistant: "
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ 'System: ' + message['content'] + '<|eot_id|>' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '<|eot_id|>' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + '<|eot_id|>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}")


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character table."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
U2B = {u: b for b, u in B2U.items()}


def pretokenize(text):
    return PRE_RE.findall(text)


def to_unicode(piece):
    return "".join(B2U[b] for b in piece.encode("utf-8"))


# ---------------------------------------------------------------- training

def train(text, vocab_size, specials=SPECIALS, log=sys.stderr):
    """Learn merges. Returns (tokens, merges, final segmentation of each word).

    tokens: list of token strings (byte-level unicode), index = id, without
    specials. merges: list of (left_str, right_str) in rank order.
    """
    n_merges = vocab_size - 256 - len(specials)
    counts = Counter(to_unicode(p) for p in pretokenize(text))
    words = list(counts.keys())
    freqs = [counts[w] for w in words]
    tokens = [B2U[b] for b in range(256)]
    tok_id = {t: i for i, t in enumerate(tokens)}
    segs = [[tok_id[c] for c in w] for w in words]

    pair_count = Counter()
    where = {}
    for wi, s in enumerate(segs):
        f = freqs[wi]
        for a, b in zip(s, s[1:]):
            pair_count[(a, b)] += f
            where.setdefault((a, b), set()).add(wi)

    # max-heap on count; ties broken by the smaller (left, right) token strings
    # so the result is deterministic and independent of hashing.
    def key(p):
        return (-pair_count[p], tokens[p[0]], tokens[p[1]], p)
    heap = [key(p) for p in pair_count]
    heapq.heapify(heap)

    merges = []
    while len(merges) < n_merges and heap:
        negc, _, _, p = heapq.heappop(heap)
        if pair_count.get(p, 0) != -negc or negc == 0:
            continue  # stale entry
        a, b = p
        new = len(tokens)
        tokens.append(tokens[a] + tokens[b])
        merges.append((tokens[a], tokens[b]))
        touched = set()
        for wi in where.pop(p, ()):
            s = segs[wi]
            f = freqs[wi]
            if len(s) < 2:
                continue
            # remove old pair counts
            for x, y in zip(s, s[1:]):
                pair_count[(x, y)] -= f
                touched.add((x, y))
            out = []
            i = 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[wi] = out
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] += f
                touched.add((x, y))
                where.setdefault((x, y), set()).add(wi)
        pair_count.pop(p, None)
        touched.discard(p)
        for q in touched:
            c = pair_count.get(q, 0)
            if c > 0:
                heapq.heappush(heap, key(q))
            else:
                pair_count.pop(q, None)
        if log and len(merges) % 500 == 0:
            print("  %d merges, last %r (count %d)" % (len(merges), tokens[new], -negc),
                  file=log)
    final = {w: [tokens[t] for t in s] for w, s in zip(words, segs)}
    return tokens, merges, final


# ---------------------------------------------------------------- encoding

class Tokenizer:
    def __init__(self, tokens, merges, specials=SPECIALS, ignore_merges=False):
        self.tokens = list(tokens) + list(specials)
        self.vocab = {t: i for i, t in enumerate(self.tokens)}
        self.specials = list(specials)
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.merges = [tuple(m) for m in merges]
        self.ignore_merges = ignore_merges
        self.bos_id = self.vocab[BOS]
        self.eos_id = self.vocab[EOS]
        self.eot_id = self.vocab[EOT]
        self._cache = {}

    def bpe(self, u):
        """Merge by rank within one pre-token (already byte-level unicode)."""
        if self.ignore_merges and u in self.vocab:
            return [u]
        parts = list(u)
        ranks = self.ranks
        while len(parts) > 1:
            best, best_r = None, None
            for p in zip(parts, parts[1:]):
                r = ranks.get(p)
                if r is not None and (best_r is None or r < best_r):
                    best, best_r = p, r
            if best is None:
                break
            a, b = best
            out = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        return parts

    def encode_piece(self, piece):
        ids = self._cache.get(piece)
        if ids is None:
            ids = [self.vocab[t] for t in self.bpe(to_unicode(piece))]
            self._cache[piece] = ids
        return ids

    def encode(self, text, bos=False):
        """Plain text -> ids (special-token strings in text are NOT parsed)."""
        ids = [self.bos_id] if bos else []
        for piece in pretokenize(text):
            ids.extend(self.encode_piece(piece))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t = self.tokens[i]
            if t in self.specials:
                out += t.encode("utf-8")
            else:
                out += bytes(U2B[c] for c in t)
        return out.decode("utf-8", errors="replace")

    # ------------------------------------------------------ HF files
    def to_hf_json(self):
        n = len(self.tokens)
        added = [{"id": self.vocab[s], "content": s, "single_word": False,
                  "lstrip": False, "rstrip": False, "normalized": False,
                  "special": True} for s in self.specials]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PATTERN},
                 "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False,
                 "trim_offsets": True, "use_regex": False}]},
            "post_processor": {"type": "Sequence", "processors": [
                {"type": "ByteLevel", "add_prefix_space": True,
                 "trim_offsets": False, "use_regex": True},
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": BOS, "type_id": 0}},
                            {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}},
                          {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": BOS, "type_id": 1}},
                          {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {BOS: {"id": BOS, "ids": [self.bos_id],
                                          "tokens": [BOS]}}}]},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                        "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": self.ignore_merges,
                      "vocab": {t: i for i, t in enumerate(self.tokens)
                                if t not in self.specials},
                      "merges": ["%s %s" % m for m in self.merges]},
        }

    def config_json(self, max_len):
        dec = {str(self.vocab[s]): {"content": s, "lstrip": False, "normalized": False,
                                    "rstrip": False, "single_word": False,
                                    "special": True} for s in self.specials}
        return {"added_tokens_decoder": dec, "bos_token": BOS, "eos_token": EOS,
                "add_bos_token": True, "add_eos_token": False,
                "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
                "model_input_names": ["input_ids", "attention_mask"],
                "model_max_length": max_len,
                "tokenizer_class": "PreTrainedTokenizerFast"}

    def save(self, d, max_len=256):
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(self.to_hf_json(), f, ensure_ascii=False, indent=2)
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(self.config_json(max_len), f, ensure_ascii=False, indent=2)


def load(d):
    """Load a Tokenizer from a directory holding our tokenizer.json."""
    with open(os.path.join(d, "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    m = j["model"]
    tokens = [None] * len(m["vocab"])
    for t, i in m["vocab"].items():
        tokens[i] = t
    specials = [a["content"] for a in sorted(j["added_tokens"], key=lambda a: a["id"])]
    assert [a["id"] for a in sorted(j["added_tokens"], key=lambda a: a["id"])] == \
        list(range(len(tokens), len(tokens) + len(specials)))
    merges = [tuple(s.split(" ")) for s in m["merges"]]
    return Tokenizer(tokens, merges, specials, ignore_merges=m.get("ignore_merges", False))


def main():
    import time
    import data
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--out", default=os.path.join(data.WORK, "tokenizer"))
    args = ap.parse_args()
    train_text, eval_text, _ = data.load()
    t0 = time.time()
    tokens, merges, final = train(train_text, args.vocab)
    print("trained %d merges in %.1fs" % (len(merges), time.time() - t0))
    tok = Tokenizer(tokens, merges)
    # The rank-order encoder must reproduce the trainer's segmentation exactly.
    bad = [w for w, seg in final.items() if tok.bpe(w) != seg]
    print("words whose encoding differs from training: %d of %d" % (len(bad), len(final)))
    assert not bad, bad[:10]
    # Tokens whose own string does not encode to themselves: with ignore_merges
    # (as in LLaMA-3's tokenizer.json / llama.cpp llama-bpe) those would encode
    # differently when they occur as a whole pre-token.
    selfbad = [t for t in tokens if tok.bpe(t) != [t]]
    print("tokens not self-encoding: %d" % len(selfbad), selfbad[:20])
    assert not selfbad
    tok.ignore_merges = True  # equivalent here (asserted above); as in LLaMA-3
    ev = tok.encode(eval_text)
    tr = tok.encode(train_text)
    print("train tokens %d (%.2f bytes/token); eval tokens %d (%.2f bytes/token)" % (
        len(tr), len(train_text.encode()) / len(tr), len(ev),
        len(eval_text.encode()) / len(ev)))
    assert tok.decode(ev) == eval_text
    tok.save(args.out)
    print("saved", args.out)


if __name__ == "__main__":
    main()
