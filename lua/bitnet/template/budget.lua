--- bitnet.template.budget: bounds on what compiling and rendering may cost.
--
-- Chat templates come inside model files from strangers and a server renders
-- them per request, so a render must not be able to build a gigabyte string,
-- loop for minutes or recurse until the Lua stack overflows. The bounds are
-- options of compile() and render(); each has its own error, which names the
-- quantity, the bound and the option that raises it:
--   "bitnet.template: line 1: '*' result of 1000000000 bytes: over
--    max_string = 16777216 bytes (raise the bound with the max_string option)"
--
-- The render that is running sets the bounds the value operations check
-- (M.use); the parser's statements keep their own counters in the render
-- state.

local type, pairs, error, tostring = type, pairs, error, tostring
local floor, huge = math.floor, math.huge
local concat, tsort = table.concat, table.sort
local sformat = string.format

local M = {}

--- M.DEFAULTS: every option and its default. Generous for real chat
-- templates (the fixtures' largest renders use a few KB, tens of loop
-- iterations, macros a few calls deep); each stops a hostile template in
-- well under a second.
M.DEFAULTS = {
  max_output = 16777216,   -- bytes of rendered output (16 MiB)
  max_string = 16777216,   -- bytes of any one string built: *, +, ~, join, replace,
                           -- indent, tojson, str() of a container, set blocks, macro output
  max_iterations = 1000000, -- for-loop iterations and macro calls in one render, all together
  max_items = 100000,      -- items of range() (Jinja2's sandbox: 100,000) and of a list built by * or +
  max_depth = 200,         -- macro calls nested at render time; blocks and brackets nested in
                           -- the source; containers nested when printed, compared or serialized
}

local UNITS = { max_output = "bytes", max_string = "bytes", max_iterations = "iterations",
  max_items = "items", max_depth = "levels" }

local function known_names()
  local names = {}
  for k in pairs(M.DEFAULTS) do names[#names + 1] = k end
  tsort(names)
  return concat(names, ", ")
end

--- M.options(opts, base, fname) -> limits: base (a limits table) with the
-- options in opts (a table or nil) applied. Raises, naming fname and the
-- option, on an unknown option or a value that is not a positive integer
-- (math.huge turns a bound off).
function M.options(opts, base, fname)
  if opts == nil then return base end
  if type(opts) ~= "table" then
    error(sformat("bitnet.template: %s: options must be a table, got %s", fname, type(opts)), 3)
  end
  local limits = {}
  for k, v in pairs(base) do limits[k] = v end
  for k, v in pairs(opts) do
    if M.DEFAULTS[k] == nil then
      error(sformat("bitnet.template: %s: unknown option '%s' (known: %s)", fname, tostring(k), known_names()), 3)
    end
    if type(v) ~= "number" or v < 1 or (v ~= huge and v ~= floor(v)) then
      error(sformat("bitnet.template: %s: option %s must be a positive integer (or math.huge), got %s",
        fname, k, type(v) == "number" and tostring(v) or type(v)), 3)
    end
    limits[k] = v
  end
  return limits
end

local active = M.DEFAULTS

--- M.use(limits) -> the limits in use before: the value operations check
-- these from now on (render sets them, and puts the old ones back after).
function M.use(limits)
  local prev = active
  active = limits
  return prev
end

--- M.message(name, what, limits) -> the error text for going over bound
-- `name` (an option name); `what` says what went over, with its size.
function M.message(name, what, limits)
  local bound = (limits or active)[name]
  return sformat("%s: over %s = %s %s (raise the bound with the %s option)",
    what, name, sformat("%.0f", bound), UNITS[name], name)
end

--- M.over(name, what): raises M.message(name, what) as a render error.
function M.over(name, what)
  error(M.message(name, what), 0)
end

--- M.string(n, what): raises unless a string of n bytes fits max_string.
function M.string(n, what)
  if n > active.max_string then M.over("max_string", sformat("%s of %.0f bytes", what, n)) end
end

--- M.items(n, what): raises unless a list of n items fits max_items.
function M.items(n, what)
  if n > active.max_items then M.over("max_items", sformat("%s of %.0f items", what, n)) end
end

--- M.depth(d, what): raises unless nesting d fits max_depth.
function M.depth(d, what)
  if d > active.max_depth then M.over("max_depth", sformat("%s nested %d deep", what, d)) end
end

return M
