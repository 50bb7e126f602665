-- A sampling policy written in Lua: it sees the best candidates for each
-- token (ids, logits, probabilities), here drops every candidate that would
-- repeat one of the last three tokens, and lets the sampler pick from the
-- rest. Also prints what the model considered for the first token.
--   bin/bitnet lua examples/custom_policy.lua [MODEL] [PROMPT]   (from a checkout; luajit bin/bitnet ... for LuaJIT)
-- MODEL defaults to the shipped model.
local bitnet = require("bitnet")

local model, err = bitnet.load(arg[1])
if not model then
  io.stderr:write(err, "\n")
  os.exit(1)
end
local tok = model:tokenizer()
local prompt = arg[2] or "And God said"

local function no_recent_repeats(ids, logits, probs, state)
  if state.step == 1 then
    print("first-token candidates:")
    for i = 1, math.min(5, #ids) do
      print(("  %-16s p=%.3f logit=%.2f"):format(("%q"):format(tok:piece(ids[i])), probs[i], logits[i]))
    end
  end
  local recent = {}
  for i = math.max(1, #state.tokens - 2), #state.tokens do recent[state.tokens[i]] = true end
  local keep_ids, keep_logits = {}, {}
  for i, id in ipairs(ids) do
    if not recent[id] then
      keep_ids[#keep_ids + 1] = id
      keep_logits[#keep_logits + 1] = logits[i]
    end
  end
  if #keep_ids == 0 then return nil end -- nothing left: keep the candidates as they were
  return keep_ids, keep_logits
end

local text, info = model:generate(prompt, {
  max_tokens = 40, temperature = 0.7, top_k = 20, seed = 3, policy = no_recent_repeats,
})
print(prompt .. text)
print(("[%s, %d tokens]"):format(info.finish_reason, info.completion_tokens))
