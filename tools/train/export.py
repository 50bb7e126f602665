"""Export a trained checkpoint to models/<name>/: HF directory, GGUF, reference.json.

    /usr/bin/python3 export.py --ckpt work/main/ckpt.pt --name kjv-bitnet-6m

The token embedding is rounded to fp16 once, here, and that same value is used
in model.safetensors (stored as f32), in the GGUF (F16) and for the reference
logits, so both shipped forms describe exactly the same model. Linear weights are
stored as f32 masters in safetensors (the loader ternarizes with absmean) and as
I2_S (already ternary, with the absmean scale) in the GGUF.
"""
import argparse
import json
import os

import numpy as np
import torch

import bpe
import data
import gguf_writer as gw
import safetensors_io
from eval import load_ckpt, load_hf
from model import BitNetLM, generate, ternarize

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ARCH = "bitnet-b1.58"

GGUF_NAMES = {  # HF suffix -> GGUF suffix, per layer
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.attn_sub_norm.weight": "attn_sub_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "mlp.ffn_sub_norm.weight": "ffn_sub_norm.weight",
}


def hf_config(cfg):
    return {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "hidden_act": "relu2",
        "tie_word_embeddings": True,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "torch_dtype": "float32",
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                "quantization_mode": "online"},
    }


def write_hf(model, tok, d):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_config(model.cfg), f, indent=2)
    safetensors_io.write(os.path.join(d, "model.safetensors"), model.hf_state_dict(),
                         {"format": "pt"})
    tok.save(d, max_len=model.cfg.max_position_embeddings)


def write_gguf(model, tok, path, name):
    cfg = model.cfg
    w = gw.GGUFWriter(alignment=32)
    w.add_string("general.architecture", ARCH)
    w.add_string("general.name", name)
    w.add_u32("general.alignment", 32)
    w.add_u32("general.file_type", 40)                 # MOSTLY_I2_S
    p = ARCH + "."
    w.add_u32(p + "block_count", cfg.num_hidden_layers)
    w.add_u32(p + "context_length", cfg.max_position_embeddings)
    w.add_u32(p + "embedding_length", cfg.hidden_size)
    w.add_u32(p + "feed_forward_length", cfg.intermediate_size)
    w.add_u32(p + "attention.head_count", cfg.num_attention_heads)
    w.add_u32(p + "attention.head_count_kv", cfg.num_key_value_heads)
    w.add_f32(p + "attention.layer_norm_rms_epsilon", cfg.rms_norm_eps)
    w.add_f32(p + "rope.freq_base", cfg.rope_theta)
    w.add_u32(p + "rope.dimension_count", cfg.head_dim)
    w.add_u32(p + "vocab_size", cfg.vocab_size)
    w.add_string(p + "hidden_activation", "relu2")
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "llama-bpe")
    w.add_array("tokenizer.ggml.tokens", gw.STRING, tok.tokens)
    w.add_array("tokenizer.ggml.token_type", gw.I32,
                [3 if t in tok.specials else 1 for t in tok.tokens])
    w.add_array("tokenizer.ggml.merges", gw.STRING, ["%s %s" % m for m in tok.merges])
    w.add_u32("tokenizer.ggml.bos_token_id", tok.bos_id)
    w.add_u32("tokenizer.ggml.eos_token_id", tok.eos_id)
    w.add_u32("tokenizer.ggml.eot_token_id", tok.eot_id)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_string("tokenizer.chat_template", bpe.CHAT_TEMPLATE)

    sd = model.hf_state_dict()
    w.add_tensor_f16("token_embd.weight", sd["model.embed_tokens.weight"].numpy())
    w.add_tensor_f32("output_norm.weight", sd["model.norm.weight"].numpy())
    for i in range(cfg.num_hidden_layers):
        for hf_s, g_s in GGUF_NAMES.items():
            t = sd["model.layers.%d.%s" % (i, hf_s)]
            gname = "blk.%d.%s" % (i, g_s)
            if t.dim() == 2:
                T, a = ternarize(t)
                w.add_tensor_i2s(gname, T.numpy(), a)
            else:
                w.add_tensor_f32(gname, t.numpy())
    w.write(path)


