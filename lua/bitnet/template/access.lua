--- bitnet.template.access: attributes, items, slices, calls and methods.
--
-- obj.name and obj[key] with Jinja's lookup order and Undefined results,
-- slices, calling Lua functions / builtins / macros, the str and dict methods
-- templates call (STR_METHODS, DICT_METHODS) and the loop object's fields.

local getmetatable, ipairs, setmetatable, tonumber = getmetatable, ipairs, setmetatable, tonumber
local type = type
local concat, sfind, sformat, sgmatch = table.concat, string.find, string.format, string.gmatch
local sgsub, ssub, tinsert, unpack = string.gsub, string.sub, table.insert, table.unpack or unpack
local min = math.min

local budget = require("bitnet.template.budget")
local V = require("bitnet.template.value")
local BOUND_MT, CALL_MT, LOOP_MT, NONE = V.BOUND_MT, V.CALL_MT, V.LOOP_MT, V.NONE
local NS_MT, UNDEF_MT, arg, ascii_lower = V.NS_MT, V.UNDEF_MT, V.arg, V.ascii_lower
local ascii_upper, dict_keys, fail, given = V.ascii_upper, V.dict_keys, V.fail, V.given
local is_int, is_space, is_undef, iter_items = V.is_int, V.is_space, V.is_undef, V.iter_items
local kind, list, lstrip_ws, norm = V.kind, V.list, V.lstrip_ws, V.norm
local num_str, py_capitalize, py_repr, py_strip = V.num_str, V.py_capitalize, V.py_repr, V.py_strip
local py_title, pytype, rstrip_ws, slice_positions = V.py_title, V.pytype, V.rstrip_ws, V.slice_positions
local to_str, tuple, uchars, ulen = V.to_str, V.tuple, V.uchars, V.ulen
local undef_fail, undefined, ws_at, ws_before = V.undef_fail, V.undefined, V.ws_at, V.ws_before

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

local LOOP_FIELDS -- defined at the end

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

-- A count argument (split's maxsplit, replace's count) as Python reads it: an integer (a bool
-- counts as one); absent or negative means no limit (-1).
local function count_arg(v)
  if not given(v) then return -1 end
  if type(v) == "boolean" then return v and 1 or 0 end
  if type(v) ~= "number" or not is_int(v) then
    fail(sformat("'%s' object cannot be interpreted as an integer", pytype(v)))
  end
  return v < 0 and -1 or v
end

-- Python str.split / str.rsplit.
local function py_split(s, sep, maxsplit, from_right)
  maxsplit = count_arg(maxsplit)
  local out = {}
  if not given(sep) then
    local cs, n = uchars(s)
    local words, from = {}, nil -- from: where the current word starts in cs
    for i = 1, n do
      if is_space(cs[i]) then
        if from then words[#words + 1] = concat(cs, "", from, i - 1); from = nil end
      elseif not from then
        from = i
      end
    end
    if from then words[#words + 1] = concat(cs, "", from, n) end
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
  count = count_arg(count)
  if old == "" then
    local cs, n = uchars(s)
    local inserts = count < 0 and n + 1 or min(count, n + 1)
    budget.string(#s + inserts * #new, "replace() result")
    local out = {}
    for i = 1, n + 1 do
      if count < 0 or i <= count then out[#out + 1] = new end
      out[#out + 1] = cs[i]
    end
    return concat(out)
  end
  local out, i, done = {}, 1, 0
  local size, grow = #s, #new - #old
  while count < 0 or done < count do
    local p = sfind(s, old, i, true)
    if not p then break end
    size = size + grow
    if grow > 0 then budget.string(size, "replace() result") end
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
  local out, size = {}, 0
  for i = 1, n do
    out[i] = str_arg(norm(items[i]), "sequence item")
    size = size + #out[i] + #s
    budget.string(size - #s, "join() result")
  end
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


-- The loop object's attributes (loop.index, ...).
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

return {
  STR_METHODS = STR_METHODS,
  DICT_METHODS = DICT_METHODS,
  getattr = getattr,
  getitem = getitem,
  getslice = getslice,
  attr_getter = attr_getter,
  call_value = call_value,
  builtin = builtin,
  py_split = py_split,
  py_splitlines = py_splitlines,
  py_replace = py_replace,
  dict_pairs = dict_pairs,
}
