-- Ghost text through Neovim's own vim.lsp.inline_completion (0.12+). Neovim draws, debounces and
-- cancels; this file only wires the configured keys. Accept word / line have no native equivalent,
-- so those keys keep their usual meaning here.
-- Written against the 0.12 API (enable, is_enabled, get returning true when it accepted, select);
-- development builds before that shape fall back to extmarks. Not tested here: no 0.12 binary on PyPI.
local M = {}

function M.available()
  local ic = vim.lsp.inline_completion
  return ic ~= nil
    and type(ic.enable) == "function"
    and type(ic.is_enabled) == "function"
    and type(ic.get) == "function"
    and type(ic.select) == "function"
end

function M.attach(buf, _client, cfg)
  local ic = vim.lsp.inline_completion
  ic.enable(true, { bufnr = buf })
  local keys = cfg.keys
  if keys.accept then
    vim.keymap.set("i", keys.accept, function()
      if not ic.get() then
        return keys.accept
      end
    end, { buffer = buf, expr = true, silent = true, desc = "sdls: accept" })
  end
  for name, count in pairs({ next = 1, prev = -1 }) do
    if keys[name] then
      vim.keymap.set("i", keys[name], function()
        ic.select({ count = count })
      end, { buffer = buf, silent = true, desc = "sdls: " .. name })
    end
  end
end

function M.toggle(on)
  local ic = vim.lsp.inline_completion
  if on == nil then
    on = not ic.is_enabled()
  end
  ic.enable(on)
  return on
end

return M
