-- The background engine (async = true, speculative): results equal the
-- synchronous ones bit for bit, alone or batched with other generations;
-- cancellation, collection, session ownership, the news descriptor.
local bitnet = require("bitnet")
local core = require("bitnet.core")
local shell = require("support.shell")

local checks = require("support.checks")
local assert_raises = checks.assert_raises

-- All of an async generation's text, read by polling (never blocking).
local function drain(gen)
  local parts, spins = {}, 0
  while true do
    local piece = gen:poll()
    if piece == nil then break end
    if piece == "" then
      spins = spins + 1
      gen.job:wait(1) -- only to spare the CPU: poll itself never waits
    end
    parts[#parts + 1] = piece
  end
  return table.concat(parts), spins
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- A copy of t with the fields of extra set over it.
local function with(t, extra)
  local c = copy(t)
  for k, v in pairs(extra) do c[k] = v end
  return c
end

local PROMPTS = {
  "In the beginning God created",
  "And the LORD said unto Moses,",
  "Blessed are the poor in spirit:",
  "The LORD is my shepherd; I shall not want.",
  "And it came to pass",
  "For God so loved the world,",
}

local OPTION_SETS = {
  { temperature = 0 },
  { temperature = 0.8, seed = 7 },
  { temperature = 1.1, top_k = 0, top_p = 0.9, min_p = 0, seed = 3, repeat_penalty = 1.2 },
  { temperature = 0.7, seed = 11, stop = { "earth", "LORD" } },
  { policy = "creative", seed = 5, presence_penalty = 0.5, frequency_penalty = 0.3 },
}

describe("async generation", function()
  local model
  setup(function() model = assert(bitnet.load()) end)
  teardown(function() model:close() end)

  it("gives the synchronous text and info, for every sampler option set", function()
    for i, opts in ipairs(OPTION_SETS) do
      local o = copy(opts)
      o.max_tokens = 48
      local want, winfo = model:generate(PROMPTS[i], o)
      o.async = true
      local gen = model:generate(PROMPTS[i], o)
      assert.are.equal(want, (drain(gen)))
      for _, k in ipairs({ "finish_reason", "prompt_tokens", "cached_tokens", "completion_tokens" }) do
        assert.are.equal(winfo[k], gen.info[k], k)
      end
      if opts.seed then assert.are.equal(winfo.seed, gen.info.seed) end
      assert.is_true(gen.info.prefill_seconds > 0 and gen.info.decode_seconds >= 0)
      assert.is_nil(gen.job) -- the engine let go: the session is free
    end
  end)

  it("calls on_token on the caller's thread with the synchronous ids and texts", function()
    local seen_sync, seen_async = {}, {}
    model:generate(PROMPTS[2], { max_tokens = 20, temperature = 0.9, seed = 2,
      on_token = function(id, text) seen_sync[#seen_sync + 1] = id .. "=" .. text end })
    local gen = model:generate(PROMPTS[2], { max_tokens = 20, temperature = 0.9, seed = 2, async = true,
      on_token = function(id, text) seen_async[#seen_async + 1] = id .. "=" .. text end })
    drain(gen)
    assert.are.same(seen_sync, seen_async)
    -- on_token returning false cancels after that token, as in the synchronous loop
    local n = 0
    local g2 = model:generate(PROMPTS[2], { max_tokens = 40, temperature = 0, async = true,
      on_token = function() n = n + 1; return n < 5 end })
    drain(g2)
    assert.are.equal("cancelled", g2.info.finish_reason)
    assert.are.equal(5, g2.info.completion_tokens)
  end)

  it("chats asynchronously with the synchronous reply", function()
    local msgs = { { role = "user", content = "Who created the heaven and the earth?" } }
    local want = model:chat(msgs, { max_tokens = 30, temperature = 0 })
    local gen = model:chat(msgs, { max_tokens = 30, temperature = 0, async = true })
    assert.is_true(gen:wait(30))
    assert.are.equal(want, (drain(gen)))
  end)

  it("evaluates the prompt only (max_tokens = 0) and iterates with a generic for", function()
    local gen = model:generate(PROMPTS[1], { max_tokens = 0, async = true })
    assert.is_true(gen:wait(30))
    assert.are.equal("length", gen.info.finish_reason)
    assert.are.equal(0, gen.info.completion_tokens)
    local pieces = {}
    for piece in model:generate(PROMPTS[1], { max_tokens = 12, temperature = 0, async = true }) do
      pieces[#pieces + 1] = piece
    end
    assert.are.equal(model:generate(PROMPTS[1], { max_tokens = 12, temperature = 0 }), table.concat(pieces))
  end)

  it("batched with other generations gives each the tokens it gets alone", function()
    local gens, want = {}, {}
    for i, p in ipairs(PROMPTS) do
      local o = copy(OPTION_SETS[(i - 1) % #OPTION_SETS + 1])
      o.max_tokens = 40 + i * 3
      want[i] = model:generate(p, o)
      o.async = true
      gens[i] = model:generate(p, o)
    end
    -- poll them all round-robin, as an event loop would
    local texts, live = {}, #gens
    for i = 1, #gens do texts[i] = {} end
    while live > 0 do
      live = 0
      for i, g in ipairs(gens) do
        local piece = g:poll()
        if piece then
          texts[i][#texts[i] + 1] = piece
          live = live + 1
        end
      end
    end
    for i = 1, #gens do assert.are.equal(want[i], table.concat(texts[i]), "generation " .. i) end
  end)

  it("reuses a session's prefix and holds the session while running", function()
    local sess = model:session({ n_ctx = 256 })
    local first = model:generate(PROMPTS[4], { max_tokens = 10, temperature = 0, session = sess })
    local gen = model:generate(PROMPTS[4] .. first, { max_tokens = 10, temperature = 0, session = sess, async = true })
    assert_raises(function() sess:feed({ 1 }) end, "session in use")
    assert_raises(function() sess:pos() end, "session in use")
    assert_raises(function() model:generate("x", { session = sess, async = true }) end, "session in use")
    local text = drain(gen)
    assert.is_true(gen.info.cached_tokens > 0)
    local fresh = model:generate(PROMPTS[4] .. first, { max_tokens = 10, temperature = 0 })
    assert.are.equal(fresh, text)
    assert.is_true(sess:pos() > 0) -- free again
    sess:close()
  end)

  it("cancels before or during the prompt and during decoding", function()
    local long = {}
    for i = 1, 40 do long[i] = PROMPTS[(i - 1) % #PROMPTS + 1] end
    local prompt = table.concat(long, " ")
    local gen = model:generate(prompt, { max_tokens = 50, async = true, n_ctx = 1024 })
    gen:cancel()
    assert.are.equal("cancelled", gen.info.finish_reason)
    assert.are.equal(0, gen.info.completion_tokens)
    assert.is_nil(gen:poll())
    -- the engine lets go within one step
    local sess = model:session({ n_ctx = 1024 })
    local g2 = model:generate(prompt, { max_tokens = 50, async = true, session = sess })
    g2:cancel()
    local t0 = core.clock()
    while not g2:released() do
      assert(core.clock() - t0 < 10, "the engine did not let go of a cancelled generation")
    end
    assert.is_true(pcall(sess.pos, sess)) -- released: the session is free
    assert.is_true(sess:pos() < #model:tokenize(prompt)) -- stopped mid-prompt or before it
    -- mid-decode: the text so far is a prefix of the whole
    -- (long enough that the engine cannot finish before the cancel even when
    -- this thread waits for a core; the end-of-text token banned)
    local long_run = { max_tokens = 900, n_ctx = 1024, temperature = 0,
      logit_bias = { [model:tokenizer():eos()] = -1e9 } }
    local g3 = model:generate(PROMPTS[1], with(long_run, { async = true }))
    assert.is_false(g3:released())
    local got = {}
    while #g3.tokens < 5 do
      got[#got + 1] = g3:poll()
    end
    g3:cancel()
    while true do
      local piece = g3:poll()
      if not piece then break end
      got[#got + 1] = piece
    end
    local text = table.concat(got)
    assert.are.equal("cancelled", g3.info.finish_reason)
    local whole = model:generate(PROMPTS[1], with(long_run, { max_tokens = g3.info.completion_tokens }))
    assert.is_true(#text > 0 and whole:sub(1, #text) == text)
    sess:close()
  end)

  it("counts the generations its engine holds (model:jobs)", function()
    local m = assert(bitnet.load(nil, { n_ctx = 1024 })) -- a handle of its own: the same weights and engine
    local function settle(want)
      local t0 = core.clock()
      while m:jobs() ~= want do
        assert(core.clock() - t0 < 10, ("the engine holds %d generations, want %d"):format(m:jobs(), want))
      end
    end
    settle(0) -- earlier tests' generations have all been let go
    local run = { max_tokens = 900, temperature = 0, async = true, logit_bias = { [m:tokenizer():eos()] = -1e9 } }
    local g1 = m:generate(PROMPTS[1], run)
    local g2 = m:generate(PROMPTS[2], run)
    assert.are.equal(2, m:jobs())
    g1:cancel()
    settle(1)
    assert.is_true(g1:released())
    assert.is_false(g2:released())
    g2:cancel()
    settle(0)
    assert.is_true(g2:released())
    local g3 = m:generate(PROMPTS[3], { max_tokens = 3, temperature = 0, async = true })
    g3:wait(30)
    settle(0) -- a generation that ends by itself is let go as well
    g1:close(); g2:close(); g3:close(); m:close()
    assert_raises(function() m.jobs(42) end, "bitnet.Model expected")
  end)

  it("closes, collects and survives its model being closed", function()
    local m2 = assert(bitnet.load())
    local want = m2:generate(PROMPTS[3], { max_tokens = 20, temperature = 0 })
    local gen = m2:generate(PROMPTS[3], { max_tokens = 20, temperature = 0, async = true })
    m2:close() -- the generation holds the weights it needs
    assert.are.equal(want, (drain(gen)))
    gen:close()
    assert.is_nil(gen:poll())
    assert.is_true(gen:done())
    -- running generations dropped with their model: collection joins the engine
    local m3 = assert(bitnet.load())
    for i = 1, 4 do m3:generate(PROMPTS[i], { max_tokens = 200, async = true }) end
    m3 = nil
    collectgarbage()
    collectgarbage()
  end)

  it("gives a descriptor that is readable when there is news", function()
    local gen = model:generate(PROMPTS[1], { max_tokens = 5, temperature = 0, async = true })
    local fd = gen:fd()
    assert.is_true(math.type == nil or math.type(fd) == "integer")
    assert.is_true(fd >= 0)
    if jit then -- poll(2) through the FFI: readable once the engine has news
      local ffi = require("ffi")
      pcall(ffi.cdef, "struct bn_pollfd { int fd; short events; short revents; }; int poll(struct bn_pollfd *, unsigned long, int);")
      local p = ffi.new("struct bn_pollfd[1]")
      p[0].fd, p[0].events = fd, 1
      assert.are.equal(1, ffi.C.poll(ffi.cast("void *", p), 1, 10000))
    else
      -- the shell's parent is this process: its descriptor is an eventfd (or a pipe)
      local link = shell.read("readlink /proc/$PPID/fd/" .. fd)
      assert.is_truthy(link:find("^anon_inode:%[eventfd%]") or link:find("^pipe:"), link)
    end
    assert.is_true(gen:wait(30))
    if jit then -- finished: still readable after the poll that took the last text
      local ffi = require("ffi")
      assert.is_string(gen:poll())
      local p = ffi.new("struct bn_pollfd[1]")
      p[0].fd, p[0].events = fd, 1
      assert.are.equal(1, ffi.C.poll(ffi.cast("void *", p), 1, 0))
      assert.is_nil(gen:poll())
    end
    assert.is_not_nil(gen.info)
    assert.is_not_nil(gen.job) -- kept until close: a host may still watch the descriptor
    gen:close()
    assert.is_nil(gen.job)
  end)

  it("refuses what cannot run on the engine", function()
    assert_raises(function() model:generate("x", { async = true, policy = function() return 1 end }) end,
      "a policy function runs in Lua")
    assert_raises(function() model:generate("x", { async = 1 }) end, "option 'async' must be a boolean")
    assert_raises(function() model:generate("x", { async = true, stream = true }) end, "cannot be combined")
    assert_raises(function() model:generate("x", { speculative = { n_draft = 0 } }) end, "n_draft must be")
    assert_raises(function() model:generate("x", { speculative = { k = 2 } }) end, "unknown key 'k'")
    assert_raises(function() core.job(model:session(), bitnet.sampler(), {}, 0) end, "the prompt must hold")
  end)

  it("leaves a given sampler in the state the synchronous run leaves it", function()
    local s1, s2 = bitnet.sampler({ temperature = 0.9, seed = 4 }), bitnet.sampler({ temperature = 0.9, seed = 4 })
    model:generate(PROMPTS[5], { max_tokens = 15, sampler = s1 })
    local gen = model:generate(PROMPTS[5], { max_tokens = 15, sampler = s2, async = true })
    drain(gen)
    assert.are.equal(model:generate(PROMPTS[6], { max_tokens = 15, sampler = s1 }),
      model:generate(PROMPTS[6], { max_tokens = 15, sampler = s2 }))
  end)
end)

describe("speculative decoding", function()
  local model
  setup(function() model = assert(bitnet.load()) end)
  teardown(function() model:close() end)

  -- a prompt that repeats itself: lookups find drafts the model accepts
  local VERSE = "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
    .. "and darkness was upon the face of the deep."
  local COPY = VERSE .. "\n" .. VERSE .. "\n" .. "In the beginning"

  it("is the plain greedy output, and accepts drafts on repeated text", function()
    local want = model:generate(COPY, { max_tokens = 60, temperature = 0 })
    local got, info = model:generate(COPY, { max_tokens = 60, temperature = 0, speculative = { n_draft = 4, ngram = 3 } })
    assert.are.equal(want, got)
    assert.is_true(info.speculative.accepted > 0)
    assert.is_true(info.speculative.tokens_per_pass > 1)
    for _, k in ipairs({ 1, 2, 8, 16 }) do
      assert.are.equal(want, (model:generate(COPY, { max_tokens = 60, temperature = 0, speculative = { n_draft = k, ngram = 2 } })))
    end
  end)

  -- With a draft that is one token (prompt lookup), the speculative rule
  -- (accept d with probability p(d), else draw from p without d) draws from
  -- p exactly; sampling at each verified position in order and accepting
  -- while the draw equals the draft is that rule with the same random
  -- stream, so every seed gives the plain run's tokens: a check stronger
  -- than a distribution test.
  it("samples the tokens plain sampling gives, seed for seed", function()
    for seed = 1, 12 do
      local o = { max_tokens = 40, temperature = 0.6, top_p = 0.95, seed = seed }
      local want = model:generate(COPY, o)
      o.speculative = { n_draft = 5, ngram = 2 }
      assert.are.equal(want, (model:generate(COPY, o)), "seed " .. seed)
    end
  end)

  it("runs with async generations and stop strings", function()
    local o = { max_tokens = 60, temperature = 0, stop = "deep" }
    local want, winfo = model:generate(COPY, o)
    o.async, o.speculative = true, true
    local gen = model:generate(COPY, o)
    assert.are.equal(want, (drain(gen)))
    assert.are.equal(winfo.finish_reason, gen.info.finish_reason)
  end)
end)

describe("session pool", function()
  local model
  setup(function() model = assert(bitnet.load()) end)

  local SYSTEM = "And God said, Let there be light: and there was light. And God saw the light, that it was good: "
    .. "and God divided the light from the darkness. "

  it("gives a request the slot holding the longest prefix of its prompt", function()
    local pool = model:session_pool({ slots = 2, n_ctx = 512 })
    local a = SYSTEM .. "And the evening and the morning were the first day."
    local b = "Blessed are the meek: for they shall inherit the earth."
    local _, i1 = model:generate(a, { max_tokens = 8, temperature = 0, pool = pool })
    local _, i2 = model:generate(b, { max_tokens = 8, temperature = 0, pool = pool })
    assert.are.equal(0, i1.cached_tokens)
    assert.are.equal(0, i2.cached_tokens)
    -- a third request sharing SYSTEM with the first goes to the first slot
    local c = SYSTEM .. "And God called the firmament Heaven."
    local want = model:generate(c, { max_tokens = 8, temperature = 0 })
    local got, i3 = model:generate(c, { max_tokens = 8, temperature = 0, pool = pool })
    assert.are.equal(want, got)
    local system_tokens = #model:tokenize(SYSTEM)
    assert.is_true(i3.cached_tokens >= system_tokens - 2, "cached " .. i3.cached_tokens)
    -- async requests hold their slot until the engine lets go
    -- (300 tokens, end-of-text banned: neither can finish before the third request)
    local busy = { max_tokens = 300, temperature = 0, pool = pool, async = true,
      logit_bias = { [model:tokenizer():eos()] = -1e9 } }
    local g1 = model:generate(a, busy)
    local g2 = model:generate(b, busy)
    assert_raises(function() model:generate(c, { pool = pool }) end, "all 2 slots are busy")
    assert.are.equal(2, pool:stats().busy)
    g1:wait(600); g2:wait(600) -- minutes under valgrind
    assert.is_true(g1.info.cached_tokens > 0 and g2.info.cached_tokens > 0)
    local stats = pool:stats()
    assert.are.equal(0, stats.busy)
    assert.are.equal(5, stats.requests)
    assert.are.equal(3, stats.hits)
    pool:close()
    assert_raises(function() model:generate(c, { pool = pool }) end, "the pool is closed")
  end)

  it("frees the slot of a generation dropped unfinished", function()
    local pool = model:session_pool({ slots = 1 })
    model:stream(SYSTEM, { max_tokens = 50, pool = pool })() -- one piece, then dropped
    collectgarbage()
    collectgarbage()
    assert.is_string((model:generate(SYSTEM, { max_tokens = 3, pool = pool })))
  end)

  it("checks its options", function()
    assert_raises(function() model:session_pool({ slot = 2 }) end, "unknown option 'slot'")
    assert_raises(function() model:session_pool({ slots = 0 }) end, "option 'slots' must be an integer")
    assert_raises(function() model:generate("x", { pool = {} }) end, "option 'pool' must be a session pool")
    local pool = model:session_pool({ slots = 1 })
    assert_raises(function() model:generate("x", { pool = pool, n_ctx = 9 }) end, "cannot be combined")
  end)
end)
