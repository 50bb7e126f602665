-- bench/grammar_decode_bench.lua: what constrained decoding costs, run by
-- `make bench-grammar-decode` (part of `make bench`). Decode tokens/s on
-- the 2B-4T-shaped synthetic file (Llama 3's 128k vocabulary) without a
-- grammar and under JSON mode and a JSON Schema, greedy, the same number
-- of tokens (the schema's string goes on until max_tokens). Each figure is
-- the best of REPEAT runs; the runs take turns (none, JSON mode, schema, ...
-- then again), so a drift of the machine's speed touches every case alike.
-- On a 2-core VM those ratios move by a few percent from run to run, so the
-- grammar's own work is also timed: the schema run's tokens replayed
-- through a fresh matcher (mask, forced-token check and commit per token)
-- against the decode time per token.
-- Prints a Markdown block. BENCH_QUICK=1: fewer tokens.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("BITNET_BUILD") or "build/lua5.4") .. "/?.so;" .. package.cpath
local bitnet = require("bitnet")

local FILE = arg[1] or "bench/cache/synth-2b-i2_s-f16.gguf"
local THREADS = tonumber(os.getenv("BENCH_THREADS") or "2")
local QUICK = os.getenv("BENCH_QUICK") == "1"
local TOKENS = QUICK and 32 or 128
local REPEAT = QUICK and 1 or 5

local model = assert(bitnet.load(FILE, { threads = THREADS }))
local prompt = {}
for i = 1, 16 do prompt[i] = 1000 + i * 37 end

local schema = {
  type = "object",
  properties = { text = { type = "string" }, n = { type = "integer" } },
  required = { "text", "n" },
}

-- One run: decode tokens/s, tokens, forced tokens, the ids.
local function run(opts)
  local ids = {}
  local o = { max_tokens = TOKENS, temperature = 0, n_ctx = 512, on_token = function(id) ids[#ids + 1] = id end }
  for k, v in pairs(opts) do o[k] = v end
  local _, info = model:generate(prompt, o)
  return info.decode_tokens_per_second, info.completion_tokens, info.forced_tokens or 0, ids
end

-- The grammar's work per token over ids: mean and worst seconds.
local function grammar_work(ids)
  local clock = bitnet.core.clock
  local m = assert(bitnet.grammar({ json_schema = schema }, model)):matcher()
  local total, worst = 0, 0
  for _, id in ipairs(ids) do
    local a = clock()
    m:mask()
    m:forced()
    assert(m:commit(id))
    local d = clock() - a
    total = total + d
    if d > worst then worst = d end
  end
  return total / #ids, worst
end

local lines = {}
local function say(fmt, ...)
  local line = fmt:format(...)
  print(line)
  lines[#lines + 1] = line
end

local cases = {
  { "none", {} },
  { "JSON mode (`json = true`)", { json = true, fast_forward = false } },
  { "JSON Schema (object: string, integer)", { json_schema = schema, fast_forward = false } },
  { "JSON Schema, fast_forward on", { json_schema = schema } },
}
local best, tokens, forced, schema_ids = {}, {}, {}, nil
for _ = 1, REPEAT do
  for i, c in ipairs(cases) do
    local tps, n, f, ids = run(c[2])
    if c[2].json_schema then schema_ids = ids end
    if not best[i] or tps > best[i] then best[i] = tps end
    tokens[i], forced[i] = n, f
  end
end
say("Constrained decoding on %s, %d threads, %d tokens, greedy (best of %d, runs interleaved):", FILE, THREADS,
    TOKENS, REPEAT)
say("")
say("| grammar | decode tok/s | vs none | tokens | forced |")
say("|---|---|---|---|---|")
for i, c in ipairs(cases) do
  say("| %s | %.2f | %.3f | %d | %d |", c[1], best[i], best[i] / best[1], tokens[i], forced[i])
end
local mean, worst = grammar_work(schema_ids)
say("")
say("Grammar work per token (the schema run's %d tokens replayed: mask, forced check, commit): mean %.3f ms,",
    #schema_ids, mean * 1e3)
say("worst %.3f ms; %.2f%% of a decode step (%.1f ms at %.2f tok/s).", worst * 1e3, 100 * mean * best[1],
    1e3 / best[1], best[1])
