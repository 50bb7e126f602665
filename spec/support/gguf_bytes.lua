-- Byte-level GGUF reading and patching for the malformed-file specs. Pure
-- Lua without string.pack so it also runs on LuaJIT; 64-bit fields are
-- handled as (low, high) 32-bit halves where values may exceed 2^53.
local M = {}

local function u32_at(s, pos) -- pos is 1-based
  local a, b, c, d = s:byte(pos, pos + 3)
  return a + b * 256 + c * 65536 + d * 16777216
end

local function u64_at(s, pos)
  return u32_at(s, pos) + u32_at(s, pos + 4) * 4294967296
end

function M.u32(n)
  local out = {}
  for i = 1, 4 do
    out[i] = n % 256
    n = math.floor(n / 256)
  end
  return string.char(out[1], out[2], out[3], out[4])
end

function M.u64(n)
  return M.u32(n % 4294967296) .. M.u32(math.floor(n / 4294967296))
end

M.u32_at, M.u64_at = u32_at, u64_at

local scalar = { [0] = 1, 1, 2, 2, 4, 4, 4, 1, nil, nil, 8, 8, 8 }

local function skip(s, pos, t)
  if t == 8 then return pos + 8 + u64_at(s, pos) end
  if t == 9 then
    local et, n = u32_at(s, pos), u64_at(s, pos + 4)
    pos = pos + 12
    if scalar[et] then return pos + n * scalar[et] end
    for _ = 1, n do pos = skip(s, pos, et) end
    return pos
  end
  return pos + scalar[t]
end

-- Parses a well-formed file: returns { kv = { [key] = { type, pos } },
-- tensors = { { name, name_pos, n_dims, dims_pos, type_pos, offset_pos,
-- offset } }, n_tensors_pos, n_kv_pos, data_start } (positions 1-based).
function M.parse(s)
  local info = { kv = {}, tensors = {}, n_tensors_pos = 9, n_kv_pos = 17 }
  local nt, nkv = u64_at(s, 9), u64_at(s, 17)
  local pos = 25
  for _ = 1, nkv do
    local klen = u64_at(s, pos)
    local key = s:sub(pos + 8, pos + 7 + klen)
    local tpos = pos + 8 + klen
    local t = u32_at(s, tpos)
    info.kv[key] = { type = t, key_pos = pos, type_pos = tpos, pos = tpos + 4 }
    pos = skip(s, tpos + 4, t)
  end
  for i = 1, nt do
    local nlen = u64_at(s, pos)
    local tn = { name = s:sub(pos + 8, pos + 7 + nlen), name_pos = pos + 8 }
    pos = pos + 8 + nlen
    tn.n_dims = u32_at(s, pos)
    tn.dims_pos = pos + 4
    pos = pos + 4 + 8 * tn.n_dims
    tn.type_pos = pos
    tn.type = u32_at(s, pos)
    tn.offset_pos = pos + 4
    tn.offset = u64_at(s, pos + 4)
    pos = pos + 12
    info.tensors[i] = tn
  end
  info.header_end = pos
  local align = info.kv["general.alignment"] and u32_at(s, info.kv["general.alignment"].pos) or 32
  info.data_start = math.floor((pos - 1 + align - 1) / align) * align + 1
  return info
end

function M.tensor(info, name)
  for _, t in ipairs(info.tensors) do
    if t.name == name then return t end
  end
  error("no tensor " .. name)
end

-- Replaces the bytes at pos (1-based) with rep.
function M.patch(s, pos, rep)
  return s:sub(1, pos - 1) .. rep .. s:sub(pos + #rep)
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function M.write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

return M
