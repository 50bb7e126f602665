-- Kernel paths, threads, batched prefill and the speed options (issue 6).
-- The bit-for-bit check of every kernel against the C reference on random
-- inputs is the C program tests/kernels_test.c (`make test-kernels`); here
-- every path runs the whole model on every GGUF fixture, and the options
-- that must not change results are shown not to.
local bitnet = require("bitnet")
local core = require("bitnet.core")
local fx = require("support.fixtures")

local gguf = fx.shared .. "/fixtures/gguf/"
local fixtures = { "bitnet-silu-f32", "bitnet-silu-tq2_0", "bitnet-silu-tq1_0", "b158-relu2-i2_s",
  "b158-relu2-tq2_0", "bitnet-relu2-tq2_0" }

local function ids(n, seed)
  local t, x = {}, seed
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = x % 509 + 3
  end
  return t
end

local function same_bits(a, b, what)
  assert.are.equal(#a, #b)
  for i = 1, #a do
    if a[i] ~= b[i] then error(("%s: logit %d differs: %.9g vs %.9g"):format(what, i - 1, a[i], b[i])) end
  end
end

describe("kernel paths", function()
  local paths = core.kernels()

  it("are listed best first and always include the reference", function()
    assert.is_true(#paths >= 1)
    assert.are.equal("ref", paths[#paths])
    local m = assert(bitnet.load(gguf .. "b158-relu2-i2_s/model.gguf"))
    local forced = os.getenv("BITNET_KERNEL")
    assert.are.equal((forced and forced ~= "" and forced ~= "auto") and forced or paths[1], m:info().kernel)
  end)

  it("refuses a path this CPU cannot run, or an unknown one", function()
    local runs = table.concat(paths, ", ")
    local ok, err = pcall(bitnet.load, gguf .. "b158-relu2-i2_s/model.gguf", { kernel = "sse9" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bitnet.load: unknown kernel path 'sse9' (this CPU runs: " .. runs .. ")", 1, true), err)
    -- a path of the other CPU family is known, and cannot run here
    local other = runs:find("neon", 1, true) and "avx2" or "neon"
    ok, err = pcall(bitnet.load, gguf .. "b158-relu2-i2_s/model.gguf", { kernel = other })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("kernel path '" .. other .. "' cannot run on this CPU (it runs: " .. runs .. ")", 1, true), err)
  end)

  for _, name in ipairs(fixtures) do
    it("each reproduces the reference logits of " .. name, function()
      local dir = gguf .. name
      local expected = fx.read_json(dir .. "/expected.json")
      for _, k in ipairs(paths) do
        local m = assert(bitnet.load(dir .. "/model.gguf", { kernel = k }))
        assert.are.equal(k, m:info().kernel)
        fx.check_sequences(m, expected)
        assert.are.equal(16, fx.check_greedy(m, expected.greedy))
      end
    end)
  end
end)

describe("batched prefill and threads", function()
  local path = gguf .. "b158-relu2-i2_s/model.gguf"

  it("give the same bits as one token at a time, across chunks and thread counts", function()
    local prompt = ids(150, 7) -- more than one chunk of 64
    local one = assert(bitnet.load(path, { threads = 1 }))
    local s = one:session()
    for _, id in ipairs(prompt) do s:feed({ id }) end
    local want = s:logits()
    for _, th in ipairs({ 1, 2, 3 }) do
      local m = assert(bitnet.load(path, { threads = th }))
      assert.are.equal(th, m:info().threads)
      local b = m:session()
      assert.are.equal(150, b:feed(prompt))
      same_bits(want, b:logits(), th .. " threads, batched")
      -- decode after the prefill, still the same as one at a time
      b:feed({ 42 })
      s:feed({ 42 })
      same_bits(s:logits(), b:logits(), th .. " threads, decode after prefill")
      s:rewind(150)
    end
  end)

  it("uses one thread per physical core by default", function()
    local m = assert(bitnet.load(path))
    assert.is_true(m:info().threads >= 1)
  end)
end)

describe("huge-page weights", function()
  it("give the same bits as the file mapping", function()
    for _, name in ipairs({ "b158-relu2-i2_s", "bitnet-silu-f32" }) do
      local path = gguf .. name .. "/model.gguf"
      local a = assert(bitnet.load(path))
      local b = assert(bitnet.load(path, { hugepages = true }))
      local prompt = ids(40, 5)
      local sa, sb = a:session(), b:session()
      sa:feed(prompt)
      sb:feed(prompt)
      same_bits(sa:logits(), sb:logits(), name .. " with hugepages")
    end
    assert.has_error(function() bitnet.load(gguf .. "b158-relu2-i2_s/model.gguf", { hugepages = 1 }) end)
  end)
end)

describe("KV-cache type", function()
  local path = gguf .. "bitnet-silu-tq2_0/model.gguf"

  -- These random fixtures are chaotic (see spec/support/fixtures.lua): the
  -- f16 rounding of k and v (1e-3 relative) moves int8 activations across
  -- rounding edges, so only agreement is asked for (measured: 43 to 46 of
  -- 50 positions keep the f32 cache's top-1 on every fixture).
  it("f16 stores the cache in half the bytes and mostly agrees with f32", function()
    local m = assert(bitnet.load(path))
    local expected = fx.read_json(gguf .. "bitnet-silu-tq2_0/expected.json")
    local same, total = 0, 0
    for _, seq in ipairs(expected.sequences) do
      local la = fx.run_positions(m, seq.ids, { kv_type = "f32" })
      local lb = fx.run_positions(m, seq.ids, { kv_type = "f16" })
      for i = 1, #la do
        total = total + 1
        if fx.argmax(la[i]) == fx.argmax(lb[i]) then same = same + 1 end
        for _, v in ipairs(lb[i]) do assert.is_true(v == v and v > -1e30 and v < 1e30) end
      end
    end
    assert.is_true(same >= 0.8 * total, ("f16 cache keeps top-1 at %d of %d positions"):format(same, total))
  end)

  it("rejects other types", function()
    local m = assert(bitnet.load(path))
    assert.has_error(function() m:session({ kv_type = "f8" }) end,
      "model:session: option 'kv_type' must be \"f32\" or \"f16\"")
  end)
end)

describe("int8 output head", function()
  -- Measured on the six GGUF fixtures: top-1 agrees with the stored head at
  -- 297 of 300 positions, logits move by up to 0.7: not exact enough to be
  -- the default, which keeps every fixture's top-1.
  it("keeps top-1 at nearly every position of every fixture", function()
    local same, total = 0, 0
    for _, name in ipairs(fixtures) do
      local dir = gguf .. name
      local expected = fx.read_json(dir .. "/expected.json")
      local a = assert(bitnet.load(dir .. "/model.gguf"))
      local b = assert(bitnet.load(dir .. "/model.gguf", { output_head = "int8" }))
      assert.are.equal("native", a:info().output_head)
      assert.are.equal("int8", b:info().output_head)
      for _, seq in ipairs(expected.sequences) do
        local la, lb = fx.run_positions(a, seq.ids), fx.run_positions(b, seq.ids)
        for i = 1, #la do
          total = total + 1
          if fx.argmax(la[i]) == fx.argmax(lb[i]) then same = same + 1 end
        end
      end
    end
    assert.is_true(same >= 0.97 * total, ("int8 head keeps top-1 at %d of %d positions"):format(same, total))
  end)

  it("rejects other head types", function()
    assert.has_error(function() bitnet.load(gguf .. "b158-relu2-i2_s/model.gguf", { output_head = "int4" }) end,
      "bitnet.load: option 'output_head' must be \"native\" or \"int8\"")
  end)
end)
