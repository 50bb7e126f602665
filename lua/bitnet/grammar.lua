--- bitnet.grammar: structured output's Lua face. The engine is C
-- (csrc/grammar/, csrc/lua/lgrammar.c); this module turns a JSON Schema
-- given as a Lua table into JSON text and picks the grammar a generation
-- option names.
local core = require("bitnet.core")
local errors = require("bitnet.errors")

local M = {}

-- Keys whose value is always an array in JSON Schema, so an empty Lua
-- table there is [] (elsewhere an empty table is {}, an empty schema).
local ARRAY_KEYS = {
  required = true, enum = true, prefixItems = true, allOf = true, anyOf = true, oneOf = true,
  type = true, examples = true,
}

local function is_array(t, key)
  local mt = getmetatable(t)
  if mt and mt.__jsontype then return mt.__jsontype == "array" end
  local n = #t
  if n == 0 then return next(t) == nil and ARRAY_KEYS[key] == true end
  local count = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
    count = count + 1
  end
  return count == n
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function encode(v, key, depth, seen, out)
  local t = type(v)
  if depth > 200 then error("bitnet.grammar: the schema table nests more than 200 levels", 0) end
  if t == "table" then
    local mt = getmetatable(v)
    if mt and type(mt.__jsontext) == "string" then -- decoded from this text: keep its key order
      out[#out + 1] = mt.__jsontext
      return
    end
    if seen[v] then error("bitnet.grammar: the schema table contains a cycle", 0) end
    seen[v] = true
    if is_array(v, key) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], nil, depth + 1, seen, out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then
          error(("bitnet.grammar: schema object keys must be strings, got %s"):format(type(k)), 0)
        end
        keys[#keys + 1] = k
      end
      -- Lua tables have no order: properties come out sorted by name (give
      -- the schema as JSON text to keep an order of your own)
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = quote(k)
        out[#out + 1] = ":"
        encode(v[k], k, depth + 1, seen, out)
      end
      out[#out + 1] = "}"
    end
    seen[v] = nil
  elseif t == "string" then
    out[#out + 1] = quote(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      error("bitnet.grammar: a schema number must be finite", 0)
    end
    if math.type and math.type(v) == "integer" then out[#out + 1] = tostring(v)
    elseif v % 1 == 0 and v > -2^53 and v < 2^53 then out[#out + 1] = ("%d"):format(v)
    else out[#out + 1] = ("%.17g"):format(v) end
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif v == nil or (t == "userdata" and (tostring(v) == "userdata: (nil)" or tostring(v) == "userdata: NULL")) then
    -- (a NULL light userdata is lua-cjson's null: Lua 5.4 and LuaJIT print it differently)
    out[#out + 1] = "null"
  else
    error(("bitnet.grammar: a schema cannot hold a %s"):format(t), 0)
  end
end

--- grammar.encode_json(value) -> JSON text of a Lua value (tables as
-- objects or arrays as described at ARRAY_KEYS; object keys sorted). A
-- table whose metatable has __jsontext (the text it was decoded from) is
-- written as that text, so a schema keeps its properties' order.
function M.encode_json(value)
  local out = {}
  encode(value, nil, 0, {}, out)
  return table.concat(out)
end

--- bitnet.grammar(spec, tokenizer_or_model) -> Grammar | nil, message
-- spec: exactly one of json_schema (a Lua table or JSON text), gbnf (text,
-- with root = the start rule, default "root"), regex (an ECMA pattern the
-- whole text must match), json (true: any JSON value; "object": any JSON
-- object); options whitespace ("flexible" default, or "compact") and
-- max_whitespace (the most whitespace characters between two JSON tokens,
-- 0 = unbounded), openapi_nullable (true: "nullable": true beside "type"
-- also allows null, as OpenAPI 3.0 reads it; JSON Schema ignores it). A spec the engine cannot enforce returns nil and a
-- message naming the keyword and where it is; misuse raises.
function M.grammar(spec, tok)
  if type(spec) ~= "table" then
    error(("bitnet.grammar: spec must be a table, got %s"):format(type(spec)), 2)
  end
  if type(spec.json_schema) == "table" or type(spec.json_schema) == "boolean" then
    local copy = {}
    for k, v in pairs(spec) do copy[k] = v end
    copy.json_schema = M.encode_json(spec.json_schema)
    spec = copy
  end
  return core.grammar(spec, tok)
end

-- Compiled JSON grammars by tokenizer and spec: servers see the same
-- schemas again and again, and a Grammar is immutable and shareable.
local cache = setmetatable({}, { __mode = "k" })
local CACHE_MAX = 64

--- grammar.cached(spec, tok) -> Grammar | nil, message: M.grammar for a
-- spec of json_schema (JSON text) or json, and whitespace, from a cache of
-- up to 64 specs per tokenizer (emptied when full).
function M.cached(spec, tok)
  local key = ("%s\0%s\0%s"):format(tostring(spec.json), spec.whitespace or "flexible", spec.json_schema or "")
  local c = cache[tok]
  if not c then
    c = { n = 0, map = {} }
    cache[tok] = c
  end
  local g = c.map[key]
  if g then return g end
  local err
  g, err = M.grammar(spec, tok)
  if not g then return nil, err end
  if c.n >= CACHE_MAX then c.map, c.n = {}, 0 end
  c.map[key] = g
  c.n = c.n + 1
  return g
end

--- The option keys that name a grammar in generation calls.
M.OPTION_KEYS = { "grammar", "json_schema", "gbnf", "regex", "json" }

--- grammar.from_options(opts, tok, fname) -> Grammar or nil: the grammar a
-- generation's options ask for (grammar = a Grammar, or one of the
-- shortcuts json_schema / gbnf / regex / json = true); raises on a spec
-- that does not compile (it is the caller's request that is wrong) a typed
-- error (bitnet.errors) of kind invalid_argument whose param is the option.
function M.from_options(opts, tok, fname)
  local given = 0
  for _, k in ipairs(M.OPTION_KEYS) do
    if opts[k] ~= nil and opts[k] ~= false then given = given + 1 end
  end
  if given == 0 then return nil end
  if given > 1 then
    error(("%s: give only one of grammar, json_schema, gbnf, regex, json"):format(fname), 3)
  end
  if opts.grammar ~= nil then
    local ok = pcall(core.Grammar.n_vocab, opts.grammar)
    if not ok then error(("%s: option 'grammar' must be a bitnet.Grammar"):format(fname), 3) end
    return opts.grammar
  end
  local spec, which = {}, nil
  for _, k in ipairs({ "json_schema", "gbnf", "regex", "json" }) do
    spec[k] = opts[k]
    if opts[k] ~= nil and opts[k] ~= false then which = k end
  end
  local g, err = M.grammar(spec, tok)
  if not g then errors.raise("invalid_argument", ("%s: %s"):format(fname, err), which) end
  return g
end

return M
