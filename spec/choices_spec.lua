-- logprobs, n choices and embeddings in the Lua API (generate.lua,
-- choices.lua, embed.lua; the sampler's records, the engine's jobs, the
-- forward pass's hidden state). Logprobs are checked against a softmax
-- computed here from the session's own logits; n choices against the same
-- generation run alone with each choice's seed; embeddings batched against
-- each input alone.
local bitnet = require("bitnet")

local model = assert(bitnet.load())
local tok = model:tokenizer()
local PROMPT = "And it came to pass"

-- log-softmax of logits / t over the ids kept (all when nil)
local function log_softmax(logits, t, keep)
  local mx = -math.huge
  for id, l in ipairs(logits) do
    if not keep or keep[id - 1] then mx = math.max(mx, l / t) end
  end
  local sum = 0
  for id, l in ipairs(logits) do
    if not keep or keep[id - 1] then sum = sum + math.exp(l / t - mx) end
  end
  return function(id) return logits[id + 1] / t - mx - math.log(sum) end
end

describe("logprobs", function()
  it("greedy: the softmax of the model's logits, the token first among the alternatives, sync and async", function()
    local text, info = model:generate(PROMPT, { max_tokens = 6, temperature = 0, logprobs = 5 })
    local _, ainfo = model:generate(PROMPT, { max_tokens = 6, temperature = 0, logprobs = 5, stream = true })
    local gen = model:generate(PROMPT, { max_tokens = 6, temperature = 0, logprobs = 5, async = true })
    local parts = {}
    for piece in gen do parts[#parts + 1] = piece end
    assert.are.equal(text, table.concat(parts))
    assert.are.equal(info.completion_tokens, #info.logprobs)
    assert.is_nil(ainfo) -- stream returns the iterator
    local sess = model:session()
    sess:feed(model:tokenize(PROMPT))
    for i, r in ipairs(info.logprobs) do
      local lp = log_softmax(sess:logits(), 1)
      assert.is_near(lp(r.id), r.logprob, 1e-5)
      assert.are.equal(5, #r.top)
      assert.are.equal(r.id, r.top[1].id)
      for j, t in ipairs(r.top) do
        assert.is_near(lp(t.id), t.logprob, 1e-5)
        if j > 1 then assert.is_true(t.logprob <= r.top[j - 1].logprob) end
      end
      assert.are.same(r, gen.info.logprobs[i]) -- the engine records the same
      sess:feed({ r.id })
    end
  end)

  it("sampled: the distribution drawn from, after top-k and temperature", function()
    local opts = { max_tokens = 6, temperature = 0.7, top_k = 5, top_p = 1, min_p = 0, seed = 3, logprobs = 8 }
    local text, info = model:generate(PROMPT, opts)
    assert.are.equal(text, model:generate(PROMPT, { max_tokens = 6, temperature = 0.7, top_k = 5, top_p = 1,
      min_p = 0, seed = 3 })) -- recording changes nothing
    local sess = model:session()
    sess:feed(model:tokenize(PROMPT))
    for _, r in ipairs(info.logprobs) do
      local logits = sess:logits()
      local order = {}
      for id = 0, #logits - 1 do order[#order + 1] = id end
      table.sort(order, function(a, b) return logits[a + 1] > logits[b + 1] or (logits[a + 1] == logits[b + 1] and a < b) end)
      local keep = {}
      for k = 1, 5 do keep[order[k]] = true end
      local lp = log_softmax(logits, 0.7, keep)
      assert.is_near(lp(r.id), r.logprob, 1e-5)
      assert.are.equal(5, #r.top) -- only the five top-k kept
      local sum = 0
      for _, t in ipairs(r.top) do
        assert.is_true(keep[t.id])
        sum = sum + math.exp(t.logprob)
      end
      assert.is_near(1, sum, 1e-5)
      sess:feed({ r.id })
    end
  end)

  it("gives the prompt's own logprobs, the first token without any", function()
    local _, info = model:generate(PROMPT, { max_tokens = 2, temperature = 0, prompt_logprobs = 2 })
    local ids = model:tokenize(PROMPT)
    assert.are.equal(#ids, #info.prompt_logprobs)
    assert.is_nil(info.prompt_logprobs[1].top)
    local sess = model:session()
    for i = 2, #ids do
      sess:feed({ ids[i - 1] })
      local r = info.prompt_logprobs[i]
      assert.are.equal(ids[i], r.id)
      assert.is_near(log_softmax(sess:logits(), 1)(ids[i]), r.logprob, 1e-5)
      assert.are.equal(2, #r.top)
    end
  end)

  it("refuses a k outside 0..20", function()
    assert.has_error(function() model:generate(PROMPT, { logprobs = 21 }) end,
      "model:generate: option 'logprobs' must be true or an integer within 0..20")
    assert.has_error(function() model:generate(PROMPT, { prompt_logprobs = -1 }) end)
  end)
end)

describe("n choices", function()
  it("gives each choice the text its seed gives alone, the prompt evaluated once", function()
    local texts, infos = model:generate(PROMPT, { n = 4, max_tokens = 10, temperature = 0.9, seed = 21 })
    assert.are.equal(4, #texts)
    for i = 1, 4 do
      local want, info = model:generate(PROMPT, { max_tokens = 10, temperature = 0.9, seed = 21 + i - 1 })
      assert.are.equal(want, texts[i])
      assert.are.equal(info.completion_tokens, infos[i].completion_tokens)
      assert.are.equal(#model:tokenize(PROMPT), infos[i].prompt_tokens)
    end
    local chats = model:chat({ { role = "user", content = "Who was Naomi?" } }, { n = 2, max_tokens = 6, seed = 2 })
    assert.are.equal(model:chat({ { role = "user", content = "Who was Naomi?" } }, { max_tokens = 6, seed = 3 }), chats[2])
  end)

  it("shares a pool slot's cached prompt, async, and cancels", function()
    local pool = model:session_pool({ slots = 1 })
    model:generate(PROMPT, { max_tokens = 1, pool = pool, temperature = 0 })
    local ch = model:generate(PROMPT .. ", that", { n = 3, max_tokens = 400, temperature = 1, seed = 1, pool = pool, async = true })
    local got = 0
    while got < 3 do
      local pieces = ch:poll()
      if not pieces then break end
      for _, p in ipairs(pieces) do if p and p ~= "" then got = got + 1 end end
      ch:wait()
    end
    ch:cancel()
    while ch:poll() do ch:wait() end
    assert.is_true(ch:released())
    assert.are.equal(3, #ch.infos)
    assert.is_true(ch.infos[1].cached_tokens > 0)
    assert.are.equal(0, model:jobs())
    ch:close()
  end)

  it("refuses what it cannot do", function()
    assert.has_error(function() model:generate(PROMPT, { n = 0 }) end, "model:generate: option 'n' must be an integer within 1..64")
    assert.has_error(function() model:generate(PROMPT, { n = 2, stream = true }) end)
    assert.has_error(function() model:generate(PROMPT, { n = 2, temperature = -1 }) end)
  end)
end)

describe("model:embed", function()
  it("gives unit vectors of n_embd, the same for a text alone or batched", function()
    local texts = { "In the beginning", "And God said", "Blessed are the meek", "In the beginning" }
    local batched, info = model:embed(texts, { batch = 3 })
    assert.are.equal(4, #batched)
    local tokens = 0
    for i, text in ipairs(texts) do
      local v = model:embed(text)
      assert.are.equal(model:info().n_embd, #v)
      assert.are.same(v, batched[i])
      local n2 = 0
      for _, x in ipairs(v) do n2 = n2 + x * x end
      assert.is_near(1, n2, 1e-6)
      tokens = tokens + #model:tokenize(text)
    end
    assert.are.equal(tokens, info.prompt_tokens)
    assert.are.same(batched[1], batched[4])
    assert.are_not.same(batched[1], batched[2])
    assert.are.same(model:embed(model:tokenize("In the beginning")), batched[1])
    assert.are_not.same(model:embed("In the beginning", { pooling = "last" }), batched[1])
  end)

  it("raises naming bad input", function()
    assert.has_error(function() model:embed({}) end, "model:embed: no input")
    assert.has_error(function() model:embed({ "a", 3.5 }) end)
    assert.has_error(function() model:embed("a", { pooling = "max" }) end)
    assert.has_error(function() model:embed(("a "):rep(5000)) end)
  end)
end)

describe("sess:copy_prefix", function()
  it("continues as the source would, bit for bit", function()
    local ids = model:tokenize(PROMPT)
    local a, b = model:session(), model:session()
    a:feed(ids)
    b:copy_prefix(a, #ids - 1)
    b:feed({ ids[#ids] })
    assert.are.same(a:logits(), b:logits())
    assert.has_error(function() b:copy_prefix(b, 1) end, "sess:copy_prefix: the source is this session")
    assert.has_error(function() b:copy_prefix(a, #ids + 1) end)
    a:close()
    b:close()
  end)
end)
