-- bitnet.sampler: the C sampling chain. Every random test is seeded, so it
-- is deterministic: the tolerances below are wide enough for any seed (about
-- five standard deviations) and were not tuned to one.
local bitnet = require("bitnet")
local fx = require("support.fixtures")

local function softmax(logits, temperature)
  temperature = temperature or 1
  local mx = -math.huge
  for _, l in ipairs(logits) do mx = math.max(mx, l) end
  local p, sum = {}, 0
  for i, l in ipairs(logits) do
    p[i] = math.exp((l - mx) / temperature)
    sum = sum + p[i]
  end
  for i = 1, #p do p[i] = p[i] / sum end
  return p
end

-- counts[id + 1] over n draws
local function histogram(smp, logits, n)
  local counts = {}
  for i = 1, #logits do counts[i] = 0 end
  for _ = 1, n do
    local id = smp:sample(logits)
    counts[id + 1] = counts[id + 1] + 1
  end
  return counts
end

-- asserts every frequency is within 5 standard deviations of p
local function assert_frequencies(counts, p, n)
  for i = 1, #p do
    local sd = math.sqrt(n * p[i] * (1 - p[i]))
    local diff = math.abs(counts[i] - n * p[i])
    assert(diff <= 5 * sd + 1e-9,
      ("id %d drawn %d times, expected %.1f (sd %.1f)"):format(i - 1, counts[i], n * p[i], sd))
  end
end

-- ids that were drawn at least once, as a sorted list
local function drawn_set(counts)
  local set = {}
  for i, c in ipairs(counts) do
    if c > 0 then set[#set + 1] = i - 1 end
  end
  return set
end

-- a deterministic pseudo-random logit vector (a small LCG; no math.random)
local function fake_logits(n, state)
  local t = {}
  for i = 1, n do
    state = (state * 1103515245 + 12345) % 2147483648
    t[i] = (state / 2147483648) * 8 - 4
  end
  return t, state
end

local argmax = fx.argmax -- 0-based id of the largest value (lowest on ties)

local LOGITS = { math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05) }

