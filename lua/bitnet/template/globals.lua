--- bitnet.template.globals: the functions every template sees.
--
-- raise_exception, namespace, dict, range, strftime_now.

local ipairs, setmetatable, type = ipairs, setmetatable, type
local ceil, os_date, os_time, pcall = math.ceil, os.date, os.time, pcall
local sgsub, slower, ssub = string.gsub, string.lower, string.sub
local concat = table.concat

local V = require("bitnet.template.value")
local NS_MT, dict_keys, fail, is_int = V.NS_MT, V.dict_keys, V.fail, V.is_int
local kind, list, norm, to_str = V.kind, V.list, V.norm, V.to_str

local budget = require("bitnet.template.budget")
local A = require("bitnet.template.access")
local builtin = A.builtin

---------------------------------------------------------------------------
-- Globals
---------------------------------------------------------------------------

-- Feeds put(key, value) from the arguments of dict() or namespace(), as Python's dict(): the
-- positional argument (a mapping, or a list whose items are key/value pairs), then the keywords.
local function put_arguments(name, a, kw, put)
  if #a > 1 then fail(name .. "() takes at most 1 positional argument, got " .. #a) end
  local init = a[1]
  local k = init ~= nil and kind(init)
  if not k then -- no positional argument: keywords only
  elseif k == "dict" then
    for _, key in ipairs(dict_keys(init)) do put(key, norm(init[key])) end
  elseif k == "list" then
    for i = 1, #init do
      local pair = init[i]
      if kind(pair) ~= "list" or #pair ~= 2 then
        fail(name .. "() sequence item " .. (i - 1) .. " is not a key/value pair")
      end
      local key = norm(pair[1])
      if type(key) == "table" then fail("unhashable dict key") end
      put(key, norm(pair[2]))
    end
  else
    fail(name .. "() argument must be a mapping or a list of key/value pairs, not " .. k)
  end
  if kw then
    for _, key in ipairs(dict_keys(kw)) do put(key, kw[key]) end
  end
end

local function make_namespace(a, kw)
  local ns = setmetatable({ vals = {}, keys = {} }, NS_MT)
  local function put(key, v)
    if ns.vals[key] == nil then ns.keys[#ns.keys + 1] = key end
    ns.vals[key] = v
  end
  put_arguments("namespace", a, kw, put)
  return ns
end

-- One conversion ("%d", "%-d", "%k") as glibc's strftime, which Python's time.strftime calls:
-- Lua's os.date accepts only C99's set (5.4 raises on the rest, "%-d" and "%s" included).
local function strftime_one(spec, now)
  local ok, out = pcall(os_date, spec, now)
  if ok then return out end
  local flag, conv = spec:match("^%%([-_0]?)(.)$")
  if not conv then return spec end -- a lone "%" at the end
  if conv == "s" and flag == "" then return ("%d"):format(now) end
  if conv == "P" and flag == "" then return slower(os_date("%p", now)) end
  if conv == "k" then conv, flag = "H", flag == "" and "_" or flag end
  if conv == "l" then conv, flag = "I", flag == "" and "_" or flag end
  local padded = flag ~= "" and ("dmHIMSjyUWVuwCgGe"):find(conv, 1, true) and os_date("%" .. conv, now)
  if not padded then return spec end -- glibc prints what it does not know as written
  if flag == "-" then return (sgsub(padded, "^[0 ]+(.)", "%1")) end
  if flag == "_" then return (sgsub(padded, "^0+(.)", function(c) return " " .. c end)) end
  return (sgsub(padded, " ", "0"))
end

-- Python's time.strftime(fmt) for the current local time.
local function strftime(fmt)
  local now = os_time()
  local ok, out = pcall(os_date, fmt, now)
  if ok then return out end
  local parts, i, n = {}, 1, #fmt
  while i <= n do
    local j = fmt:find("%", i, true)
    if not j then parts[#parts + 1] = ssub(fmt, i); break end
    parts[#parts + 1] = ssub(fmt, i, j - 1)
    local spec = fmt:match("^%%[-_0]?.", j) or ssub(fmt, j)
    parts[#parts + 1] = strftime_one(spec, now)
    i = j + #spec
  end
  return concat(parts)
end

local GLOBALS = {
  raise_exception = builtin(function(a) fail(to_str(a[1])) end),
  namespace = builtin(function(a, kw) return make_namespace(a, kw) end),
  dict = builtin(function(a, kw)
    local out, order = {}, {}
    local function put(key, v)
      if out[key] == nil then order[#order + 1] = key end
      out[key] = v
    end
    put_arguments("dict", a, kw, put)
    return setmetatable(out, { __jsontype = "object", __jsonorder = order })
  end),
  range = builtin(function(a)
    local start, stop, step = 0, a[1], 1
    if #a >= 2 then start, stop, step = a[1], a[2], a[3] or 1 end
    -- each of the three by index: ipairs would stop at a missing one (range(x=5))
    local bounds = { start, stop, step }
    for i = 1, 3 do
      local x = bounds[i]
      if type(x) ~= "number" or not is_int(x) then fail("range() arguments must be integers") end
    end
    if step == 0 then fail("range() arg 3 must not be zero") end
    local n = ceil((stop - start) / step) -- the length, before anything is built
    if n <= 0 then return list({}) end
    budget.items(n, "range()")
    local out = {}
    local i = start
    while (step > 0 and i < stop) or (step < 0 and i > stop) do
      out[#out + 1] = i
      i = i + step
    end
    return list(out)
  end),
  strftime_now = builtin(function(a) return strftime(to_str(a[1])) end),
}

return GLOBALS
