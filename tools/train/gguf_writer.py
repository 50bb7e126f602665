"""A small GGUF v3 writer (and a reader used to check what we wrote).

File layout (little-endian):
  "GGUF" | u32 version=3 | u64 n_tensors | u64 n_kv
  n_kv x (string key | u32 value_type | value)
  n_tensors x (string name | u32 n_dims | u64 dims[n_dims] (ne0 first = row length)
               | u32 ggml_type | u64 offset relative to the data section)
  zero padding to general.alignment, then the tensor data, each tensor starting
  at an aligned offset. Strings are u64 length + UTF-8 bytes (no NUL).

Tensor types written here: F32 (0), F16 (1), I2_S (36, bitnet.cpp x86 layout:
128-weight / 32-byte blocks, then an f32 per-tensor scale and 28 zero bytes).
"""
import struct

import numpy as np

# value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
           F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}

GGML_F32, GGML_F16, GGML_I2_S = 0, 1, 36


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def pack_i2s(t, scale):
    """Ternary int matrix T[M][K] (values -1/0/1) + per-tensor scale -> I2_S bytes.

    Block b = flat elements 128b..128b+127 (rows never straddle: K % 128 == 0).
    Byte j of the block: bits 7:6 = element 128b+j, 5:4 = +32, 3:2 = +64, 1:0 = +96.
    Code = w + 1 (0 -> -1, 1 -> 0, 2 -> +1).
    """
    t = np.asarray(t)
    M, K = t.shape
    assert K % 128 == 0, "I2_S needs K % 128 == 0"
    codes = (t.astype(np.int16) + 1).astype(np.uint8).reshape(-1, 4, 32)  # [blocks, group, j]
    assert codes.max() <= 2
    packed = (codes[:, 0] << 6) | (codes[:, 1] << 4) | (codes[:, 2] << 2) | codes[:, 3]
    out = packed.astype(np.uint8).tobytes()
    assert len(out) == M * K // 4
    return out + struct.pack("<f", float(scale)) + b"\0" * 28


def unpack_i2s(raw, M, K):
    """Inverse of pack_i2s: (T int8 [M][K], scale)."""
    n = M * K // 4
    p = np.frombuffer(raw[:n], dtype=np.uint8).reshape(-1, 32)
    codes = np.stack([(p >> 6) & 3, (p >> 4) & 3, (p >> 2) & 3, p & 3], axis=1)
    t = codes.reshape(M, K).astype(np.int8) - 1
    scale = struct.unpack("<f", raw[n:n + 4])[0]
    return t, scale


class GGUFWriter:
    def __init__(self, alignment=32):
        self.alignment = alignment
        self.kv = []          # (key, type, value, elem_type)
        self.tensors = []     # (name, dims, ggml_type, bytes)

    # -- metadata
    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value, None))

    def add_array(self, key, etype, values):
        self.kv.append((key, ARRAY, list(values), etype))

    def add_string(self, key, v): self.add(key, STRING, v)
    def add_u32(self, key, v): self.add(key, U32, int(v))
    def add_f32(self, key, v): self.add(key, F32, float(v))
    def add_bool(self, key, v): self.add(key, BOOL, bool(v))

    # -- tensors; dims are GGUF order (ne0 first)
    def add_tensor_f32(self, name, a):
        a = np.ascontiguousarray(a, dtype="<f4")
        self.tensors.append((name, list(a.shape[::-1]), GGML_F32, a.tobytes()))

    def add_tensor_f16(self, name, a):
        a = np.ascontiguousarray(a, dtype="<f2")
        self.tensors.append((name, list(a.shape[::-1]), GGML_F16, a.tobytes()))

    def add_tensor_i2s(self, name, t, scale):
        M, K = t.shape
        self.tensors.append((name, [K, M], GGML_I2_S, pack_i2s(t, scale)))

    def _value(self, vtype, v):
        if vtype == STRING:
            return _str(v)
        return struct.pack(_SCALAR[vtype], v)

    def write(self, path):
        al = self.alignment
        out = bytearray()
        out += b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        for key, vtype, v, etype in self.kv:
            out += _str(key) + struct.pack("<I", vtype)
            if vtype == ARRAY:
                out += struct.pack("<IQ", etype, len(v))
                for e in v:
                    out += self._value(etype, e)
            else:
                out += self._value(vtype, v)
        off = 0
        offsets = []
        for name, dims, gtype, data in self.tensors:
            offsets.append(off)
            out += _str(name) + struct.pack("<I", len(dims))
            out += b"".join(struct.pack("<Q", d) for d in dims)
            out += struct.pack("<IQ", gtype, off)
            off += len(data)
            off += (al - off % al) % al
        out += b"\0" * ((al - len(out) % al) % al)
        base = len(out)
        for (name, dims, gtype, data), o in zip(self.tensors, offsets):
            assert len(out) - base == o
            out += data
            out += b"\0" * ((al - len(out) % al) % al)
        with open(path, "wb") as f:
            f.write(out)


def read_gguf(path):
    """Parse a GGUF file: (kv dict, {name: (dims, ggml_type, raw bytes)})."""
    with open(path, "rb") as f:
        raw = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, raw, pos)
        pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string():
        nonlocal pos
        n = take("<Q")
        s = raw[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def value(t):
        if t == STRING:
            return string()
        if t == ARRAY:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(_SCALAR[t])

    assert raw[:4] == b"GGUF"
    pos = 4
    version, nt, nkv = take("<I"), take("<Q"), take("<Q")
    assert version == 3
    kv = {}
    for _ in range(nkv):
        k = string()
        kv[k] = value(take("<I"))
    infos = []
    for _ in range(nt):
        name = string()
        nd = take("<I")
        dims = [take("<Q") for _ in range(nd)]
        gtype, off = take("<I"), take("<Q")
        infos.append((name, dims, gtype, off))
    al = kv.get("general.alignment", 32)
    base = pos + (al - pos % al) % al
    tensors = {}
    for name, dims, gtype, off in infos:
        n = int(np.prod(dims))
        size = {GGML_F32: 4 * n, GGML_F16: 2 * n, GGML_I2_S: n // 4 + 32}[gtype]
        tensors[name] = (dims, gtype, raw[base + off:base + off + size])
    return kv, tensors
