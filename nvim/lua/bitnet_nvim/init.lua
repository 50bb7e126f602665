-- The bitnet Neovim plugin's logic: generation streamed into a buffer from
-- the background engine, without ever blocking the UI. The engine's fd wakes
-- the event loop (vim.loop.new_poll); the callback only calls gen:poll(),
-- which never waits, and the buffer is edited from vim.schedule.
local M = {}

local api = vim.api
local watch = require("bitnet_nvim.watch")

-- Options that go to bitnet.load; every other setup option goes to generate.
local LOAD_KEYS = { model = true, threads = true, n_ctx = true, kernel = true, hugepages = true }

local config = { max_tokens = 256 }
local model, model_key
local current -- the running generation's job, if any
local last_job -- the last one started
local ns = api.nvim_create_namespace("bitnet")

--- M.library() -> the bitnet module: `require "bitnet"` as package.path /
-- package.cpath find it, else the checkout this plugin lives in
-- (<checkout>/lua and <checkout>/build/luajit), else a luarocks tree's Lua
-- 5.1 build; each failed attempt's package.loaded entries are cleared, and
-- when none works the error names every place tried and its error
-- (bitnet_nvim/library.lua).
function M.library()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local root = vim.fn.fnamemodify(src, ":p:h:h:h:h") -- nvim/lua/bitnet_nvim/init.lua
  return require("bitnet_nvim.library").load(root)
end

