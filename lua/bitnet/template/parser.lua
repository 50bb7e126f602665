--- bitnet.template.parser: tokens -> closures (the compiler).

local getmetatable, next, pairs, setmetatable = getmetatable, next, pairs, setmetatable
local type = type
local concat, sformat, tsort = table.concat, string.format, table.sort

local V = require("bitnet.template.value")
local ARITH, EMPTY, LOOP_MT, NONE = V.ARITH, V.EMPTY, V.LOOP_MT, V.NONE
local NS_MT, fail, is_undef, iter_items = V.NS_MT, V.fail, V.is_undef, V.iter_items
local list, norm, numval, py_eq = V.list, V.norm, V.numval, V.py_eq
local py_in, py_lt, pytype, syntax_error = V.py_in, V.py_lt, V.pytype, V.syntax_error
local to_str, truthy, tuple, undef_fail = V.to_str, V.truthy, V.tuple, V.undef_fail
local undefined = V.undefined

local A = require("bitnet.template.access")
local builtin, call_value, getattr, getitem = A.builtin, A.call_value, A.getattr, A.getitem
local getslice = A.getslice

local budget = require("bitnet.template.budget")
local lex = require("bitnet.template.lexer").lex
local FILTERS = require("bitnet.template.filters")
local TESTS = require("bitnet.template.tests")

---------------------------------------------------------------------------
-- Parser: builds closures directly.
--   expression: function(frame) -> value
--   statement:  function(rs, frame) -> nil | "break" | "continue"
-- rs (render state): out (the buffer being written), n (its bytes), cap
-- and what (its bound, and what it is when it is not the output), line (the
-- line running), limits (see budget.lua), iterations and depth (the loop
-- iterations run and the macro calls open).
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

-- One level deeper in blocks, brackets or operators (Parser:leave undoes
-- it): the parser recurses once per level, so the depth is bounded.
function Parser:enter()
  local d = self.depth + 1
  self.depth = d
  if d > self.max_depth then
    syntax_error(self:peek().line, budget.message("max_depth",
      sformat("blocks, brackets and operators nested %d deep", d), self.limits))
  end
end

function Parser:leave()
  self.depth = self.depth - 1
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

-- After '(': a call of what callee evaluates to (`f(x)`, `x.method(y)`, and
-- a call of a filter's or test's result, `(x | f)(y)`).
local function parse_call(P, callee)
  local args, kws, names, kw_mt = parse_call_args(P)
  return function(f)
    return call_value(callee(f), eval_args(args, f), eval_kw(kws, names, kw_mt, f))
  end
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
    elseif P:accept("op", "(") then
      node = parse_call(P, node)
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
    elseif P:accept("op", "(") then
      node = parse_call(P, node)
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

-- After unary '-' or '+' (op): the operand, negated for '-'.
local function parse_sign(P, op)
  P:enter()
  local operand = parse_unary(P, false)
  P:leave()
  local negate = op == "-"
  return function(f)
    local v = operand(f)
    local x = numval(v)
    if not x then
      if is_undef(v) then undef_fail(v) end
      fail(sformat("bad operand type for unary %s: '%s'", op, pytype(v)))
    end
    if negate then return -x end
    return x
  end
end

function parse_unary(P, with_filter)
  local node
  if P:accept("op", "-") then
    node = parse_sign(P, "-")
  elseif P:accept("op", "+") then
    node = parse_sign(P, "+")
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
    local out, n = {}, 0
    for i = 1, #parts do
      local s = to_str(parts[i](f))
      n = n + #s
      out[i] = s
    end
    budget.string(n, "'~' result")
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
    P:enter()
    local e = parse_not(P)
    P:leave()
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
    if P:accept("name", "else") then
      P:enter()
      e3 = parse_condexpr(P)
      P:leave()
    end
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
  P:enter()
  local e
  if no_condexpr then e = parse_or(P) else e = parse_condexpr(P) end
  P:leave()
  return e
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

-- Append s to the buffer being written, within its bound.
local function emit(rs, s)
  local n = rs.n + #s
  if n > rs.cap then
    if rs.what then budget.over("max_string", sformat("%s output of %.0f bytes", rs.what, n)) end
    budget.over("max_output", sformat("rendered output of %.0f bytes", n))
  end
  rs.n = n
  local out = rs.out
  out[#out + 1] = s
end

-- Render body into a string (set blocks, filter blocks, macros: `what`),
-- within max_string.
local function capture(body, rs, f, what)
  local out, n, cap, saved_what = rs.out, rs.n, rs.cap, rs.what
  rs.out, rs.n, rs.cap, rs.what = {}, 0, rs.limits.max_string, what
  run_body(body, rs, f)
  local s = concat(rs.out)
  rs.out, rs.n, rs.cap, rs.what = out, n, cap, saved_what
  return s
end

-- Count one loop iteration or macro call against max_iterations: both
-- repeat work, and a macro calling itself twice runs 2^depth calls with no
-- loop at all (fuzz/RESULTS.md).
local function count_iteration(rs, what)
  local k = rs.iterations + 1
  rs.iterations = k
  if k > rs.limits.max_iterations then
    budget.over("max_iterations", sformat("%.0f %s in one render", k, what or "loop iterations"))
  end
end


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
        count_iteration(rs) -- an item the `if` tests counts, kept or not
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
      if not cond then count_iteration(rs) end
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
    local s = capture(body, rs, f, "{% set %} block")
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
      local depth = rs.depth + 1
      if depth > rs.limits.max_depth then budget.depth(depth, sformat("macro '%s' calls", name)) end
      count_iteration(rs, "loop iterations and macro calls")
      local saved_line = rs.line
      rs.depth = depth
      local s = capture(body, rs, fr, sformat("macro '%s'", name))
      rs.depth = depth - 1
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
    fr["\0filter_input"] = capture(body, rs, f, "{% filter %} block")
    emit(rs, to_str(node(fr)))
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
      body[#body + 1] = function(rs) emit(rs, s) end
    elseif t.k == "var_begin" then
      P:next()
      local e = parse_tuple(P)
      P:expect("var_end")
      local line = t.line
      body[#body + 1] = function(rs, f)
        rs.line = line
        local v = e(f)
        if type(v) == "string" then emit(rs, v) else emit(rs, to_str(v)) end
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
      P:enter()
      body[#body + 1] = handler(P, nt.line)
      P:leave()
    else
      syntax_error(t.line, sformat("unexpected '%s'", describe(t)))
    end
  end
end

local M = {}

--- M.compile(source, limits) -> body: the template's statements as
-- closures, each function(rs, frame). Raises "bitnet.template: line N: ..."
-- on syntax errors, unknown tags, filters and tests, and nesting deeper
-- than limits.max_depth.
function M.compile(source, limits)
  local P = setmetatable({ toks = lex(source), i = 1, loop_depth = 0, depth = 0,
    max_depth = limits.max_depth, limits = limits }, Parser)
  return parse_body(P, nil)
end

--- M.state(limits) -> rs: a fresh render state for M.run_body.
function M.state(limits)
  return { out = {}, n = 0, cap = limits.max_output, line = 1, limits = limits,
    iterations = 0, depth = 0 }
end

--- M.run_body(body, rs, frame): runs compiled statements, appending to
-- rs.out; nil, or "break" / "continue" from a loop control.
M.run_body = run_body

return M