describe("bitnet.sampler", function()
  describe("options", function()
    it("has llama.cpp's defaults and prints them", function()
      local s = bitnet.sampler({ seed = 3 })
      assert.are.equal("bitnet.Sampler<temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, typical_p=1, "
        .. "repeat_penalty=1, repeat_last_n=64, presence_penalty=0, frequency_penalty=0, seed=3>", tostring(s))
      assert.are.equal(3, s:seed())
      assert.are.same({ temperature = 0.8, top_k = 40, top_p = 0.95, min_p = 0.05, typical_p = 1, repeat_penalty = 1,
        repeat_last_n = 64, presence_penalty = 0, frequency_penalty = 0, seed = 3 }, (function()
          local o = s:options()
          for k, v in pairs(o) do
            if math.type == nil or math.type(v) == "float" then o[k] = tonumber(("%.6g"):format(v)) end
          end
          return o
        end)())
      assert.is_false(s:greedy())
      assert.is_true(bitnet.sampler({ temperature = 0 }):greedy())
      assert.is_true(bitnet.sampler({ top_k = 1 }):greedy())
    end)

    it("raises naming an unknown key", function()
      assert.has_error(function() bitnet.sampler({ temp = 0.5 }) end, "bitnet.sampler: unknown option 'temp'")
      assert.has_error(function() bitnet.sampler({ [1] = 2 }) end, "bitnet.sampler: option keys must be strings")
      assert.has_error(function() bitnet.sampler(5) end, "bitnet.sampler: options must be a table, got number")
    end)

    it("raises naming a key with a wrong type or value", function()
      local bad = {
        { { temperature = "hot" }, "option 'temperature' must be a number" },
        { { temperature = -1 }, "option 'temperature' must be >= 0" },
        { { temperature = 0 / 0 }, "option 'temperature' must be >= 0" },
        { { top_k = 1.5 }, "option 'top_k' must be an integer" },
        { { top_k = -1 }, "option 'top_k' must be >= 0" },
        { { top_p = 0 }, "option 'top_p' must be in (0, 1]" },
        { { top_p = 1.5 }, "option 'top_p' must be in (0, 1]" },
        { { min_p = -0.1 }, "option 'min_p' must be in [0, 1]" },
        { { typical_p = 0 }, "option 'typical_p' must be in (0, 1]" },
        { { repeat_penalty = 0 }, "option 'repeat_penalty' must be > 0" },
        { { repeat_last_n = -1 }, "option 'repeat_last_n' must be 0..1048576" },
        { { presence_penalty = math.huge }, "option 'presence_penalty' must be finite" },
        { { frequency_penalty = "x" }, "option 'frequency_penalty' must be a number" },
        { { seed = 1.5 }, "option 'seed' must be an integer" },
        { { logit_bias = 3 }, "option 'logit_bias' must be a table of id = bias" },
        { { logit_bias = { x = 1 } }, "option 'logit_bias' keys must be token ids (integers >= 0)" },
        { { logit_bias = { [-1] = 1 } }, "option 'logit_bias' keys must be token ids (integers >= 0)" },
        { { logit_bias = { [2] = "up" } }, "option 'logit_bias' value for id 2 must be a number" },
        { { logit_bias = { [2] = 0 / 0 } }, "option 'logit_bias' value for id 2 must be a number" },
      }
      for _, case in ipairs(bad) do
        local ok, err = pcall(bitnet.sampler, case[1])
        assert.is_false(ok)
        assert.are.equal("bitnet.sampler: " .. case[2], err:gsub("^.-bitnet%.sampler", "bitnet.sampler"))
      end
    end)

    it("chooses a fresh seed when none is given and reports it", function()
      local a, b = bitnet.sampler(), bitnet.sampler()
      assert.is_number(a:seed())
      assert.are_not.equal(a:seed(), b:seed())
      -- the reported seed reproduces the sampler's choices
      local c = bitnet.sampler({ seed = a:seed() })
      local logits = fake_logits(50, 1)
      for _ = 1, 20 do assert.are.equal(c:sample(logits), a:sample(logits)) end
    end)
  end)

  describe("greedy", function()
    it("takes the largest logit, the lowest id on ties", function()
      local s = bitnet.sampler({ temperature = 0 })
      assert.are.equal(2, s:sample({ 1, 2, 5, 4 }))
      assert.are.equal(1, s:sample({ 1, 5, 5, 5 }))
      assert.are.equal(0, s:sample({ 7 }))
    end)

    it("is argmax for top_k = 1 at any temperature, and for temperature 0", function()
      local state = 7
      local hot = bitnet.sampler({ top_k = 1, temperature = 5, seed = 1 })
      local cold = bitnet.sampler({ temperature = 0, top_k = 0, top_p = 0.5, seed = 1 })
      for _ = 1, 200 do
        local logits
        logits, state = fake_logits(300, state)
        local want = argmax(logits)
        assert.are.equal(want, hot:sample(logits))
        assert.are.equal(want, cold:sample(logits))
      end
    end)

    it("reads NaN as -inf, and copes with every logit banned or infinite", function()
      local s = bitnet.sampler({ seed = 2, top_k = 0, top_p = 1, min_p = 0, temperature = 1 })
      for _ = 1, 50 do assert.are.equal(1, s:sample({ 0 / 0, 0, 0 / 0 })) end
      assert.are.equal(0, s:sample({ -math.huge, -math.huge }))
      assert.are.equal(1, s:sample({ 1, math.huge, math.huge }))
    end)
  end)

  describe("seeded draws", function()
    it("repeat for the same seed, after reset, and differ for another seed", function()
      local logits = fake_logits(1000, 99)
      local function run(smp, n)
        local out = {}
        for i = 1, n do out[i] = smp:sample(logits) end
        return out
      end
      local opts = { seed = 1234, temperature = 1.5, top_k = 0, top_p = 1, min_p = 0 }
      local a = run(bitnet.sampler(opts), 100)
      assert.are.same(a, run(bitnet.sampler(opts), 100))
      local s = bitnet.sampler(opts)
      run(s, 37)
      s:reset()
      assert.are.same(a, run(s, 100))
      opts.seed = 1235
      assert.are_not.same(a, run(bitnet.sampler(opts), 100))
    end)

    -- Lua 5.4 has the 64-bit integers to replay the documented generator
    -- (xoshiro256** seeded by splitmix64; a draw is the top 53 bits) and the
    -- documented draw (cumulative softmax weights in id order) independently.
    local replay = not jit and _VERSION == "Lua 5.4" and load([[
      local seed, logits, n = ...
      local function rotl(x, k) return (x << k) | (x >> (64 - k)) end
      local st, x = {}, seed
      for i = 1, 4 do
        x = x + 0x9e3779b97f4a7c15
        local z = x
        z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
        z = (z ~ (z >> 27)) * 0x94d049bb133111eb
        st[i] = z ~ (z >> 31)
      end
      local function uniform()
        local result = rotl(st[2] * 5, 7) * 9
        local t = st[2] << 17
        st[3] = st[3] ~ st[1]; st[4] = st[4] ~ st[2]; st[2] = st[2] ~ st[3]; st[1] = st[1] ~ st[4]
        st[3] = st[3] ~ t; st[4] = rotl(st[4], 45)
        return (result >> 11) * (1.0 / 9007199254740992.0)
      end
      local mx = math.max(table.unpack(logits))
      local out = {}
      for d = 1, n do
        local total = 0.0
        for _, l in ipairs(logits) do total = total + math.exp(l - mx) end
        local u, acc = uniform() * total, 0.0
        for i, l in ipairs(logits) do
          acc = acc + math.exp(l - mx)
          if acc > u then out[d] = i - 1; break end
        end
      end
      return out
    ]])

    it("are the documented generator and draw", function()
      if not replay then return end -- LuaJIT: the same C code, checked against 5.4 by the runs above
      local logits = { 0.5, 1.25, -2, 3, 0, 2.5 }
      for _, seed in ipairs({ 0, 1, 42, 123456789, -1 }) do
        local s = bitnet.sampler({ seed = seed, temperature = 1, top_k = 0, top_p = 1, min_p = 0 })
        local got = {}
        for d = 1, 200 do got[d] = s:sample(logits) end
        assert.are.same(replay(seed, logits, 200), got)
      end
    end)

    it("follow the softmax at temperature 1 and 2", function()
      local n = 20000
      for _, t in ipairs({ 1, 2, 0.5 }) do
        local s = bitnet.sampler({ seed = 42, temperature = t, top_k = 0, top_p = 1, min_p = 0 })
        assert_frequencies(histogram(s, LOGITS, n), softmax(LOGITS, t), n)
      end
    end)
  end)

  describe("truncation", function()
    it("top_k keeps the k best and renormalizes", function()
      local n = 10000
      local s = bitnet.sampler({ seed = 5, temperature = 1, top_k = 2, top_p = 1, min_p = 0 })
      local counts = histogram(s, LOGITS, n)
      assert.are.same({ 0, 1 }, drawn_set(counts))
      assert_frequencies(counts, { 0.5 / 0.8, 0.3 / 0.8, 0, 0 }, n)
    end)

    it("top_p keeps the smallest prefix reaching p", function()
      -- probabilities 0.5, 0.3, 0.15, 0.05
      local cases = { { 0.4, { 0 } }, { 0.75, { 0, 1 } }, { 0.9, { 0, 1, 2 } }, { 0.99, { 0, 1, 2, 3 } } }
      for _, case in ipairs(cases) do
        local s = bitnet.sampler({ seed = 6, temperature = 1, top_k = 0, top_p = case[1], min_p = 0 })
        assert.are.same(case[2], drawn_set(histogram(s, LOGITS, 4000)))
      end
    end)

    it("top_p finds a nucleus of hundreds of tokens, ties by id", function()
      -- 300 equally likely tokens hold 75% of the mass; 2700 share the rest
      local logits = {}
      for i = 1, 3000 do logits[i] = i <= 300 and math.log(0.75 / 300) or math.log(0.25 / 2700) end
      local s = bitnet.sampler({ seed = 8, temperature = 1, top_k = 0, top_p = 0.701, min_p = 0 })
      local set = drawn_set(histogram(s, logits, 20000))
      assert.are.equal(281, #set) -- 0.701 / (0.75 / 300) = 280.4 tokens, the lowest ids on ties
      assert.are.equal(0, set[1])
      assert.are.equal(280, set[281])
    end)

    it("min_p keeps p >= min_p * p_max", function()
      local cases = { { 0.2, { 0, 1, 2 } }, { 0.5, { 0, 1 } }, { 0.05, { 0, 1, 2, 3 } }, { 1, { 0 } } }
      for _, case in ipairs(cases) do
        local s = bitnet.sampler({ seed = 9, temperature = 1, top_k = 0, top_p = 1, min_p = case[1] })
        assert.are.same(case[2], drawn_set(histogram(s, LOGITS, 4000)))
      end
    end)

    it("typical_p keeps the tokens closest to the entropy", function()
      -- H = 1.1434; |-log p - H| = 0.45, 0.06, 0.75, 1.85: order 1, 0, 2, 3
      local cases = { { 0.25, { 1 } }, { 0.7, { 0, 1 } }, { 0.9, { 0, 1, 2 } } }
      for _, case in ipairs(cases) do
        local s = bitnet.sampler({ seed = 10, temperature = 1, top_k = 0, top_p = 1, min_p = 0, typical_p = case[1] })
        assert.are.same(case[2], drawn_set(histogram(s, LOGITS, 4000)))
      end
    end)

    it("keeps the same sets as a plain sort-and-sum reference on random distributions", function()
      -- logits k/16 are exact in float; a huge temperature makes every kept
      -- token about equally likely, so 4000 seeded draws show the kept set
      local function reference(logits, opts)
        local n = #logits
        local order = {}
        for i = 1, n do order[i] = i end
        table.sort(order, function(a, b)
          return logits[a] > logits[b] or (logits[a] == logits[b] and a < b)
        end)
        local keep = {}
        for r = 1, math.min(opts.top_k > 0 and opts.top_k or n, n) do keep[r] = order[r] end
        local function probs(set)
          local mx, sum, p = -math.huge, 0, {}
          for _, i in ipairs(set) do mx = math.max(mx, logits[i]) end
          for _, i in ipairs(set) do sum = sum + math.exp(logits[i] - mx) end
          for _, i in ipairs(set) do p[i] = math.exp(logits[i] - mx) / sum end
          return p
        end
        if opts.typical_p < 1 then
          local p, h = probs(keep), 0
          for _, i in ipairs(keep) do h = h - p[i] * math.log(p[i]) end
          local score = {}
          for r, i in ipairs(keep) do score[i] = { math.abs(-math.log(p[i]) - h), r } end
          table.sort(keep, function(a, b)
            return score[a][1] < score[b][1] or (score[a][1] == score[b][1] and score[a][2] < score[b][2])
          end)
          local cum, cut = 0, #keep
          for r, i in ipairs(keep) do
            cum = cum + p[i]
            if cum >= opts.typical_p then cut = r break end
          end
          for r = #keep, cut + 1, -1 do keep[r] = nil end
          table.sort(keep, function(a, b) return score[a][2] < score[b][2] end)
        end
        if opts.top_p < 1 then
          local p, cum = probs(keep), 0
          for r, i in ipairs(keep) do
            cum = cum + p[i]
            if cum >= opts.top_p then
              for q = #keep, r + 1, -1 do keep[q] = nil end
              break
            end
          end
        end
        local set = {}
        for _, i in ipairs(keep) do set[#set + 1] = i - 1 end
        table.sort(set)
        return set
      end
      local state = 11
      local cases = {
        { top_k = 0, top_p = 0.5, typical_p = 1 }, { top_k = 0, top_p = 0.9, typical_p = 1 },
        { top_k = 0, top_p = 1, typical_p = 0.5 }, { top_k = 0, top_p = 1, typical_p = 0.9 },
        { top_k = 30, top_p = 0.8, typical_p = 1 }, { top_k = 0, top_p = 0.8, typical_p = 0.8 },
      }
      for round = 1, 3 do
        local logits = {}
        for i = 1, 300 do
          state = (state * 1103515245 + 12345) % 2147483648
          logits[i] = math.floor(state / 2147483648 * 192) / 16 -- 0 .. 12 in steps of 1/16
        end
        for ci, case in ipairs(cases) do
          local s = bitnet.sampler({ seed = round * 10 + ci, temperature = 1e6, min_p = 0, top_k = case.top_k,
            top_p = case.top_p, typical_p = case.typical_p })
          local want = reference(logits, case)
          assert(#want >= 2 and #want <= 80, ("case %d keeps %d tokens: pick a spread that shows truncation"):format(ci, #want))
          assert.are.same(want, drawn_set(histogram(s, logits, 4000)))
        end
      end
    end)

    it("applies the steps in order: top-k before top-p, top-p before temperature", function()
      -- after top_k = 3 the mass is 0.5, 0.3, 0.15 of 0.95; top_p = 0.82 of
      -- that needs the first two (0.526 + 0.316), of all four three
      local s = bitnet.sampler({ seed = 11, temperature = 1, top_k = 3, top_p = 0.82, min_p = 0 })
      assert.are.same({ 0, 1 }, drawn_set(histogram(s, LOGITS, 4000)))
      s = bitnet.sampler({ seed = 11, temperature = 1, top_k = 0, top_p = 0.82, min_p = 0 })
      assert.are.same({ 0, 1, 2 }, drawn_set(histogram(s, LOGITS, 4000)))
      -- top_p uses temperature-1 probabilities: a high temperature does not widen it
      s = bitnet.sampler({ seed = 12, temperature = 50, top_k = 0, top_p = 0.75, min_p = 0 })
      local counts = histogram(s, LOGITS, 4000)
      assert.are.same({ 0, 1 }, drawn_set(counts))
      assert_frequencies(counts, softmax({ LOGITS[1], LOGITS[2] }, 50), 4000)
    end)
  end)

  describe("penalties and bias", function()
    it("repeat_penalty divides positive and multiplies negative logits of recent tokens", function()
      local s = bitnet.sampler({ repeat_penalty = 2, temperature = 0 })
      s:accept(0)
      s:accept(2)
      local ids, logits = s:candidates({ 4, 3, -1, 0 }, 4)
      assert.are.same({ 1, 0, 3, 2 }, ids)
      assert.are.same({ 3, 2, 0, -2 }, logits)
      assert.are.equal(1, s:sample({ 4, 3, -1, 0 }))
    end)

    it("presence and frequency penalties count the window", function()
      local s = bitnet.sampler({ presence_penalty = 0.5, frequency_penalty = 0.25, repeat_last_n = 3 })
      s:accept({ 1, 1, 2 })
      local _, logits = s:candidates({ 0, 0, 0 }, 3)
      -- id 0: untouched; id 2: 1 * 0.25 + 0.5; id 1: 2 * 0.25 + 0.5
      assert.are.same({ 0, -0.75, -1 }, logits)
      s:accept(0) -- the window of 3 now holds 1, 2, 0
      _, logits = s:candidates({ 0, 0, 0 }, 3)
      assert.are.same({ -0.75, -0.75, -0.75 }, logits)
      s:reset()
      _, logits = s:candidates({ 0, 0, 0 }, 3)
      assert.are.same({ 0, 0, 0 }, logits)
    end)

    it("repeat_last_n = 0 turns penalties off", function()
      local s = bitnet.sampler({ repeat_penalty = 3, repeat_last_n = 0, temperature = 0 })
      s:accept(0)
      assert.are.equal(0, s:sample({ 2, 1 }))
    end)

    it("logit_bias adds to logits and -inf bans", function()
      local s = bitnet.sampler({ temperature = 0, logit_bias = { [0] = -math.huge, [3] = 0.5 } })
      assert.are.equal(3, s:sample({ 9, 1, 1.25, 1 }))
      local ids, logits = s:candidates({ 9, 1, 1.25, 1 }, 2)
      assert.are.same({ 3, 2 }, ids)
      assert.are.same({ 1.5, 1.25 }, logits)
      -- banned in random draws too
      s = bitnet.sampler({ seed = 1, temperature = 1, top_k = 0, top_p = 1, min_p = 0, logit_bias = { [0] = -math.huge } })
      assert.are.same({ 1, 2, 3 }, drawn_set(histogram(s, LOGITS, 2000)))
    end)

    it("raises when a logit_bias id is outside the vocabulary", function()
      local s = bitnet.sampler({ logit_bias = { [10] = 1 } })
      assert.has_error(function() s:sample({ 1, 2 }) end,
        "smp:sample: logit_bias id 10 is outside the vocabulary (2 ids)")
    end)
  end)

  describe("candidates and choose", function()
    it("candidates returns the best k with probabilities over the whole vocabulary", function()
      local s = bitnet.sampler()
      local ids, logits, probs = s:candidates({ 1, 3, 3, 2 }, 3)
      assert.are.same({ 1, 2, 3 }, ids)
      assert.are.same({ 3, 3, 2 }, logits)
      local p = softmax({ 1, 3, 3, 2 })
      for i = 1, 3 do assert.is_true(math.abs(probs[i] - p[ids[i] + 1]) < 1e-12) end
      ids = s:candidates({ 1, 2 }, 10)
      assert.are.same({ 1, 0 }, ids)
      -- no finite softmax: +inf logits share the mass, banned ones have none
      local _, _, p = s:candidates({ math.huge, 0, math.huge }, 3)
      assert.are.same({ 0.5, 0.5, 0 }, p)
      _, _, p = s:candidates({ -math.huge, -math.huge }, 2)
      assert.are.same({ 0, 0 }, p)
      assert.has_error(function() s:candidates({ 1 }, 0) end,
        "smp:candidates: argument 2 (k) must be an integer >= 1")
    end)

    it("choose runs the rest of the chain over a list of one's own", function()
      local s = bitnet.sampler({ temperature = 0 })
      assert.are.equal(17, s:choose({ 5, 17, 3 }, { 0, 2, 1 }))
      s = bitnet.sampler({ seed = 3, temperature = 1, top_k = 0, top_p = 1, min_p = 0 })
      local counts = { [5] = 0, [17] = 0 }
      for _ = 1, 4000 do
        local id = s:choose({ 5, 17 }, { 0, math.log(3) })
        counts[id] = counts[id] + 1
      end
      assert.is_true(math.abs(counts[17] - 3000) < 5 * math.sqrt(4000 * 0.75 * 0.25))
      assert.has_error(function() s:choose({}, {}) end, "smp:choose: argument 1 (ids) is empty")
      assert.has_error(function() s:choose({ 1, 2 }, { 0 }) end, "smp:choose: 2 ids but 1 logits")
      assert.has_error(function() s:choose({ -1 }, { 0 }) end, "smp:choose: ids[1] is not a token id")
      assert.has_error(function() s:choose({ 1 }, { "x" }) end, "smp:choose: logits[1] is not a number")
    end)

    it("accept takes an id or a list and checks them", function()
      local s = bitnet.sampler()
      s:accept(3)
      s:accept({ 1, 2 })
      assert.has_error(function() s:accept("x") end, "smp:accept: argument 1 must be a token id or an array of them")
      assert.has_error(function() s:accept({ 1, 2.5 }) end, "smp:accept: ids[2] is not a token id")
    end)

    it("rejects sources that are neither a session nor logits", function()
      local s = bitnet.sampler()
      assert.has_error(function() s:sample("x") end,
        "smp:sample: argument 1 must be a Session or an array of logits, got string")
      assert.has_error(function() s:sample({}) end, "smp:sample: argument 1 must be a non-empty array of logits")
      assert.has_error(function() s:sample({ 1, "a" }) end, "smp:sample: logit at index 2 is not a number")
    end)
  end)

  describe("bitnet.sampling", function()
    local sampling = bitnet.sampling

    it("makes samplers from presets and option tables, with overrides", function()
      local s = sampling.sampler("creative", { seed = 7 })
      local o = s:options()
      assert.are.equal(7, o.seed)
      assert.are.equal(100, o.top_k)
      assert.is_true(math.abs(o.temperature - 1.1) < 1e-6)
      assert.is_true(math.abs(o.repeat_penalty - 1.1) < 1e-6)
      assert.is_true(sampling.sampler("greedy"):greedy())
      assert.are.equal(3, sampling.sampler({ top_k = 3 }):options().top_k)
      assert.are.equal(0.5, sampling.sampler("precise", { temperature = 0.5 }):options().temperature)
      -- resolve leaves the preset tables untouched and ignores non-sampler keys
      local opts, fn = sampling.resolve("balanced", { seed = 1, max_tokens = 5 })
      assert.is_nil(fn)
      assert.are.same({ temperature = 0.8, top_k = 40, top_p = 0.95, min_p = 0.05, seed = 1 }, opts)
      assert.is_nil(sampling.presets.balanced.seed)
      local f = function() end
      opts, fn = sampling.resolve(f, { top_k = 9 })
      assert.are.equal(f, fn)
      assert.are.same({ top_k = 9 }, opts)
    end)

    it("names what is wrong", function()
      assert.has_error(function() sampling.sampler("wild") end,
        "bitnet.sampling.sampler: unknown policy 'wild' (presets: balanced, creative, greedy, precise)")
      assert.has_error(function() sampling.sampler({ temp = 1 }) end,
        "bitnet.sampling.sampler: unknown sampler option 'temp' in policy")
      assert.has_error(function() sampling.sampler(function() end) end,
        "bitnet.sampling.sampler: a policy function needs a Model; pass it as generate's 'policy' option")
    end)
  end)

  describe("on a session", function()
    local model
    setup(function()
      model = assert(bitnet.load(fx.shared .. "/fixtures/gguf/bitnet-silu-tq2_0/model.gguf"))
    end)

    it("samples from the session's last logits without copying them", function()
      local sess = model:session({ n_ctx = 16 })
      local s = bitnet.sampler({ temperature = 0 })
      assert.has_error(function() s:sample(sess) end, "smp:sample: the session has no logits yet: feed tokens first")
      sess:feed({ 1, 300, 301 })
      local logits = sess:logits()
      assert.are.equal(argmax(logits), s:sample(sess))
      local ids = s:candidates(sess, 5)
      assert.are.equal(5, #ids)
      assert.are.equal(argmax(logits), ids[1])
      -- a seeded draw from the session equals the same draw from the copied logits
      local a = bitnet.sampler({ seed = 77, temperature = 1.3 })
      local b = bitnet.sampler({ seed = 77, temperature = 1.3 })
      for _ = 1, 30 do assert.are.equal(a:sample(logits), b:sample(sess)) end
      sess:close()
      assert.has_error(function() s:sample(sess) end, "bitnet.Session: the session is closed")
    end)
  end)
end)
