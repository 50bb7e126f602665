-- bench/engine_bench.lua: the background engine's figures (issue 11), run by
-- `make bench-engine` (part of `make bench`): aggregate decode with 1..16
-- concurrent streams on the 2B-4T-shaped file, the host's longest stay in
-- an engine call, cancel latency, prefix reuse, the cost of verifying
-- drafts, speculative decoding on the shipped model, saved sessions.
-- Prints a Markdown block for bench/RESULTS.md. BENCH_QUICK=1: fewer tokens.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("BITNET_BUILD") or "build/lua5.4") .. "/?.so;" .. package.cpath
local bitnet = require("bitnet")
local core = bitnet.core
local clock = core.clock

local FILE = arg[1] or "bench/cache/synth-2b-i2_s-f16.gguf"
local THREADS = tonumber(os.getenv("BENCH_THREADS") or "2")
local QUICK = os.getenv("BENCH_QUICK") == "1"
local out = {}
local function say(fmt, ...)
  local line = fmt:format(...)
  print(line)
  out[#out + 1] = line
end

local function ids_for(n, seed)
  local ids, x = {}, seed
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    ids[i] = 1000 + x % 30000
  end
  return ids
end

local model = assert(bitnet.load(FILE, { threads = THREADS }))
local greedy = bitnet.sampler({ temperature = 0 })

-- Runs B jobs of `tokens` tokens each after a short prompt; returns the
-- aggregate tokens/s of the decode phase (from the engine's own timings)
-- and the host's longest time inside any poll.
local function streams(B, tokens)
  local jobs, sessions = {}, {}
  for i = 1, B do
    sessions[i] = model:session({ n_ctx = 256 })
    jobs[i] = core.job(sessions[i], greedy, ids_for(8, i), 0, { max_tokens = tokens })
  end
  local t0, worst, done, produced = clock(), 0, 0, 0
  local first_all -- when every stream has its first token (decode phase starts)
  local counts = {}
  for i = 1, B do counts[i] = 0 end
  while done < B do
    done = 0
    for i, j in ipairs(jobs) do
      local a = clock()
      local ids, st = j:poll()
      local d = clock() - a
      if d > worst then worst = d end
      counts[i] = counts[i] + #ids
      if st.finish then done = done + 1 end
    end
    if not first_all then
      local all = true
      for i = 1, B do all = all and counts[i] > 0 end
      if all then
        first_all = clock()
        produced = 0
        for i = 1, B do produced = produced - counts[i] end
      end
    end
    jobs[1]:wait(0.002)
  end
  local t1 = clock()
  for i = 1, B do produced = produced + counts[i] end
  for i = 1, B do jobs[i]:close(); sessions[i]:close() end
  return produced / (t1 - first_all), worst, t1 - t0
end

say("### Engine (issue 11), %s, %d threads, %s", FILE:match("[^/]*$"), THREADS, os.date("!%Y-%m-%d %H:%M UTC"))
say("")
say("| streams | aggregate decode tok/s | per stream | x one stream | longest poll (ms) |")
say("|---|---|---|---|---|")
-- (the longest poll includes waiting for a core: the engine's threads use
-- both; the call itself is a mutex and a copy)
local base
for _, B in ipairs({ 1, 2, 4, 8, 16 }) do
  local tokens = QUICK and 16 or 64
  local agg, worst = streams(B, tokens)
  base = base or agg
  say("| %d | %.1f | %.1f | %.2f | %.3f |", B, agg, agg / B, agg / base, worst * 1000)
end

-- Host stall: 4 jobs with 512-token prompts; the longest time the host
-- spends in start, poll and cancel; and cancel latency (until the engine
-- has let go: the job's session is free again).
do
  local n_prompt = QUICK and 128 or 512
  -- 4 jobs on model m; the host polls them all until they finish. Returns
  -- the sessions, the longest start and poll, and every poll's time, sorted.
  local function stall(m)
    local sessions, jobs, worst_start, worst_poll, polls = {}, {}, 0, 0, {}
    for i = 1, 4 do
      sessions[i] = m:session({ n_ctx = n_prompt + 64 })
      local a = clock()
      jobs[i] = core.job(sessions[i], greedy, ids_for(n_prompt, 100 + i), 0, { max_tokens = 32 })
      worst_start = math.max(worst_start, clock() - a)
    end
    local live = 4
    while live > 0 do
      live = 0
      for _, j in ipairs(jobs) do
        local a = clock()
        local _, st = j:poll()
        local d = clock() - a
        worst_poll = math.max(worst_poll, d)
        polls[#polls + 1] = d
        if not st.finish then live = live + 1 end
      end
      jobs[1]:wait(0.001)
    end
    for i = 1, 4 do jobs[i]:close() end
    table.sort(polls)
    return sessions, worst_start, worst_poll, polls
  end
  local sessions, worst_start, worst_poll, polls = stall(model)
  -- the same with an engine of one thread fewer: the host thread has a core
  local spare_poll
  if THREADS > 1 then
    local m1 = assert(bitnet.load(FILE, { threads = THREADS - 1 }))
    local s1, _, w1 = stall(m1)
    for i = 1, 4 do s1[i]:close() end
    m1:close()
    spare_poll = w1
  end
  sessions[1]:rewind(0)
  -- cancel: mid-prefill and mid-decode, 5 times each
  local worst_cancel_call, cancel_prefill, cancel_decode = 0, 0, 0
  for round = 1, 5 do
    for _, phase in ipairs({ "prefill", "decode" }) do
      local j = core.job(sessions[1], greedy, ids_for(n_prompt, round), 0, { max_tokens = 200 })
      if phase == "decode" then
        repeat j:wait(1) until #j:poll() > 0 or false
      else
        local s = clock()
        while clock() - s < 0.05 do end -- into the prompt
      end
      local a = clock()
      j:cancel()
      worst_cancel_call = math.max(worst_cancel_call, clock() - a)
      repeat j:wait(0.0005) local _, st = j:poll() until st.finish
      local lat = clock() - a
      if phase == "prefill" then cancel_prefill = math.max(cancel_prefill, lat) else cancel_decode = math.max(cancel_decode, lat) end
      j:close()
      sessions[1]:rewind(0)
    end
  end
  local one_step = 1 / base
  say("")
  local function pct(q) return polls[math.max(1, math.ceil(q * #polls))] * 1000 end
  say("Host stall with 4 generations of %d-token prompts: longest start %.3f ms, longest cancel call %.3f ms; "
    .. "%d polls: median %.4f ms, p99 %.3f ms, p99.9 %.3f ms, longest %.3f ms (the longest are the host thread "
    .. "waiting for a core the engine's %d threads hold, not for a lock).", n_prompt, worst_start * 1000,
    worst_cancel_call * 1000, #polls, pct(0.5), pct(0.99), pct(0.999), worst_poll * 1000, THREADS)
  if spare_poll then
    say("With the engine on %d thread(s), leaving the host thread a core: longest poll %.3f ms.", THREADS - 1,
      spare_poll * 1000)
  end
  say("Cancel until the engine reports it (worst of 5): mid-prefill %.1f ms, mid-decode %.1f ms "
    .. "(one decode step alone: %.1f ms).", cancel_prefill * 1000, cancel_decode * 1000, one_step * 1000)
  for i = 1, 4 do sessions[i]:close() end
end

-- Prefix reuse: time to first token of a request sharing a 1,000-token
-- prefix with the one before it, vs the first (a pool of two slots).
do
  local n = QUICK and 256 or 1000
  local pool = model:session_pool({ slots = 2, n_ctx = n + 64 })
  local prefix = ids_for(n, 7)
  local function ttft(tail)
    local ids = {}
    for i = 1, n do ids[i] = prefix[i] end
    for _, t in ipairs(tail) do ids[#ids + 1] = t end
    local sess = pool:acquire(ids)
    local common = require("bitnet.pool").common_prefix(sess:tokens(), ids)
    if common < sess:pos() then sess:rewind(common) end
    local a = clock()
    local j = core.job(sess, greedy, ids, common, { max_tokens = 1 })
    repeat j:wait(1) local got = j:poll() until #got > 0
    local t = clock() - a
    j:close()
    return t, common
  end
  local t1 = ttft({ 11, 12, 13 })
  local t2, reused = ttft({ 21, 22, 23, 24 })
  say("")
  say("Prefix reuse: first token after a %d-token prompt %.0f ms; a second request sharing its first %d tokens "
    .. "(%d reused) %.1f ms: %.1fx faster.", n + 3, t1 * 1000, n, reused, t2 * 1000, t1 / t2)
  pool:close()
end

-- Verifying K drafted tokens in one pass vs one decode step (2B shape).
do
  local sess = model:session({ n_ctx = 512 })
  sess:feed(ids_for(128, 3))
  local function timed(n, reps)
    local best = math.huge
    for _ = 1, reps do
      local pos = sess:pos()
      local a = clock()
      sess:feed(ids_for(n, 9))
      best = math.min(best, clock() - a)
      sess:rewind(pos)
    end
    return best
  end
  local reps = QUICK and 3 or 8
  local one = timed(1, reps)
  local k4 = timed(5, reps) -- the pending token and 4 drafts
  say("")
  say("Verify cost: one decode step %.1f ms; the pending token + 4 drafts in one pass %.1f ms (%.2fx).",
    one * 1000, k4 * 1000, k4 / one)
  sess:close()
end

-- Saved session: a 1,000-token session of the 2B shape.
do
  local n = QUICK and 128 or 1000
  local sess = model:session({ n_ctx = n + 24 })
  sess:feed(ids_for(n, 5))
  local path = os.tmpname()
  local a = clock()
  assert(sess:save(path))
  local t_save = clock() - a
  local f = assert(io.open(path, "rb"))
  local size = f:seek("end")
  f:close()
  a = clock()
  local loaded = assert(model:load_session(path))
  local t_load = clock() - a
  a = clock()
  local fresh = model:session({ n_ctx = n + 24 })
  fresh:feed(ids_for(n, 5))
  local t_compute = clock() - a
  say("")
  say("Saved session of %d tokens: %.1f MB, save %.0f ms, load %.0f ms (computing it: %.0f ms).",
    n, size / 1e6, t_save * 1000, t_load * 1000, t_compute * 1000)
  os.remove(path)
  sess:close(); loaded:close(); fresh:close()
end
model:close()

-- Speculative decoding end to end on the shipped model: a KJV chapter in
-- the prompt, then asked to continue its first verse (greedy re-reads it).
do
  local m = assert(bitnet.load({ threads = THREADS }))
  local handle = io.popen("bible -f gen1:1-31 2>/dev/null")
  local chapter = handle and handle:read("*a") or ""
  if handle then handle:close() end
  chapter = chapter:gsub("%f[%w]%u%l?%d+:%d+ ", "") -- one verse a line, as the model was trained
  if #chapter < 1000 then
    chapter = "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
      .. "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. "
      .. "And God said, Let there be light: and there was light."
  end
  local prompt = chapter .. "In the beginning"
  local n = QUICK and 64 or 256
  -- best of 3: the whole call (prompt included), and the generation alone
  -- (the prompt evaluated beforehand in the session, as a chat's would be)
  local function run(spec)
    local best, best_gen, text, info = math.huge, math.huge
    for _ = 1, 3 do
      local a = clock()
      text, info = m:generate(prompt, { max_tokens = n, temperature = 0, n_ctx = 2048, speculative = spec })
      best = math.min(best, clock() - a)
      local sess = m:session({ n_ctx = 2048 })
      m:generate(prompt, { max_tokens = 0, session = sess })
      a = clock()
      m:generate(prompt, { max_tokens = n, temperature = 0, session = sess, speculative = spec })
      best_gen = math.min(best_gen, clock() - a)
      sess:close()
    end
    return best, best_gen, text, info
  end
  local t_plain, g_plain, plain = run(nil)
  say("")
  say("Speculative (prompt lookup) on the shipped model, %d greedy tokens after a %d-token chapter; plain: "
    .. "%.0f ms with the prompt, %.0f ms generating.", n, #m:tokenize(prompt), t_plain * 1000, g_plain * 1000)
  for _, k in ipairs({ 4, 8 }) do
    local t_spec, g_spec, spec, info = run({ n_draft = k, ngram = 3 })
    say("- n_draft %d, ngram 3: %.0f ms with the prompt (%.2fx), %.0f ms generating (%.2fx); acceptance %.0f%%, "
      .. "%.2f tokens per pass; output %s.", k, t_spec * 1000, t_plain / t_spec, g_spec * 1000, g_plain / g_spec,
      info.speculative.acceptance * 100, info.speculative.tokens_per_pass, plain == spec and "identical" or "DIFFERS")
  end
  m:close()
end

local f = os.getenv("BENCH_OUT")
if f then
  local h = assert(io.open(f, "a"))
  h:write(table.concat(out, "\n"), "\n\n")
  h:close()
end
