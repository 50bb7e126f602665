--- bitnet.tools: OpenAI-style tool calls for model:chat. It checks tool
-- lists and tool_choice, turns a conversation with tool calls and tool
-- results into messages a chat template renders, picks the tool format of
-- the template, builds the grammar a generation follows, and parses the
-- model's text back into calls (whole, or as stream deltas).
--
-- Two formats:
--   * "generic" (templates without a tool format, the shipped model's and
--     BitNet 2B-4T's among them): llama.cpp's generic handler's JSON. The
--     system prompt lists the tools and asks for
--       {"tool_call": {"name": N, "arguments": {...}}}
--       {"tool_calls": [{"name": N, "arguments": {...}}, ...]}  (parallel)
--       {"response": "text"}
--     and a JSON Schema over exactly those shapes (each tool's arguments
--     under its parameters schema) constrains the generation, so a call is
--     valid by construction.
--   * "hermes" (templates that speak <tool_call>, Qwen 2.5, Hermes and
--     their fine-tunes): the template renders `tools` itself; the model
--     writes <tool_call>{"name": N, "arguments": {...}}</tool_call> blocks
--     among its text. With "auto" the text is free and each block is parsed
--     and checked against its tool's schema (a block that fails stays
--     text); "required" and a named tool open the block in the prompt and
--     generate the JSON under the schema.
local grammar = require("bitnet.grammar")
local errors = require("bitnet.errors")

local M = {}

