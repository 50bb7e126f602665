-- The bitnet Neovim plugin's commands (the logic is in lua/bitnet_nvim).
-- Load it with `set rtp+=<checkout>/nvim` or a plugin manager pointed at the
-- checkout's nvim/ folder; configure with require("bitnet_nvim").setup{...}.
if vim.g.loaded_bitnet then return end
vim.g.loaded_bitnet = true

local function call(name, ...)
  local nv = require("bitnet_nvim")
  local ok, err = pcall(nv[name], ...)
  if not ok then vim.api.nvim_err_writeln("bitnet: " .. tostring(err)) end
end

vim.api.nvim_create_user_command("BitnetGenerate", function(args)
  call("generate", args.range > 0 and { line1 = args.line1, line2 = args.line2 } or nil)
end, { range = true, desc = "bitnet: continue the text up to the cursor (or the range), streamed into the buffer" })

vim.api.nvim_create_user_command("BitnetStop", function() call("stop") end,
  { desc = "bitnet: cancel the running generation" })

vim.api.nvim_create_user_command("BitnetInfo", function() call("info") end,
  { desc = "bitnet: show the model's summary" })

vim.api.nvim_create_user_command("BitnetChat", function() call("chat") end,
  { desc = "bitnet: open the chat buffer, or send its last >>> message" })
