-- Inline completion (ghost text): after typing pauses in insert mode, the
-- text around the cursor (bitnet_nvim/context.lua) goes to an async
-- generation on the engine, and the suggestion shows as virtual text at the
-- cursor (extmarks in the namespace `bitnet_complete`), updated as tokens
-- arrive. <Tab> accepts it (when nothing is shown: the mapping it replaced, or
-- a normal Tab), other keys
-- accept a word or a line; typing that matches its start keeps the rest
-- shown; any other change dismisses it and cancels the generation; leaving
-- insert mode clears it. A session pool keeps the buffer's context cached
-- (a pause feeds only the new tokens) and a small cache keyed by the
-- context reuses suggestions already computed.
local M = {}

local uv, api = vim.loop, vim.api
local context = require("bitnet_nvim.context")
local watch = require("bitnet_nvim.watch")

local ns = api.nvim_create_namespace("bitnet_complete")
M.ns = ns

local DEFAULTS = {
  enabled = false, -- suggest as you type (setup{ complete = { enabled = true } })
  auto = true, -- false: only :BitnetComplete suggests
  debounce_ms = 120,
  max_tokens = 48,
  max_lines = 8,
  n_prefix = 256, -- lines before the cursor
  n_suffix = 64, -- lines after it (fill-in-the-middle)
  max_bytes = 16384, -- of each side at most
  fim = true, -- fill-in-the-middle where the vocabulary has the tokens
  ring_chunks = 0, -- chunks of recently yanked or edited text put before the context
  ring_chunk_lines = 16,
  slots = 2, -- sessions of the pool
  cache_size = 250,
  accept = "<Tab>",
  accept_word = "<C-B>",
  accept_line = "<S-Tab>",
  temperature = 0,
  top_k = false,
  top_p = false,
  min_p = false,
  seed = false,
}
local SAMPLER_KEYS = { "temperature", "top_k", "top_p", "min_p", "seed" }
local KEY_OPTIONS = { "accept", "accept_word", "accept_line" }
local COUNTS = { debounce_ms = 0, max_tokens = 1, max_lines = 1, n_prefix = 0, n_suffix = 0, max_bytes = 64,
  ring_chunks = 0, ring_chunk_lines = 1, slots = 1, cache_size = 0 }

local cfg = vim.deepcopy(DEFAULTS)
local plugin -- bitnet_nvim: the model
local sug -- the suggestion shown or being computed
local state = { ring = {}, cache = {}, cache_order = {}, mapped = {} }
local stats

local function reset_stats()
  stats = { requests = 0, shown = 0, accepted = 0, partial = 0, cache_hits = 0, cancelled = 0,
    latencies = {}, fed = {}, cached_tokens = 0, prompt_tokens = 0, fim = 0 }
end
reset_stats()

local function check_options(opts)
  if type(opts) ~= "table" then error("setup: `complete` must be a table", 3) end
  for k, v in pairs(opts) do
    if DEFAULTS[k] == nil then error(("setup: unknown completion option '%s'"):format(tostring(k)), 3) end
    local min = COUNTS[k]
    if min and (type(v) ~= "number" or v ~= math.floor(v) or v < min) then
      error(("setup: completion option '%s' must be an integer >= %d"):format(k, min), 3)
    end
    if (k == "enabled" or k == "auto" or k == "fim") and type(v) ~= "boolean" then
      error(("setup: completion option '%s' must be a boolean"):format(k), 3)
    end
    if vim.tbl_contains(KEY_OPTIONS, k) and v ~= false and type(v) ~= "string" then
      error(("setup: completion option '%s' must be a key (\"<Tab>\") or false"):format(k), 3)
    end
  end
end

-- ---- the session pool, the prompt budget, one message per failure ----

-- Reports a failure to suggest once; completion stays quiet until setup or
-- :BitnetCompleteToggle.
local function fail(msg)
  if state.failed then return end
  state.failed = msg
  vim.notify("bitnet: completion is paused: " .. msg
    .. " (setup{} or :BitnetCompleteToggle tries again)", vim.log.levels.ERROR)