--- The most tools one request may carry (OpenAI's bound).
M.MAX_TOOLS = 128

--- The instruction of the generic format (llama.cpp's words).
M.GENERIC_INSTRUCTION = "Respond in JSON format, either with `tool_call` (a request to call tools) or with "
  .. "`response` reply to the user's request"

local function bad(message, param)
  errors.raise("invalid_argument", message, param)
end

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" then return false end
    n = n + 1
  end
  return n == #t
end

-- ---- checking what the caller gives ----

--- tools.check(list [, null]) -> normalized tools: the OpenAI `tools` array
-- ({ type = "function", ["function"] = { name, description, parameters,
-- strict } }). Each entry becomes { name, description, schema (JSON text of
-- the parameters; an object of anything when absent), spec (the entry as
-- given) }. Raises a typed invalid_argument error naming the entry.
function M.check(list, null)
  if not is_list(list) then bad("'tools' must be an array of tool objects", "tools") end
  if #list > M.MAX_TOOLS then
    bad(("'tools' has %d entries: at most %d are allowed"):format(#list, M.MAX_TOOLS), "tools")
  end
  local out, seen = {}, {}
  for i, t in ipairs(list) do
    local param = ("tools[%d]"):format(i - 1)
    if type(t) ~= "table" then bad(param .. " must be an object", param) end
    if t.type ~= "function" then bad(param .. ".type must be \"function\"", param .. ".type") end
    for k in pairs(t) do
      if k ~= "type" and k ~= "function" then bad(("%s has an unsupported field '%s'"):format(param, tostring(k)), param) end
    end
    local f = t["function"]
    if type(f) ~= "table" then bad(param .. ".function must be an object", param .. ".function") end
    for k in pairs(f) do
      if k ~= "name" and k ~= "description" and k ~= "parameters" and k ~= "strict" then
        bad(("%s.function has an unsupported field '%s'"):format(param, tostring(k)), param .. ".function")
      end
    end
    local name = f.name
    if type(name) ~= "string" or not name:match("^[%w_%-]+$") or #name > 64 then
      bad(("%s.function.name must be 1 to 64 letters, digits, underscores or dashes, got %s"):format(param,
        type(name) == "string" and ("'" .. name .. "'") or type(name)), param .. ".function.name")
    end
    if seen[name] then bad(("%s.function.name '%s' is given twice"):format(param, name), param .. ".function.name") end
    seen[name] = true
    local desc = f.description
    if desc == null then desc = nil end
    if desc ~= nil and type(desc) ~= "string" then
      bad(param .. ".function.description must be a string", param .. ".function.description")
    end
    local strict = f.strict
    if strict ~= nil and strict ~= null and type(strict) ~= "boolean" then
      bad(param .. ".function.strict must be a boolean", param .. ".function.strict")
    end
    local params = f.parameters
    if params == null then params = nil end
    local schema
    if params == nil then
      schema = '{"type":"object"}'
    elseif type(params) == "string" then
      schema = params -- JSON text, as bitnet.grammar takes it
    elseif type(params) == "table" and not (is_list(params) and next(params) ~= nil) then
      local ok, text = pcall(grammar.encode_json, params)
      if not ok then bad(("%s.function.parameters: %s"):format(param, tostring(text)), param .. ".function.parameters") end
      schema = text
    else
      bad(param .. ".function.parameters must be a JSON Schema object", param .. ".function.parameters")
    end
    out[i] = { name = name, description = desc, schema = schema, spec = t, param = param }
  end
  return out
end

--- tools.choice(v, list [, null]) -> mode, name: tool_choice ("none",
-- "auto", "required", or { type = "function", ["function"] = { name } })
-- as a mode ("none" | "auto" | "required") and the forced tool's name.
-- Default: "auto" with tools, "none" without. Raises a typed error.
function M.choice(v, list, null)
  if v == nil or v == null then return (list and #list > 0) and "auto" or "none" end
  if v == "none" or v == "auto" or v == "required" then
    if v ~= "none" and not (list and #list > 0) then
      bad(("'tool_choice' is \"%s\" but no 'tools' are given"):format(v), "tool_choice")
    end
    return v
  end
  if type(v) == "table" and v.type == "function" and type(v["function"]) == "table"
    and type(v["function"].name) == "string" then
    local name = v["function"].name
    for _, t in ipairs(list or {}) do
      if t.name == name then return "required", name end
    end
    bad(("'tool_choice' names the function '%s', which is not among 'tools'"):format(name), "tool_choice")
  end
  bad("'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
    "tool_choice")
end

-- ---- JSON text ----

local function quote(s) return grammar.encode_json(s) end

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local utf8_char = require("bitnet.template.value").utf8_encode -- (LuaJIT has no utf8 library)

-- A partial JSON reader: the value at i as a node { t, s, e, ... } where
-- e (the last byte) is nil while the text ends inside the value. Strings
-- carry str (decoded so far: only whole escapes), objects fields
-- ({ key, node } in order), arrays items. Returns nil for text that is not
-- (a prefix of) JSON.
local parse_value

local function skip_ws(text, i)
  return text:find("[^ \t\r\n]", i) or #text + 1
end

local function parse_string(text, i)
  local out, j, n = {}, i + 1, #text
  while true do
    local k = text:find('["\\]', j)
    if not k then
      out[#out + 1] = text:sub(j)
      return { t = "string", s = i, str = table.concat(out) }
    end
    out[#out + 1] = text:sub(j, k - 1)
    if text:byte(k) == 34 then return { t = "string", s = i, e = k, str = table.concat(out) } end
    local c = text:sub(k + 1, k + 1)
    if c == "" then return { t = "string", s = i, str = table.concat(out) } end
    if c == "u" then
      local hex = text:sub(k + 2, k + 5)
      if k + 5 > n then return { t = "string", s = i, str = table.concat(out) } end
      local cp = hex:match("^%x%x%x%x$") and tonumber(hex, 16)
      if not cp then return nil end
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        if j + 5 > n then return { t = "string", s = i, str = table.concat(out) } end
        local lo = text:sub(j, j + 1) == "\\u" and text:sub(j + 2, j + 5):match("^%x%x%x%x$")
        lo = lo and tonumber(lo, 16)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
          j = j + 6
        else
          cp = 0xFFFD
        end
      elseif cp >= 0xDC00 and cp <= 0xDFFF then
        cp = 0xFFFD
      end
      out[#out + 1] = utf8_char(cp)
    else
      if not ESC[c] then return nil end
      out[#out + 1] = ESC[c]
      j = k + 2
    end
  end
end

local function parse_container(text, i, close)
  local node = { t = close == "}" and "object" or "array", s = i, fields = {}, items = {} }
  local j = skip_ws(text, i + 1)
  if j > #text then return node end
  if text:sub(j, j) == close then node.e = j return node end
  while true do
    local key
    if node.t == "object" then
      if text:sub(j, j) ~= '"' then return nil end
      local k = parse_string(text, j)
      if not k then return nil end
      if not k.e then return node end
      key = k.str
      j = skip_ws(text, k.e + 1)
      if j > #text then return node end
      if text:sub(j, j) ~= ":" then return nil end
      j = skip_ws(text, j + 1)
      if j > #text then return node end
    end
    local v = parse_value(text, j)
    if not v then return nil end
    if node.t == "object" then node.fields[#node.fields + 1] = { key = key, node = v }
    else node.items[#node.items + 1] = v end
    if not v.e then return node end
    j = skip_ws(text, v.e + 1)
    if j > #text then return node end
    local c = text:sub(j, j)
    if c == close then node.e = j return node end
    if c ~= "," then return nil end
    j = skip_ws(text, j + 1)
    if j > #text then return node end
  end
end

parse_value = function(text, i)
  local c = text:sub(i, i)
  if c == "{" then return parse_container(text, i, "}") end
  if c == "[" then return parse_container(text, i, "]") end
  if c == '"' then return parse_string(text, i) end
  local word = text:match("^[%w%.%+%-]+", i)
  if not word then return nil end
  local e = i + #word - 1
  if e == #text then return { t = "scalar", s = i } end -- a number may go on
  return { t = "scalar", s = i, e = e }
end

--- tools.parse_json_prefix(text) -> node | nil: the partial reader above
-- over a whole text (leading whitespace skipped); nil when the text is not
-- JSON or a prefix of it. node.e is the last byte of a complete value.
function M.parse_json_prefix(text)
  local i = skip_ws(text, 1)
  if i > #text then return { t = "none", s = i } end
  return parse_value(text, i)
end

-- ---- templates ----

-- What a template does with tools, found by rendering probes (cached per
-- compiled template): renders_tools (the `tools` variable shows),
-- tool_role (a "tool" message's content shows), format.
local probes = setmetatable({}, { __mode = "k" })

local MARK = "bitnet_probe_7f3a9c"

--- tools.template_caps(compiled, source, render) -> { format, renders_tools,
-- tool_role }. render(messages, extra) renders with the template.
function M.template_caps(compiled, source, render)
  local caps = probes[compiled]
  if caps then return caps end
  local user = { role = "user", content = "hi" }
  local ok, text = pcall(render, { user }, { tools = { { type = "function", ["function"] = { name = MARK,
    description = MARK, parameters = { type = "object" } } } } })
  local renders_tools = ok and text:find(MARK, 1, true) ~= nil
  ok, text = pcall(render, { user, { role = "assistant", content = "",
    tool_calls = { { id = "call_1", type = "function", ["function"] = { name = "f", arguments = "{}" } } } },
    { role = "tool", tool_call_id = "call_1", name = "f", content = MARK } }, {})
  local tool_role = ok and text:find(MARK, 1, true) ~= nil
  caps = { renders_tools = renders_tools, tool_role = tool_role,
    format = (source:find("<tool_call>", 1, true) and renders_tools) and "hermes" or "generic" }
  probes[compiled] = caps
  return caps
end

-- ---- history ----

local function generic_calls_text(calls, parallel)
  local parts = {}
  for i, c in ipairs(calls) do
    local args = c["function"].arguments
    if type(args) ~= "string" then args = grammar.encode_json(args) end
    parts[i] = '{"name":' .. quote(c["function"].name) .. ',"arguments":' .. args .. "}"
  end
  if parallel or #parts ~= 1 then return '{"tool_calls":[' .. table.concat(parts, ",") .. "]}" end
  return '{"tool_call":' .. parts[1] .. "}"
end

local function check_call(c, param, null)
  if type(c) ~= "table" then bad(param .. " must be an object", param) end
  if c.type ~= nil and c.type ~= "function" then bad(param .. ".type must be \"function\"", param .. ".type") end
  if type(c.id) ~= "string" or c.id == "" then bad(param .. ".id must be a non-empty string", param .. ".id") end
  local f = c["function"]
  if type(f) ~= "table" or type(f.name) ~= "string" then
    bad(param .. ".function must be an object with a string name", param .. ".function")
  end
  local args = f.arguments
  if args == nil or args == null then args = "{}" end
  if type(args) == "string" then
    local node = M.parse_json_prefix(args)
    if not node or not node.e or node.t ~= "object" or skip_ws(args, node.e + 1) <= #args then
      bad(param .. ".function.arguments must be a JSON object (as text)", param .. ".function.arguments")
    end
  elseif type(args) ~= "table" then
    bad(param .. ".function.arguments must be a JSON object (as text)", param .. ".function.arguments")
  end
  return { id = c.id, type = "function", ["function"] = { name = f.name, arguments = args } }
end

--- tools.has_history(messages) -> boolean: whether a conversation holds
-- tool calls or tool results (and so needs tools.history).
function M.has_history(messages)
  for _, m in ipairs(messages) do
    if type(m) == "table" and (m.role == "tool" or m.tool_calls ~= nil) then return true end
  end
  return false
end

--- tools.history(messages, caps, opts) -> messages for the template:
-- assistant messages with tool_calls (content may be nil / null) and
-- "tool" messages with tool_call_id. The generic format writes a call as
-- the JSON the model writes, and a result as a user message
-- {"tool_response": {"tool_call_id", "name", "content"}} when the template
-- has no "tool" role. opts: parallel, null. A tool message answering an id
-- no earlier assistant message called raises a typed error.
function M.history(messages, caps, opts)
  local null = opts.null
  local out, called = {}, {}
  for i, m in ipairs(messages) do
    local param = ("messages[%d]"):format(i - 1)
    if type(m) ~= "table" then bad(param .. " must be an object", param) end
    local content = m.content
    if content == null then content = nil end
    if m.role == "assistant" and m.tool_calls ~= nil and m.tool_calls ~= null then
      if not is_list(m.tool_calls) or #m.tool_calls == 0 then
        bad(param .. ".tool_calls must be a non-empty array", param .. ".tool_calls")
      end
      local calls = {}
      for j, c in ipairs(m.tool_calls) do
        calls[j] = check_call(c, ("%s.tool_calls[%d]"):format(param, j - 1), null)
        called[calls[j].id] = calls[j]["function"].name
      end
      if caps.format == "generic" then
        out[#out + 1] = { role = "assistant", content = generic_calls_text(calls, opts.parallel) }
      else
        out[#out + 1] = { role = "assistant", content = content or "", tool_calls = calls }
      end
    elseif m.role == "tool" then
      local id = m.tool_call_id
      if type(id) ~= "string" then bad(param .. ".tool_call_id must be a string", param .. ".tool_call_id") end
      local name = called[id]
      if not name then
        bad(("%s.tool_call_id '%s' answers no tool call of an earlier assistant message"):format(param, id),
          param .. ".tool_call_id")
      end
      if type(content) ~= "string" then bad(param .. ".content must be a string", param .. ".content") end
      if caps.tool_role then
        out[#out + 1] = { role = "tool", tool_call_id = id, name = name, content = content }
      else
        out[#out + 1] = { role = "user", content = '{"tool_response":{"tool_call_id":' .. quote(id) .. ',"name":'
          .. quote(name) .. ',"content":' .. quote(content) .. "}}" }
      end
    else
      local copy = {}
      for k, v in pairs(m) do copy[k] = v end
      copy.content = content
      out[#out + 1] = copy
    end
  end
  return out
end

-- ---- plans: what a chat with tools renders and generates ----

-- A schema embedded in the wrapper moves to the wrapper's $defs under
-- `at`: its own references ("#", "#/$defs/x") are rewritten to point
-- there, so a tool's $defs and recursion keep working.
local function rebase(schema, at)
  return (schema:gsub('("%$ref"%s*:%s*")#([/"])', function(pre, c)
    return pre .. "#/$defs/" .. at .. (c == "/" and "/" or '"')
  end))
end

-- defs: the wrapper's $defs entries, added to.
local function call_schema(t, defs)
  local at = "bitnet_tool_" .. (#defs + 1)
  defs[#defs + 1] = quote(at) .. ":" .. rebase(t.schema, at)
  return '{"type":"object","properties":{"name":{"const":' .. quote(t.name) .. '},"arguments":{"$ref":"#/$defs/'
    .. at .. '"}},"required":["name","arguments"],"additionalProperties":false}'
end

-- The root schema (an object's text) with the $defs entries.
local function with_defs(root, defs)
  if #defs == 0 then return root end
  return '{"$defs":{' .. table.concat(defs, ",") .. "}," .. root:sub(2)
end

local function one_of(list)
  if #list == 1 then return list[1] end
  return '{"anyOf":[' .. table.concat(list, ",") .. "]}"
end

local function object_of(key, schema)
  return '{"type":"object","properties":{"' .. key .. '":' .. schema .. '},"required":["' .. key
    .. '"],"additionalProperties":false}'
end

local function tool_lines(list)
  local lines = {}
  for _, t in ipairs(list) do
    lines[#lines + 1] = ("- %s%s; arguments (JSON Schema): %s"):format(t.name,
      t.description and (": " .. t.description) or "", t.schema)
  end
  return table.concat(lines, "\n")
end

-- The grammar of a schema (JSON text); whitespace: "compact" (what the
-- model writes) or "flexible" (checking text the model wrote freely).
local function compile(tok, text, whitespace)
  return grammar.cached({ json_schema = text, whitespace = whitespace or "compact" }, tok)
end

-- The grammar of a schema, or a typed error naming the tool whose
-- parameters the engine cannot enforce.
local function compile_or_blame(tok, text, list)
  local g, err = compile(tok, text)
  if g then return g end
  for _, t in ipairs(list) do
    local _, e = compile(tok, t.schema)
    if e then bad(("%s.function.parameters: %s"):format(t.param, e), t.param .. ".function.parameters") end
  end
  bad("the tools' schemas cannot be enforced together: " .. tostring(err), "tools")
end

--- tools.plan(list, mode, name, caps, opts) -> plan: what a chat with
-- tools does. list: tools.check's; mode and name: tools.choice's; caps:
-- tools.template_caps'; opts: { tok, parallel (default true), response
-- (JSON Schema text the plain answer follows, or nil) }. The plan has
-- format, mode, name, parallel, tools, system (text for the system
-- prompt, or nil), template_tools (the `tools` the template sees, or nil),
-- prefix (text put after the generation prompt, or nil), grammar.
function M.plan(list, mode, name, caps, opts)
  local plan = { format = caps.format, mode = mode, name = name, parallel = opts.parallel ~= false, tools = list,
    tok = opts.tok }
  if mode == "none" then return plan end
  local chosen = list
  if name then
    for _, t in ipairs(list) do
      if t.name == name then chosen = { t } end
    end
  end
  if caps.format == "hermes" then
    plan.template_tools = {}
    for i, t in ipairs(list) do plan.template_tools[i] = t.spec end
    if mode == "required" then
      plan.prefix = "<tool_call>\n"
      local calls, defs = {}, {}
      for i, t in ipairs(chosen) do calls[i] = call_schema(t, defs) end
      plan.grammar = compile_or_blame(opts.tok, with_defs(#calls == 1 and calls[1] or one_of(calls), defs), chosen)
    end
    return plan
  end
  local calls, defs = {}, {}
  for i, t in ipairs(chosen) do calls[i] = call_schema(t, defs) end
  local call
  if plan.parallel then
    call = object_of("tool_calls", '{"type":"array","items":' .. one_of(calls) .. ',"minItems":1}')
  else
    call = object_of("tool_call", one_of(calls))
  end
  local shape
  if plan.parallel then
    shape = '{"tool_calls": [{"name": <tool name>, "arguments": <its arguments>}, ...]}'
  else
    shape = '{"tool_call": {"name": <tool name>, "arguments": <its arguments>}}'
  end
  local sys = {}
  if not caps.renders_tools then sys[#sys + 1] = "You can call these tools:\n" .. tool_lines(list) end
  local root
  if mode == "required" then
    sys[#sys + 1] = name and ("Respond in JSON format with `%s`, calling the tool %s: %s"):format(
      plan.parallel and "tool_calls" or "tool_call", name, shape)
      or ("Respond in JSON format with `%s` (a request to call tools): %s"):format(
      plan.parallel and "tool_calls" or "tool_call", shape)
    root = call
  else
    sys[#sys + 1] = M.GENERIC_INSTRUCTION .. ": " .. shape .. ' or {"response": <your reply>}'
    local answer = '{"type":"string"}'
    if opts.response then
      defs[#defs + 1] = '"bitnet_answer":' .. rebase(opts.response, "bitnet_answer")
      answer = '{"$ref":"#/$defs/bitnet_answer"}'
    end
    root = '{"anyOf":[' .. call .. "," .. object_of("response", answer) .. "]}"
  end
  plan.system = table.concat(sys, "\n\n")
  if caps.renders_tools then
    plan.template_tools = {}
    for i, t in ipairs(list) do plan.template_tools[i] = t.spec end
  end
  plan.grammar = compile_or_blame(opts.tok, with_defs(root, defs), chosen)
  return plan
end

--- tools.add_system(messages, text) -> messages with text appended to the
-- system message (a new first message when there is none).
function M.add_system(messages, text)
  local out = {}
  for i, m in ipairs(messages) do out[i] = m end
  if out[1] and out[1].role == "system" and type(out[1].content) == "string" then
    local copy = {}
    for k, v in pairs(out[1]) do copy[k] = v end
    copy.content = copy.content .. "\n\n" .. text
    out[1] = copy
  else
    table.insert(out, 1, { role = "system", content = text })
  end
  return out
end

-- ---- reading the model's text ----

-- One call from a node { name, arguments }: name (once whole), args (the
-- arguments' JSON text so far), done (the arguments are whole).
local function node_call(text, node)
  if not node or node.t ~= "object" then return nil end
  local call = {}
  for _, f in ipairs(node.fields) do
    if f.key == "name" and f.node.t == "string" and f.node.e then call.name = f.node.str end
    if f.key == "arguments" then
      call.args = text:sub(f.node.s, f.node.e or #text)
      call.done = f.node.e ~= nil and node.e ~= nil
    end
  end
  return call
end

-- The generic format's text as { content, calls, complete }.
local function generic_state(text)
  local st = { content = "", calls = {}, complete = false }
  local root = M.parse_json_prefix(text)
  if not root or root.t ~= "object" then return st end
  st.complete = root.e ~= nil
  for _, f in ipairs(root.fields) do
    if f.key == "response" then
      if f.node.t == "string" then st.content = f.node.str
      elseif f.node.e then st.content = text:sub(f.node.s, f.node.e) end
    elseif f.key == "tool_call" then
      st.calls[1] = node_call(text, f.node)
    elseif f.key == "tool_calls" and f.node.t == "array" then
      for i, item in ipairs(f.node.items) do st.calls[i] = node_call(text, item) end
    end
  end
  return st
end

local OPEN, CLOSE = "<tool_call>", "</tool_call>"

-- Whether args (JSON text) is valid under the tool's schema.
local function valid_call(plan, call)
  if not call or not call.name or not call.done then return false end
  local tool
  for _, t in ipairs(plan.tools) do
    if t.name == call.name then tool = t end
  end
  if not tool then return false end
  local g = compile(plan.tok, tool.schema, "flexible")
  if not g then return false end
  local m = g:matcher()
  return m:feed(call.args) and m:is_complete()
end

-- The hermes format's text as { content, calls, complete }: text outside
-- <tool_call> blocks is content (a block that is not a valid call too);
-- a block counts once closed (or at the end with required, whose grammar
-- ends with the JSON).
local function hermes_state(plan, text, final)
  local st = { content = "", calls = {}, complete = true }
  local parts, i = {}, 1
  while true do
    local a = text:find(OPEN, i, true)
    if not a then
      local rest = text:sub(i)
      if not final then -- hold back what may be the start of <tool_call>
        for len = math.min(#OPEN - 1, #rest), 1, -1 do
          if rest:sub(-len) == OPEN:sub(1, len) then rest = rest:sub(1, -len - 1) break end
        end
      end
      parts[#parts + 1] = rest
      break
    end
    parts[#parts + 1] = text:sub(i, a - 1)
    local b = text:find(CLOSE, a + #OPEN, true)
    local inner = text:sub(a + #OPEN, (b or #text + 1) - 1)
    if not b and not final then st.complete = false break end
    local node = M.parse_json_prefix(inner)
    local call = node and node.e and node_call(inner, node)
    if call and valid_call(plan, call) then
      st.calls[#st.calls + 1] = call
    else
      parts[#parts + 1] = text:sub(a, b and b + #CLOSE - 1 or #text)
    end
    if not b then break end
    i = b + #CLOSE
  end
  st.content = table.concat(parts)
  if final then st.content = st.content:match("^%s*(.-)%s*$") end
  return st
end

local counter = 0

local function new_id()
  counter = counter + 1
  return ("call_%08x%04x"):format(math.random(0, 0x7fffffff), counter % 0x10000)
end

--- A reader of a generation's text under a plan: reader:feed(text) ->
-- the content decided so far that was not returned before; calls decided
-- queue as stream deltas (reader:deltas()); reader:finish(finish_reason)
-- -> the rest of the content, the final tool_calls (or nil) and the
-- finish reason ("tool_calls" when the text is whole and holds calls).
local Reader = {}
Reader.__index = Reader

--- tools.reader(plan) -> Reader
function M.reader(plan)
  return setmetatable({ plan = plan, text = plan.prefix or "", sent = "", sent_calls = {}, events = {} }, Reader)
end

function Reader:state(final)
  if self.plan.format == "generic" then return generic_state(self.text) end
  return hermes_state(self.plan, self.text, final)
end

function Reader:diff(st)
  local piece = ""
  if st.content:sub(1, #self.sent) == self.sent and #st.content > #self.sent then
    piece = st.content:sub(#self.sent + 1)
    self.sent = st.content
  end
  for i, c in ipairs(st.calls) do
    local s = self.sent_calls[i]
    if not s and c.name then
      s = { id = new_id(), args = 0 }
      self.sent_calls[i] = s
      self.events[#self.events + 1] = { index = i - 1, id = s.id, name = c.name }
    end
    if s and c.args and #c.args > s.args then
      self.events[#self.events + 1] = { index = i - 1, arguments = c.args:sub(s.args + 1) }
      s.args = #c.args
    end
  end
  return piece
end

function Reader:feed(text)
  self.text = self.text .. text
  return self:diff(self:state(false))
end

--- reader:deltas() -> the call deltas since the last call: { index, id,
-- name } when a call's name is known, then { index, arguments } fragments.
function Reader:deltas()
  local ev = self.events
  self.events = {}
  return ev
end

function Reader:finish(reason)
  local st = self:state(true)
  local piece = self:diff(st)
  self.content = st.content
  if reason ~= "stop" or not st.complete or #st.calls == 0 then return piece, nil, reason end
  local calls = {}
  for i, c in ipairs(st.calls) do
    if not c.done or not self.sent_calls[i] then return piece, nil, reason end
    calls[i] = { id = self.sent_calls[i].id, type = "function", ["function"] = { name = c.name, arguments = c.args } }
  end
  return piece, calls, "tool_calls"
end

-- ---- a generation seen through a reader ----

--- A chat generation with tools: the same methods as the generation it
-- wraps (poll, next, step, done, wait, cancel, close, released, fd), whose
-- text pieces are the reply's content; gen:tool_deltas() gives the call
-- deltas so far; gen.info (once finished) adds tool_calls, content and
-- finish_reason "tool_calls".
local Wrapped = {}
M.Wrapped = Wrapped

local function inner_method(k)
  return function(self, ...)
    local inner = rawget(self, "inner")
    return inner[k](inner, ...)
  end
end

Wrapped.__index = function(self, k)
  local own = Wrapped[k]
  if own ~= nil then return own end
  if k == "info" then return nil end -- set by finish_reader
  local v = rawget(self, "inner")[k]
  if type(v) == "function" then return inner_method(k) end
  return v
end

--- tools.wrap(gen, plan) -> a generation whose text goes through a Reader.
function M.wrap(gen, plan)
  return setmetatable({ inner = gen, reader = M.reader(plan), pending = {} }, Wrapped)
end

function Wrapped:finish_reader()
  local inner = rawget(self, "inner")
  local piece, calls, reason = self.reader:finish(inner.info.finish_reason)
  local info = {}
  for k, v in pairs(inner.info) do info[k] = v end
  info.finish_reason = reason
  info.tool_calls = calls
  info.content = self.reader.content
  info.text = self.reader.text
  rawset(self, "info", info)
  return piece
end

-- Pulls one raw piece with pull(inner) into the content queue; false once
-- the generation has finished and the reader has had its end.
function Wrapped:pull(pull)
  if rawget(self, "info") then return false end
  local raw = pull(rawget(self, "inner"))
  local piece = raw == nil and self:finish_reader() or self.reader:feed(raw)
  if piece ~= "" then self.pending[#self.pending + 1] = piece end
  return raw ~= nil
end

-- The queued content as one piece, or nil when none.
function Wrapped:take()
  if #self.pending == 0 then return nil end
  local piece = table.concat(self.pending)
  self.pending = {}
  return piece
end

local function poll_inner(g) return (g.poll or g.step)(g) end
local function next_inner(g) return g:next() end

function Wrapped:poll()
  self:pull(poll_inner)
  local piece = self:take()
  if piece then return piece end
  if rawget(self, "info") then return nil end
  return ""
end
Wrapped.step = Wrapped.poll

function Wrapped:next()
  while true do
    local piece = self:take()
    if piece then return piece end
    if not self:pull(next_inner) and not self.pending[1] then return nil end
  end
end
Wrapped.__call = Wrapped.next

-- Reads what a finished generation has left (its text stays queued).
function Wrapped:drain()
  while self:pull(poll_inner) do end
end

function Wrapped:done()
  if not rawget(self, "info") and rawget(self, "inner"):done() then self:drain() end
  return rawget(self, "info") ~= nil
end

function Wrapped:wait(timeout)
  local finished = rawget(self, "inner"):wait(timeout)
  if finished then self:drain() end
  return finished
end

function Wrapped:tool_deltas()
  return self.reader:deltas()
end

Wrapped.__close = function(self)
  local close = rawget(self, "inner").close
  if close then close(rawget(self, "inner")) else rawget(self, "inner"):cancel() end
end

Wrapped.__tostring = function(self)
  return "bitnet.tools." .. tostring(rawget(self, "inner"))
end

return M
