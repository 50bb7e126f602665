"""Check model.py's forward and our I2_S reader against shared/fixtures/gguf/b158-relu2-i2_s.

    /usr/bin/python3 check_fixture.py [fixture_dir]

The fixture is a random-weight bitnet-b1.58 GGUF (I2_S, F16 embedding, relu2) with
logits computed in PyTorch by others. Agreement is expected to ~1e-4 relative except
where float summation order flips an int8 activation rounding (then a few positions
differ by a few tenths; the fixture README allows this).
"""
import json
import sys

import numpy as np
import torch

import gguf_writer as gw
from export import GGUF_NAMES
from model import BitNetLM, Config


def load_gguf_model(path):
    kv, t = gw.read_gguf(path)
    p = kv["general.architecture"] + "."
    L = kv[p + "block_count"]
    cfg = Config(vocab_size=t["token_embd.weight"][0][1],
                 hidden_size=kv[p + "embedding_length"],
                 intermediate_size=kv[p + "feed_forward_length"], num_hidden_layers=L,
                 num_attention_heads=kv[p + "attention.head_count"],
                 num_key_value_heads=kv[p + "attention.head_count_kv"],
                 max_position_embeddings=kv.get(p + "context_length", 256),
                 rms_norm_eps=kv[p + "attention.layer_norm_rms_epsilon"],
                 rope_theta=kv[p + "rope.freq_base"])

    def get(name):
        dims, gt, raw = t[name]
        if gt == gw.GGML_F32:
            a = np.frombuffer(raw, "<f4").reshape(dims[::-1])
        elif gt == gw.GGML_F16:
            a = np.frombuffer(raw, "<f2").astype(np.float32).reshape(dims[::-1])
        else:
            T, s = gw.unpack_i2s(raw, dims[1], dims[0])
            # model.py re-ternarizes with absmean; scale so absmean gives back s
            a = T.astype(np.float32) * np.float32(s / np.mean(T != 0))
        return torch.from_numpy(a.copy())

    sd = {"embed_tokens.weight": get("token_embd.weight"), "norm.weight": get("output_norm.weight")}
    for i in range(L):
        for h, g in GGUF_NAMES.items():
            sd["layers.%d.%s" % (i, h)] = get("blk.%d.%s" % (i, g))
    m = BitNetLM(cfg)
    m.load_state_dict(sd)
    m.eval()
    return m


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fixtures/gguf/b158-relu2-i2_s"
    torch.set_num_threads(1)
    m = load_gguf_model(d + "/model.gguf")
    exp = json.load(open(d + "/expected.json"))
    ok = True
    for s in exp["sequences"]:
        with torch.no_grad():
            lg = m(torch.tensor([s["ids"]]))[0]
        e = torch.tensor(s["last_logits"])
        rel = float((lg[-1] - e).abs().max() / e.abs().max())
        bad = [p for p, t10 in enumerate(s["top10"])
               if float((lg[p, [a for a, _ in t10]] - torch.tensor([b for _, b in t10])).abs().max())
               > 1e-3 * float(e.abs().max())]
        print("len %3d: last-logit max rel err %.2e; positions off by >1e-3 rel: %s" % (
            len(s["ids"]), rel, bad))
        ok &= rel < 2e-2
    ids = list(exp["greedy"]["prompt"])
    out = []
    for _ in range(len(exp["greedy"]["tokens"])):
        with torch.no_grad():
            out.append(int(m(torch.tensor([ids]))[0, -1].argmax()))
        ids.append(out[-1])
    print("greedy matches:", out == exp["greedy"]["tokens"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
