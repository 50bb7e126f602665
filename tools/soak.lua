-- tools/soak.lua [CYCLES] [MAX_GROWTH_KIB] [MODEL]: the soak run of `make soak` (not CI).
-- Each cycle loads the model (the last handle closed at the end of the
-- previous cycle, so the weights are really read again), generates
-- synchronously and asynchronously, cancels an async generation mid-way,
-- saves a session and loads it back, then closes everything. Prints the
-- process's resident memory along the way; a leak shows as RSS that keeps
-- growing after the first cycles (the sanitizer or valgrind around this
-- script reports the leaks themselves). Exits non-zero on any failure, and
-- when MAX_GROWTH_KIB is given and RSS grew more than that after the first
-- tenth of the run.
local bitnet = require("bitnet")

local cycles = tonumber(arg[1]) or 1000
local max_growth = tonumber(arg[2])
local model_path = arg[3] or bitnet.default_model()
local session_path = os.tmpname()

-- Resident set size in KiB, from /proc (Linux).
local function rss_kib()
  local f = assert(io.open("/proc/self/statm", "r"))
  local _, resident = f:read("n", "n")
  f:close()
  return resident * 4
end

local PROMPT = "In the beginning God created the heaven and the earth."

local function cycle(i)
  local model = assert(bitnet.load(model_path))
  local opts = { max_tokens = 16, temperature = 0.8, seed = i }
  local want = model:generate(PROMPT, opts)

  -- the same generation on the engine gives the same text
  local gen = model:generate(PROMPT, { max_tokens = 16, temperature = 0.8, seed = i, async = true })
  assert(gen:wait(60), "async generation did not finish")
  local parts = {}
  for piece in gen do parts[#parts + 1] = piece end
  assert(table.concat(parts) == want, "cycle " .. i .. ": async text differs from the synchronous text")

  -- cancelled mid-way (or before the engine picks it up); closed at once
  local doomed = model:generate(PROMPT, { max_tokens = 200, async = true })
  doomed:poll()
  doomed:cancel()
  assert(doomed.info.finish_reason == "cancelled")
  doomed:close()

  -- a session saved and loaded back continues as the original would
  local sess = model:session({ n_ctx = 128 })
  model:generate(PROMPT, { max_tokens = 4, temperature = 0, session = sess })
  assert(sess:save(session_path))
  local restored = assert(model:load_session(session_path, { n_ctx = 128 }))
  local a = model:generate(" And", { max_tokens = 4, temperature = 0, session = sess })
  local b = model:generate(" And", { max_tokens = 4, temperature = 0, session = restored })
  assert(a == b, "cycle " .. i .. ": the restored session continues differently")
  restored:close()
  sess:close()
  model:close()
end

-- RSS is compared from a tenth of the run on (at least cycle 10): the
-- allocator's arenas settle over the first cycles.
local base_cycle = math.min(cycles, math.max(10, cycles // 10))
local t0 = os.clock()
local first, samples = nil, {}
for i = 1, cycles do
  cycle(i)
  collectgarbage()
  if i == base_cycle then first = rss_kib() end
  if i % math.max(1, cycles // 10) == 0 or i == cycles then
    samples[#samples + 1] = string.format("%d:%d", i, rss_kib())
  end
end
os.remove(session_path)
local last = rss_kib()
print(string.format("soak: %d cycles in %.1f s CPU; RSS after cycle %d: %d KiB, at the end: %d KiB (%+d KiB)",
  cycles, os.clock() - t0, base_cycle, first, last, last - first))
print("soak: RSS (cycle:KiB) " .. table.concat(samples, " "))
if max_growth and last - first > max_growth then
  io.stderr:write(string.format("soak: RSS grew %d KiB after cycle %d, over the bound of %d KiB\n", last - first, base_cycle, max_growth))
  os.exit(1)
end
