-- Embeddings and output heads in BF16, Q8_0, Q4_K and Q6_K (as llama.cpp
-- writes them) decode as ggml defines those blocks. A tiny model whose ternary
-- weights are all zero passes each embedding row straight through, so its
-- logits are E[v] . rmsnorm(E[t]); the spec decodes the same bytes with an
-- independent Lua decoder and compares.
local bitnet = require("bitnet")
local gw = require("support.gguf_writer")

local E, V = 256, 4

-- deterministic bytes (a 31-bit LCG)
local function byte_stream(seed)
  local s = seed
  return function()
    s = (s * 1103515245 + 12345) % 2147483648
    return math.floor(s / 65536) % 256
  end
end

local function f16_value(lo, hi)
  local bits = lo + hi * 256
  local sign = bits >= 32768 and -1 or 1
  local e = math.floor(bits / 1024) % 32
  local m = bits % 1024
  if e == 0 then return sign * m * 2 ^ -24 end
  return sign * (1 + m / 1024) * 2 ^ (e - 15)
end

local function s8(b) return b >= 128 and b - 256 or b end

-- Decoders written from ggml's block definitions (ggml-common.h).
local decode = {}
function decode.BF16(b, off) -- the top half of an f32
  local bits = b[off] + b[off + 1] * 256
  local sign = bits >= 32768 and -1 or 1
  local e = math.floor(bits / 128) % 256
  local m = bits % 128
  return { sign * (1 + m / 128) * 2 ^ (e - 127) }, 2
end
function decode.Q8_0(b, off) -- 32 weights: f16 d, int8 q[32]
  local d = f16_value(b[off], b[off + 1])
  local out = {}
  for j = 0, 31 do out[j + 1] = d * s8(b[off + 2 + j]) end
  return out, 34
end
function decode.Q4_K(b, off) -- 256: f16 d, f16 dmin, scales[12], qs[128]
  local d, dmin = f16_value(b[off], b[off + 1]), f16_value(b[off + 2], b[off + 3])
  local sc = off + 4
  local function get(j)
    local q = function(i) return b[sc + i] end
    if j < 4 then return q(j) % 64, q(j + 4) % 64 end
    return q(j + 4) % 16 + math.floor(q(j - 4) / 64) * 16, math.floor(q(j + 4) / 16) + math.floor(q(j) / 64) * 16
  end
  local out = {}
  for g = 0, 3 do
    local s1, m1 = get(2 * g)
    local s2, m2 = get(2 * g + 1)
    for l = 0, 31 do
      local byte = b[off + 16 + 32 * g + l]
      out[64 * g + l + 1] = d * s1 * (byte % 16) - dmin * m1
      out[64 * g + 32 + l + 1] = d * s2 * math.floor(byte / 16) - dmin * m2
    end
  end
  return out, 144
end
function decode.Q6_K(b, off) -- 256: ql[128], qh[64], int8 scales[16], f16 d
  local d = f16_value(b[off + 208], b[off + 209])
  local out = {}
  for e = 0, 255 do
    local half, r = math.floor(e / 128), e % 128
    local quarter, l = math.floor(r / 32), r % 32
    local ql = b[off + 64 * half + l + (quarter % 2) * 32]
    local low = quarter < 2 and ql % 16 or math.floor(ql / 16)
    local high = math.floor(b[off + 128 + 32 * half + l] / 4 ^ quarter) % 4
    local scale = s8(b[off + 192 + 8 * half + math.floor(l / 16) + 2 * quarter])
    out[e + 1] = d * scale * (low + 16 * high - 32)
  end
  return out, 210
end

