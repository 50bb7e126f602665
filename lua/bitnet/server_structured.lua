--- bitnet.server_structured: the OpenAI API's structured output and tool
-- fields for bitnet.server: response_format (json_object, json_schema),
-- tools, tool_choice, parallel_tool_calls mapped to model:generate /
-- model:chat options, and typed engine errors (bitnet.errors) mapped to
-- HTTP errors by kind. Plain Lua: the validators need no nginx. Every
-- function that refuses takes the server's fail(status, message, param,
-- code [, type]), which raises its request error.
--
-- bitnet.grammar and bitnet.tools are required where they are used: a
-- front nginx (openresty/front.conf) loads bitnet.server without
-- bitnet.core.
local errors = require("bitnet.errors")

local M = {}

local function is_null(v, null)
  return v == nil or (null ~= nil and v == null)
end

-- Lua option names as OpenAI's request fields.
local OPTION_FIELD = { json_schema = "response_format", json = "response_format", gbnf = "response_format",
  regex = "response_format" }

--- M.is_typed(e) -> boolean: whether e is a typed error (bitnet.errors).
function M.is_typed(e)
  return errors.kind(e) ~= nil
end

--- M.fail_typed(e, fail): raises the HTTP error of a typed error by its
-- kind: invalid_argument 400 naming the field, context_exceeded 400
-- context_length_exceeded, busy 503, any other 500.
function M.fail_typed(e, fail)
  local kind = errors.kind(e)
  if not kind then error(e, 0) end
  local msg = tostring(e.message):gsub("^model:%a+: ", "")
  if kind == "invalid_argument" then fail(400, msg, OPTION_FIELD[e.param] or e.param, "invalid_value") end
  if kind == "context_exceeded" then
    fail(400, "This model's maximum context length is exceeded: " .. msg, e.param, "context_length_exceeded")
  end
  if kind == "busy" then fail(503, "the server is busy: " .. msg, nil, "server_busy", "server_error") end
  fail(500, msg, e.param, "internal_error")
end

-- response_format -> opts.json ("object") / opts.json_schema (JSON text).
local function response_format(req, opts, null, fail)
  local rf = req.response_format
  if is_null(rf, null) then return end
  if type(rf) ~= "table" then fail(400, "'response_format' must be an object", "response_format", "invalid_type") end
  if rf.type == "text" then return end
  if rf.type == "json_object" then
    opts.json = "object"
    return
  end
  if rf.type ~= "json_schema" then
    fail(400, "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"", "response_format.type",
      "invalid_value")
  end
  local js = rf.json_schema
  if type(js) ~= "table" then
    fail(400, "'response_format.json_schema' must be an object { name, schema, strict }", "response_format.json_schema",
      "invalid_type")
  end
  for k in pairs(js) do
    if k ~= "name" and k ~= "schema" and k ~= "strict" and k ~= "description" then
      fail(400, ("'response_format.json_schema' has an unsupported field '%s'"):format(tostring(k)),
        "response_format.json_schema", "invalid_value")
    end
  end
  if type(js.name) ~= "string" or not js.name:match("^[%w_%-]+$") or #js.name > 64 then
    fail(400, "'response_format.json_schema.name' must be 1 to 64 letters, digits, underscores or dashes",
      "response_format.json_schema.name", "invalid_value")
  end
  if not is_null(js.strict, null) and type(js.strict) ~= "boolean" then
    fail(400, "'response_format.json_schema.strict' must be a boolean", "response_format.json_schema.strict", "invalid_type")
  end
  local schema = js.schema
  if is_null(schema, null) then schema = {} end -- OpenAI: no schema is any JSON
  if type(schema) ~= "table" and type(schema) ~= "boolean" then
    fail(400, "'response_format.json_schema.schema' must be a JSON Schema (an object)", "response_format.json_schema.schema",
      "invalid_type")
  end
  local ok, text = pcall(require("bitnet.grammar").encode_json, schema)
  if not ok then fail(400, "'response_format.json_schema.schema': " .. tostring(text), "response_format", "invalid_value") end
  opts.json_schema = text
