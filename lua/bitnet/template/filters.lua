--- bitnet.template.filters: Jinja filters ({{ x | name(args) }}).
--
-- FILTERS[name] = function(value, args, kwargs) -> value.

local tonumber, type = tonumber, type
local ceil, concat, floor, huge = math.ceil, table.concat, math.floor, math.huge
local sfind, sformat, sgsub, slower = string.find, string.format, string.gsub, string.lower
local smatch, srep, ssub, tsort = string.match, string.rep, string.sub, table.sort

local V = require("bitnet.template.value")
local EMPTY, arg, ascii_lower, ascii_upper = V.EMPTY, V.arg, V.ascii_lower, V.ascii_upper
local copy_list, fail, given, is_undef = V.copy_list, V.fail, V.given, V.is_undef
local iter_items, jinja_title, kind, list = V.iter_items, V.jinja_title, V.kind, V.list
local norm, numval, py_add, py_capitalize = V.norm, V.numval, V.py_add, V.py_capitalize
local py_eq, py_len, py_lt, py_strip = V.py_eq, V.py_len, V.py_lt, V.py_strip
local pytype, to_str, truthy, undefined = V.pytype, V.to_str, V.truthy, V.undefined
local is_int = V.is_int

local A = require("bitnet.template.access")
local attr_getter, dict_pairs, getattr, py_replace = A.attr_getter, A.dict_pairs, A.getattr, A.py_replace
local py_splitlines = A.py_splitlines

local J = require("bitnet.template.json")
local tojson = J.tojson

local TESTS = require("bitnet.template.tests")
local budget = require("bitnet.template.budget")

local FILTERS = {}

---------------------------------------------------------------------------
-- Filters ({{ x | name(args) }}): function(value, args, kwargs) -> value
---------------------------------------------------------------------------

-- Run test `name` (a value) on v; for select/reject.
local function run_test(name, v, args)
  local t = TESTS[to_str(name)]
  if not t then fail(sformat("no test named '%s'", to_str(name))) end
  return t(v, args)
end

local function rest_args(a, from)
  local out = {}
  for i = from, #a do out[#out + 1] = a[i] end
  return out
end

