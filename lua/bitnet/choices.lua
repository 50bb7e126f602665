--- bitnet.choices: n generations of one prompt (the option `n` of
-- model:generate and model:chat). The prompt is evaluated once: all of it
-- but its last token by one engine job (in the session pool's slot when
-- `pool` is given, so later requests reuse it), then that KV-cache is
-- copied into n sessions, and n generations feed the last token and decode
-- together on the engine, batched into one forward pass per step. Choice i
-- (1-based) samples with seed + i - 1 when a seed is given, else with a
-- fresh seed of its own.
local generate = require("bitnet.generate")

local M = {}

--- Most choices one call may ask for.
M.MAX_N = 64

-- Options of one choice that do not go to the shared prefill.
local NOT_PREFILL = { n = true, async = true, stream = true, pool = true, n_ctx = true, on_token = true,
  max_tokens = true }

local Choices = {}
Choices.__index = Choices
M.Choices = Choices

local function check(opts, fname)
  local n = opts.n
  if type(n) ~= "number" or n ~= math.floor(n) or n < 1 or n > M.MAX_N then
    error(("%s: option 'n' must be an integer within 1..%d"):format(fname, M.MAX_N), 4)
  end
  if opts.stream then error(("%s: option 'n' > 1 cannot be combined with 'stream' (use async = true)"):format(fname), 4) end
  for _, k in ipairs({ "session", "sampler", "prompt_logprobs", "speculative" }) do
    if opts[k] ~= nil then error(("%s: option 'n' > 1 cannot be combined with '%s'"):format(fname, k), 4) end
  end
  if opts.async ~= nil and type(opts.async) ~= "boolean" then
    error(("%s: option 'async' must be a boolean"):format(fname), 4)
  end
  return n
end

