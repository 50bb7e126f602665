--- bitnet.template.globals: the functions every template sees.
--
-- raise_exception, namespace, dict, range, strftime_now.

local ipairs, setmetatable, type = ipairs, setmetatable, type
local ceil, os_date = math.ceil, os.date

local V = require("bitnet.template.value")
local NS_MT, dict_keys, fail, is_int = V.NS_MT, V.dict_keys, V.fail, V.is_int
local kind, list, norm, to_str = V.kind, V.list, V.norm, V.to_str

local budget = require("bitnet.template.budget")
local A = require("bitnet.template.access")
local builtin = A.builtin

---------------------------------------------------------------------------
-- Globals
---------------------------------------------------------------------------

-- Feeds put(key, value) from the positional argument of dict() or namespace(), as Python's
-- dict(): a mapping, or a list whose items are key/value pairs.
local function put_mapping(name, a, put)
  if #a > 1 then fail(name .. "() takes at most 1 positional argument, got " .. #a) end
  local init = a[1]
  if init == nil then return end
  local k = kind(init)
  if k == "dict" then
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
end

local function make_namespace(a, kw)
  local ns = setmetatable({ vals = {}, keys = {} }, NS_MT)
  local function put(key, v)
    if ns.vals[key] == nil then ns.keys[#ns.keys + 1] = key end
    ns.vals[key] = v
  end
  put_mapping("namespace", a, put)
  if kw then
    for _, key in ipairs(dict_keys(kw)) do put(key, kw[key]) end
  end
  return ns
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
    put_mapping("dict", a, put)
    if kw then for _, key in ipairs(dict_keys(kw)) do put(key, kw[key]) end end
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
  strftime_now = builtin(function(a) return os_date(to_str(a[1])) end),
}

return GLOBALS
