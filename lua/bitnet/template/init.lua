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
-- in filters.lua and tests.lua; str/dict methods listed in STR_METHODS and
-- DICT_METHODS (access.lua). Unknown tags, filters and tests are errors at
-- compile time.
--
-- The package: lexer.lua (source -> tokens), parser.lua (tokens -> closures),
-- value.lua (Python values: kinds, strings, containers, operators),
-- json.lua (tojson), access.lua (attributes, items, calls, methods),
-- filters.lua, tests.lua, globals.lua, and this file (the public API).
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
--
-- Budgets: templates come from strangers' model files, so compile and
-- render take options bounding what a render may cost (budget.lua):
-- max_output, max_string, max_iterations, max_items, max_depth
-- (M.defaults lists them with their defaults). Going over one raises an
-- error naming the quantity, the bound and the option that raises it.


local type, pairs, setmetatable, error, pcall = type, pairs, setmetatable, error, pcall
local tostring = tostring
local concat, tsort, tremove = table.concat, table.sort, table.remove
local sfind, sformat, ssub = string.find, string.format, string.sub

local V = require("bitnet.template.value")
local NONE, PREFIX, ARRAY_MT, OBJECT_MT = V.NONE, V.PREFIX, V.ARRAY_MT, V.OBJECT_MT
local budget = require("bitnet.template.budget")
local parser = require("bitnet.template.parser")
local GLOBALS = require("bitnet.template.globals")

local M = {}

---------------------------------------------------------------------------
-- Public API
---------------------------------------------------------------------------

-- What a Lua stack overflow becomes: the depth bounds stop each kind of
-- nesting alone, but a template can still combine them (macro calls, each
-- with deep expressions) past what the interpreter's stack holds.
local STACK_OVERFLOW = "nesting too deep for the Lua stack (stack overflow): "
  .. "lower the max_depth option to stop such templates sooner"

-- err as a template error: a runtime error raised without a line gets the
-- line running (`where` when there is none); a stack overflow says so.
local function template_error(err, where)
  if type(err) == "string" and ssub(err, 1, #PREFIX) ~= PREFIX then
    if sfind(err, "stack overflow", 1, true) then err = STACK_OVERFLOW end
    err = PREFIX .. where .. ": " .. err
  end
  return err
end

local Template = {}
Template.__index = Template

local function compile_with(source, limits)
  local ok, body = pcall(parser.compile, source, limits)
  if not ok then error(template_error(body, "compile"), 0) end
  return setmetatable({ source = source, body = body, limits = limits }, Template)
end

local function render_with(t, context, limits)
  if context == nil then context = {} end
  if type(context) ~= "table" then
    error("bitnet.template: render: context must be a table, got " .. type(context), 3)
  end
  local root = setmetatable({}, { __index = function(_, k)
    local v = context[k]
    if v == nil then v = GLOBALS[k] end
    return v
  end })
  local rs = parser.state(limits)
  local prev = budget.use(limits)
  local ok, err = pcall(parser.run_body, t.body, rs, root)
  budget.use(prev)
  if not ok then error(template_error(err, sformat("line %d", rs.line)), 0) end
  return concat(rs.out)
end

--- Render a compiled template with `context` (a table of variables; may be
-- nil). `opts` (optional) overrides, for this render, the budget options
-- the template was compiled with (see M.defaults). Returns the rendered
-- string; raises "bitnet.template: line N: ..." on errors, including
-- raise_exception() from the template and going over a budget.
function Template:render(context, opts)
  return render_with(self, context, budget.options(opts, self.limits, "render"))
end

--- Compile Jinja `source` once; returns an object whose :render(context)
-- can be called many times. `opts` (optional) sets the budget options (see
-- M.defaults) for its renders; max_depth also bounds the nesting of the
-- source. Raises "bitnet.template: line N: ..." on syntax errors, unknown
-- tags, unknown filters and unknown tests, and on unknown or bad options.
function M.compile(source, opts)
  if type(source) ~= "string" then
    error("bitnet.template: compile: source must be a string, got " .. type(source), 2)
  end
  return compile_with(source, budget.options(opts, budget.DEFAULTS, "compile"))
end

local CACHE_MAX = 32
local cache, cache_order = {}, {}

--- Render Jinja `source` with `context`, within the budget options `opts`
-- (optional, see M.defaults). Compiled templates are cached by source (the
-- last 32 distinct sources).
function M.render(source, context, opts)
  if type(source) ~= "string" then
    error("bitnet.template: render: source must be a string, got " .. type(source), 2)
  end
  local limits = budget.options(opts, budget.DEFAULTS, "render")
  local t = cache[source]
  if not t then
    t = compile_with(source, limits)
    if #cache_order >= CACHE_MAX then
      cache[tremove(cache_order, 1)] = nil
    end
    cache_order[#cache_order + 1] = source
    cache[source] = t
  end
  return render_with(t, context, limits)
end

--- The budget options of compile() and render(), with their defaults (a
-- copy): max_output (bytes of output), max_string (bytes of any one string
-- built), max_iterations (for-loop iterations in one render), max_items
-- (items of range() and of lists built by * or +) and max_depth (nested
-- macro calls; nesting in the source and in printed or compared
-- containers). Each is a positive integer; math.huge turns it off.
M.defaults = {}
for k, v in pairs(budget.DEFAULTS) do M.defaults[k] = v end

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
