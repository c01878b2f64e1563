-- :SdlsStatus: what the server says about itself (model, device, tokens per forward) and what this
-- client measured (last round-trip latency, requests, cancellations, accepts).
local compat = require("sdls.compat")

local M = {}

M.COMMAND = "sdls.status"

local function advertises(client, command)
  local provider = client.server_capabilities and client.server_capabilities.executeCommandProvider
  return provider ~= nil and vim.tbl_contains(provider.commands or {}, command)
end

--- Ask a running server for its status (blocking, up to timeout_ms). Returns a table or nil, err.
function M.server_status(client, timeout_ms)
  if not advertises(client, M.COMMAND) then
    return nil, "the server does not offer " .. M.COMMAND
  end
  local request_sync = compat.has_011 and function(...)
    return client:request_sync(...)
  end or client.request_sync
  local answer, err = request_sync("workspace/executeCommand", { command = M.COMMAND, arguments = {} }, timeout_ms or 5000, 0)
  if not answer then
    return nil, err or "no answer"
  end
  if answer.err then
    return nil, answer.err.message
  end
  return answer.result
end

local function format_value(v)
  if type(v) == "number" and v ~= math.floor(v) then
    return ("%.2f"):format(v)
  end
  return type(v) == "table" and vim.inspect(v, { newline = " ", indent = "" }) or tostring(v)
end

--- The lines :SdlsStatus prints.
function M.lines()
  local out = {}
  local clients = require("sdls").clients()
  if #clients == 0 then
    table.insert(out, "sdls: no server running (open a file of a configured filetype; see :checkhealth sdls)")
  end
  for _, client in ipairs(clients) do
    local info = client.server_info or {}
    table.insert(out, ("server: %s %s (client %d, root %s)"):format(info.name or "?", info.version or "", client.id, client.config.root_dir or "-"))
    local status, err = M.server_status(client, 5000)
    if status then
      local keys = vim.tbl_keys(status)
      table.sort(keys)
      for _, key in ipairs(keys) do
        table.insert(out, ("  %s: %s"):format(key, format_value(status[key])))
      end
    else
      table.insert(out, "  server status: " .. tostring(err))
    end
  end
  local stats = require("sdls.inline").stats
  local latency = stats.last_latency_ms and ("%.0f ms"):format(stats.last_latency_ms) or "-"
  table.insert(out, ("client: last latency %s, requests %d, cancelled %d, shown %d, accepted %d, completions %s"):format(
    latency, stats.requests, stats.cancelled, stats.shown, stats.accepted, require("sdls.inline").enabled and "on" or "off"))
  if stats.last_error then
    table.insert(out, "last error: " .. stats.last_error)
  end
  return out
end

function M.show()
  vim.api.nvim_echo({ { table.concat(M.lines(), "\n") } }, true, {})
end

return M