--- M.start(model, prompt, opts, fname) -> Choices: starts n = opts.n
-- generations of prompt (text or ids) on the engine. Bad options raise at
-- the caller, as generate's do.
function M.start(model, prompt, opts, fname)
  local n = check(opts, fname)
  local tok = model:tokenizer()
  local ids = generate.prompt_tokens(model, tok, prompt, fname)
  local pool = opts.pool
  local sopts = { n_ctx = opts.n_ctx or (pool and pool.session_opts.n_ctx),
    kv_type = pool and pool.session_opts.kv_type }
  local sessions = {}
  for i = 1, n do sessions[i] = model:session(sopts) end -- calloc'd: pages past what is used cost nothing
  local ctx = sessions[1]:n_ctx()
  if #ids > ctx then
    for _, s in ipairs(sessions) do s:close() end
    generate.raise_too_long(fname, #ids, ctx)
  end
  local base = { async = true }
  for k, v in pairs(opts) do
    if k ~= "n" and k ~= "async" and k ~= "pool" and k ~= "n_ctx" then base[k] = v end
  end
  local ch = setmetatable({ model = model, n = n, ids = ids, base = base, fname = fname, sessions = sessions,
    gens = {}, drained = {}, cached = 0 }, Choices)
  if #ids >= 2 then
    -- every option but the generation's own goes to the prefill too, so a bad
    -- one raises here rather than when the choices start
    local popts = { max_tokens = 0, async = true }
    for k, v in pairs(opts) do
      if not NOT_PREFILL[k] then popts[k] = v end
    end
    if pool then popts.pool = pool else popts.session = sessions[1] end
    local head = {}
    for i = 1, #ids - 1 do head[i] = ids[i] end
    local ok, gen = pcall(generate.start, model, head, popts, fname)
    if not ok then
      ch:close()
      error(gen, 0)
    end
    ch.prefill = gen
  else
    local ok, err = pcall(ch.fork, ch)
    if not ok then
      ch:close()
      error(err, 0)
    end
  end
  return ch
end

--- M.run(model, prompt, opts, fname): generate / chat with n > 1: the
-- Choices handle (async = true), else the texts and infos, lists of n.
function M.run(model, prompt, opts, fname)
  local ch = M.start(model, prompt, opts, fname)
  if opts.async then return ch end
  return ch:collect()
end

-- Copies the evaluated prefix into every choice's session and starts the
-- n generations.
function Choices:fork()
  local src = self.prefill and self.prefill.sess
  if self.prefill then self.cached = self.prefill.info.cached_tokens end
  for _, s in ipairs(self.sessions) do -- all before any starts: a started one holds its session
    if src and s ~= src then s:copy_prefix(src, #self.ids - 1) end
  end
  for i = 1, self.n do
    local s = self.sessions[i]
    local o = {}
    for k, v in pairs(self.base) do o[k] = v end
    o.session = s
    if o.seed then o.seed = o.seed + i - 1 end
    self.gens[i] = generate.start(self.model, self.ids, o, self.fname)
  end
  self.prefill = nil
end

-- Every choice's info when the prefill did not finish (cancelled, an error).
function Choices:fail(info, err)
  self.infos = {}
  for i = 1, self.n do
    self.infos[i] = { finish_reason = info.finish_reason, prompt_tokens = #self.ids, cached_tokens = info.cached_tokens,
      completion_tokens = 0, seed = info.seed, error = err }
  end
  self.error = err
  self:close()
end

function Choices:finish()
  self.infos = {}
  for i, g in ipairs(self.gens) do
    local info = g.info
    info.cached_tokens = self.cached -- the prompt's cache hit, not the copy every choice starts from
    self.infos[i] = info
  end
  self:close()
end

--- ch:poll() -> pieces | nil: for each choice i, pieces[i] is the text
-- decided since the last call ("" when none) or false once that choice has
-- finished and returned all its text; nil once every choice has. Never
-- waits. ch.infos (a list of each choice's info) is set at the end.
function Choices:poll()
  if self.infos then return nil end
  if self.prefill then
    local p = self.prefill
    p:poll()
    if not p:released() then
      local pieces = {}
      for i = 1, self.n do pieces[i] = "" end
      return pieces
    end
    if p.info.finish_reason ~= "length" then
      self:fail(p.info, p.error)
      return nil
    end
    self:fork()
  end
  local pieces, live = {}, false
  for i, g in ipairs(self.gens) do
    local piece = false
    if not self.drained[i] then
      piece = g:poll()
      if piece == nil then
        self.drained[i] = true
        piece = false
      else
        live = true
      end
    end
    pieces[i] = piece
  end
  if not live then
    self:finish()
    return nil
  end
  return pieces
end

--- ch:wait([timeout]): blocks until one of the choices has news, or
-- timeout seconds (default 0.05) have passed. For scripts.
function Choices:wait(timeout)
  timeout = timeout or 0.05
  if self.prefill then return self.prefill:wait(timeout) end
  for i, g in ipairs(self.gens) do
    if not self.drained[i] and not g.info then return g:wait(timeout) end
  end
  return true
end

--- ch:collect() -> texts, infos: waits for every choice; lists of n.
function Choices:collect()
  local parts = {}
  for i = 1, self.n do parts[i] = {} end
  while true do
    local pieces = self:poll()
    if not pieces then break end
    local any = false
    for i, piece in ipairs(pieces) do
      if piece and piece ~= "" then
        parts[i][#parts[i] + 1] = piece
        any = true
      end
    end
    if not any then self:wait() end
  end
  local texts = {}
  for i = 1, self.n do texts[i] = table.concat(parts[i]) end
  return texts, self.infos
end

--- ch:cancel(): ends every choice now (finish_reason "cancelled").
function Choices:cancel()
  if self.prefill then self.prefill:cancel() end
  for _, g in ipairs(self.gens) do g:cancel() end
end

--- ch:released() -> boolean: whether the engine has let go of every choice
-- (and the prefill). Never waits.
function Choices:released()
  if self.prefill and not self.prefill:released() then return false end
  for _, g in ipairs(self.gens) do
    if not g:released() then return false end
  end
  return true
end

--- ch:close(): cancels what runs, lets go of the engine (waiting for its
-- current step at most) and frees the choices' sessions.
function Choices:close()
  if self.prefill then self.prefill:close() end
  for _, g in ipairs(self.gens) do g:close() end
  for _, s in ipairs(self.sessions) do s:close() end
  self.prefill = nil
end
Choices.__close = Choices.close

return M
