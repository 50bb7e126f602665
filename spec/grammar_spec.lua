-- bitnet.grammar: structured output. The engine's masks are checked against
-- brute force in tests/grammar_test.c; here the Lua face, llama.cpp's GBNF
-- grammars, JSONSchemaBench's MaskBench dev sample, bad input, and
-- generation under a grammar (every output validated by Python's
-- jsonschema, a validator we did not write).
local bitnet = require("bitnet")
local fx = require("support.fixtures")
local json = require("dkjson")

local LLAMA3 = fx.shared .. "/tokenizer-tests/llama3/tokenizer.json"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local llama3
local function tok() llama3 = llama3 or assert(bitnet.tokenizer(LLAMA3)); return llama3 end

-- Whether the matcher takes text and is complete after it.
local function whole(g, text)
  local m = g:matcher()
  return m:feed(text) and m:is_complete()
end

-- Token by token, as MaskBench does: each token must be in the mask before
-- it is committed; the end must allow end-of-generation.
local function judged_valid(g, t, text)
  local m = g:matcher()
  for _, id in ipairs(t:encode(text, { bos = false })) do
    m:mask()
    if not m:allows(id) then return false end
    assert(m:commit(id))
  end
  m:mask()
  return m:allows(t:eos() or t:eot())
end

describe("bitnet.grammar", function()
  it("compiles GBNF and follows a text token by token", function()
    local g = assert(bitnet.grammar({ gbnf = 'root ::= "yes" | "no" | "maybe " [0-9]+' }, tok()))
    assert.matches("bitnet.Grammar<", tostring(g))
    local m = g:matcher()
    local n = m:mask()
    assert.is_true(n >= 3)
    local yes = tok():encode("yes", { bos = false })
    assert.are.equal(1, #yes)
    assert.is_true(m:allows(yes[1]))
    local x = tok():encode("x", { bos = false })[1]
    assert.is_false(m:allows(x))
    assert.is_false(m:commit(x)) -- refused: nothing changes
    assert.is_true(m:commit(yes[1]))
    assert.is_true(m:is_complete())
    m:mask()
    assert.are.same({ tok():eos() ~= nil and tok():eos() or tok():eot() }, { m:allowed()[1] })
    assert.is_true(m:commit(tok():eos() or tok():eot()))
    assert.is_true(m:is_ended())
    assert.are.equal(0, m:mask())
    m:reset()
    assert.is_false(m:is_complete())
    assert.is_true(m:feed("maybe 4"))
    assert.is_true(m:is_complete())
    assert.is_true(m:feed("2"))
    assert.is_false(m:feed("x"))
  end)

  it("says which bytes are forced", function()
    local g = assert(bitnet.grammar({ gbnf = 'root ::= "{\\"name\\": " ("1" | "2") "}"' }, tok()))
    local m = g:matcher()
    assert.are.equal('{"name": ', m:forced())
    m:feed('{"name": 2')
    assert.are.equal("}", m:forced())
  end)

  it("takes a model too, and shares the token trie between grammars", function()
    local model = assert(bitnet.load())
    local g1 = assert(bitnet.grammar({ json = true }, model))
    local g2 = assert(bitnet.grammar({ regex = "[a-z]+" }, model:tokenizer()))
    assert.are.equal(model:tokenizer():n_vocab(), g1:n_vocab())
    assert.are.equal(g1:n_vocab(), g2:n_vocab())
    assert.is_true(whole(g2, "abc"))
    assert.is_false(whole(g2, "abc1"))
  end)

  it("raises on misuse", function()
    assert.has_error(function() bitnet.grammar("root ::= x", tok()) end)
    assert.has_error(function() bitnet.grammar({ gbnf = 'root ::= "a"', json = true }, tok()) end,
      "bitnet.grammar: the spec needs exactly one of json_schema, gbnf, regex or json (got 2)")
    assert.has_error(function() bitnet.grammar({ gbnf = 'root ::= "a"', colour = 1 }, tok()) end,
      "bitnet.grammar: unknown option 'colour'")
    assert.has_error(function() bitnet.grammar({ gbnf = 'root ::= "a"' }, 42) end)
    assert.has_error(function() bitnet.grammar({ json = true, whitespace = "some" }, tok()) end)
    local m = assert(bitnet.grammar({ json = true }, tok())):matcher()
    assert.has_error(function() m:commit(-1) end)
    assert.has_error(function() m:commit(tok():n_vocab()) end)
    assert.has_error(function() m:allows("x") end)
  end)
end)

describe("GBNF", function()
  local examples = fx.read_json("spec/data/gbnf/examples.json")
  for file, cases in pairs(examples) do
    it(file .. " (llama.cpp's grammars/) accepts and rejects hand-made texts", function()
      local g = assert(bitnet.grammar({ gbnf = read("spec/data/gbnf/" .. file) }, tok()))
      for _, text in ipairs(cases.accept) do
        assert(whole(g, text), ("%s should accept %q"):format(file, text))
      end
      for _, text in ipairs(cases.reject) do
        assert(not whole(g, text), ("%s should reject %q"):format(file, text))
      end
    end)
  end

  it("names the line and column of an error", function()
    local g, err = bitnet.grammar({ gbnf = 'root ::= item\nitem ::= "a" thing\n' }, tok())
    assert.is_nil(g)
    assert.matches("line 2, column %d+", err)
    assert.matches("thing", err)
    g, err = bitnet.grammar({ gbnf = 'root ::= "a" (' }, tok())
    assert.is_nil(g)
    assert.matches("line 1, column", err)
    g, err = bitnet.grammar({ gbnf = 'start ::= "a"' }, tok())
    assert.is_nil(g)
    assert.matches("root", err)
    assert(bitnet.grammar({ gbnf = 'start ::= "a"', root = "start" }, tok()))
  end)

  it("handles left recursion and ambiguity", function()
    local g = assert(bitnet.grammar({ gbnf = 'root ::= root "+" n | n\nn ::= [0-9]+' }, tok()))
    assert.is_true(whole(g, "1+22+333"))
    assert.is_false(whole(g, "1++2"))
    g = assert(bitnet.grammar({ gbnf = 'root ::= w w w\nw ::= [a-z]+' }, tok()))
    assert.is_true(whole(g, ("x"):rep(200)))
    assert.is_false(whole(g, "xy"))
  end)
end)

describe("JSON Schema", function()
  it("passes at least 85% of MaskBench's dev sample and accepts no invalid instance", function()
    local t = tok()
    local n, pass, invalid_accepted, refused = 0, 0, 0, 0
    for line in io.lines(fx.shared .. "/structured/maskbench-dev.jsonl") do
      local case = json.decode(line)
      n = n + 1
      local g = bitnet.grammar({ json_schema = case.schema }, t)
      if not g then
        refused = refused + 1
      else
        local ok = true
        for _, test in ipairs(case.tests) do
          local accepted = judged_valid(g, t, test.text)
          if accepted ~= test.valid then ok = false end
          if accepted and not test.valid then
            invalid_accepted = invalid_accepted + 1
            print("invalid accepted: " .. case.name .. ": " .. test.text:sub(1, 200))
          end
        end
        if ok then pass = pass + 1 end
      end
    end
    print(("MaskBench dev: %d schemas, %d passing (%.1f%%), %d refused, %d invalid accepted"):format(
      n, pass, 100 * pass / n, refused, invalid_accepted))
    assert.are.equal(590, n)
    assert.are.equal(0, invalid_accepted)
    assert.is_true(pass / n >= 0.85)
  end)

  it("takes a schema as a Lua table", function()
    local g = assert(bitnet.grammar({ json_schema = {
      type = "object", required = { "n" },
      properties = { n = { type = "integer", minimum = 1, maximum = 12 }, tags = { type = "array", items = { type = "string" } } },
      additionalProperties = false,
    } }, tok()))
    assert.is_true(whole(g, '{"n": 12}'))
    assert.is_true(whole(g, '{"n": 1, "tags": ["a", "b"]}'))
    assert.is_false(whole(g, '{"n": 13}'))
    assert.is_false(whole(g, '{"n": 0}'))
    assert.is_false(whole(g, '{"tags": []}'))
    assert.is_false(whole(g, '{"n": 1, "x": 2}'))
  end)

  it("whitespace: flexible by default, compact on request", function()
    local schema = '{"type": "array", "items": {"type": "integer"}}'
    local flexible = assert(bitnet.grammar({ json_schema = schema }, tok()))
    local compact = assert(bitnet.grammar({ json_schema = schema, whitespace = "compact" }, tok()))
    assert.is_true(whole(flexible, "[1, 2,\n 3]"))
    assert.is_true(whole(compact, "[1,2,3]"))
    assert.is_false(whole(compact, "[1, 2]"))
  end)

  it("nullable: ignored as JSON Schema validators do, honoured with openapi_nullable", function()
    local schema = [[{"type": "object", "properties": {
      "a": {"type": "string", "nullable": true},
      "b": {"type": "integer", "nullable": true, "enum": [1, 2]},
      "c": {"not": {"type": "string", "nullable": true}}}}]]
    local plain = assert(bitnet.grammar({ json_schema = schema }, tok()))
    local openapi = assert(bitnet.grammar({ json_schema = schema, openapi_nullable = true }, tok()))
    assert.is_false(whole(plain, '{"a": null}'))
    assert.is_true(whole(openapi, '{"a": null}'))
    assert.is_true(whole(openapi, '{"a": "x", "b": 2}'))
    assert.is_false(whole(openapi, '{"b": null}')) -- the enum does not list null (OpenAPI 3.0.3)
    -- under not: the negated node allows strings and null, so neither is left
    assert.is_true(whole(plain, '{"c": null}'))
    assert.is_false(whole(openapi, '{"c": null}'))
    assert.is_false(whole(openapi, '{"c": "s"}'))
    assert.is_true(whole(openapi, '{"c": 1}'))
    assert.has_error(function() bitnet.grammar({ regex = "a", openapi_nullable = true }, tok()) end,
      "bitnet.grammar: option 'openapi_nullable' is only for json_schema")
  end)

  it("json = true takes any JSON value; json = \"object\" only objects", function()
    local any = assert(bitnet.grammar({ json = true }, tok()))
    for _, text in ipairs({ '{"a": [1, 2.5e-3, "x", null, true, {}]}', "[]", '"s"', "-0.5", "null" }) do
      assert(whole(any, text), text)
    end
    for _, text in ipairs({ "{'a': 1}", "[1,]", "01", "nul", '"\\x"' }) do
      assert(not whole(any, text), text)
    end
    local obj = assert(bitnet.grammar({ json = "object" }, tok()))
    assert.is_true(whole(obj, '{"a": 1}'))
    assert.is_false(whole(obj, "[1]"))
  end)
end)

describe("bad grammars", function()
  local cases = {
    { "a schema that is not JSON", { json_schema = "{type: object" } },
    { "a $ref to nowhere", { json_schema = '{"$ref": "#/$defs/missing"}' } },
    { "a $ref cycle with no base case", { json_schema = '{"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}' } },
    { "minItems above maxItems", { json_schema = '{"type": "array", "minItems": 3, "maxItems": 2}' } },
    { "an empty enum", { json_schema = '{"enum": []}' } },
    { "a pattern with an unbalanced group", { json_schema = '{"type": "string", "pattern": "(ab"}' } },
    { "a regex with a lookahead", { regex = "(?=a)b" } },
    { "GBNF with an undefined rule", { gbnf = "root ::= missing" } },
  }
  for _, c in ipairs(cases) do
    it("refuses " .. c[1] .. " with a message, quickly", function()
      local t0 = bitnet.core.clock()
      local g, err = bitnet.grammar(c[2], tok())
      assert.is_nil(g)
      assert.is_string(err)
      assert.is_true(#err > 10)
      assert.is_true(bitnet.core.clock() - t0 < 5)
    end)
  end

  it("stops a grammar whose states explode with a message, within its budget", function()
    local g = assert(bitnet.grammar({ regex = "(a{1000}){1000}" }, tok()))
    local m = g:matcher()
    local t0 = bitnet.core.clock()
    local ok, err = pcall(m.feed, m, ("a"):rep(60000))
    assert.is_false(ok)
    assert.matches("max_dfa_states", err)
    assert.is_true(bitnet.core.clock() - t0 < 5)
  end)

  it("stops an ambiguous grammar with a message, each call within a second", function()
    -- found by fuzz_gbnf: term may be empty and expr repeats terms, so
    -- every byte has ever more readings (fuzz/slow_units/gbnf took 23 s)
    local gbnf = [[
root  ::= (expr "=" ws term "\n")+
expr  ::= term ([-+*/]*term)*
term  ::= ident | num | "(" ws expr ")" ws
ident ::= [a-z! [a/z0-9_]* ws
num   ::= [0-9]+ ws
ws    ::= [`\t\n]*
]]
    local m = assert(bitnet.grammar({ gbnf = gbnf }, tok())):matcher()
    local text, err = "(a +b) o in algebraic notation, using PGN convenethns", nil
    for i = 1, #text do
      local t0 = bitnet.core.clock()
      local ok, e = pcall(m.mask, m)
      if ok then ok, e = pcall(m.feed, m, text:sub(i, i)) end
      assert.is_true(bitnet.core.clock() - t0 < 1)
      if not ok then err = e break end
    end
    assert.matches("too ambiguous: .* max_%a+", err) -- max_work or max_branches, whichever comes first
  end)

  -- #timed: its bound is for the machine's own speed, not valgrind's (50x slower)
  it("refuses a 10 MB schema or compiles it within budget #timed", function()
    local props = {}
    for i = 1, 200000 do props[#props + 1] = ('"p%d": {"type": "string", "maxLength": 9}'):format(i) end
    local schema = '{"type": "object", "properties": {' .. table.concat(props, ", ") .. "}}"
    assert.is_true(#schema > 8e6)
    local t0 = bitnet.core.clock()
    local g, err = bitnet.grammar({ json_schema = schema }, tok())
    assert.is_true(g ~= nil or type(err) == "string")
    assert.is_true(bitnet.core.clock() - t0 < 30)
  end)
end)

describe("a long generation under a recursive schema", function()
  it("follows 2,000 tokens of a random walk through the mask", function()
    local schema = [[{"$defs": {"node": {"type": "object", "properties": {
      "name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
      "required": ["name", "children"], "additionalProperties": false}}, "$ref": "#/$defs/node"}]]
    local g = assert(bitnet.grammar({ json_schema = schema }, tok()))
    local m = g:matcher()
    local t = tok()
    local seed = 12345
    local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
    -- mostly tokens that neither close a structure nor are blank, so the
    -- nesting grows; any allowed token otherwise
    local function pick(allowed)
      if rand(10) <= 9 then
        for _ = 1, 50 do
          local id = allowed[rand(#allowed)]
          local p = t:piece(id)
          if not t:is_eog(id) and not p:find("[%]}]") and p:find("%S") then return id end
        end
      end
      local id
      repeat id = allowed[rand(#allowed)] until not t:is_eog(id) or #allowed == 1
      return id
    end
    local pieces, depth_max, depth = {}, 0, 0
    for _ = 1, 2000 do
      local allowed = m:allowed()
      assert.is_true(#allowed > 0)
      local id = pick(allowed)
      assert.is_false(t:is_eog(id)) -- the walk keeps the nesting open: the text is never complete
      assert.is_true(m:commit(id))
      local p = t:piece(id)
      pieces[#pieces + 1] = p
      for c in p:gmatch("[%[{%]}]") do
        depth = depth + ((c == "{" or c == "[") and 1 or -1)
        if depth > depth_max then depth_max = depth end
      end
    end
    assert.are.equal(2000, #pieces)
    assert.is_true(depth_max >= 10)
    -- the same text read in one piece is in the same state
    local again = g:matcher()
    assert.is_true(again:feed(table.concat(pieces)))
    assert.are.equal(m:mask(), again:mask())
  end)
end)

describe("generation under a grammar", function()
  local model
  setup(function() model = assert(bitnet.load()) end)

  local validate = require("support.jsonschema").validate -- Python's jsonschema judges the text

  local schemas = {
    [[{"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
      "age": {"type": "integer", "minimum": 0, "maximum": 150}, "tags": {"type": "array",
      "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}}, "required": ["name", "age"], "additionalProperties": false}]],
    [[{"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 4}]],
    [[{"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": "^[A-Z][a-z]+$", "maxLength": 12}]}]],
  }
  for i, schema in ipairs(schemas) do
    it("writes JSON that validates against schema " .. i .. " (sampled, several seeds)", function()
      for seed = 1, 4 do
        local text, info = model:generate("And it came to pass", { json_schema = schema, max_tokens = 120,
          temperature = 0.9, seed = seed })
        if info.finish_reason == "stop" then
          local ok, verdict = validate(schema, text)
          assert(ok, ("seed %d: %q does not validate: %s"):format(seed, text, verdict))
        else
          assert.are.equal("length", info.finish_reason)
        end
      end
    end)
  end

  it("fast-forwarding forced tokens leaves greedy output unchanged", function()
    local schema = [[{"type": "object", "properties": {"book": {"type": "string", "maxLength": 24},
      "chapter": {"type": "integer", "minimum": 1, "maximum": 150}}, "required": ["book", "chapter"],
      "additionalProperties": false}]]
    local a, ia = model:generate("In the beginning", { json_schema = schema, temperature = 0, max_tokens = 60 })
    local b, ib = model:generate("In the beginning", { json_schema = schema, temperature = 0, max_tokens = 60,
      fast_forward = false })
    assert.are.equal(b, a)
    assert.are.equal(ib.completion_tokens, ia.completion_tokens)
    assert.is_true(ia.forced_tokens > 0)
    assert.are.equal(0, ib.forced_tokens)
  end)

  it("works in stream, chat and async generations, with GBNF and regex too", function()
    local pieces = {}
    for piece in model:stream("Amen", { gbnf = 'root ::= "Amen" ("." | "!")', temperature = 0.5, seed = 3 }) do
      pieces[#pieces + 1] = piece
    end
    assert.matches("^Amen[.!]$", table.concat(pieces))
    local reply = model:chat({ { role = "user", content = "Say a number" } }, { regex = "[0-9]{1,3}", seed = 2 })
    assert.matches("^%d+$", reply)
    local gen = model:generate("The LORD", { json = true, max_tokens = 40, seed = 5, async = true })
    assert.is_true(gen:wait(60))
    local parts = {}
    for piece in gen do parts[#parts + 1] = piece end
    if gen.info.finish_reason == "stop" then
      local _, _, err = json.decode(table.concat(parts))
      assert.is_nil(err)
    end
  end)

  it("reports a logit_bias that bans every token the grammar allows: raised in sync, a typed error in async", function()
    local g = assert(bitnet.grammar({ regex = "yes|no" }, model))
    local m = g:matcher()
    m:mask()
    local bias = {}
    for _, id in ipairs(m:allowed()) do bias[id] = -math.huge end
    local ok, err = pcall(model.generate, model, "x", { grammar = g, logit_bias = bias, temperature = 0 })
    assert.is_false(ok)
    assert.matches("every token the grammar allows here is banned", tostring(err), 1, true)
    local gen = model:generate("x", { grammar = g, logit_bias = bias, temperature = 0, async = true })
    assert.is_true(gen:wait(60))
    assert.are.equal("error", gen.info.finish_reason)
    assert.are.equal("invalid_argument", require("bitnet.errors").kind(gen.error))
    assert.matches("every token the grammar allows here is banned", tostring(gen.error), 1, true)
    gen:close()
  end)

  it("raises when a generation names two grammars or a bad one", function()
    assert.has_error(function() model:generate("x", { json = true, regex = "a" }) end)
    assert.has_error(function() model:generate("x", { json_schema = '{"$ref": "#/nowhere"}' }) end)
    assert.has_error(function() model:generate("x", { grammar = "root ::= x" }) end)
  end)
end)
