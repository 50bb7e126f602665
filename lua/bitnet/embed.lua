--- bitnet.embed: text embeddings (model:embed). An input's vector is the
-- model's final hidden state after the output norm, pooled over the input's
-- tokens (mean by default, or the last token's) and L2-normalised, so a dot
-- product is the cosine similarity. Each input is one engine job on a
-- session of its own length; up to `batch` of them run at once and the
-- engine evaluates their tokens together, 64 rows a forward pass.
-- Requiring it adds model:embed to every bitnet.Model.
local core = require("bitnet.core")
local errors = require("bitnet.errors")

local M = {}

--- Inputs evaluated at once by default.
M.DEFAULT_BATCH = 16

local KEYS = { pooling = true, async = true, batch = true }
local POOLING = { mean = true, last = true }

local Embedding = {}
Embedding.__index = Embedding
M.Embedding = Embedding

-- The token ids of one input: text (with the model's BOS, special-token
-- texts read as plain text) or ids.
local function input_ids(model, tok, v, i, fname)
  local ids
  if type(v) == "string" then
    ids = model:tokenize(v)
  elseif type(v) == "table" then
    ids = {}
    local n_vocab = tok:n_vocab()
    for j, id in ipairs(v) do
      if type(id) ~= "number" or id ~= math.floor(id) or id < 0 or id >= n_vocab then
        error(("%s: input %d, token %d is not a token id (0..%d)"):format(fname, i, j, n_vocab - 1), 4)
      end
      ids[j] = id
    end
  else
    error(("%s: input %d must be a string or a list of token ids, got %s"):format(fname, i, type(v)), 4)
  end
  if #ids == 0 then error(("%s: input %d is empty"):format(fname, i), 4) end
  return ids
end

--- M.inputs(model, input, fname) -> list of id lists, single: input is a
-- string, a list of token ids, or a list of either; single tells whether it
-- was one input. Raises naming the bad input; one longer than the training
-- context is a typed error (bitnet.errors) of kind context_exceeded.
function M.inputs(model, input, fname)
  local tok = model:tokenizer()
  local single = type(input) == "string" or (type(input) == "table" and type(input[1]) == "number")
  if type(input) ~= "string" and type(input) ~= "table" then
    error(("%s: argument 1 must be a string, a list of token ids, or a list of them, got %s"):format(fname, type(input)), 3)
  end
  local list = single and { input } or input
  if #list == 0 then error(("%s: no input"):format(fname), 3) end
  local limit = model:info().n_ctx_train
  local out = {}
  for i, v in ipairs(list) do
    out[i] = input_ids(model, tok, v, i, fname)
    if limit > 0 and #out[i] > limit then
      errors.raise("context_exceeded",
        ("%s: input %d is %d tokens but the context holds %d (n_ctx_train)"):format(fname, i, #out[i], limit), "input")
    end
  end
  return out, single
end

--- model:embed(input [, opts]) -> vector | list of vectors, info
-- input: a string, a list of token ids, or a list of strings / id lists.
-- Each vector is a list of n_embd numbers with unit L2 norm. opts: pooling
-- ("mean", default, or "last"), batch (inputs at once, default 16),
-- async (true: return an Embedding handle at once; see below). info:
-- { prompt_tokens }. Bad input raises; a failure on the engine raises too.
function core.Model.embed(model, input, opts)
  local fname = "model:embed"
  opts = opts or {}
  if type(opts) ~= "table" then error(fname .. ": options must be a table", 2) end
  for k in pairs(opts) do
    if not KEYS[k] then error(("%s: unknown option '%s'"):format(fname, tostring(k)), 2) end
  end
  local pooling = opts.pooling or "mean"
  if not POOLING[pooling] then error(fname .. ": option 'pooling' must be \"mean\" or \"last\"", 2) end
  local batch = opts.batch or M.DEFAULT_BATCH
  if type(batch) ~= "number" or batch ~= math.floor(batch) or batch < 1 or batch > 1024 then
    error(fname .. ": option 'batch' must be an integer within 1..1024", 2)
  end
  local list, single = M.inputs(model, input, fname)
  local tokens = 0
  for _, ids in ipairs(list) do tokens = tokens + #ids end
  local h = setmetatable({ model = model, list = list, single = single, pooling = pooling, batch = batch,
    next = 1, running = {}, vectors = {}, info = { prompt_tokens = tokens },
    smp = core.sampler({ temperature = 0, seed = 0 }) }, Embedding)
  h:pump()
  if opts.async then return h end
  while not h:poll() do h:wait() end
  if h.error then error(("%s: %s"):format(fname, h.error), 2) end
  return single and h.vectors[1] or h.vectors, h.info
end

-- Takes finished jobs' vectors and starts waiting inputs. Never waits.
function Embedding:pump()
  local still = {}
  for _, r in ipairs(self.running) do
    local _, st = r.job:poll()
    if st.finish then
      if st.finish == "length" then
        self.vectors[r.i] = r.job:embedding()
      elseif not self.error then
        self.error = st.finish == "error" and tostring(st.error) or "cancelled"
      end
      r.job:close()
      r.sess:close()
    else
      still[#still + 1] = r
    end
  end
  self.running = still
  while not self.error and not self.cancelled and #self.running < self.batch and self.next <= #self.list do
    local i, ids = self.next, self.list[self.next]
    self.next = i + 1
    local sess = self.model:session({ n_ctx = #ids })
    local ok, job = pcall(core.job, sess, self.smp, ids, 0, { max_tokens = 0, pooling = self.pooling })
    if not ok then
      sess:close()
      self.error = tostring(job)
      break
    end
    self.running[#self.running + 1] = { i = i, job = job, sess = sess }
  end
end

--- h:poll() -> boolean: whether every input is done (h.vectors holds the
-- list of vectors, or h.error says why not). Never waits.
function Embedding:poll()
  self:pump()
  if #self.running > 0 then return false end
  return self.error ~= nil or self.cancelled or self.next > #self.list
end

--- h:wait([timeout]): blocks until a running input has news or timeout
-- seconds (default 0.05) have passed.
function Embedding:wait(timeout)
  local r = self.running[1]
  if r then r.job:wait(timeout or 0.05) end
end

--- h:cancel(): stops starting inputs and cancels the running ones.
function Embedding:cancel()
  self.cancelled = true
  for _, r in ipairs(self.running) do r.job:cancel() end
end

--- h:close(): cancels and frees every running job and session (waits for
-- the engine's current step at most).
function Embedding:close()
  self:cancel()
  for _, r in ipairs(self.running) do
    r.job:close()
    r.sess:close()
  end
  self.running = {}
end
Embedding.__close = Embedding.close

return M
