--- bitnet.server: an OpenAI-compatible HTTP API inside nginx's Lua module
-- (OpenResty, or Debian's nginx + libnginx-mod-http-lua). openresty/nginx.conf
-- wires it up; `bitnet serve` writes that configuration and starts nginx.
--
--   POST /v1/completions, POST /v1/chat/completions (stream = true: server-sent
--   events ending with `data: [DONE]`), GET /v1/models[/ID], GET /health.
--
-- Each nginx worker loads the model once (init_worker) and runs every
-- generation on the model's engine (async = true), so the worker goes on
-- serving other connections while tokens are computed, and the engine batches
-- the worker's concurrent generations into one forward pass per step. The
-- handler polls its generation and sleeps 5 ms when nothing is new: nginx's
-- cosockets can only wait on sockets they own, not on the engine's eventfd
-- (gen:fd()), so a short timer is the only non-blocking wait available.
--
-- Admission: at most `slots` generations run per worker (the session pool's
-- size: each holds a KV-cache), at most `queue` more wait for a slot (FIFO,
-- at most `queue_timeout` seconds); beyond that a request gets 503 at once.
-- The pool gives each generation the slot caching the longest prefix of its
-- prompt, so a chat's next turn reuses the history already computed.
--
-- Request validation (M.completion_request, M.chat_request) is plain Lua and
-- needs no nginx; the rest uses the `ngx` API and lua-cjson.
local structured = require("bitnet.server_structured")

local M = {}

--- M.DEFAULTS: the settings init_worker accepts and their defaults.
-- model (a path; nil = the shipped model), name (the model id clients send;
-- default: the file name without .gguf), threads (0 = one per core), n_ctx
-- (each slot's context; nil = the model's), slots, queue, queue_timeout
-- (seconds), max_tokens (when a request gives none), instance (the value of
-- the X-Bitnet-Instance response header; nil = none).
M.DEFAULTS = {
  model = false, name = false, threads = 0, n_ctx = false, slots = 4, queue = 16, queue_timeout = 30,
  max_tokens = 256, instance = false,
}

-- ---- errors ----

local RequestError = {}

-- Raises an OpenAI-style error: status, message, param, code, type.
local function fail(status, message, param, code, etype)
  error(setmetatable({
    status = status, message = message, param = param, code = code,
    type = etype or (status >= 500 and "server_error" or "invalid_request_error"),
  }, RequestError), 0)
end

--- M.is_request_error(e) -> boolean: whether e is an error raised by the
-- validators (with fields status, message, param, code, type).
function M.is_request_error(e)
  return getmetatable(e) == RequestError
end

-- ---- validation ----

local function is_null(v, null)
  return v == nil or (null ~= nil and v == null)
end

local function finite(v)
  return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
end

local function integer(v)
  return finite(v) and v == math.floor(v)
end

local function number_in(req, key, lo, hi, null)
  local v = req[key]
  if is_null(v, null) then return nil end
  if not finite(v) or v < lo or v > hi then
    fail(400, ("'%s' must be a number between %s and %s"):format(key, lo, hi), key, "invalid_value")
  end
  return v
end

local function integer_in(req, key, lo, hi, null)
  local v = req[key]
  if is_null(v, null) then return nil end
  if not integer(v) or v < lo or (hi and v > hi) then
    fail(400, hi and ("'%s' must be an integer between %d and %d"):format(key, lo, hi)
      or ("'%s' must be an integer >= %d"):format(key, lo), key, "invalid_value")
  end
  return v
end

-- Fields both endpoints take; the value says how to read it.
local COMMON = {
  model = true, max_tokens = true, temperature = true, top_p = true, top_k = true, min_p = true,
  repeat_penalty = true, stop = true, seed = true, presence_penalty = true, frequency_penalty = true,
  logit_bias = true, n = true, stream = true, stream_options = true, user = true,
}
-- Fields accepted only with the value that means "off" (we cannot do more).
local OFF_ONLY = {
  completion = { echo = false, best_of = 1, logprobs = "null", suffix = "null" },
  chat = { logprobs = false, top_logprobs = "null" },
}
local ONLY = { completion = { prompt = true, response_format = true }, chat = { messages = true, max_completion_tokens = true,
  response_format = true, tools = true, tool_choice = true, parallel_tool_calls = true } }

local function check_off(req, key, want, null)
  local v = req[key]
  if is_null(v, null) or want == "any" then return end
  local ok
  if want == "null" then ok = false
  elseif want == "text" then ok = type(v) == "table" and v.type == "text"
  elseif want == "empty" then ok = type(v) == "table" and next(v) == nil
  else ok = v == want end
  if not ok then
    fail(400, ("'%s' is not supported by this server (only %s)"):format(key,
      want == "null" and "null" or want == "text" and '{"type": "text"}' or want == "empty" and "[]"
      or tostring(want)), key, "unsupported_parameter")
  end
end

local function check_stop(req, null)
  local v = req.stop
  if is_null(v, null) then return nil end
  if type(v) == "string" then
    if v == "" then fail(400, "'stop' must not be empty", "stop", "invalid_value") end
    return { v }
  end
  if type(v) ~= "table" or #v > 4 then
    fail(400, "'stop' must be a string or an array of at most 4 strings", "stop", "invalid_type")
  end
  for k in pairs(v) do
    if not integer(k) or k < 1 or k > #v then
      fail(400, "'stop' must be a string or an array of at most 4 strings", "stop", "invalid_type")
    end
  end
  local out = {}
  for i, s in ipairs(v) do
    if type(s) ~= "string" or s == "" then
      fail(400, ("'stop' entry %d must be a non-empty string"):format(i - 1), "stop", "invalid_value")
    end
    out[i] = s
  end
  return #out > 0 and out or nil
end

local function check_logit_bias(req, n_vocab, null)
  local v = req.logit_bias
  if is_null(v, null) then return nil end
  if type(v) ~= "table" then fail(400, "'logit_bias' must be an object of token id -> bias", "logit_bias", "invalid_type") end
  local out, any = {}, false
  for k, bias in pairs(v) do
    local id = tonumber(k)
    if not integer(id) or id < 0 or id >= n_vocab then
      fail(400, ("'logit_bias' key '%s' is not a token id (0..%d)"):format(tostring(k), n_vocab - 1),
        "logit_bias", "invalid_value")
    end
    if not finite(bias) or bias < -100 or bias > 100 then
      fail(400, ("'logit_bias' value for token %s must be a number between -100 and 100"):format(tostring(k)),
        "logit_bias", "invalid_value")
    end
    out[id] = bias <= -100 and -math.huge or bias -- -100 bans, as OpenAI documents
    any = true
  end
  return any and out or nil
end

-- ---- logprobs, n, echo (fields) ----

--- M.MAX_N: the most choices (`n`) a request may ask for.
M.MAX_N = 16

-- These fields are read by choice_fields, not refused as "off only".
for kind, keys in pairs({ completion = { "logprobs", "echo" }, chat = { "logprobs", "top_logprobs" } }) do
  for _, k in ipairs(keys) do
    OFF_ONLY[kind][k] = nil
    ONLY[kind][k] = true
  end
end

-- Maps n, logprobs, top_logprobs (chat; 0..20) and logprobs (completions,
-- the legacy integer 0..5), echo onto model:generate's n, logprobs and
-- prompt_logprobs; meta gets n (when > 1), logprobs (the k), echo and
-- choices (true: handle_choices answers) when they are asked for.
local function choice_fields(req, ctx, opts, meta)
  local null = ctx.null
  local n = req.n ~= nil and req.n ~= null and req.n or 1
  if n > 1 then opts.n, meta.n = n, n end
  if ctx.kind == "chat" then
    if not is_null(req.logprobs, null) and type(req.logprobs) ~= "boolean" then
      fail(400, "'logprobs' must be a boolean", "logprobs", "invalid_type")
    end
    local k = integer_in(req, "top_logprobs", 0, 20, null)
    if k and req.logprobs ~= true then
      fail(400, "'top_logprobs' needs 'logprobs' set to true", "top_logprobs", "invalid_value")
    end
    if req.logprobs == true then meta.logprobs = k or 0 end
  else
    meta.logprobs = integer_in(req, "logprobs", 0, 5, null)
    if not is_null(req.echo, null) and type(req.echo) ~= "boolean" then
      fail(400, "'echo' must be a boolean", "echo", "invalid_type")
    end
    meta.echo = req.echo == true or nil
    if meta.echo and meta.logprobs then
      if n > 1 then
        fail(400, "'echo' with 'logprobs' is supported with n = 1 only", "echo", "invalid_value")
      end
      opts.prompt_logprobs = meta.logprobs
    end
  end
  opts.logprobs = meta.logprobs
  if n > 1 or meta.logprobs or meta.echo then meta.choices = true end
end

-- The options of a request that both endpoints share; ctx: { kind, n_vocab,
-- model_id, max_tokens, null }. Returns opts (for model:generate/chat) and
-- meta { stream, include_usage }.
local function common(req, ctx)
  local null = ctx.null
  if type(req) ~= "table" or req[1] ~= nil then fail(400, "the request body must be a JSON object", nil, "invalid_type") end
  for k in pairs(req) do
    if type(k) ~= "string" or not (COMMON[k] or ONLY[ctx.kind][k] or OFF_ONLY[ctx.kind][k] ~= nil) then
      fail(400, ("Unrecognized request argument supplied: %s"):format(tostring(k)), tostring(k), "unknown_parameter")
    end
  end
  for key, want in pairs(OFF_ONLY[ctx.kind]) do check_off(req, key, want, null) end
  if not is_null(req.model, null) then
    if type(req.model) ~= "string" then fail(400, "'model' must be a string", "model", "invalid_type") end
    if ctx.model_id and req.model ~= ctx.model_id then
      fail(404, ("The model '%s' does not exist (this server has '%s')"):format(req.model, ctx.model_id),
        "model", "model_not_found")
    end
  end
  integer_in(req, "n", 1, M.MAX_N, null)
  if not is_null(req.stream, null) and type(req.stream) ~= "boolean" then
    fail(400, "'stream' must be a boolean", "stream", "invalid_type")
  end
  local stream = req.stream == true
  local include_usage = false
  if not is_null(req.stream_options, null) then
    local so = req.stream_options
    if not stream then fail(400, "'stream_options' is only allowed when 'stream' is true", "stream_options", "invalid_value") end
    if type(so) ~= "table" then fail(400, "'stream_options' must be an object", "stream_options", "invalid_type") end
    for k, v in pairs(so) do
      if k ~= "include_usage" or (v ~= null and type(v) ~= "boolean") then
        fail(400, ("'stream_options' has an unsupported key '%s'"):format(tostring(k)), "stream_options", "invalid_value")
      end
    end
    include_usage = so.include_usage == true
  end
  if not is_null(req.user, null) and type(req.user) ~= "string" then fail(400, "'user' must be a string", "user", "invalid_type") end
  local opts = {
    max_tokens = integer_in(req, "max_tokens", 0, nil, null),
    temperature = number_in(req, "temperature", 0, 2, null),
    top_p = number_in(req, "top_p", 0, 1, null),
    top_k = integer_in(req, "top_k", 0, nil, null),
    min_p = number_in(req, "min_p", 0, 1, null),
    repeat_penalty = number_in(req, "repeat_penalty", 0, 10, null),
    presence_penalty = number_in(req, "presence_penalty", -2, 2, null),
    frequency_penalty = number_in(req, "frequency_penalty", -2, 2, null),
    seed = integer_in(req, "seed", -2 ^ 53, 2 ^ 53, null),
    stop = check_stop(req, null),
    logit_bias = check_logit_bias(req, ctx.n_vocab or math.huge, null),
  }
  if ctx.kind == "chat" then
    local mct = integer_in(req, "max_completion_tokens", 0, nil, null)
    if mct and opts.max_tokens and mct ~= opts.max_tokens then
      fail(400, "give 'max_tokens' or 'max_completion_tokens', not both", "max_completion_tokens", "invalid_value")
    end
    opts.max_tokens = opts.max_tokens or mct
  end
  opts.max_tokens = opts.max_tokens or ctx.max_tokens
  return opts, { stream = stream, include_usage = include_usage }
end

--- M.completion_request(req, ctx) -> prompt, opts, meta: a decoded POST
-- /v1/completions body checked and mapped to model:generate's arguments.
-- ctx: { n_vocab, model_id, max_tokens (default), null (cjson.null), tokenizer
-- (optional: compiles response_format's grammar, compact) }.
-- response_format becomes the option json ("object") or json_schema.
-- Raises a request error (M.is_request_error) naming the field.
function M.completion_request(req, ctx)
  ctx = setmetatable({ kind = "completion" }, { __index = ctx })
  local opts, meta = common(req, ctx)
  structured.apply(req, opts, ctx, fail, "completion")
  local p = req.prompt
  if is_null(p, ctx.null) then fail(400, "'prompt' is required", "prompt", "missing_required_parameter") end
  local bad = "'prompt' must be a string, an array of one string, or an array of token ids"
  if type(p) == "table" then
    if #p == 1 and type(p[1]) == "string" then
      p = p[1]
    else
      if #p == 0 then fail(400, bad, "prompt", "invalid_type") end
      for k, id in pairs(p) do
        if not integer(k) or k < 1 or k > #p then fail(400, bad, "prompt", "invalid_type") end
        if type(id) == "string" then
          fail(400, "only one prompt per request is supported (use n for several completions)", "prompt",
            "invalid_value")
        end
        if not integer(id) or id < 0 or id >= (ctx.n_vocab or math.huge) then
          fail(400, ("'prompt' token %d is not a token id"):format(k - 1), "prompt", "invalid_value")
        end
      end
    end
  elseif type(p) ~= "string" then
    fail(400, bad, "prompt", "invalid_type")
  end
  choice_fields(req, ctx, opts, meta)
  return p, opts, meta
end

local ROLES = { system = "system", developer = "system", user = "user", assistant = "assistant", tool = "tool" }
-- Message fields beside role, content and name: which role may carry them.
local MESSAGE_TOOL_FIELDS = { tool_calls = "assistant", tool_call_id = "tool" }

--- M.chat_request(req, ctx) -> messages, opts, meta: a decoded POST
-- /v1/chat/completions body checked and mapped to model:chat's arguments
-- (text content parts are joined; "developer" is read as "system";
-- response_format, tools, tool_choice, parallel_tool_calls become the
-- options json / json_schema, tools, tool_choice, parallel_tool_calls).
function M.chat_request(req, ctx)
  ctx = setmetatable({ kind = "chat" }, { __index = ctx })
  local opts, meta = common(req, ctx)
  structured.apply(req, opts, ctx, fail, "chat")
  local msgs = req.messages
  if is_null(msgs, ctx.null) then fail(400, "'messages' is required", "messages", "missing_required_parameter") end
  if type(msgs) ~= "table" or #msgs == 0 then
    fail(400, "'messages' must be a non-empty array", "messages", "invalid_type")
  end
  local out = {}
  for i, m in ipairs(msgs) do
    local param = ("messages[%d]"):format(i - 1)
    if type(m) ~= "table" then fail(400, param .. " must be an object", param, "invalid_type") end
    for k in pairs(m) do
      if k ~= "role" and k ~= "content" and k ~= "name" and not (MESSAGE_TOOL_FIELDS[k] == m.role) then
        fail(400, ("%s has an unsupported field '%s'"):format(param, tostring(k)), param, "unsupported_parameter")
      end
    end
    local role = ROLES[m.role]
    if not role then
      fail(400, ("%s.role must be one of system, developer, user, assistant, tool"):format(param), param .. ".role",
        "invalid_value")
    end
    local content = m.content
    if type(content) == "table" then
      local parts = {}
      for j, part in ipairs(content) do
        if type(part) ~= "table" or part.type ~= "text" or type(part.text) ~= "string" then
          fail(400, ("%s.content[%d]: only text parts are supported"):format(param, j - 1), param .. ".content",
            "invalid_value")
        end
        parts[j] = part.text
      end
      content = table.concat(parts)
    end
    local calls = not is_null(m.tool_calls, ctx.null) and m.tool_calls or nil
    if calls and is_null(content, ctx.null) then content = nil
    elseif type(content) ~= "string" then
      fail(400, ("%s.content must be a string or an array of text parts"):format(param), param .. ".content",
        "invalid_type")
    end
    out[i] = { role = role, content = content, tool_calls = calls, tool_call_id = m.tool_call_id }
  end
  choice_fields(req, ctx, opts, meta)
  if meta.choices and opts.tools and opts.tool_choice ~= "none" then
    -- (tool calls are parsed on the one-choice path; n and logprobs run on another)
    fail(400, "'tools' with 'n' > 1 or 'logprobs' is not supported", "tools", "invalid_value")
  end
  return out, opts, meta
end

-- ---- nginx side ----

local ngx = rawget(_G, "ngx")
local state = nil -- this worker's: settings, model, pool, sema, waiting, load error

local function json()
  local cjson = require("cjson.safe")
  if cjson.encode_escape_forward_slash then cjson.encode_escape_forward_slash(false) end
  return cjson
end

local function model_id(settings, path)
  if settings.name then return settings.name end
  local base = (path or "model"):match("([^/]+)$") or path
  return (base:gsub("%.gguf$", ""))
end

--- M.init_worker(settings): loads the model and makes the session pool and
-- the admission queue of this worker (settings: see M.DEFAULTS). Called from
-- init_worker_by_lua; a load failure is logged and answered with 503.
function M.init_worker(settings)
  local s = {}
  for k, v in pairs(M.DEFAULTS) do s[k] = v end
  for k, v in pairs(settings or {}) do
    if M.DEFAULTS[k] == nil then error(("bitnet.server: unknown setting '%s'"):format(tostring(k)), 2) end
    s[k] = v
  end
  for k, v in pairs(s) do if v == false then s[k] = nil end end
  state = { settings = s, waiting = 0, running = 0, served = 0, aborted = 0, cancelled = 0, refused = 0 }
  M.configure_worker(state)
  local bitnet = require("bitnet")
  local model, err = bitnet.load(s.model or nil, { threads = s.threads })
  if not model then
    state.load_error = err
    ngx.log(ngx.ERR, "bitnet: cannot load the model: ", err)
    return
  end
  local has_tok, tok = pcall(model.tokenizer, model)
  if not has_tok then
    state.load_error = "the model has no tokenizer, and the API is text in, text out: " .. tostring(tok)
    ngx.log(ngx.ERR, "bitnet: ", state.load_error)
    return
  end
  state.model = model
  state.path = model:info().path
  state.id = model_id(s, s.model or state.path)
  state.n_vocab = tok:n_vocab()
  state.n_embd = model:info().n_embd
  state.tokenizer = tok
  state.pool = model:session_pool({ slots = s.slots, n_ctx = s.n_ctx })
  state.sema = require("ngx.semaphore").new(s.slots)
end

local function send_json(status, body)
  local cjson = json()
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(cjson.encode(body))
  return ngx.exit(status)
end

local function send_error(e)
  local cjson = json()
  if e.status == 503 then ngx.header["Retry-After"] = "1" end
  return send_json(e.status, { error = {
    message = e.message, type = e.type, param = e.param or cjson.null, code = e.code or cjson.null,
  } })
end

local function request_id(prefix)
  return ("%s-%x%x%04x"):format(prefix, ngx.worker.pid(), math.floor(ngx.now() * 1000), math.random(0, 0xffff))
end

local function read_json_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    if ngx.req.get_body_file() then fail(413, "the request body is too large", nil, "request_too_large") end
    fail(400, "the request needs a JSON body", nil, "invalid_json")
  end
  local req, err = json().decode(body)
  if req == nil then fail(400, "the body is not valid JSON: " .. tostring(err), nil, "invalid_json") end
  if type(req) == "table" then structured.keep_schema_text(req, body) end
  return req
end

-- Waits for a generation slot (FIFO, bounded); raises 503 when the queue is
-- full or the wait timed out.
local function admit()
  local s = state.settings
  if state.sema:count() <= 0 and state.waiting >= s.queue then
    state.refused = state.refused + 1
    fail(503, ("the server is busy: %d generations running and %d waiting (queue full)"):format(
      state.running, state.waiting), nil, "server_busy", "server_error")
  end
  state.waiting = state.waiting + 1
  local ok, err = state.sema:wait(s.queue_timeout)
  state.waiting = state.waiting - 1
  if not ok then
    state.refused = state.refused + 1
    fail(503, ("the server is busy: no generation slot within %g s (%s)"):format(s.queue_timeout, tostring(err)),
      nil, "server_busy", "server_error")
  end
  state.running = state.running + 1
  ngx.ctx.bitnet_admitted = ngx.now()
end

local function release()
  state.running = state.running - 1
  state.sema:post(1)
end

local function usage(info)
  return {
    prompt_tokens = info.prompt_tokens, completion_tokens = info.completion_tokens,
    total_tokens = info.prompt_tokens + info.completion_tokens,
    prompt_tokens_details = { cached_tokens = info.cached_tokens or 0 },
  }
end

local FINISH = { stop = "stop", length = "length", cancelled = "stop", tool_calls = "tool_calls" }

-- Starts the generation on the engine; maps the module's errors.
local function start(kind, input, opts)
  opts.async, opts.pool = true, state.pool
  local ok, gen = pcall(kind == "chat" and state.model.chat or state.model.generate, state.model, input, opts)
  if ok then
    ngx.ctx.bitnet_gen = gen -- for the metrics (M.log)
    return gen
  end
  if structured.is_typed(gen) then structured.fail_typed(gen, fail) end
  local msg = tostring(gen):gsub("^.-model:%a+: ", "")
  ngx.log(ngx.ERR, "bitnet: ", tostring(gen))
  fail(500, "the generation could not start: " .. msg, nil, "internal_error")
end

-- Runs one generation to its end, calling emit(piece) for each new piece
-- and side() (when given) after each poll; either returns false when the
-- client is gone. Cancels on abort.
local function drive(gen, emit, aborted, side)
  while true do
    if aborted.yes then gen:cancel() end
    local piece = gen:poll()
    if side and not aborted.yes and side() == false then aborted.yes = true end
    if piece == nil then return end
    if piece ~= "" then
      if not aborted.yes and emit(piece) == false then aborted.yes = true end
    else
      ngx.sleep(0.005) -- cosockets cannot watch the engine's eventfd: a short timer yields instead
    end
  end
end

-- Lets go of a generation without blocking the worker: a cancelled one keeps
-- the engine (and its pool slot) until the engine's current step ends, which
-- gen:close() would wait for (a 64-token prompt chunk of a 2B model is a
-- few hundred ms), so wait (yielding) until gen:released(), at most 10 s,
-- then close.
local function settle(gen)
  for _ = 1, 2000 do
    if gen:released() then break end
    ngx.sleep(0.005)
  end
  gen:close()
end

local function sse(cjson, obj)
  local ok = ngx.print("data: ", type(obj) == "string" and obj or cjson.encode(obj), "\n\n")
  if not ok then return false end
  local flushed = ngx.flush(true)
  return flushed ~= nil
end

-- A generation that ended in an error: the request's fault (a typed
-- invalid_argument: a grammar past its budget, a logit_bias banning every
-- token the grammar allows) is a 400, anything else a 500. Streamed, the
-- status is sent already: the error goes as an event, then [DONE].
local function generation_failed(cjson, err, streamed)
  local request = structured.is_typed(err) and err.kind == "invalid_argument"
  local msg = (request and "" or "generation failed: ") .. tostring(err)
  if streamed then
    sse(cjson, { error = { message = msg, type = request and "invalid_request_error" or "server_error",
      param = cjson.null, code = request and "invalid_value" or "internal_error" } })
    sse(cjson, "[DONE]")
    return
  end
  if request then structured.fail_typed(err, fail) end
  fail(500, msg, nil, "internal_error")
end

-- ---- logprobs, n, echo (responses) ----

-- Debian's lua-cjson has no empty-array marker: this string stands for []
-- until encode() replaces it.
local EMPTY_ARRAY = "\1[]\1"

local function encode(cjson, obj)
  return (cjson.encode(obj):gsub('"\\u0001%[%]\\u0001"', "[]"))
end

local function array(t)
  return #t > 0 and t or EMPTY_ARRAY
end

-- JSON has no -inf: a token the distribution excludes gets OpenAI's -9999.
local function json_logprob(v)
  return (v ~= v or v < -9999) and -9999 or v
end

-- A token's text (whole UTF-8) and bytes.
local function token_text(tok, id)
  local piece = tok:piece(id)
  local bytes = { piece:byte(1, -1) }
  return require("bitnet.generate").valid_utf8(piece), bytes
end

-- Chat's logprobs.content entries for records r[from..to].
local function chat_logprobs(tok, records, from, to)
  local content = {}
  for i = from, to do
    local r = records[i]
    local text, bytes = token_text(tok, r.id)
    local top = {}
    for j, t in ipairs(r.top or {}) do
      local ttext, tbytes = token_text(tok, t.id)
      top[j] = { token = ttext, logprob = json_logprob(t.logprob), bytes = array(tbytes) }
    end
    content[#content + 1] = { token = text, logprob = json_logprob(r.logprob), bytes = array(bytes),
      top_logprobs = array(top) }
  end
  return { content = array(content) }
end

local LEGACY_KEYS = { "tokens", "token_logprobs", "top_logprobs", "text_offset" }

-- The legacy object's lists as JSON arrays, empty ones included.
local function legacy_arrays(lp)
  if type(lp) ~= "table" or lp.tokens == nil then return lp end -- null, or chat's
  for _, k in ipairs(LEGACY_KEYS) do lp[k] = array(lp[k]) end
  return lp
end

-- The legacy completions logprobs object for records r[from..to] whose
-- text starts at byte `offset` of the choice's text (plain lists: see
-- legacy_arrays); returns it and the offset after. A record without `top`
-- (the prompt's first token) has null logprob and top_logprobs.
local function legacy_logprobs(cjson, tok, records, from, to, offset)
  local out = { tokens = {}, token_logprobs = {}, top_logprobs = {}, text_offset = {} }
  for i = from, to do
    local r = records[i]
    local text = token_text(tok, r.id)
    local n = #out.tokens + 1
    out.tokens[n], out.text_offset[n] = text, offset
    if r.top then
      out.token_logprobs[n] = json_logprob(r.logprob)
      local top = {}
      for _, t in ipairs(r.top) do top[token_text(tok, t.id)] = json_logprob(t.logprob) end
      out.top_logprobs[n] = top -- {} encodes as an object
    else
      out.token_logprobs[n], out.top_logprobs[n] = cjson.null, cjson.null
    end
    offset = offset + #text
  end
  return out, offset
end

-- One running generation seen as choices (the interface of bitnet.choices).
local function one_choice(gen)
  return {
    n = 1, gens = { gen },
    poll = function(self)
      local piece = gen:poll()
      if piece == nil then
        self.infos = { gen.info }
        return nil
      end
      return { piece }
    end,
    cancel = function() gen:cancel() end,
    released = function() return gen:released() end,
    close = function() gen:close() end,
  }
end

-- The text echo puts first: the prompt as given (token ids decoded).
local function echo_text(input, tok)
  if type(input) == "string" then return input end
  return require("bitnet.generate").valid_utf8(tok:decode(input, { special = true }))
end

-- Runs body(aborted, track, id, created, object) holding a slot: track(r)
-- names what a client leaving cancels (a generation or a set of choices),
-- settled before the slot is released; the request's counters, a body's
-- error re-raised, 499 for a client gone.
local function serve_admitted(kind, body)
  local aborted, running = { yes = false }, nil
  -- nil when lua_check_client_abort is off: then a failed flush still cancels
  ngx.on_abort(function()
    aborted.yes = true
    if running then running:cancel() end
  end)
  admit()
  local function track(r)
    running = r
    if aborted.yes then r:cancel() end
  end
  local ok, err = pcall(function()
    local object = kind == "chat" and "chat.completion" or "text_completion"
    body(aborted, track, request_id(kind == "chat" and "chatcmpl" or "cmpl"), ngx.time(), object)
  end)
  if running then settle(running) end
  release()
  state.served = state.served + 1
  if aborted.yes then state.aborted = state.aborted + 1 end
  if running and running.info and running.info.finish_reason == "cancelled" then state.cancelled = state.cancelled + 1 end
  if not ok then error(err, 0) end
  if aborted.yes then return ngx.exit(499) end
end

-- Completions and chats with n > 1, logprobs or echo: each choice streamed
-- with its index (or returned together), logprobs per token, usage counting
-- the prompt once.
local function handle_choices(kind, input, opts, meta)
  local cjson = json()
  local tok = state.model:tokenizer()
  return serve_admitted(kind, function(aborted, track, id, created, object)
    local gen = start(kind, input, opts)
    local run = gen.gens and gen or one_choice(gen)
    track(run)
    local n, chat = meta.n or 1, kind == "chat"
    local texts, sent, offsets, echoed = {}, {}, {}, {}
    for i = 1, n do texts[i], sent[i], offsets[i] = {}, 0, 0 end
    local prefix = meta.echo and echo_text(input, tok) or nil
    -- the logprobs of choice i's tokens taken since the last call
    local function fresh_logprobs(i)
      local g = run.gens[i]
      local records = g and g.logprobs
      if not meta.logprobs or not records then return cjson.null end
      local from, to = sent[i] + 1, #records
      sent[i] = to
      if chat then return chat_logprobs(tok, records, from, to) end
      local lp
      lp, offsets[i] = legacy_logprobs(cjson, tok, records, from, to, offsets[i])
      return lp
    end
    -- echo: the prompt's text (and its logprobs) before choice i's own
    local function echo_part(i)
      if not prefix or echoed[i] then return nil end
      local g = run.gens[i]
      if meta.logprobs and not (g and g.prompt_logprobs) then return nil end -- not evaluated yet
      echoed[i] = true
      local lp = cjson.null
      if meta.logprobs then
        local records = {}
        for j, r in ipairs(g.prompt_logprobs) do
          if not (j == 1 and r.id == tok:bos()) then records[#records + 1] = r end -- BOS is not text
        end
        lp, offsets[i] = legacy_logprobs(cjson, tok, records, 1, #records, 0)
      else
        offsets[i] = #prefix
      end
      return prefix, lp
    end
    local function chunk(i, delta_or_text, logprobs, finish)
      local choice = { index = i - 1, logprobs = logprobs or cjson.null, finish_reason = finish or cjson.null }
      if chat then choice.delta = delta_or_text else choice.text = delta_or_text end
      local c = { id = id, object = object .. (chat and ".chunk" or ""), created = created, model = state.id,
        choices = { choice } }
      if meta.include_usage then c.usage = cjson.null end
      return encode(cjson, c)
    end
    local function send(i, piece)
      if not meta.stream then
        texts[i][#texts[i] + 1] = piece
        return true
      end
      return sse(cjson, chunk(i, chat and { content = piece } or piece, legacy_arrays(fresh_logprobs(i))))
    end
    if meta.stream then
      ngx.header["Content-Type"] = "text/event-stream"
      ngx.header["Cache-Control"] = "no-cache"
      ngx.header["X-Accel-Buffering"] = "no"
      if chat then
        for i = 1, n do
          if not sse(cjson, chunk(i, { role = "assistant", content = "" })) then aborted.yes = true end
        end
      end
    end
    while true do
      if aborted.yes then run:cancel() end
      local pieces = run:poll()
      if pieces == nil then break end
      local any = false
      for i, piece in ipairs(pieces) do
        local text, lp
        if meta.stream then text, lp = echo_part(i) end -- else the response puts it first
        if text and not aborted.yes and not sse(cjson, chunk(i, text, legacy_arrays(lp))) then aborted.yes = true end
        if piece and piece ~= "" then
          any = true
          if not aborted.yes and not send(i, piece) then aborted.yes = true end
        end
      end
      if not any then ngx.sleep(0.005) end -- cosockets cannot watch the engine: a short timer
    end
    if aborted.yes then return end
    local infos, completion = run.infos, 0
    for _, info in ipairs(infos) do
      if info.finish_reason == "error" then return generation_failed(cjson, info.error or run.error, meta.stream) end
      completion = completion + info.completion_tokens
    end
    local use = usage({ prompt_tokens = infos[1].prompt_tokens, completion_tokens = completion,
      cached_tokens = infos[1].cached_tokens })
    if meta.stream then
      for i = 1, n do
        local text, lp = echo_part(i) -- a choice that ended before a token
        if text then sse(cjson, chunk(i, text, legacy_arrays(lp))) end
        local rest = legacy_arrays(fresh_logprobs(i))
        sse(cjson, chunk(i, chat and {} or "", rest, FINISH[infos[i].finish_reason]))
      end
      if meta.include_usage then
        sse(cjson, '{"choices":[],' .. cjson.encode({ id = id, object = object .. (chat and ".chunk" or ""),
          created = created, model = state.id, usage = use }):sub(2))
      end
      sse(cjson, "[DONE]")
      return
    end
    local choices = {}
    for i = 1, n do
      local text, lp = echo_part(i)
      local body = table.concat(texts[i])
      local own = fresh_logprobs(i)
      if lp ~= nil and lp ~= cjson.null and own ~= cjson.null then -- the prompt's records, then the choice's
        for _, k in ipairs(LEGACY_KEYS) do
          for _, v in ipairs(own[k]) do lp[k][#lp[k] + 1] = v end
        end
        own = lp
      end
      local choice = { index = i - 1, logprobs = legacy_arrays(own), finish_reason = FINISH[infos[i].finish_reason] }
      if chat then choice.message = { role = "assistant", content = body }
      else choice.text = (text or "") .. body end
      choices[i] = choice
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.print(encode(cjson, { id = id, object = object, created = created, model = state.id, choices = choices,
      usage = use }))
  end)
end

-- The call deltas a tool generation decided since the last call, as
-- OpenAI's chunks: { index, id, type, function = { name, arguments = "" } }
-- when a call starts, then { index, function = { arguments } } fragments.
-- Returns false when the client is gone.
local function send_tool_deltas(cjson, gen, chunk)
  for _, d in ipairs(gen:tool_deltas()) do
    local call = { index = d.index }
    if d.name then
      call.id, call.type, call["function"] = d.id, "function", { name = d.name, arguments = "" }
    else
      call["function"] = { arguments = d.arguments }
    end
    if not sse(cjson, chunk({ tool_calls = { call } })) then return false end
  end
  return true
end

local function handle_generation(kind)
  if not state.model then fail(503, "the model is not loaded: " .. tostring(state.load_error), nil, "model_not_loaded") end
  local cjson = json()
  local req = read_json_body()
  local ctx = { n_vocab = state.n_vocab, model_id = state.id, max_tokens = state.settings.max_tokens, null = cjson.null,
    tokenizer = state.tokenizer }
  local input, opts, meta
  if kind == "chat" then input, opts, meta = M.chat_request(req, ctx)
  else input, opts, meta = M.completion_request(req, ctx) end
  if meta.choices then return handle_choices(kind, input, opts, meta) end

  return serve_admitted(kind, function(aborted, track, id, created, object)
    local gen = start(kind, input, opts)
    track(gen)
    if meta.stream then
      ngx.header["Content-Type"] = "text/event-stream"
      ngx.header["Cache-Control"] = "no-cache"
      ngx.header["X-Accel-Buffering"] = "no"
      local function chunk(delta_or_text, finish)
        local choice = { index = 0, logprobs = cjson.null, finish_reason = finish or cjson.null }
        if kind == "chat" then choice.delta = delta_or_text else choice.text = delta_or_text end
        local c = { id = id, object = object .. (kind == "chat" and ".chunk" or ""), created = created,
          model = state.id, choices = { choice } }
        if meta.include_usage then c.usage = cjson.null end
        return c
      end
      if kind == "chat" and not sse(cjson, chunk({ role = "assistant", content = "" })) then aborted.yes = true end
      drive(gen, function(piece)
        return sse(cjson, chunk(kind == "chat" and { content = piece } or piece))
      end, aborted, gen.tool_deltas and function() return send_tool_deltas(cjson, gen, chunk) end)
      if aborted.yes then return end
      local info = gen.info
      if info.finish_reason == "error" then
        return generation_failed(cjson, gen.error, true)
      else
        sse(cjson, chunk(kind == "chat" and {} or "", FINISH[info.finish_reason])) -- {} encodes as an object
        if meta.include_usage then
          -- Debian's lua-cjson has no empty_array: "choices": [] is spliced in
          sse(cjson, '{"choices":[],' .. cjson.encode({ id = id, object = object .. (kind == "chat" and ".chunk" or ""),
            created = created, model = state.id, usage = usage(info) }):sub(2))
        end
      end
      sse(cjson, "[DONE]")
    else
      local parts = {}
      drive(gen, function(piece) parts[#parts + 1] = piece end, aborted)
      if aborted.yes then return end
      local info = gen.info
      if info.finish_reason == "error" then generation_failed(cjson, gen.error, false) end
      local text = table.concat(parts)
      local choice = { index = 0, logprobs = cjson.null, finish_reason = FINISH[info.finish_reason] }
      if kind == "chat" then
        choice.message = { role = "assistant", content = (info.tool_calls and text == "") and cjson.null or text,
          tool_calls = info.tool_calls }
      else
        choice.text = text
      end
      ngx.header["Content-Type"] = "application/json"
      ngx.print(cjson.encode({ id = id, object = object, created = created, model = state.id,
        choices = { choice }, usage = usage(info) }))
    end
  end)
end

local function handle_models(id)
  if not state.id then fail(503, "the model is not loaded: " .. tostring(state.load_error), nil, "model_not_loaded") end
  local entry = { id = state.id, object = "model", created = 0, owned_by = "bitnet" }
  if id then
    if id ~= state.id then fail(404, ("The model '%s' does not exist"):format(id), "model", "model_not_found") end
    return send_json(200, entry)
  end
  return send_json(200, { object = "list", data = { entry } })
end

local function handle_health()
  local body = { status = state.model and "ok" or "error", model = state.id, instance = state.settings.instance,
    worker = ngx.worker.pid(), running = state.running, waiting = state.waiting,
    slots = state.settings.slots, queue = state.settings.queue, served = state.served,
    aborted = state.aborted, cancelled = state.cancelled, refused = state.refused }
  if state.pool then body.pool = state.pool:stats() end
  if not state.model then body.error = tostring(state.load_error) end
  return send_json(state.model and 200 or 503, body)
end

local ROUTES = {
  ["/v1/completions"] = { POST = function() return handle_generation("completion") end },
  ["/v1/chat/completions"] = { POST = function() return handle_generation("chat") end },
  ["/v1/models"] = { GET = function() return handle_models() end },
  ["/health"] = { GET = handle_health },
}

-- ---- embeddings, tokenize, detokenize, metrics, API keys ----

--- M.MAX_EMBEDDING_INPUTS: the most inputs one /v1/embeddings request may hold (OpenAI's bound).
M.MAX_EMBEDDING_INPUTS = 2048

local EMBEDDING_FIELDS = { model = true, input = true, encoding_format = true, dimensions = true, user = true }

--- M.embeddings_request(req, ctx) -> inputs, meta: a decoded POST
-- /v1/embeddings body checked: inputs for model:embed (a list of strings
-- and token-id lists), meta { single, base64 }. ctx: { n_vocab, n_embd,
-- model_id, null }. Raises a request error naming the field.
function M.embeddings_request(req, ctx)
  local null = ctx.null
  if type(req) ~= "table" or req[1] ~= nil then fail(400, "the request body must be a JSON object", nil, "invalid_type") end
  for k in pairs(req) do
    if not EMBEDDING_FIELDS[k] then
      fail(400, ("Unrecognized request argument supplied: %s"):format(tostring(k)), tostring(k), "unknown_parameter")
    end
  end
  if not is_null(req.model, null) then
    if type(req.model) ~= "string" then fail(400, "'model' must be a string", "model", "invalid_type") end
    if ctx.model_id and req.model ~= ctx.model_id then
      fail(404, ("The model '%s' does not exist (this server has '%s')"):format(req.model, ctx.model_id),
        "model", "model_not_found")
    end
  end
  local fmt = is_null(req.encoding_format, null) and "float" or req.encoding_format
  if fmt ~= "float" and fmt ~= "base64" then
    fail(400, "'encoding_format' must be \"float\" or \"base64\"", "encoding_format", "invalid_value")
  end
  if not is_null(req.dimensions, null) and req.dimensions ~= ctx.n_embd then
    fail(400, ("'dimensions' cannot be %s: this model's embeddings have %d dimensions"):format(
      tostring(req.dimensions), ctx.n_embd), "dimensions", "invalid_value")
  end
  local input = req.input
  if is_null(input, null) then fail(400, "'input' is required", "input", "missing_required_parameter") end
  local bad = "'input' must be a string, an array of strings, an array of token ids, or an array of such arrays"
  local function ids_of(list, where)
    if #list == 0 then fail(400, ("'%s' must not be empty"):format(where), "input", "invalid_value") end
    for k, id in pairs(list) do
      if not integer(k) or k < 1 or k > #list or not integer(id) or id < 0 or id >= (ctx.n_vocab or math.huge) then
        fail(400, ("'%s' holds something that is not a token id (0..%d)"):format(where, (ctx.n_vocab or 0) - 1),
          "input", "invalid_value")
      end
    end
    return list
  end
  if type(input) == "string" then
    if input == "" then fail(400, "'input' must not be an empty string", "input", "invalid_value") end
    return { input }, { single = true, base64 = fmt == "base64" }
  end
  if type(input) ~= "table" then fail(400, bad, "input", "invalid_type") end
  if #input == 0 then fail(400, "'input' must not be empty", "input", "invalid_value") end
  if #input > M.MAX_EMBEDDING_INPUTS then
    fail(400, ("'input' holds %d items: at most %d per request"):format(#input, M.MAX_EMBEDDING_INPUTS), "input",
      "invalid_value")
  end
  if type(input[1]) == "number" then return { ids_of(input, "input") }, { single = true, base64 = fmt == "base64" } end
  local out = {}
  for k, v in pairs(input) do
    if not integer(k) or k < 1 or k > #input then fail(400, bad, "input", "invalid_type") end
    local where = ("input[%d]"):format(k - 1)
    if type(v) == "string" then
      if v == "" then fail(400, ("'%s' must not be an empty string"):format(where), "input", "invalid_value") end
      out[k] = v
    elseif type(v) == "table" then
      out[k] = ids_of(v, where)
    else
      fail(400, bad, "input", "invalid_type")
    end
  end
  return out, { single = false, base64 = fmt == "base64" }
end

-- Little-endian float32 bytes of a vector, base64 (what the openai SDK
-- decodes by default).
local function base64_floats(v)
  local ok, ffi = pcall(require, "ffi")
  local bytes
  if ok then
    local buf = ffi.new("float[?]", #v)
    for i, x in ipairs(v) do buf[i - 1] = x end
    bytes = ffi.string(buf, 4 * #v) -- x86 and ARM Linux: little-endian
  else
    local parts = {}
    for i, x in ipairs(v) do parts[i] = string.pack("<f", x) end
    bytes = table.concat(parts)
  end
  return ngx.encode_base64(bytes)
end

local function handle_embeddings()
  if not state.model then fail(503, "the model is not loaded: " .. tostring(state.load_error), nil, "model_not_loaded") end
  local cjson = json()
  local req = read_json_body()
  local inputs, meta = M.embeddings_request(req, { n_vocab = state.n_vocab, n_embd = state.n_embd,
    model_id = state.id, null = cjson.null })
  admit()
  local job
  local ok, err = pcall(function()
    local started, h = pcall(state.model.embed, state.model, inputs,
      { async = true, pooling = state.settings.pooling })
    if not started then
      if structured.is_typed(h) then structured.fail_typed(h, fail) end
      fail(400, (tostring(h):gsub("^.-model:embed: ", "")), "input", "invalid_value")
    end
    job = h
    while not h:poll() do ngx.sleep(0.005) end
    if h.error then fail(500, "embedding failed: " .. h.error, nil, "internal_error") end
    local data = {}
    for i, v in ipairs(h.vectors) do
      data[i] = { object = "embedding", index = i - 1, embedding = meta.base64 and base64_floats(v) or v }
    end
    ngx.ctx.bitnet_usage = { prompt_tokens = h.info.prompt_tokens, completion_tokens = 0 }
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cjson.encode({ object = "list", data = data, model = state.id,
      usage = { prompt_tokens = h.info.prompt_tokens, total_tokens = h.info.prompt_tokens } }))
  end)
  if job then job:close() end
  release()
  if not ok then error(err, 0) end
end

-- A JSON body's field that must be a boolean, or its default.
local function flag(req, key, default, null)
  local v = req[key]
  if is_null(v, null) then return default end
  if type(v) ~= "boolean" then fail(400, ("'%s' must be a boolean"):format(key), key, "invalid_type") end
  return v
end

-- POST /tokenize { content, add_special = false, with_pieces = false } ->
-- { tokens } (llama-server's): ids, or { id, piece } with with_pieces.
local function handle_tokenize()
  if not state.model then fail(503, "the model is not loaded: " .. tostring(state.load_error), nil, "model_not_loaded") end
  local cjson = json()
  local req = read_json_body()
  if type(req) ~= "table" or type(req.content) ~= "string" then
    fail(400, "'content' must be a string", "content", "invalid_type")
  end
  local tok = state.model:tokenizer()
  local ids = tok:encode(req.content, { bos = flag(req, "add_special", false, cjson.null), special = true })
  local out = {}
  for i, id in ipairs(ids) do
    out[i] = flag(req, "with_pieces", false, cjson.null)
      and { id = id, piece = require("bitnet.generate").valid_utf8(tok:piece(id)) } or id
  end
  return send_json(200, { tokens = #out > 0 and out or nil }) -- absent when empty: lua-cjson would write {}
end

-- POST /detokenize { tokens } -> { content }.
local function handle_detokenize()
  if not state.model then fail(503, "the model is not loaded: " .. tostring(state.load_error), nil, "model_not_loaded") end
  local req = read_json_body()
  local ids = type(req) == "table" and req.tokens
  if type(ids) ~= "table" then fail(400, "'tokens' must be an array of token ids", "tokens", "invalid_type") end
  for k, id in pairs(ids) do
    if not integer(k) or k < 1 or k > #ids or not integer(id) or id < 0 or id >= state.n_vocab then
      fail(400, ("'tokens' holds something that is not a token id (0..%d)"):format(state.n_vocab - 1), "tokens",
        "invalid_value")
    end
  end
  local text = state.model:tokenizer():decode(ids, { special = true })
  return send_json(200, { content = require("bitnet.generate").valid_utf8(text) })
end

-- Metrics live in the shared dict bitnet_metrics (lua_shared_dict in
-- nginx.conf), so every worker adds to the same figures.
local HISTOGRAMS = {
  time_to_first_token_seconds = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 },
  seconds_per_token = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1 },
}

local function metrics_dict()
  return state.settings.metrics and ngx.shared and ngx.shared.bitnet_metrics
end

local function observe(dict, name, v)
  for _, le in ipairs(HISTOGRAMS[name]) do
    if v <= le then dict:incr(("%s_bucket{le=\"%s\"}"):format(name, le), 1, 0) end
  end
  dict:incr(name .. '_bucket{le="+Inf"}', 1, 0)
  dict:incr(name .. "_count", 1, 0)
  dict:incr(name .. "_sum", v, 0)
end

--- M.log(): after every request (log_by_lua_block): adds its counts to the
-- shared metrics when they are on (--metrics).
function M.log()
  local dict = state and metrics_dict()
  if not dict then return end
  local uri, t0 = ngx.var.uri, ngx.req.start_time()
  dict:incr(("requests_total{endpoint=\"%s\",status=\"%d\"}"):format(uri, ngx.status or 0), 1, 0)
  local gen = ngx.ctx.bitnet_gen
  local infos = gen and (gen.infos or (gen.info and { gen.info })) or {}
  local u = ngx.ctx.bitnet_usage
  if u then dict:incr("prompt_tokens_total", u.prompt_tokens, 0) end
  for i, info in ipairs(infos) do
    if i == 1 then
      dict:incr("prompt_tokens_total", info.prompt_tokens or 0, 0)
      dict:incr("cached_prompt_tokens_total", info.cached_tokens or 0, 0)
      if (info.cached_tokens or 0) > 0 then dict:incr("cache_hits_total", 1, 0) end
      local admitted = ngx.ctx.bitnet_admitted
      if admitted and (info.completion_tokens or 0) > 0 then
        observe(dict, "time_to_first_token_seconds", admitted - t0 + (info.prefill_seconds or 0))
      end
    end
    local n = info.completion_tokens or 0
    dict:incr("generated_tokens_total", n, 0)
    if n > 0 and (info.decode_seconds or 0) > 0 then observe(dict, "seconds_per_token", info.decode_seconds / n) end
  end
end

local METRIC_HELP = {
  { "requests_total", "counter", "requests answered, by endpoint and status" },
  { "prompt_tokens_total", "counter", "prompt tokens of generations and embeddings" },
  { "cached_prompt_tokens_total", "counter", "prompt tokens reused from the session pool" },
  { "cache_hits_total", "counter", "generations that reused part of their prompt" },
  { "generated_tokens_total", "counter", "tokens generated" },
  { "time_to_first_token_seconds", "histogram", "queue wait plus prompt evaluation" },
  { "seconds_per_token", "histogram", "decode time per generated token" },
}

-- GET /metrics: Prometheus text format (--metrics), every worker's figures.
local function handle_metrics()
  local dict = metrics_dict()
  if not dict then fail(501, "metrics are off: start the server with --metrics", nil, "not_supported") end
  dict:set("busy_slots{worker=\"" .. ngx.worker.pid() .. "\"}", state.running)
  dict:set("queue_length{worker=\"" .. ngx.worker.pid() .. "\"}", state.waiting)
  local keys, lines = dict:get_keys(0), {}
  local function le(k) -- buckets in ascending order, +Inf last
    local v = k:match('le="([^"]+)"')
    return v and (v == "+Inf" and math.huge or tonumber(v)) or -1
  end
  table.sort(keys, function(a, b)
    local pa, pb = a:gsub('le="[^"]*"', ""), b:gsub('le="[^"]*"', "")
    if pa ~= pb then return a < b end
    return le(a) < le(b)
  end)
  local help = {}
  for _, h in ipairs(METRIC_HELP) do help[#help + 1] = h end
  help[#help + 1] = { "busy_slots", "gauge", "generations running, per worker (as of its last /metrics answer)" }
  help[#help + 1] = { "queue_length", "gauge", "requests waiting for a slot, per worker" }
  for _, h in ipairs(help) do
    lines[#lines + 1] = ("# HELP bitnet_%s %s\n# TYPE bitnet_%s %s"):format(h[1], h[3], h[1], h[2])
    for _, k in ipairs(keys) do
      local base = k:match("^([%w_]+)")
      if base == h[1] or (h[2] == "histogram" and base:sub(1, #h[1] + 1) == h[1] .. "_") then
        lines[#lines + 1] = ("bitnet_%s %s"):format(k, tostring(dict:get(k)))
      end
    end
  end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(table.concat(lines, "\n"), "\n")
end

-- Settings of these features (see M.DEFAULTS): api_keys (a list),
-- api_key_file (one key a line), metrics (serve GET /metrics), pooling
-- ("mean" or "last": how /v1/embeddings pools the hidden states).
M.DEFAULTS.api_keys = false
M.DEFAULTS.api_key_file = false
M.DEFAULTS.metrics = false
M.DEFAULTS.pooling = "mean"

--- M.configure_worker(state): the worker's API keys (init_worker calls it
-- before loading the model, so a worker whose model failed still guards).
function M.configure_worker(st)
  local keys, err = M.read_api_keys(st.settings)
  if not keys then
    st.auth_error = "the server's API keys could not be read: " .. err
    ngx.log(ngx.ERR, "bitnet: ", st.auth_error)
  end
  st.api_keys = keys
end

ROUTES["/v1/embeddings"] = { POST = handle_embeddings }
ROUTES["/tokenize"] = { POST = handle_tokenize }
ROUTES["/detokenize"] = { POST = handle_detokenize }
ROUTES["/metrics"] = { GET = handle_metrics }

-- Compares in time that depends on the lengths only, not on where the
-- strings differ.
local function same(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    if a:byte(i) ~= b:byte(i) then diff = diff + 1 end
  end
  return diff == 0
end

--- M.authorized(keys, header) -> boolean: whether an Authorization header
-- carries one of keys as a Bearer token (each compared in constant time).
function M.authorized(keys, header)
  local token = type(header) == "string" and header:match("^[Bb]earer%s+(.-)%s*$")
  if not token then return false end
  local ok = false
  for _, k in ipairs(keys) do
    if same(k, token) then ok = true end -- no early exit: every key is compared
  end
  return ok
end

-- Raises 401 when API keys are set and the request to a guarded path has
-- none of them (/health and unknown paths stay open).
local function authorize(uri)
  if uri ~= "/tokenize" and uri ~= "/detokenize" and uri ~= "/metrics" and uri:sub(1, 4) ~= "/v1/" then return end
  if state.auth_error then fail(503, state.auth_error, nil, "server_misconfigured", "server_error") end
  local keys = state.api_keys
  if not keys or #keys == 0 then return end
  if M.authorized(keys, ngx.var.http_authorization) then return end
  ngx.header["WWW-Authenticate"] = 'Bearer realm="bitnet"'
  fail(401, "Incorrect API key provided. Send it as 'Authorization: Bearer KEY'.", nil, "invalid_api_key")
end

--- M.read_api_keys(settings) -> list | nil, message: the settings' api_keys
-- and the lines of api_key_file (blank lines and surrounding spaces ignored).
function M.read_api_keys(settings)
  local keys = {}
  for _, k in ipairs(settings.api_keys or {}) do
    if type(k) ~= "string" or k == "" then return nil, "api_keys must be non-empty strings" end
    keys[#keys + 1] = k
  end
  if settings.api_key_file then
    local f, err = io.open(settings.api_key_file, "rb")
    if not f then return nil, "cannot read the API key file: " .. tostring(err) end
    for line in f:lines() do
      local k = line:match("^%s*(.-)%s*$")
      if k ~= "" then keys[#keys + 1] = k end
    end
    f:close()
  end
  return keys
end

--- M.handle(): the content handler of every location (content_by_lua_block
-- { require("bitnet.server").handle() }): routes by method and path and
-- answers errors in OpenAI's shape { error = { message, type, param, code } }.
function M.handle()
  if not state then error("bitnet.server: init_worker was not called (init_worker_by_lua_block)") end
  if state.settings.instance then ngx.header["X-Bitnet-Instance"] = state.settings.instance end
  local ok, err = pcall(function()
    local uri, method = ngx.var.uri, ngx.req.get_method()
    authorize(uri)
    local route = ROUTES[uri]
    local model = uri:match("^/v1/models/(.+)$")
    if model then route = { GET = function() return handle_models(ngx.unescape_uri(model)) end } end
    if not route then fail(404, ("no such endpoint: %s %s"):format(method, uri), nil, "not_found") end
    local fn = route[method]
    if not fn then
      local allowed = {}
      for m in pairs(route) do allowed[#allowed + 1] = m end
      ngx.header["Allow"] = table.concat(allowed, ", ")
      fail(405, ("%s is not allowed on %s (use %s)"):format(method, uri, table.concat(allowed, ", ")), nil,
        "method_not_allowed")
    end
    return fn()
  end)
  if ok then return end
  if not M.is_request_error(err) then
    ngx.log(ngx.ERR, "bitnet: ", tostring(err))
    err = { status = 500, message = "internal error: " .. tostring(err), type = "server_error", code = "internal_error" }
  end
  if ngx.headers_sent then return ngx.exit(ngx.ERROR) end
  return send_error(err)
end

--- M.conversation_key(): for a front nginx balancing instances (openresty/
-- front.conf, rewrite_by_lua): sets $conversation_key from the
-- X-Conversation-Id header, else the JSON body's "user" field, else the
-- client address, so `hash $conversation_key consistent` keeps a chat on the
-- instance whose prefix cache holds it.
function M.conversation_key()
  local key = ngx.var.http_x_conversation_id
  if not key or key == "" then
    ngx.req.read_body()
    local req = json().decode(ngx.req.get_body_data() or "")
    key = type(req) == "table" and type(req.user) == "string" and req.user ~= "" and req.user or ngx.var.remote_addr
  end
  ngx.var.conversation_key = key
end

return M
