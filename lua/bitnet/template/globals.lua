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

local function make_namespace(init, kw)
  local ns = setmetatable({ vals = {}, keys = {} }, NS_MT)
  local function put(key, v)
    if ns.vals[key] == nil then ns.keys[#ns.keys + 1] = key end
    ns.vals[key] = v
  end
  if init ~= nil then
    if kind(init) ~= "dict" then fail("namespace() positional argument must be a mapping") end
    for _, key in ipairs(dict_keys(init)) do put(key, norm(init[key])) end
  end
  if kw then
    for _, key in ipairs(dict_keys(kw)) do put(key, kw[key]) end
  end
  return ns
end

local GLOBALS = {
  raise_exception = builtin(function(a) fail(to_str(a[1])) end),
  namespace = builtin(function(a, kw) return make_namespace(a[1], kw) end),
  dict = builtin(function(a, kw)
    local out, order = {}, {}
    local function put(key, v)
      if out[key] == nil then order[#order + 1] = key end
      out[key] = v
    end
    if a[1] ~= nil then
      for _, key in ipairs(dict_keys(a[1])) do put(key, norm(a[1][key])) end
    end
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
