-- User commands only; nothing starts until require("sdls").setup{} is called.
if vim.g.loaded_sdls then
  return
end
vim.g.loaded_sdls = true

local function command(name, fn, desc)
  vim.api.nvim_create_user_command(name, fn, { desc = desc })
end

command("SdlsStatus", function()
  require("sdls.status").show()
end, "sdls: server, model, device, last latency, tokens per forward")
command("SdlsToggle", function()
  local on = require("sdls").toggle()
  vim.notify("sdls: inline completions " .. (on and "on" or "off"))
end, "sdls: turn inline completions on or off")
command("SdlsRestart", function()
  require("sdls").restart()
end, "sdls: restart the language server")
command("SdlsLog", function()
  vim.cmd.tabnew(vim.lsp.get_log_path())
end, "sdls: open the LSP log")
command("SdlsFix", function()
  require("sdls.fix").apply_at_cursor()
end, "sdls: apply the fix-up the hover offers at the cursor")
command("SdlsNextEdit", function()
  require("sdls.next_edit").request()
end, "sdls: ask for the next edit now")
