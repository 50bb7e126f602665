-- bitnet.tools: tool calls in model:chat. Every call's arguments are judged
-- by Python's jsonschema (a validator we did not write) against the tool's
-- schema and parsed by dkjson; streamed deltas reassemble to the same calls;
-- bad tool lists, choices and histories raise typed errors naming the field.
local bitnet = require("bitnet")
local tools = require("bitnet.tools")
local errors = require("bitnet.errors")
local json = require("dkjson")
local validate = require("support.jsonschema").validate

local WEATHER = { type = "object", properties = { city = { type = "string", maxLength = 12 } },
  required = { "city" }, additionalProperties = false }
local ADD = { type = "object", properties = { a = { type = "integer", minimum = 0, maximum = 99 },
  b = { type = "integer", minimum = 0, maximum = 99 } }, required = { "a", "b" }, additionalProperties = false }
local TOOLS = {
  { type = "function", ["function"] = { name = "get_weather", description = "The weather in a city", parameters = WEATHER } },
  { type = "function", ["function"] = { name = "add", description = "Adds two numbers", parameters = ADD } },
}
local SCHEMA = { get_weather = json.encode(WEATHER), add = json.encode(ADD) }
local ASK = { { role = "user", content = "What is the weather in Paris?" } }

-- The typed error fn raises: its kind and param.
local function raises(param, fn)
  local ok, e = pcall(fn)
  assert.is_false(ok)
  assert.are.equal("invalid_argument", errors.kind(e), tostring(e))
  assert.are.equal(param, e.param, tostring(e))
  return e
end

