-- bench/nvim_bench.lua: the Neovim plugin's figures (`make nvim-bench`, not
-- CI), inside headless Neovim with the plugin on the runtimepath:
--   env -u LD_PRELOAD nvim --headless --clean -u NONE --cmd "set rtp+=$PWD/nvim" \
--     -c "luafile bench/nvim_bench.lua"
--
-- 1. Inline completion: in a 300-line buffer (prose from
--    ../shared/corpora/sherlock.txt), insert mode at the end of line 150,
--    50 pauses: a word typed key by key through nvim_input (40 ms apart),
--    then a pause until the suggestion's first text shows. Reports the time
--    from the end of typing (the last change) to that text, p50 and p95, and
--    the prompt tokens each suggestion's generation fed (the rest came from
--    the session pool), with the default options (debounce 120 ms). First
--    the shipped model, then NVIM_BENCH_MODEL when it has a tokenizer.
-- 2. UI responsiveness on NVIM_BENCH_MODEL (the 2B-4T-shaped synthetic
--    file by default): the engine's raw job (core.job on token ids) behind
--    a small handle with the async generation's poll / fd / cancel / close /
--    info, streamed into a buffer by the plugin's own M.stream (the same fd
--    watch, poll and insertions as :BitnetGenerate). A repeating 5 ms
--    vim.loop timer records its largest gap meanwhile.
-- Prints the figures; exits non-zero on an error.
local uv = vim.loop
local api = vim.api
local FILE = os.getenv("NVIM_BENCH_MODEL") or "bench/cache/synth-2b-i2_s-f16.gguf"
local say = function(fmt, ...) io.stdout:write(fmt:format(...), "\n") end
local THREADS = tonumber(os.getenv("NVIM_BENCH_THREADS") or "2")
local N_PROMPT, N_TOKENS = 256, tonumber(os.getenv("NVIM_BENCH_TOKENS") or "256")

-- An async-generation-like handle on a raw engine job: each token id comes
-- out as the text " <id>".
local function job_handle(job, session)
  local h, count, finished = {}, 0, false
  function h.poll()
    if finished then return nil end
    local ids, st = job:poll()
    count = count + #ids
    local parts = {}
    for i, id in ipairs(ids) do parts[i] = " " .. id end
    if st.finish then
      finished = true
      h.info = { finish_reason = st.finish, completion_tokens = count, error = st.error,
        prefill_seconds = st.prefill_seconds, decode_seconds = st.decode_seconds }
    end
    local text = table.concat(parts)
    if text == "" and finished then return nil end
    return text
  end
  function h.fd() return job:fd() end
  function h.cancel() job:cancel() end
  function h.close()
    job:close()
    session:close()
  end
  return h
end

local function ui_gap()
  vim.cmd("runtime! plugin/bitnet.lua")
  local nv = require("bitnet_nvim")
  local bitnet = nv.library()
  nv.setup({ model = FILE, threads = THREADS })
  local t_load = uv.hrtime()
  local model = nv.model()
  t_load = (uv.hrtime() - t_load) / 1e9
  local ids, x, n_vocab = {}, 7, model:info().n_vocab
  for i = 1, N_PROMPT do
    x = (x * 1103515245 + 12345) % 2147483648
    ids[i] = x % n_vocab
  end
  local session = model:session({ n_ctx = N_PROMPT + N_TOKENS })
  local sampler = bitnet.sampler({ temperature = 0 })

  vim.cmd("enew!")
  local last, gap, ticks = uv.hrtime(), 0, 0
  local timer = uv.new_timer()
  timer:start(5, 5, function()
    local now = uv.hrtime()
    gap = math.max(gap, (now - last) / 1e6)
    last, ticks = now, ticks + 1
  end)
  local t0 = uv.hrtime()
  local job = bitnet.core.job(session, sampler, ids, 0, { max_tokens = N_TOKENS })
  local t_start = (uv.hrtime() - t0) / 1e6
  nv.stream(job_handle(job, session))
  local ok = vim.wait(600000, function() return not nv.running() end, 1)
  local elapsed = (uv.hrtime() - t0) / 1e9
  timer:stop()
  timer:close()
  assert(ok, "the generation did not finish in 10 minutes")
  local info = nv.last.info
  assert(info.finish_reason == "length", "finish_reason " .. tostring(info.finish_reason) .. " " .. tostring(info.error))
  local words = #vim.split(vim.trim(nv.last.text), " ", true)
  assert(words == N_TOKENS, ("%d tokens in the buffer, want %d"):format(words, N_TOKENS))
  say("### Neovim UI gap, %s, %d threads, nvim %s", FILE:match("[^/]*$"), THREADS,
    tostring(vim.version().major) .. "." .. vim.version().minor .. "." .. vim.version().patch)
  say("load %.2f s; core.job call %.2f ms; %d-token prompt prefilled in %.2f s, %d tokens decoded in %.2f s (%.1f tok/s); %.2f s in all",
    t_load, t_start, N_PROMPT, info.prefill_seconds, N_TOKENS, info.decode_seconds,
    N_TOKENS / info.decode_seconds, elapsed)
  say("%d insertions; 5 ms timer: %d ticks, largest gap %.1f ms (target < 50 ms: %s)",
    nv.last.pieces, ticks, gap, gap < 50 and "met" or "NOT met")
