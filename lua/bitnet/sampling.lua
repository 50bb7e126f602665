--- bitnet.sampling: sampling presets and policies on top of the C sampler.
--
-- A policy says how the next token is chosen. It is one of:
--   * a preset name: "greedy", "precise", "balanced" (the sampler's own
--     defaults) or "creative" (see sampling.presets);
--   * a table of sampler options (the keys bitnet.sampler takes);
--   * a Lua function, called once per token with the best candidates:
--
--       policy(ids, logits, probs, state) -> ids, logits | id | nil
--
--     ids, logits and probs are arrays of equal length (the top_k best
--     tokens after penalties and logit bias, best first, 40 when top_k is
--     0; probs are the softmax over the whole vocabulary). state holds
--     `step` (1 for the first generated token), `tokens` (the ids generated
--     so far) and `text` (the text generated so far). Return a new candidate
--     list (ids and logits: reorder, drop, add or re-weight tokens) and the
--     rest of the sampler's chain (top-k, typical, top-p, min-p,
--     temperature, draw) picks from it; return a single id to force it;
--     return nothing to keep the candidates as they are. The function may
--     modify and return the tables it was given.
--
-- Sampler options given beside a policy override the preset's values.
local core = require("bitnet.core")

local M = {}

--- The option keys bitnet.sampler accepts.
M.SAMPLER_KEYS = {
  "temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty", "repeat_last_n",
  "presence_penalty", "frequency_penalty", "logit_bias", "seed",
}

local is_sampler_key = {}
for _, k in ipairs(M.SAMPLER_KEYS) do is_sampler_key[k] = true end
M.is_sampler_key = is_sampler_key

--- Named presets (tables of sampler options).
-- greedy: always the most likely token (deterministic, no seed needed).
-- precise: low temperature and a tight nucleus, for factual continuations.
-- balanced: llama.cpp's defaults, the same as bitnet.sampler({}).
-- creative: hotter and wider, with a mild repetition penalty.
M.presets = {
  greedy = { temperature = 0 },
  precise = { temperature = 0.3, top_k = 20, top_p = 0.9, min_p = 0.1 },
  balanced = { temperature = 0.8, top_k = 40, top_p = 0.95, min_p = 0.05 },
  creative = { temperature = 1.1, top_k = 100, top_p = 0.98, min_p = 0.02, repeat_penalty = 1.1, repeat_last_n = 64 },
}

--- How many candidates a policy function sees when top_k is 0 (off).
M.DEFAULT_POLICY_K = 40

local function preset_names()
  local names = {}
  for k in pairs(M.presets) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ", ")
end

--- sampling.resolve(policy, overrides, fname) -> sampler_options, policy_fn
-- Turns a policy (nil, preset name, option table or function) plus explicit
-- sampler options (a table whose sampler keys win over the preset; other keys
-- are ignored here) into the options for bitnet.sampler and the policy
-- function (or nil). Raises naming fname on an unknown preset or key.
function M.resolve(policy, overrides, fname)
  fname = fname or "bitnet.sampling.resolve"
  local base, fn = {}, nil
  local kind = type(policy)
  if kind == "string" then
    base = M.presets[policy]
    if not base then
      error(("%s: unknown policy '%s' (presets: %s)"):format(fname, policy, preset_names()), 3)
    end
  elseif kind == "table" then
    for k in pairs(policy) do
      if not is_sampler_key[k] then error(("%s: unknown sampler option '%s' in policy"):format(fname, tostring(k)), 3) end
    end
    base = policy
  elseif kind == "function" then
    fn = policy
  elseif policy ~= nil then
    error(("%s: option 'policy' must be a preset name, a table of sampler options or a function, got %s")
      :format(fname, kind), 3)
  end
  local opts = {}
  for k, v in pairs(base) do opts[k] = v end
  if overrides then
    for _, k in ipairs(M.SAMPLER_KEYS) do
      if overrides[k] ~= nil then opts[k] = overrides[k] end
    end
  end
  return opts, fn
end

--- sampling.sampler(policy [, overrides]) -> Sampler
-- A C sampler for a preset name or option table, e.g.
-- sampling.sampler("creative", { seed = 7 }).
function M.sampler(policy, overrides)
  if type(policy) == "function" then
    error("bitnet.sampling.sampler: a policy function needs a Model; pass it as generate's 'policy' option", 2)
  end
  local opts = M.resolve(policy, overrides, "bitnet.sampling.sampler")
  return core.sampler(opts)
end

--- sampling.policy_choose(smp, sess, fn, state, n_vocab, k) -> id
-- One token chosen through a policy function that sees the k best
-- candidates (the contract is in the module header). Raises naming the
-- policy when it returns something else.
function M.policy_choose(smp, sess, fn, state, n_vocab, k)
  local ids, logits, probs = smp:candidates(sess, k)
  local new_ids, new_logits = fn(ids, logits, probs, state)
  if new_ids == nil then return smp:choose(ids, logits) end
  if type(new_ids) == "number" then
    if new_ids ~= math.floor(new_ids) or new_ids < 0 or new_ids >= n_vocab then
      error(("policy returned %s, which is not a token id (0..%d)"):format(tostring(new_ids), n_vocab - 1), 0)
    end
    return new_ids
  end
  if type(new_ids) ~= "table" or type(new_logits) ~= "table" then
    error("policy must return ids and logits (two arrays), a token id, or nothing", 0)
  end
  if #new_ids == 0 then error("policy returned no candidates", 0) end
  if #new_logits ~= #new_ids then
    error(("policy returned %d ids but %d logits"):format(#new_ids, #new_logits), 0)
  end
  for i = 1, #new_ids do
    local id = new_ids[i]
    if type(id) ~= "number" or id < 0 or id >= n_vocab then
      error(("policy returned ids[%d] = %s, which is not a token id (0..%d)"):format(i, tostring(id), n_vocab - 1), 0)
    end
  end
  return smp:choose(new_ids, new_logits)
end

return M
