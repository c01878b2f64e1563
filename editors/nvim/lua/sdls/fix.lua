-- :SdlsFix: apply the fix-up the server's hover offers at the cursor. The hover carries it as a
-- markdown command link (command:sdls.applyFix?<url-encoded JSON arguments>), which Neovim's hover
-- window shows but cannot click.
local compat = require("sdls.compat")

local M = {}

M.COMMAND = "sdls.applyFix"
M.last = nil ---@type string|nil what the last :SdlsFix did, for :SdlsStatus and tests

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(hex)
    return string.char(tonumber(hex, 16))
  end))
end

--- The LSP Command in a hover's markdown, or nil when it offers no fix-up.
---@param markdown string
---@return table|nil
function M.command_from_hover(markdown)
  local encoded = markdown:match("%(command:" .. vim.pesc(M.COMMAND) .. "%?([^%s%)]+)")
  if not encoded then
    return nil
  end
  local ok, arguments = pcall(vim.json.decode, percent_decode(encoded))
  if not ok or type(arguments) ~= "table" then
    return nil
  end
  return { title = "sdls fix-up", command = M.COMMAND, arguments = arguments }
end

local function hover_text(result)
  local contents = result and result.contents
  if type(contents) == "table" and contents.value then
    return contents.value
  end
  return type(contents) == "string" and contents or nil
end

--- Ask for the hover at the cursor and apply its fix-up; tells the user when there is none.
function M.apply_at_cursor()
  local buf = vim.api.nvim_get_current_buf()
  local client = require("sdls").clients(buf)[1]
  if not client then
    vim.notify("sdls: no server attached to this buffer", vim.log.levels.WARN)
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local function report(message, level)
    M.last = message
    vim.notify("sdls: " .. message, level)
  end
  M.last = nil
  compat.request(client, "textDocument/hover", params, function(err, result)
    if err then
      report("hover failed: " .. (err.message or vim.inspect(err)), vim.log.levels.WARN)
      return
    end
    local markdown = hover_text(result)
    local command = markdown and M.command_from_hover(markdown)
    if not command then
      report(
        "no fix-up: " .. (markdown and markdown:match("_No fix%-up: (.-)_") or "nothing to fix here"),
        vim.log.levels.INFO
      )
      return
    end
    compat.exec_cmd(client, command, buf)
    M.last = "applied"
  end, buf)
end

return M
