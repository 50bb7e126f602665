--- bitnet.pool: a pool of sessions per model for prefix reuse. Each new
-- generation given `pool = P` gets the free slot whose cached tokens share
-- the longest prefix with its prompt (ties: the one used longest ago); the
-- generation rewinds it to that prefix and feeds only the rest, so a chat's
-- next turn, or requests sharing a system prompt, skip what is cached.
-- Requiring it adds model:session_pool to every bitnet.Model.
local core = require("bitnet.core")
local errors = require("bitnet.errors")

local M = {}

local Pool = {}
Pool.__index = Pool
M.Pool = Pool

local POOL_KEYS = { slots = true, n_ctx = true, kv_type = true }

--- model:session_pool([opts]) -> Pool
-- opts: slots (sessions, default 4), n_ctx (each session's context;
-- default the model's), kv_type ("f32" | "f16"). Sessions are made on first
-- use, so an idle slot costs nothing.
function core.Model.session_pool(model, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("model:session_pool: options must be a table", 2) end
  for k in pairs(opts) do
    if not POOL_KEYS[k] then error(("model:session_pool: unknown option '%s'"):format(tostring(k)), 2) end
  end
  local slots = opts.slots or 4
  if type(slots) ~= "number" or slots ~= math.floor(slots) or slots < 1 or slots > 4096 then
    error("model:session_pool: option 'slots' must be an integer within 1..4096", 2)
  end
  local sopts = { n_ctx = opts.n_ctx, kv_type = opts.kv_type }
  model:session(sopts):close() -- checks the session options now, not at the first request
  local pool = setmetatable({ model = model, session_opts = sopts, slots = {}, clock = 0,
    hits = 0, requests = 0, reused_tokens = 0 }, Pool)
  -- a slot's generation is held weakly: one dropped unfinished frees it
  for i = 1, slots do pool.slots[i] = { last_use = 0, holder = setmetatable({}, { __mode = "v" }) } end
  return pool
end

-- Whether a slot's generation (if any) has let go of its session.
local function is_free(slot)
  local gen = slot.holder.gen
  if not gen then return true end
  if gen.job and gen.done then gen:done() end -- takes the engine's news: may release it
  if gen.info and not gen.job then
    slot.holder.gen = nil
    return true
  end
  return false
end

local function common_prefix(held, ids)
  local n, common = math.min(#held, #ids - 1), 0
  while common < n and held[common + 1] == ids[common + 1] do common = common + 1 end
  return common
end

--- pool:acquire(ids) -> session, slot: the free slot best for a prompt of
-- these token ids (the generation functions call this with `pool = P`).
-- Raises a typed error (bitnet.errors) of kind busy, "session pool: all N
-- slots are busy", when none is free.
function Pool:acquire(ids)
  if self.closed then error("session pool: the pool is closed", 2) end
  local best, best_common, best_score
  for _, slot in ipairs(self.slots) do
    if is_free(slot) then
      local held = slot.session and slot.session:tokens() or {}
      local common = common_prefix(held, ids)
      local score = common * 2 >= #held and common or 0
      if not best or score > best_score or (score == best_score and slot.last_use < best.last_use) then
        best, best_common, best_score = slot, common, score
      end
    end
  end
  if not best then
    errors.raise("busy", ("session pool: all %d slots are busy"):format(#self.slots))
  end
  if not best.session then best.session = self.model:session(self.session_opts) end
  self.clock = self.clock + 1
  best.last_use = self.clock
  self.requests = self.requests + 1
  if best_common > 0 then self.hits = self.hits + 1 end
  self.reused_tokens = self.reused_tokens + best_common
  return best.session, best
end

--- pool:stats() -> { slots, busy, requests, hits, reused_tokens }: how
-- often a request found part of its prompt cached, and how many tokens.
function Pool:stats()
  local busy = 0
  for _, slot in ipairs(self.slots) do
    if not is_free(slot) then busy = busy + 1 end
  end
  return { slots = #self.slots, busy = busy, requests = self.requests, hits = self.hits,
    reused_tokens = self.reused_tokens }
end

--- pool:close(): closes every slot's session (running generations keep
-- theirs until they end); the pool cannot be used after.
function Pool:close()
  for _, slot in ipairs(self.slots) do
    if slot.session then slot.session:close() end
    slot.session = nil
  end
  self.closed = true
end
Pool.__close = Pool.close
Pool.__tostring = function(self)
  return ("bitnet.SessionPool<%d slots>"):format(#self.slots)
end

M.common_prefix = common_prefix
return M