-- Each call valid under its tool's schema (by jsonschema), its id unique.
local function assert_valid_calls(calls, names)
  assert.is_true(#calls >= 1)
  local ids = {}
  for _, c in ipairs(calls) do
    assert.are.equal("function", c.type)
    assert.matches("^call_", c.id)
    assert.is_nil(ids[c.id])
    ids[c.id] = true
    assert.is_truthy(names[c["function"].name], c["function"].name)
    local ok, verdict = validate(SCHEMA[c["function"].name], c["function"].arguments)
    assert.is_true(ok, verdict .. ": " .. c["function"].arguments)
    assert.are.equal("table", type(json.decode(c["function"].arguments)))
  end
end

describe("bitnet.tools", function()
  describe("checks", function()
    it("accepts OpenAI's tool objects and normalizes them", function()
      local list = tools.check(TOOLS)
      assert.are.equal(2, #list)
      assert.are.equal("get_weather", list[1].name)
      assert.are.equal("The weather in a city", list[1].description)
      assert.are.same(WEATHER, json.decode(list[1].schema))
      local bare = tools.check({ { type = "function", ["function"] = { name = "ping" } } })
      assert.are.equal('{"type":"object"}', bare[1].schema)
      assert.are.same({ "auto" }, { tools.choice(nil, list) })
      assert.are.same({ "none" }, { tools.choice(nil, {}) })
      assert.are.same({ "required", "add" }, { tools.choice({ type = "function", ["function"] = { name = "add" } }, list) })
    end)

    it("refuses bad tool lists and choices, naming the field", function()
      local many = {}
      for i = 1, 1000 do many[i] = { type = "function", ["function"] = { name = "f" .. i } } end
      assert.matches("1000 entries: at most 128", raises("tools", function() tools.check(many) end).message)
      raises("tools[0].function.name", function() tools.check({ { type = "function", ["function"] = { name = "get weather" } } }) end)
      raises("tools[0].function.name", function() tools.check({ { type = "function", ["function"] = { name = "ça" } } }) end)
      raises("tools[0].function.name", function() tools.check({ { type = "function", ["function"] = { name = ("x"):rep(65) } } }) end)
      raises("tools[1].function.name", function() tools.check({ TOOLS[1], TOOLS[1] }) end)
      raises("tools[0].type", function() tools.check({ { type = "retrieval" } }) end)
      raises("tools[0].function.parameters", function()
        tools.check({ { type = "function", ["function"] = { name = "f", parameters = 42 } } }) end)
      raises("tools[0].function.parameters", function()
        tools.check({ { type = "function", ["function"] = { name = "f", parameters = { 1, 2 } } } }) end)
      raises("tools", function() tools.check("get_weather") end)
      local list = tools.check(TOOLS)
      raises("tool_choice", function() tools.choice("sometimes", list) end)
      raises("tool_choice", function() tools.choice({ type = "function", ["function"] = { name = "nope" } }, list) end)
      raises("tool_choice", function() tools.choice("required", {}) end)
    end)

    it("reads partial JSON as a stream does", function()
      local n = tools.parse_json_prefix('{"a": "x\\u00e9\\ud83d')
      assert.are.equal("object", n.t)
      assert.is_nil(n.e)
      assert.are.equal("xé", n.fields[1].node.str) -- the half surrogate pair waits
      n = tools.parse_json_prefix('{"a": "x\\ud83d\\ude00"}')
      assert.are.equal("x\240\159\152\128", n.fields[1].node.str)
      assert.are.equal(22, n.e)
      assert.is_nil(tools.parse_json_prefix('{"a" 1}'))
      assert.is_nil(tools.parse_json_prefix('{"a": "\\q"}'))
      assert.is_nil(tools.parse_json_prefix("[1, 2").e)
      assert.is_nil(tools.parse_json_prefix("[1, 2").items[2].e) -- 2 may go on: 23
    end)
  end)

  describe("in model:chat (the generic format)", function()
    local model
    setup(function() model = assert(bitnet.load()) end)
    local function chat(extra, messages)
      -- the shipped model's 4096-token vocabulary spells JSON nearly byte by byte: a call is ~45 tokens
      local opts = { tools = TOOLS, max_tokens = 100, temperature = 0, n_ctx = 1024, parallel_tool_calls = false }
      for k, v in pairs(extra) do opts[k] = v end
      return model:chat(messages or ASK, opts)
    end

    it("calls a tool with valid arguments under required, a named tool and parallel_tool_calls", function()
      local reply, info = chat({ tool_choice = "required" })
      assert.are.equal("tool_calls", info.finish_reason, info.text)
      assert.are.equal("", reply)
      assert_valid_calls(info.tool_calls, { get_weather = true, add = true })
      assert.matches('^{"tool_call":{', info.text)
      reply, info = chat({ tool_choice = { type = "function", ["function"] = { name = "get_weather" } },
        temperature = 0.8, seed = 3 })
      assert.are.equal("tool_calls", info.finish_reason, info.text)
      assert_valid_calls(info.tool_calls, { get_weather = true })
      -- parallel: a list of calls. This model repeats its call until max_tokens (a cut list is never
      -- parsed); banning ',' (get_weather's arguments need none) closes the list after one call
      _, info = chat({ tool_choice = "required", parallel_tool_calls = true, max_tokens = 120 })
      assert.are.equal("length", info.finish_reason)
      assert.is_nil(info.tool_calls)
      local comma = model:tokenizer():id(",")
      _, info = chat({ tool_choice = { type = "function", ["function"] = { name = "get_weather" } },
        parallel_tool_calls = true, logit_bias = { [comma] = -math.huge } })
      assert.are.equal("tool_calls", info.finish_reason, info.text)
      assert.matches('^{"tool_calls":%[{"name":"get_weather"', info.text)
      assert_valid_calls(info.tool_calls, { get_weather = true })
    end)

    it("reads a list of calls as deltas per index", function()
      local plan = { format = "generic" }
      local r = tools.reader(plan)
      local text = '{"tool_calls":[{"name":"add","arguments":{"a":1,"b":2}},{"name":"get_weather","arguments":'
        .. '{"city":"Zo\\u00e9"}}]}'
      local calls = {}
      for i = 1, #text, 5 do
        assert.are.equal("", r:feed(text:sub(i, i + 4)))
        for _, d in ipairs(r:deltas()) do
          if d.name then calls[d.index + 1] = { id = d.id, name = d.name, arguments = "" }
          else calls[d.index + 1].arguments = calls[d.index + 1].arguments .. d.arguments end
        end
      end
      local _, final, reason = r:finish("stop")
      assert.are.equal("tool_calls", reason)
      assert.are.same({ { id = final[1].id, name = "add", arguments = '{"a":1,"b":2}' },
        { id = final[2].id, name = "get_weather", arguments = '{"city":"Zo\\u00e9"}' } }, calls)
      assert.are_not.equal(final[1].id, final[2].id)
      -- the same list cut short: no calls
      r = tools.reader(plan)
      r:feed(text:sub(1, 60))
      assert.are.same({ "", nil, "length" }, { r:finish("length") })
    end)

    it("lets the model answer or call under auto, and the grammar allows exactly those", function()
      local plan = tools.plan(tools.check(TOOLS), "auto", nil, { format = "generic" },
        { tok = model:tokenizer(), parallel = false })
      local function whole(text)
        local m = plan.grammar:matcher()
        return m:feed(text) and m:is_complete()
      end
      assert.is_true(whole('{"response":"Amen"}'))
      assert.is_true(whole('{"tool_call":{"name":"add","arguments":{"a":1,"b":2}}}'))
      assert.is_false(whole('{"tool_call":{"name":"add","arguments":{"a":1,"b":200}}}'))
      assert.is_false(whole('{"tool_call":{"name":"sub","arguments":{"a":1,"b":2}}}'))
      assert.is_false(whole('Amen'))
      assert.matches("get_weather: The weather in a city", plan.system, 1, true)
      assert.matches(tools.GENERIC_INSTRUCTION, plan.system, 1, true)
      -- the model's own choice, each way it goes: the parse matches the text
      for seed = 1, 4 do
        local reply, info = chat({ temperature = 1, seed = seed, max_tokens = 64 })
        local doc = json.decode(info.text)
        if info.finish_reason == "tool_calls" then
          assert_valid_calls(info.tool_calls, { get_weather = true, add = true })
          assert.are.same(doc.tool_call.arguments, (json.decode(info.tool_calls[1]["function"].arguments)))
        elseif doc then
          assert.are.equal(doc.response, reply)
          assert.is_nil(info.tool_calls)
        else
          assert.are.equal("length", info.finish_reason) -- cut inside the answer: never parsed
          assert.is_nil(info.tool_calls)
          assert.matches('^{"response":"', info.text)
        end
      end
      -- a plain answer cut by max_tokens: the reply is the text decided so far
      local reply, info = chat({ temperature = 1, seed = 2, max_tokens = 64 })
      assert.are.equal("length", info.finish_reason)
      assert.is_nil(info.tool_calls)
      assert.are.equal(info.text, '{"response":"' .. reply)
      assert.is_nil(reply:find("\\", 1, true))
    end)

    it("keeps a tool's $defs and recursion working inside the call grammar", function()
      local params = '{"$defs": {"pt": {"type": "object", "properties": {"x": {"type": "integer", "minimum": 0, '
        .. '"maximum": 9}, "next": {"$ref": "#/$defs/pt"}}, "required": ["x"], "additionalProperties": false}}, '
        .. '"type": "object", "properties": {"start": {"$ref": "#/$defs/pt"}}, "required": ["start"], '
        .. '"additionalProperties": false}'
      local list = tools.check({ { type = "function", ["function"] = { name = "walk", parameters = params } } })
      for _, parallel in ipairs({ false, true }) do
        local plan = tools.plan(list, "auto", nil, { format = "generic" }, { tok = model:tokenizer(), parallel = parallel,
          response = '{"type": ["integer", "array"], "items": {"$ref": "#"}}' })
        local function whole(text)
          local m = plan.grammar:matcher()
          return m:feed(text) and m:is_complete()
        end
        local function call(args)
          local c = '{"name":"walk","arguments":' .. args .. "}"
          return parallel and ('{"tool_calls":[' .. c .. "]}") or ('{"tool_call":' .. c .. "}")
        end
        assert.is_true(whole(call('{"start":{"x":1,"next":{"x":2,"next":{"x":3}}}}')))
        assert.is_false(whole(call('{"start":{"x":1,"next":{"x":12}}}')))
        assert.is_false(whole(call('{"start":{"next":{"x":1}}}')))
        assert.is_true(whole('{"response":[1,[2,[]]]}')) -- the answer's own "#" is the answer's root
        assert.is_false(whole('{"response":"text"}'))
      end
    end)

    it("reports a cut inside the arguments as finish_reason length, with no calls", function()
      local reply, info = chat({ tool_choice = "required", max_tokens = 30 })
      assert.are.equal("length", info.finish_reason)
      assert.is_nil(info.tool_calls)
      assert.are.equal("", reply)
      assert.is_nil(json.decode(info.text))
    end)

    it("streams calls as deltas that reassemble to the calls", function()
      local gen = model:chat(ASK, { tools = TOOLS, tool_choice = "required", max_tokens = 100, temperature = 0,
        n_ctx = 1024, async = true, parallel_tool_calls = false })
      local calls, names = {}, 0
      while true do
        local piece = gen:poll()
        if piece == nil then break end
        assert.are.equal("", piece)
        for _, d in ipairs(gen:tool_deltas()) do
          local c = calls[d.index + 1]
          if d.name then
            assert.is_nil(c)
            calls[d.index + 1] = { id = d.id, name = d.name, arguments = "" }
            names = names + 1
          else
            c.arguments = c.arguments .. d.arguments
          end
        end
      end
      assert.are.equal("tool_calls", gen.info.finish_reason)
      assert.are.equal(#gen.info.tool_calls, names)
      for i, c in ipairs(gen.info.tool_calls) do
        assert.are.same({ id = c.id, name = c["function"].name, arguments = c["function"].arguments }, calls[i])
      end
      local _, sync = chat({ tool_choice = "required" })
      assert.are.equal(sync.text, gen.info.text) -- the engine's tokens are the synchronous call's
      gen:close()
    end)

    it("renders a history of calls and results through the template", function()
      local _, info = chat({ tool_choice = "required", parallel_tool_calls = false })
      local call = info.tool_calls[1]
      local history = { ASK[1], { role = "assistant", content = nil, tool_calls = { call } },
        { role = "tool", tool_call_id = call.id, content = "Sunny, 21 C" } }
      local reply, info2 = chat({ tool_choice = "auto", parallel_tool_calls = false, max_tokens = 32 }, history)
      assert.is_string(reply)
      assert.is_true(info2.prompt_tokens > info.prompt_tokens)
      -- what the template saw: the call as the model wrote it, the result as a user turn
      local list = tools.check(TOOLS)
      local msgs = tools.history(history, { format = "generic", tool_role = false }, { parallel = false })
      assert.are.equal(info.text, msgs[2].content)
      assert.are.same({ tool_response = { tool_call_id = call.id, name = call["function"].name, content = "Sunny, 21 C" } },
        json.decode(msgs[3].content))
      assert.are.equal("user", msgs[3].role)
      local prompt = model:apply_chat_template(tools.add_system(msgs, tools.plan(list, "auto", nil,
        { format = "generic" }, { tok = model:tokenizer(), parallel = false }).system))
      assert.matches("Assistant: " .. info.text .. "<|eot_id|>User: {\"tool_response\"", prompt, 1, true)
      -- a result answering no call
      raises("messages[1].tool_call_id", function()
        chat({}, { ASK[1], { role = "tool", tool_call_id = "call_nobody", content = "x" } })
      end)
      raises("messages[1].tool_calls[0].function.arguments", function()
        chat({}, { ASK[1], { role = "assistant", tool_calls = { { id = "c1", type = "function",
          ["function"] = { name = "add", arguments = "{not json" } } } } })
      end)
    end)

    it("refuses a schema the engine cannot enforce, naming the tool", function()
      local e = raises("tools[0].function.parameters", function()
        chat({ tools = { { type = "function", ["function"] = { name = "f", parameters = { type = "array",
          items = { type = "string" }, uniqueItems = true } } } }, tool_choice = "required" })
      end)
      assert.matches("uniqueItems", e.message, 1, true)
      raises("tools[0].function.parameters", function()
        chat({ tools = { { type = "function", ["function"] = { name = "f", parameters = { type = "frog" } } } } })
      end)
      assert.has_error(function() chat({ parallel_tool_calls = "yes" }) end)
      -- none: a plain chat, no tools in the prompt
      local reply, info = chat({ tool_choice = "none", max_tokens = 8 })
      assert.are.equal(model:chat(ASK, { max_tokens = 8, temperature = 0, n_ctx = 1024 }), reply)
      assert.is_nil(info.tool_calls)
    end)

    it("answers under a JSON Schema beside the tools", function()
      local answer = { type = "object", properties = { verse = { type = "integer", minimum = 1, maximum = 9 } },
        required = { "verse" }, additionalProperties = false }
      local plan = tools.plan(tools.check(TOOLS), "auto", nil, { format = "generic" },
        { tok = model:tokenizer(), parallel = false, response = json.encode(answer) })
      local m = plan.grammar:matcher()
      assert.is_true(m:feed('{"response":{"verse":3}}') and m:is_complete())
      m = plan.grammar:matcher()
      assert.is_false(m:feed('{"response":"text"}') and m:is_complete())
      local reply, info = chat({ json_schema = answer, max_tokens = 32, temperature = 0.7, seed = 11 })
      if not info.tool_calls and info.finish_reason ~= "length" then
        assert.is_true(validate(json.encode(answer), reply))
      end
    end)
  end)

  describe("the hermes format (templates that speak <tool_call>)", function()
    local TEMPLATE = [[{%- if tools %}<|im_start|>system
# Tools
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>
Call a function with <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == "tool" %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% elif message.tool_calls %}<|im_start|>assistant
{%- for tc in message.tool_calls %}
<tool_call>
{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments }}}
</tool_call>
{%- endfor %}<|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}]]
    local model
    setup(function() model = assert(bitnet.load()) end)

    it("renders the tools and the history with the template, and parses and checks its blocks", function()
      local list = tools.check(TOOLS)
      local plan = tools.plan(list, "auto", nil, { format = "hermes", renders_tools = true },
        { tok = model:tokenizer() })
      assert.is_nil(plan.grammar)
      assert.is_nil(plan.system)
      local r = tools.reader(plan)
      local text = 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        .. '<tool_call>\n{"name": "add", "arguments": {"a": 500, "b": 1}}\n</tool_call>' -- 500 > maximum: text
      local shown = {}
      for i = 1, #text, 7 do shown[#shown + 1] = r:feed(text:sub(i, i + 6)) end
      local last, calls, reason = r:finish("stop")
      shown[#shown + 1] = last
      assert.are.equal("tool_calls", reason)
      assert.are.equal(1, #calls)
      assert.are.equal("get_weather", calls[1]["function"].name)
      assert.are.same({ city = "Paris" }, json.decode(calls[1]["function"].arguments))
      assert.matches('^Let me look%.\n.*"a": 500', r.content)
      assert.is_nil(table.concat(shown):find('"city"', 1, true)) -- the valid block never showed as text

      local reply, info = model:chat(ASK, { template = TEMPLATE, tools = TOOLS, tool_choice = "required",
        max_tokens = 100, temperature = 0, n_ctx = 1024 })
      assert.are.equal("tool_calls", info.finish_reason, info.text)
      assert.are.equal("", reply)
      assert_valid_calls(info.tool_calls, { get_weather = true, add = true })
      assert.matches("^<tool_call>\n{", info.text)
      local history = { ASK[1], { role = "assistant", tool_calls = info.tool_calls },
        { role = "tool", tool_call_id = info.tool_calls[1].id, content = "Sunny" } }
      local msgs = tools.history(history, tools.template_caps({}, TEMPLATE, function(m, extra)
        return bitnet.template.render(TEMPLATE, { messages = m, tools = extra.tools, add_generation_prompt = true })
      end), {})
      local prompt = bitnet.template.render(TEMPLATE, { messages = msgs, tools = plan.template_tools,
        add_generation_prompt = true })
      assert.matches('"name": "get_weather"', prompt, 1, true) -- the tools, by tojson
      assert.matches("<tool_call>\n{\"name\": \"" .. info.tool_calls[1]["function"].name .. "\", \"arguments\": "
        .. info.tool_calls[1]["function"].arguments .. "}\n</tool_call>", prompt, 1, true)
      assert.matches("<tool_response>\nSunny\n</tool_response>", prompt, 1, true)
    end)
  end)
end)
