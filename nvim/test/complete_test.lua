-- Inline completion in a real headless Neovim (started by
-- spec/nvim_spec.lua with `set rtp+=<checkout>/nvim`). Keys are typed with
-- nvim_input and go through the event loop as a user's would; checks run
-- from a 5 ms vim.loop timer that also records its largest gap while the
-- editor types and suggests (nvim/test/runner.lua; the test's own
-- synchronous steps, such as building a 100,000-line buffer or reference
-- generations, are left out).
-- Writes "ok" or the failure, then the figures, to $BITNET_NVIM_OUT.
local uv, api = vim.loop, vim.api
local out = assert(os.getenv("BITNET_NVIM_OUT"), "BITNET_NVIM_OUT is not set")
local figures = {}

local R = dofile("nvim/test/runner.lua")
local wait_until, sleep, untimed, keys = R.wait_until, R.sleep, R.untimed, R.keys
local now = R.now

local function check(cond, msg)
  if not cond then error(msg, 2) end
end

local function eq(want, got, what)
  if want ~= got then error(("%s: got %s, want %s"):format(what, vim.inspect(got), vim.inspect(want)), 2) end
end

-- ---- what the editor shows ----
local nv, c, ctxmod

local function marks(buf)
  return api.nvim_buf_get_extmarks(buf or 0, c.ns, 0, -1, { details = true })
end

