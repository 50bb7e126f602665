-- bench/nvim_bench.lua: the Neovim plugin's UI responsiveness on the
-- 2B-4T-shaped synthetic model (`make nvim-bench`, not CI). Runs inside
-- headless Neovim with the plugin on the runtimepath:
--   env -u LD_PRELOAD nvim --headless --clean -u NONE --cmd "set rtp+=$PWD/nvim" \
--     -c "luafile bench/nvim_bench.lua"
-- The synthetic file has no tokenizer, so the generation is the engine's raw
-- job (core.job on token ids) behind a small handle with the async
-- generation's poll / fd / cancel / close / info, streamed into a buffer by
-- the plugin's own M.stream (the same fd watch, poll and insertions as
-- :BitnetGenerate). A repeating 5 ms vim.loop timer records its largest gap
-- meanwhile. Prints the figures; exits non-zero on an error.
local uv = vim.loop
local api = vim.api
local FILE = os.getenv("NVIM_BENCH_MODEL") or "bench/cache/synth-2b-i2_s-f16.gguf"
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

local function run()
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
  local say = function(fmt, ...) io.stdout:write(fmt:format(...), "\n") end
  say("### Neovim UI gap, %s, %d threads, nvim %s", FILE:match("[^/]*$"), THREADS,
    tostring(vim.version().major) .. "." .. vim.version().minor .. "." .. vim.version().patch)
  say("load %.2f s; core.job call %.2f ms; %d-token prompt prefilled in %.2f s, %d tokens decoded in %.2f s (%.1f tok/s); %.2f s in all",
    t_load, t_start, N_PROMPT, info.prefill_seconds, N_TOKENS, info.decode_seconds,
    N_TOKENS / info.decode_seconds, elapsed)
  say("%d insertions; 5 ms timer: %d ticks, largest gap %.1f ms (target < 50 ms: %s)",
    nv.last.pieces, ticks, gap, gap < 50 and "met" or "NOT met")
end

local ok, err = xpcall(run, debug.traceback)
if not ok then io.stderr:write("nvim-bench: ", tostring(err), "\n") end
vim.cmd(ok and "qa!" or "cquit")
