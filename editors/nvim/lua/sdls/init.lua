-- sdls for Neovim: starts `sdls serve` for the configured filetypes and shows its inline completions
-- as ghost text. Code actions and hover go through Neovim's standard LSP UI (gra, K).
local compat = require("sdls.compat")
local config = require("sdls.config")

local M = {}

M.config = nil ---@type table|nil resolved options, set by setup()
local warned_missing = false

local function uses_native()
  local want = M.config.ghost.native
  if want == "auto" then
    return compat.has_012 and require("sdls.native").available()
  end
  return want and require("sdls.native").available()
end

--- The running sdls clients (all roots).
function M.clients(buf)
  return compat.get_clients({ name = "sdls", bufnr = buf })
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.textDocument = caps.textDocument or {}
  caps.textDocument.inlineCompletion = caps.textDocument.inlineCompletion or { dynamicRegistration = false }
  return caps
end

--- Start (or reuse) the server for `buf` and attach it.
function M.start(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  if not M.config or vim.bo[buf].buftype ~= "" then
    return nil
  end
  local cmd = M.config.cmd
  if vim.fn.executable(cmd[1]) ~= 1 then
    if not warned_missing then
      warned_missing = true
      vim.notify(
        ("sdls: %q is not executable; set `python` or `cmd` in require('sdls').setup{} (see :checkhealth sdls)"):format(
          cmd[1]
        ),
        vim.log.levels.ERROR
      )
    end
    return nil
  end
  local name = vim.api.nvim_buf_get_name(buf)
  local root = vim.fs.root(name ~= "" and name or vim.fn.getcwd(), M.config.root_markers) or vim.fn.getcwd()
  local settings = config.server_settings(M.config)
  return vim.lsp.start({
    name = "sdls",
    cmd = cmd,
    root_dir = root,
    init_options = settings,
    -- Answers workspace/configuration for the "sdls" section and is sent with didChangeConfiguration.
    settings = { sdls = settings },
    capabilities = capabilities(),
  }, { bufnr = buf })
end

local function on_attach(buf, client)
  if not M.config.ghost.enabled or not compat.supports_method(client, "textDocument/inlineCompletion", buf) then
    return
  end
  if uses_native() then
    require("sdls.native").attach(buf, client, M.config)
  else
    require("sdls.inline").attach(buf, client)
  end
end

--- Configure sdls. Safe to call again: it replaces the previous configuration and sends the new
--- settings to running servers.
---@param opts table|nil see lua/sdls/config.lua for every option
function M.setup(opts)
  M.config = config.resolve(opts)
  require("sdls.inline").configure(M.config)
  vim.api.nvim_set_hl(0, M.config.ghost.hl_group, { link = "Comment", default = true })

  local group = vim.api.nvim_create_augroup("sdls", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = M.config.filetypes,
    callback = function(args)
      M.start(args.buf)
    end,
  })
  vim.api.nvim_create_autocmd("LspAttach", {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == "sdls" then
        on_attach(args.buf, client)
      end
    end,
  })

  local settings = config.server_settings(M.config)
  for _, client in ipairs(M.clients()) do
    client.settings = { sdls = settings }
    compat.notify(client, "workspace/didChangeConfiguration", { settings = { sdls = settings } })
  end
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and vim.tbl_contains(M.config.filetypes, vim.bo[buf].filetype) then
      M.start(buf)
    end
  end
end

--- Turn ghost text on or off; returns the new state.
function M.toggle()
  if M.config and uses_native() then
    return require("sdls.native").toggle()
  end
  return require("sdls.inline").toggle()
end

--- Stop the servers and start them again for every buffer they served.
function M.restart()
  local served = {}
  for _, client in ipairs(M.clients()) do
    for buf in pairs(client.attached_buffers or {}) do
      table.insert(served, buf)
    end
    compat.stop(client)
  end
  vim.defer_fn(function()
    for _, buf in ipairs(served) do
      if vim.api.nvim_buf_is_valid(buf) then
        M.start(buf)
      end
    end
  end, 500)
end

return M
