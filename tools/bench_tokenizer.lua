-- bench_tokenizer.lua: how fast the tokenizers load and encode/decode.
--   lua5.4 tools/bench_tokenizer.lua [SHARED_DIR]
-- Loads each reference tokenizer (best of 3), then encodes and decodes 1 MB
-- of English (the corpora, cut to exactly 1,000,000 bytes; best of 3).
-- Times are CPU seconds of this process (os.clock): the tokenizer is single
-- threaded, and on a busy machine wall time measures the neighbours.
package.cpath = "build/" .. (jit and "luajit" or "lua5.4") .. "/?.so;" .. package.cpath
local core = require("bitnet.core")

local shared = arg[1] or os.getenv("BITNET_SHARED") or "../shared"
local function read(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local text = (read(shared .. "/corpora/sherlock.txt") .. read(shared .. "/corpora/tinyshakespeare_input.txt")):sub(1, 1000000)

local function best_of(n, fn)
  local best, result = math.huge, nil
  for _ = 1, n do
    local t0 = os.clock()
    result = fn()
    best = math.min(best, os.clock() - t0)
  end
  return best, result
end

local T = shared .. "/tokenizer-tests/"
print(("%-34s %9s %11s %11s %9s"):format("tokenizer", "load ms", "encode MB/s", "decode MB/s", "tokens"))
for _, path in ipairs({ T .. "llama3/tokenizer.json", T .. "ggml-vocab-llama3-bpe.gguf", T .. "ggml-vocab-llama-spm.gguf" }) do
  local load_s, tok = best_of(3, function() return assert(core.tokenizer(path)) end)
  local enc_s, ids = best_of(3, function() return tok:encode(text, { bos = false }) end)
  local dec_s, back = best_of(3, function() return tok:decode(ids) end)
  assert(back == text, "round trip")
  print(("%-34s %9.1f %11.2f %11.2f %9d"):format(path:sub(#T + 1), load_s * 1e3, #text / 1e6 / enc_s,
    #text / 1e6 / dec_s, #ids))
end
