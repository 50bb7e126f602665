-- Small helpers the specs share.
local M = {}

--- M.assert_raises(fn, want): fn must raise an error whose text contains
-- want (plain text).
function M.assert_raises(fn, want)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error containing: " .. want)
  err = tostring(err)
  assert(err:find(want, 1, true), ("error %q does not contain %q"):format(err, want))
end

--- M.read_file(path) -> the file's bytes; M.write_file(path, bytes).
function M.read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

--- M.read_file_if(path) -> the file's bytes, or nil when it is not there (yet).
function M.read_file_if(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

--- M.sink() -> a writable stream that keeps what it is given (for cli.main's
-- streams): :write(...), :flush(), .text() -> everything written.
function M.sink()
  local parts = {}
  return {
    write = function(self, ...)
      for _, s in ipairs({ ... }) do parts[#parts + 1] = tostring(s) end
      return self
    end,
    flush = function() end,
    text = function() return table.concat(parts) end,
  }
end

function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

--- M.tmpname() -> a fresh path that does not exist yet.
function M.tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p
end

-- a readable stream over a string (read("*l") and read("*a"))
local function source(s)
  local pos = 1
  return {
    read = function(_, how)
      if pos > #s then return nil end
      if how == "*a" or how == "a" then
        local rest = s:sub(pos)
        pos = #s + 1
        return rest
      end
      local nl = s:find("\n", pos, true)
      local line = s:sub(pos, (nl or #s + 1) - 1)
      pos = (nl or #s) + 1
      return line
    end,
  }
end

--- M.run_cli(args [, stdin [, tty]]) -> status, stdout, stderr: the
-- `bitnet` command (bitnet.cli.main) in process, reading stdin from the
-- string; tty: whether stderr counts as a terminal (progress bars).
function M.run_cli(args, stdin, tty)
  local out, err = M.sink(), M.sink()
  local status = require("bitnet.cli").main(args,
    { stdout = out, stderr = err, stdin = source(stdin or ""), stderr_is_tty = tty or false })
  return status, out.text(), err.text()
end

return M
