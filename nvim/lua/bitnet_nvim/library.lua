-- Finding the bitnet module from inside Neovim (LuaJIT), whatever the user's
-- environment: `eval "$(luarocks path)"` for a Lua 5.4 tree puts a rock
-- whose core.so LuaJIT cannot load first on package.path, and a failed
-- require leaves LuaJIT's sentinel in package.loaded ("loop or previous
-- error" on the next try). Each place is tried in turn with what a failed
-- attempt loaded cleared, and when none works the error names every place
-- and why it failed.
local M = {}

-- package.loaded entries of the bitnet module and its submodules.
local function bitnet_entries()
  local names = {}
  for name in pairs(package.loaded) do
    if name == "bitnet" or name:sub(1, 7) == "bitnet." then names[name] = true end
  end
  return names
end

local function exists(path)
  return vim.loop.fs_stat(path) ~= nil
end

-- At most a few lines of an error: "module not found" lists every file.
local function brief(err)
  local lines = vim.split(tostring(err):gsub("\t", "  "), "\n", true)
  if #lines > 4 then
    lines = { lines[1], lines[2], lines[3], ("(%d more lines)"):format(#lines - 3) }
  end
  return table.concat(lines, "\n      ")
end

--- library.places(root) -> list of { name, path, cpath }: where the module
-- may be, in order: package.path / package.cpath as they are (a luarocks
-- tree for LuaJIT, or paths the user set); the checkout at root (lua/ and
-- build/luajit); then each luarocks tree named on package.path, or the
-- user's and the system's, that holds a Lua 5.1 (LuaJIT) build.
function M.places(root)
  local places = { { name = "package.path / package.cpath" } }
  if root then
    places[#places + 1] = {
      name = "the checkout " .. root .. " (lua/, build/luajit)",
      path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua",
      cpath = root .. "/build/luajit/?.so",
    }
  end
  local trees, seen = {}, {}
  for tree in package.path:gmatch("([^;]*)/share/lua/5%.%d/%?%.lua") do trees[#trees + 1] = tree end
  local home = os.getenv("HOME")
  if home then trees[#trees + 1] = home .. "/.luarocks" end
  trees[#trees + 1] = "/usr/local"
  for _, tree in ipairs(trees) do
    if not seen[tree] and exists(tree .. "/lib/lua/5.1/bitnet/core.so") then
      seen[tree] = true
      places[#places + 1] = {
        name = "the luarocks tree " .. tree .. " (Lua 5.1 / LuaJIT)",
        path = tree .. "/share/lua/5.1/?.lua;" .. tree .. "/share/lua/5.1/?/init.lua",
        cpath = tree .. "/lib/lua/5.1/?.so",
      }
    end
  end
  return places
end

--- library.load(root) -> the bitnet module: the first place of
-- library.places(root) where `require "bitnet"` works (its paths stay first
-- on package.path / package.cpath). Raises naming every place tried and its
-- error when none works.
function M.load(root)
  local loaded = package.loaded.bitnet
  if type(loaded) == "table" then return loaded end
  for name in pairs(bitnet_entries()) do -- sentinels of someone's failed require
    if type(package.loaded[name]) ~= "table" then package.loaded[name] = nil end
  end
  local tried = {}
  for _, place in ipairs(M.places(root)) do
    local before = bitnet_entries()
    local old_path, old_cpath = package.path, package.cpath
    if place.path then
      package.path = place.path .. ";" .. package.path
      package.cpath = place.cpath .. ";" .. package.cpath
    end
    local ok, mod = pcall(require, "bitnet")
    if ok and type(mod) == "table" then return mod end
    for name in pairs(bitnet_entries()) do
      if not before[name] then package.loaded[name] = nil end
    end
    package.loaded.bitnet = nil -- LuaJIT's sentinel, or a non-table result
    package.path, package.cpath = old_path, old_cpath
    tried[#tried + 1] = ("  %d. %s:\n      %s"):format(#tried + 1, place.name,
      brief(ok and "require returned " .. type(mod) or mod))
  end
  error("cannot load the bitnet module (the LuaJIT build of bitnet.core is needed: `make luajit` in the "
    .. "checkout, or `luarocks --lua-version 5.1 make` to install it); tried:\n" .. table.concat(tried, "\n"), 0)
end

return M