def check_gguf(model, path):
    """Read the GGUF back and compare every tensor with the model."""
    kv, tensors = gw.read_gguf(path)
    sd = model.hf_state_dict()
    emb_dims, _, raw = tensors["token_embd.weight"]
    emb = np.frombuffer(raw, dtype="<f2").reshape(emb_dims[1], emb_dims[0])
    assert np.array_equal(emb.astype(np.float32), sd["model.embed_tokens.weight"].numpy())
    n = 0
    for i in range(model.cfg.num_hidden_layers):
        for hf_s, g_s in GGUF_NAMES.items():
            t = sd["model.layers.%d.%s" % (i, hf_s)]
            dims, gtype, raw = tensors["blk.%d.%s" % (i, g_s)]
            if t.dim() == 2:
                assert gtype == gw.GGML_I2_S and dims == [t.shape[1], t.shape[0]]
                T, a = gw.unpack_i2s(raw, t.shape[0], t.shape[1])
                T0, a0 = ternarize(t)
                assert np.array_equal(T, T0.numpy()) and np.float32(a) == np.float32(a0)
            else:
                assert gtype == gw.GGML_F32
                assert np.array_equal(np.frombuffer(raw, "<f4"), t.numpy())
            n += 1
    assert len(tensors) == n + 2
    return kv, len(tensors)


@torch.no_grad()
def reference(model, tok):
    _, eval_text, _ = data.load()
    eval_ids = tok.encode(eval_text)
    chat = ("<|begin_of_text|>", "User: Who was Naomi?", "<|eot_id|>", "Assistant: ")
    chat_ids = [tok.bos_id] + tok.encode(chat[1]) + [tok.eot_id] + tok.encode(chat[3])
    seqs = [
        ("bos_only", [tok.bos_id]),
        ("genesis", [tok.bos_id] + tok.encode("In the beginning God created the heaven")),
        ("no_bos", tok.encode("And the LORD said unto Moses,")),
        ("chat", chat_ids),
        ("eval_window_256", ([tok.bos_id] + eval_ids)[:model.cfg.max_position_embeddings]),
    ]
    out = {"note": "logits are the PyTorch quantized fp32 forward (ternary absmean weights, "
                   "per-token int8 absmax activations) of the exported weights, for the "
                   "last position of each sequence, full vocabulary",
           "sequences": []}
    for name, ids in seqs:
        logits = model(torch.tensor([ids]))[0, -1].float()
        top = torch.topk(logits, 5)
        out["sequences"].append({
            "name": name, "ids": ids, "text": tok.decode(ids),
            "top5_ids": top.indices.tolist(),
            "top5_logits": [round(float(v), 5) for v in top.values],
            "last_logits": [float("%.6g" % v) for v in logits.tolist()]})
    prompt = "And it came to pass"
    pids = [tok.bos_id] + tok.encode(prompt)
    g = generate(model, pids, 48)
    out["greedy"] = {"prompt": prompt, "prompt_ids": pids, "n": len(g), "ids": g,
                     "text": prompt + tok.decode(g)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(data.WORK, "main", "ckpt.pt"))
    ap.add_argument("--name", default="kjv-bitnet-6m")
    ap.add_argument("--out", default=os.path.join(ROOT, "models"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, tok, ck = load_ckpt(a.ckpt)
    with torch.no_grad():   # one fp16 rounding of the embedding, shared by all forms
        e = model.embed_tokens.weight
        e.copy_(e.half().float())
    d = os.path.join(a.out, a.name)
    hf_dir = os.path.join(d, "hf")
    write_hf(model, tok, hf_dir)
    gguf_path = os.path.join(d, a.name + ".gguf")
    write_gguf(model, tok, gguf_path, a.name)
    kv, nt = check_gguf(model, gguf_path)
    # the HF directory must load back to exactly the same model
    m2, tok2 = load_hf(hf_dir)
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), m2.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2), k1
    assert tok2.tokens == tok.tokens and tok2.merges == tok.merges
    ref = reference(model, tok)
    ref["checkpoint_step"] = ck["step"]
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)
    sizes = {p: os.path.getsize(os.path.join(dp, p))
             for dp, _, fs in os.walk(d) for p in fs}
    print("exported step %d to %s: %d GGUF tensors, %d GGUF keys" % (ck["step"], d, nt, len(kv)))
    for p, s in sorted(sizes.items()):
        print("  %-24s %9d bytes" % (p, s))
    print("  total %.2f MB" % (sum(sizes.values()) / 1e6))
    print("greedy:", ref["greedy"]["text"])


if __name__ == "__main__":
    main()
