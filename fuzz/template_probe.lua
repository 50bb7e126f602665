--- template_probe.lua: every filter, test, global and str/dict method of the template engine
-- called with every kind of value in every argument position, and every operator, subscript,
-- slice and loop form on every pair of values. Each render must succeed or fail with the
-- engine's own "bitnet.template: ..." message that names no internal Lua file: an escaped
-- Lua error is a bug. Systematic where fuzz_template is random (it found what four fuzz
-- rounds had not). Run: `make template-probe` (Lua 5.4 and LuaJIT, about 6 minutes on one core).
--
-- usage: lua fuzz/template_probe.lua [LUA_DIR]   (exit status 1 when an internal error escaped)

local lua_dir = arg and arg[1] or "lua"
package.path = lua_dir .. "/?.lua;" .. lua_dir .. "/?/init.lua;" .. package.path
local T = require("bitnet.template")

local LIMITS = { max_iterations = 2000, max_output = 65536, max_string = 65536, max_items = 1000, max_depth = 40 }
local CONTEXT = { callback = function() return 1 end }

-- One of each kind a template can hold, edge values included (nope is undefined).
local VALUES = { "1", "-3", "2.5", "0", "-0.0", "1e308", "-1e308", "(0/0)", "100000000000000000000",
  "9007199254740993", "'ab c'", "''", "'%s %d'", "'\\xff'", "[1, 'b', none]", "[[1,2],[3,4]]", "(1, 2)",
  "{'a': 1, 'b': [2]}", "none", "nope", "true", "false", "range(3)", "namespace(x=1)", "callback" }
local OPERATORS = { "+", "-", "*", "/", "//", "%", "**", "~", "in", "not in", "==", "!=", "<", "<=", ">",
  ">=", "and", "or" }
local GLOBALS = { "range", "dict", "namespace", "raise_exception", "strftime_now", "lipsum", "cycler", "joiner" }
local METHODS = { "items", "keys", "values", "get", "upper", "lower", "strip", "lstrip", "rstrip", "split",
  "rsplit", "splitlines", "startswith", "endswith", "replace", "title", "capitalize", "format", "join",
  "append", "pop", "count", "index", "find", "update", "setdefault", "insert", "extend", "remove",
  "reverse", "sort", "copy", "center", "zfill", "ljust", "rjust", "isdigit", "encode", "partition" }

-- The names the engine defines, read from its source so that a new filter or test is probed too.
local function defined_names(path, pattern)
  local f = assert(io.open(path, "r"))
  local src = f:read("a")
  f:close()
  local names = {}
  for name in src:gmatch(pattern) do names[#names + 1] = name end
  return names
end

local renders, escaped = 0, 0
local function try(src)
  renders = renders + 1
  local ok, err = pcall(T.render, src, CONTEXT, LIMITS)
  if ok then return end
  err = tostring(err)
  if err:sub(1, 17) ~= "bitnet.template: " or err:find("%.lua:%d") then
    escaped = escaped + 1
    if escaped <= 50 then io.write(src, "\n  => ", err, "\n") end
  end
end

local function each_call(head)
  try("{{ " .. head .. " }}")
  try("{{ " .. head .. "() }}")
  for _, a in ipairs(VALUES) do
    try("{{ " .. head .. "(" .. a .. ") }}")
    try("{{ " .. head .. "(x=" .. a .. ") }}")
    for _, b in ipairs(VALUES) do
      try("{{ " .. head .. "(" .. a .. ", " .. b .. ") }}")
      try("{{ " .. head .. "(1, " .. a .. ", " .. b .. ") }}")
    end
  end
end

local filters = defined_names(lua_dir .. "/bitnet/template/filters.lua", "FILTERS%.([%w_]+)%s*=")
local tests = defined_names(lua_dir .. "/bitnet/template/tests.lua", "TESTS%.([%w_]+)%s*=")
for _, name in ipairs(defined_names(lua_dir .. "/bitnet/template/tests.lua", '%["([%w_]+)"%]%s*=')) do
  tests[#tests + 1] = name
end
for _, v in ipairs(VALUES) do
  for _, name in ipairs(filters) do each_call(v .. " | " .. name) end
  for _, name in ipairs(tests) do each_call(v .. " is " .. name) end
  for _, name in ipairs(METHODS) do each_call(v .. "." .. name) end
end
for _, name in ipairs(GLOBALS) do each_call(name) end

for _, a in ipairs(VALUES) do
  try("{{ -" .. a .. " }}")
  try("{{ not " .. a .. " }}")
  try("{{ " .. a .. ".x }}")
  try("{% for x in " .. a .. " %}{{ x }}{% endfor %}")
  for _, b in ipairs(VALUES) do
    for _, op in ipairs(OPERATORS) do try("{{ " .. a .. " " .. op .. " " .. b .. " }}") end
    try("{{ " .. a .. "[" .. b .. "] }}")
    try("{{ " .. a .. "[" .. b .. ":] }}")
    try("{{ " .. a .. "[::" .. b .. "] }}")
    try("{{ " .. a .. "[" .. b .. ":" .. b .. ":" .. b .. "] }}")
    try("{{ " .. a .. " if " .. b .. " else 1 }}")
    try("{% set x = " .. a .. " %}{% set x.y = " .. b .. " %}{{ x.y }}")
    try("{{ [" .. a .. ", " .. b .. "] | sort }}{{ [" .. a .. ", " .. b .. "] | unique | list }}")
    try("{{ {" .. a .. ": " .. b .. "} | dictsort }}")
    try("{% macro m(p=" .. a .. ") %}{{ p }}{% endmacro %}{{ m(" .. b .. ") }}{{ m(p=" .. b .. ", q=1) }}")
    try("{% for x in " .. a .. " if x == " .. b .. " %}{{ loop.cycle(" .. a .. ", " .. b .. ") }}{% endfor %}")
  end
end

io.write(("%s: %d filters, %d tests, %d methods, %d globals; %d renders, %d internal errors\n"):format(
  _VERSION, #filters, #tests, #METHODS, #GLOBALS, renders, escaped))
os.exit(escaped == 0 and 0 or 1)
