-- Shell commands for the specs, run without the sanitizer runtime that
-- `make test-asan` preloads into lua5.4: a child (cp, mkdir, rm) inheriting
-- it aborts under LeakSanitizer for leaks of its own. Every command's exit
-- status is checked, so an "Aborted" in a run can only be a real failure.
local M = {}

local function clean(cmd)
  return "unset LD_PRELOAD; " .. cmd
end

local function succeeded(ok, how, code)
  -- LuaJIT without 5.2 compat: os.execute returns the status alone and
  -- a pipe's close just true
  if type(ok) == "number" then return ok == 0 end
  if how == nil then return ok == true end
  return ok == true and how == "exit" and code == 0
end

-- Runs cmd through the shell; raises with its status when it fails.
function M.run(cmd)
  local ok, how, code = os.execute(clean(cmd))
  if not succeeded(ok, how, code) then
    error(("command failed (%s %s): %s"):format(tostring(how), tostring(code), cmd), 2)
  end
end

-- Runs cmd and returns everything it wrote to stdout; raises when it fails.
function M.read(cmd)
  local p = assert(io.popen(clean(cmd)))
  local out = p:read("*a")
  local ok, how, code = p:close()
  if not succeeded(ok, how, code) then
    error(("command failed (%s %s): %s"):format(tostring(how), tostring(code), cmd), 2)
  end
  return out
end

return M
