-- Watching an async generation from Neovim's event loop without ever
-- waiting: the engine's fd wakes the loop (vim.loop.new_poll; a 10 ms timer
-- when there is none), the callback only calls gen:poll(), and the text
-- goes to the host's function through vim.schedule. A generation that ends
-- cancelled is closed only once the engine has let go of it (gen:close()
-- would wait for the engine's step, which on a large model is long).
local M = {}

local uv = vim.loop

local Watch = {}
Watch.__index = Watch

-- Closes gen once the engine has let go of it, checking every 5 ms.
local function close_when_released(gen)
  if gen:released() then
    gen:close()
    return
  end
  local timer = uv.new_timer()
  timer:start(5, 5, function()
    if gen:released() then
      timer:stop()
      timer:close()
      gen:close()
    end
  end)
end

--- watch.start(gen, on_news) -> Watch: calls on_news(text, finished, w) on
-- the main loop with the text polled since the last call ("" when only the
-- end is news); `finished` is true exactly once, last, with w.info set.
-- gen: what model:generate / model:chat return with async = true, or any
-- handle with poll / fd / cancel / close / info (and released, else close
-- is taken not to wait).
function M.start(gen, on_news)
  local w = setmetatable({ gen = gen, on_news = on_news, pending = {}, finished = false, scheduled = false }, Watch)
  local ok, fd = pcall(gen.fd, gen)
  local poller = ok and type(fd) == "number" and uv.new_poll(fd)
  if poller then
    w.handle = poller
    poller:start("r", function() w:pump() end)
  else
    w.handle = uv.new_timer()
    w.handle:start(10, 10, function() w:pump() end)
  end
  return w
end

--- w:pump(): takes the generation's news now, never waiting (callable from
-- the loop's fast callbacks: it uses no editor API); on_news is scheduled.
function Watch:pump()
  if self.finished then return end
  -- poll again after text: the fd does not wake us once more for the nil
  -- that follows the last text of a finished generation
  local piece = self.gen:poll()
  while piece and piece ~= "" do
    self.pending[#self.pending + 1] = piece
    piece = self.gen:poll()
  end
  if piece == nil then
    self.finished = true
    self.info = self.gen.info
    self.handle:stop()
    self.handle:close()
    if self.gen.released then
      close_when_released(self.gen)
    else
      self.gen:close()
    end
  end
  if (self.finished or #self.pending > 0) and not self.scheduled then
    self.scheduled = true
    vim.schedule(function() self:flush() end)
  end
end

-- On the main loop: hands the text gathered to on_news.
function Watch:flush()
  self.scheduled = false
  if self.ended then return end
  local text = table.concat(self.pending)
  self.pending = {}
  if self.finished then self.ended = true end
  self.on_news(text, self.finished, self)
end

--- w:cancel(): cancels the generation; its last text and its end come
-- through on_news as usual (scheduled).
function Watch:cancel()
  if self.finished then return end
  self.gen:cancel()
  self:pump()
end

return M
