-- A small GGUF v3 writer for specs (pure Lua, no string.pack, so it runs on
-- LuaJIT too): builds tiny models whose every byte the spec chooses.
local gb = require("support.gguf_bytes")

local M = {}

-- IEEE-754 single precision, round to nearest (values used by specs are
-- exactly representable anyway).
function M.f32(x)
  if x == 0 then return (1 / x < 0) and "\0\0\0\128" or "\0\0\0\0" end
  local sign = 0
  if x < 0 then sign, x = 1, -x end
  local m, e = math.frexp(x) -- x = m * 2^e, 0.5 <= m < 1
  local exp = e + 126
  local mant
  if exp <= 0 then -- subnormal
    mant = math.floor(x / 2 ^ -149 + 0.5)
    exp = 0
  else
    mant = math.floor((m * 2 - 1) * 2 ^ 23 + 0.5)
    if mant == 2 ^ 23 then mant, exp = 0, exp + 1 end
  end
  return gb.u32(sign * 2 ^ 31 + exp * 2 ^ 23 + mant)
end

-- IEEE half precision of a value exactly representable in it.
function M.f16(x)
  if x == 0 then return "\0\0" end
  local sign = 0
  if x < 0 then sign, x = 1, -x end
  local m, e = math.frexp(x)
  local exp = e + 14
  local bits
  if exp <= 0 then
    bits = math.floor(x / 2 ^ -24 + 0.5)
  else
    bits = exp * 1024 + math.floor((m * 2 - 1) * 1024 + 0.5)
  end
  bits = bits + sign * 32768
  return string.char(bits % 256, math.floor(bits / 256))
end

local function str(s) return gb.u64(#s) .. s end

local T = { u32 = 4, i32 = 5, f32 = 6, bool = 7, string = 8, array = 9 }
M.GGML = { F32 = 0, F16 = 1, Q8_0 = 8, Q4_K = 12, Q6_K = 14, BF16 = 30, I2_S = 36 }

-- kvs: list of { key, type_name, value } (arrays: value = { elem_type, list })
-- tensors: list of { name = , dims = { ne0, ne1 }, type = ggml id, data = bytes }
function M.build(kvs, tensors)
  local out = { "GGUF", gb.u32(3), gb.u64(#tensors), gb.u64(#kvs) }
  for _, kv in ipairs(kvs) do
    local key, t, v = kv[1], kv[2], kv[3]
    out[#out + 1] = str(key) .. gb.u32(T[t])
    if t == "u32" then out[#out + 1] = gb.u32(v)
    elseif t == "f32" then out[#out + 1] = M.f32(v)
    elseif t == "bool" then out[#out + 1] = v and "\1" or "\0"
    elseif t == "string" then out[#out + 1] = str(v)
    elseif t == "array" then
      local et, list = v[1], v[2]
      out[#out + 1] = gb.u32(T[et]) .. gb.u64(#list)
      for _, e in ipairs(list) do
        out[#out + 1] = et == "string" and str(e) or et == "f32" and M.f32(e) or gb.u32(e)
      end
    end
  end
  local offset = 0
  local offsets = {}
  for i, t in ipairs(tensors) do
    offsets[i] = offset
    out[#out + 1] = str(t.name) .. gb.u32(#t.dims)
    for _, d in ipairs(t.dims) do out[#out + 1] = gb.u64(d) end
    out[#out + 1] = gb.u32(t.type) .. gb.u64(offset)
    offset = offset + math.ceil(#t.data / 32) * 32
  end
  local head = table.concat(out)
  local pad = (32 - #head % 32) % 32
  local body = { head, string.rep("\0", pad) }
  for _, t in ipairs(tensors) do
    body[#body + 1] = t.data .. string.rep("\0", (32 - #t.data % 32) % 32)
  end
  return table.concat(body)
end

return M