-- The suggestion's text as the extmark shows it (virt_text, then a line
-- per virt_lines entry), or nil.
local function shown()
  local m = marks()
  if #m == 0 then return nil end
  local d = m[1][4]
  local parts = { d.virt_text[1][1] }
  for _, l in ipairs(d.virt_lines or {}) do parts[#parts + 1] = l[1][1] end
  return table.concat(parts, "\n"), m[1]
end

local function buffer_text(buf)
  return table.concat(api.nvim_buf_get_lines(buf or 0, 0, -1, true), "\n")
end

local function wait_done(what)
  wait_until(function()
    local s = c.suggestion()
    return s and s.done and shown() ~= nil
  end, 10000, what or "a finished suggestion")
  return c.suggestion()
end

local function fresh(lines, row, col)
  vim.cmd("stopinsert")
  vim.cmd("enew!")
  vim.bo.bufhidden = "wipe"
  api.nvim_buf_set_lines(0, 0, -1, true, lines)
  api.nvim_win_set_cursor(0, { row, col })
end

local function start_insert_at_end()
  api.nvim_input("A")
  wait_until(function() return api.nvim_get_mode().mode == "i" end, 2000, "insert mode")
end

local function leave_insert()
  api.nvim_input("<Esc>")
  wait_until(function() return api.nvim_get_mode().mode == "n" end, 2000, "normal mode")
end

local function jobs_settle(what)
  wait_until(function() return nv.model():jobs() == 0 end, 3000, what .. ": the engine let go of every job")
end

-- The prompt the plugin should send, computed here from the buffer: BOS
-- and the text before the cursor, or the FIM form.
local function expected_prompt(tok, fim)
  local cur = api.nvim_win_get_cursor(0)
  local lines = api.nvim_buf_get_lines(0, 0, -1, true)
  local before = table.concat(lines, "\n", 1, cur[1] - 1)
  before = (cur[1] > 1 and before .. "\n" or "") .. lines[cur[1]]:sub(1, cur[2])
  local after = lines[cur[1]]:sub(cur[2] + 1)
  if cur[1] < #lines then after = after .. "\n" .. table.concat(lines, "\n", cur[1] + 1) end
  local ids = { tok:bos() }
  local function add(t) for _, id in ipairs(t) do ids[#ids + 1] = id end end
  if fim then
    local p, s, m = tok:fim()
    ids[#ids + 1] = p
    add(tok:encode(before, { bos = false }))
    ids[#ids + 1] = s
    add(tok:encode(after, { bos = false }))
    ids[#ids + 1] = m
  else
    add(tok:encode(before, { bos = false }))
  end
  return ids
end

local function same_ids(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- A copy of the shipped model's Hugging Face directory whose three reserved
-- special tokens are spelled as fill-in-the-middle tokens.
local function fim_model_dir()
  local src = vim.fn.fnamemodify("models/kjv-bitnet-6m/hf", ":p"):gsub("/$", "")
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, "p")
  for _, f in ipairs({ "config.json", "model.safetensors" }) do
    assert(uv.fs_symlink(src .. "/" .. f, dir .. "/" .. f))
  end
  for _, f in ipairs({ "tokenizer.json", "tokenizer_config.json" }) do
    local text = assert(io.open(src .. "/" .. f)):read("*a")
    text = text:gsub("<|reserved_special_token_0|>", "<|fim_prefix|>")
      :gsub("<|reserved_special_token_1|>", "<|fim_suffix|>"):gsub("<|reserved_special_token_2|>", "<|fim_middle|>")
    local fh = assert(io.open(dir .. "/" .. f, "w"))
    fh:write(text)
    fh:close()
  end
  return dir
end

local BASE = { enabled = true, debounce_ms = 120, max_tokens = 24, max_lines = 4 }
local function with(extra)
  local t = vim.deepcopy(BASE)
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local GENESIS = {
  "In the beginning God created the heaven and the earth.",
  "And the earth was without form, and void; and darkness was upon the face of the deep.",
  "And God said, Let there be",
}

local function run()
  vim.cmd("runtime! plugin/bitnet.lua")
  check(vim.fn.exists(":BitnetComplete") == 2 and vim.fn.exists(":BitnetCompleteToggle") == 2, "commands missing")
  nv = require("bitnet_nvim")
  c = require("bitnet_nvim.complete")
  ctxmod = require("bitnet_nvim.context")
  local errors = {}
  local notify = vim.notify
  vim.notify = function(msg, level, ...)
    if level == vim.log.levels.ERROR then errors[#errors + 1] = msg end
    return notify(msg, level, ...)
  end
  figures.inline_virt_text = tostring(c.has_inline())

  -- 1. a suggestion after a pause: the prompt is BOS + the text before the
  -- cursor; <Tab> inserts exactly what was shown, which is the engine's
  -- greedy continuation of that prompt cut by the stop rules
  R.phase = "suggest and accept"
  nv.setup({ complete = with() })
  local model = untimed(nv.model)
  local tok = model:tokenizer()
  untimed(function() fresh(GENESIS, 3, 0) end)
  start_insert_at_end()
  keys(" light")
  local t_typed = now()
  local s = wait_done("a suggestion after typing")
  local first_latency = c.stats().latencies[1]
  check(first_latency >= BASE.debounce_ms, "shown before the pause ended: " .. first_latency)
  figures.first_latency_ms = ("%.1f"):format(first_latency)
  figures.wall_latency_ms = ("%.1f"):format(now() - t_typed)
  local want_ids = expected_prompt(tok, false)
  check(same_ids(want_ids, c.last_prompt), "prompt ids differ from BOS + the text before the cursor")
  local ref = untimed(function() return model:generate(c.last_prompt, { max_tokens = BASE.max_tokens, temperature = 0 }) end)
  local ref_shown = ctxmod.trim(ref, { before = GENESIS[3] .. " light", after = "", indent = 0 }, BASE.max_lines)
  eq(ref_shown, s.text, "suggestion vs model:generate on the same prompt")
  local text_shown, mark = shown()
  eq(s.text, text_shown, "extmark text")
  eq(2, mark[2], "extmark row")
  eq(#GENESIS[3] + #" light", mark[3], "extmark column (the cursor)")
  local before_tab = buffer_text()
  api.nvim_input("<Tab>")
  wait_until(function() return buffer_text() ~= before_tab end, 2000, "<Tab> inserting")
  eq(before_tab .. s.text, buffer_text(), "buffer after <Tab>")
  local cur = api.nvim_win_get_cursor(0)
  local lines = api.nvim_buf_get_lines(0, 0, -1, true)
  eq(#lines, cur[1], "cursor row after <Tab>")
  eq(#lines[#lines], cur[2], "cursor column after <Tab> (after the text)")
  eq(1, c.stats().accepted, "accepted count")
  local info = untimed(nv.info)
  check(info:find("1 accepted", 1, true) and info:find("completion on", 1, true), ":BitnetInfo: " .. info)

  -- 2. typing the start of a suggestion keeps the rest, with no new request
  R.phase = "typed prefix"
  s = wait_done("the next suggestion after accepting")
  local requests = c.stats().requests
  local head = s.text:match("^[^\n][^\n]") or s.text:sub(1, 1)
  check(not head:find("\n"), "suggestion starts with a newline: " .. s.text)
  keys(head)
  sleep(BASE.debounce_ms * 3)
  eq(s.text:sub(#head + 1), (shown()), "shown after typing its first characters")
  eq(requests, c.stats().requests, "requests after typing the suggestion's start")
  eq(head, c.suggestion().typed, "typed part")

  -- 3. a word, then a line, accepted
  R.phase = "accept word and line"
  local rest = s.text:sub(#head + 1)
  local word = rest:match("^%s*[^%s]+")
  local line_before = api.nvim_get_current_line()
  api.nvim_input("<C-B>")
  wait_until(function() return api.nvim_get_current_line() ~= line_before end, 2000, "<C-B> inserting")
  eq(line_before .. word, api.nvim_get_current_line(), "line after accepting a word")
  if rest:sub(#word + 1):find("%S") then
    eq(rest:sub(#word + 1), (shown()), "shown after accepting a word")
  end

  -- 4. another key dismisses the suggestion and cancels its generation
  R.phase = "dismiss"
  leave_insert()
  jobs_settle("leaving insert mode")
  eq(0, #marks(), "marks after leaving insert mode")
  nv.setup({ n_ctx = 1024, complete = with({ max_tokens = 900, max_lines = 1000 }) })
  model = untimed(nv.model)
  untimed(function() fresh(GENESIS, 3, 0) end)
  start_insert_at_end()
  keys(" light,")
  wait_until(function() return shown() ~= nil end, 10000, "the long suggestion's first text")
  check(not c.suggestion().done and model:jobs() == 1, "the long generation is not running when the key comes")
  local cancelled = c.stats().cancelled
  keys("Q")
  wait_until(function() return #marks() == 0 and c.stats().cancelled == cancelled + 1 end, 1000, "dismissal")
  jobs_settle("dismissal")
  check(api.nvim_get_current_line():sub(-1) == "Q", "the key was not typed")

  -- 5. leaving insert mode clears a suggestion being computed
  R.phase = "leave insert"
  wait_until(function() return shown() ~= nil end, 10000, "a suggestion after Q")
  leave_insert()
  eq(0, #marks(), "marks after <Esc>")
  eq(nil, c.suggestion(), "suggestion after <Esc>")
  jobs_settle("<Esc>")

  -- 6. the cache: back at the same place, the same suggestion comes without
  -- a generation; <Tab> with nothing shown is a Tab
  R.phase = "cache and fallback Tab"
  nv.setup({ complete = with() })
  untimed(function()
    nv.model()
    fresh(GENESIS, 3, 0)
  end)
  start_insert_at_end()
  keys(" light")
  s = wait_done("a suggestion to cache")
  leave_insert()
  local gens = #c.stats().fed
  api.nvim_input("a") -- <Esc> moved left: `a` is back after " light"
  wait_until(function() return api.nvim_get_mode().mode == "i" end, 2000, "insert mode again")
  keys("x")
  api.nvim_input("<BS>")
  local s2 = wait_done("the cached suggestion")
  eq(s.text, s2.text, "cached suggestion")
  eq(1, c.stats().cache_hits, "cache hits")
  eq(gens, #c.stats().fed, "generations after a cache hit")
  leave_insert()
  line_before = api.nvim_get_current_line()
  api.nvim_input("A<Tab>")
  wait_until(function() return api.nvim_get_current_line() ~= line_before end, 2000, "a plain <Tab>")
  eq(line_before .. "\t", api.nvim_get_current_line(), "<Tab> with no suggestion")
  leave_insert()
  -- a mapping of the user's own on the key: with nothing shown <Tab> is
  -- theirs, and theirs again once completion is off
  vim.cmd("BitnetCompleteToggle")
  vim.cmd("inoremap <Tab> TAB!")
  vim.cmd("BitnetCompleteToggle")
  eq(true, c.enabled(), "enabled again")
  line_before = api.nvim_get_current_line()
  api.nvim_input("A<Tab>")
  wait_until(function() return api.nvim_get_current_line() ~= line_before end, 2000, "the user's <Tab>")
  eq(line_before .. "TAB!", api.nvim_get_current_line(), "<Tab> falls through to the user's mapping")
  leave_insert()
  vim.cmd("BitnetCompleteToggle")
  eq("TAB!", vim.fn.maparg("<Tab>", "i"), "the user's mapping given back")
  vim.cmd("iunmap <Tab>")
  vim.cmd("BitnetCompleteToggle")

  -- 7. :BitnetCompleteToggle and :BitnetComplete with auto = false
  R.phase = "toggle and command"
  vim.cmd("BitnetCompleteToggle")
  eq(false, c.enabled(), "enabled after toggling")
  start_insert_at_end()
  keys(" and")
  sleep(BASE.debounce_ms * 3)
  eq(0, #marks(), "a suggestion while off")
  api.nvim_input("<Cmd>BitnetComplete<CR>")
  wait_done(":BitnetComplete")
  leave_insert()
  vim.cmd("BitnetCompleteToggle")
  eq(true, c.enabled(), "enabled after toggling again")

  -- 8. fill-in-the-middle where the vocabulary has the tokens
  R.phase = "fim"
  local dir = untimed(fim_model_dir)
  nv.setup({ model = dir, complete = with() })
  model = untimed(nv.model)
  tok = model:tokenizer()
  local p, sfx, m = tok:fim()
  eq("<|fim_prefix|> <|fim_suffix|> <|fim_middle|>", table.concat({ tok:text(p), tok:text(sfx), tok:text(m) }, " "),
    "FIM tokens of the test vocabulary")
  untimed(function() fresh({ "In the beginning God", "and the earth." }, 1, 0) end)
  start_insert_at_end()
  keys(" created")
  wait_until(function() return c.stats().fim == 1 end, 10000, "a FIM prompt")
  check(same_ids(expected_prompt(tok, true), c.last_prompt), "FIM prompt ids: " .. table.concat(c.last_prompt, ","))
  leave_insert()
  jobs_settle("fim")
  vim.fn.delete(dir, "rf")

  -- 9. a 100,000-line buffer: the window bounds the context
  R.phase = "100k lines"
  nv.setup({ complete = with() })
  model = untimed(nv.model)
  tok = model:tokenizer()
  untimed(function()
    local big = {}
    for i = 1, 100000 do big[i] = GENESIS[(i - 1) % 3 + 1] end
    fresh(big, 50000, 0)
    big = nil
    collectgarbage() -- the test's garbage, collected here rather than in a timed step
  end)
  start_insert_at_end()
  keys(" now")
  wait_done("a suggestion in a 100,000-line buffer")
  check(#c.last_prompt <= nv.n_ctx() - BASE.max_tokens, "prompt of " .. #c.last_prompt .. " tokens")
  local tail = tok:decode(c.last_prompt)
  eq(GENESIS[2] .. " now", tail:sub(-#(GENESIS[2] .. " now")), "the prompt ends at the cursor")
  figures.big_buffer_latency_ms = ("%.1f"):format(c.stats().latencies[#c.stats().latencies])
  leave_insert()
  jobs_settle("100k lines")

  -- 10. a binary buffer and invalid UTF-8
  R.phase = "binary"
  local bin = vim.fn.tempname()
  untimed(function()
    local bytes, x = {}, 12345
    for i = 1, 8192 do
      x = (x * 1103515245 + 12345) % 2147483648
      bytes[i] = string.char(math.floor(x / 65536) % 256)
    end
    local fh = assert(io.open(bin, "wb"))
    fh:write(table.concat(bytes))
    fh:close()
    vim.cmd("stopinsert")
    vim.cmd("edit! ++bin " .. vim.fn.fnameescape(bin))
    vim.v.errmsg = ""
  end)
  local before_requests = #c.stats().fed
  api.nvim_input("G")
  start_insert_at_end()
  keys("abc")
  wait_until(function() return #c.stats().fed > before_requests end, 10000, "a generation in a binary buffer")
  eq("", vim.v.errmsg, "errors in a binary buffer")
  leave_insert()
  jobs_settle("binary")
  vim.cmd("bwipeout!")
  os.remove(bin)
  R.phase = "invalid utf-8"
  local bad = { "caf\195 \255\254 In the beginning \226\130", "And God said, \192\128 Let there be" }
  untimed(function() fresh(bad, 2, 0) end)
  start_insert_at_end()
  keys(" light")
  s = wait_done("a suggestion after invalid UTF-8")
  before_tab = buffer_text()
  api.nvim_input("<Tab>")
  wait_until(function() return buffer_text() ~= before_tab end, 2000, "<Tab> after invalid UTF-8")
  eq(before_tab .. s.text, buffer_text(), "buffer after accepting next to invalid UTF-8")
  leave_insert()
  jobs_settle("invalid utf-8")

  -- 11. completion while :BitnetGenerate streams into another buffer
  R.phase = "beside :BitnetGenerate"
  nv.setup({ temperature = 0, max_tokens = 2000, context_shift = true, complete = with() })
  untimed(function()
    fresh({ "In the beginning" }, 1, 15)
    vim.cmd("BitnetGenerate")
  end)
  local gen_buf = api.nvim_get_current_buf()
  check(nv.running(), ":BitnetGenerate is not running")
  vim.cmd("new")
  api.nvim_buf_set_lines(0, 0, -1, true, GENESIS)
  start_insert_at_end()
  keys(" light")
  wait_until(function() return shown() ~= nil end, 10000, "a suggestion while :BitnetGenerate runs")
  check(nv.running(), ":BitnetGenerate ended before the suggestion came")
  leave_insert()
  wait_until(function() return not nv.running() end, 60000, ":BitnetGenerate to finish")
  eq("In the beginning" .. nv.last.text, buffer_text(gen_buf), "the generated buffer")
  eq(2000, nv.last.info.completion_tokens, ":BitnetGenerate tokens")
  vim.cmd("only!")
  jobs_settle("beside :BitnetGenerate")

  -- 12. a yanked chunk goes before the window (ring_chunks)
  R.phase = "ring"
  nv.setup({ complete = with({ ring_chunks = 2, n_prefix = 1, n_suffix = 0 }) })
  untimed(function()
    nv.model()
    fresh({ "Blessed are the meek", "a", "b", "c", "d", "And God said" }, 1, 0)
  end)
  api.nvim_input("yyG")
  start_insert_at_end()
  keys(" unto")
  wait_done("a suggestion with a yanked chunk")
  eq("Blessed are the meek\nd\nAnd God said unto", tok:decode(c.last_prompt), "prompt with the ring chunk")
  eq(tok:bos(), c.last_prompt[1], "the prompt's first id")
  leave_insert()
  jobs_settle("ring")

  -- 13. a model that fails to load: one message, not one per pause
  R.phase = "load failure"
  local before_errors = #errors
  nv.setup({ model = "/nonexistent/model.gguf", complete = with({ debounce_ms = 20 }) })
  untimed(function() fresh({ "x" }, 1, 0) end)
  start_insert_at_end()
  for _, k in ipairs({ "a", "b", "c", "d" }) do
    keys(k)
    sleep(80)
  end
  leave_insert()
  eq(before_errors + 1, #errors, "error messages for a model that fails to load")
  check(errors[#errors]:find("/nonexistent/model.gguf", 1, true), "message: " .. errors[#errors])
  check(c.stats().failed ~= nil, "stats do not say completion is paused")

  -- 14. bad options raise, naming the option
  local ok, err = pcall(nv.setup, { complete = { debounce = 10 } })
  check(not ok and err:find("unknown completion option 'debounce'", 1, true), tostring(err))
  ok, err = pcall(nv.setup, { complete = { max_tokens = 0 } })
  check(not ok and err:find("'max_tokens' must be an integer >= 1", 1, true), tostring(err))
  ok, err = pcall(nv.setup, { complete = { accept = 3 } })
  check(not ok and err:find("'accept' must be a key", 1, true), tostring(err))
  R.phase = "end"
end

R.run(run, function(ok, err)
  local f = assert(io.open(out, "w"))
  f:write(ok and "ok\n" or ("fail: " .. tostring(err) .. "\n"))
  figures.gap_ms = ("%.1f"):format(R.gap)
  figures.gap_phase = R.gap_phase
  for k, v in pairs(figures) do f:write(("%s=%s\n"):format(k, tostring(v))) end
  for _, g in ipairs(R.long_gaps) do f:write("note: gap ", g, "\n") end
  f:close()
  vim.cmd(ok and "qa!" or "cquit!")
end)