end

-- The model, its tokenizer, a pool on it and the prompt's budget; nil after
-- a failure (reported once).
local function engine()
  local ok, err = pcall(function()
    local model = plugin.model()
    if state.model == model then return end
    if state.pool then state.pool:close() end
    state.model, state.pool = nil, nil
    local tok = model:tokenizer()
    local n_ctx = plugin.n_ctx()
    local budget = n_ctx - cfg.max_tokens - 1
    if budget < 16 then
      error(("complete.max_tokens = %d leaves no room for the context in the model's %d positions")
        :format(cfg.max_tokens, n_ctx), 0)
    end
    state.pool = model:session_pool({ slots = cfg.slots, n_ctx = n_ctx })
    state.model, state.tok, state.budget = model, tok, budget
  end)
  if not ok then
    fail(tostring(err))
    return nil
  end
  return state.model
end

-- ---- the cache: context key -> suggestion text, least recently used out ----

local function cache_put(key, text)
  if cfg.cache_size == 0 or not text:find("%S") then return end
  if not state.cache[key] then
    state.cache_order[#state.cache_order + 1] = key
    if #state.cache_order > cfg.cache_size then
      state.cache[table.remove(state.cache_order, 1)] = nil
    end
  end
  state.cache[key] = text
end

-- A cached suggestion for ctx, or for ctx with up to 32 of the bytes before
-- the cursor not typed yet, when they are that suggestion's start.
local function cache_get(ctx)
  local prefix, n = ctx.prefix, math.min(32, #ctx.before)
  for back = 0, n do
    local key = ctx.extra .. "\0" .. prefix:sub(1, #prefix - back) .. "\0" .. ctx.suffix
    local text = state.cache[key]
    if text and #text > back and text:sub(1, back) == prefix:sub(#prefix - back + 1) then
      return text:sub(back + 1)
    end
  end
end

-- ---- display ----

local inline_support
-- Whether extmarks take virt_text_pos = "inline" (Neovim 0.10 and later):
-- tried once on a scratch buffer.
local function has_inline()
  if inline_support == nil then
    local buf = api.nvim_create_buf(false, true)
    inline_support = pcall(api.nvim_buf_set_extmark, buf, ns, 0, 0, { virt_text = { { "x" } }, virt_text_pos = "inline" })
    api.nvim_buf_delete(buf, { force = true })
  end
  return inline_support
end
M.has_inline = has_inline

-- Text as virtual text shows it: tabs as spaces, other control bytes as ?.
local function display(s, tabstop)
  return (s:gsub("\t", string.rep(" ", tabstop)):gsub("%c", "?"))
end

local function clear(s)
  if s.mark and api.nvim_buf_is_valid(s.buf) then pcall(api.nvim_buf_del_extmark, s.buf, ns, s.mark) end
  s.mark = nil
end

-- Shows what is left of the suggestion at the cursor: the rest of the line
-- as virt_text (inline where Neovim has it; else over the end of the line,
-- or after it when text follows the cursor), further lines as virt_lines.
local function render(s)
  local rest = s.text:sub(#s.typed + 1)
  if not rest:find("%S") then
    clear(s)
    return
  end
  if not s.shown then
    s.shown = true
    stats.shown = stats.shown + 1
    stats.latencies[#stats.latencies + 1] = (uv.hrtime() - s.t0) / 1e6
  end
  local cur = api.nvim_win_get_cursor(0)
  local ts = vim.bo[s.buf].tabstop
  local lines = vim.split(rest, "\n", true)
  local opts = {
    id = s.mark,
    virt_text = { { display(lines[1], ts), "BitnetSuggestion" } },
    virt_text_pos = has_inline() and "inline" or (s.after == "" and "overlay" or "eol"),
    hl_mode = "combine",
  }
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do opts.virt_lines[i - 1] = { { display(lines[i], ts), "BitnetSuggestion" } } end
  end
  local ok, mark = pcall(api.nvim_buf_set_extmark, s.buf, ns, cur[1] - 1, cur[2], opts)
  if ok then s.mark = mark end
end

-- ---- the suggestion's life ----

--- M.dismiss(): clears the suggestion and cancels its generation.
function M.dismiss()
  local s = sug
  if not s then return end
  sug = nil
  clear(s)
  if s.w and not s.done then
    stats.cancelled = stats.cancelled + 1
    s.w:cancel()
  end
end

-- The text typed since the suggestion was asked for, when the buffer is as
-- it was around it (the text before its anchor and after the cursor kept);
-- nil otherwise.
local function typed_text(s)
  if api.nvim_get_current_buf() ~= s.buf then return nil end
  local cur = api.nvim_win_get_cursor(0)
  local row, col = cur[1] - 1, cur[2]
  if row < s.row or row > s.row + cfg.max_lines then return nil end
  local lines = api.nvim_buf_get_lines(s.buf, s.row, row + 1, false)
  if #lines ~= row - s.row + 1 then return nil end
  local first, last = lines[1], lines[#lines]
  if first:sub(1, s.col) ~= s.before or last:sub(col + 1) ~= s.after then return nil end
  if row == s.row then
    if col < s.col then return nil end
    return first:sub(s.col + 1, col)
  end
  lines[1], lines[#lines] = first:sub(s.col + 1), last:sub(1, col)
  return table.concat(lines, "\n")
end

-- Whether the suggestion still stands: what was typed since is its start
-- (and leaves some of it, or its generation is still running).
local function keeps(s)
  local typed = typed_text(s)
  if not typed or #typed > #s.text or s.text:sub(1, #typed) ~= typed then return false end
  if s.done and #typed == #s.text then return false end
  s.typed = typed
  return true
end

-- News from a suggestion's generation: the text so far trimmed by the stop
-- rules (stopping the generation when one says so), shown; at the end, the
-- figures and the cache.
local function on_news(s, text, finished, w)
  if finished and w.info then
    local info = w.info
    local fed = (info.prompt_tokens or 0) - (info.cached_tokens or 0)
    stats.fed[#stats.fed + 1] = fed
    stats.cached_tokens = stats.cached_tokens + (info.cached_tokens or 0)
    stats.prompt_tokens = stats.prompt_tokens + (info.prompt_tokens or 0)
    if info.error then fail("the generation failed: " .. tostring(info.error)) end
  end
  if sug ~= s or s.done then return end
  s.raw = s.raw .. text
  local shown, stop = context.trim(s.raw, s.ctx, cfg.max_lines)
  s.text = shown
  if stop or finished then
    s.done = true
    if stop and not finished then w:cancel() end
    if stop or w.info.finish_reason ~= "cancelled" then cache_put(s.key, shown) end
  end
  if keeps(s) then render(s) else M.dismiss() end
end

local function sampler_options()
  local o = { async = true, pool = state.pool, max_tokens = cfg.max_tokens }
  for _, k in ipairs(SAMPLER_KEYS) do
    if cfg[k] ~= false then o[k] = cfg[k] end
  end
  return o
end

-- Text of the ring chunks not already in the window.
local function ring_text(window)
  local parts = {}
  for _, chunk in ipairs(state.ring) do
    if not window:find(chunk, 1, true) then parts[#parts + 1] = chunk end
  end
  return #parts > 0 and table.concat(parts, "\n") .. "\n" or ""
end

local function usable(buf)
  local bt = vim.bo[buf].buftype
  return vim.bo[buf].modifiable and bt ~= "prompt" and bt ~= "terminal"
end

--- M.last_prompt: the token ids of the last prompt sent (for checks).
M.last_prompt = nil

-- Asks for a suggestion at the cursor: from the cache, or a generation.
-- retries: how often to try again when every slot of the pool is still
-- held by generations being let go.
local function suggest(t0, retries)
  if not api.nvim_get_mode().mode:find("^i") then return end
  local buf = api.nvim_get_current_buf()
  if not usable(buf) or state.failed then return end
  M.dismiss()
  if not engine() then return end
  local cur = api.nvim_win_get_cursor(0)
  local row, col = cur[1] - 1, cur[2]
  local first, last = context.span(row, api.nvim_buf_line_count(buf), cfg.n_prefix, cfg.n_suffix)
  local lines = api.nvim_buf_get_lines(buf, first, last, false)
  local ctx = context.window(lines, row - first + 1, col, { max_bytes = cfg.max_bytes })
  if #state.ring > 0 then ctx.extra = ring_text(ctx.prefix .. ctx.suffix) end
  local s = { buf = buf, row = row, col = col, before = ctx.before, after = ctx.after, ctx = ctx,
    key = context.key(ctx), raw = "", text = "", typed = "", t0 = t0 }
  stats.requests = stats.requests + 1
  local cached = cache_get(ctx)
  if cached then
    stats.cache_hits = stats.cache_hits + 1
    s.raw, s.text, s.done = cached, cached, true
    sug = s
    render(s)
    return
  end
  local ids, fim = context.prompt(state.tok, ctx, state.budget, cfg.fim)
  local ok, gen = pcall(state.model.generate, state.model, ids, sampler_options())
  if not ok then
    stats.requests = stats.requests - 1
    -- bitnet.errors is loaded: generate required it
    if require("bitnet.errors").kind(gen) == "busy" and retries > 0 then
      vim.defer_fn(function()
        if state.t_change and state.t_change > t0 then return end -- typing went on: its own pause will ask
        suggest(t0, retries - 1)
      end, 10)
      return
    end
    fail(tostring(gen))
    return
  end
  M.last_prompt = ids
  if fim then stats.fim = stats.fim + 1 end
  sug = s
  s.w = watch.start(gen, function(text, finished, w) on_news(s, text, finished, w) end)
end

--- M.suggest(): a suggestion at the cursor now (:BitnetComplete), whether or
-- not completion is on; only in insert mode (map it with <Cmd>).
function M.suggest()
  if not api.nvim_get_mode().mode:find("^i") then
    error(":BitnetComplete suggests in insert mode: map it there with <Cmd>BitnetComplete<CR>", 0)
  end
  state.failed = nil
  suggest(uv.hrtime(), 20)
end

-- After each change in insert mode: a suggestion whose start was typed
-- stays; otherwise it goes and the pause timer starts again.
local function on_change()
  state.t_change = uv.hrtime()
  local s = sug
  if s and keeps(s) then
    render(s)
    return
  end
  M.dismiss()
  if not (cfg.enabled and cfg.auto) then return end
  state.timer = state.timer or uv.new_timer()
  local t0 = state.t_change
  state.timer:stop()
  state.timer:start(cfg.debounce_ms, 0, function()
    vim.schedule(function()
      if state.t_change == t0 and cfg.enabled then suggest(t0, 20) end
    end)
  end)
end

local function on_leave()
  if state.timer then state.timer:stop() end
  M.dismiss()
end

-- ---- accepting ----

--- M.suggestion() -> { text, typed, done, row, col } of the suggestion
-- shown or being computed (text: all of it, typed: its start typed since;
-- row, col: 0-based, where it was asked for), or nil.
function M.suggestion()
  local s = sug
  return s and { text = s.text, typed = s.typed, done = s.done == true, row = s.row, col = s.col }
end

--- M.visible() -> whether a suggestion is shown at the cursor.
function M.visible()
  local s = sug
  return s ~= nil and s.mark ~= nil and keeps(s) and s.text:sub(#s.typed + 1):find("%S") ~= nil
end

--- M.accept([what]) -> whether text was inserted: what = "all" (default),
-- "word" (blanks and the next word) or "line" (the rest of the line, or
-- the next line), inserted at the cursor, the cursor after it. Accepting
-- all of it ends the suggestion (its generation too when still running).
function M.accept(what)
  local s = sug
  if not s or not keeps(s) then return false end
  local rest = s.text:sub(#s.typed + 1)
  local part = rest
  if what == "word" then
    part = rest:match("^%s*[^%s]+") or rest
  elseif what == "line" then
    part = rest:match("^[^\n]+") or rest:match("^\n[^\n]*")
  end
  if not part or part == "" then return false end
  local cur = api.nvim_win_get_cursor(0)
  local row, col = cur[1] - 1, cur[2]
  local lines = vim.split(part, "\n", true)
  if #part == #rest then
    stats.accepted = stats.accepted + 1
    M.dismiss()
  else
    stats.partial = stats.partial + 1
    s.typed = s.typed .. part
  end
  api.nvim_buf_set_text(s.buf, row, col, row, col, lines)
  api.nvim_win_set_cursor(0, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
  if sug == s then render(s) end
  return true
end

-- The user's own global insert-mode mapping of lhs (maparg's dict), or nil.
-- A buffer-local one is left alone: it shadows ours in its buffer anyway.
local function previous_mapping(lhs)
  local m = vim.fn.maparg(lhs, "i", false, true)
  if type(m) ~= "table" or next(m) == nil or m.buffer == 1 then return nil end
  return m
end

-- The keys of a mapping we took over, as our expr mapping returns them:
-- its expression's value or its callback's, or its rhs (fed as it was
-- mapped: remapped unless it was noremap). Neovim 0.7 has no mapset().
local function fall_through(prev, lhs)
  if not prev then return lhs end
  if prev.callback then
    local keys = prev.callback()
    if prev.expr == 1 then return keys or "" end
    return ""
  end
  local rhs = prev.rhs:gsub("<[Ss][Ii][Dd]>", "<SNR>" .. tostring(prev.sid) .. "_")
  if prev.expr == 1 then return vim.api.nvim_eval(rhs) end
  if prev.noremap == 1 then return rhs end
  api.nvim_feedkeys(api.nvim_replace_termcodes(rhs, true, true, true), "m", false)
  return ""
end

-- Puts back a mapping we took over (as maparg described it).
local function restore(prev)
  local opts = { expr = prev.expr == 1, noremap = prev.noremap == 1, silent = prev.silent == 1,
    nowait = prev.nowait == 1, desc = prev.desc }
  if prev.callback then opts.callback = prev.callback end
  pcall(api.nvim_set_keymap, "i", prev.lhs, prev.callback and "" or prev.rhs, opts)
end

local function map_keys()
  for _, k in ipairs(KEY_OPTIONS) do
    local lhs = cfg[k]
    if lhs then
      local what = k == "accept" and "all" or k:match("_(%a+)$")
      local prev = previous_mapping(lhs)
      vim.keymap.set("i", lhs, function()
        if M.visible() then
          return ("<Cmd>lua require('bitnet_nvim.complete').accept(%q)<CR>"):format(what)
        end
        return fall_through(prev, lhs)
      end, { expr = true, desc = "bitnet: accept the suggestion (" .. what .. ")" })
      state.mapped[#state.mapped + 1] = { lhs = lhs, prev = prev }
    end
  end
end

local function unmap_keys()
  for _, m in ipairs(state.mapped) do
    pcall(vim.keymap.del, "i", m.lhs)
    if m.prev then restore(m.prev) end
  end
  state.mapped = {}
end

-- ---- recently yanked and edited text ----

local function ring_add(lines)
  if cfg.ring_chunks == 0 then return end
  local n = math.min(#lines, cfg.ring_chunk_lines)
  local text = table.concat(lines, "\n", 1, n)
  if not text:find("%S") then return end
  for i, c in ipairs(state.ring) do
    if c == text then
      table.remove(state.ring, i)
      break
    end
  end
  state.ring[#state.ring + 1] = text
  while #state.ring > cfg.ring_chunks do table.remove(state.ring, 1) end
end

local function ring_edited()
  local row = api.nvim_win_get_cursor(0)[1] - 1
  local half = math.floor(cfg.ring_chunk_lines / 2)
  ring_add(api.nvim_buf_get_lines(0, math.max(0, row - half), row + half, false))
end

-- ---- switching on and off ----

local function enable()
  vim.cmd("highlight default link BitnetSuggestion Comment")
  local group = api.nvim_create_augroup("bitnet_complete", { clear = true })
  api.nvim_create_autocmd({ "TextChangedI", "CursorMovedI" }, { group = group, callback = on_change })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave", "WinLeave" }, { group = group, callback = on_leave })
  api.nvim_create_autocmd("TextYankPost", { group = group, callback = function() ring_add(vim.v.event.regcontents) end })
  api.nvim_create_autocmd("InsertLeave", { group = group, callback = ring_edited })
  unmap_keys()
  map_keys()
end

local function disable()
  pcall(api.nvim_del_augroup_by_name, "bitnet_complete")
  unmap_keys()
  on_leave()
end

--- M.setup(opts, plugin_module): the `complete` table of
-- require("bitnet_nvim").setup{}; see DEFAULTS above and the README. Each
-- call starts afresh (statistics, cache, ring, a failure's pause).
function M.setup(opts, nv)
  check_options(opts or {})
  M.dismiss()
  plugin = nv
  cfg = vim.tbl_extend("force", vim.deepcopy(DEFAULTS), opts or {})
  state.failed, state.cache, state.cache_order, state.ring = nil, {}, {}, {}
  if state.pool then state.pool:close() end
  state.model, state.pool = nil, nil
  reset_stats()
  if cfg.enabled then enable() else disable() end
end

--- M.toggle() -> whether completion is now on (:BitnetCompleteToggle).
function M.toggle()
  cfg.enabled = not cfg.enabled
  state.failed = nil
  if cfg.enabled then enable() else disable() end
  return cfg.enabled
end

--- M.enabled() -> whether suggestions come as you type.
function M.enabled()
  return cfg.enabled
end

local function median(list, q)
  if #list == 0 then return nil end
  local c = {}
  for i, v in ipairs(list) do c[i] = v end
  table.sort(c)
  return c[math.max(1, math.ceil(#c * (q or 0.5)))]
end
M.quantile = median

--- M.stats() -> { enabled, requests, shown, accepted, partial, cache_hits,
-- cancelled, latency_p50, latency_p95 (ms from the last change to the first
-- text shown), fed_p50 (prompt tokens a generation fed), cached_tokens,
-- prompt_tokens, fim (prompts in fill-in-the-middle form), failed }.
function M.stats()
  return {
    enabled = cfg.enabled, requests = stats.requests, shown = stats.shown, accepted = stats.accepted,
    partial = stats.partial, cache_hits = stats.cache_hits, cancelled = stats.cancelled,
    latency_p50 = median(stats.latencies), latency_p95 = median(stats.latencies, 0.95),
    fed_p50 = median(stats.fed), cached_tokens = stats.cached_tokens, prompt_tokens = stats.prompt_tokens,
    fim = stats.fim, failed = state.failed, latencies = stats.latencies, fed = stats.fed,
  }
end

--- M.summary() -> one line of M.stats() for :BitnetInfo.
function M.summary()
  local s = M.stats()
  local function ms(v) return v and ("%.0f ms"):format(v) or "-" end
  return ("completion %s: %d suggestions shown, %d accepted (%d in part), %d from the cache; latency p50 %s, "
    .. "p95 %s; median tokens fed %s, %d of %d prompt tokens cached%s"):format(
    s.enabled and "on" or "off", s.shown, s.accepted, s.partial, s.cache_hits, ms(s.latency_p50), ms(s.latency_p95),
    s.fed_p50 and tostring(s.fed_p50) or "-", s.cached_tokens, s.prompt_tokens,
    s.failed and ("; paused: " .. s.failed) or "")
end

return M
