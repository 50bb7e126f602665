"""An independent PyTorch forward pass of a BitNet GGUF fixture whose tensors
are all F32 (../shared/fixtures/gguf/bitnet-silu-f32), written straight from
the math in REFERENCE.md. Used to check that where our engine and a fixture's
expected.json disagree, a second implementation agrees with our engine (the
disagreements are int8 rounding knife edges, see spec/support/fixtures.lua).

usage: /usr/bin/python3 tools/torch_reference.py MODEL.gguf EXPECTED.json
"""
import json
import struct
import sys

import numpy as np
import torch
path = sys.argv[1]
d = open(path,'rb').read()
def rs(p):
    n, = struct.unpack_from('<Q', d, p); return d[p+8:p+8+n].decode('utf8','replace'), p+8+n
sz = {0:1,1:1,2:2,3:2,4:4,5:4,6:4,7:1,10:8,11:8,12:8}
fmt = {0:'B',1:'b',2:'H',3:'h',4:'I',5:'i',6:'f',7:'?',10:'Q',11:'q',12:'d'}
def rv(t, p):
    if t == 8: return rs(p)
    if t == 9:
        et, n = struct.unpack_from('<IQ', d, p); p += 12; out=[]
        for i in range(n):
            v, p = rv(et, p); out.append(v)
        return out, p
    return struct.unpack_from('<'+fmt[t], d, p)[0], p+sz[t]
nt, nkv = struct.unpack_from('<QQ', d, 8); p = 24
kv = {}
for i in range(nkv):
    k, p = rs(p); t, = struct.unpack_from('<I', d, p); p += 4
    kv[k], p = rv(t, p)
tinfo = {}
for i in range(nt):
    n, p = rs(p); nd, = struct.unpack_from('<I', d, p); p += 4
    ne = struct.unpack_from('<'+'Q'*nd, d, p); p += 8*nd
    t, off = struct.unpack_from('<IQ', d, p); p += 12
    tinfo[n] = (ne, t, off)
base = (p + 31)//32*32
def T(n):
    ne, t, off = tinfo[n]; cnt = int(np.prod(ne))
    assert t == 0
    a = np.frombuffer(d, dtype=np.float32, count=cnt, offset=base+off)
    return torch.tensor(a.reshape(list(reversed(ne))).copy())
arch = kv['general.architecture']
L = kv[arch+'.block_count']; H = kv[arch+'.attention.head_count']; KV = kv[arch+'.attention.head_count_kv']
E = kv[arch+'.embedding_length']; hd = E//H; theta = kv[arch+'.rope.freq_base']; eps = kv[arch+'.attention.layer_norm_rms_epsilon']
def rms(x, w): return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))
def aq(x):
    s = 127.0 / x.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
    return (x*s).round().clamp(-128,127)/s
def lin(x, w): return torch.nn.functional.linear(aq(x), w)
def rope(x, pos):  # x [T, nh, hd]
    inv = 1.0/(theta ** (torch.arange(0, hd, 2).float()/hd))
    f = pos[:,None].float() * inv[None,:]
    emb = torch.cat([f,f],-1); c = emb.cos()[:,None,:]; s = emb.sin()[:,None,:]
    x1, x2 = x[..., :hd//2], x[..., hd//2:]
    rot = torch.cat([-x2, x1], -1)
    return x*c + rot*s
exp = json.load(open(sys.argv[2]))
ids = torch.tensor(exp['sequences'][2]['ids'])
n = len(ids)
x = T('token_embd.weight')[ids]
pos = torch.arange(n)
for l in range(L):
    g = lambda nm: T(f'blk.{l}.{nm}.weight')
    a = rms(x, g('attn_norm'))
    q = lin(a, g('attn_q')).view(n, H, hd); k = lin(a, g('attn_k')).view(n, KV, hd); v = lin(a, g('attn_v')).view(n, KV, hd)
    q = rope(q, pos); k = rope(k, pos)
    k = k.repeat_interleave(H//KV, dim=1); v = v.repeat_interleave(H//KV, dim=1)
    sc = torch.einsum('thd,shd->hts', q, k) / hd**0.5
    mask = torch.triu(torch.ones(n,n,dtype=torch.bool), 1)
    sc = sc.masked_fill(mask, float('-inf')).softmax(-1)
    o = torch.einsum('hts,shd->thd', sc, v).reshape(n, E)
    o = rms(o, g('attn_sub_norm'))
    x = x + lin(o, g('attn_output'))
    b = rms(x, g('ffn_norm'))
    gt = lin(b, g('ffn_gate')); up = lin(b, g('ffn_up'))
    act = kv.get(arch+'.hidden_activation', 'silu')
    m = (torch.relu(gt)**2 if act=='relu2' else torch.nn.functional.silu(gt)) * up
    m = rms(m, g('ffn_sub_norm'))
    x = x + lin(m, g('ffn_down'))
x = rms(x, T('output_norm.weight'))
logits = x @ T('token_embd.weight').T
for i in range(n):
    print('position', i + 1, 'top-1', logits[i].argmax().item(), '%.6f' % logits[i].max().item(),
          'reference', exp['sequences'][2]['top10'][i][0])
print('last maxdiff vs expected', (logits[-1] - torch.tensor(exp['sequences'][2]['last_logits'])).abs().max().item())
