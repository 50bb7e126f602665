--- bitnet.template: Jinja chat templates rendered in pure Lua.
--
-- Renders the Jinja2 subset that Hugging Face chat templates use, the way
-- transformers renders them: an immutable sandboxed Jinja2 environment with
-- trim_blocks and lstrip_blocks on, the loopcontrols extension ({% break %},
-- {% continue %}), a `tojson` that is Python's json.dumps(ensure_ascii=False),
-- and the globals raise_exception() and strftime_now().
--
-- Runs unchanged under Lua 5.1/LuaJIT 2.1 and Lua 5.4 (no integer subtype is
-- relied on, no bitwise operators, no utf8 library).
--
--   local template = require "bitnet.template"
--   local s = template.render(template.named("chatml"), {
--     messages = { { role = "user", content = "Hi" } },
--     add_generation_prompt = true,
--   })
--
-- Supported: {{ }}, {% %}, {# #}, whitespace control (-, and + to opt out of
-- lstrip/trim), {% raw %}; tags if/elif/else, for (tuple targets, `if`
-- filter, else, loop.*), set (names, tuples, namespace attributes, block
-- form), macro (positional/keyword parameters with defaults; no caller),
-- filter blocks, with, break/continue, generation (rendered as-is); the full
-- Jinja expression grammar except *args/**kwargs; the filters and tests listed
-- in FILTERS and TESTS below; str/dict methods listed in STR_METHODS and
-- DICT_METHODS. Unknown tags, filters and tests are errors at compile time.
--
-- Value model (Lua <-> Python):
--   * strings are byte strings; UTF-8 passes through untouched. length,
--     indexing, slicing, reverse and `list` work on UTF-8 code points like
--     Python str. Case mapping (upper/lower/title/capitalize) is ASCII only;
--     other code points are left alone (and count as letters for title()).
--     Whitespace is Python's (ASCII plus the Unicode spaces).
--   * numbers: Lua numbers. Integral values print as integers ("2", where
--     Python would print a float as "2.0"); other values print as Python's
--     shortest repr ("0.1", "1e-07"). `is integer` / `is float` go by value.
--   * nil (a missing key) is Jinja's Undefined: prints as "", is falsy,
--     `is defined` is false, iterates as empty; arithmetic on it, calling it,
--     or taking an attribute of it raises "'x' is undefined" like Jinja2.
--   * template.none is Python's None ("None", `is none`); cjson.null (when
--     cjson is loaded) is treated as None too.
--   * tables: a table is a list when it is a sequence 1..n, otherwise a dict.
--     An empty table is a list (so it prints and serializes as []). Mark a
--     table with a metatable field __jsontype = "object" | "array" (the dkjson
--     convention; template.object() / template.array() do it) to force the
--     kind; cjson's array_mt / empty_array_mt are honored as arrays. Dict keys
--     iterate (and serialize) in the order given by the metatable field
--     __jsonorder (a list of keys) when present, then in sorted order (numbers
--     before strings, strings by bytes): Lua tables have no insertion order.
--     Dict literals in templates keep their source order.
--   * tuples are lists.
--   * Lua functions in the context can be called; they get positional
--     arguments (None/Undefined become nil) plus a table of keyword arguments
--     when any are given; a nil result is None.
--
-- Errors are raised as strings "bitnet.template: line N: message".
-- raise_exception(msg) raises with msg in that message.

local M = {}

local type, pairs, ipairs, next, select = type, pairs, ipairs, next, select
local tostring, tonumber = tostring, tonumber
local setmetatable, getmetatable, rawget, rawequal = setmetatable, getmetatable, rawget, rawequal
local error, pcall = error, pcall
local sbyte, schar, ssub, sfind = string.byte, string.char, string.sub, string.find
local sformat, sgsub, srep, smatch, slower, supper = string.format, string.gsub, string.rep, string.match, string.lower, string.upper
local sgmatch = string.gmatch
local concat, tsort, tinsert, tremove = table.concat, table.sort, table.insert, table.remove
local unpack = table.unpack or unpack
local floor, ceil, huge, max, min = math.floor, math.ceil, math.huge, math.max, math.min
local os_date = os.date
local loaded = package.loaded

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
local function py_repr(v)
  local k = kind(v)
  if k == "string" then return str_repr(v) end
  if k == "number" then return num_str(v) end
  if k == "boolean" then return v and "True" or "False" end
  if k == "none" then return "None" end
  if k == "undefined" then return "" end
  if k == "list" then
    local parts = {}
    for i = 1, #v do parts[i] = py_repr(norm(v[i])) end
    if getmetatable(v) == TUPLE_MT then
      return "(" .. concat(parts, ", ") .. (#v == 1 and ",)" or ")")
    end
    return "[" .. concat(parts, ", ") .. "]"
  end
  if k == "dict" then
    local parts = {}
    for i, key in ipairs(dict_keys(v)) do parts[i] = py_repr(key) .. ": " .. py_repr(norm(v[key])) end
    return "{" .. concat(parts, ", ") .. "}"
  end
  if k == "namespace" then
    local parts = {}
    for i, key in ipairs(v.keys) do parts[i] = py_repr(key) .. ": " .. py_repr(v.vals[key]) end
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

local function same_kind_eq(a, b)
  local ka, kb = kind(a), kind(b)
  if ka ~= kb then return false end
  if ka == "none" or ka == "undefined" then return true end
  if ka == "list" then
    if #a ~= #b then return false end
    for i = 1, #a do
      if not py_eq(norm(a[i]), norm(b[i])) then return false end
    end
    return true
  end
  if ka == "dict" then
    if dict_count(a) ~= dict_count(b) then return false end
    for key, va in pairs(a) do
      local vb = b[key]
      if vb == nil or not py_eq(norm(va), norm(vb)) then return false end
    end
    return true
  end
  return false
end

function py_eq(a, b)
  if a == b then return true end
  local ta, tb = type(a), type(b)
  if ta == "boolean" and tb == "number" then return (a and 1 or 0) == b end
  if ta == "number" and tb == "boolean" then return a == (b and 1 or 0) end
  if ta == "table" or ta == "userdata" then
    if tb == "table" or tb == "userdata" then return same_kind_eq(a, b) end
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
  if ta == "string" and tb == "string" then return a .. b end
  check_defined(a, b)
  if ta == "string" then
    fail(sformat('can only concatenate str (not "%s") to str', pytype(b)))
  end
  if kind(a) == "list" and kind(b) == "list" then
    local out = {}
    for i = 1, #a do out[i] = a[i] end
    for i = 1, #b do out[#out + 1] = b[i] end
    return list(out)
  end
  binop_error("+", a, b)
end

local function repeat_seq(s, n)
  if not is_int(n) then fail("can't multiply sequence by non-int of type 'float'") end
  if type(s) == "string" then return n > 0 and srep(s, n) or "" end
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

---------------------------------------------------------------------------
-- JSON (Python json.dumps)
---------------------------------------------------------------------------

local JSON_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\b"] = "\\b", ["\f"] = "\\f" }

local function json_str(s, ensure_ascii)
  s = sgsub(s, '[%z\1-\31"\\]', function(c) return JSON_ESC[c] or sformat("\\u%04x", sbyte(c)) end)
  if ensure_ascii and not is_ascii(s) then
    s = sgsub(s, "[\192-\255][\128-\191]*", function(ch)
      local cp = utf8_decode(ch)
      if cp >= 0x10000 then
        cp = cp - 0x10000
        return sformat("\\u%04x\\u%04x", 0xD800 + floor(cp / 1024), 0xDC00 + cp % 1024)
      end
      return sformat("\\u%04x", cp)
    end)
  end
  return '"' .. s .. '"'
end

local function json_num(x)
  if x ~= x then return "NaN" end
  if x == huge then return "Infinity" end
  if x == -huge then return "-Infinity" end
  return num_str(x)
end

local function json_key(key)
  local tk = type(key)
  if tk == "string" then return key end
  if tk == "number" then return json_num(key) end
  if tk == "boolean" then return key and "true" or "false" end
  if key == NONE then return "null" end
  fail(sformat("keys must be str, int, float, bool or None, not %s", pytype(key)))
end

local function json_encode(v, opts, depth)
  local k = kind(v)
  if k == "string" then return json_str(v, opts.ensure_ascii) end
  if k == "number" then return json_num(v) end
  if k == "boolean" then return v and "true" or "false" end
  if k == "none" then return "null" end
  if k ~= "list" and k ~= "dict" then
    fail(sformat("Object of type %s is not JSON serializable", pytype(v)))
  end
  if depth > 200 then fail("tojson: nesting too deep (circular reference?)") end
  local parts = {}
  if k == "list" then
    for i = 1, #v do parts[i] = json_encode(norm(v[i]), opts, depth + 1) end
  else
    local keys = dict_keys(v)
    local names = {}
    for i = 1, #keys do names[i] = json_key(keys[i]) end
    local idx = {}
    for i = 1, #keys do idx[i] = i end
    if opts.sort_keys then tsort(idx, function(a, b) return str_lt(names[a], names[b]) end) end
    for j, i in ipairs(idx) do
      parts[j] = json_str(names[i], opts.ensure_ascii) .. opts.kv_sep .. json_encode(norm(v[keys[i]]), opts, depth + 1)
    end
  end
  local open, close = k == "list" and "[" or "{", k == "list" and "]" or "}"
  if #parts == 0 then return open .. close end
  if not opts.indent then return open .. concat(parts, opts.item_sep) .. close end
  local inner = "\n" .. srep(opts.indent, depth + 1)
  return open .. inner .. concat(parts, opts.item_sep .. inner) .. "\n" .. srep(opts.indent, depth) .. close
end

-- tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
local function tojson(v, ensure_ascii, indent, separators, sort_keys)
  local opts = { ensure_ascii = truthy(ensure_ascii), sort_keys = truthy(sort_keys) }
  if indent ~= nil and indent ~= NONE and not is_undef(indent) then
    if type(indent) == "number" then
      opts.indent = srep(" ", indent > 0 and indent or 0)
    else
      opts.indent = to_str(indent)
    end
  end
  opts.item_sep, opts.kv_sep = opts.indent and "," or ", ", ": "
  if separators ~= nil and separators ~= NONE and not is_undef(separators) then
    if kind(separators) ~= "list" or #separators ~= 2 then fail("tojson: separators must be a pair of strings") end
    opts.item_sep, opts.kv_sep = to_str(separators[1]), to_str(separators[2])
  end
  return json_encode(v, opts, 0)
end

---------------------------------------------------------------------------
-- Attribute and item access
---------------------------------------------------------------------------

local STR_METHODS, DICT_METHODS = {}, {}
local UNSAFE = { append = true, extend = true, insert = true, pop = true, remove = true,
  clear = true, sort = true, reverse = true, update = true, setdefault = true, popitem = true }

local function bound(fn, self)
  return setmetatable({ fn = fn, self = self }, BOUND_MT)
end

local function no_attr(v, name)
  return undefined(sformat("'%s object' has no attribute '%s'", pytype(v), to_str(name)))
end

local LOOP_FIELDS -- defined with the for statement

-- obj.name (Jinja: attribute first, then item).
local function getattr(obj, name)
  local tv = type(obj)
  if tv == "string" then
    local m = STR_METHODS[name]
    if m then return bound(m, obj) end
    return no_attr(obj, name)
  end
  if tv ~= "table" then
    if norm(obj) == NONE then return undefined(sformat("'None' has no attribute '%s'", name)) end
    return no_attr(obj, name)
  end
  if obj == NONE then return undefined(sformat("'None' has no attribute '%s'", name)) end
  local mt = getmetatable(obj)
  if mt == UNDEF_MT then undef_fail(obj) end
  if mt == NS_MT then
    local v = obj.vals[name]
    if v == nil then return no_attr(obj, name) end
    return v
  end
  if mt == LOOP_MT then
    local f = LOOP_FIELDS[name]
    if f then return f(obj) end
    return no_attr(obj, name)
  end
  if mt == BOUND_MT or mt == CALL_MT then return no_attr(obj, name) end
  if UNSAFE[name] then
    return undefined(sformat("access to attribute '%s' of '%s' object is unsafe", name, kind(obj)))
  end
  local m = DICT_METHODS[name]
  if m then
    local k = kind(obj)
    if k == "dict" or (k == "list" and #obj == 0) then return bound(m, obj) end
  end
  local v = obj[name]
  if v == nil then return no_attr(obj, name) end
  return norm(v)
end

-- obj[key] (Jinja: item first, then attribute for string keys).
local function getitem(obj, key)
  local tv = type(obj)
  if tv == "table" and getmetatable(obj) == UNDEF_MT then undef_fail(obj) end
  local tk = type(key)
  if tk == "table" and getmetatable(key) == UNDEF_MT then undef_fail(key) end
  if tk == "boolean" then key, tk = key and 1 or 0, "number" end
  if tk == "number" then
    if tv == "string" then
      if is_int(key) then
        local cs, n = uchars(obj)
        local i = key < 0 and n + key or key
        if i >= 0 and i < n then return cs[i + 1] end
      end
      return undefined(sformat("'str object' has no element %s", num_str(key)))
    end
    local k = kind(obj)
    if k == "list" then
      if is_int(key) then
        local n = #obj
        local i = key < 0 and n + key or key
        if i >= 0 and i < n then return norm(obj[i + 1]) end
      end
      return undefined(sformat("'list object' has no element %s", num_str(key)))
    end
    if k == "dict" then
      local v = obj[key]
      if v ~= nil then return norm(v) end
    end
    return undefined(sformat("'%s object' has no element %s", pytype(obj), num_str(key)))
  end
  if tv == "table" and tk ~= "table" and obj ~= NONE then
    local mt = getmetatable(obj)
    if mt ~= NS_MT and mt ~= LOOP_MT and mt ~= BOUND_MT and mt ~= CALL_MT then
      local v = obj[key]
      if v ~= nil then return norm(v) end
    end
  end
  if tk == "string" then return getattr(obj, key) end
  return undefined(sformat("'%s object' has no element %s", pytype(obj), py_repr(key)))
end

-- obj[start:stop:step]
local function getslice(obj, start, stop, step)
  local function idx(x)
    if x == nil or x == NONE then return nil end
    if type(x) ~= "number" or not is_int(x) then
      fail("slice indices must be integers or None")
    end
    return x
  end
  start, stop, step = idx(start), idx(stop), idx(step)
  local k = kind(obj)
  if k == "undefined" then undef_fail(obj) end
  local items, n
  if k == "string" then items, n = uchars(obj)
  elseif k == "list" then items, n = obj, #obj
  else fail(sformat("'%s' object is not subscriptable", pytype(obj))) end
  local out = {}
  for i, p in ipairs(slice_positions(n, start, stop, step)) do out[i] = items[p] end
  if k == "string" then return concat(out) end
  return list(out)
end

-- "a.b.0" -> getter (Jinja's make_attrgetter for filters' attribute=).
local function attr_getter(path)
  if type(path) == "number" then
    return function(item) return getitem(item, path) end
  end
  local parts = {}
  for p in sgmatch(to_str(path), "[^.]+") do
    parts[#parts + 1] = tonumber(p) or p
  end
  return function(item)
    for i = 1, #parts do item = getitem(item, parts[i]) end
    return item
  end
end

---------------------------------------------------------------------------
-- Calling
---------------------------------------------------------------------------

local function arg(a, kw, i, name)
  local v = a[i]
  if v == nil and kw then v = kw[name] end
  return v
end

local function given(v)
  return v ~= nil and v ~= NONE and not is_undef(v)
end

local function to_lua(v)
  if v == NONE or is_undef(v) then return nil end
  return v
end

local function call_value(fn, args, kw)
  local tv = type(fn)
  if tv == "function" then
    local n = #args
    local la = {}
    for i = 1, n do la[i] = to_lua(args[i]) end
    if kw then n = n + 1; la[n] = kw end
    local r = fn(unpack(la, 1, n))
    if r == nil then return NONE end
    return norm(r)
  end
  if tv == "table" then
    local mt = getmetatable(fn)
    if mt == CALL_MT then return fn.fn(args, kw) end
    if mt == BOUND_MT then return fn.fn(fn.self, args, kw) end
    if mt == UNDEF_MT then undef_fail(fn) end
  end
  fail(sformat("'%s' object is not callable", pytype(fn)))
end

local function builtin(fn)
  return setmetatable({ fn = fn }, CALL_MT)
end

---------------------------------------------------------------------------
-- String and dict methods
---------------------------------------------------------------------------

local function str_arg(v, what)
  if type(v) ~= "string" then fail(sformat("%s must be str, not %s", what, pytype(v))) end
  return v
end

-- Python str.split / str.rsplit.
local function py_split(s, sep, maxsplit, from_right)
  maxsplit = (given(maxsplit) and maxsplit >= 0) and maxsplit or -1
  local out = {}
  if not given(sep) then
    local cs, n = uchars(s)
    local words, cur = {}, nil
    for i = 1, n do
      if is_space(cs[i]) then
        if cur then words[#words + 1] = cur; cur = nil end
      else
        cur = (cur or "") .. cs[i]
      end
    end
    if cur then words[#words + 1] = cur end
    if maxsplit < 0 or #words <= maxsplit + 1 then return list(words) end
    -- with a limit, the remainder keeps its inner whitespace
    if from_right then
      local t = rstrip_ws(s)
      for _ = 1, maxsplit do
        local e = #t
        while e > 0 and ws_before(t, e) == 0 do e = e - 1 end
        tinsert(out, 1, ssub(t, e + 1))
        t = rstrip_ws(ssub(t, 1, e))
      end
      tinsert(out, 1, t)
    else
      local t = lstrip_ws(s)
      for _ = 1, maxsplit do
        local i = 1
        while i <= #t and ws_at(t, i) == 0 do i = i + 1 end
        out[#out + 1] = ssub(t, 1, i - 1)
        t = lstrip_ws(ssub(t, i))
      end
      out[#out + 1] = t
    end
    return list(out)
  end
  sep = str_arg(sep, "separator")
  if sep == "" then fail("empty separator") end
  if from_right and maxsplit >= 0 then
    local e = #s
    local count = 0
    while count < maxsplit do
      local found
      local i = 1
      while true do
        local p = sfind(s, sep, i, true)
        if not p or p + #sep - 1 > e then break end
        found = p
        i = p + 1
      end
      if not found then break end
      tinsert(out, 1, ssub(s, found + #sep, e))
      e = found - 1
      count = count + 1
    end
    tinsert(out, 1, ssub(s, 1, e))
    return list(out)
  end
  local i, count = 1, 0
  while maxsplit < 0 or count < maxsplit do
    local p = sfind(s, sep, i, true)
    if not p then break end
    out[#out + 1] = ssub(s, i, p - 1)
    i = p + #sep
    count = count + 1
  end
  out[#out + 1] = ssub(s, i)
  return list(out)
end

local function py_splitlines(s)
  local out = {}
  s = sgsub(s, "\r\n?", "\n")
  local i = 1
  while i <= #s do
    local p = sfind(s, "\n", i, true)
    if not p then out[#out + 1] = ssub(s, i); break end
    out[#out + 1] = ssub(s, i, p - 1)
    i = p + 1
  end
  return list(out)
end

local function py_replace(s, old, new, count)
  old, new = str_arg(old, "replace() argument 1"), str_arg(new, "replace() argument 2")
  count = given(count) and count or -1
  if old == "" then
    local cs, n = uchars(s)
    local out = {}
    for i = 1, n + 1 do
      if count < 0 or i <= count then out[#out + 1] = new end
      out[#out + 1] = cs[i]
    end
    return concat(out)
  end
  local out, i, done = {}, 1, 0
  while count < 0 or done < count do
    local p = sfind(s, old, i, true)
    if not p then break end
    out[#out + 1] = ssub(s, i, p - 1)
    out[#out + 1] = new
    i = p + #old
    done = done + 1
  end
  out[#out + 1] = ssub(s, i)
  return concat(out)
end

local function affix_test(s, a, at_end)
  local p = a[1]
  local cands = type(p) == "string" and { p } or (kind(p) == "list" and p) or nil
  if not cands then fail("startswith/endswith first arg must be str or a tuple of str") end
  for _, c in ipairs(cands) do
    c = str_arg(c, "prefix")
    if at_end then
      if c == "" or ssub(s, -#c) == c then return true end
    elseif ssub(s, 1, #c) == c then
      return true
    end
  end
  return false
end

STR_METHODS.strip = function(s, a, kw) return py_strip(s, arg(a, kw, 1, "chars"), true, true) end
STR_METHODS.lstrip = function(s, a, kw) return py_strip(s, arg(a, kw, 1, "chars"), true, false) end
STR_METHODS.rstrip = function(s, a, kw) return py_strip(s, arg(a, kw, 1, "chars"), false, true) end
STR_METHODS.upper = function(s) return ascii_upper(s) end
STR_METHODS.lower = function(s) return ascii_lower(s) end
STR_METHODS.title = function(s) return py_title(s) end
STR_METHODS.capitalize = function(s) return py_capitalize(s) end
STR_METHODS.startswith = function(s, a) return affix_test(s, a, false) end
STR_METHODS.endswith = function(s, a) return affix_test(s, a, true) end
STR_METHODS.split = function(s, a, kw)
  return py_split(s, arg(a, kw, 1, "sep"), arg(a, kw, 2, "maxsplit"), false)
end
STR_METHODS.rsplit = function(s, a, kw)
  return py_split(s, arg(a, kw, 1, "sep"), arg(a, kw, 2, "maxsplit"), true)
end
STR_METHODS.splitlines = function(s) return py_splitlines(s) end
STR_METHODS.replace = function(s, a, kw)
  return py_replace(s, arg(a, kw, 1, "old"), arg(a, kw, 2, "new"), arg(a, kw, 3, "count"))
end
STR_METHODS.find = function(s, a)
  local p = sfind(s, str_arg(a[1], "find() argument"), 1, true)
  if not p then return -1 end
  return ulen(ssub(s, 1, p - 1))
end
STR_METHODS.count = function(s, a)
  local sub = str_arg(a[1], "count() argument")
  if sub == "" then return ulen(s) + 1 end
  local n, i = 0, 1
  while true do
    local p = sfind(s, sub, i, true)
    if not p then return n end
    n, i = n + 1, p + #sub
  end
end
STR_METHODS.join = function(s, a)
  local items, n = iter_items(a[1])
  local out = {}
  for i = 1, n do out[i] = str_arg(norm(items[i]), "sequence item") end
  return concat(out, s)
end
STR_METHODS.removeprefix = function(s, a)
  local p = str_arg(a[1], "prefix")
  if p ~= "" and ssub(s, 1, #p) == p then return ssub(s, #p + 1) end
  return s
end
STR_METHODS.removesuffix = function(s, a)
  local p = str_arg(a[1], "suffix")
  if p ~= "" and ssub(s, -#p) == p then return ssub(s, 1, #s - #p) end
  return s
end
local function char_class_test(pat)
  return function(s) return s ~= "" and not sfind(s, pat) end
end
STR_METHODS.isdigit = char_class_test("[^0-9]")
STR_METHODS.isalpha = char_class_test("[^A-Za-z]")
STR_METHODS.isalnum = char_class_test("[^0-9A-Za-z]")
STR_METHODS.isspace = function(s) return s ~= "" and lstrip_ws(s) == "" end
STR_METHODS.islower = function(s) return sfind(s, "[a-z]") ~= nil and not sfind(s, "[A-Z]") end
STR_METHODS.isupper = function(s) return sfind(s, "[A-Z]") ~= nil and not sfind(s, "[a-z]") end

local function dict_pairs(d)
  local out = {}
  for i, key in ipairs(dict_keys(d)) do out[i] = tuple({ key, norm(d[key]) }) end
  return list(out)
end

DICT_METHODS.items = function(d) return dict_pairs(d) end
DICT_METHODS.keys = function(d) return list(dict_keys(d)) end
DICT_METHODS.values = function(d)
  local out = {}
  for i, key in ipairs(dict_keys(d)) do out[i] = norm(d[key]) end
  return list(out)
end
DICT_METHODS.get = function(d, a, kw)
  local key = a[1]
  local v = type(key) ~= "table" and d[key] or nil
  if v == nil then
    v = arg(a, kw, 2, "default")
    if v == nil then return NONE end
    return v
  end
  return norm(v)
end

---------------------------------------------------------------------------
-- Tests ({{ x is name }}): function(value, args) -> boolean
---------------------------------------------------------------------------

local FILTERS = {}
local TESTS = {}

local function cmp_test(fn)
  return function(v, a) return fn(v, a[1]) end
end

TESTS.defined = function(v) return not is_undef(v) end
TESTS.undefined = function(v) return is_undef(v) end
TESTS.none = function(v) return kind(v) == "none" end
TESTS.boolean = function(v) return type(v) == "boolean" end
TESTS["true"] = function(v) return v == true end
TESTS["false"] = function(v) return v == false end
TESTS.integer = function(v) return type(v) == "number" and is_int(v) end
TESTS.float = function(v) return type(v) == "number" and not is_int(v) end
TESTS.number = function(v) return type(v) == "number" or type(v) == "boolean" end
TESTS.string = function(v) return type(v) == "string" end
TESTS.mapping = function(v) return kind(v) == "dict" end
TESTS.iterable = function(v)
  local k = kind(v)
  return k == "string" or k == "list" or k == "dict" or k == "undefined"
end
TESTS.sequence = function(v)
  local k = kind(v)
  return k == "string" or k == "list" or k == "dict"
end
TESTS.callable = function(v)
  local k = kind(v)
  return k == "callable" or k == "undefined"
end
TESTS.odd = function(v) return numval(v) ~= nil and numval(v) % 2 == 1 end
TESTS.even = function(v) return numval(v) ~= nil and numval(v) % 2 == 0 end
TESTS.divisibleby = function(v, a)
  local x, y = numval(v), numval(a[1])
  if not x or not y then fail("divisibleby needs numbers") end
  if y == 0 then fail("integer division or modulo by zero") end
  return x % y == 0
end
TESTS.eq = cmp_test(py_eq)
TESTS.ne = cmp_test(function(a, b) return not py_eq(a, b) end)
TESTS.lt = cmp_test(function(a, b) return py_lt(a, b, "<") end)
TESTS.le = cmp_test(function(a, b) return not py_lt(b, a, "<=") end)
TESTS.gt = cmp_test(function(a, b) return py_lt(b, a, ">") end)
TESTS.ge = cmp_test(function(a, b) return not py_lt(a, b, ">=") end)
TESTS.equalto, TESTS["=="], TESTS["!="] = TESTS.eq, TESTS.eq, TESTS.ne
TESTS.lessthan, TESTS["<"], TESTS["<="] = TESTS.lt, TESTS.lt, TESTS.le
TESTS.greaterthan, TESTS[">"], TESTS[">="] = TESTS.gt, TESTS.gt, TESTS.ge
TESTS["in"] = function(v, a) return py_in(v, a[1]) end
TESTS.sameas = function(v, a)
  local b = a[1]
  if type(v) == "table" or type(b) == "table" then return rawequal(v, b) end
  return v == b
end
TESTS.lower = function(v) return type(v) == "string" and STR_METHODS.islower(v) end
TESTS.upper = function(v) return type(v) == "string" and STR_METHODS.isupper(v) end
TESTS.escaped = function() return false end
TESTS.filter = function(v) return FILTERS[v] ~= nil end
TESTS.test = function(v) return TESTS[v] ~= nil end

-- Run test `name` (a value) on v; for select/reject.
local function run_test(name, v, args)
  local t = TESTS[to_str(name)]
  if not t then fail(sformat("no test named '%s'", to_str(name))) end
  return t(v, args)
end

---------------------------------------------------------------------------
-- Filters ({{ x | name(args) }}): function(value, args, kwargs) -> value
---------------------------------------------------------------------------

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

local function int_of_string(s, base)
  s = sgsub(py_strip(s), "([0-9A-Za-z])_([0-9A-Za-z])", "%1%2")
  if base == 10 then
    if smatch(s, "^[+-]?[0-9]+$") then return tonumber(s) end
    return nil
  end
  local sign = 1
  if smatch(s, "^[+-]") then sign = ssub(s, 1, 1) == "-" and -1 or 1; s = ssub(s, 2) end
  local n = tonumber(s, base)
  return n and sign * n
end

-- Python float(str): decimal literal with optional sign/exponent, inf, nan.
local function float_of_string(s)
  s = slower(py_strip(s))
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
  local out = {}
  for i = 1, n do
    local item = norm(items[i])
    if get then item = get(item) end
    out[i] = to_str(item)
  end
  return concat(out, sep == nil and "" or to_str(sep))
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
FILTERS.round = function(v, a, kw)
  local x = numval(v)
  if not x then fail("round filter needs a number") end
  local precision = arg(a, kw, 1, "precision") or 0
  local method = arg(a, kw, 2, "method") or "common"
  if method == "common" then
    return tonumber(sformat("%." .. floor(precision) .. "f", x))
  end
  local m = 10 ^ precision
  if method == "ceil" then return ceil(x * m) / m end
  if method == "floor" then return floor(x * m) / m end
  fail("round method must be 'common', 'ceil' or 'floor'")
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
  tsort(dec, function(x, y)
    if py_lt(x.k, y.k, "<") then return not reverse end
    if py_lt(y.k, x.k, "<") then return reverse end
    return x.i < y.i
  end)
  local out = {}
  for i = 1, n do out[i] = dec[i].v end
  return list(out)
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
  tsort(dec, function(x, y)
    if py_lt(x.k, y.k, "<") then return not reverse end
    if py_lt(y.k, x.k, "<") then return reverse end
    return x.i < y.i
  end)
  local out = {}
  for i = 1, #dec do out[i] = dec[i].v end
  return list(out)
end
FILTERS.indent = function(v, a, kw)
  local s = to_str(v)
  local width = arg(a, kw, 1, "width")
  if width == nil then width = 4 end
  local pad = type(width) == "string" and width or srep(" ", width)
  local first, blank = truthy(arg(a, kw, 2, "first")), truthy(arg(a, kw, 3, "blank"))
  local lines = py_splitlines(s .. "\n")
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
    for _, x in ipairs({ start, stop, step }) do
      if type(x) ~= "number" or not is_int(x) then fail("range() arguments must be integers") end
    end
    if step == 0 then fail("range() arg 3 must not be zero") end
    local out = {}
    local i = start
    while (step > 0 and i < stop) or (step < 0 and i > stop) do
      out[#out + 1] = i
      i = i + step
      if #out > 100000 then fail("range() too large") end
    end
    return list(out)
  end),
  strftime_now = builtin(function(a) return os_date(to_str(a[1])) end),
}

---------------------------------------------------------------------------
-- Lexer
---------------------------------------------------------------------------

local OPS2 = { ["//"] = true, ["**"] = true, ["=="] = true, ["!="] = true, [">="] = true, ["<="] = true }
local OPS1 = {}
for c in sgmatch("+-*/%~<>=.,:|()[]{}", ".") do OPS1[c] = true end
local OPEN = { ["("] = ")", ["["] = "]", ["{"] = "}" }

