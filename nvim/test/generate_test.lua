-- Drives the plugin inside a real headless Neovim (started by
-- spec/nvim_spec.lua from the checkout, with `set rtp+=<checkout>/nvim`):
-- :BitnetGenerate against model:generate, one `u`, :BitnetStop mid-way, and
-- the largest gap of a 5 ms timer while a generation streams. Writes "ok" or
-- the failure, then the figures, to $BITNET_NVIM_OUT, and quits.
local uv = vim.loop
local api = vim.api
local out = assert(os.getenv("BITNET_NVIM_OUT"), "BITNET_NVIM_OUT is not set")
local PROMPT = "In the beginning"
local figures = {}

local function check(cond, msg)
  if not cond then error(msg, 2) end
end

local function buffer_text()
  return table.concat(api.nvim_buf_get_lines(0, 0, -1, true), "\n")
end

local function fresh_buffer()
  vim.cmd("enew!")
  vim.bo.undolevels = 1000
  api.nvim_buf_set_lines(0, 0, -1, true, { PROMPT })
  api.nvim_win_set_cursor(0, { 1, #PROMPT - 1 }) -- on the last character
end

local function wait_done(nv)
  check(vim.wait(30000, function() return not nv.running() end, 1), "generation did not finish in 30 s")
end

local function run()
  vim.cmd("runtime! plugin/bitnet.lua")
  check(vim.fn.exists(":BitnetGenerate") == 2, ":BitnetGenerate is not defined")
  local nv = require("bitnet_nvim")
  nv.library()
  figures.library = package.searchpath("bitnet", package.path)

  -- 1. :BitnetGenerate inserts exactly model:generate's text, undone by one u
  nv.setup({ temperature = 0, max_tokens = 32 })
  local info = nv.info()
  check(info:find("kjv-bitnet-6m", 1, true), "info: " .. info)
  local want = nv.model():generate(PROMPT, { temperature = 0, max_tokens = 32 })
  check(#want > 0, "empty reference generation")
  fresh_buffer()
  vim.cmd("BitnetGenerate")
  check(nv.running(), "BitnetGenerate blocked until the end")
  wait_done(nv)
  check(buffer_text() == PROMPT .. want, ("buffer %q, want %q"):format(buffer_text(), PROMPT .. want))
  check(nv.last.info.finish_reason == "length", "finish_reason " .. tostring(nv.last.info.finish_reason))
  vim.cmd("normal! u")
  check(buffer_text() == PROMPT, "after one u: " .. buffer_text())

  -- 1b. a range: its lines are the prompt, the text goes after its last line
  local short = { temperature = 0, max_tokens = 12 }
  nv.setup(short)
  local first = "And God said, Let there be light"
  vim.cmd("enew!")
  api.nvim_buf_set_lines(0, 0, -1, true, { first, "and there was light." })
  want = nv.model():generate(first, short)
  vim.cmd("1BitnetGenerate")
  wait_done(nv)
  local lines = api.nvim_buf_get_lines(0, 0, -1, true)
  check(table.concat(lines, "\n") == first .. want .. "\nand there was light.",
    "range: " .. table.concat(lines, "\n"))

  -- 1c. a charwise visual selection: exactly its text, continued after it
  vim.cmd("enew!")
  api.nvim_buf_set_lines(0, 0, -1, true, { first })
  want = nv.model():generate("God said", short)
  vim.cmd([[exe "normal! 0wvee\<Esc>"]])
  vim.cmd("'<,'>BitnetGenerate")
  wait_done(nv)
  check(buffer_text() == "And God said" .. want .. ", Let there be light", "selection: " .. buffer_text())

  -- 1d. M.stream with a handle that has no fd: the timer fallback streams
  -- the same text
  want = nv.model():generate(PROMPT, short)
  local gen = nv.model():generate(PROMPT, { temperature = 0, max_tokens = 12, async = true })
  local no_fd = setmetatable({ fd = false }, { __index = function(_, k)
    local v = gen[k]
    if type(v) == "function" then return function(_, ...) return v(gen, ...) end end
    return v
  end })
  fresh_buffer()
  nv.stream(no_fd)
  check(nv.running(), "stream blocked until the end")
  wait_done(nv)
  check(buffer_text() == PROMPT .. want, "timer fallback: " .. buffer_text())
  check(nv.last.info.completion_tokens == 12, "timer fallback info")

  -- 2. a long generation: many insertions, one u, and the UI's largest gap
  nv.setup({ temperature = 0, max_tokens = 2000, context_shift = true })
  fresh_buffer()
  local last, gap, ticks = uv.hrtime(), 0, 0
  local timer = uv.new_timer()
  timer:start(5, 5, function()
    local now = uv.hrtime()
    gap = math.max(gap, (now - last) / 1e6)
    last, ticks = now, ticks + 1
  end)
  -- break the undo sequence after each insertion, as a user's typing between
  -- pieces would: the insertions must still join into one undo block
  local breaker = api.nvim_create_autocmd("User", {
    pattern = "BitnetPiece",
    callback = function() vim.cmd("let &undolevels = &undolevels") end,
  })
  local t0 = uv.hrtime()
  vim.cmd("BitnetGenerate")
  wait_done(nv)
  api.nvim_del_autocmd(breaker)
  timer:stop()
  timer:close()
  figures.gap_ms = gap
  figures.ticks = ticks
  figures.long_ms = (uv.hrtime() - t0) / 1e6
  figures.long_pieces = nv.last.pieces
  figures.long_tokens = nv.last.info.completion_tokens
  check(nv.last.info.completion_tokens == 2000, "long generation: " .. nv.last.info.completion_tokens .. " tokens")
  check(nv.last.pieces > 1, "the long generation came in one piece")
  check(buffer_text() == PROMPT .. nv.last.text, "long generation: buffer differs from its text")
  vim.cmd("normal! u")
  check(buffer_text() == PROMPT, "after one u of " .. nv.last.pieces .. " insertions: " .. buffer_text():sub(1, 80))

  -- 3. :BitnetStop after three pieces
  nv.setup({ temperature = 0, max_tokens = 500, context_shift = true })
  local full = nv.model():generate(PROMPT, { temperature = 0, max_tokens = 500, context_shift = true })
  fresh_buffer()
  local id = api.nvim_create_autocmd("User", {
    pattern = "BitnetPiece",
    callback = function()
      if nv.running() and require("bitnet_nvim").pieces() >= 3 then vim.cmd("BitnetStop") end
    end,
  })
  vim.cmd("BitnetGenerate")
  wait_done(nv)
  api.nvim_del_autocmd(id)
  local got = nv.last
  figures.stop_tokens = got.info.completion_tokens
  check(got.info.finish_reason == "cancelled", "after :BitnetStop finish_reason " .. tostring(got.info.finish_reason))
  check(got.info.completion_tokens < 500, "cancelled after all 500 tokens")
  check(buffer_text() == PROMPT .. got.text, "after stop the buffer differs from the text kept")
  check(full:sub(1, #got.text) == got.text, "the text kept is not a prefix of the whole generation")
  check(vim.fn.exists(":BitnetStop") == 2 and not nv.stop(), "stop with nothing running")

  -- 4. :BitnetChat: two turns, each reply model:chat's with the history
  nv.setup({ temperature = 0, max_tokens = 24 })
  vim.cmd("BitnetChat")
  check(api.nvim_buf_get_name(0):find("bitnet://chat", 1, true), "not in the chat buffer")
  api.nvim_buf_set_lines(0, 0, -1, true, { ">>> Who made the heaven", "and the earth?" })
  local msgs = { { role = "user", content = "Who made the heaven\nand the earth?" } }
  for turn = 1, 2 do
    local reply = nv.model():chat(msgs, { temperature = 0, max_tokens = 24 })
    if turn == 1 then
      vim.cmd("BitnetChat")
    else -- the chat buffer's <CR> mapping
      vim.cmd([[exe "normal \<CR>"]])
    end
    wait_done(nv)
    check(nv.last.text == reply, ("turn %d: reply %q, want %q"):format(turn, nv.last.text, reply))
    local lines = api.nvim_buf_get_lines(0, 0, -1, true)
    check(lines[#lines] == ">>> ", "no new >>> line after the reply")
    msgs[#msgs + 1] = { role = "assistant", content = vim.trim(reply) }
    msgs[#msgs + 1] = { role = "user", content = "And the sea?" }
    api.nvim_buf_set_lines(0, -2, -1, true, { ">>> And the sea?" })
  end
  figures.chat = "2 turns"
end

local ok, err = xpcall(run, debug.traceback)
local f = assert(io.open(out, "w"))
f:write(ok and "ok\n" or ("fail: " .. tostring(err) .. "\n"))
for k, v in pairs(figures) do f:write(("%s=%s\n"):format(k, tostring(v))) end
f:close()
vim.cmd(ok and "qa!" or "cquit")