local function select_filter(by_attr, keep)
  return function(v, a)
    local items, n = iter_items(v)
    local get = by_attr and attr_getter(a[1])
    local test_at = by_attr and 2 or 1
    local test_name = a[test_at]
    local targs = rest_args(a, test_at + 1)
    local out = {}
    for i = 1, n do
      local item = norm(items[i])
      local x = get and get(item) or item
      local ok
      if test_name == nil then ok = truthy(x) else ok = run_test(test_name, x, targs) end
      if ok == keep then out[#out + 1] = item end
    end
    return list(out)
  end
end

local function sort_key(case_sensitive, attribute)
  local get = given(attribute) and attr_getter(attribute)
  return function(x)
    if get then x = get(x) end
    if not case_sensitive and type(x) == "string" then x = ascii_lower(x) end
    return x
  end
end

-- The items of dec ({ k = key, v = item, i = position }) as a list sorted by
-- key, stably (equal keys keep their order; reverse keeps it too, as Python).
local function sorted_values(dec, reverse)
  tsort(dec, function(x, y)
    if py_lt(x.k, y.k, "<") then return not reverse end
    if py_lt(y.k, x.k, "<") then return reverse end
    return x.i < y.i
  end)
  local out = {}
  for i = 1, #dec do out[i] = dec[i].v end
  return list(out)
end

local PREFIX_BASE = { x = 16, X = 16, o = 8, O = 8, b = 2, B = 2 }

-- Python int(str, base): nil where Python raises (a base that is not 0 or 2..36 included,
-- so the int filter falls back to float parsing and the default, as Jinja does).
local function int_of_string(s, base)
  if type(base) ~= "number" or not is_int(base) or (base ~= 0 and (base < 2 or base > 36)) then
    return nil
  end
  s = sgsub(py_strip(s, nil, true, true), "([0-9A-Za-z])_([0-9A-Za-z])", "%1%2")
  local sign = 1
  if smatch(s, "^[+-]") then sign = ssub(s, 1, 1) == "-" and -1 or 1; s = ssub(s, 2) end
  local prefixed = PREFIX_BASE[smatch(s, "^0([xXoObB])") or ""]
  if prefixed and (base == 0 or base == prefixed) then s, base = ssub(s, 3), prefixed end
  if base == 0 then
    -- decimal; Python refuses leading zeros here ("010") but not zero itself ("00")
    if smatch(s, "^0+$") then return 0 end
    if smatch(s, "^0") then return nil end
    base = 10
  end
  if not smatch(s, "^[0-9A-Za-z]+$") then return nil end
  if base == 10 then
    if not smatch(s, "^[0-9]+$") then return nil end
    return sign * tonumber(s)
  end
  if #s <= 12 then -- 36^12 < 2^63: Lua 5.4's integer tonumber cannot wrap
    local n = tonumber(s, base)
    return n and sign * n
  end
  local n = 0.0
  for i = 1, #s do
    local d = tonumber(ssub(s, i, i), 36)
    if d >= base then return nil end
    n = n * base + d
  end
  return sign * n
end

-- Python float(str): decimal literal with optional sign/exponent, inf, nan.
local function float_of_string(s)
  s = slower(py_strip(s, nil, true, true))
  local sign, body = smatch(s, "^([+-]?)(.*)$")
  if body == "inf" or body == "infinity" then return sign == "-" and -huge or huge end
  if body == "nan" then return 0 / 0 end
  body = sgsub(body, "([0-9])_([0-9])", "%1%2")
  local mant, exp = smatch(body, "^([0-9]*%.?[0-9]*)(.*)$")
  if not sfind(mant, "[0-9]") then return nil end
  if exp ~= "" and not smatch(exp, "^e[+-]?[0-9]+$") then return nil end
  return tonumber(sign .. mant .. exp)
end

local function trunc(x)
  return x >= 0 and floor(x) or ceil(x)
end

FILTERS.trim = function(v, a, kw) return py_strip(to_str(v), arg(a, kw, 1, "chars"), true, true) end
FILTERS.upper = function(v) return ascii_upper(to_str(v)) end
FILTERS.lower = function(v) return ascii_lower(to_str(v)) end
FILTERS.capitalize = function(v) return py_capitalize(to_str(v)) end
FILTERS.title = function(v) return jinja_title(to_str(v)) end
FILTERS.length = function(v) return py_len(v) end
FILTERS.count = FILTERS.length
FILTERS.string = function(v) return to_str(v) end
FILTERS.safe = function(v) return v end
FILTERS.tojson = function(v, a, kw)
  return tojson(v, arg(a, kw, 1, "ensure_ascii"), arg(a, kw, 2, "indent"),
    arg(a, kw, 3, "separators"), arg(a, kw, 4, "sort_keys"))
end
FILTERS.default = function(v, a, kw)
  local dv = arg(a, kw, 1, "default_value")
  if dv == nil then dv = "" end
  if is_undef(v) or (truthy(arg(a, kw, 2, "boolean")) and not truthy(v)) then return dv end
  return v
end
FILTERS.d = FILTERS.default
FILTERS.first = function(v)
  local items, n = iter_items(v)
  if n == 0 then return undefined("No first item, sequence was empty.") end
  return norm(items[1])
end
FILTERS.last = function(v)
  local items, n = iter_items(v)
  if n == 0 then return undefined("No last item, sequence was empty.") end
  return norm(items[n])
end
FILTERS.join = function(v, a, kw)
  local items, n = iter_items(v)
  local sep = arg(a, kw, 1, "d")
  local attr = arg(a, kw, 2, "attribute")
  local get = given(attr) and attr_getter(attr)
  sep = sep == nil and "" or to_str(sep)
  local out, size = {}, 0
  for i = 1, n do
    local item = norm(items[i])
    if get then item = get(item) end
    out[i] = to_str(item)
    size = size + #out[i] + #sep
    budget.string(size - #sep, "join result")
  end
  return concat(out, sep)
end
FILTERS.replace = function(v, a, kw)
  return py_replace(to_str(v), to_str(arg(a, kw, 1, "old")), to_str(arg(a, kw, 2, "new")), arg(a, kw, 3, "count"))
end
FILTERS.int = function(v, a, kw)
  local default = arg(a, kw, 1, "default")
  if default == nil then default = 0 end
  local base = arg(a, kw, 2, "base") or 10
  local tv = type(v)
  if tv == "number" then
    if v ~= v or v == huge or v == -huge then return default end
    return trunc(v)
  end
  if tv == "boolean" then return v and 1 or 0 end
  if tv == "string" then
    local n = int_of_string(v, base)
    if n then return n end
    n = float_of_string(v)
    if n and n == n and n ~= huge and n ~= -huge then return trunc(n) end
  end
  return default
end
FILTERS.float = function(v, a, kw)
  local default = arg(a, kw, 1, "default")
  if default == nil then default = 0 end
  local tv = type(v)
  if tv == "number" then return v end
  if tv == "boolean" then return v and 1 or 0 end
  if tv == "string" then return float_of_string(v) or default end
  return default
end
FILTERS.list = function(v) return copy_list(v) end
FILTERS.items = function(v)
  local k = kind(v)
  if k == "undefined" then return EMPTY end
  if k ~= "dict" and not (k == "list" and #v == 0) then fail("items filter needs a mapping") end
  return dict_pairs(v)
end
FILTERS.selectattr = select_filter(true, true)
FILTERS.rejectattr = select_filter(true, false)
FILTERS.select = select_filter(false, true)
FILTERS.reject = select_filter(false, false)
FILTERS.map = function(v, a, kw)
  local items, n = iter_items(v)
  local out = {}
  if kw and kw.attribute ~= nil then
    local get, default = attr_getter(kw.attribute), kw.default
    for i = 1, n do
      local x = get(norm(items[i]))
      if default ~= nil and is_undef(x) then x = default end
      out[i] = x
    end
    return list(out)
  end
  local fname = a[1]
  local f = FILTERS[to_str(fname)]
  if not f then fail(sformat("no filter named '%s'", to_str(fname))) end
  local fargs = rest_args(a, 2)
  for i = 1, n do out[i] = f(norm(items[i]), fargs, kw) end
  return list(out)
end
FILTERS.attr = function(v, a) return getattr(v, to_str(a[1])) end
FILTERS.abs = function(v)
  local x = numval(v)
  if not x then fail(sformat("bad operand type for abs(): '%s'", pytype(v))) end
  return x < 0 and -x or x
end
-- x rounded to p > 0 decimal places, correctly (printf rounds the exact binary
-- value, half to even, as Python's round). Lua's format takes at most 99 digits
-- of precision; past that, rounding to p places keeps p + e + 1 significant
-- digits (e the decimal exponent of x), and 17 of them give x back unchanged.
local function round_places(x, p)
  if p <= 99 then return tonumber(sformat("%." .. sformat("%d", p) .. "f", x)) end
  if x == 0 then return x end
  local e = tonumber(sformat("%.16e", x):match("e([-+]%d+)$"))
  local digits = p + e + 1
  if digits >= 17 then return x end
  if digits >= 1 then return tonumber(sformat("%." .. sformat("%d", digits - 1) .. "e", x)) end
  -- |x| < 10^-p: 0 or one unit of the last place (digits == 0 and more than half a unit)
  local unit = tonumber("1e-" .. sformat("%d", p))
  if digits == 0 and math.abs(x) > unit / 2 then return x < 0 and -unit or unit end
  return x < 0 and -0.0 or 0.0
end

FILTERS.round = function(v, a, kw)
  local x = numval(v)
  if not x then fail("round filter needs a number") end
  local p = numval(arg(a, kw, 1, "precision") or 0)
  if not p or p ~= p or p ~= floor(p) then fail("round precision must be an integer") end
  local method = arg(a, kw, 2, "method") or "common"
  if method ~= "common" and method ~= "ceil" and method ~= "floor" then
    fail("round method must be 'common', 'ceil' or 'floor'")
  end
  if x ~= x or x == math.huge or x == -math.huge or p > 308 then return x end -- nothing to round
  if p < -308 then return 0.0 end
  if method == "common" and p == 0 then -- half to even, as Python (LuaJIT's "%.0f" rounds ties up)
    local r = floor(x + 0.5)
    if r - x == 0.5 and r % 2 ~= 0 then r = r - 1 end
    return r
  end
  if method == "common" and p > 0 then return round_places(x, p) end
  -- negative precision (tens, hundreds...) and ceil/floor: scale, round, scale back
  local m = 10.0 ^ math.abs(p)
  local y = p >= 0 and x * m or x / m
  if method == "common" then
    local r = floor(y + 0.5)
    if r - y == 0.5 and r % 2 ~= 0 then r = r - 1 end
    y = r
  elseif method == "ceil" then y = ceil(y) else y = floor(y) end
  return p >= 0 and y / m or y * m
end
FILTERS.reverse = function(v)
  local items, n = iter_items(v)
  local out = {}
  for i = n, 1, -1 do out[#out + 1] = norm(items[i]) end
  if type(v) == "string" then return concat(out) end
  return list(out)
end
FILTERS.sort = function(v, a, kw)
  local items, n = iter_items(v)
  local key = sort_key(truthy(arg(a, kw, 2, "case_sensitive")), arg(a, kw, 3, "attribute"))
  local reverse = truthy(arg(a, kw, 1, "reverse"))
  local dec = {}
  for i = 1, n do dec[i] = { k = key(norm(items[i])), v = norm(items[i]), i = i } end
  return sorted_values(dec, reverse)
end
FILTERS.unique = function(v, a, kw)
  local items, n = iter_items(v)
  local key = sort_key(truthy(arg(a, kw, 1, "case_sensitive")), arg(a, kw, 2, "attribute"))
  local out, seen = {}, {}
  for i = 1, n do
    local item = norm(items[i])
    local k = key(item)
    local dup = false
    for j = 1, #seen do
      if py_eq(seen[j], k) then dup = true break end
    end
    if not dup then
      seen[#seen + 1] = k
      out[#out + 1] = item
    end
  end
  return list(out)
end
local function min_max(want_max)
  return function(v, a, kw)
    local items, n = iter_items(v)
    local key = sort_key(truthy(arg(a, kw, 1, "case_sensitive")), arg(a, kw, 2, "attribute"))
    local best, best_k
    for i = 1, n do
      local item = norm(items[i])
      local k = key(item)
      if best == nil or (want_max and py_lt(best_k, k, ">") or (not want_max and py_lt(k, best_k, "<"))) then
        best, best_k = item, k
      end
    end
    if best == nil then return undefined("No aggregated item, sequence was empty.") end
    return best
  end
end
FILTERS.min = min_max(false)
FILTERS.max = min_max(true)
FILTERS.sum = function(v, a, kw)
  local items, n = iter_items(v)
  local attr = arg(a, kw, 1, "attribute")
  local get = given(attr) and attr_getter(attr)
  local total = arg(a, kw, 2, "start") or 0
  for i = 1, n do
    local x = norm(items[i])
    if get then x = get(x) end
    total = py_add(total, x)
  end
  return total
end
FILTERS.dictsort = function(v, a, kw)
  if kind(v) ~= "dict" and not (kind(v) == "list" and #v == 0) then fail("dictsort filter needs a mapping") end
  local case_sensitive = truthy(arg(a, kw, 1, "case_sensitive"))
  local by = arg(a, kw, 2, "by") or "key"
  local reverse = truthy(arg(a, kw, 3, "reverse"))
  local pos = by == "key" and 1 or by == "value" and 2 or fail("dictsort: by must be 'key' or 'value'")
  local key = sort_key(case_sensitive, nil)
  local pairs_ = dict_pairs(v)
  local dec = {}
  for i = 1, #pairs_ do dec[i] = { k = key(pairs_[i][pos]), v = pairs_[i], i = i } end
  return sorted_values(dec, reverse)
end
FILTERS.indent = function(v, a, kw)
  local s = to_str(v)
  local width = arg(a, kw, 1, "width")
  if width == nil then width = 4 end
  if type(width) == "number" then
    if not is_int(width) then fail("can't multiply sequence by non-int of type 'float'") end
    budget.string(width, "indent width")
  elseif type(width) ~= "string" then
    fail(sformat("indent width must be an int or a str, not %s", pytype(width)))
  end
  local pad = type(width) == "string" and width or srep(" ", width)
  local first, blank = truthy(arg(a, kw, 2, "first")), truthy(arg(a, kw, 3, "blank"))
  local lines = py_splitlines(s .. "\n")
  budget.string(#s + #lines * #pad, "indent result")
  local out
  if blank then
    out = concat(lines, "\n" .. pad)
  else
    local parts = { lines[1] or "" }
    for i = 2, #lines do
      parts[i] = lines[i] ~= "" and pad .. lines[i] or lines[i]
    end
    out = concat(parts, "\n")
  end
  if first then out = pad .. out end
  return out
end
local HTML_ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;", ["'"] = "&#39;" }
FILTERS.escape = function(v) return (sgsub(to_str(v), "[&<>\"']", HTML_ESC)) end
FILTERS.e = FILTERS.escape

return FILTERS
