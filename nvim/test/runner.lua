-- Runs a scenario in headless Neovim as a user's session runs: the
-- scenario is a coroutine that types with nvim_input and waits by yielding
-- to the event loop; a 5 ms vim.loop timer resumes it once what it waits
-- for has happened, and records its own largest gap meanwhile (the
-- scenario's own synchronous steps, wrapped in untimed(), are left out).
-- Used by nvim/test/complete_test.lua and bench/nvim_bench.lua:
--   local R = dofile("nvim/test/runner.lua")
--   R.run(function() ... R.wait_until(pred, ms, what) ... end, function(ok, err) ... end)
local uv = vim.loop
local R = { gap = 0, gap_phase = "-", phase = "setup", long_gaps = {} }

local co, waiting, scheduled, done_fn
local last_tick, paused = uv.hrtime(), false

function R.now() return uv.hrtime() / 1e6 end

local function resume(...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    done_fn(false, debug.traceback(co, err))
  elseif coroutine.status(co) == "dead" then
    done_fn(true)
  end
end

local function step()
  scheduled = false
  local w = waiting
  if not w then return end
  local ok, res = pcall(w.pred)
  if not ok then
    waiting = nil
    resume(false, res)
  elseif res then
    waiting = nil
    resume(true)
  elseif R.now() > w.deadline then
    waiting = nil
    resume(false, w.what .. ": did not happen within " .. w.ms .. " ms")
  end
end

--- R.run(scenario, done): starts the scenario on the next turn of the loop;
-- done(ok, err) is called once it ends or fails.
function R.run(scenario, done)
  done_fn = function(ok, err)
    R.ticker:stop()
    done(ok, err)
  end
  co = coroutine.create(scenario)
  R.ticker = uv.new_timer()
  R.ticker:start(5, 5, function()
    local t = uv.hrtime()
    local g = (t - last_tick) / 1e6
    if not paused then
      if g > R.gap then R.gap, R.gap_phase = g, R.phase end
      if g > 30 then R.long_gaps[#R.long_gaps + 1] = ("%.1f ms in %s"):format(g, R.phase) end
    end
    last_tick = t
    if not scheduled then
      scheduled = true
      vim.schedule(step)
    end
  end)
  vim.schedule(function() resume() end)
end

--- R.wait_until(pred, ms, what): yields to the event loop until pred() is
-- true; raises naming `what` after ms milliseconds.
function R.wait_until(pred, ms, what)
  waiting = { pred = pred, deadline = R.now() + ms, ms = ms, what = what }
  local ok, err = coroutine.yield()
  if not ok then error(err, 2) end
end

function R.sleep(ms)
  local t = R.now() + ms
  R.wait_until(function() return R.now() >= t end, ms + 5000, "sleep")
end

--- R.untimed(fn, ...) -> fn's results: the scenario's own synchronous work,
-- outside the gap measurement (a long API call may run timers: it checks
-- for input).
function R.untimed(fn, ...)
  paused = true
  local r = { pcall(fn, ...) }
  paused = false
  last_tick = uv.hrtime()
  if not r[1] then error(r[2], 2) end
  return unpack(r, 2)
end

--- R.keys(s): types s literally ("<" as <lt>).
function R.keys(s)
  vim.api.nvim_input((s:gsub("<", "<lt>")))
end

return R
