"""A small BitNet b1.58 language model with the graph of microsoft/bitnet-b1.58-2B-4T.

Per layer:
    a = RMSNorm(x; input_layernorm)
    q, k, v = BitLinear(a)               (GQA: n_kv_heads <= n_heads)
    RoPE NEOX / rotate_half per head
    o = causal softmax attention
    x = x + BitLinear_o(RMSNorm(o; attn_sub_norm))
    b = RMSNorm(x; post_attention_layernorm)
    m = relu(BitLinear_gate(b))^2 * BitLinear_up(b)
    x = x + BitLinear_down(RMSNorm(m; ffn_sub_norm))
logits = embed_tokens.weight @ RMSNorm(x; norm)     (tied, full precision)

BitLinear (b1.58 paper): weights ternarized per tensor with absmean,
activations int8 per token with absmax; straight-through estimators.
No biases anywhere.
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    bos_token_id: int = 4088
    eos_token_id: int = 4089

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_dict(self):
        return asdict(self)


def weight_quant(w):
    """Per-tensor absmean ternarization; returns the effective weight T*a."""
    a = w.abs().mean().clamp(min=1e-5)
    return (w / a).round().clamp(-1, 1) * a


def ternarize(w):
    """(T int8 in {-1,0,1}, a float) for export."""
    a = w.abs().mean().clamp(min=1e-5)
    return (w / a).round().clamp(-1, 1).to(torch.int8), float(a)


def act_quant(x):
    """Per-token absmax int8 quantization; returns q/s."""
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


class BitLinear(nn.Linear):
    def __init__(self, fin, fout):
        super().__init__(fin, fout, bias=False)

    def forward(self, x):
        w = self.weight
        xq = x + (act_quant(x) - x).detach()
        wq = w + (weight_quant(w) - w).detach()
        return F.linear(xq, wq)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def rope_tables(cfg, T, device=None):
    """cos/sin [T, head_dim] in fp32, computed as HF transformers does."""
    hd = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    pos = torch.arange(T, dtype=torch.int64).float()
    f = torch.outer(pos, inv)                      # [T, hd/2]
    f = torch.cat([f, f], dim=-1)                  # NEOX: pair i with i + hd/2
    return f.cos().to(device), f.sin().to(device)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, hd = cfg.hidden_size, cfg.head_dim
        self.q_proj = BitLinear(d, cfg.num_attention_heads * hd)
        self.k_proj = BitLinear(d, cfg.num_key_value_heads * hd)
        self.v_proj = BitLinear(d, cfg.num_key_value_heads * hd)
        self.o_proj = BitLinear(cfg.num_attention_heads * hd, d)
        self.attn_sub_norm = RMSNorm(cfg.num_attention_heads * hd, cfg.rms_norm_eps)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        c = self.cfg
        H, Hk, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        # the three projections share one quantized input
        xq = x + (act_quant(x) - x).detach()
        def lin(m):
            w = m.weight
            return F.linear(xq, w + (weight_quant(w) - w).detach())
        q = lin(self.q_proj).view(B, T, H, hd).transpose(1, 2)
        k = lin(self.k_proj).view(B, T, Hk, hd).transpose(1, 2)
        v = lin(self.v_proj).view(B, T, Hk, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if Hk != H:
            k = k.repeat_interleave(H // Hk, dim=1)
            v = v.repeat_interleave(H // Hk, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, H * hd)
        return self.o_proj(self.attn_sub_norm(o))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = BitLinear(d, f)
        self.up_proj = BitLinear(d, f)
        self.down_proj = BitLinear(f, d)
        self.ffn_sub_norm = RMSNorm(f, cfg.rms_norm_eps)

    def forward(self, x):
        xq = x + (act_quant(x) - x).detach()
        def lin(m):
            w = m.weight
            return F.linear(xq, w + (weight_quant(w) - w).detach())
        m = F.relu(lin(self.gate_proj)).square() * lin(self.up_proj)
        return self.down_proj(self.ffn_sub_norm(m))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class BitNetLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        cos, sin = rope_tables(cfg, cfg.max_position_embeddings)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, std)
            if n.endswith("o_proj.weight") or n.endswith("down_proj.weight"):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.cfg.num_hidden_layers))

    def forward(self, ids):
        T = ids.shape[1]
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        x = self.norm(x)
        return F.linear(x, self.embed_tokens.weight)

    def n_params(self):
        emb = self.embed_tokens.weight.numel()
        total = sum(p.numel() for p in self.parameters())
        return total, total - emb

    # --------------------------------------------------------- HF naming
    def hf_state_dict(self):
        """float32 tensors named exactly as HF BitNetForCausalLM."""
        out = {}
        for n, p in self.state_dict().items():
            if n.startswith("rope_"):
                continue
            out["model." + n] = p.detach().float().contiguous()
        return out

    def load_hf_state_dict(self, sd):
        self.load_state_dict({k[len("model."):]: v for k, v in sd.items()}, strict=True)


@torch.no_grad()
def generate(model, ids, n, temperature=0.0, top_k=0, generator=None):
    """Simple sampler without KV cache (models are small); returns new ids."""
    model.eval()
    ids = list(ids)
    out = []
    C = model.cfg.max_position_embeddings
    for _ in range(n):
        x = torch.tensor([ids[-C:]])
        logits = model(x)[0, -1].float()
        if temperature <= 0:
            t = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k:
                v, _ = logits.topk(top_k)
                logits[logits < v[-1]] = float("-inf")
            t = int(torch.multinomial(logits.softmax(-1), 1, generator=generator))
        ids.append(t)
        out.append(t)
    return out
