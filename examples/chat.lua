-- A scripted chat: each reply goes back into the history, and one session
-- keeps the KV-cache between turns so only the new part of the
-- conversation is evaluated.
--   bin/bitnet lua examples/chat.lua [MODEL]   (from a checkout; luajit bin/bitnet ... for LuaJIT)
-- MODEL defaults to the shipped model.
local bitnet = require("bitnet")

local model, err = bitnet.load(arg[1])
if not model then
  io.stderr:write(err, "\n")
  os.exit(1)
end

local messages = {}
local session = model:session()
local opts = { max_tokens = 24, policy = "precise", seed = 7, session = session }

-- how the model's chat template lays out the conversation so far
print(("%q"):format(model:apply_chat_template({ { role = "user", content = "Hello" } })))

for _, question in ipairs({ "Who made the earth?", "And the light?" }) do
  messages[#messages + 1] = { role = "user", content = question }
  print("> " .. question)
  -- chat_stream yields the reply as it is generated; chat() returns it whole
  local parts = {}
  local gen = model:chat_stream(messages, opts)
  for piece in gen do
    parts[#parts + 1] = piece
    io.write(piece)
    io.flush()
  end
  print(("\n[%s; %d of %d prompt tokens reused]"):format(gen.info.finish_reason, gen.info.cached_tokens,
    gen.info.prompt_tokens))
  messages[#messages + 1] = { role = "assistant", content = table.concat(parts) }
end
session:close()
