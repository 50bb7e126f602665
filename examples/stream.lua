-- Streaming generation: prints text as the model produces it, then the
-- finish reason and speed.
--   bin/bitnet lua examples/stream.lua [MODEL] [PROMPT]   (from a checkout; luajit bin/bitnet ... for LuaJIT)
-- MODEL defaults to the shipped model. Runs from a checkout (after `make`)
-- or with bitnet installed by luarocks.
local bitnet = require("bitnet")

local model, err = bitnet.load(arg[1]) -- nil: the shipped model
if not model then
  io.stderr:write(err, "\n")
  os.exit(1)
end
local prompt = arg[2] or "In the beginning"

io.write(prompt)
-- the iterator yields whole UTF-8 pieces; gen.info is filled in at the end
local gen = model:stream(prompt, {
  max_tokens = 48, temperature = 0.8, top_p = 0.95, seed = 42,
  stop = { "\n\n" }, -- held back until decided, never printed
})
for piece in gen do
  io.write(piece)
  io.flush()
end
local info = gen.info
print()
print(("[%s: %d prompt tokens, %d generated, prefill %.0f tok/s, decode %.0f tok/s]"):format(
  info.finish_reason, info.prompt_tokens, info.completion_tokens,
  info.prefill_tokens_per_second, info.decode_tokens_per_second))
