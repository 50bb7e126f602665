-- Known int8 rounding knife edges in the Hugging Face fixtures, shared by
-- the specs that compare against their expected.json.
--
-- falcon3-158, sequence 2: the o_proj input of layer 0 at position 1 scales
-- to 63.499996 in PyTorch, one float ulp from a rounding tie; our RMSNorm
-- (double sum, 1/sqrtf) lands on the other side, which moves the last
-- logits by 0.12. hf_fixtures_spec checks everything else about that
-- sequence and proves the difference is that edge: a 1e-6 input jitter with
-- some seed reproduces the reference to 1e-4 (see fixtures.lua's header).
local M = {}

M.edges = { ["falcon3-158"] = { [2] = true } }

-- expected.json without the fixture's knife-edge sequences.
function M.without_edges(expected, name)
  local skip = M.edges[name] or {}
  local copy = { sequences = {}, greedy = expected.greedy }
  for i, s in ipairs(expected.sequences) do
    if not skip[i] then copy.sequences[#copy.sequences + 1] = s end
  end
  return copy
end

return M