end

-- tools, tool_choice, parallel_tool_calls -> the options of model:chat.
local function tool_options(req, opts, null, fail)
  local tools = require("bitnet.tools")
  local ok, e = pcall(function()
    local list = not is_null(req.tools, null) and tools.check(req.tools, null) or {}
    tools.choice(req.tool_choice, list, null)
    if #list > 0 then
      opts.tools = {}
      for i, t in ipairs(list) do
        local f = t.spec["function"]
        opts.tools[i] = { type = "function", ["function"] = { name = t.name, description = t.description,
          parameters = not is_null(f.parameters, null) and f.parameters or nil } }
      end
    end
    if not is_null(req.tool_choice, null) then opts.tool_choice = req.tool_choice end
  end)
  if not ok then M.fail_typed(e, fail) end
  local par = req.parallel_tool_calls
  if not is_null(par, null) then
    if type(par) ~= "boolean" then fail(400, "'parallel_tool_calls' must be a boolean", "parallel_tool_calls", "invalid_type") end
    if opts.tools then opts.parallel_tool_calls = par end
  end
end

-- With ctx.tokenizer and no tools, the grammar of opts.json /
-- opts.json_schema compiled compact (opts.grammar): no whitespace between
-- tokens, so a small model cannot spend its tokens on blanks.
local function compact_grammar(opts, ctx, fail)
  if not ctx.tokenizer or opts.tools or not (opts.json or opts.json_schema) then return end
  local g, err = require("bitnet.grammar").cached({ json = opts.json, json_schema = opts.json_schema,
    whitespace = "compact" }, ctx.tokenizer)
  if not g then fail(400, err, "response_format", "invalid_value") end
  opts.grammar, opts.json, opts.json_schema = g, nil, nil
end

--- M.apply(req, opts, ctx, fail, kind): maps a decoded request's
-- response_format (both kinds) and, for kind "chat", its tools,
-- tool_choice and parallel_tool_calls into opts. ctx: { null, tokenizer
-- (optional: then response_format becomes a compiled compact grammar) }.
function M.apply(req, opts, ctx, fail, kind)
  response_format(req, opts, ctx.null, fail)
  if kind == "chat" then tool_options(req, opts, ctx.null, fail) end
  compact_grammar(opts, ctx, fail)
end

--- M.keep_schema_text(req, body): marks the schemas of a decoded request
-- (response_format.json_schema.schema, tools[i].function.parameters) with
-- the JSON text they were decoded from (metatable __jsontext), so the
-- grammar follows their properties in the order the client wrote them
-- (lua-cjson's tables have no order). Text it cannot read is left alone.
function M.keep_schema_text(req, body)
  local ok, root = pcall(require("bitnet.tools").parse_json_prefix, body)
  if not ok or not root or not root.e or root.t ~= "object" then return end
  local function field(node, key)
    local found
    for _, f in ipairs(node and node.t == "object" and node.fields or {}) do
      if f.key == key then found = f.node end -- the last one, as the decoder keeps
    end
    return found
  end
  local function mark(value, node)
    if type(value) == "table" and node and node.e and node.t == "object" then
      setmetatable(value, { __jsontext = body:sub(node.s, node.e) })
    end
  end
  local rf = type(req.response_format) == "table" and type(req.response_format.json_schema) == "table"
  if rf then
    mark(req.response_format.json_schema.schema, field(field(field(root, "response_format"), "json_schema"), "schema"))
  end
  local list = field(root, "tools")
  if type(req.tools) == "table" and list and list.t == "array" then
    for i, t in ipairs(req.tools) do
      if type(t) == "table" and type(t["function"]) == "table" then
        mark(t["function"].parameters, field(field(list.items[i], "function"), "parameters"))
      end
    end
  end
end

return M
