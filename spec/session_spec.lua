-- The C-level Lua face: Model and Session objects, their options, misuse
-- errors and lifetimes.
local bitnet = require("bitnet")
local fx = require("support.fixtures")

local path = fx.shared .. "/fixtures/gguf/bitnet-silu-tq2_0/model.gguf"

describe("bitnet.load", function()
  it("returns a Model that prints readably", function()
    local m = assert(bitnet.load(path, { threads = 1, n_ctx = 64 }))
    assert.are.equal("userdata", type(m))
    assert.is_truthy(tostring(m):find("^bitnet%.Model<bitnet, 2%.%dM params, 3 layers, gguf, "))
  end)

  it("raises on unknown option keys, naming them", function()
    assert.has_error(function() bitnet.load(path, { thread = 2 }) end, "bitnet.load: unknown option 'thread'")
    assert.has_error(function() bitnet.load(path, { threads = "2" }) end,
      "bitnet.load: option 'threads' must be an integer")
    assert.has_error(function() bitnet.load(path, { threads = -1 }) end)
    local ok, err = pcall(bitnet.load, path, { kernel = "sse9" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bitnet.load: unknown kernel path 'sse9' (this CPU runs: ", 1, true), err)
    assert.has_error(function() bitnet.load(path, 5) end, "bitnet.load: options must be a table, got number")
    assert.has_error(function() bitnet.load(true) end)
    assert.has_error(function() bitnet.core.load(nil) end)
  end)

  it("accepts the reference kernel by name", function()
    local m = assert(bitnet.load(path, { kernel = "ref" }))
    assert.are.equal("ref", m:info().kernel)
  end)
end)

describe("Session", function()
  local model
  setup(function() model = assert(bitnet.load(path)) end)

  it("feeds tokens, counts positions and prints readably", function()
    local s = model:session({ n_ctx = 32 })
    assert.are.equal(0, s:pos())
    assert.are.equal(32, s:n_ctx())
    assert.are.equal(3, s:feed({ 1, 2, 3 }))
    assert.are.equal(3, s:pos())
    assert.are.equal(0, s:feed({}))
    assert.are.equal("bitnet.Session<3/32 positions, bitnet>", tostring(s))
    local lg = s:logits()
    assert.are.equal(512, #lg)
    assert.are.equal("number", type(lg[1]))
  end)

  it("defaults n_ctx to the load option, then to the training context", function()
    assert.are.equal(256, model:session():n_ctx())
    local m = assert(bitnet.load(path, { n_ctx = 48 }))
    assert.are.equal(48, m:session():n_ctx())
  end)

  it("consumes at most max_tokens per call (chunked prefill)", function()
    local ids = { 5, 6, 7, 8, 9 }
    local a = model:session()
    assert.are.equal(2, a:feed(ids, { max_tokens = 2 }))
    assert.are.equal(3, a:feed({ 7, 8, 9 }))
    local b = model:session()
    b:feed(ids)
    assert.are.same(b:logits(), a:logits())
  end)

  it("rewinds to a position and recomputes the same logits", function()
    local s = model:session()
    s:feed({ 10, 11, 12 })
    local want = s:logits()
    s:feed({ 13, 14 })
    s:rewind(2)
    assert.are.equal(2, s:pos())
    assert.has_error(function() s:logits() end, "sess:logits: no logits yet: feed tokens first")
    s:feed({ 12 })
    assert.are.same(want, s:logits())
    s:reset()
    assert.are.equal(0, s:pos())
    assert.has_error(function() s:rewind(1) end, "sess:rewind: position 1 is outside 0..0")
    assert.has_error(function() s:rewind("x") end, "sess:rewind: argument 1 must be an integer position")
  end)

  it("raises on bad ids, naming index and limit", function()
    local s = model:session({ n_ctx = 8 })
    assert.has_error(function() s:feed({ 1, 512 }) end,
      "sess:feed: token id 512 at index 2 is out of range (vocabulary has 512 ids, 0..511)")
    assert.has_error(function() s:feed({ -1 }) end)
    assert.has_error(function() s:feed({ 1.5 }) end, "sess:feed: token id at index 1 is not an integer")
    assert.has_error(function() s:feed({ "3" }) end, "sess:feed: token id at index 1 is not an integer")
    assert.has_error(function() s:feed("abc") end)
    assert.has_error(function() s:feed({ 1 }, { max = 1 }) end, "sess:feed: unknown option 'max'")
    assert.are.equal(0, s:pos()) -- nothing was evaluated
  end)

  it("raises when feeding past n_ctx", function()
    local s = model:session({ n_ctx = 4 })
    s:feed({ 1, 2, 3 })
    assert.has_error(function() s:feed({ 4, 5 }) end,
      "sess:feed: 2 tokens at position 3 exceed the context of 4 (n_ctx)")
    assert.are.equal(1, s:feed({ 4 }))
  end)

  it("raises on unknown session options", function()
    assert.has_error(function() model:session({ ctx = 4 }) end, "model:session: unknown option 'ctx'")
    assert.has_error(function() model:session({ n_ctx = -4 }) end)
  end)

  it("closes once, and raises when used after close", function()
    local s = model:session()
    s:close()
    s:close()
    assert.are.equal("bitnet.Session<closed>", tostring(s))
    assert.has_error(function() s:feed({ 1 }) end, "bitnet.Session: the session is closed")
    assert.has_error(function() s:pos() end, "bitnet.Session: the session is closed")
  end)

  it("closes at the end of a <close> scope (Lua 5.4)", function()
    if _VERSION ~= "Lua 5.4" then return end
    local chunk = assert(load([[
      local model = ...
      local kept
      do
        local s <close> = model:session()
        kept = s
      end
      return tostring(kept)
    ]]))
    assert.are.equal("bitnet.Session<closed>", chunk(model))
  end)

  it("keeps its model alive whatever order the collector runs in", function()
    local s
    do
      local m = assert(bitnet.load(path))
      s = m:session()
    end
    collectgarbage()
    collectgarbage()
    s:feed({ 1, 2 })
    assert.are.equal(512, #s:logits())
    assert.is_truthy(tostring(s:model()):find("bitnet.Model<"))
  end)

  it("rejects the wrong object type", function()
    local s = model:session()
    assert.has_error(function() s.feed(model, { 1 }) end)
    assert.has_error(function() model.info(s) end)
  end)
end)

describe("sess:nll", function()
  local model
  setup(function() model = assert(bitnet.load(path)) end)

  local function log_softmax_at(lg, id)
    local mx = -math.huge
    for _, v in ipairs(lg) do mx = math.max(mx, v) end
    local sum = 0
    for _, v in ipairs(lg) do sum = sum + math.exp(v - mx) end
    return lg[id + 1] - mx - math.log(sum)
  end

  it("sums -log p of each token given the ones before it", function()
    local ids = {}
    for i = 1, 40 do ids[i] = (i * 37) % 512 end
    -- the same quantity from logits read one position at a time
    local s = model:session()
    local want = 0
    for i = 1, #ids do
      if i >= 2 then want = want - log_softmax_at(s:logits(), ids[i]) end
      s:feed({ ids[i] })
    end
    local t = model:session()
    local nll, count = t:nll(ids)
    assert.are.equal(39, count)
    assert.is_true(math.abs(nll - want) < 1e-6 * want, ("%g vs %g"):format(nll, want))
    assert.are.equal(40, t:pos())
    -- continuing: from = 1 scores the first id from what the session holds
    local nll2, c2 = t:nll({ 5, 6 })
    assert.are.equal(2, c2)
    assert.is_true(nll2 > 0)
  end)

  it("raises on a bad 'from'", function()
    local s = model:session()
    assert.has_error(function() s:nll({ 1, 2 }, { from = 1 }) end,
      "sess:nll: option 'from' = 1 needs a session that already holds tokens")
    assert.has_error(function() s:nll({ 1, 2 }, { from = 4 }) end,
      "sess:nll: option 'from' must be within 1..#ids+1")
  end)
end)
