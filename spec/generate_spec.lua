-- model:generate / stream / chat / chat_stream / apply_chat_template on a
-- GGUF fixture (random weights, placeholder SentencePiece vocabulary: its
-- output is gibberish made of " wN" pieces and raw bytes, which is exactly
-- what exercises UTF-8 holding and stop strings).
local bitnet = require("bitnet")
local fx = require("support.fixtures")
local generate = require("bitnet.generate")

local MODEL = fx.shared .. "/fixtures/gguf/bitnet-silu-tq2_0/model.gguf"
local PROMPT = "w1 w2 w3 w4"

-- pcall that must fail with a message containing `want` (plain text)
local function assert_raises(fn, want)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error containing: " .. want)
  err = tostring(err)
  assert(err:find(want, 1, true), ("error %q does not contain %q"):format(err, want))
end

-- true when s is well-formed UTF-8 (no utf8 library on LuaJIT)
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2 or (c >= 0xE0 and c <= 0xEF) and 3
      or (c >= 0xF0 and c <= 0xF4) and 4 or nil
    if not len or i + len - 1 > n then return false end
    for k = i + 1, i + len - 1 do
      local b = s:byte(k)
      if b < 0x80 or b > 0xBF then return false end
    end
    i = i + len
  end
  return true
end

local function collect(iter)
  local pieces = {}
  for piece in iter do pieces[#pieces + 1] = piece end
  return pieces
end

local argmax = fx.argmax -- 0-based id of the largest value (lowest on ties)

describe("generate.valid_utf8", function()
  it("keeps well-formed text and replaces each ill-formed part with U+FFFD", function()
    local R = "\239\191\189"
    assert.are.equal("plain", generate.valid_utf8("plain"))
    assert.are.equal("caf\195\169 \240\159\152\128", generate.valid_utf8("caf\195\169 \240\159\152\128"))
    assert.are.equal(R .. "A", generate.valid_utf8("\226A"))           -- cut short by ASCII
    assert.are.equal(R .. "A", generate.valid_utf8("\226\130A"))      -- lead + one continuation: one U+FFFD
    assert.are.equal("x" .. R .. R .. "y", generate.valid_utf8("x\255\128y")) -- bytes that start nothing
    assert.are.equal(R .. R .. R, generate.valid_utf8("\237\160\128")) -- a surrogate
    assert.are.equal(R .. R, generate.valid_utf8("\192\175"))          -- overlong
    assert.are.equal("a" .. R, generate.valid_utf8("a\240\159\152"))  -- cut at the end
  end)
end)

describe("generation", function()
  local model

  setup(function()
    model = assert(bitnet.load(MODEL))
  end)

  describe("model:generate", function()
    it("continues greedily exactly as a hand-written loop does", function()
      local text, info = model:generate(PROMPT, { max_tokens = 12, temperature = 0 })
      local sess = model:session()
      local ids = model:tokenize(PROMPT, { special = true })
      sess:feed(ids)
      local out = {}
      for i = 1, 12 do
        out[i] = argmax(sess:logits())
        sess:feed({ out[i] })
      end
      assert.are.equal(generate.valid_utf8(model:detokenize(out, { strip_leading_space = false })), text)
      assert.are.equal("length", info.finish_reason)
      assert.are.equal(#ids, info.prompt_tokens)
      assert.are.equal(12, info.completion_tokens)
      assert.are.equal(0, info.cached_tokens)
      for _, k in ipairs({ "prefill_seconds", "prefill_tokens_per_second", "decode_seconds", "decode_tokens_per_second" }) do
        assert.is_number(info[k])
        assert.is_true(info[k] >= 0)
      end
      assert.is_true(info.decode_tokens_per_second > 0)
    end)

    it("repeats a seeded run and differs for another seed", function()
      local opts = { max_tokens = 30, temperature = 1.2, top_p = 0.98, seed = 11 }
      local a, ia = model:generate(PROMPT, opts)
      local b = model:generate(PROMPT, opts)
      assert.are.equal(a, b)
      assert.are.equal(11, ia.seed)
      opts.seed = 12
      assert.are_not.equal(a, model:generate(PROMPT, opts))
      -- without a seed the info reports the one chosen, which reproduces the run
      local c, ic = model:generate(PROMPT, { max_tokens = 30, temperature = 1.2 })
      assert.are.equal(c, model:generate(PROMPT, { max_tokens = 30, temperature = 1.2, seed = ic.seed }))
    end)

    it("accepts token ids as the prompt", function()
      local ids = model:tokenize(PROMPT, { special = true })
      assert.are.equal(model:generate(PROMPT, { max_tokens = 8, temperature = 0 }),
        model:generate(ids, { max_tokens = 8, temperature = 0 }))
      assert_raises(function() model:generate({ 1, 9999 }) end, "model:generate: prompt token 2 is not a token id (0..511)")
      assert_raises(function() model:generate(42) end,
        "model:generate: argument 1 (prompt) must be a string or an array of token ids, got number")
    end)

    it("parses special tokens in the prompt and does not double BOS", function()
      local _, with = model:generate("<s>" .. PROMPT, { max_tokens = 0 })
      local _, without = model:generate(PROMPT, { max_tokens = 0 })
      assert.are.equal(without.prompt_tokens, with.prompt_tokens)
    end)

    it("max_tokens = 0 returns an empty string with finish_reason length", function()
      local text, info = model:generate(PROMPT, { max_tokens = 0 })
      assert.are.equal("", text)
      assert.are.equal("length", info.finish_reason)
      assert.are.equal(0, info.completion_tokens)
    end)

    it("an empty prompt is BOS alone when the model adds BOS, else an error", function()
      local text, info = model:generate("", { max_tokens = 5, temperature = 0 })
      assert.are.equal(1, info.prompt_tokens)
      assert.are.equal(model:generate({ 1 }, { max_tokens = 5, temperature = 0 }), text)
      assert_raises(function() model:generate({}) end,
        "model:generate: the prompt is empty and the model adds no BOS token: nothing to continue from")
    end)

    it("a prompt longer than the context is an error naming both lengths", function()
      local ids = {}
      for i = 1, 20 do ids[i] = 300 + i end
      assert_raises(function() model:generate(ids, { n_ctx = 8 }) end,
        "model:generate: the prompt is 20 tokens but the context holds 8 (n_ctx)")
    end)

    it("stops with finish_reason length when the context fills up", function()
      local ids = {}
      for i = 1, 16 do ids[i] = 300 + i end
      local _, info = model:generate(ids, { n_ctx = 20, max_tokens = 100, temperature = 0 })
      assert.are.equal("length", info.finish_reason)
      assert.are.equal(5, info.completion_tokens) -- positions 17..20 fed, one more token predicted
      ids[17], ids[18], ids[19], ids[20] = 1, 2, 3, 4
      _, info = model:generate(ids, { n_ctx = 20, max_tokens = 100, temperature = 0 })
      assert.are.equal(1, info.completion_tokens)
      assert.are.equal("length", info.finish_reason)
    end)

    it("stops at an end-of-generation token without returning it", function()
      local text, info = model:generate(PROMPT, { max_tokens = 10, temperature = 0, logit_bias = { [2] = 100 } })
      assert.are.equal("", text)
      assert.are.equal("stop", info.finish_reason)
      assert.are.equal(0, info.completion_tokens)
      -- EOS after a few tokens: the text before it is returned
      local policy = function(ids, logits, _, state)
        if state.step == 4 then return 2 end
        return ids, logits
      end
      local t2, i2 = model:generate(PROMPT, { max_tokens = 10, temperature = 0, policy = policy })
      assert.are.equal("stop", i2.finish_reason)
      assert.are.equal(3, i2.completion_tokens)
      assert.are.equal(model:generate(PROMPT, { max_tokens = 3, temperature = 0 }), t2)
    end)
  end)

  describe("model:stream", function()
    it("yields whole-UTF-8 pieces that concatenate to generate's text", function()
      local cases = {
        { max_tokens = 40, temperature = 0 },
        { max_tokens = 60, temperature = 1.5, top_k = 0, top_p = 1, min_p = 0, seed = 1 },
        { max_tokens = 60, temperature = 1.5, top_k = 0, top_p = 1, min_p = 0, seed = 2 },
        { max_tokens = 60, policy = "creative", seed = 3 },
      }
      local saw_replacement = false
      for _, opts in ipairs(cases) do
        local text, info = model:generate(PROMPT, opts)
        local gen = model:stream(PROMPT, opts)
        local pieces = collect(gen)
        assert.are.equal(text, table.concat(pieces))
        assert.are.same(info.completion_tokens, gen.info.completion_tokens)
        assert.are.equal(info.finish_reason, gen.info.finish_reason)
        for _, p in ipairs(pieces) do
          assert.is_true(#p > 0)
          assert.is_true(valid_utf8(p), ("piece %q is not whole UTF-8"):format(p))
        end
        if text:find("\239\191\189", 1, true) then saw_replacement = true end
      end
      -- the random byte tokens did produce broken sequences somewhere
      assert.is_true(saw_replacement)
    end)

    it("advances in bounded steps a host can drive", function()
      local ids = {}
      for i = 1, 150 do ids[i] = 300 + i % 50 end
      local sess = model:session()
      local gen = model:stream(ids, { max_tokens = 5, temperature = 0, session = sess })
      assert.are.equal(0, sess:pos()) -- nothing is evaluated before the first step
      assert.are.equal("", gen:step())
      assert.are.equal(64, sess:pos())
      assert.are.equal("", gen:step())
      assert.are.equal(128, sess:pos())
      local parts = {}
      for piece in gen.step, gen do parts[#parts + 1] = piece end
      assert.are.equal(model:generate(ids, { max_tokens = 5, temperature = 0 }), table.concat(parts))
      assert.are.equal(150, gen.info.prompt_tokens)
      assert.is_nil(gen:step())
      -- cancelled while the prompt is evaluated
      local fresh = model:session()
      local g2 = model:stream(ids, { max_tokens = 5, session = fresh })
      g2:step()
      g2:cancel()
      assert.is_nil(g2())
      assert.are.equal("cancelled", g2.info.finish_reason)
      assert.are.equal(0, g2.info.completion_tokens)
      assert.are.equal(64, fresh:pos())
      -- the next call reuses what was evaluated
      local _, info = model:generate(ids, { max_tokens = 1, session = fresh })
      assert.are.equal(64, info.cached_tokens)
      sess:close()
      fresh:close()
    end)

    it("is what generate returns with stream = true", function()
      local opts = { max_tokens = 12, temperature = 0.7, seed = 6 }
      local text = model:generate(PROMPT, opts)
      opts.stream = true
      local gen = model:generate(PROMPT, opts)
      assert.are.equal(text, table.concat(collect(gen)))
      assert.are.equal("length", gen.info.finish_reason)
    end)

    it("works inside a coroutine", function()
      local opts = { max_tokens = 20, temperature = 0.9, seed = 4 }
      local text = model:generate(PROMPT, opts)
      local co = coroutine.wrap(function()
        for piece in model:stream(PROMPT, opts) do coroutine.yield(piece) end
        return nil
      end)
      local got = {}
      for piece in co do got[#got + 1] = piece end
      assert.are.equal(text, table.concat(got))
    end)

    it("can be cancelled with gen:cancel() and by breaking out", function()
      local gen = model:stream(PROMPT, { max_tokens = 50, temperature = 0 })
      assert.are.equal("bitnet.Generation<running, 0 tokens>", tostring(gen))
      local first = gen()
      assert.is_string(first)
      gen:cancel()
      while gen() do end
      assert.are.equal("cancelled", gen.info.finish_reason)
      assert.truthy(tostring(gen):find("^bitnet%.Generation<cancelled, [1-9]%d* tokens>$"))
      -- Lua 5.4 closes the loop's fourth value on break (LuaJIT ignores it)
      local it, st, ctl, closer = model:stream(PROMPT, { max_tokens = 50, temperature = 0 })
      for piece in it, st, ctl, closer do
        assert.is_string(piece)
        break
      end
      if not jit then assert.are.equal("cancelled", it.info.finish_reason) end
    end)
  end)

  describe("stop strings", function()
    -- greedy output and the text each of its tokens released
    local function greedy_tokens(n)
      local texts = {}
      local text = model:generate(PROMPT, {
        max_tokens = n, temperature = 0,
        on_token = function(_, t) texts[#texts + 1] = t end,
      })
      return text, texts
    end

    it("cut the text before a stop string split across tokens", function()
      local full, texts = greedy_tokens(30)
      local joined = table.concat(texts)
      assert.are.equal(joined, full:sub(1, #joined)) -- full may end in U+FFFD for a cut sequence
      -- a stop string made of the end of one token's text and the start of the next
      local k, stop
      for i = 3, #texts - 1 do
        if #texts[i] >= 3 and #texts[i + 1] >= 3 and valid_utf8(texts[i]) and texts[i]:match("^[ %w]+$")
          and texts[i + 1]:match("^[ %w]+$") then
          k, stop = i, texts[i]:sub(-2) .. texts[i + 1]:sub(1, 2)
          break
        end
      end
      assert(k, "the greedy output has no two ASCII tokens in a row")
      local cut = full:find(stop, 1, true)
      local text, info = model:generate(PROMPT, { max_tokens = 30, temperature = 0, stop = stop })
      assert.are.equal(full:sub(1, cut - 1), text)
      assert.are.equal("stop", info.finish_reason)
      local pieces = collect(model:stream(PROMPT, { max_tokens = 30, temperature = 0, stop = { "zzz", stop } }))
      assert.are.equal(text, table.concat(pieces))
      for _, p in ipairs(pieces) do assert.is_nil(p:find(stop, 1, true)) end
    end)

    it("hold back text that may start a stop string until it is decided", function()
      local full, texts = greedy_tokens(20)
      -- the stop string begins with a token's text but never occurs
      local stop = texts[5] .. "\1never"
      local released_before_end = {}
      local gen = model:stream(PROMPT, { max_tokens = 20, temperature = 0, stop = stop })
      local seen = ""
      for piece in gen do
        seen = seen .. piece
        released_before_end[#released_before_end + 1] = seen
      end
      assert.are.equal(full, seen) -- released in the end
      assert.are.equal("length", gen.info.finish_reason)
      -- while undecided, the piece after token 4 did not include token 5's text
      local through4 = table.concat(texts, "", 1, 4)
      local through5 = through4 .. texts[5]
      for _, s in ipairs(released_before_end) do
        assert.is_false(#s > #through4 and #s < #through5)
      end
    end)

    it("take the earliest of several stop strings", function()
      local full = greedy_tokens(30)
      local a, b = full:sub(20, 23), full:sub(10, 12)
      local text = model:generate(PROMPT, { max_tokens = 30, temperature = 0, stop = { a, b } })
      assert.are.equal(full:sub(1, math.min(full:find(a, 1, true), full:find(b, 1, true)) - 1), text)
    end)

    it("are checked", function()
      assert_raises(function() model:generate(PROMPT, { stop = 5 }) end,
        "model:generate: option 'stop' must be a string or a list of strings")
      assert_raises(function() model:generate(PROMPT, { stop = { "a", "" } }) end,
        "model:generate: option 'stop' entry 2 must be a non-empty string")
    end)
  end)

  describe("on_token", function()
    it("sees every token and cancels when it returns false", function()
      local ids, texts = {}, {}
      local text, info = model:generate(PROMPT, {
        max_tokens = 10, temperature = 0,
        on_token = function(id, t)
          ids[#ids + 1] = id
          texts[#texts + 1] = t
          return #ids < 4
        end,
      })
      assert.are.equal(4, #ids)
      assert.are.equal("cancelled", info.finish_reason)
      assert.are.equal(4, info.completion_tokens)
      assert.are.equal(table.concat(texts), text)
      assert.are.equal(model:generate(PROMPT, { max_tokens = 4, temperature = 0 }), text)
    end)
  end)

  describe("sessions", function()
    it("reuse the common prefix and give the same text as a fresh run", function()
      local sess = model:session({ n_ctx = 128 })
      local p1 = "w1 w2 w3 w4 w5 w6"
      local p2 = p1 .. " w7 w8"
      local t1, i1 = model:generate(p1, { max_tokens = 5, temperature = 0, session = sess })
      assert.are.equal(0, i1.cached_tokens)
      assert.are.equal(model:generate(p1, { max_tokens = 5, temperature = 0 }), t1)
      local t2, i2 = model:generate(p2, { max_tokens = 5, temperature = 0, session = sess })
      assert.are.equal(i1.prompt_tokens, i2.cached_tokens) -- p1's tokens are a prefix of p2's
      assert.are.equal(model:generate(p2, { max_tokens = 5, temperature = 0 }), t2)
      -- the same prompt again: everything but its last token is reused
      local t3, i3 = model:generate(p2, { max_tokens = 5, temperature = 0, session = sess })
      assert.are.equal(t2, t3)
      assert.are.equal(i2.prompt_tokens - 1, i3.cached_tokens)
      -- continuing with the generated tokens reuses them too (all but the
      -- last, which was sampled but never fed)
      local ids = model:tokenize(p2, { special = true })
      model:generate(ids, { max_tokens = 5, temperature = 0, session = sess,
        on_token = function(id) ids[#ids + 1] = id end })
      local _, i4 = model:generate(ids, { max_tokens = 2, temperature = 0, session = sess })
      assert.are.equal(#ids - 1, i4.cached_tokens)
      -- a session fed by hand: the core knows its tokens, so the prompt's
      -- prefix is still reused and the extra token rewound
      sess:rewind(3)
      sess:feed({ 300 })
      local t5, i5 = model:generate(p2, { max_tokens = 5, temperature = 0, session = sess })
      assert.are.equal(3, i5.cached_tokens)
      assert.are.equal(t2, t5)
      assert.are.equal(tostring(sess):match("^bitnet.Session<%d+/128"), "bitnet.Session<" .. sess:pos() .. "/128")
      sess:close()
    end)

    it("are checked", function()
      assert_raises(function() model:generate(PROMPT, { session = {} }) end,
        "model:generate: option 'session' must be a bitnet.Session")
      local sess = model:session()
      assert_raises(function() model:generate(PROMPT, { session = sess, n_ctx = 5 }) end,
        "model:generate: options 'n_ctx' and 'session' cannot be combined")
      sess:close()
      assert_raises(function() model:generate(PROMPT, { session = sess }) end, "the session is closed")
    end)
  end)

  describe("options", function()
    it("unknown keys and bad values raise naming the key", function()
      assert_raises(function() model:generate(PROMPT, { temp = 1 }) end, "model:generate: unknown option 'temp'")
      assert_raises(function() model:stream(PROMPT, { maxtokens = 1 }) end, "model:stream: unknown option 'maxtokens'")
      assert_raises(function() model:generate(PROMPT, 3) end, "model:generate: options must be a table, got number")
      assert_raises(function() model:generate(PROMPT, { max_tokens = -1 }) end,
        "model:generate: option 'max_tokens' must be an integer >= 0")
      assert_raises(function() model:generate(PROMPT, { max_tokens = 1.5 }) end,
        "model:generate: option 'max_tokens' must be an integer >= 0")
      assert_raises(function() model:generate(PROMPT, { n_ctx = 0 }) end,
        "model:generate: option 'n_ctx' must be an integer >= 1")
      assert_raises(function() model:generate(PROMPT, { on_token = 1 }) end,
        "model:generate: option 'on_token' must be a function")
      assert_raises(function() model:generate(PROMPT, { stream = 1 }) end,
        "model:generate: option 'stream' must be a boolean")
      assert_raises(function() model:generate(PROMPT, { temperature = -1 }) end,
        "model:generate: option 'temperature' must be >= 0")
      assert_raises(function() model:generate(PROMPT, { top_k = "x" }) end,
        "model:generate: option 'top_k' must be an integer")
      assert_raises(function() model:generate(PROMPT, { policy = "wild" }) end,
        "model:generate: unknown policy 'wild' (presets: balanced, creative, greedy, precise)")
      assert_raises(function() model:generate(PROMPT, { policy = { temp = 1 } }) end,
        "model:generate: unknown sampler option 'temp' in policy")
      assert_raises(function() model:generate(PROMPT, { policy = 7 }) end,
        "model:generate: option 'policy' must be a preset name, a table of sampler options or a function, got number")
      assert_raises(function() model:generate(PROMPT, { sampler = {} }) end,
        "model:generate: option 'sampler' must be a bitnet.Sampler")
      assert_raises(function() model:generate(PROMPT, { sampler = bitnet.sampler(), top_p = 0.5 }) end,
        "model:generate: option 'top_p' cannot be combined with 'sampler'")
      assert_raises(function() model:generate(PROMPT, { sampler = bitnet.sampler(), policy = "greedy" }) end,
        "model:generate: with 'sampler', option 'policy' can only be a function")
    end)

    it("each sampler option reaches the sampler", function()
      local base = { max_tokens = 25, temperature = 1, top_k = 0, top_p = 1, min_p = 0, seed = 21 }
      local plain = model:generate(PROMPT, base)
      -- penalties change what greedy decoding picks once a token recurs
      local greedy = { max_tokens = 25, temperature = 0 }
      local changes = {
        { temperature = 0.5 }, { top_k = 3 }, { top_p = 0.5 }, { min_p = 0.5 }, { typical_p = 0.5 },
        { logit_bias = { [300] = 100 } }, { seed = 22 },
        { repeat_penalty = 3, repeat_last_n = 64, base = greedy }, { presence_penalty = 100, base = greedy },
        { frequency_penalty = 100, base = greedy }, { repeat_penalty = 3, repeat_last_n = 0, base = greedy, same = true },
      }
      for _, change in ipairs(changes) do
        local from = change.base or base
        change.base = nil
        local same = change.same
        change.same = nil
        local opts = {}
        for k, v in pairs(from) do opts[k] = v end
        for k, v in pairs(change) do opts[k] = v end
        local key = next(change)
        -- the same result as the sampler made by hand with those options
        local sopts = {}
        for k, v in pairs(opts) do
          if k ~= "max_tokens" then sopts[k] = v end
        end
        local text = model:generate(PROMPT, opts)
        assert.are.equal(model:generate(PROMPT, { max_tokens = 25, sampler = bitnet.sampler(sopts) }), text, key)
        local reference = from == base and plain or model:generate(PROMPT, greedy)
        if same then
          assert.are.equal(reference, text, key)
        else
          assert.are_not.equal(reference, text, key)
        end
      end
    end)

    it("presets and option tables resolve as documented; options override them", function()
      local greedy = model:generate(PROMPT, { max_tokens = 15, temperature = 0 })
      assert.are.equal(greedy, model:generate(PROMPT, { max_tokens = 15, policy = "greedy" }))
      for name, preset in pairs(bitnet.sampling.presets) do
        local opts = { max_tokens = 15, seed = 5 }
        for k, v in pairs(preset) do opts[k] = v end
        assert.are.equal(model:generate(PROMPT, opts), model:generate(PROMPT, { max_tokens = 15, seed = 5, policy = name }))
      end
      assert.are.equal(model:generate(PROMPT, { max_tokens = 15, seed = 5, temperature = 1.5 }),
        model:generate(PROMPT, { max_tokens = 15, seed = 5, policy = "greedy", temperature = 1.5 }))
      assert.are.equal(greedy, model:generate(PROMPT, { max_tokens = 15, policy = { temperature = 0 } }))
    end)
  end)

  describe("policy functions", function()
    it("see the best candidates with the documented state", function()
      local calls = 0
      model:generate(PROMPT, {
        max_tokens = 4, temperature = 0, top_k = 5,
        policy = function(ids, logits, probs, state)
          calls = calls + 1
          assert.are.equal(5, #ids)
          assert.are.equal(5, #logits)
          assert.are.equal(5, #probs)
          for i = 2, 5 do
            assert.is_true(logits[i] <= logits[i - 1])
            assert.is_true(probs[i] <= probs[i - 1])
          end
          assert.are.equal(calls, state.step)
          assert.is_table(state.tokens)
          assert.are.equal(calls - 1, #state.tokens)
          assert.is_string(state.text)
        end,
      })
      assert.are.equal(4, calls)
      -- with a sampler of one's own, its top_k sets how many candidates
      local seen
      model:generate(PROMPT, { max_tokens = 1, sampler = bitnet.sampler({ top_k = 7 }),
        policy = function(ids) seen = #ids end })
      assert.are.equal(7, seen)
    end)

    it("can force a token, narrow the candidates, or keep them", function()
      local w7 = 266
      assert.are.equal(" w7", model:tokenizer():piece(w7))
      local forced = model:generate(PROMPT, { max_tokens = 3, policy = function() return w7 end })
      assert.are.equal(" w7 w7 w7", forced)
      -- keeping only the second best candidate, greedily
      local second = {}
      model:generate(PROMPT, {
        max_tokens = 3, temperature = 0,
        policy = function(ids, logits)
          second[#second + 1] = ids[2]
          return { ids[2] }, { logits[2] }
        end,
        on_token = function(id) assert.are.equal(second[#second], id) end,
      })
      assert.are.equal(3, #second)
      -- returning nothing keeps the candidates: the same as no policy
      local opts = { max_tokens = 10, seed = 8, temperature = 1 }
      local plain = model:generate(PROMPT, opts)
      opts.policy = function() end
      assert.are.equal(plain, model:generate(PROMPT, opts))
    end)

    it("must return candidates, an id or nothing", function()
      assert_raises(function() model:generate(PROMPT, { policy = function() return "x" end }) end,
        "policy must return ids and logits (two arrays), a token id, or nothing")
      assert_raises(function() model:generate(PROMPT, { policy = function() return 512 end }) end,
        "policy returned 512, which is not a token id (0..511)")
      assert_raises(function() model:generate(PROMPT, { policy = function() return { 600 }, { 0 } end }) end,
        "policy returned ids[1] = 600, which is not a token id (0..511)")
      assert_raises(function() model:generate(PROMPT, { policy = function() return {}, {} end }) end,
        "policy returned no candidates")
      assert_raises(function() model:generate(PROMPT, { policy = function() return { 5, 6 }, { 0 } end }) end,
        "policy returned 2 ids but 1 logits")
    end)
  end)

  describe("chat", function()
    local messages = { { role = "system", content = "Be brief." }, { role = "user", content = "w5 w6" } }

    it("falls back to a built-in template chosen by the vocabulary", function()
      assert.is_nil(model:chat_template())
      assert.are.equal("chatml", generate.fallback_template(model))
      assert.are.equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nw5 w6<|im_end|>\n"
        .. "<|im_start|>assistant\n", model:apply_chat_template(messages))
      assert.are.equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nw5 w6<|im_end|>\n",
        model:apply_chat_template(messages, { add_generation_prompt = false }))
    end)

    it("chooses bitnet, llama3, chatml and falcon3 by the tokens a vocabulary has", function()
      local function fake(arch, tokens)
        local set = {}
        for _, t in ipairs(tokens) do set[t] = true end
        local tok = { id = function(_, t) return set[t] and 1 or nil end }
        return {
          tokenizer = function() return tok end,
          info = function() return { arch = arch } end,
        }
      end
      local llama3 = { "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>" }
      assert.are.equal("bitnet", generate.fallback_template(fake("bitnet-b1.58", llama3)))
      assert.are.equal("llama3", generate.fallback_template(fake("llama", llama3)))
      assert.are.equal("chatml", generate.fallback_template(fake("llama", { "<|im_start|>" })))
      assert.are.equal("falcon3", generate.fallback_template(fake("llama", { "<|assistant|>", "<|user|>" })))
      assert.are.equal("chatml", generate.fallback_template(fake("bitnet", {})))
    end)

    it("uses real vocabularies: LLaMA-3 on a BitNet architecture gets the 2B-4T format", function()
      local dir = fx.shared .. "/tokenizer-tests/"
      -- a stand-in model: a real tokenizer, an architecture, no template of its own
      local function with_vocab(file, arch)
        local tok = assert(bitnet.core.tokenizer(dir .. file))
        return setmetatable({
          tokenizer = function() return tok end,
          info = function() return { arch = arch } end,
          chat_template = function() return nil end,
        }, { __index = bitnet.core.Model })
      end
      local b158 = with_vocab("ggml-vocab-llama3-bpe.gguf", "bitnet-b1.58")
      assert.are.equal("bitnet", generate.fallback_template(b158))
      local text = b158:apply_chat_template({ { role = "user", content = "hello" } })
      assert.are.equal("<|begin_of_text|>User: hello<|eot_id|>Assistant: ", text)
      local ids = b158:tokenizer():encode(text, { special = true, bos = false })
      assert.are.same({ 128000, 1502, 25, 24748, 128009, 72803, 25, 220 }, ids)
      -- <|eot_id|> is a token (end of generation): no stop string is needed
      assert.is_true(b158:tokenizer():is_eog(128009))
      local llama = with_vocab("ggml-vocab-llama3-bpe.gguf", "llama")
      assert.are.equal("llama3", generate.fallback_template(llama))
      assert.are.equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>"
        .. "<|start_header_id|>assistant<|end_header_id|>\n\n", llama:apply_chat_template({ { role = "user", content = "hello" } }))
      assert.are.equal("chatml", generate.fallback_template(with_vocab("ggml-vocab-llama-spm.gguf", "bitnet")))
    end)

    it("renders a named or custom template with the tokenizer's bos and eos", function()
      assert.are.equal("<s>System: Be brief.<|eot_id|>User: w5 w6<|eot_id|>Assistant: ",
        model:apply_chat_template(messages, { template = "bitnet" }))
      assert.are.equal("[<s>|</s>] user=w5 w6",
        model:apply_chat_template(messages, {
          template = "[{{ bos_token }}|{{ eos_token }}] {{ messages[-1].role }}={{ messages[-1].content }}",
        }))
    end)

    it("ends the reply at the template's end-of-turn text when no token spells it", function()
      assert.are.equal("<|im_end|>", generate.turn_end(model, bitnet.template.named("chatml")))
      assert.are.equal("</s>", generate.turn_end(model, bitnet.template.named("falcon3")))
      assert.is_nil(generate.turn_end(model, "{{ raise_exception('no') }}"))
      -- the fixture's byte tokens are <0xNN> = id NN + 3: force "hi<|im_end|>xy"
      local forced = {}
      for c in ("hi<|im_end|>xy"):gmatch(".") do forced[#forced + 1] = c:byte() + 3 end
      local policy = function(_, _, _, state) return forced[state.step] end
      local reply, info = model:chat(messages, { max_tokens = #forced, policy = policy })
      assert.are.equal("hi", reply)
      assert.are.equal("stop", info.finish_reason)
      -- with stop strings of one's own too
      reply = model:chat(messages, { max_tokens = #forced, policy = policy, stop = "i" })
      assert.are.equal("h", reply)
      -- a marker that is an end-of-generation token needs no stop string:
      -- falcon3 ends turns with </s>, which the fixture's vocabulary has
      reply, info = model:chat(messages, { max_tokens = 3, policy = function() return 2 end, template = "falcon3" })
      assert.are.equal("", reply)
      assert.are.equal("stop", info.finish_reason)
      -- generate itself adds nothing
      assert.are.equal("hi<|im_end|>xy", (model:generate(model:apply_chat_template(messages),
        { max_tokens = #forced, policy = policy })))
    end)

    it("checks its arguments", function()
      assert_raises(function() model:apply_chat_template("hi") end,
        "model:apply_chat_template: argument 1 (messages) must be a list of { role =, content = } tables")
      assert_raises(function() model:apply_chat_template({ { role = "user" } }) end,
        "model:apply_chat_template: message 1 must be a table with string role and content")
      assert_raises(function() model:apply_chat_template(messages, { generation_prompt = true }) end,
        "model:apply_chat_template: unknown option 'generation_prompt'")
      assert_raises(function() model:apply_chat_template(messages, { add_generation_prompt = 1 }) end,
        "model:apply_chat_template: option 'add_generation_prompt' must be a boolean")
      assert_raises(function() model:apply_chat_template(messages, { template = 3 }) end,
        "model:apply_chat_template: option 'template' must be a string")
      assert_raises(function() model:chat(messages, { tempo = 1 }) end, "model:chat: unknown option 'tempo'")
    end)

    it("generates the reply to the rendered conversation, streamed or not", function()
      local opts = { max_tokens = 20, seed = 9, temperature = 0.8 }
      local reply, info = model:chat(messages, opts)
      assert.are.equal(model:generate(model:apply_chat_template(messages), opts), reply)
      assert.are.equal("length", info.finish_reason)
      assert.are.equal(reply, table.concat(collect(model:chat_stream(messages, opts))))
      opts.stream = true
      local gen = model:chat(messages, opts)
      assert.are.equal(reply, table.concat(collect(gen)))
      assert.are.equal(20, gen.info.completion_tokens)
      local with_template = model:chat(messages, { max_tokens = 5, temperature = 0, template = "bitnet" })
      assert.are.equal(model:generate(model:apply_chat_template(messages, { template = "bitnet" }),
        { max_tokens = 5, temperature = 0 }), with_template)
    end)
  end)

  describe("typed errors", function()
    local errors = require("bitnet.errors")

    -- pcall(fn) must fail with a typed error of kind (and param); its
    -- tostring is the message text the string errors had
    local function assert_typed(fn, kind, param, message)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      assert.are.equal(kind, errors.kind(err))
      assert.are.equal(param, err.param)
      assert.are.equal(message, tostring(err))
    end

    it("a prompt the context cannot hold is context_exceeded, naming the request field", function()
      local ids = {}
      for i = 1, 20 do ids[i] = 300 + i end
      assert_typed(function() model:generate(ids, { n_ctx = 8 }) end, "context_exceeded", "prompt",
        "model:generate: the prompt is 20 tokens but the context holds 8 (n_ctx)")
      assert_typed(function() model:generate(ids, { n_ctx = 8, n = 2 }) end, "context_exceeded", "prompt",
        "model:generate: the prompt is 20 tokens but the context holds 8 (n_ctx)")
      local msgs = { { role = "user", content = PROMPT } }
      local n = #model:tokenize(model:apply_chat_template(msgs), { special = true })
      assert_typed(function() model:chat(msgs, { n_ctx = 8 }) end, "context_exceeded", "messages",
        ("model:chat: the prompt is %d tokens but the context holds 8 (n_ctx)"):format(n))
      assert_typed(function() model:chat(msgs, { n_ctx = 8, n = 3 }) end, "context_exceeded", "messages",
        ("model:chat: the prompt is %d tokens but the context holds 8 (n_ctx)"):format(n))
      local limit = model:info().n_ctx_train
      assert_typed(function() model:embed({ "w1", ("w1 "):rep(limit) }) end, "context_exceeded", "input",
        ("model:embed: input 2 is %d tokens but the context holds %d (n_ctx_train)"):format(
          #model:tokenize(("w1 "):rep(limit)), limit))
    end)

    it("an empty prompt without BOS is invalid_argument", function()
      assert_typed(function() model:generate({}) end, "invalid_argument", "prompt",
        "model:generate: the prompt is empty and the model adds no BOS token: nothing to continue from")
    end)

    it("a pool with every slot held is busy", function()
      local pool = model:session_pool({ slots = 1 })
      for _ in model:stream(PROMPT, { max_tokens = 5, pool = pool }) do -- holds the slot until it ends
        assert_typed(function() model:generate(PROMPT, { pool = pool }) end, "busy", nil,
          "session pool: all 1 slots are busy")
        break
      end
    end)

    it("other misuse stays a plain message", function()
      local ok, err = pcall(model.generate, model, 42)
      assert.is_false(ok)
      assert.is_nil(errors.kind(err))
      assert.are.equal("string", type(err))
    end)
  end)
end)
