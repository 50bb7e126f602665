--- bitnet.template.value: Python values for the template engine.
--
-- The value model of bitnet.template (see init.lua): the kinds a Lua value
-- has as a Python value, truthiness, Python str() and repr(), UTF-8 strings
-- with Python's whitespace and case rules, containers (dict key order, the
-- items a loop sees, slices) and the operators (==, <, +, *, in, ...).

local error, getmetatable, ipairs, next = error, getmetatable, ipairs, next
local pairs, rawget, setmetatable, tonumber = pairs, rawget, setmetatable, tonumber
local tostring, type = tostring, type
local concat, floor, huge, loaded = table.concat, math.floor, math.huge, package.loaded
local max, min, sbyte, schar = math.max, math.min, string.byte, string.char
local sfind, sformat, sgsub, slower = string.find, string.format, string.gsub, string.lower
local smatch, srep, ssub, supper = string.match, string.rep, string.sub, string.upper
local tsort = table.sort

local budget = require("bitnet.template.budget")

local PREFIX = "bitnet.template: "

-- Raise a runtime error; render() prefixes the line being executed.
local function fail(msg)
  error(msg, 0)
end

local function syntax_error(line, msg)
  error(sformat("%sline %d: %s", PREFIX, line, msg), 0)
end

---------------------------------------------------------------------------
-- Value kinds
---------------------------------------------------------------------------

local NONE = setmetatable({}, { __tostring = function() return "None" end })
local UNDEF_MT = {}   -- { hint = "message raised when the value is used" }
local NS_MT = {}      -- namespace(): { vals = {}, keys = {} }
local LOOP_MT = {}    -- loop object: { items = , i = , n = }
local BOUND_MT = {}   -- bound method: { fn = function(self, args, kw), self = }
local CALL_MT = {}    -- builtin function or macro: { fn = function(args, kw) }
local ARRAY_MT = { __jsontype = "array" }
local TUPLE_MT = { __jsontype = "array" } -- a list that prints as a Python tuple
local OBJECT_MT = { __jsontype = "object" }
local EMPTY = setmetatable({}, ARRAY_MT)

local function undefined(hint)
  return setmetatable({ hint = hint }, UNDEF_MT)
end

local function is_undef(v)
  return type(v) == "table" and getmetatable(v) == UNDEF_MT
end

local function json_null()
  local cj = loaded.cjson or loaded["cjson.safe"]
  return cj and cj.null
end

-- cjson.null -> NONE; everything else unchanged.
local function norm(v)
  if type(v) == "userdata" then
    local null = json_null()
    if null ~= nil and v == null then return NONE end
  end
  return v
end

local function list(t)
  return setmetatable(t, ARRAY_MT)
end

local function tuple(t)
  return setmetatable(t, TUPLE_MT)
end

local function jsontype(t)
  local mt = getmetatable(t)
  if type(mt) ~= "table" then return nil end
  local jt = rawget(mt, "__jsontype")
  if jt then return jt end
  local cj = loaded.cjson
  if cj and (mt == cj.array_mt or mt == cj.empty_array_mt) then return "array" end
  return nil
end

local function is_seq(t)
  local n = #t
  if n == 0 then return next(t) == nil end
  local c = 0
  for _ in pairs(t) do
    c = c + 1
    if c > n then return false end
  end
  if c ~= n then return false end
  for i = 1, n do
    if t[i] == nil then return false end
  end
  return true
end

-- One of: string number boolean none undefined list dict namespace loop
-- callable other.
local function kind(v)
  local tv = type(v)
  if tv == "string" or tv == "number" or tv == "boolean" then return tv end
  if tv == "table" then
    if v == NONE then return "none" end
    local mt = getmetatable(v)
    if mt == UNDEF_MT then return "undefined" end
    if mt == NS_MT then return "namespace" end
    if mt == LOOP_MT then return "loop" end
    if mt == BOUND_MT or mt == CALL_MT then return "callable" end
    local jt = jsontype(v)
    if jt == "array" then return "list" end
    if jt == "object" then return "dict" end
    return is_seq(v) and "list" or "dict"
  end
  if tv == "function" then return "callable" end
  if tv == "nil" then return "none" end
  if norm(v) == NONE then return "none" end
  return "other"
