-- bench/grammar_decode_bench.lua: what constrained decoding costs, run by
-- `make bench-grammar-decode` (part of `make bench`). Decode tokens/s on
-- the 2B-4T-shaped synthetic file (Llama 3's 128k vocabulary) without a
-- grammar and under JSON mode and a JSON Schema, greedy, the same number
-- of tokens (the schema's string goes on until max_tokens). Each figure is
-- the best of REPEAT runs, measured in the same process one after another.
-- Prints a Markdown block. BENCH_QUICK=1: fewer tokens.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("BITNET_BUILD") or "build/lua5.4") .. "/?.so;" .. package.cpath
local bitnet = require("bitnet")

local FILE = arg[1] or "bench/cache/synth-2b-i2_s-f16.gguf"
local THREADS = tonumber(os.getenv("BENCH_THREADS") or "2")
local QUICK = os.getenv("BENCH_QUICK") == "1"
local TOKENS = QUICK and 32 or 128
local REPEAT = QUICK and 1 or 3

local model = assert(bitnet.load(FILE, { threads = THREADS }))
local prompt = {}
for i = 1, 16 do prompt[i] = 1000 + i * 37 end

local schema = {
  type = "object",
  properties = { text = { type = "string" }, n = { type = "integer" } },
  required = { "text", "n" },
}

-- The best decode tokens/s of REPEAT runs, and the tokens of the last.
local function run(opts)
  local best, tokens, forced = 0, 0, 0
  for _ = 1, REPEAT do
    local o = { max_tokens = TOKENS, temperature = 0, n_ctx = 512 }
    for k, v in pairs(opts) do o[k] = v end
    local _, info = model:generate(prompt, o)
    if info.decode_tokens_per_second > best then best = info.decode_tokens_per_second end
    tokens, forced = info.completion_tokens, info.forced_tokens or 0
  end
  return best, tokens, forced
end

local lines = {}
local function say(fmt, ...)
  local line = fmt:format(...)
  print(line)
  lines[#lines + 1] = line
end

local free = run({})
local cases = {
  { "JSON mode (`json = true`)", { json = true, fast_forward = false } },
  { "JSON Schema (object: string, integer)", { json_schema = schema, fast_forward = false } },
  { "JSON Schema, fast_forward on", { json_schema = schema } },
}
say("Constrained decoding on %s, %d threads, %d tokens, greedy (best of %d):", FILE, THREADS, TOKENS, REPEAT)
say("")
say("| grammar | decode tok/s | vs none | tokens | forced |")
say("|---|---|---|---|---|")
say("| none | %.2f | 1.000 | %d | 0 |", free, TOKENS)
for _, c in ipairs(cases) do
  local tps, n, forced = run(c[2])
  say("| %s | %.2f | %.3f | %d | %d |", c[1], tps, tps / free, n, forced)
end
