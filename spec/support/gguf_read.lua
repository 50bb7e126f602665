-- A small GGUF reader for specs, independent of the C loader: the header,
-- every key/value (scalars and strings decoded, arrays with their raw bytes),
-- the tensor table and each tensor's bytes. Pure Lua that runs on Lua 5.4
-- and LuaJIT (no string.unpack). Only for well-formed files we wrote.
local M = {}

local function u(s, i, n) -- little-endian unsigned of n bytes at 1-based i
  local v = 0
  for k = n, 1, -1 do v = v * 256 + s:byte(i + k - 1) end
  return v
end
M.u = u

function M.f32(s, i)
  local b1, b2, b3, b4 = s:byte(i, i + 3)
  local sign = b4 >= 128 and -1 or 1
  local e = (b4 % 128) * 2 + math.floor(b3 / 128)
  local m = ((b3 % 128) * 256 + b2) * 256 + b1
  if e == 0 then return sign * m * 2 ^ -149 end
  if e == 255 then return m == 0 and sign * math.huge or 0 / 0 end
  return sign * (1 + m / 2 ^ 23) * 2 ^ (e - 127)
end

function M.f16(s, i)
  local lo, hi = s:byte(i, i + 1)
  local sign = hi >= 128 and -1 or 1
  local e, m = math.floor((hi % 128) / 4), (hi % 4) * 256 + lo
  if e == 0 then return sign * m * 2 ^ -24 end
  if e == 31 then return m == 0 and sign * math.huge or 0 / 0 end
  return sign * (1 + m / 1024) * 2 ^ (e - 15)
end

-- An I2_S tensor (bitnet.cpp's x86 layout) as values in {-1, 0, 1}
-- (row-major) and its f32 scale.
function M.i2s_values(t)
  local k, m = t.ne[1], t.ne[2]
  local out, s = {}, t.bytes
  for r = 0, m - 1 do
    for c = 0, k - 1 do
      local w = c % 128
      local byte = s:byte(r * (k / 4) + (c - w) / 4 + w % 32 + 1)
      local shift = 6 - 2 * math.floor(w / 32)
      out[#out + 1] = math.floor(byte / 2 ^ shift) % 4 - 1
    end
  end
  return out, M.f32(s, m * k / 4 + 1)
end

local scalar = { [0] = 1, 1, 2, 2, 4, 4, 4, 1, nil, nil, 8, 8, 8 }

-- Returns the value (scalars and strings; arrays: { type, count, n }) and
-- the position after it.
local function value(s, t, i)
  if t == 8 then
    local n = u(s, i, 8)
    return s:sub(i + 8, i + 7 + n), i + 8 + n
  elseif t == 9 then
    local et, n = u(s, i, 4), u(s, i + 4, 8)
    local p = i + 12
    local items = {}
    for k = 1, n do
      local v
      v, p = value(s, et, p)
      if et == 8 then items[k] = v end
    end
    return { type = et, count = n, strings = et == 8 and items or nil }, p
  elseif t == 6 then
    return M.f32(s, i), i + 4
  elseif t == 7 then
    return s:byte(i) ~= 0, i + 1
  end
  local v = u(s, i, scalar[t])
  if (t == 1 or t == 3 or t == 5 or t == 11) and v >= 2 ^ (8 * scalar[t] - 1) then v = v - 2 ^ (8 * scalar[t]) end
  return v, i + scalar[t]
end

-- Parses the file at path: { kv = { key = { type, value, raw } }, keys = {...},
-- tensors = { name = { type, ne, offset, bytes } }, order = {...}, data_offset }.
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  assert(s:sub(1, 4) == "GGUF", path .. ": not GGUF")
  local g = { version = u(s, 5, 4), kv = {}, keys = {}, tensors = {}, order = {}, size = #s }
  local nt, nkv = u(s, 9, 8), u(s, 17, 8)
  local p = 25
  for _ = 1, nkv do
    local klen = u(s, p, 8)
    local key = s:sub(p + 8, p + 7 + klen)
    p = p + 8 + klen
    local t = u(s, p, 4)
    local v, q = value(s, t, p + 4)
    g.kv[key] = { type = t, value = v, raw = s:sub(p, q - 1) }
    g.keys[#g.keys + 1] = key
    p = q
  end
  for _ = 1, nt do
    local nlen = u(s, p, 8)
    local name = s:sub(p + 8, p + 7 + nlen)
    p = p + 8 + nlen
    local nd = u(s, p, 4)
    local ne = {}
    for d = 1, nd do ne[d] = u(s, p + 4 + 8 * (d - 1), 8) end
    p = p + 4 + 8 * nd
    g.tensors[name] = { type = u(s, p, 4), ne = ne, offset = u(s, p + 4, 8) }
    g.order[#g.order + 1] = name
    p = p + 12
  end
  local align = g.kv["general.alignment"] and g.kv["general.alignment"].value or 32
  g.alignment = align
  g.data_offset = math.ceil((p - 1) / align) * align
  -- each tensor's bytes run to the next tensor (or the end): padding included
  local starts = {}
  for _, name in ipairs(g.order) do starts[#starts + 1] = g.tensors[name].offset end
  table.sort(starts)
  for _, name in ipairs(g.order) do
    local t = g.tensors[name]
    local stop = #s - g.data_offset
    for _, o in ipairs(starts) do
      if o > t.offset then stop = o; break end
    end
    t.bytes = s:sub(g.data_offset + t.offset + 1, g.data_offset + stop)
  end
  return g
end

-- Row-major F32 values of a tensor.
function M.f32_values(t)
  local out = {}
  for i = 1, #t.bytes - 3, 4 do out[#out + 1] = M.f32(t.bytes, i) end
  return out
end

return M