end

local function is_int(x)
  return x == floor(x) and x > -2 ^ 53 and x < 2 ^ 53
end

-- Python type name for error messages.
local function pytype(v)
  local k = kind(v)
  if k == "number" then return is_int(v) and "int" or "float" end
  return ({ string = "str", boolean = "bool", none = "NoneType", undefined = "Undefined",
    list = "list", dict = "dict", namespace = "Namespace", loop = "LoopContext",
    callable = "function" })[k] or type(v)
end

local function truthy(v)
  local tv = type(v)
  if tv == "boolean" then return v end
  if tv == "nil" then return false end
  if tv == "number" then return v ~= 0 end
  if tv == "string" then return v ~= "" end
  if tv == "table" then
    if v == NONE then return false end
    local mt = getmetatable(v)
    if mt == UNDEF_MT then return false end
    if mt == NS_MT or mt == LOOP_MT or mt == BOUND_MT or mt == CALL_MT then return true end
    return next(v) ~= nil
  end
  return norm(v) ~= NONE
end

-- Raise the error an Undefined carries when it is used.
local function undef_fail(v)
  fail(v.hint)
end

---------------------------------------------------------------------------
-- Strings: UTF-8, whitespace, formatting
---------------------------------------------------------------------------

local function is_ascii(s)
  return not sfind(s, "[\128-\255]")
end

-- Split s into UTF-8 code points (invalid bytes become one-byte items).
local function uchars(s)
  local out, n, i, len = {}, 0, 1, #s
  if is_ascii(s) then
    for j = 1, len do out[j] = ssub(s, j, j) end
    return out, len
  end
  while i <= len do
    local c, w = sbyte(s, i), 1
    if c >= 0xC2 and c <= 0xF4 then
      w = c >= 0xF0 and 4 or c >= 0xE0 and 3 or 2
      for j = i + 1, i + w - 1 do
        local d = sbyte(s, j)
        if not d or d < 0x80 or d > 0xBF then w = 1 break end
      end
    end
    n = n + 1
    out[n] = ssub(s, i, i + w - 1)
    i = i + w
  end
  return out, n
end

-- Python len() of a str.
local function ulen(s)
  if is_ascii(s) then return #s end
  local _, n = sgsub(s, "[^\128-\191]", "")
  return n
end