--- M.setup(opts): `model` (a GGUF file or Hugging Face directory; default the
-- shipped model), `threads`, `n_ctx`, `kernel`, `hugepages` go to bitnet.load;
-- `complete` (a table) configures inline completion (bitnet_nvim/complete.lua,
-- off by default); the rest (`max_tokens` (default 256), `temperature`,
-- `seed`, `top_k`, `top_p`, `min_p`, `stop`, ...) are generate options. Each
-- call replaces the previous configuration; the model is loaded on first use.
function M.setup(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("setup: options must be a table", 2) end
  local rest = {}
  for k, v in pairs(opts) do
    if k ~= "complete" then rest[k] = v end
  end
  require("bitnet_nvim.complete").setup(opts.complete or {}, M)
  config = vim.tbl_extend("force", { max_tokens = 256 }, rest)
end

--- M.n_ctx() -> the context of the model's sessions: setup's n_ctx when
-- given, else the model's training context.
function M.n_ctx()
  if config.n_ctx and config.n_ctx > 0 then return config.n_ctx end
  return M.model():info().n_ctx_train
end

--- M.model() -> the configured model (loaded on first call; loading the same
-- file with the same options again returns the one already loaded).
function M.model()
  local key = vim.inspect({ config.model, config.threads, config.n_ctx, config.kernel, config.hugepages })
  if not model or model_key ~= key then
    local load_opts = {}
    for k in pairs(LOAD_KEYS) do
      if k ~= "model" then load_opts[k] = config[k] end
    end
    model = assert(M.library().load(config.model, load_opts))
    model_key = key
  end
  return model
end

local function gen_options(extra)
  local o = {}
  for k, v in pairs(config) do
    if not LOAD_KEYS[k] then o[k] = v end
  end
  for k, v in pairs(extra or {}) do o[k] = v end
  o.async = true
  return o
end

local function user_event(name)
  vim.cmd("doautocmd <nomodeline> User " .. name)
end

-- Inserts text at the job's extmark (which moves past it), joined to the
-- job's undo block after the first insertion.
local function insert(job, text)
  if text == "" or not api.nvim_buf_is_valid(job.buf) then return end
  local pos = api.nvim_buf_get_extmark_by_id(job.buf, ns, job.mark, {})
  local row, col = pos[1], pos[2]
  local lines = vim.split(text, "\n", true)
  api.nvim_buf_call(job.buf, function()
    if job.inserted then
      pcall(vim.cmd, "undojoin") -- fails only right after a user's undo
    end
    api.nvim_buf_set_text(job.buf, row, col, row, col, lines)
  end)
  job.inserted = true
end

-- On the main loop: the text polled since the last call goes into the
-- buffer; once the generation has finished, the job ends.
local function flush(job, text, finished, w)
  job.text = job.text .. text
  if job.on_text then
    job.on_text(job, text)
  else
    insert(job, text)
  end
  if text ~= "" then
    job.pieces = job.pieces + 1
    user_event("BitnetPiece")
  end
  if finished then
    job.info = w.info
    if current == job then current = nil end
    M.last = { info = job.info, text = job.text, pieces = job.pieces }
    if job.info.error then
      vim.notify("bitnet: the generation failed: " .. tostring(job.info.error), vim.log.levels.ERROR)
    end
    if job.on_done then job.on_done(job) end
    if job.buf and api.nvim_buf_is_valid(job.buf) and job.mark then
      api.nvim_buf_del_extmark(job.buf, ns, job.mark)
    end
    user_event("BitnetDone")
  end
end

-- Starts watching an async generation (bitnet_nvim/watch.lua).
local function start(job, gen)
  job.gen, job.text, job.pieces = gen, "", 0
  job.watch = watch.start(gen, function(text, finished, w) flush(job, text, finished, w) end)
  current, last_job = job, job
  return job
end

local function check_idle()
  if current then error("a generation is running (:BitnetStop cancels it)", 0) end
end

-- The byte just past the character starting at 1-based byte i of line
-- (the line's end when i is past it).
local function char_end(line, i)
  local under = vim.fn.matchstr(line, "\\%" .. i .. "c.")
  return math.min(#line, i - 1 + #under)
end

-- The prompt and the 0-based insertion point for M.generate: the text of the
-- last charwise visual selection when the range is its lines (`:'<,'>` from
-- `v`), the range's whole lines otherwise, or without a range the text up to
-- the cursor, the character under it included.
local function prompt_at(buf, range)
  if range then
    local lines = api.nvim_buf_get_lines(buf, range.line1 - 1, range.line2, true)
    local vs, ve = vim.fn.getpos("'<"), vim.fn.getpos("'>")
    if vim.fn.visualmode() == "v" and vs[2] == range.line1 and ve[2] == range.line2 then
      local stop = char_end(lines[#lines], ve[3])
      lines[#lines] = lines[#lines]:sub(1, stop)
      lines[1] = lines[1]:sub(vs[3])
      return table.concat(lines, "\n"), range.line2 - 1, stop
    end
    return table.concat(lines, "\n"), range.line2 - 1, #lines[#lines]
  end
  local cur = api.nvim_win_get_cursor(0)
  local lines = api.nvim_buf_get_lines(buf, 0, cur[1], true)
  local col = char_end(lines[#lines], cur[2] + 1)
  lines[#lines] = lines[#lines]:sub(1, col)
  return table.concat(lines, "\n"), cur[1] - 1, col
end

--- M.stream(gen, [at]) -> job: streams an async generation into a buffer
-- as M.generate does (one `u` undoes it, :BitnetStop cancels it, the same
-- events): gen is what model:generate or model:chat return with async = true,
-- or any handle with the same poll / fd / cancel / close / info (e.g. one
-- made with a session pool of your own). at = { buf, row, col } (0-based;
-- default: the current buffer, after the character under the cursor).
function M.stream(gen, at)
  check_idle()
  at = at or {}
  local buf = at.buf or api.nvim_get_current_buf()
  local row, col = at.row, at.col
  if not row then
    local cur = api.nvim_win_get_cursor(0)
    row, col = cur[1] - 1, char_end(api.nvim_get_current_line(), cur[2] + 1)
  end
  -- a change of its own for the undo history, not joined to the user's last
  api.nvim_buf_call(buf, function() vim.cmd("let &undolevels = &undolevels") end)
  return start({ buf = buf, mark = api.nvim_buf_set_extmark(buf, ns, row, col, {}) }, gen)
end

--- M.generate([range], [opts]) -> job: continues the current buffer's text
-- up to the cursor (the character under it included), or the lines
-- range.line1..range.line2 (the exact text when they are the last charwise
-- visual selection's), inserting the generated text after it as it arrives;
-- one `u` undoes the whole generation. opts override the setup options for
-- this generation. Returns at once; `User BitnetPiece` fires after each
-- insertion and `User BitnetDone` at the end (M.last = { info, text, pieces }).
function M.generate(range, opts)
  check_idle()
  local buf = api.nvim_get_current_buf()
  local prompt, row, col = prompt_at(buf, range)
  local gen = M.model():generate(prompt, gen_options(opts))
  return M.stream(gen, { buf = buf, row = row, col = col })
end

--- M.stop(): cancels the running generation (its text so far stays).
function M.stop()
  local job = current
  if not job then return false end
  job.watch:cancel() -- the final text and the end, without waiting for a wake-up
  return true
end

--- M.pieces() -> how many insertions the running (or last) generation made.
function M.pieces()
  local job = current or last_job
  return job and job.pieces or 0
end

--- M.running() -> whether a generation is running.
function M.running()
  return current ~= nil
end

-- The chat buffer's turns: a user message is the paragraph starting at a
-- `>>> ` line (up to the first blank line); what follows, up to the next
-- `>>> ` line, is the model's reply.
local PREFIX = ">>> "

local function parse_chat(lines)
  local messages, cur, in_user = {}, nil, false
  for _, line in ipairs(lines) do
    if line:sub(1, #PREFIX) == PREFIX or line == vim.trim(PREFIX) then
      cur = { role = "user", content = { line:sub(#PREFIX + 1) } }
      messages[#messages + 1] = cur
      in_user = true
    elseif cur and in_user and line ~= "" then
      cur.content[#cur.content + 1] = line
    elseif cur then
      if in_user then
        in_user = false
        cur = { role = "assistant", content = {} }
        messages[#messages + 1] = cur
      end
      cur.content[#cur.content + 1] = line
    end
  end
  for i = #messages, 1, -1 do
    local m = messages[i]
    m.content = vim.trim(table.concat(m.content, "\n"))
    if m.role == "assistant" and m.content == "" then table.remove(messages, i) end
  end
  return messages
end

local function chat_buffer()
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(b) and vim.b[b].bitnet_chat then return b end
  end
end

--- M.chat([opts]): in the chat buffer, sends its last `>>> ` message with the
-- conversation before it (model:chat, the model's chat template) and streams
-- the reply below it, then a new `>>> ` line; elsewhere, opens the chat buffer
-- (a scratch buffer, `bitnet://chat`, where <CR> in normal mode sends). opts
-- override the setup options.
function M.chat(opts)
  local buf = api.nvim_get_current_buf()
  if not vim.b[buf].bitnet_chat then
    local existing = chat_buffer()
    if existing then
      vim.cmd("sbuffer " .. existing)
      return
    end
    vim.cmd("new")
    buf = api.nvim_get_current_buf()
    vim.bo[buf].buftype, vim.bo[buf].bufhidden, vim.bo[buf].swapfile = "nofile", "hide", false
    api.nvim_buf_set_name(buf, "bitnet://chat")
    vim.b[buf].bitnet_chat = true
    api.nvim_buf_set_lines(buf, 0, -1, true, { PREFIX })
    api.nvim_buf_set_keymap(buf, "n", "<CR>", "<Cmd>BitnetChat<CR>",
      { noremap = true, desc = "bitnet: send the last >>> message" })
    api.nvim_win_set_cursor(0, { 1, #PREFIX })
    return
  end
  check_idle()
  local lines = api.nvim_buf_get_lines(buf, 0, -1, true)
  local messages = parse_chat(lines)
  local last = messages[#messages]
  if not last or last.role ~= "user" or last.content == "" then
    error("write your message on a `>>> ` line at the end of the chat buffer", 0)
  end
  local n = #lines
  while n > 0 and lines[n] == "" do n = n - 1 end
  vim.cmd("let &undolevels = &undolevels")
  api.nvim_buf_set_lines(buf, n, -1, true, { "", "" })
  local gen = M.model():chat(messages, gen_options(opts))
  local job = { buf = buf, mark = api.nvim_buf_set_extmark(buf, ns, n + 1, 0, {}), inserted = true }
  job.on_done = function()
    if not api.nvim_buf_is_valid(buf) then return end
    api.nvim_buf_call(buf, function()
      pcall(vim.cmd, "undojoin")
      api.nvim_buf_set_lines(buf, -1, -1, true, { "", PREFIX })
    end)
    for _, win in ipairs(vim.fn.win_findbuf(buf)) do
      api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(buf), #PREFIX })
    end
  end
  return start(job, gen)
end

--- M.info() -> the model's summary and the completion statistics (also
-- echoed).
function M.info()
  local i = M.model():info()
  local msg = ("%s: %s, %.1fM parameters, %d layers, n_embd %d, %d heads, vocab %d, context %d, kernel %s, %d threads"):format(
    vim.fn.fnamemodify(i.path, ":t"), i.arch, i.n_params / 1e6, i.n_layers, i.n_embd, i.n_heads,
    i.n_vocab, i.n_ctx_train, i.kernel, i.threads)
  msg = msg .. "\n" .. require("bitnet_nvim.complete").summary()
  api.nvim_echo({ { msg } }, true, {})
  return msg
end

return M
