-- Saved sessions (sess:save, model:load_session) and context shift
-- (sess:shift, the context_shift option).
local bitnet = require("bitnet")
local fx = require("support.fixtures")

local checks = require("support.checks")
local assert_raises = checks.assert_raises

local tmpname, read, write = checks.tmpname, checks.read_file, checks.write_file

local PROMPT = "And God said, Let there be light: and there was light. And God saw the light, that it was good"

describe("saved sessions", function()
  local model
  setup(function() model = assert(bitnet.load()) end)

  it("continue exactly as the saved session would", function()
    for _, kv_type in ipairs({ "f32", "f16" }) do
      local sess = model:session({ n_ctx = 256, kv_type = kv_type })
      model:generate(PROMPT, { max_tokens = 10, temperature = 0, session = sess })
      local path = tmpname()
      assert.is_true(sess:save(path))
      local loaded = assert(model:load_session(path))
      assert.are.same(sess:tokens(), loaded:tokens())
      assert.are.equal(sess:n_ctx(), loaded:n_ctx())
      local more = PROMPT .. " and God divided"
      for _, o in ipairs({ { temperature = 0 }, { temperature = 0.9, seed = 4 } }) do
        o.max_tokens = 20
        o.session = sess
        local want, wi = model:generate(more, o)
        sess:rewind(loaded:pos()) -- back to what was saved
        o.session = loaded
        local got, gi = model:generate(more, o)
        assert.are.equal(want, got, kv_type)
        assert.are.equal(wi.cached_tokens, gi.cached_tokens)
        loaded:rewind(sess:pos() < loaded:pos() and sess:pos() or loaded:pos())
      end
      -- a larger context on load
      local big = assert(model:load_session(path, { n_ctx = 512 }))
      assert.are.equal(512, big:n_ctx())
      os.remove(path)
      sess:close(); loaded:close(); big:close()
    end
  end)

  it("keeps the last logits", function()
    local sess = model:session({ n_ctx = 64 })
    sess:feed(model:tokenize("In the beginning"))
    local path = tmpname()
    assert(sess:save(path))
    local loaded = assert(model:load_session(path))
    assert.are.same(sess:logits(), loaded:logits())
    os.remove(path)
  end)

  it("refuses what is not this model's whole session file", function()
    local sess = model:session({ n_ctx = 128 })
    sess:feed(model:tokenize(PROMPT))
    local path = tmpname()
    assert(sess:save(path))
    local good = read(path)
    local function refused(data, want)
      local p = tmpname()
      write(p, data)
      local s, err = model:load_session(p)
      os.remove(p)
      assert.is_nil(s)
      assert(err:find(want, 1, true), ("%q does not contain %q"):format(err, want))
      assert(err:find(p, 1, true), "the message names the file: " .. err)
    end
    local s, err = model:load_session(path .. ".missing")
    assert.is_nil(s)
    assert.is_truthy(err:find("No such file", 1, true))
    refused("GGUF" .. good:sub(5), "not a bitnet session file")
    refused(good:sub(1, 8) .. "\9\0\0\0" .. good:sub(13), "version 9; this build reads version 1")
    for _, cut in ipairs({ 4, 12, 40, 60, math.floor(#good / 2), #good - 9, #good - 1 }) do
      refused(good:sub(1, cut), "truncated")
    end
    local at = #good - 100 -- a flipped byte in the payload
    refused(good:sub(1, at - 1) .. string.char((good:byte(at) + 1) % 256) .. good:sub(at + 1), "checksum")
    refused(good .. "x", "checksum")
    s, err = model:load_session(path, { n_ctx = 4 })
    assert.is_nil(s)
    assert.is_truthy(err:find("n_ctx 4 is smaller", 1, true))
    -- another model's session
    local other = assert(bitnet.load(fx.shared .. "/fixtures/gguf/bitnet-silu-tq2_0/model.gguf"))
    s, err = other:load_session(path)
    assert.is_nil(s)
    assert.is_truthy(err:find("saved with another model", 1, true))
    -- writing
    local ok, werr = sess:save("/nonexistent-dir/x.session")
    assert.is_nil(ok)
    assert.is_truthy(werr:find("cannot write", 1, true))
    assert_raises(function() model:load_session(path, { ctx = 4 }) end, "unknown option 'ctx'")
    local gen = model:generate(PROMPT, { session = sess, async = true, max_tokens = 50 })
    assert_raises(function() sess:save(path) end, "session in use")
    gen:close()
    os.remove(path)
  end)
end)

describe("context shift", function()
  local model
  setup(function() model = assert(bitnet.load()) end)

  -- Layer 1's keys and values depend only on each token and its position,
  -- so after a shift they must equal a fresh evaluation of the kept tokens
  -- at their new positions. The shifted key went through two rotations
  -- (RoPE at the old position in float, then the delta in double) where
  -- the fresh one went through one: they agree to float rounding of
  -- values of magnitude |k|: a few float ulps at angles up to ~50 rad, so
  -- 1e-5 relative to the vector's largest element (measured 1.6e-6); an
  -- f16 cache rounds each to 11 bits twice: 2e-3 (half-ulp 2.4e-4 per
  -- rounding relative to the element; measured 9.4e-4 relative to the
  -- largest). Deeper layers saw the dropped tokens:
  -- they are the text before the shift, not a fresh evaluation.
  it("re-rotates keys to their new positions", function()
    local ids = model:tokenize(PROMPT .. PROMPT)
    for _, kv_type in ipairs({ "f32", "f16" }) do
      local sess = model:session({ n_ctx = 128, kv_type = kv_type })
      sess:feed(ids)
      local keep, n = 1, 10
      sess:shift(keep, n)
      local kept = {}
      for i = 1, keep do kept[#kept + 1] = ids[i] end
      for i = keep + n + 1, #ids do kept[#kept + 1] = ids[i] end
      assert.are.same(kept, sess:tokens())
      local fresh = model:session({ n_ctx = 128, kv_type = kv_type })
      fresh:feed(kept)
      local tol = kv_type == "f16" and 2e-3 or 1e-5
      local worst = 0
      for pos = 1, #kept do
        local k1, v1 = sess:kv(1, 1, pos)
        local k2, v2 = fresh:kv(1, 1, pos)
        local big = 1e-6
        for d = 1, #k1 do big = math.max(big, math.abs(k2[d])) end
        for d = 1, #k1 do
          worst = math.max(worst, math.abs(k1[d] - k2[d]) / big)
          assert.are.equal(v2[d], v1[d])
        end
      end
      assert.is_true(worst < tol, kv_type .. " worst relative difference " .. worst)
      -- and the moved values of every layer are the old ones
      sess:close(); fresh:close()
    end
  end)

  it("lets generation go past n_ctx, sync and async alike", function()
    local o = { max_tokens = 120, temperature = 0, n_ctx = 48, context_shift = true }
    local text, info = model:generate("In the beginning", o)
    assert.are.equal("length", info.finish_reason)
    assert.are.equal(120, info.completion_tokens)
    o.async = true
    local gen = model:generate("In the beginning", o)
    assert.is_true(gen:wait(30))
    local parts = {}
    while true do
      local p = gen:poll()
      if not p then break end
      parts[#parts + 1] = p
    end
    assert.are.equal(text, table.concat(parts))
    -- without it the context ends the generation
    local _, i2 = model:generate("In the beginning", { max_tokens = 120, temperature = 0, n_ctx = 48 })
    assert.is_true(i2.completion_tokens < 48)
  end)

  it("checks its arguments", function()
    local sess = model:session({ n_ctx = 32 })
    sess:feed({ 1, 2, 3, 4 })
    assert_raises(function() sess:shift(0, 5) end, "keep + n <= pos")
    assert_raises(function() sess:shift(-1, 1) end, "keep (-1) >= 0")
    assert_raises(function() sess:shift(1, 0) end, "n (0) >= 1")
    assert_raises(function() sess:kv(0, 1, 1) end, "layer 1..")
    assert_raises(function() model:generate("x", { context_shift = { keep = 999 }, n_ctx = 32 }) end,
      "keep must be an integer within 0..30")
    assert_raises(function() model:generate("x", { context_shift = { kep = 1 } }) end, "unknown key 'kep'")
  end)
end)
