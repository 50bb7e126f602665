-- Loads the bitnet module through the plugin, in the environment the spec
-- (spec/luarocks_env_spec.lua) starts Neovim with (LUA_PATH / LUA_CPATH as
-- `luarocks path` prints them), then generates a few tokens with it. Writes
-- "ok", the file the module came from and the text, or "fail: <error>", to
-- $BITNET_NVIM_OUT, and quits.
local out = assert(os.getenv("BITNET_NVIM_OUT"), "BITNET_NVIM_OUT is not set")
local lines = {}
local ok, err = pcall(function()
  local nv = require("bitnet_nvim")
  local bitnet = nv.library()
  lines[#lines + 1] = "library=" .. tostring(package.searchpath("bitnet", package.path))
  lines[#lines + 1] = "core=" .. tostring(package.searchpath("bitnet.core", package.cpath))
  local model = assert(bitnet.load())
  lines[#lines + 1] = "text=" .. model:generate("In the beginning", { max_tokens = 6, temperature = 0 }):gsub("\n", " ")
  -- a second call returns the module already loaded
  assert(nv.library() == bitnet, "a second library() loaded the module again")
end)
local f = assert(io.open(out, "w"))
f:write(ok and "ok\n" or ("fail: " .. tostring(err) .. "\n"), table.concat(lines, "\n"), "\n")
f:close()
vim.cmd("qa!")