local STR_ESC = { n = "\n", t = "\t", r = "\r", ["\\"] = "\\", ["'"] = "'", ['"'] = '"',
  a = "\a", b = "\b", f = "\f", v = "\v", ["\n"] = "" }

-- Decode a Jinja string literal body (Python unicode-escape rules).
local function unescape(body, line)
  if not sfind(body, "\\", 1, true) then return body end
  local out, i, n = {}, 1, #body
  while i <= n do
    local p = sfind(body, "\\", i, true)
    if not p then out[#out + 1] = ssub(body, i); break end
    out[#out + 1] = ssub(body, i, p - 1)
    local c = ssub(body, p + 1, p + 1)
    local hexlen = c == "x" and 2 or c == "u" and 4 or c == "U" and 8 or nil
    if STR_ESC[c] then
      out[#out + 1] = STR_ESC[c]
      i = p + 2
    elseif hexlen then
      local hex = ssub(body, p + 2, p + 1 + hexlen)
      if #hex ~= hexlen or not smatch(hex, "^[0-9A-Fa-f]+$") then
        syntax_error(line, "truncated \\" .. c .. " escape in string literal")
      end
      out[#out + 1] = utf8_encode(tonumber(hex, 16))
      i = p + 2 + hexlen
    elseif smatch(c, "^[0-7]$") then
      local oct = smatch(body, "^[0-7][0-7]?[0-7]?", p + 1)
      out[#out + 1] = utf8_encode(tonumber(oct, 8))
      i = p + 1 + #oct
    else
      out[#out + 1] = "\\"
      i = p + 1
    end
  end
  return concat(out)
end

-- Tokens: { k = kind, v = value, line = n }. Kinds: data, var_begin,
-- var_end, block_begin, block_end, name, string, number, op, eof.
local function lex(src)
  src = sgsub(src, "\r\n?", "\n")
  if ssub(src, -1) == "\n" then src = ssub(src, 1, -2) end -- keep_trailing_newline=False
  local toks, nt = {}, 0
  local pos, line, n = 1, 1, #src
  local line_starting = true

  local function emit(k, v, l)
    nt = nt + 1
    toks[nt] = { k = k, v = v, line = l }
  end
  local function count_nl(a, b)
    local _, c = sgsub(ssub(src, a, b), "\n", "")
    return c
  end
  -- Consume the end of a tag starting at p (the sign or the closing chars):
  -- '-' strips all following whitespace, '+' nothing, otherwise trim_blocks
  -- eats one newline (for blocks and comments only).
  local function finish_tag(p, close_len, sign, trims)
    local after = p + #sign + close_len
    if sign == "-" then
      while after <= n do
        local w = ws_at(src, after)
        if w == 0 then break end
        after = after + w
      end
    elseif sign == "" and trims and ssub(src, after, after) == "\n" then
      after = after + 1
    end
    line = line + count_nl(p, after - 1)
    line_starting = ssub(src, after - 1, after - 1) == "\n"
    return after
  end
  -- Apply '-' / lstrip_blocks to the text before a tag.
  local function strip_text(text, sign, lstrip)
    if sign == "-" then return rstrip_ws(text) end
    if sign ~= "+" and lstrip then
      local l_pos = 0
      local i = 0
      while true do
        local q = sfind(text, "\n", i + 1, true)
        if not q then break end
        l_pos, i = q, q
      end
      if l_pos > 0 or line_starting then
        local tail = ssub(text, l_pos + 1)
        if tail ~= "" and lstrip_ws(tail) == "" then return ssub(text, 1, l_pos) end
      end
    end
    return text
  end

  -- Expression tokens up to the closing delimiter of a {{ }} or {% %} tag.
  local function lex_tag(p, is_block, tag_line)
    local depth = {}
    while true do
      while p <= n do
        local w = ws_at(src, p)
        if w == 0 then break end
        if ssub(src, p, p) == "\n" then line = line + 1 end
        p = p + w
      end
      if p > n then
        syntax_error(tag_line, is_block and "missing end of block tag '%}'" or "missing end of variable tag '}}'")
      end
      if #depth == 0 then
        local close = is_block and "%}" or "}}"
        local sign = ssub(src, p, p)
        if (sign == "-" or (sign == "+" and is_block)) and ssub(src, p + 1, p + 2) == close then
          emit(is_block and "block_end" or "var_end", nil, line)
          return finish_tag(p, 2, sign, is_block)
        elseif ssub(src, p, p + 1) == close then
          emit(is_block and "block_end" or "var_end", nil, line)
          return finish_tag(p, 2, "", is_block)
        end
      end
      local c = ssub(src, p, p)
      local s, e = sfind(src, "^[A-Za-z_][A-Za-z0-9_]*", p)
      if s then
        emit("name", ssub(src, s, e), line)
        p = e + 1
      elseif smatch(c, "^[0-9]$") then
        local _, e1 = sfind(src, "^[0-9][0-9_]*", p)
        local e2 = e1
        local _, fe = sfind(src, "^%.[0-9][0-9_]*", e2 + 1)
        if fe then e2 = fe end
        local _, ee = sfind(src, "^[eE][+-]?[0-9][0-9_]*", e2 + 1)
        if ee then e2 = ee end
        emit("number", tonumber((sgsub(ssub(src, p, e2), "_", ""))) + 0.0, line)
        p = e2 + 1
      elseif c == "'" or c == '"' then
        local q = p + 1
        while true do
          local ch = ssub(src, q, q)
          if ch == "" then syntax_error(line, "unterminated string literal") end
          if ch == "\\" then q = q + 2
          elseif ch == c then break
          else q = q + 1 end
        end
        local body = ssub(src, p + 1, q - 1)
        emit("string", unescape(body, line), line)
        line = line + count_nl(p, q)
        p = q + 1
      else
        local two = ssub(src, p, p + 1)
        local op
        if OPS2[two] then op = two elseif OPS1[c] then op = c end
        if not op then syntax_error(line, sformat("unexpected char '%s'", c)) end
        if OPEN[op] then
          depth[#depth + 1] = OPEN[op]
        elseif op == ")" or op == "]" or op == "}" then
          if #depth == 0 then syntax_error(line, sformat("unexpected '%s'", op)) end
          local want = depth[#depth]
          if want ~= op then syntax_error(line, sformat("unexpected '%s', expected '%s'", op, want)) end
          depth[#depth] = nil
        end
        emit("op", op, line)
        p = p + #op
      end
    end
  end

  while pos <= n do
    local s = sfind(src, "{[{%%#]", pos)
    if not s then
      emit("data", ssub(src, pos), line)
      break
    end
    local text = ssub(src, pos, s - 1)
    local kind_c = ssub(src, s + 1, s + 1)
    local sign = ssub(src, s + 2, s + 2)
    if sign ~= "-" and sign ~= "+" then sign = "" end
    local inner = s + 2 + #sign
    local text_line = line
    text = strip_text(text, sign, kind_c ~= "{")
    if text ~= "" then emit("data", text, text_line) end
    line = line + count_nl(pos, s - 1)
    local tag_line = line

    if kind_c == "#" then
      local e = sfind(src, "#}", inner, true)
      if not e then syntax_error(tag_line, "missing end of comment tag") end
      local esign = ""
      if e - 1 >= inner then
        local c = ssub(src, e - 1, e - 1)
        if c == "-" or c == "+" then esign = c end
      end
      line = line + count_nl(s, e - 1 - #esign)
      pos = finish_tag(e - #esign, 2, esign, true)
    else
      local raw_s, raw_e = sfind(src, "^[ \t\n\f\v]*raw[ \t\n\f\v]*", inner)
      local raw_close
      if kind_c == "%" and raw_s then
        if ssub(src, raw_e + 1, raw_e + 3) == "-%}" then raw_close = "-"
        elseif ssub(src, raw_e + 1, raw_e + 2) == "%}" then raw_close = "" end
      end
      if raw_close then
        -- {% raw %}: the opening tag never trims the newline after it.
        local after = raw_e + 1 + #raw_close + 2
        if raw_close == "-" then
          while after <= n and ws_at(src, after) > 0 do after = after + ws_at(src, after) end
        end
        line = line + count_nl(s, after - 1)
        line_starting = ssub(src, after - 1, after - 1) == "\n"
        local search = after
        local es, ee, esign
        while true do
          es = sfind(src, "{%", search, true)
          if not es then syntax_error(tag_line, "missing end of raw directive") end
          local sg = ssub(src, es + 2, es + 2)
          if sg ~= "-" and sg ~= "+" then sg = "" end
          local _, ne = sfind(src, "^[ \t\n\f\v]*endraw[ \t\n\f\v]*", es + 2 + #sg)
          if ne then
            local c = ssub(src, ne + 1, ne + 1)
            local cs = (c == "-" or c == "+") and c or ""
            if ssub(src, ne + 1 + #cs, ne + 2 + #cs) == "%}" then
              ee, esign = ne + 1, cs
              local body = strip_text(ssub(src, after, es - 1), sg, true)
              if body ~= "" then emit("data", body, line) end
              break
            end
          end
          search = es + 2
        end
        line = line + count_nl(after, ee - 1)
        pos = finish_tag(ee, 2, esign, true)
      else
        emit(kind_c == "{" and "var_begin" or "block_begin", nil, tag_line)
        pos = lex_tag(inner, kind_c == "%", tag_line)
      end
    end
  end
  emit("eof", nil, line)
  return toks
end

---------------------------------------------------------------------------
-- Parser: builds closures directly.
--   expression: function(frame) -> value
--   statement:  function(rs, frame) -> nil | "break" | "continue"
-- rs (render state) = { out = buffer, line = current line }.
-- Frames are tables whose __index chains to the enclosing scope.
---------------------------------------------------------------------------

local function describe(t)
  if t.k == "eof" then return "end of template" end
  if t.k == "var_end" then return "end of print statement" end
  if t.k == "block_end" then return "end of statement block" end
  if t.k == "data" then return "template data" end
  if t.v ~= nil then return to_str(t.v) end
  return t.k
end

local Parser = {}
Parser.__index = Parser

function Parser:peek(o)
  return self.toks[self.i + (o or 0)]
end

function Parser:next()
  local t = self.toks[self.i]
  self.i = self.i + 1
  return t
end

function Parser:is(k, v, o)
  local t = self.toks[self.i + (o or 0)]
  return t.k == k and (v == nil or t.v == v)
end

function Parser:accept(k, v)
  if self:is(k, v) then return self:next() end
  return nil
end

function Parser:expect(k, v)
  local t = self:peek()
  if t.k ~= k or (v ~= nil and t.v ~= v) then
    local want = v and ("'" .. v .. "'") or (k == "block_end" and "end of statement block")
      or (k == "var_end" and "end of print statement") or (k == "name" and "a name") or k
    syntax_error(t.line, sformat("expected %s, got '%s'", want, describe(t)))
  end
  return self:next()
end

local function const(v)
  return function() return v end
end

local parse_expression, parse_tuple, parse_unary, parse_primary, parse_postfix

-- Arguments of a call after '(' : returns positional closures, keyword
-- closures and a metatable that keeps the keyword order.
local function parse_call_args(P)
  local args, kws, names = {}, {}, {}
  while not P:is("op", ")") do
    if #args + #names > 0 then
      P:expect("op", ",")
      if P:is("op", ")") then break end
    end
    if P:is("op", "*") or P:is("op", "**") then
      syntax_error(P:peek().line, "*args and **kwargs in calls are not supported")
    end
    if P:is("name") and P:is("op", "=", 1) then
      local name = P:next().v
      P:next()
      names[#names + 1] = name
      kws[#kws + 1] = parse_expression(P)
    else
      if #names > 0 then syntax_error(P:peek().line, "positional argument follows keyword argument") end
      args[#args + 1] = parse_expression(P)
    end
  end
  P:expect("op", ")")
  local kw_mt = #names > 0 and { __jsontype = "object", __jsonorder = names } or nil
  return args, kws, names, kw_mt
end

local function eval_args(args, f)
  local n = #args
  if n == 0 then return EMPTY end
  local out = {}
  for i = 1, n do out[i] = args[i](f) end
  return out
end

local function eval_kw(kws, names, kw_mt, f)
  if not kw_mt then return nil end
  local out = {}
  for i = 1, #kws do out[names[i]] = kws[i](f) end
  return setmetatable(out, kw_mt)
end

local function parse_filter(P, node)
  local t = P:expect("name")
  local name = t.v
  while P:is("op", ".") and P:is("name", nil, 1) do
    P:next()
    name = name .. "." .. P:next().v
  end
  local fn = FILTERS[name]
  if not fn then syntax_error(t.line, sformat("unknown filter '%s'", name)) end
  local args, kws, names, kw_mt = {}, {}, {}, nil
  if P:accept("op", "(") then args, kws, names, kw_mt = parse_call_args(P) end
  if #args == 0 and not kw_mt then
    return function(f) return fn(node(f), EMPTY, nil) end
  end
  return function(f)
    local v = node(f)
    return fn(v, eval_args(args, f), eval_kw(kws, names, kw_mt, f))
  end
end

local TEST_ARG_START = { name = true, string = true, number = true }

local function parse_test(P, node)
  local negated = P:accept("name", "not") ~= nil
  local t = P:peek()
  local name
  if t.k == "name" then
    name = P:next().v
    while P:is("op", ".") and P:is("name", nil, 1) do
      P:next()
      name = name .. "." .. P:next().v
    end
  else
    syntax_error(t.line, sformat("expected a test name, got '%s'", describe(t)))
  end
  local fn = TESTS[name]
  if not fn then syntax_error(t.line, sformat("unknown test '%s'", name)) end
  local args = {}
  local nt = P:peek()
  if P:accept("op", "(") then
    local kws
    args, kws = parse_call_args(P)
    if #kws > 0 then syntax_error(nt.line, "keyword arguments to tests are not supported") end
  elseif (TEST_ARG_START[nt.k] or (nt.k == "op" and (nt.v == "[" or nt.v == "{" or nt.v == "(")))
    and not (nt.k == "name" and (nt.v == "else" or nt.v == "or" or nt.v == "and")) then
    if nt.k == "name" and nt.v == "is" then syntax_error(nt.line, "You cannot chain multiple tests with is") end
    args = { parse_postfix(P, parse_primary(P)) }
  end
  return function(f)
    local r = fn(node(f), eval_args(args, f))
    if negated then return not r end
    return r
  end
end

local function parse_filter_expr(P, node)
  while true do
    if P:accept("op", "|") then
      node = parse_filter(P, node)
    elseif P:accept("name", "is") then
      node = parse_test(P, node)
    elseif P:is("op", "(") then
      P:next()
      local callee = node
      local args, kws, names, kw_mt = parse_call_args(P)
      node = function(f)
        return call_value(callee(f), eval_args(args, f), eval_kw(kws, names, kw_mt, f))
      end
    else
      return node
    end
  end
end

-- After '[': an index or a slice.
local function parse_subscript(P, node)
  local parts, is_slice = { nil, nil, nil }, false
  local idx = 1
  local first_line = P:peek().line
  while true do
    if P:is("op", ":") then
      P:next()
      is_slice = true
      idx = idx + 1
      if idx > 3 then syntax_error(first_line, "invalid slice") end
    elseif P:is("op", "]") then
      break
    else
      if parts[idx] then syntax_error(P:peek().line, "expected ']'") end
      parts[idx] = parse_expression(P)
      if not is_slice and P:is("op", ",") then
        -- a[1, 2]: tuple index (unsupported for our containers, keep as list)
        local items = { parts[idx] }
        while P:accept("op", ",") do
          if P:is("op", "]") then break end
          items[#items + 1] = parse_expression(P)
        end
        parts[idx] = function(f)
          local out = {}
          for i = 1, #items do out[i] = items[i](f) end
          return list(out)
        end
      end
    end
  end
  P:expect("op", "]")
  if not is_slice then
    local key = parts[1]
    if not key then syntax_error(first_line, "expected an expression in '[]'") end
    return function(f) return getitem(node(f), key(f)) end
  end
  local a, b, c = parts[1], parts[2], parts[3]
  return function(f)
    return getslice(node(f), a and a(f), b and b(f), c and c(f))
  end
end

function parse_postfix(P, node)
  while true do
    if P:is("op", ".") then
      P:next()
      local t = P:next()
      if t.k == "name" then
        local name, obj = t.v, node
        node = function(f) return getattr(obj(f), name) end
      elseif t.k == "number" then
        local key, obj = t.v, node
        node = function(f) return getitem(obj(f), key) end
      else
        syntax_error(t.line, sformat("expected a name after '.', got '%s'", describe(t)))
      end
    elseif P:is("op", "[") then
      P:next()
      node = parse_subscript(P, node)
    elseif P:is("op", "(") then
      P:next()
      local callee = node
      local args, kws, names, kw_mt = parse_call_args(P)
      node = function(f)
        return call_value(callee(f), eval_args(args, f), eval_kw(kws, names, kw_mt, f))
      end
    else
      return node
    end
  end
end

local CONSTS = { ["true"] = true, ["false"] = false, ["True"] = true, ["False"] = false,
  none = NONE, None = NONE }

local function name_lookup(name)
  local hint = sformat("'%s' is undefined", name)
  return function(f)
    local v = f[name]
    if v == nil then return undefined(hint) end
    if type(v) == "userdata" then return norm(v) end
    return v
  end
end

function parse_primary(P)
  local t = P:next()
  if t.k == "name" then
    local c = CONSTS[t.v]
    if c ~= nil then return const(c) end
    return name_lookup(t.v)
  elseif t.k == "string" then
    local s = t.v
    while P:is("string") do s = s .. P:next().v end
    return const(s)
  elseif t.k == "number" then
    return const(t.v)
  elseif t.k == "op" and t.v == "(" then
    local e = parse_tuple(P, { explicit = true })
    P:expect("op", ")")
    return e
  elseif t.k == "op" and t.v == "[" then
    local items = {}
    while not P:is("op", "]") do
      if #items > 0 then
        P:expect("op", ",")
        if P:is("op", "]") then break end
      end
      items[#items + 1] = parse_expression(P)
    end
    P:expect("op", "]")
    return function(f)
      local out = {}
      for i = 1, #items do out[i] = items[i](f) end
      return list(out)
    end
  elseif t.k == "op" and t.v == "{" then
    local keys, vals = {}, {}
    while not P:is("op", "}") do
      if #keys > 0 then
        P:expect("op", ",")
        if P:is("op", "}") then break end
      end
      keys[#keys + 1] = parse_expression(P)
      P:expect("op", ":")
      vals[#vals + 1] = parse_expression(P)
    end
    P:expect("op", "}")
    return function(f)
      local out, order = {}, {}
      for i = 1, #keys do
        local key = keys[i](f)
        if type(key) == "table" then
          if is_undef(key) then undef_fail(key) end
          fail("unhashable dict key")
        end
        if out[key] == nil then order[#order + 1] = key end
        out[key] = vals[i](f)
      end
      return setmetatable(out, { __jsontype = "object", __jsonorder = order })
    end
  end
  syntax_error(t.line, sformat("unexpected '%s'", describe(t)))
end

function parse_unary(P, with_filter)
  local node
  if P:accept("op", "-") then
    local operand = parse_unary(P, false)
    node = function(f)
      local v = operand(f)
      local x = numval(v)
      if not x then
        if is_undef(v) then undef_fail(v) end
        fail(sformat("bad operand type for unary -: '%s'", pytype(v)))
      end
      return -x
    end
  elseif P:accept("op", "+") then
    local operand = parse_unary(P, false)
    node = function(f)
      local v = operand(f)
      local x = numval(v)
      if not x then
        if is_undef(v) then undef_fail(v) end
        fail(sformat("bad operand type for unary +: '%s'", pytype(v)))
      end
      return x
    end
  else
    node = parse_primary(P)
  end
  node = parse_postfix(P, node)
  if with_filter then node = parse_filter_expr(P, node) end
  return node
end

local function binary(ops, sub)
  return function(P)
    local left = sub(P)
    while true do
      local t = P:peek()
      local fn = t.k == "op" and ops[t.v]
      if not fn then return left end
      P:next()
      local l, r = left, sub(P)
      left = function(f) return fn(l(f), r(f)) end
    end
  end
end

local parse_pow = binary({ ["**"] = ARITH["**"] }, function(P) return parse_unary(P, true) end)
local parse_math2 = binary({ ["*"] = ARITH["*"], ["/"] = ARITH["/"], ["//"] = ARITH["//"], ["%"] = ARITH["%"] }, parse_pow)

local function parse_concat(P)
  local parts = { parse_math2(P) }
  while P:accept("op", "~") do parts[#parts + 1] = parse_math2(P) end
  if #parts == 1 then return parts[1] end
  return function(f)
    local out = {}
    for i = 1, #parts do out[i] = to_str(parts[i](f)) end
    return concat(out)
  end
end

local parse_math1 = binary({ ["+"] = ARITH["+"], ["-"] = ARITH["-"] }, parse_concat)

local COMPARE = {
  ["=="] = py_eq,
  ["!="] = function(a, b) return not py_eq(a, b) end,
  ["<"] = function(a, b) return py_lt(a, b, "<") end,
  [">"] = function(a, b) return py_lt(b, a, ">") end,
  ["<="] = function(a, b) return not py_lt(b, a, "<=") end,
  [">="] = function(a, b) return not py_lt(a, b, ">=") end,
}

local function parse_compare(P)
  local first = parse_math1(P)
  local ops, operands = {}, {}
  while true do
    local t = P:peek()
    if t.k == "op" and COMPARE[t.v] then
      P:next()
      ops[#ops + 1] = COMPARE[t.v]
    elseif t.k == "name" and t.v == "in" then
      P:next()
      ops[#ops + 1] = function(a, b) return py_in(a, b) end
    elseif t.k == "name" and t.v == "not" and P:is("name", "in", 1) then
      P:next(); P:next()
      ops[#ops + 1] = function(a, b) return not py_in(a, b) end
    else
      break
    end
    operands[#operands + 1] = parse_math1(P)
  end
  if #ops == 0 then return first end
  if #ops == 1 then
    local op, rhs = ops[1], operands[1]
    return function(f) return op(first(f), rhs(f)) end
  end
  return function(f)
    local left = first(f)
    for i = 1, #ops do
      local right = operands[i](f)
      if not ops[i](left, right) then return false end
      left = right
    end
    return true
  end
end

local function parse_not(P)
  if P:accept("name", "not") then
    local e = parse_not(P)
    return function(f) return not truthy(e(f)) end
  end
  return parse_compare(P)
end

local function parse_and(P)
  local left = parse_not(P)
  while P:accept("name", "and") do
    local l, r = left, parse_not(P)
    left = function(f)
      local v = l(f)
      if not truthy(v) then return v end
      return r(f)
    end
  end
  return left
end

local function parse_or(P)
  local left = parse_and(P)
  while P:accept("name", "or") do
    local l, r = left, parse_and(P)
    left = function(f)
      local v = l(f)
      if truthy(v) then return v end
      return r(f)
    end
  end
  return left
end

local function parse_condexpr(P)
  local e1 = parse_or(P)
  while P:accept("name", "if") do
    local cond = parse_or(P)
    local e3
    if P:accept("name", "else") then e3 = parse_condexpr(P) end
    local a = e1
    e1 = function(f)
      if truthy(cond(f)) then return a(f) end
      if e3 then return e3(f) end
      return undefined("the inline if-expression evaluated to false and no else section was defined.")
    end
  end
  return e1
end

function parse_expression(P, no_condexpr)
  if no_condexpr then return parse_or(P) end
  return parse_condexpr(P)
end

local TUPLE_END = { var_end = true, block_end = true, eof = true }

-- Comma-separated expressions; a single one without a comma is itself.
function parse_tuple(P, opts)
  opts = opts or {}
  local items, is_tuple = {}, false
  local line = P:peek().line
  while true do
    if #items > 0 then P:expect("op", ",") end
    local t = P:peek()
    if TUPLE_END[t.k] or (t.k == "op" and t.v == ")") or (opts.end_name and t.k == "name" and t.v == opts.end_name) then
      break
    end
    items[#items + 1] = parse_expression(P, opts.no_condexpr)
    if P:is("op", ",") then is_tuple = true else break end
  end
  if not is_tuple then
    if #items == 1 then return items[1] end
    if not opts.explicit then
      syntax_error(line, sformat("expected an expression, got '%s'", describe(P:peek())))
    end
  end
  return function(f)
    local out = {}
    for i = 1, #items do out[i] = items[i](f) end
    return tuple(out)
  end
end

-- Assignment target: name | name.attr | a, b | (a, b)
local function parse_target(P, allow_attr, end_name)
  local line = P:peek().line
  local paren = P:accept("op", "(") ~= nil
  local names = {}
  while true do
    local t = P:expect("name")
    if CONSTS[t.v] ~= nil then syntax_error(t.line, sformat("can't assign to '%s'", t.v)) end
    if allow_attr and not paren and #names == 0 and P:is("op", ".") then
      P:next()
      local attr = P:expect("name").v
      return { ns = t.v, attr = attr, line = line }
    end
    names[#names + 1] = t.v
    if not P:accept("op", ",") then break end
    if paren and P:is("op", ")") then break end
    if (end_name and P:is("name", end_name)) or P:is("op", "=") then break end
  end
  if paren then P:expect("op", ")") end
  return { names = names, line = line, tuple = #names > 1 }
end

-- Bind value to target names in frame f.
local function assign(target, f, value)
  if not target.tuple then
    f[target.names[1]] = value
    return
  end
  local items, n = iter_items(value)
  if n ~= #target.names then
    fail(sformat("cannot unpack %d values into %d names", n, #target.names))
  end
  for i = 1, n do f[target.names[i]] = norm(items[i]) end
end

local function child(f)
  return setmetatable({}, { __index = f })
end

local function run_body(body, rs, f)
  for i = 1, #body do
    local sig = body[i](rs, f)
    if sig then return sig end
  end
  return nil
end

-- Render body into a string (set blocks, filter blocks, macros).
local function capture(body, rs, f)
  local saved = rs.out
  rs.out = {}
  run_body(body, rs, f)
  local s = concat(rs.out)
  rs.out = saved
  return s
end

LOOP_FIELDS = {
  index = function(l) return l.i end,
  index0 = function(l) return l.i - 1 end,
  revindex = function(l) return l.n - l.i + 1 end,
  revindex0 = function(l) return l.n - l.i end,
  first = function(l) return l.i == 1 end,
  last = function(l) return l.i == l.n end,
  length = function(l) return l.n end,
  depth = function() return 1 end,
  depth0 = function() return 0 end,
  previtem = function(l)
    if l.i == 1 then return undefined("there is no previous item") end
    return norm(l.items[l.i - 1])
  end,
  nextitem = function(l)
    if l.i == l.n then return undefined("there is no next item") end
    return norm(l.items[l.i + 1])
  end,
  cycle = function(l)
    return builtin(function(a)
      if #a == 0 then fail("no items for cycling given") end
      return a[(l.i - 1) % #a + 1]
    end)
  end,
}

local parse_body
local STATEMENTS = {}

STATEMENTS["for"] = function(P, line)
  local target = parse_target(P, false, "in")
  P:expect("name", "in")
  local iter = parse_tuple(P, { no_condexpr = true, end_name = "recursive" })
  local cond
  if P:accept("name", "if") then cond = parse_expression(P) end
  if P:is("name", "recursive") then syntax_error(line, "recursive loops are not supported") end
  P:expect("block_end")
  P.loop_depth = P.loop_depth + 1
  local body, tag = parse_body(P, { endfor = true, ["else"] = true }, "for")
  P.loop_depth = P.loop_depth - 1
  local else_body
  if tag == "else" then
    P:expect("block_end")
    else_body = parse_body(P, { endfor = true }, "for")
  end
  P:expect("block_end")
  return function(rs, f)
    rs.line = line
    local items, n = iter_items(iter(f))
    if cond then
      local kept = {}
      for i = 1, n do
        local fr = child(f)
        local item = norm(items[i])
        assign(target, fr, item)
        if truthy(cond(fr)) then kept[#kept + 1] = item end
      end
      items, n = kept, #kept
    end
    if n == 0 then
      if else_body then return run_body(else_body, rs, f) end
      return nil
    end
    for i = 1, n do
      local fr = child(f)
      assign(target, fr, norm(items[i]))
      fr.loop = setmetatable({ items = items, i = i, n = n }, LOOP_MT)
      local sig = run_body(body, rs, fr)
      if sig == "break" then break end
    end
    return nil
  end
end

STATEMENTS["if"] = function(P, line)
  local conds, bodies = {}, {}
  local cond = parse_tuple(P)
  P:expect("block_end")
  local else_body
  while true do
    local body, tag = parse_body(P, { elif = true, ["else"] = true, endif = true }, "if")
    conds[#conds + 1], bodies[#bodies + 1] = cond, body
    if tag == "elif" then
      cond = parse_tuple(P)
      P:expect("block_end")
    elseif tag == "else" then
      P:expect("block_end")
      else_body = parse_body(P, { endif = true }, "if")
      break
    else
      break
    end
  end
  P:expect("block_end")
  return function(rs, f)
    rs.line = line
    for i = 1, #conds do
      if truthy(conds[i](f)) then return run_body(bodies[i], rs, f) end
    end
    if else_body then return run_body(else_body, rs, f) end
    return nil
  end
end

local function set_target(target, f, value)
  if target.ns then
    local ns = f[target.ns]
    if type(ns) ~= "table" or getmetatable(ns) ~= NS_MT then
      fail("cannot assign attribute on non-namespace object")
    end
    if ns.vals[target.attr] == nil then ns.keys[#ns.keys + 1] = target.attr end
    ns.vals[target.attr] = value
  else
    assign(target, f, value)
  end
end

STATEMENTS["set"] = function(P, line)
  local target = parse_target(P, true)
  if P:accept("op", "=") then
    local value = parse_tuple(P)
    P:expect("block_end")
    return function(rs, f)
      rs.line = line
      set_target(target, f, value(f))
    end
  end
  if P:is("op", "|") then syntax_error(line, "filters on {% set %} blocks are not supported") end
  P:expect("block_end")
  local body = parse_body(P, { endset = true }, "set")
  P:expect("block_end")
  return function(rs, f)
    rs.line = line
    local s = capture(body, rs, f)
    set_target(target, f, s)
  end
end

STATEMENTS["macro"] = function(P, line)
  local name = P:expect("name").v
  P:expect("op", "(")
  local params, defaults = {}, {}
  while not P:is("op", ")") do
    if #params > 0 then
      P:expect("op", ",")
      if P:is("op", ")") then break end
    end
    params[#params + 1] = P:expect("name").v
    if P:accept("op", "=") then
      defaults[#params] = parse_expression(P)
    elseif next(defaults) then
      syntax_error(P:peek().line, "non-default argument follows default argument")
    end
  end
  P:expect("op", ")")
  P:expect("block_end")
  local saved_depth = P.loop_depth
  P.loop_depth = 0
  local body = parse_body(P, { endmacro = true }, "macro")
  P.loop_depth = saved_depth
  P:expect("block_end")
  return function(rs, f)
    rs.line = line
    f[name] = builtin(function(a, kw)
      if #a > #params then
        fail(sformat("macro '%s' takes not more than %d argument(s)", name, #params))
      end
      local fr = child(f)
      for i = 1, #params do
        local v = a[i]
        if kw and kw[params[i]] ~= nil then
          if v ~= nil then fail(sformat("macro '%s' got multiple values for argument '%s'", name, params[i])) end
          v = kw[params[i]]
        end
        if v == nil then
          if defaults[i] then v = defaults[i](fr) else v = undefined(sformat("parameter '%s' was not provided", params[i])) end
        end
        fr[params[i]] = v
      end
      if kw then
        for key in pairs(kw) do
          local known = false
          for i = 1, #params do if params[i] == key then known = true end end
          if not known then fail(sformat("macro '%s' takes no keyword argument '%s'", name, key)) end
        end
      end
      local saved_line = rs.line
      local s = capture(body, rs, fr)
      rs.line = saved_line
      return s
    end)
  end
end

STATEMENTS["filter"] = function(P, line)
  local node = function(f) return f["\0filter_input"] end
  node = parse_filter(P, node)
  while P:accept("op", "|") do node = parse_filter(P, node) end
  P:expect("block_end")
  local body = parse_body(P, { endfilter = true }, "filter")
  P:expect("block_end")
  return function(rs, f)
    rs.line = line
    local fr = child(f)
    fr["\0filter_input"] = capture(body, rs, f)
    local out = rs.out
    out[#out + 1] = to_str(node(fr))
  end
end

STATEMENTS["with"] = function(P, line)
  local targets, values = {}, {}
  while not P:is("block_end") do
    if #targets > 0 then P:expect("op", ",") end
    targets[#targets + 1] = parse_target(P, false)
    P:expect("op", "=")
    values[#values + 1] = parse_expression(P)
  end
  P:expect("block_end")
  local body = parse_body(P, { endwith = true }, "with")
  P:expect("block_end")
  return function(rs, f)
    rs.line = line
    local fr = child(f)
    for i = 1, #targets do assign(targets[i], fr, values[i](f)) end
    return run_body(body, rs, fr)
  end
end

local function loop_control(word)
  return function(P, line)
    if P.loop_depth == 0 then syntax_error(line, sformat("'%s' outside loop", word)) end
    P:expect("block_end")
    return function() return word end
  end
end
STATEMENTS["break"] = loop_control("break")
STATEMENTS["continue"] = loop_control("continue")

-- transformers' {% generation %} marks assistant text; it renders as-is.
STATEMENTS["generation"] = function(P)
  P:expect("block_end")
  local body = parse_body(P, { endgeneration = true }, "generation")
  P:expect("block_end")
  return function(rs, f) return run_body(body, rs, f) end
end

local function tag_list(set)
  local names = {}
  for k in pairs(set) do names[#names + 1] = "'" .. k .. "'" end
  tsort(names)
  return concat(names, " or ")
end

-- Statements until one of the tags in `enders` (nil at top level); returns
-- the body and the tag that ended it (positioned after the tag name).
function parse_body(P, enders, opener)
  local body = {}
  while true do
    local t = P:peek()
    if t.k == "eof" then
      if enders then
        syntax_error(t.line, sformat("unexpected end of template, expected %s to close '%s'", tag_list(enders), opener))
      end
      return body
    elseif t.k == "data" then
      P:next()
      local s = t.v
      body[#body + 1] = function(rs)
        local out = rs.out
        out[#out + 1] = s
      end
    elseif t.k == "var_begin" then
      P:next()
      local e = parse_tuple(P)
      P:expect("var_end")
      local line = t.line
      body[#body + 1] = function(rs, f)
        rs.line = line
        local v = e(f)
        local out = rs.out
        if type(v) == "string" then out[#out + 1] = v else out[#out + 1] = to_str(v) end
      end
    elseif t.k == "block_begin" then
      P:next()
      local nt = P:next()
      if nt.k ~= "name" then syntax_error(nt.line, sformat("expected a tag name, got '%s'", describe(nt))) end
      if enders and enders[nt.v] then return body, nt.v end
      local handler = STATEMENTS[nt.v]
      if not handler then
        if enders then
          syntax_error(nt.line, sformat("unknown tag '%s' (expected %s to close '%s')", nt.v, tag_list(enders), opener))
        end
        syntax_error(nt.line, sformat("unknown tag '%s'", nt.v))
      end
      body[#body + 1] = handler(P, nt.line)
    else
      syntax_error(t.line, sformat("unexpected '%s'", describe(t)))
    end
  end
end

---------------------------------------------------------------------------
-- Public API
---------------------------------------------------------------------------

local Template = {}
Template.__index = Template

--- Render a compiled template with `context` (a table of variables; may be
-- nil). Returns the rendered string; raises "bitnet.template: line N: ..."
-- on errors, including raise_exception() from the template.
function Template:render(context)
  if context == nil then context = {} end
  if type(context) ~= "table" then
    error("bitnet.template: render: context must be a table, got " .. type(context), 2)
  end
  local root = setmetatable({}, { __index = function(_, k)
    local v = context[k]
    if v == nil then v = GLOBALS[k] end
    return v
  end })
  local rs = { out = {}, line = 1 }
  local ok, err = pcall(run_body, self.body, rs, root)
  if not ok then
    if type(err) == "string" and ssub(err, 1, #PREFIX) ~= PREFIX then
      err = sformat("%sline %d: %s", PREFIX, rs.line, err)
    end
    error(err, 0)
  end
  return concat(rs.out)
end

--- Compile Jinja `source` once; returns an object whose :render(context)
-- can be called many times. Raises "bitnet.template: line N: ..." on syntax
-- errors, unknown tags, unknown filters and unknown tests.
function M.compile(source)
  if type(source) ~= "string" then
    error("bitnet.template: compile: source must be a string, got " .. type(source), 2)
  end
  local P = setmetatable({ toks = lex(source), i = 1, loop_depth = 0 }, Parser)
  local body = parse_body(P, nil)
  return setmetatable({ source = source, body = body }, Template)
end

local CACHE_MAX = 32
local cache, cache_order = {}, {}

--- Render Jinja `source` with `context`. Compiled templates are cached by
-- source (the last 32 distinct sources).
function M.render(source, context)
  if type(source) ~= "string" then
    error("bitnet.template: render: source must be a string, got " .. type(source), 2)
  end
  local t = cache[source]
  if not t then
    t = M.compile(source)
    if #cache_order >= CACHE_MAX then
      cache[tremove(cache_order, 1)] = nil
    end
    cache_order[#cache_order + 1] = source
    cache[source] = t
  end
  return t:render(context)
end

--- Python's None for contexts: {{ x }} prints "None", `x is none` is true.
M.none = NONE

--- Mark table t as a JSON array / Python list (returns t). Sets a metatable.
function M.array(t)
  return setmetatable(t or {}, ARRAY_MT)
end

--- Mark table t as a JSON object / Python dict (returns t). `order`, a list
-- of keys, fixes the iteration and tojson order. Sets a metatable.
function M.object(t, order)
  if order then
    return setmetatable(t or {}, { __jsontype = "object", __jsonorder = order })
  end
  return setmetatable(t or {}, OBJECT_MT)
end

--- Built-in chat templates by name (Jinja sources). Each expects `messages`
-- (a list of {role=, content=}) and `add_generation_prompt`, plus the
-- special tokens it names.
M.builtin = {
  -- Llama 3 instruct: bos_token, header per message, content trimmed.
  llama3 = [[
{{- bos_token }}
{%- for message in messages %}
{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}]],

  -- microsoft/bitnet-b1.58-2B-4T: "Role: content<|eot_id|>" per message
  -- (role capitalized, content trimmed as in the model's tokenizer_config),
  -- then "Assistant: " for the generation prompt.
  bitnet = [[
{{- bos_token }}
{%- for message in messages %}
{{- message['role'] | capitalize + ': ' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- 'Assistant: ' }}
{%- endif %}]],

  -- ChatML: <|im_start|>role\ncontent<|im_end|>\n
  chatml = [[
{%- for message in messages %}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %}]],

  -- Falcon3 instruct (without tools): <|system|>/<|user|> lines end with
  -- "\n"; an assistant turn ends with eos_token, plus "\n" unless it is the
  -- last message; the generation prompt follows the last message.
  falcon3 = [[
{%- for message in messages %}
{%- if message['role'] == 'system' %}
{{- '<|system|>\n' + message['content'] + '\n' }}
{%- elif message['role'] == 'user' %}
{{- '<|user|>\n' + message['content'] + '\n' }}
{%- elif message['role'] == 'assistant' %}
{{- '<|assistant|>\n' + message['content'] + eos_token }}
{%- if not loop.last %}
{{- '\n' }}
{%- endif %}
{%- endif %}
{%- if loop.last and add_generation_prompt %}
{{- '<|assistant|>\n' }}
{%- endif %}
{%- endfor %}]],
}

--- The Jinja source of built-in template `name`; raises an error listing the
-- known names when there is none.
function M.named(name)
  local src = M.builtin[name]
  if src then return src end
  local names = {}
  for k in pairs(M.builtin) do names[#names + 1] = k end
  tsort(names)
  error(sformat("bitnet.template: unknown template '%s' (known: %s)", tostring(name), concat(names, ", ")), 2)
end

return M
