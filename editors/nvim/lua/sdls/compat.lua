-- The few Neovim APIs whose shape changed between 0.10 and 0.11.
local M = {}

M.has_011 = vim.fn.has("nvim-0.11") == 1
M.has_012 = vim.fn.has("nvim-0.12") == 1
M.uv = vim.uv or vim.loop

--- client:request on 0.11, client.request on 0.10. Returns ok, request_id.
function M.request(client, method, params, handler, bufnr)
  if M.has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- Blocking request; returns { result, err } or nil, error message.
function M.request_sync(client, method, params, timeout_ms, bufnr)
  if M.has_011 then
    return client:request_sync(method, params, timeout_ms, bufnr)
  end
  return client.request_sync(method, params, timeout_ms, bufnr)
end

function M.cancel_request(client, id)
  if M.has_011 then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

function M.notify(client, method, params)
  if M.has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

--- Run an LSP Command on the server (workspace/executeCommand).
function M.exec_cmd(client, command, bufnr)
  if M.has_011 then
    return client:exec_cmd(command, { bufnr = bufnr })
  end
  return M.request(client, "workspace/executeCommand", command, function() end, bufnr)
end

function M.stop(client)
  if M.has_011 then
    return client:stop()
  end
  return client.stop()
end

function M.supports_method(client, method, bufnr)
  if M.has_011 then
    return client:supports_method(method, bufnr)
  end
  return client.supports_method(method, { bufnr = bufnr })
end

function M.get_clients(filter)
  return (vim.lsp.get_clients or vim.lsp.get_active_clients)(filter)
end

--- Byte column of an LSP position's character in `line` for the client's encoding.
---@param line string
---@param character integer
---@param encoding string "utf-8" | "utf-16" | "utf-32"
---@return integer
function M.byte_col(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col
  if M.has_011 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16")
  end
  return ok and col or #line
end

return M
