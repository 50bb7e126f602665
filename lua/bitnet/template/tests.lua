--- bitnet.template.tests: Jinja tests ({{ x is name }}).
--
-- TESTS[name] = function(value, args) -> boolean.

local rawequal, type = rawequal, type

local V = require("bitnet.template.value")
local fail, is_int, is_undef, kind = V.fail, V.is_int, V.is_undef, V.kind
local numval, py_eq, py_in, py_lt = V.numval, V.py_eq, V.py_in, V.py_lt

local A = require("bitnet.template.access")
local STR_METHODS = A.STR_METHODS

---------------------------------------------------------------------------
-- Tests ({{ x is name }}): function(value, args) -> boolean
---------------------------------------------------------------------------

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
-- filters.lua requires this module: look the filters up when the test runs
TESTS.filter = function(v) return require("bitnet.template.filters")[v] ~= nil end
TESTS.test = function(v) return TESTS[v] ~= nil end

return TESTS