local function utf8_encode(cp)
  if cp < 0x80 then return schar(cp) end
  if cp < 0x800 then return schar(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return schar(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return schar(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
    0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local function utf8_decode(ch)
  local c, n = sbyte(ch, 1), #ch
  if n == 1 then return c end
  local cp = c % (n == 2 and 32 or n == 3 and 16 or 8)
  for i = 2, n do cp = cp * 64 + sbyte(ch, i) % 64 end
  return cp
end

-- Multi-byte code points Python's str.isspace() accepts.
local WS_MB = {
  ["\194\133"] = true, ["\194\160"] = true, ["\225\154\128"] = true,
  ["\226\128\168"] = true, ["\226\128\169"] = true, ["\226\128\175"] = true,
  ["\226\129\159"] = true, ["\227\128\128"] = true,
}
for b = 128, 138 do WS_MB["\226\128" .. schar(b)] = true end

local function ascii_ws(c)
  return c == 32 or (c >= 9 and c <= 13) or (c >= 28 and c <= 31)
end

local function is_space(ch)
  if #ch == 1 then return ascii_ws(sbyte(ch)) end
  return WS_MB[ch] == true
end

-- Length of the whitespace code point ending at byte e of s (0 if none).
local function ws_before(s, e)
  local c = sbyte(s, e)
  if ascii_ws(c) then return 1 end
  if c >= 128 then
    for w = 2, 3 do
      if e - w >= 0 and WS_MB[ssub(s, e - w + 1, e)] then return w end
    end
  end
  return 0
end

-- Length of the whitespace code point starting at byte i of s (0 if none).
local function ws_at(s, i)
  local c = sbyte(s, i)
  if ascii_ws(c) then return 1 end
  if c >= 0xC2 then
    for w = 2, 3 do
      if WS_MB[ssub(s, i, i + w - 1)] then return w end
    end
  end
  return 0
end

local function rstrip_ws(s)
  local e = #s
  while e > 0 do
    local w = ws_before(s, e)
    if w == 0 then break end
    e = e - w
  end
  return ssub(s, 1, e)
end

local function lstrip_ws(s)
  local i, n = 1, #s
  while i <= n do
    local w = ws_at(s, i)
    if w == 0 then break end
    i = i + w
  end
  return ssub(s, i)
end

-- Python str.strip/lstrip/rstrip; chars (a string) is a set of code points.
local function py_strip(s, chars, left, right)
  if chars == nil or chars == NONE then
    if left then s = lstrip_ws(s) end
    if right then s = rstrip_ws(s) end
    return s
  end
  if type(chars) ~= "string" then fail("strip arg must be None or str") end
  local set = {}
  for _, ch in ipairs((uchars(chars))) do set[ch] = true end
  local cs, n = uchars(s)
  local i, j = 1, n
  if left then while i <= j and set[cs[i]] do i = i + 1 end end
  if right then while j >= i and set[cs[j]] do j = j - 1 end end
  return concat(cs, "", i, j)
end

local function ascii_upper(s)
  return (sgsub(s, "[a-z]", supper))
end

local function ascii_lower(s)
  return (sgsub(s, "[A-Z]", slower))
end

local function is_letter(ch)
  return #ch > 1 or smatch(ch, "^[A-Za-z]$") ~= nil
end

-- Python str.capitalize (ASCII case mapping).
local function py_capitalize(s)
  return ascii_upper(ssub(s, 1, 1)) .. ascii_lower(ssub(s, 2))
end

-- Python str.title: a letter after a non-letter is upper-cased, others lowered.
local function py_title(s)
  local cs, n = uchars(s)
  local prev = false
  for i = 1, n do
    local ch = cs[i]
    local letter = is_letter(ch)
    if letter and #ch == 1 then
      cs[i] = prev and slower(ch) or supper(ch)
    end
    prev = letter
  end
  return concat(cs)
end

-- Jinja's title filter: words start after whitespace, '-', '(', '{', '[', '<'.
local function jinja_title(s)
  local cs, n = uchars(s)
  local start = true
  for i = 1, n do
    local ch = cs[i]
    if is_space(ch) or ch == "-" or ch == "(" or ch == "{" or ch == "[" or ch == "<" then
      start = true
    else
      if #ch == 1 then cs[i] = start and supper(ch) or slower(ch) end
      start = false
    end
  end
  return concat(cs)
end

local function str_lt(a, b)
  local la, lb = #a, #b
  for i = 1, la < lb and la or lb do
    local x, y = sbyte(a, i), sbyte(b, i)
    if x ~= y then return x < y end
  end
  return la < lb
end

local G_FMT = {}
for p = 1, 17 do G_FMT[p] = "%." .. p .. "g" end

-- Python str() of a number (integral values print as ints).
local function num_str(x)
  if x ~= x then return "nan" end
  if x == huge then return "inf" end
  if x == -huge then return "-inf" end
  if is_int(x) then
    if x == 0 then return "0" end
    return sformat("%.0f", x)
  end
  for p = 1, 17 do
    local s = sformat(G_FMT[p], x)
    if tonumber(s) == x then return s end
  end
  return sformat("%.17g", x)
end

local REPR_ESC = { ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  ["'"] = "\\'", ['"'] = '\\"' }

local function str_repr(s)
  local q, pat = "'", "[%z\1-\31\127\\']"
  if sfind(s, "'", 1, true) and not sfind(s, '"', 1, true) then q, pat = '"', '[%z\1-\31\127\\"]' end
  s = sgsub(s, pat, function(c) return REPR_ESC[c] or sformat("\\x%02x", sbyte(c)) end)
  return q .. s .. q
end

local dict_keys -- defined below

-- Python repr() of a value (used to print containers).
-- depth: how many containers enclose v (nil at the top).
local function py_repr(v, depth)
  local k = kind(v)
  if k == "string" then return str_repr(v) end
  if k == "number" then return num_str(v) end
  if k == "boolean" then return v and "True" or "False" end
  if k == "none" then return "None" end
  if k == "undefined" then return "" end
  if k == "list" or k == "dict" or k == "namespace" then
    depth = (depth or 0) + 1
    budget.depth(depth, "str() of containers")
    local parts, total = {}, 0
    local function add(s)
      total = total + #s + 2
      budget.string(total, "str() of a container")
      parts[#parts + 1] = s
    end
    if k == "list" then
      for i = 1, #v do add(py_repr(norm(v[i]), depth)) end
      if getmetatable(v) == TUPLE_MT then
        return "(" .. concat(parts, ", ") .. (#v == 1 and ",)" or ")")
      end
      return "[" .. concat(parts, ", ") .. "]"
    end
    if k == "dict" then
      for _, key in ipairs(dict_keys(v)) do add(py_repr(key, depth) .. ": " .. py_repr(norm(v[key]), depth)) end
      return "{" .. concat(parts, ", ") .. "}"
    end
    for _, key in ipairs(v.keys) do add(py_repr(key, depth) .. ": " .. py_repr(v.vals[key], depth)) end
    return "<Namespace {" .. concat(parts, ", ") .. "}>"
  end
  if k == "loop" then return sformat("<LoopContext %d/%d>", v.i, v.n) end
  return "<" .. pytype(v) .. ">"
end

-- Python str() of a value: what {{ }} prints.
local function to_str(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" then return num_str(v) end
  if tv == "boolean" then return v and "True" or "False" end
  return py_repr(v)
end

---------------------------------------------------------------------------
-- Containers
---------------------------------------------------------------------------

local function key_lt(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" then return a < b end
  if ta == "string" then return str_lt(a, b) end
  return tostring(a) < tostring(b)
end

-- Keys of a dict-like table: __jsonorder first, then the rest sorted.
function dict_keys(t)
  local keys, seen = {}, {}
  local mt = getmetatable(t)
  local order = type(mt) == "table" and rawget(mt, "__jsonorder")
  if type(order) == "table" then
    for _, key in ipairs(order) do
      if t[key] ~= nil and not seen[key] then
        keys[#keys + 1] = key
        seen[key] = true
      end
    end
  end
  local rest = {}
  for key in pairs(t) do
    if not seen[key] then rest[#rest + 1] = key end
  end
  tsort(rest, key_lt)
  for i = 1, #rest do keys[#keys + 1] = rest[i] end
  return keys
end

local function dict_count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- The items a for loop (or list()) sees: list items, dict keys, characters.
local function iter_items(v)
  local k = kind(v)
  if k == "list" then return v, #v end
  if k == "dict" then
    local keys = dict_keys(v)
    return keys, #keys
  end
  if k == "string" then return uchars(v) end
  if k == "undefined" then return EMPTY, 0 end
  fail(sformat("'%s' object is not iterable", pytype(v)))
end

local function copy_list(v)
  local items, n = iter_items(v)
  local out = {}
  for i = 1, n do out[i] = norm(items[i]) end
  return list(out)
end

local function py_len(v)
  local k = kind(v)
  if k == "string" then return ulen(v) end
  if k == "list" then return #v end
  if k == "dict" then return dict_count(v) end
  if k == "undefined" then return 0 end
  if k == "namespace" then return #v.keys end
  fail(sformat("object of type '%s' has no len()", pytype(v)))
end

-- Python slice indices over a sequence of length n; returns a list of
-- 1-based positions.
local function slice_positions(n, start, stop, step)
  if step == nil then step = 1 end
  if step == 0 then fail("slice step cannot be zero") end
  local out = {}
  if step > 0 then
    start = start == nil and 0 or (start < 0 and max(n + start, 0) or min(start, n))
    stop = stop == nil and n or (stop < 0 and max(n + stop, 0) or min(stop, n))
    local i = start
    while i < stop do out[#out + 1] = i + 1; i = i + step end
  else
    start = start == nil and n - 1 or (start < 0 and max(n + start, -1) or min(start, n - 1))
    stop = stop == nil and -1 or (stop < 0 and max(n + stop, -1) or min(stop, n - 1))
    local i = start
    while i > stop do out[#out + 1] = i + 1; i = i + step end
  end
  return out
end

---------------------------------------------------------------------------
-- Python operators
---------------------------------------------------------------------------

local py_eq

-- depth: how many containers enclose a and b (nil at the top).
local function same_kind_eq(a, b, depth)
  local ka, kb = kind(a), kind(b)
  if ka ~= kb then return false end
  if ka == "none" or ka == "undefined" then return true end
  if ka == "list" or ka == "dict" then
    depth = (depth or 0) + 1
    budget.depth(depth, "'==' of containers")
  end
  if ka == "list" then
    if #a ~= #b then return false end
    for i = 1, #a do
      if not py_eq(norm(a[i]), norm(b[i]), depth) then return false end
    end
    return true
  end
  if ka == "dict" then
    if dict_count(a) ~= dict_count(b) then return false end
    for key, va in pairs(a) do
      local vb = b[key]
      if vb == nil or not py_eq(norm(va), norm(vb), depth) then return false end
    end
    return true
  end
  return false
end

function py_eq(a, b, depth)
  if a == b then return true end
  local ta, tb = type(a), type(b)
  if ta == "boolean" and tb == "number" then return (a and 1 or 0) == b end
  if ta == "number" and tb == "boolean" then return a == (b and 1 or 0) end
  if ta == "table" or ta == "userdata" then
    if tb == "table" or tb == "userdata" then return same_kind_eq(a, b, depth) end
  end
  return false
end

local function numval(v)
  local tv = type(v)
  if tv == "number" then return v end
  if tv == "boolean" then return v and 1 or 0 end
  return nil
end

local function check_defined(a, b)
  if is_undef(a) then undef_fail(a) end
  if is_undef(b) then undef_fail(b) end
end

local function binop_error(op, a, b)
  fail(sformat("unsupported operand type(s) for %s: '%s' and '%s'", op, pytype(a), pytype(b)))
end

local function py_lt(a, b, op)
  check_defined(a, b)
  local x, y = numval(a), numval(b)
  if x and y then return x < y end
  if type(a) == "string" and type(b) == "string" then return str_lt(a, b) end
  fail(sformat("'%s' not supported between instances of '%s' and '%s'", op, pytype(a), pytype(b)))
end

local function py_add(a, b)
  local x, y = numval(a), numval(b)
  if x and y then return x + y end
  local ta, tb = type(a), type(b)
  if ta == "string" and tb == "string" then
    budget.string(#a + #b, "'+' result")
    return a .. b
  end
  check_defined(a, b)
  if ta == "string" then
    fail(sformat('can only concatenate str (not "%s") to str', pytype(b)))
  end
  if kind(a) == "list" and kind(b) == "list" then
    budget.items(#a + #b, "'+' result")
    local out = {}
    for i = 1, #a do out[i] = a[i] end
    for i = 1, #b do out[#out + 1] = b[i] end
    return list(out)
  end
  binop_error("+", a, b)
end

local function repeat_seq(s, n)
  if not is_int(n) then fail("can't multiply sequence by non-int of type 'float'") end
  if type(s) == "string" then
    if n <= 0 or s == "" then return "" end
    budget.string(#s * n, "'*' result")
    return srep(s, n)
  end
  if n <= 0 or #s == 0 then return list({}) end
  budget.items(#s * n, "'*' result")
  local out = {}
  for _ = 1, n do
    for i = 1, #s do out[#out + 1] = s[i] end
  end
  return list(out)
end

local function py_mul(a, b)
  local x, y = numval(a), numval(b)
  if x and y then return x * y end
  check_defined(a, b)
  if y and (type(a) == "string" or kind(a) == "list") then return repeat_seq(a, y) end
  if x and (type(b) == "string" or kind(b) == "list") then return repeat_seq(b, x) end
  binop_error("*", a, b)
end

local function num_operands(op, a, b)
  local x, y = numval(a), numval(b)
  if x and y then return x, y end
  check_defined(a, b)
  if op == "%" and type(a) == "string" then
    fail("printf-style string formatting ('%' on a string) is not supported")
  end
  binop_error(op, a, b)
end

local ARITH = {
  ["+"] = py_add,
  ["*"] = py_mul,
  ["-"] = function(a, b)
    local x, y = num_operands("-", a, b)
    return x - y
  end,
  ["/"] = function(a, b)
    local x, y = num_operands("/", a, b)
    if y == 0 then fail("division by zero") end
    return x / y
  end,
  ["//"] = function(a, b)
    local x, y = num_operands("//", a, b)
    if y == 0 then fail("integer division or modulo by zero") end
    return floor(x / y)
  end,
  ["%"] = function(a, b)
    local x, y = num_operands("%", a, b)
    if y == 0 then fail("integer division or modulo by zero") end
    return (x + 0.0) % y
  end,
  ["**"] = function(a, b)
    local x, y = num_operands("**", a, b)
    if x == 0 and y < 0 then fail("0.0 cannot be raised to a negative power") end
    return x ^ y
  end,
}

local function py_in(needle, hay)
  local k = kind(hay)
  if k == "string" then
    if type(needle) ~= "string" then
      if is_undef(needle) then undef_fail(needle) end
      fail(sformat("'in <string>' requires string as left operand, not %s", pytype(needle)))
    end
    return sfind(hay, needle, 1, true) ~= nil
  end
  if k == "list" then
    for i = 1, #hay do
      if py_eq(norm(hay[i]), needle) then return true end
    end
    return false
  end
  if k == "dict" then
    if type(needle) == "table" then return false end
    return hay[needle] ~= nil
  end
  if k == "undefined" then return false end
  fail(sformat("argument of type '%s' is not iterable", pytype(hay)))
end

local function arg(a, kw, i, name)
  local v = a[i]
  if v == nil and kw then v = kw[name] end
  return v
end

local function given(v)
  return v ~= nil and v ~= NONE and not is_undef(v)
end

return {
  PREFIX = PREFIX,
  fail = fail,
  syntax_error = syntax_error,
  NONE = NONE,
  UNDEF_MT = UNDEF_MT,
  NS_MT = NS_MT,
  LOOP_MT = LOOP_MT,
  BOUND_MT = BOUND_MT,
  CALL_MT = CALL_MT,
  ARRAY_MT = ARRAY_MT,
  TUPLE_MT = TUPLE_MT,
  OBJECT_MT = OBJECT_MT,
  EMPTY = EMPTY,
  undefined = undefined,
  is_undef = is_undef,
  norm = norm,
  list = list,
  tuple = tuple,
  kind = kind,
  is_int = is_int,
  pytype = pytype,
  truthy = truthy,
  undef_fail = undef_fail,
  is_ascii = is_ascii,
  uchars = uchars,
  ulen = ulen,
  utf8_encode = utf8_encode,
  utf8_decode = utf8_decode,
  is_space = is_space,
  ws_before = ws_before,
  ws_at = ws_at,
  rstrip_ws = rstrip_ws,
  lstrip_ws = lstrip_ws,
  py_strip = py_strip,
  ascii_upper = ascii_upper,
  ascii_lower = ascii_lower,
  py_capitalize = py_capitalize,
  py_title = py_title,
  jinja_title = jinja_title,
  str_lt = str_lt,
  num_str = num_str,
  py_repr = py_repr,
  to_str = to_str,
  dict_keys = dict_keys,
  dict_count = dict_count,
  iter_items = iter_items,
  copy_list = copy_list,
  py_len = py_len,
  slice_positions = slice_positions,
  py_eq = py_eq,
  numval = numval,
  py_lt = py_lt,
  py_add = py_add,
  py_mul = py_mul,
  ARITH = ARITH,
  py_in = py_in,
  arg = arg,
  given = given,
}
