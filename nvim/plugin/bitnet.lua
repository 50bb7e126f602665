-- The bitnet Neovim plugin's commands (the logic is in lua/bitnet_nvim).
-- Load it with `set rtp+=<checkout>/nvim` or a plugin manager pointed at the
-- checkout's nvim/ folder; configure with require("bitnet_nvim").setup{...}.
if vim.g.loaded_bitnet then return end
vim.g.loaded_bitnet = true

local function call_module(module, name, ...)
  local ok, err = pcall(require(module)[name], ...)
  if not ok then vim.api.nvim_err_writeln("bitnet: " .. tostring(err)) end
end

local function call(name, ...) call_module("bitnet_nvim", name, ...) end

vim.api.nvim_create_user_command("BitnetGenerate", function(args)
  call("generate", args.range > 0 and { line1 = args.line1, line2 = args.line2 } or nil)
end, { range = true, desc = "bitnet: continue the text up to the cursor (or the range), streamed into the buffer" })

vim.api.nvim_create_user_command("BitnetStop", function() call("stop") end,
  { desc = "bitnet: cancel the running generation" })

vim.api.nvim_create_user_command("BitnetInfo", function() call("info") end,
  { desc = "bitnet: show the model's summary and the completion statistics" })

vim.api.nvim_create_user_command("BitnetChat", function() call("chat") end,
  { desc = "bitnet: open the chat buffer, or send its last >>> message" })

vim.api.nvim_create_user_command("BitnetComplete", function() call_module("bitnet_nvim.complete", "suggest") end,
  { desc = "bitnet: a suggestion at the cursor now (insert mode: <Cmd>BitnetComplete<CR>)" })

vim.api.nvim_create_user_command("BitnetCompleteToggle", function()
  call_module("bitnet_nvim.complete", "toggle")
  vim.api.nvim_echo({ { "bitnet: completion " .. (require("bitnet_nvim.complete").enabled() and "on" or "off") } }, false, {})
end, { desc = "bitnet: switch suggestions as you type on or off" })