end

-- ---- 1. completion: 50 pauses ----
local R = dofile("nvim/test/runner.lua")
local WORDS = { "the", "door", "was", "opened", "by", "a", "man", "who", "said", "that", "he", "had", "seen",
  "Holmes", "in", "his", "room", "and", "I", "will" }
local PAUSES = tonumber(os.getenv("NVIM_BENCH_PAUSES") or "50")

local function corpus_lines(n)
  local lines = {}
  for line in io.lines((os.getenv("BITNET_SHARED") or "../shared") .. "/corpora/sherlock.txt") do
    if line:find("%S") and #lines < n + 200 then lines[#lines + 1] = line end
  end
  local out = {}
  for i = 201, 200 + n do out[#out + 1] = lines[i] end
  return out
end

local function completion(file, label)
  local api = vim.api
  local nv = require("bitnet_nvim")
  local c = require("bitnet_nvim.complete")
  nv.setup({ model = file, threads = THREADS, complete = { enabled = true } })
  local t_load = R.untimed(function()
    local t0 = uv.hrtime()
    nv.model():tokenizer() -- raises for a file without one
    return (uv.hrtime() - t0) / 1e9
  end)
  R.untimed(function()
    vim.cmd("enew!")
    api.nvim_buf_set_lines(0, 0, -1, true, corpus_lines(300))
    api.nvim_win_set_cursor(0, { 150, 0 })
  end)
  api.nvim_input("A")
  R.wait_until(function() return api.nvim_get_mode().mode == "i" end, 2000, "insert mode")
  local function pause(what)
    R.wait_until(function()
      local s = c.suggestion()
      return s and (s.done or #api.nvim_buf_get_extmarks(0, c.ns, 0, -1, {}) > 0)
    end, 600000, what)
  end
  local t0 = uv.hrtime()
  R.keys(" It")
  pause("the first (cold) suggestion")
  local cold_ms = (uv.hrtime() - t0) / 1e6
  local gap0 = R.gap
  R.gap = 0
  for i = 1, PAUSES do
    local word = WORDS[(i - 1) % #WORDS + 1]
    if i % 8 == 0 then api.nvim_input("<CR>") else R.keys(" ") end
    for ch in word:gmatch(".") do
      R.sleep(40)
      R.keys(ch)
    end
    pause("a suggestion after pause " .. i)
  end
  R.untimed(function() api.nvim_input("<Esc>") end)
  R.wait_until(function() return nv.model():jobs() == 0 end, 600000, "the last generation to end")
  local st = c.stats()
  local lat, fed = {}, {}
  for i = 2, #st.latencies do lat[#lat + 1] = st.latencies[i] end
  for i = 2, #st.fed do fed[#fed + 1] = st.fed[i] end
  local p50, p95 = c.quantile(lat, 0.5), c.quantile(lat, 0.95)
  local debounce = 120
  say("### Neovim completion, %s (%s), %d threads, nvim %s", label, file and file:match("[^/]*$") or "shipped model",
    THREADS, tostring(vim.version().major) .. "." .. vim.version().minor .. "." .. vim.version().patch)
  say("load %.2f s; cold first pause: first text after %.0f ms, its generation fed %d tokens", t_load, cold_ms,
    st.fed[1] or -1)
  say("%d pauses (%d showed text): end of typing -> first suggestion text p50 %.0f ms, p95 %.0f ms "
    .. "(targets: p50 <= %d: %s; p95 <= %d: %s)", PAUSES, #lat, p50 or -1, p95 or -1, debounce + 60,
    (p50 or 1e9) <= debounce + 60 and "met" or "NOT met", debounce + 150, (p95 or 1e9) <= debounce + 150 and "met" or "NOT met")
  say("prompt tokens fed per suggestion: median %d, p95 %d, max %d (target: median <= 16: %s); %d of %d prompt tokens "
    .. "came from the pool", c.quantile(fed, 0.5) or -1, c.quantile(fed, 0.95) or -1, c.quantile(fed, 1) or -1,
    (c.quantile(fed, 0.5) or 1e9) <= 16 and "met" or "NOT met", st.cached_tokens, st.prompt_tokens)
  say("5 ms timer: largest gap %.1f ms while typing and suggesting (%.1f ms in the cold pause)", R.gap, gap0)
end

R.run(function()
  vim.o.showmode = false -- no "-- INSERT --" among the figures
  vim.cmd("runtime! plugin/bitnet.lua")
  completion(nil, "shipped model")
  local has_tok = R.untimed(function()
    local bitnet = require("bitnet_nvim").library()
    local m = assert(bitnet.load(FILE, { threads = THREADS }))
    return pcall(m.tokenizer, m)
  end)
  if has_tok then
    completion(FILE, "2B-4T-shaped synthetic model")
  else
    say("### Neovim completion: %s has no tokenizer, skipped", FILE)
  end
  R.untimed(ui_gap)
end, function(ok, err)
  if not ok then io.stderr:write("nvim-bench: ", tostring(err), "\n") end
  vim.cmd(ok and "qa!" or "cquit")
end)