-- Random blocks with sane f16 scales (d in [2^-8, 2^-7)).
local function make_rows(tname, seed)
  local nextb = byte_stream(seed)
  local bytes, rows = {}, {}
  local per = ({ BF16 = 1, Q8_0 = 32 })[tname] or 256
  local size = ({ BF16 = 2, Q8_0 = 34, Q4_K = 144, Q6_K = 210 })[tname]
  for v = 1, V do
    rows[v] = {}
    for _ = 1, E / per do
      local blk = {}
      for i = 1, size do blk[i] = nextb() end
      local function set_f16(i) blk[i], blk[i + 1] = nextb(), 0x1C + nextb() % 2 end -- 2^-8 .. 2^-6
      if tname == "BF16" then blk[2] = 0x3C + nextb() % 4 + (nextb() % 2) * 128 -- |v| in [2^-7, 2)
      elseif tname == "Q6_K" then set_f16(209) else set_f16(1) end
      if tname == "Q4_K" then set_f16(3) end
      local vals = decode[tname](blk, 1)
      for _, x in ipairs(vals) do rows[v][#rows[v] + 1] = x end
      for _, x in ipairs(blk) do bytes[#bytes + 1] = string.char(x) end
    end
  end
  return table.concat(bytes), rows
end

local function zeros_i2s(rows, cols)
  return string.rep("\85", rows * cols / 4) .. gw.f32(1) .. string.rep("\0", 28)
end

local function ones(n)
  local t = {}
  for i = 1, n do t[i] = gw.f32(1) end
  return table.concat(t)
end

local function build_model(tname, seed)
  local arch = "bitnet-b1.58"
  local emb, rows = make_rows(tname, seed)
  local kvs = {
    { "general.architecture", "string", arch },
    { arch .. ".block_count", "u32", 1 },
    { arch .. ".embedding_length", "u32", E },
    { arch .. ".feed_forward_length", "u32", E },
    { arch .. ".attention.head_count", "u32", 2 },
    { arch .. ".attention.head_count_kv", "u32", 1 },
    { arch .. ".context_length", "u32", 16 },
  }
  local G = gw.GGML
  local tensors = {
    { name = "token_embd.weight", dims = { E, V }, type = G[tname], data = emb },
    { name = "output_norm.weight", dims = { E }, type = G.F32, data = ones(E) },
  }
  local shapes = { attn_q = { E, E }, attn_k = { E, 128 }, attn_v = { E, 128 }, attn_output = { E, E },
    ffn_gate = { E, E }, ffn_up = { E, E }, ffn_down = { E, E } }
  for _, n in ipairs({ "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down" }) do
    local s = shapes[n]
    tensors[#tensors + 1] = { name = "blk.0." .. n .. ".weight", dims = s, type = G.I2_S, data = zeros_i2s(s[2], s[1]) }
  end
  for _, n in ipairs({ "attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm" }) do
    tensors[#tensors + 1] = { name = "blk.0." .. n .. ".weight", dims = { E }, type = G.F32, data = ones(E) }
  end
  return gw.build(kvs, tensors), rows
end

describe("dense embedding types", function()
  for _, tname in ipairs({ "BF16", "Q8_0", "Q4_K", "Q6_K" }) do
    it("decodes " .. tname .. " rows as ggml defines them", function()
      local bytes, rows = build_model(tname, #tname * 7 + 3)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(bytes)
      f:close()
      local model, err = bitnet.load(path)
      os.remove(path)
      assert.is_truthy(model, err)
      assert.are.equal(1, model:info().tensor_types[tname])
      for t = 1, V do
        local x = rows[t]
        local ss = 0
        for _, v in ipairs(x) do ss = ss + v * v end
        local r = 1 / math.sqrt(ss / E + 1e-5)
        local s = model:session()
        s:feed({ t - 1 })
        local lg = s:logits()
        -- A Q6_K head multiplies the activations rounded to 16 bits per
        -- 256-block (kernels.h, bn_quantize_q16): each moves by at most
        -- 1/65534 of its block's largest, so a logit by at most that times
        -- the sum of |w| (these random rows cancel heavily: the logits are
        -- a few units while the sum of |w * x| runs to thousands).
        local xmax = {}
        for i = 1, E do
          local b = math.floor((i - 1) / 256) + 1
          xmax[b] = math.max(xmax[b] or 0, math.abs(x[i] * r))
        end
        for v = 1, V do
          local want, slack = 0, 0
          for i = 1, E do
            want = want + rows[v][i] * x[i] * r
            if tname == "Q6_K" then slack = slack + math.abs(rows[v][i]) * xmax[math.floor((i - 1) / 256) + 1] / 65534 end
          end
          assert.is_true(math.abs(lg[v] - want) <= 1e-4 * math.max(1, math.abs(want)) + slack,
            ("%s: logit[%d] after %d is %.6f, expected %.6f"):format(tname, v - 1, t - 1, lg[v], want))
        end
      end
    end)
  end
end)
