"""Held-out evaluation (Ruth + Philippians) and text samples.

    /usr/bin/python3 eval.py --ckpt work/main/ckpt.pt
    /usr/bin/python3 eval.py --hf ../../models/kjv-bitnet-6m/hf     # exported model

Protocol (the C engine implements the same one):
  ids = [bos] + encode(text); N = len(ids); C = context; stride = C/2.
  Windows start at 0, stride, 2*stride, ...; each covers ids[start:min(start+C, N)]
  and is evaluated from scratch. A window scores positions p from
  max(start+1, previous window's end) to its end (exclusive), so every position
  1..N-1 is scored exactly once with NLL = -log softmax(logits[p-1])[ids[p]].
  Stop after the window that reaches N.
  perplexity = exp(total_nll / n_scored); bits_per_byte = total_nll / (ln 2 * n_bytes).
The forward is the quantized (ternary weights, int8 activations) one, in fp32.
"""
import argparse
import json
import math
import os

import torch

import bpe
import data
import safetensors_io
from model import BitNetLM, Config, generate


def load_ckpt(path):
    ck = torch.load(path, map_location="cpu")
    cfg = Config(**ck["config"])
    m = BitNetLM(cfg)
    m.load_state_dict(ck["model"])
    m.eval()
    return m, bpe.load(os.path.join(data.WORK, "tokenizer")), ck


def load_hf(d):
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    cfg = Config(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
                 intermediate_size=c["intermediate_size"],
                 num_hidden_layers=c["num_hidden_layers"],
                 num_attention_heads=c["num_attention_heads"],
                 num_key_value_heads=c["num_key_value_heads"],
                 max_position_embeddings=c["max_position_embeddings"],
                 rms_norm_eps=c["rms_norm_eps"], rope_theta=c["rope_theta"],
                 bos_token_id=c["bos_token_id"], eos_token_id=c["eos_token_id"])
    m = BitNetLM(cfg)
    m.load_hf_state_dict(safetensors_io.read(os.path.join(d, "model.safetensors")))
    m.eval()
    return m, bpe.load(d)


@torch.no_grad()
def evaluate(model, tok, text, ctx=None):
    C = ctx or model.cfg.max_position_embeddings
    stride = C // 2
    ids = [tok.bos_id] + tok.encode(text)
    N = len(ids)
    total, n, prev_end, start, windows = 0.0, 0, 0, 0, 0
    while True:
        end = min(start + C, N)
        logits = model(torch.tensor([ids[start:end]]))[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        for p in range(max(start + 1, prev_end), end):
            total -= float(logp[p - 1 - start, ids[p]])
            n += 1
        windows += 1
        prev_end = end
        if end >= N:
            break
        start += stride
    assert n == N - 1
    n_bytes = len(text.encode("utf-8"))
    return {"n_tokens": N, "n_scored": n, "n_bytes": n_bytes, "windows": windows,
            "context": C, "total_nll": total, "nll_per_token": total / n,
            "perplexity": math.exp(total / n),
            "bits_per_byte": total / (math.log(2) * n_bytes)}


def samples(model, tok, prompt="And it came to pass", n=60, seed=0):
    ids = [tok.bos_id] + tok.encode(prompt)
    greedy = generate(model, ids, n)
    g = torch.Generator().manual_seed(seed)
    sampled = generate(model, ids, n, temperature=0.8, top_k=40, generator=g)
    return {"prompt": prompt, "greedy_ids": greedy,
            "greedy": prompt + tok.decode(greedy),
            "sampled_t0.8_k40_seed%d" % seed: prompt + tok.decode(sampled)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt")
    ap.add_argument("--hf")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", nargs="*", default=["And it came to pass"])
    ap.add_argument("--json", help="write results here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.hf:
        model, tok = load_hf(a.hf)
    else:
        model, tok, _ = load_ckpt(a.ckpt or os.path.join(data.WORK, "main", "ckpt.pt"))
    _, eval_text, _ = data.load()
    res = {"eval": evaluate(model, tok, eval_text)}
    print(json.dumps(res["eval"], indent=1))
    res["samples"] = []
    for i, p in enumerate(a.prompts):
        s = samples(model, tok, p, a.n, seed=i)
        res["samples"].append(s)
        for k, v in s.items():
            if k not in ("prompt", "greedy_ids"):
                print("--- %s:\n%s" % (k, v))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
