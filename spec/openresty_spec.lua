-- The OpenResty server (lua/bitnet/server.lua, openresty/*.conf) in the real
-- program: `bitnet serve` starts Debian's nginx + libnginx-mod-http-lua on a
-- free 127.0.0.1 port, curl drives every endpoint and error, the official
-- openai Node.js client (npm, installed into openresty/test/) parses a
-- streamed and a non-streamed chat completion, and two instances behind a
-- front nginx keep each conversation key on one instance. nginx's Lua is
-- LuaJIT, so the server specs run in the LuaJIT pass (`make test-luajit`);
-- request validation and `bitnet serve`'s errors run in every pass.
-- Subprocesses run with `env -u LD_PRELOAD` (make test-asan preloads ASan).
local bitnet = require("bitnet")
local cli = require("bitnet.cli")
local server = require("bitnet.server")
local json = require("dkjson")

local ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then return ok == 0 end
  return ok == true and how == "exit" and code == 0
end

local function capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

-- the file's text, or nil when it is not there (yet)
local read = require("support.checks").read_file_if

local write = require("support.gguf_bytes").write -- (path, string)

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(sh("mkdir -p " .. d))
  return d
end

local function sleep(s) sh("sleep " .. s) end

-- a stand-in stream for cli.main
local function sink()
  local parts = {}
  return { write = function(self, ...) for _, s in ipairs({ ... }) do parts[#parts + 1] = s end return self end,
    flush = function() end, text = function() return table.concat(parts) end }
end

local function run_cli(args)
  local out, err = sink(), sink()
  local status = cli.main(args, { stdout = out, stderr = err, stderr_is_tty = false })
  return status, out.text(), err.text()
end

-- curl: returns status, body, headers (lower-case names)
local function curl(method, url, body, extra)
  local dir = tmpdir()
  local args = { ENV .. "curl -s -S --max-time 60 -X " .. method, "-o " .. dir .. "/body", "-D " .. dir .. "/head",
    "-w '%{http_code}'" }
  if body then
    write(dir .. "/req", body)
    args[#args + 1] = "-H 'Content-Type: application/json' --data-binary @" .. dir .. "/req"
  end
  if extra then args[#args + 1] = extra end
  args[#args + 1] = "'" .. url .. "'"
  local code = tonumber(capture(table.concat(args, " ") .. " 2>/dev/null"))
  local headers = {}
  for name, value in (read(dir .. "/head") or ""):gmatch("([%w%-]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  local out = read(dir .. "/body")
  sh("rm -rf " .. dir)
  return code, out, headers
end

-- JSON text with every object's keys sorted, as the module encodes a Lua
-- table. dkjson writes keys in the table's hash order, which LuaJIT
-- randomizes per process: a schema sent in that order renders a different
-- prompt (same length, keys permuted) than the module's for the same tools.
local function encode_sorted(value)
  local keys, seen = {}, {}
  local function walk(v)
    if type(v) ~= "table" then return end
    for k, x in pairs(v) do
      if type(k) == "string" and not seen[k] then seen[k] = true; keys[#keys + 1] = k end
      walk(x)
    end
  end
  walk(value)
  table.sort(keys)
  return json.encode(value, { keyorder = keys })
end

local function post(base, path, obj, extra)
  local code, body, headers = curl("POST", base .. path, type(obj) == "string" and obj or encode_sorted(obj), extra)
  return code, body, headers
end

local function decode(s)
  local v, _, err = json.decode(s, 1, json.null)
  assert(v ~= nil, "not JSON: " .. tostring(err) .. ": " .. tostring(s))
  return v
end

-- The data: payloads of a server-sent event stream, in order.
local function events(body)
  local out = {}
  for line in body:gmatch("[^\n]+") do
    local data = line:match("^data: (.*)$")
    assert(data, "a line that is not an SSE data line: " .. line)
    out[#out + 1] = data
  end
  return out
end

-- A port nothing listens on (curl's connection is refused there).
local function free_port()
  for _ = 1, 50 do
    local port = math.random(20000, 60000)
    if not sh(ENV .. "curl -s -o /dev/null --max-time 1 http://127.0.0.1:" .. port .. "/ 2>/dev/null") then
      return port
    end
  end
  error("no free port found")
end

-- Starts `bitnet serve ARGS` in the background on a free port; waits until
-- /health answers. Returns { base, port, prefix, pid, log }.
-- The launcher is `luajit bin/bitnet`, or with plain = true bin/bitnet as
-- README shows it (Lua 5.4, writing the LuaJIT build's path for nginx).
local function start(args, plain)
  local launcher = plain and "env -u BITNET_BUILD bin/bitnet" or "luajit bin/bitnet"
  for _ = 1, 3 do
    local port, prefix = free_port(), tmpdir()
    local log = prefix .. ".log"
    sh(("%s %s serve %s --port %d --prefix %s > %s 2>&1 &"):format(ENV, launcher, args or "", port, prefix, log))
    local base = "http://127.0.0.1:" .. port
    for _ = 1, 200 do
      local code = curl("GET", base .. "/health")
      if code == 200 or code == 502 then
        local pid = tonumber(read(prefix .. "/logs/nginx.pid"))
        return { base = base, port = port, prefix = prefix, pid = pid, log = log }
      end
      if (read(log) or ""):find("emerg") then break end
      sleep(0.05)
    end
    local text = read(log) or ""
    if not text:find("Address already in use", 1, true) then error("bitnet serve did not start:\n" .. text) end
  end
  error("bitnet serve did not start: no free port")
end

local function alive(pid) return sh("kill -0 " .. pid .. " 2>/dev/null") end

-- SIGTERM to nginx's master: it and its workers are gone within 10 s.
local function stop(srv)
  if not srv then return true end
  sh("kill -TERM " .. srv.pid)
  for _ = 1, 200 do
    if not alive(srv.pid) then
      sh("rm -rf " .. srv.prefix .. " " .. srv.log)
      return true
    end
    sleep(0.05)
  end
  sh("kill -KILL " .. srv.pid)
  return false
end

local function health(srv) return decode(select(2, curl("GET", srv.base .. "/health"))) end

-- The openai Node.js client in openresty/test/node_modules (npm, first run).
local function npm_install()
  if not sh("test -d openresty/test/node_modules/openai") then
    assert.is_true(sh(ENV .. "npm install --prefix openresty/test --no-audit --no-fund --silent >/dev/null 2>&1"),
      "npm install in openresty/test failed")
  end
end

describe("OpenResty server", function()
  describe("request validation (bitnet.server)", function()
    local ctx = { n_vocab = 100, model_id = "m", max_tokens = 256 }
    local function rejects(fn, req, status, param, code)
      local ok, e = pcall(fn, req, ctx)
      assert.is_false(ok)
      assert.is_true(server.is_request_error(e), tostring(e))
      assert.are.equal(status, e.status)
      assert.are.equal(param, e.param)
      if code then assert.are.equal(code, e.code) end
      return e
    end

    it("maps OpenAI fields to generate's options", function()
      local prompt, opts, meta = server.completion_request({ model = "m", prompt = "hi", max_tokens = 5, temperature = 0,
        top_p = 0.5, top_k = 3, min_p = 0.1, stop = "x", seed = 9, presence_penalty = 1, frequency_penalty = -1,
        logit_bias = { ["7"] = -100, ["8"] = 2 }, n = 1, stream = true, stream_options = { include_usage = true } }, ctx)
      assert.are.equal("hi", prompt)
      assert.are.same({ max_tokens = 5, temperature = 0, top_p = 0.5, top_k = 3, min_p = 0.1, stop = { "x" }, seed = 9,
        presence_penalty = 1, frequency_penalty = -1, logit_bias = { [7] = -math.huge, [8] = 2 } }, opts)
      assert.are.same({ stream = true, include_usage = true }, meta)
      local _, o2 = server.completion_request({ prompt = { 1, 2 } }, ctx)
      assert.are.equal(256, o2.max_tokens)
      local msgs, o3 = server.chat_request({ messages = { { role = "developer", content = "be brief" },
        { role = "user", content = { { type = "text", text = "a" }, { type = "text", text = "b" } } } },
        max_completion_tokens = 3 }, ctx)
      assert.are.same({ { role = "system", content = "be brief" }, { role = "user", content = "ab" } }, msgs)
      assert.are.equal(3, o3.max_tokens)
    end)

    it("rejects unknown and invalid fields naming them", function()
      local e = rejects(server.completion_request, { prompt = "x", bogus = 1 }, 400, "bogus", "unknown_parameter")
      assert.matches("Unrecognized request argument supplied: bogus", e.message, 1, true)
      rejects(server.completion_request, { prompt = "x", temperature = 3 }, 400, "temperature")
      rejects(server.completion_request, { prompt = "x", n = 17 }, 400, "n")
      rejects(server.completion_request, { prompt = "x", max_tokens = 1.5 }, 400, "max_tokens")
      rejects(server.completion_request, { prompt = "x", stop = { "a", "b", "c", "d", "e" } }, 400, "stop")
      rejects(server.completion_request, { prompt = "x", logit_bias = { ["100"] = 1 } }, 400, "logit_bias")
      rejects(server.completion_request, { prompt = "x", logit_bias = { ["1"] = 101 } }, 400, "logit_bias")
      rejects(server.completion_request, { prompt = "x", best_of = 2 }, 400, "best_of", "unsupported_parameter")
      rejects(server.completion_request, { prompt = "x", stream_options = { include_usage = true } }, 400, "stream_options")
      rejects(server.completion_request, { prompt = { "a", "b" } }, 400, "prompt")
      rejects(server.completion_request, {}, 400, "prompt", "missing_required_parameter")
      rejects(server.completion_request, { prompt = "x", model = "other" }, 404, "model", "model_not_found")
      rejects(server.chat_request, { messages = {} }, 400, "messages")
      rejects(server.chat_request, { messages = { { role = "robot", content = "x" } } }, 400, "messages[0].role")
      rejects(server.chat_request, { messages = { { role = "user", content = { { type = "image_url" } } } } }, 400,
        "messages[0].content")
      rejects(server.chat_request, { messages = { { role = "user", content = "x" } }, tools = { {} } }, 400, "tools[0].type")
    end)

    it("maps response_format and tools, and refuses bad ones naming the field", function()
      local msgs = { { role = "user", content = "x" } }
      local _, o = server.chat_request({ messages = msgs, response_format = { type = "json_object" } }, ctx)
      assert.are.equal("object", o.json)
      _, o = server.completion_request({ prompt = "x", response_format = { type = "json_schema",
        json_schema = { name = "v", strict = true, schema = { type = "object", required = {} } } } }, ctx)
      assert.are.same({ type = "object", required = {} }, json.decode(o.json_schema))
      _, o = server.chat_request({ messages = msgs, response_format = { type = "text" } }, ctx)
      assert.is_nil(o.json_schema or o.json)
      local tool = { type = "function", ["function"] = { name = "get_weather", parameters = { type = "object" } } }
      local m2
      m2, o = server.chat_request({ messages = { msgs[1], { role = "assistant", tool_calls = { { id = "c1", type = "function",
        ["function"] = { name = "get_weather", arguments = "{}" } } } }, { role = "tool", tool_call_id = "c1", content = "ok" } },
        tools = { tool }, tool_choice = "required", parallel_tool_calls = false }, ctx)
      assert.are.equal("get_weather", o.tools[1]["function"].name)
      assert.are.same({ "required", false }, { o.tool_choice, o.parallel_tool_calls })
      assert.are.same({ role = "tool", content = "ok", tool_call_id = "c1" }, m2[3])
      assert.is_nil(m2[2].content)
      local RF = "response_format"
      rejects(server.chat_request, { messages = msgs, response_format = { type = "xml" } }, 400, RF .. ".type")
      rejects(server.chat_request, { messages = msgs, response_format = "json" }, 400, RF)
      rejects(server.chat_request, { messages = msgs, response_format = { type = "json_schema" } }, 400, RF .. ".json_schema")
      rejects(server.chat_request, { messages = msgs, response_format = { type = "json_schema", json_schema = { name = "a b",
        schema = {} } } }, 400, RF .. ".json_schema.name")
      rejects(server.chat_request, { messages = msgs, response_format = { type = "json_schema", json_schema = { name = "v",
        schema = "an object with a name" } } }, 400, RF .. ".json_schema.schema")
      local many = {}
      for i = 1, 1000 do many[i] = { type = "function", ["function"] = { name = "f" .. i } } end
      rejects(server.chat_request, { messages = msgs, tools = many }, 400, "tools")
      rejects(server.chat_request, { messages = msgs, tools = { { type = "function", ["function"] = { name = "get weather" } } } },
        400, "tools[0].function.name")
      rejects(server.chat_request, { messages = msgs, tools = { tool }, tool_choice = "sometimes" }, 400, "tool_choice")
      rejects(server.chat_request, { messages = msgs, tools = { tool }, parallel_tool_calls = "yes" }, 400, "parallel_tool_calls")
      rejects(server.chat_request, { messages = { { role = "user", content = "x", tool_call_id = "c" } } }, 400, "messages[0]")
    end)

    it("keeps the order of a schema's properties as the client wrote them", function()
      local schema = '{"type": "object", "properties": {"z": {"type": "integer"}, "a": {"type": "string"}}}'
      local params = '{"properties":{"to":{},"from":{}},"type":"object"}'
      local body = '{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", '
        .. '"json_schema": {"name": "v", "schema": ' .. schema .. '}}, "tools": [{"type": "function", "function": '
        .. '{"name": "f", "parameters": {"type": "object"}}}, {"type": "function", "function": {"name": "g", '
        .. '"parameters": ' .. params .. '}}]}'
      local req = json.decode(body)
      require("bitnet.server_structured").keep_schema_text(req, body)
      local _, o = server.chat_request(req, ctx)
      assert.are.equal(schema, o.json_schema)
      local list = require("bitnet.tools").check(o.tools)
      assert.are.equal('{"type": "object"}', list[1].schema)
      assert.are.equal(params, list[2].schema)
      require("bitnet.server_structured").keep_schema_text(req, "{ not json") -- left alone
    end)
  end)

  describe("bitnet serve", function()
    it("names the missing package when nginx or its Lua module is absent", function()
      local status, _, err = run_cli({ "serve", "--nginx", "/nonexistent/nginx" })
      assert.are.equal(1, status)
      assert.matches("/nonexistent/nginx is not installed (Debian: apt-get install nginx libnginx-mod-http-lua",
        err, 1, true)
      if sh("test -x /usr/sbin/nginx") then
        local empty = tmpdir()
        status, _, err = run_cli({ "serve", "--nginx", "/usr/sbin/nginx", "--modules", empty })
        assert.are.equal(1, status)
        assert.matches("nginx's Lua module is not installed: " .. empty .. "/ndk_http_module.so is missing "
          .. "(Debian: apt-get install libnginx-mod-http-ndk", err, 1, true)
        sh("rm -rf " .. empty)
      end
      status, _, err = run_cli({ "serve", "--port", "0" })
      assert.are.equal(2, status)
      assert.matches("--port must be within 1..65535", err, 1, true)
    end)

    it("keeps the workers root only when user nobody cannot read the model", function()
      if capture("id -u"):match("%d+") ~= "0" or not sh("test -x /usr/sbin/runuser && test -x /usr/sbin/nginx") then
        return -- only root's nginx changes user
      end
      local private, prefix = tmpdir(), tmpdir()
      assert.is_true(sh("chmod 700 " .. private .. " && cp " .. bitnet.default_model() .. " " .. private .. "/m.gguf"))
      local status, _, err = run_cli({ "serve", private .. "/m.gguf", "--config-only", "--prefix", prefix })
      assert.are.equal(0, status, err)
      assert.matches("\nuser root;\n", read(prefix .. "/conf/nginx.conf"), 1, true)
      assert.matches("user nobody cannot read " .. private .. "/m.gguf", err, 1, true)
      local shared = tmpdir()
      assert.is_true(sh("chmod 755 " .. shared .. " && cp " .. bitnet.default_model() .. " " .. shared .. "/m.gguf"))
      status, _, err = run_cli({ "serve", shared .. "/m.gguf", "--config-only", "--prefix", prefix })
      assert.are.equal(0, status, err)
      local checkout_readable = sh("runuser -u nobody -- test -r lua/bitnet/server.lua")
        and sh("runuser -u nobody -- test -r build/luajit/bitnet/core.so")
      assert.are.equal(checkout_readable, read(prefix .. "/conf/nginx.conf"):find("\nuser ", 1, true) == nil)
      sh("rm -rf " .. shared)
      sh("rm -rf " .. private .. " " .. prefix)
      status, _, err = run_cli({ "serve", "--port", "0" })
      assert.are.equal(2, status)
      assert.matches("--port must be within 1..65535", err, 1, true)
    end)
  end)

  if not rawget(_G, "jit") then
    pending("the server specs run in the LuaJIT pass: nginx's Lua is LuaJIT")
    return
  end

  assert(sh("test -x /usr/sbin/nginx && test -f /usr/lib/nginx/modules/ngx_http_lua_module.so"),
    "nginx and libnginx-mod-http-lua are not installed: run tools/setup-debian.sh")
  assert(sh("test -f build/luajit/bitnet/core.so"), "the LuaJIT build is missing: make luajit")
  assert(sh("test -f build/lua5.4/bitnet/core.so"), "the Lua 5.4 build (bin/bitnet's) is missing: make lua54")

  local model = assert(bitnet.load())
  local MODEL_ID = "kjv-bitnet-6m"
  local PROMPT = "And it came to pass"
  local CHAT = { { role = "user", content = "Who was Naomi?" } }
  local NO_END = { ["4089"] = -100, ["4092"] = -100 } -- bans end of text / turn: generations run to max_tokens

  describe("one instance", function()
    local srv
    setup(function() srv = start("-c 4096 --slots 4 --instance solo") end)
    teardown(function() assert.is_true(stop(srv), "nginx did not stop on SIGTERM") end)

    it("writes the repository's template filled in", function()
      local conf = read(srv.prefix .. "/conf/nginx.conf")
      local template = read("openresty/nginx.conf")
      assert.matches("listen 127.0.0.1:" .. srv.port .. ";", conf, 1, true)
      assert.matches("load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;", conf, 1, true)
      assert.matches('init_worker({ n_ctx = 4096, slots = 4, instance = "solo" })', conf, 1, true)
      assert.matches("lua_check_client_abort on;", template, 1, true)
      -- every line without a field is the template's
      local n = 0
      for line in template:gmatch("[^\n]+") do
        if not line:find("@", 1, true) or line:match("^%s*#") then
          assert.matches(line, conf, 1, true)
          n = n + 1
        end
      end
      assert.is_true(n > 30)
    end)

    it("answers /health and /v1/models", function()
      local code, body, headers = curl("GET", srv.base .. "/health")
      assert.are.equal(200, code)
      assert.are.equal("solo", headers["x-bitnet-instance"])
      local h = decode(body)
      assert.are.equal("ok", h.status)
      assert.are.equal(MODEL_ID, h.model)
      assert.are.equal(4, h.pool.slots)
      code, body = curl("GET", srv.base .. "/v1/models")
      assert.are.equal(200, code)
      local list = decode(body)
      assert.are.equal("list", list.object)
      assert.are.equal(1, #list.data)
      assert.are.equal(MODEL_ID, list.data[1].id)
      assert.are.equal("model", list.data[1].object)
      code, body = curl("GET", srv.base .. "/v1/models/" .. MODEL_ID)
      assert.are.equal(200, code)
      assert.are.equal(MODEL_ID, decode(body).id)
      code, body = curl("GET", srv.base .. "/v1/models/gpt-4")
      assert.are.equal(404, code)
      assert.are.equal("model_not_found", decode(body).error.code)
    end)

    it("completes a prompt exactly as model:generate does, streamed or not", function()
      local want, info = model:generate(PROMPT, { max_tokens = 24, temperature = 0 })
      local code, body, headers = post(srv.base, "/v1/completions",
        { model = MODEL_ID, prompt = PROMPT, max_tokens = 24, temperature = 0 })
      assert.are.equal(200, code)
      assert.matches("application/json", headers["content-type"], 1, true)
      local r = decode(body)
      assert.are.equal("text_completion", r.object)
      assert.are.equal(want, r.choices[1].text)
      assert.are.equal(info.finish_reason, r.choices[1].finish_reason)
      assert.are.same({ info.prompt_tokens, info.completion_tokens, info.prompt_tokens + info.completion_tokens },
        { r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens })

      code, body, headers = post(srv.base, "/v1/completions",
        { model = MODEL_ID, prompt = PROMPT, max_tokens = 24, temperature = 0, stream = true }, "-N")
      assert.are.equal(200, code)
      assert.matches("text/event-stream", headers["content-type"], 1, true)
      local ev = events(body)
      assert.are.equal("[DONE]", ev[#ev])
      local parts = {}
      for i = 1, #ev - 1 do
        local c = decode(ev[i])
        assert.are.equal("text_completion", c.object)
        parts[#parts + 1] = c.choices[1].text
        if i < #ev - 1 then assert.are.equal(json.null, c.choices[1].finish_reason) end
      end
      -- (how many pieces depends on timing; that events are flushed as they come, before
      -- the end, is shown by the disconnecting client below)
      assert.is_true(#ev >= 3)
      assert.are.equal(want, table.concat(parts))
      assert.are.equal("length", decode(ev[#ev - 1]).choices[1].finish_reason)
    end)

    it("maps seed, stop and logit_bias to the same generation as the module's", function()
      local opts = { max_tokens = 20, temperature = 0.9, seed = 1234, stop = { "LORD" } }
      local want, info = model:generate(PROMPT, opts)
      local code, body = post(srv.base, "/v1/completions", { prompt = PROMPT, max_tokens = 20, temperature = 0.9,
        seed = 1234, stop = { "LORD" } })
      assert.are.equal(200, code)
      local r = decode(body)
      assert.are.equal(want, r.choices[1].text)
      assert.are.equal(info.finish_reason, r.choices[1].finish_reason)
      -- ban the greedy first token: the text changes, as the module's does
      local first = model:generate(PROMPT, { max_tokens = 1, temperature = 0, on_token = function(id)
        opts.banned = id end })
      assert.is_string(first)
      local banned = opts.banned
      local want2 = model:generate(PROMPT, { max_tokens = 8, temperature = 0, logit_bias = { [banned] = -math.huge } })
      code, body = post(srv.base, "/v1/completions", { prompt = PROMPT, max_tokens = 8, temperature = 0,
        logit_bias = { [tostring(banned)] = -100 } })
      assert.are.equal(200, code)
      assert.are.equal(want2, decode(body).choices[1].text)
      assert.are_not.equal(model:generate(PROMPT, { max_tokens = 8, temperature = 0 }), want2)
    end)

    it("chats as model:chat does, streamed or not, and reuses the history's cache on the next turn", function()
      local want, info = model:chat(CHAT, { max_tokens = 16, temperature = 0 })
      local code, body = post(srv.base, "/v1/chat/completions", { model = MODEL_ID, messages = CHAT, max_tokens = 16,
        temperature = 0 })
      assert.are.equal(200, code)
      local r = decode(body)
      assert.are.equal("chat.completion", r.object)
      assert.are.equal("assistant", r.choices[1].message.role)
      assert.are.equal(want, r.choices[1].message.content)
      assert.are.equal(info.prompt_tokens, r.usage.prompt_tokens)

      code, body = post(srv.base, "/v1/chat/completions", { messages = CHAT, max_tokens = 16, temperature = 0,
        stream = true, stream_options = { include_usage = true } }, "-N")
      assert.are.equal(200, code)
      local ev = events(body)
      assert.are.equal("[DONE]", ev[#ev])
      local first = decode(ev[1])
      assert.are.equal("chat.completion.chunk", first.object)
      assert.are.equal("assistant", first.choices[1].delta.role)
      local parts = {}
      for i = 2, #ev - 3 do parts[#parts + 1] = decode(ev[i]).choices[1].delta.content end
      assert.are.equal(want, table.concat(parts))
      assert.are.equal(info.finish_reason, decode(ev[#ev - 2]).choices[1].finish_reason)
      local usage_chunk = decode(ev[#ev - 1])
      assert.are.same({}, usage_chunk.choices)
      assert.are.equal(info.completion_tokens, usage_chunk.usage.completion_tokens)

      -- the next turn: the slot holding turn one's prompt and reply is reused
      local turn2 = { CHAT[1], { role = "assistant", content = want }, { role = "user", content = "And Ruth?" } }
      local want2, info2 = model:chat(turn2, { max_tokens = 12, temperature = 0 })
      code, body = post(srv.base, "/v1/chat/completions", { messages = turn2, max_tokens = 12, temperature = 0 })
      assert.are.equal(200, code)
      r = decode(body)
      assert.are.equal(want2, r.choices[1].message.content)
      assert.are.equal(info2.prompt_tokens, r.usage.prompt_tokens)
      assert.is_true(r.usage.prompt_tokens_details.cached_tokens >= info.prompt_tokens,
        ("cached %d of turn one's %d prompt tokens"):format(r.usage.prompt_tokens_details.cached_tokens,
          info.prompt_tokens))
    end)

    it("batches concurrent streams on the engine, each the text it gets alone", function()
      local prompts = { "In the beginning", "And God said", "Blessed are the meek", "The LORD is my shepherd" }
      local dir = tmpdir()
      local cmds = {}
      for i, p in ipairs(prompts) do
        write(dir .. "/req" .. i, json.encode({ prompt = p, max_tokens = 40, temperature = 0, stream = true }))
        cmds[i] = ("%s curl -s -N --max-time 60 -o %s/out%d -H 'Content-Type: application/json' --data-binary @%s/req%d %s"
          .. "/v1/completions &"):format(ENV, dir, i, dir, i, srv.base)
      end
      assert.is_true(sh(table.concat(cmds, " ") .. " wait"))
      for i, p in ipairs(prompts) do
        local ev = events(read(dir .. "/out" .. i))
        assert.are.equal("[DONE]", ev[#ev])
        local parts = {}
        for j = 1, #ev - 1 do parts[#parts + 1] = decode(ev[j]).choices[1].text end
        assert.are.equal(model:generate(p, { max_tokens = 40, temperature = 0 }), table.concat(parts))
      end
      sh("rm -rf " .. dir)
    end)

    it("serves other requests while generating, and cancels the generation of a client that leaves", function()
      local before = health(srv)
      local dir = tmpdir()
      write(dir .. "/req", json.encode({ prompt = PROMPT, max_tokens = 4000, temperature = 0, stream = true,
        logit_bias = NO_END }))
      -- curl gives up after 0.6 s of a generation that would take seconds
      sh(("%s curl -s -N --max-time 0.6 -o %s/out -H 'Content-Type: application/json' --data-binary @%s/req %s"
        .. "/v1/completions &"):format(ENV, dir, dir, srv.base))
      local seen_running = false
      for _ = 1, 20 do
        sleep(0.02)
        local h = health(srv) -- answered by the same worker while it streams
        if h.running == 1 then seen_running = true break end
      end
      assert.is_true(seen_running, "/health did not see the generation running")
      local h
      for _ = 1, 60 do
        sleep(0.05)
        h = health(srv)
        if h.aborted == before.aborted + 1 and h.running == 0 then break end
      end
      assert.are.equal(before.aborted + 1, h.aborted)
      assert.are.equal(before.cancelled + 1, h.cancelled) -- stopped, not run to its 4000 tokens
      assert.are.equal(0, h.running)
      assert.are.equal(0, h.pool.busy)
      local out = read(dir .. "/out")
      assert.matches("^data: ", out) -- events reached the client before the generation's end
      assert.is_nil(out:find("[DONE]", 1, true))
      sh("rm -rf " .. dir)
    end)

    it("answers errors in OpenAI's shape", function()
      local function err(status, param, ecode, code, body)
        assert.are.equal(status, code, body)
        local e = decode(body).error
        assert.is_string(e.message)
        assert.are.equal(status >= 500 and "server_error" or "invalid_request_error", e.type)
        assert.are.equal(param, e.param)
        if ecode then assert.are.equal(ecode, e.code) end
      end
      local base = srv.base
      err(400, "frobnicate", "unknown_parameter", post(base, "/v1/completions", { prompt = "x", frobnicate = true }))
      err(400, "temperature", "invalid_value", post(base, "/v1/chat/completions", { messages = CHAT, temperature = -1 }))
      err(400, "n", nil, post(base, "/v1/chat/completions", { messages = CHAT, n = 17 }))
      err(400, "top_p", nil, post(base, "/v1/chat/completions", { messages = CHAT, top_p = "high" }))
      err(400, "logprobs", "invalid_type", post(base, "/v1/chat/completions", { messages = CHAT, logprobs = 3 }))
      err(404, "model", "model_not_found", post(base, "/v1/chat/completions", { model = "gpt-4o", messages = CHAT }))
      err(400, "messages", "missing_required_parameter", post(base, "/v1/chat/completions", { max_tokens = 3 }))
      err(400, json.null, "invalid_json", post(base, "/v1/completions", "{ not json"))
      err(400, json.null, nil, post(base, "/v1/completions", "[1, 2]"))
      err(400, "prompt", "context_length_exceeded",
        post(base, "/v1/completions", { prompt = ("And the LORD spake. "):rep(1500) }))
      err(405, json.null, "method_not_allowed", curl("GET", base .. "/v1/completions"))
      err(404, json.null, "not_found", curl("GET", base .. "/v1/nothing"))
      -- still serving after all that
      assert.are.equal(200, (curl("GET", base .. "/health")))
    end)

    it("works with the official openai Node.js client, unchanged", function()
      npm_install()
      local out = capture(("%s node openresty/test/client.mjs %s/v1 %s '%s' 16 2>&1"):format(ENV, srv.base, MODEL_ID,
        json.encode(CHAT)))
      local r = decode(out)
      local want, info = model:chat(CHAT, { max_tokens = 16, temperature = 0 })
      assert.are.equal("chat.completion", r.plain.object)
      assert.are.equal("assistant", r.plain.role)
      assert.are.equal(want, r.plain.content)
      assert.are.equal(info.finish_reason, r.plain.finish)
      assert.are.equal(info.prompt_tokens, r.plain.usage.prompt_tokens)
      assert.are.equal(info.completion_tokens, r.plain.usage.completion_tokens)
      assert.are.equal(want, r.streamed.text)
      assert.are.equal("assistant", r.streamed.role)
      assert.are.equal(info.finish_reason, r.streamed.finish)
      assert.are.equal(info.completion_tokens, r.streamed.usage.completion_tokens)
      assert.are.equal(model:generate(PROMPT, { max_tokens = 16, temperature = 0 }), r.completion.text)
      assert.are.same({ MODEL_ID }, r.models)
      assert.are.equal("BadRequestError", r.error.name)
      assert.are.equal(400, r.error.status)
      assert.are.equal("temperature", r.error.param)
    end)
  end)

  describe("logprobs, n, embeddings, tokenize, metrics and API keys", function()
    local srv
    local KEY = "sk-spec-key"
    local AUTH = "-H 'Authorization: Bearer " .. KEY .. "'"
    setup(function() srv = start("--api-key " .. KEY .. " --metrics") end)
    teardown(function() assert.is_true(stop(srv), "nginx did not stop on SIGTERM") end)

    -- a record's logprobs are sorted, at most 0, and the greedy token is the first
    local function check_greedy(entry)
      assert.is_true(entry.logprob <= 0)
      for i = 2, #entry.top_logprobs do
        assert.is_true(entry.top_logprobs[i].logprob <= entry.top_logprobs[i - 1].logprob)
      end
      assert.are.equal(entry.token, entry.top_logprobs[1].token)
      assert.are.equal(entry.logprob, entry.top_logprobs[1].logprob)
    end

    it("gives chat logprobs as the softmax of the model's own logits, streamed or not", function()
      local code, body = post(srv.base, "/v1/chat/completions", { messages = CHAT, max_tokens = 6, temperature = 0,
        logprobs = true, top_logprobs = 4 }, AUTH)
      assert.are.equal(200, code, body)
      local r = decode(body)
      local want, info = model:chat(CHAT, { max_tokens = 6, temperature = 0 })
      assert.are.equal(want, r.choices[1].message.content)
      local content = r.choices[1].logprobs.content
      assert.are.equal(info.completion_tokens, #content)
      -- greedy: the log-softmax at temperature 1, computed here from the session's logits
      local sess = model:session()
      local tok = model:tokenizer()
      local ids = model:tokenize(model:apply_chat_template(CHAT), { special = true })
      if ids[1] == tok:bos() and ids[2] == tok:bos() then table.remove(ids, 1) end -- the template carries BOS
      sess:feed(ids)
      for _, e in ipairs(content) do
        check_greedy(e)
        assert.are.equal(4, #e.top_logprobs)
        local logits = sess:logits()
        local mx = -math.huge
        for _, l in ipairs(logits) do mx = math.max(mx, l) end
        local sum = 0
        for _, l in ipairs(logits) do sum = sum + math.exp(l - mx) end
        local id = tok:id(e.token) or model:tokenize(e.token, { bos = false })[1]
        assert.is_near(logits[id + 1] - mx - math.log(sum), e.logprob, 1e-4)
        assert.are.equal(#e.token, #e.bytes)
        sess:feed({ id })
      end
      code, body = post(srv.base, "/v1/chat/completions", { messages = CHAT, max_tokens = 6, temperature = 0,
        logprobs = true, top_logprobs = 4, stream = true }, AUTH)
      assert.are.equal(200, code)
      local streamed, text = {}, {}
      for _, data in ipairs(events(body)) do
        if data ~= "[DONE]" then
          local c = decode(data).choices[1]
          if c.delta.content then text[#text + 1] = c.delta.content end
          if c.logprobs ~= json.null then
            for _, e in ipairs(c.logprobs.content) do streamed[#streamed + 1] = e end
          end
        end
      end
      assert.are.equal(want, table.concat(text))
      assert.are.same(content, streamed)
    end)

    it("gives legacy completion logprobs, with echo the prompt's, streamed or not", function()
      local code, body = post(srv.base, "/v1/completions", { prompt = PROMPT, max_tokens = 5, temperature = 0,
        logprobs = 3, echo = true }, AUTH)
      assert.are.equal(200, code, body)
      local choice = decode(body).choices[1]
      local want = model:generate(PROMPT, { max_tokens = 5, temperature = 0 })
      assert.are.equal(PROMPT .. want, choice.text)
      local lp = choice.logprobs
      local prompt_ids = model:tokenize(PROMPT)
      assert.are.equal(#prompt_ids - 1 + 5, #lp.tokens) -- BOS is not text
      assert.are.equal(choice.text, table.concat(lp.tokens))
      local offset = 0
      for i, t in ipairs(lp.tokens) do
        assert.are.equal(offset, lp.text_offset[i])
        offset = offset + #t
        assert.is_true(lp.token_logprobs[i] <= 0)
        local best = -math.huge
        for _, v in pairs(lp.top_logprobs[i]) do best = math.max(best, v) end
        if i > #prompt_ids - 1 then assert.are.equal(best, lp.token_logprobs[i]) end -- greedy: the best
      end
      code, body = post(srv.base, "/v1/completions", { prompt = PROMPT, max_tokens = 5, temperature = 0,
        logprobs = 3, echo = true, stream = true }, AUTH)
      assert.are.equal(200, code)
      local tokens, text = {}, {}
      for _, data in ipairs(events(body)) do
        if data ~= "[DONE]" then
          local c = decode(data).choices[1]
          text[#text + 1] = c.text
          for i, t in ipairs(c.logprobs.tokens) do
            tokens[#tokens + 1] = t
            assert.are.equal(lp.token_logprobs[#tokens], c.logprobs.token_logprobs[i])
          end
        end
      end
      assert.are.equal(choice.text, table.concat(text))
      assert.are.same(lp.tokens, tokens)
    end)

    it("answers n = 3 with three choices, each its own seed's, the prompt counted once", function()
      local code, body = post(srv.base, "/v1/completions", { prompt = PROMPT, max_tokens = 8, temperature = 0.9,
        seed = 11, n = 3 }, AUTH)
      assert.are.equal(200, code, body)
      local r = decode(body)
      assert.are.equal(3, #r.choices)
      local completion = 0
      for i, c in ipairs(r.choices) do
        assert.are.equal(i - 1, c.index)
        local want, info = model:generate(PROMPT, { max_tokens = 8, temperature = 0.9, seed = 11 + i - 1 })
        assert.are.equal(want, c.text)
        completion = completion + info.completion_tokens
      end
      assert.are.equal(#model:tokenize(PROMPT), r.usage.prompt_tokens)
      assert.are.equal(completion, r.usage.completion_tokens)
      code, body = post(srv.base, "/v1/chat/completions", { messages = CHAT, max_tokens = 8, temperature = 0.9,
        seed = 11, n = 3, stream = true }, AUTH)
      assert.are.equal(200, code)
      local texts, finished = { {}, {}, {} }, {}
      for _, data in ipairs(events(body)) do
        if data ~= "[DONE]" then
          local c = decode(data).choices[1]
          if c.delta.content then table.insert(texts[c.index + 1], c.delta.content) end
          if c.finish_reason ~= json.null then finished[c.index + 1] = c.finish_reason end
        end
      end
      for i = 1, 3 do
        assert.are.equal(model:chat(CHAT, { max_tokens = 8, temperature = 0.9, seed = 11 + i - 1 }), table.concat(texts[i]))
        assert.is_string(finished[i])
      end
    end)

    it("embeds strings and token ids, unit vectors, the same text the same vector", function()
      local code, body = post(srv.base, "/v1/embeddings", { input = { "In the beginning", "And God said",
        "In the beginning" } }, AUTH)
      assert.are.equal(200, code, body)
      local r = decode(body)
      assert.are.equal("list", r.object)
      local v = {}
      for i, d in ipairs(r.data) do
        assert.are.equal(i - 1, d.index)
        v[i] = d.embedding
        assert.are.equal(model:info().n_embd, #v[i])
        local n2 = 0
        for _, x in ipairs(v[i]) do n2 = n2 + x * x end
        assert.is_near(1, n2, 1e-4)
      end
      assert.are.same(v[1], v[3])
      assert.are_not.same(v[1], v[2])
      local function near(a, b) -- JSON carries 14 significant digits
        for j = 1, #a do assert.is_near(a[j], b[j], 1e-12) end
      end
      near(model:embed("In the beginning"), v[1])
      code, body = post(srv.base, "/v1/embeddings", { input = model:tokenize("In the beginning") }, AUTH)
      assert.are.same(v[1], decode(body).data[1].embedding)
      assert.are.equal(#model:tokenize("In the beginning") * 2 + #model:tokenize("And God said"), r.usage.prompt_tokens)
    end)

    it("tokenizes and detokenizes as llama-server does", function()
      local code, body = post(srv.base, "/tokenize", { content = "Blessed are the meek" }, AUTH)
      assert.are.equal(200, code, body)
      local ids = decode(body).tokens
      assert.are.same(model:tokenize("Blessed are the meek", { bos = false }), ids)
      code, body = post(srv.base, "/detokenize", { tokens = ids }, AUTH)
      assert.are.equal(200, code)
      assert.are.equal("Blessed are the meek", decode(body).content)
      code, body = post(srv.base, "/tokenize", { content = "Amen", with_pieces = true, add_special = true }, AUTH)
      local t = decode(body).tokens
      assert.are.equal(model:tokenizer():bos(), t[1].id)
      local pieces = {}
      for i = 2, #t do pieces[#pieces + 1] = t[i].piece end
      assert.are.equal("Amen", table.concat(pieces))
    end)

    it("refuses bad input naming the field", function()
      local cases = {
        { "/v1/completions", { prompt = "x", n = 17 }, "n" },
        { "/v1/chat/completions", { messages = CHAT, logprobs = true, top_logprobs = 21 }, "top_logprobs" },
        { "/v1/completions", { prompt = "x", logprobs = 6 }, "logprobs" },
        { "/v1/embeddings", { input = "" }, "input" },
        { "/v1/embeddings", { input = {} }, "input" },
        { "/v1/embeddings", { input = "x", dimensions = 3 }, "dimensions" },
        { "/v1/embeddings", { input = "x", encoding_format = "int8" }, "encoding_format" },
        { "/detokenize", { tokens = { -1 } }, "tokens" },
      }
      local many = {}
      for i = 1, 10000 do many[i] = "a" end
      cases[#cases + 1] = { "/v1/embeddings", { input = many }, "input" }
      -- the engine's typed context_exceeded errors, mapped by kind
      local long = ("And the LORD spake. "):rep(1500)
      local exceeded = {
        { "/v1/chat/completions", { messages = { { role = "user", content = long } } }, "messages" },
        { "/v1/completions", { prompt = long, n = 2 }, "prompt" },
        { "/v1/embeddings", { input = { "x", long } }, "input" },
      }
      for _, c in ipairs(exceeded) do
        c[4] = "context_length_exceeded"
        cases[#cases + 1] = c
      end
      for _, c in ipairs(cases) do
        local code, body = post(srv.base, c[1], c[2], AUTH)
        assert.are.equal(400, code, body)
        local e = decode(body).error
        assert.are.equal(c[3], e.param)
        assert.are.equal("invalid_request_error", e.type)
        if c[4] then
          assert.are.equal(c[4], e.code, body)
          assert.truthy(e.message:find("^This model's maximum context length is exceeded: [^:]* %d+ tokens but the context holds %d+"),
            e.message)
        end
      end
      assert.are.equal(0, health(srv).pool.busy) -- nothing left holding a slot
    end)

    it("needs the API key on /v1/*, /tokenize, /detokenize and /metrics, not on /health", function()
      for _, path in ipairs({ "/v1/models", "/metrics" }) do
        local code, body = curl("GET", srv.base .. path)
        assert.are.equal(401, code)
        assert.are.equal("invalid_api_key", decode(body).error.code)
        code = curl("GET", srv.base .. path, nil, "-H 'Authorization: Bearer sk-wrong'")
        assert.are.equal(401, code)
        code = curl("GET", srv.base .. path, nil, AUTH)
        assert.are.equal(200, code)
      end
      for _, path in ipairs({ "/tokenize", "/detokenize", "/v1/embeddings", "/v1/completions" }) do
        assert.are.equal(401, (post(srv.base, path, { content = "x" })))
      end
      assert.are.equal(200, (curl("GET", srv.base .. "/health")))
    end)

    it("counts requests and tokens in Prometheus text on /metrics", function()
      local _, before = curl("GET", srv.base .. "/metrics", nil, AUTH)
      local function value(text, name)
        return tonumber(text:match("\n" .. name:gsub("[%-%.%[%]%(%)%+%*%?%^%$]", "%%%0") .. " (%S+)")) or 0
      end
      local _, r = post(srv.base, "/v1/completions", { prompt = PROMPT, max_tokens = 4, temperature = 0 }, AUTH)
      local usage = decode(r).usage
      local code, after, headers = curl("GET", srv.base .. "/metrics", nil, AUTH)
      assert.are.equal(200, code)
      assert.matches("^text/plain", headers["content-type"])
      assert.are.equal(value(before, "bitnet_generated_tokens_total") + usage.completion_tokens,
        value(after, "bitnet_generated_tokens_total"))
      assert.are.equal(value(before, "bitnet_prompt_tokens_total") + usage.prompt_tokens,
        value(after, "bitnet_prompt_tokens_total"))
      assert.are.equal(value(before, 'bitnet_requests_total{endpoint="/v1/completions",status="200"}') + 1,
        value(after, 'bitnet_requests_total{endpoint="/v1/completions",status="200"}'))
      assert.matches("# TYPE bitnet_time_to_first_token_seconds histogram", after, 1, true)
      assert.matches('bitnet_seconds_per_token_bucket{le="+Inf"}', after, 1, true)
      assert.matches("bitnet_queue_length{worker=", after, 1, true)
    end)

    it("works with the official openai Node.js client: logprobs, n, embeddings, a wrong key", function()
      npm_install()
      local out = capture(("%s node openresty/test/extras.mjs %s/v1 %s %s 2>&1"):format(ENV, srv.base, MODEL_ID, KEY))
      local r = decode(out)
      local want = model:chat(CHAT, { max_tokens = 8, temperature = 0 })
      assert.are.equal(want, r.chat.text)
      assert.are.equal(want, r.streamed.text)
      assert.are.same(r.chat.logprobs, r.streamed.logprobs)
      for _, e in ipairs(r.chat.logprobs) do check_greedy(e) end
      assert.are.equal(PROMPT .. model:generate(PROMPT, { max_tokens = 6, temperature = 0 }), r.legacy.text)
      assert.are.equal(r.legacy.text, table.concat(r.legacy.logprobs.tokens))
      assert.are.equal(3, #r.several.choices)
      for i, c in ipairs(r.several.choices) do
        assert.are.equal(model:chat(CHAT, { max_tokens = 8, temperature = 0.9, seed = 5 + i - 1 }), c.text)
      end
      -- base64 (the SDK's default, decoded by it) and float give the same numbers (float32)
      assert.are.equal(1, #r.embeddings.one)
      assert.are.equal(8, #r.embeddings.eight)
      for _, pair in ipairs({ { r.embeddings.one64, r.embeddings.one }, { r.embeddings.eight64, r.embeddings.eight } }) do
        for i, vec in ipairs(pair[1]) do
          for j, x in ipairs(vec) do
            assert.is_near(pair[2][i][j], x, 1e-7 * math.max(1, math.abs(x)))
          end
        end
      end
      assert.are.same(r.embeddings.eight[1], r.embeddings.eight[4]) -- the same text twice
      assert.are.same(r.embeddings.one[1], r.embeddings.eight[1])
      assert.are.equal("AuthenticationError", r.errors.wrong.name)
      assert.are.equal(401, r.errors.wrong.status)
      assert.are.equal("invalid_api_key", r.errors.wrong.code)
    end)
  end)

  it("refuses to listen beyond loopback without an API key unless --no-auth", function()
    local status, _, err = run_cli({ "serve", "--host", "0.0.0.0", "--config-only", "--prefix", tmpdir() })
    assert.are.equal(1, status)
    assert.matches("without an API key", err, 1, true)
    assert.matches("--no-auth", err, 1, true)
    status, _, err = run_cli({ "serve", "--host", "0.0.0.0", "--no-auth", "--nginx", "/nonexistent/nginx" })
    assert.are.equal(1, status)
    assert.matches("is not installed", err, 1, true) -- past the key check
    assert.is_true(server.authorized({ "k1", "k2" }, "Bearer k2"))
    assert.is_false(server.authorized({ "k1" }, "Bearer k10"))
    assert.is_false(server.authorized({ "k1" }, nil))
  end)

  describe("structured output and tools", function()
    local srv
    setup(function() srv = start("-c 4096 --slots 2") end)
    teardown(function() assert.is_true(stop(srv), "nginx did not stop on SIGTERM") end)
    local validate = require("support.jsonschema").validate
    local VERSE = { type = "object", properties = { book = { type = "string", maxLength = 10 },
      chapter = { type = "integer", minimum = 1, maximum = 50 } }, required = { "book", "chapter" },
      additionalProperties = false }
    local CITY = { type = "object", properties = { city = { type = "string", maxLength = 12 } }, required = { "city" },
      additionalProperties = false }
    local WEATHER = { type = "function", ["function"] = { name = "get_weather", description = "The weather in a city",
      parameters = CITY } }
    local ADD = { type = "function", ["function"] = { name = "add", parameters = { type = "object", properties = {
      a = { type = "integer", minimum = 0, maximum = 99 }, b = { type = "integer", minimum = 0, maximum = 99 } },
      required = { "a", "b" }, additionalProperties = false } } }
    local ASK = { { role = "user", content = "What is the weather in Paris?" } }
    local SCHEMA = { get_weather = json.encode(CITY), add = json.encode(ADD["function"].parameters) }
    local function rf(schema) return { type = "json_schema", json_schema = { name = "out", schema = schema, strict = true } } end
    local function ok_json(code, body)
      assert.are.equal(200, code, body)
      return decode(body)
    end
    local function assert_calls(calls, names)
      assert.is_true(#calls >= 1)
      for _, c in ipairs(calls) do
        assert.are.equal("function", c.type)
        assert.matches("^call_", c.id)
        assert.is_truthy(names[c["function"].name])
        local valid, verdict = validate(SCHEMA[c["function"].name], c["function"].arguments)
        assert.is_true(valid, verdict)
      end
    end
    -- the calls of a streamed chat, reassembled from delta.tool_calls
    local function streamed_calls(body)
      local ev, calls, finish = events(body), {}, nil
      assert.are.equal("[DONE]", ev[#ev])
      for i = 1, #ev - 1 do
        local ch = decode(ev[i]).choices[1]
        if ch.finish_reason ~= json.null then finish = ch.finish_reason end
        for _, d in ipairs(type(ch.delta.tool_calls) == "table" and ch.delta.tool_calls or {}) do
          local c = calls[d.index + 1]
          if d.id then
            assert.is_nil(c)
            assert.are.equal("", d["function"].arguments)
            calls[d.index + 1] = { id = d.id, type = d.type, ["function"] = { name = d["function"].name, arguments = "" } }
          else
            c["function"].arguments = c["function"].arguments .. d["function"].arguments
          end
        end
      end
      return calls, finish
    end

    it("answers in JSON mode and under a strict schema, as the module does, on chat and completions", function()
      local r = ok_json(post(srv.base, "/v1/chat/completions", { messages = CHAT, max_tokens = 40, temperature = 0,
        response_format = { type = "json_object" } }))
      local content = r.choices[1].message.content
      assert.are.equal("stop", r.choices[1].finish_reason)
      assert.are.equal("table", type(decode(content)))
      assert.matches("^{", content)
      local g = bitnet.grammar({ json = "object", whitespace = "compact" }, model)
      assert.are.equal(model:chat(CHAT, { max_tokens = 40, temperature = 0, grammar = g }), content)

      for _, stream in ipairs({ false, true }) do
        local code, body = post(srv.base, "/v1/chat/completions", { messages = CHAT, max_tokens = 60, temperature = 0.8,
          seed = 5, response_format = rf(VERSE), stream = stream }, stream and "-N" or nil)
        assert.are.equal(200, code, body)
        if stream then
          local parts, ev = {}, events(body)
          for i = 2, #ev - 2 do parts[#parts + 1] = decode(ev[i]).choices[1].delta.content end
          assert.are.equal(content, table.concat(parts))
        else
          content = decode(body).choices[1].message.content
          assert.are.equal("stop", decode(body).choices[1].finish_reason)
        end
        local valid, verdict = validate(json.encode(VERSE), content)
        assert.is_true(valid, verdict .. ": " .. content)
      end
      r = ok_json(post(srv.base, "/v1/completions", { prompt = PROMPT, max_tokens = 60, temperature = 0,
        response_format = rf(VERSE) }))
      assert.is_true(validate(json.encode(VERSE), r.choices[1].text), r.choices[1].text)
      -- cut by max_tokens inside the schema: "length", and the text is not passed off as valid
      r = ok_json(post(srv.base, "/v1/chat/completions", { messages = CHAT, max_tokens = 8, temperature = 0,
        response_format = rf(VERSE) }))
      assert.are.equal("length", r.choices[1].finish_reason)
      assert.is_false((validate(json.encode(VERSE), r.choices[1].message.content)))
    end)

    it("writes properties in the order of the client's schema", function()
      local body = '{"messages": [{"role": "user", "content": "Name a verse"}], "max_tokens": 60, "temperature": 0, '
        .. '"response_format": {"type": "json_schema", "json_schema": {"name": "v", "strict": true, "schema": '
        .. '{"type": "object", "properties": {"chapter": {"type": "integer", "minimum": 1, "maximum": 50}, '
        .. '"book": {"type": "string", "maxLength": 10}}, "required": ["chapter", "book"], "additionalProperties": false}}}}'
      local r = ok_json(post(srv.base, "/v1/chat/completions", body))
      assert.matches('^{"chapter":%d+,"book":"', r.choices[1].message.content)
    end)

    it("calls tools: required, a named function, auto, parallel_tool_calls, streamed, and a tool-result turn", function()
      local r = ok_json(post(srv.base, "/v1/chat/completions", { messages = ASK, tools = { WEATHER, ADD },
        tool_choice = "required", parallel_tool_calls = false, max_tokens = 100, temperature = 0 }))
      local choice = r.choices[1]
      assert.are.equal("tool_calls", choice.finish_reason)
      assert.are.equal(json.null, choice.message.content)
      assert_calls(choice.message.tool_calls, { get_weather = true, add = true })
      -- the module's call for the same request (one tool of one property: the schema text the
      -- server keeps in the client's key order is the module's sorted one)
      r = ok_json(post(srv.base, "/v1/chat/completions", { messages = ASK, tools = { WEATHER },
        tool_choice = "required", parallel_tool_calls = false, max_tokens = 100, temperature = 0 }))
      local want_reply, want_info = model:chat(ASK, { tools = { WEATHER }, tool_choice = "required",
        parallel_tool_calls = false, max_tokens = 100, temperature = 0, n_ctx = 4096 })
      assert.are.equal(want_reply, "")
      assert.are.equal(want_info.tool_calls[1]["function"].arguments, r.choices[1].message.tool_calls[1]["function"].arguments)

      local named = { type = "function", ["function"] = { name = "add" } }
      r = ok_json(post(srv.base, "/v1/chat/completions", { messages = ASK, tools = { WEATHER, ADD }, tool_choice = named,
        parallel_tool_calls = false, max_tokens = 100, temperature = 0 }))
      assert.are.equal("tool_calls", r.choices[1].finish_reason)
      assert_calls(r.choices[1].message.tool_calls, { add = true })

      -- streamed: the deltas reassemble to the same call
      local code, body = post(srv.base, "/v1/chat/completions", { messages = ASK, tools = { WEATHER, ADD },
        tool_choice = named, parallel_tool_calls = false, max_tokens = 100, temperature = 0, stream = true }, "-N")
      assert.are.equal(200, code)
      local calls, finish = streamed_calls(body)
      assert.are.equal("tool_calls", finish)
      assert.are.equal(1, #calls)
      assert.are.equal("add", calls[1]["function"].name)
      assert.are.equal(r.choices[1].message.tool_calls[1]["function"].arguments, calls[1]["function"].arguments)

      -- parallel (OpenAI's default): a list of calls, streamed with one index each. This model repeats
      -- its call until max_tokens: every call before the cut is whole and valid; the cut list is
      -- "length", never reported as calls
      code, body = post(srv.base, "/v1/chat/completions", { messages = ASK, tools = { WEATHER, ADD },
        tool_choice = "required", max_tokens = 200, temperature = 0, stream = true }, "-N")
      assert.are.equal(200, code)
      calls, finish = streamed_calls(body)
      assert.are.equal("length", finish)
      assert.is_true(#calls >= 3, body)
      for i = 1, #calls - 1 do assert_calls({ calls[i] }, { get_weather = true, add = true }) end
      r = ok_json(post(srv.base, "/v1/chat/completions", { messages = ASK, tools = { WEATHER, ADD },
        tool_choice = "required", max_tokens = 200, temperature = 0 }))
      assert.are.equal("length", r.choices[1].finish_reason)
      assert.is_nil(r.choices[1].message.tool_calls)

      -- auto: the model answers or calls; sampled runs show both, each well formed
      local seen = {}
      for seed = 1, 4 do
        r = ok_json(post(srv.base, "/v1/chat/completions", { messages = ASK, tools = { WEATHER, ADD },
          parallel_tool_calls = false, max_tokens = 64, temperature = 1, seed = seed }))
        choice = r.choices[1]
        seen[choice.finish_reason] = true
        if choice.finish_reason == "tool_calls" then assert_calls(choice.message.tool_calls, { get_weather = true, add = true })
        else assert.is_string(choice.message.content); assert.is_nil(choice.message.tool_calls) end
      end
      assert.is_true(seen.tool_calls and seen.length, "auto did not show both a call and an answer")

      -- the tool-result turn renders the call and the result through the template, as the module does
      local call = decode(select(2, post(srv.base, "/v1/chat/completions", { messages = ASK, tools = { WEATHER },
        tool_choice = "required", parallel_tool_calls = false, max_tokens = 100, temperature = 0 }))).choices[1].message
      local history = { ASK[1], { role = "assistant", content = json.null, tool_calls = call.tool_calls },
        { role = "tool", tool_call_id = call.tool_calls[1].id, content = "Sunny, 21 C" } }
      r = ok_json(post(srv.base, "/v1/chat/completions", { messages = history, tools = { WEATHER },
        parallel_tool_calls = false, max_tokens = 24, temperature = 0 }))
      local lua_history = { ASK[1], { role = "assistant", tool_calls = call.tool_calls }, history[3] }
      local want, info = model:chat(lua_history, { tools = { WEATHER }, parallel_tool_calls = false, max_tokens = 24,
        temperature = 0, n_ctx = 4096 })
      assert.are.equal(info.prompt_tokens, r.usage.prompt_tokens)
      assert.are.equal(want, r.choices[1].message.content or "")
    end)

    it("answers a logit_bias that bans every token the schema allows as the request's error (400), streamed or not", function()
      local ban = {}
      for id = 0, model:tokenizer():n_vocab() - 1 do ban[tostring(id)] = -100 end
      local req = { messages = ASK, response_format = rf(CITY), logit_bias = ban, max_tokens = 8, temperature = 0 }
      local code, body = post(srv.base, "/v1/chat/completions", req)
      assert.are.equal(400, code, body)
      local e = decode(body).error
      assert.are.equal("invalid_request_error", e.type)
      assert.matches("every token the grammar allows here is banned", e.message, 1, true)
      req.stream = true
      code, body = post(srv.base, "/v1/chat/completions", req, "-N")
      assert.are.equal(200, code) -- the status went with the first event
      local ev = events(body)
      assert.are.equal("[DONE]", ev[#ev])
      e = decode(ev[#ev - 1]).error
      assert.are.equal("invalid_request_error", e.type)
      assert.matches("every token the grammar allows here is banned", e.message, 1, true)
      assert.are.equal(0, health(srv).pool.busy)
    end)

    it("refuses bad response formats and tools with OpenAI's error body, and keeps serving", function()
      local function err(param, code, body)
        assert.are.equal(400, code, body)
        local e = decode(body).error
        assert.are.equal("invalid_request_error", e.type)
        assert.are.equal(param, e.param)
        return e.message
      end
      local function chat(req)
        req.messages = req.messages or ASK
        req.max_tokens = req.max_tokens or 8
        return post(srv.base, "/v1/chat/completions", req)
      end
      assert.matches("uniqueItems", err("response_format", chat({ response_format = rf({ type = "array",
        uniqueItems = true, items = { type = "string" } }) })), 1, true)
      err("response_format", chat({ response_format = rf({ type = "frog" }) }))
      err("response_format.json_schema.schema", chat({ response_format = rf("a list of verses") }))
      err("response_format", post(srv.base, "/v1/completions", { prompt = PROMPT, response_format = rf({ properties = 3 }) }))
      local many = {}
      for i = 1, 1000 do many[i] = { type = "function", ["function"] = { name = "tool_" .. i, parameters = CITY } } end
      assert.matches("1000 entries", err("tools", chat({ tools = many })), 1, true)
      err("tools[0].function.name", chat({ tools = { { type = "function", ["function"] = { name = "get weather!" } } } }))
      err("tools[0].function.parameters", chat({ tools = { { type = "function", ["function"] = { name = "f",
        parameters = { type = "object", properties = { t = { type = "array", uniqueItems = true } } } } } },
        tool_choice = "required" }))
      err("messages[1].tool_call_id", chat({ messages = { ASK[1], { role = "tool", tool_call_id = "call_nobody",
        content = "Sunny" } } }))
      err("tool_choice", chat({ tools = { WEATHER }, tool_choice = { type = "function", ["function"] = { name = "add" } } }))
      -- nothing was left behind: no slot busy, and a good request still answers
      local h = health(srv)
      assert.are.equal(0, h.running)
      assert.are.equal(0, h.pool.busy)
      local r = ok_json(chat({ tools = { WEATHER }, tool_choice = "required", parallel_tool_calls = false, max_tokens = 100,
        temperature = 0 }))
      assert.are.equal("tool_calls", r.choices[1].finish_reason)
      assert_calls(r.choices[1].message.tool_calls, { get_weather = true })
    end)

    it("works with the official openai client and two agent frameworks from npm", function()
      if not (sh("test -d openresty/test/node_modules/openai") and sh("test -d openresty/test/node_modules/ai")
          and sh("test -d openresty/test/node_modules/@langchain/openai")) then
        assert.is_true(sh(ENV .. "npm install --prefix openresty/test --no-audit --no-fund --silent >/dev/null 2>&1"),
          "npm install in openresty/test failed")
      end
      local out = capture(("%s node openresty/test/tools.mjs %s/v1 %s 2>&1"):format(ENV, srv.base, MODEL_ID))
      local r = decode(out)
      assert.are.equal("stop", r.parsed.finish)
      assert.is_true(validate(json.encode(VERSE), r.parsed.content))
      assert.are.same(decode(r.parsed.content), r.parsed.parsed) -- the SDK parsed the same object
      assert.are.equal("tool_calls", r.called.finish)
      assert.are.equal(json.null, r.called.content)
      assert_calls(r.called.tool_calls, { get_weather = true })
      assert.are.equal("tool_calls", r.streamed.finish) -- the SDK's stream helper assembled the deltas
      assert.are.equal(r.called.tool_calls[1]["function"].arguments, r.streamed.tool_calls[1]["function"].arguments)
      assert.are.same(decode(r.streamed.tool_calls[1]["function"].arguments), r.streamed.tool_calls[1]["function"].parsed_arguments)
      assert.is_string(r.turn.content)
      assert.are.equal("BadRequestError", r.error.name)
      assert.are.equal("response_format", r.error.param)

      out = capture(("%s node openresty/test/frameworks.mjs %s/v1 %s 2>&1"):format(ENV, srv.base, MODEL_ID))
      r = decode(out)
      for _, fw in ipairs({ "langchain", "aisdk" }) do
        assert.is_true(validate(json.encode(VERSE), json.encode(r[fw].object)), fw .. ": " .. out)
      end
      assert.are.equal("get_weather", r.langchain.tool_calls[1].name)
      assert.is_true(validate(json.encode(CITY), json.encode(r.langchain.tool_calls[1].args)))
      assert.are.equal("get_weather", r.aisdk.tool_calls[1].name)
      assert.is_true(validate(json.encode(CITY), json.encode(r.aisdk.tool_calls[1].input)))
      assert.are.equal("Sunny in " .. r.aisdk.tool_calls[1].input.city, r.aisdk.tool_results[1]) -- the tool ran
      assert.are.equal("tool-calls", r.aisdk.finish)
    end)
  end)

  it("refuses with 503 when every slot is busy and the queue is full", function()
    local srv = start("-c 4096 --slots 1 --queue 0")
    local ok, e = pcall(function()
      local dir = tmpdir()
      write(dir .. "/req", json.encode({ prompt = PROMPT, max_tokens = 4000, temperature = 0, logit_bias = NO_END }))
      sh(("%s curl -s --max-time 30 -o %s/out -H 'Content-Type: application/json' --data-binary @%s/req %s"
        .. "/v1/completions &"):format(ENV, dir, dir, srv.base))
      for _ = 1, 40 do
        if health(srv).running == 1 then break end
        sleep(0.02)
      end
      local code, body, headers = post(srv.base, "/v1/completions", { prompt = PROMPT, max_tokens = 4 })
      assert.are.equal(503, code, body)
      assert.are.equal("server_busy", decode(body).error.code)
      assert.are.equal("1", headers["retry-after"])
      assert.are.equal(1, health(srv).refused)
      sh("rm -rf " .. dir)
    end)
    assert.is_true(stop(srv))
    assert(ok, e)
  end)

  it("scales out: a front nginx keeps each conversation key on one instance", function()
    local a = start("--instance A")
    local b = start("--instance B", true)
    local front = start(("--upstream 127.0.0.1:%d --upstream 127.0.0.1:%d"):format(a.port, b.port), true)
    local ok, e = pcall(function()
      local seen, count = {}, { A = 0, B = 0 }
      for round = 1, 3 do
        for k = 1, 12 do
          local key = "conversation-" .. k
          local by_header = k % 2 == 0
          local req = { messages = CHAT, max_tokens = 1 }
          if not by_header then req.user = key end
          local code, body, headers = post(front.base, "/v1/chat/completions", req,
            by_header and ("-H 'X-Conversation-Id: " .. key .. "'") or nil)
          assert.are.equal(200, code, body)
          local instance = headers["x-bitnet-instance"]
          assert.is_truthy(instance == "A" or instance == "B", tostring(instance))
          if round == 1 then
            seen[key] = instance
            count[instance] = count[instance] + 1
          else
            assert.are.equal(seen[key], instance, key .. " moved")
          end
        end
      end
      assert.is_true(count.A > 0 and count.B > 0, "one instance got every key")
      -- a chat through the front: the second turn finds its history cached
      local hdr = "-H 'X-Conversation-Id: naomi'"
      local _, body = post(front.base, "/v1/chat/completions", { messages = CHAT, max_tokens = 8, temperature = 0 }, hdr)
      local r1 = decode(body)
      local turn2 = { CHAT[1], { role = "assistant", content = r1.choices[1].message.content },
        { role = "user", content = "And Ruth?" } }
      local code, body2 = post(front.base, "/v1/chat/completions", { messages = turn2, max_tokens = 8, temperature = 0 }, hdr)
      assert.are.equal(200, code)
      assert.is_true(decode(body2).usage.prompt_tokens_details.cached_tokens >= r1.usage.prompt_tokens)
      -- streams pass through the front as events
      code, body = post(front.base, "/v1/completions", { prompt = PROMPT, max_tokens = 8, temperature = 0, stream = true },
        "-N")
      assert.are.equal(200, code)
      local ev = events(body)
      assert.are.equal("[DONE]", ev[#ev])
    end)
    assert.is_true(stop(front))
    assert.is_true(stop(a))
    assert.is_true(stop(b))
    assert(ok, e)
  end)
end)
