--- bitnet.perplexity: evaluation of a model on a text, in windows of its
-- context. Adds model:perplexity to every Model.
local core = require("bitnet.core")

local M = {}

local allowed = { n_ctx = true, stride = true, bos = true, progress = true }

--- model:perplexity(text [, opts]) -> ppl, { bits_per_byte, tokens, bytes, nll }
-- Tokenizes text (with BOS first when the tokenizer has one, unless
-- opts.bos == false) and scores every token after the first exactly once:
-- windows of opts.n_ctx tokens (default: the training context) start every
-- opts.stride tokens (default n_ctx / 2), each evaluated from scratch; a
-- window scores the positions the previous one did not reach, so all but the
-- first have at least n_ctx - stride tokens of context. ppl = exp(nll /
-- tokens); bits_per_byte = nll / (ln 2 * #text), the tokenizer-independent
-- figure. opts.progress(done, total) is called after each window.
function M.perplexity(model, text, opts)
  if type(text) ~= "string" then
    error("model:perplexity: argument 1 must be a string, got " .. type(text), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("model:perplexity: options must be a table", 2) end
  for k in pairs(opts) do
    if not allowed[k] then error(("model:perplexity: unknown option '%s'"):format(tostring(k)), 2) end
  end
  local n_ctx = opts.n_ctx or model:info().n_ctx_train
  if type(n_ctx) ~= "number" or n_ctx < 2 or n_ctx % 1 ~= 0 then
    error("model:perplexity: option 'n_ctx' must be an integer >= 2", 2)
  end
  local stride = opts.stride or math.floor(n_ctx / 2)
  if type(stride) ~= "number" or stride < 1 or stride > n_ctx or stride % 1 ~= 0 then
    error("model:perplexity: option 'stride' must be an integer in 1..n_ctx", 2)
  end
  if opts.progress ~= nil and type(opts.progress) ~= "function" then
    error("model:perplexity: option 'progress' must be a function", 2)
  end
  local ids = model:tokenize(text, { bos = false })
  local bos = model:tokenizer():bos()
  if opts.bos ~= false and bos then table.insert(ids, 1, bos) end
  local n = #ids
  if n < 2 then error("model:perplexity: the text is too short to score (fewer than 2 tokens)", 2) end

  local sess = model:session({ n_ctx = n_ctx })
  local total, scored = 0, 0
  local start, reached = 0, 1 -- 0-based: first window start; first position not yet scored
  local windows = math.max(1, math.ceil((n - n_ctx) / stride) + 1)
  local done = 0
  while true do
    local stop = math.min(start + n_ctx, n)
    local window = {}
    for i = start + 1, stop do window[#window + 1] = ids[i] end
    sess:reset()
    local first = math.max(start + 1, reached)
    local nll, count = sess:nll(window, { from = first - start + 1 })
    total, scored = total + nll, scored + count
    reached = stop
    done = done + 1
    if opts.progress then opts.progress(done, windows) end
    if stop == n then break end
    start = start + stride
  end
  sess:close()
  return math.exp(total / scored), {
    bits_per_byte = total / (math.log(2) * #text),
    tokens = scored,
    bytes = #text,
    nll = total,
  }
end

core.Model.perplexity = M.perplexity

return M
