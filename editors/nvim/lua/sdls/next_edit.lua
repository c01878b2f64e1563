-- Next-edit suggestions (sdls/nextEdit): after an edit settles in normal mode, ask the server for the
-- next change and show it as an inline diff where it would go: the text it replaces struck out
-- (SdlsNextEditDelete), the new text beside it (SdlsNextEditAdd; virtual lines for extra lines).
-- One key jumps to it and, pressed again there, applies it; another dismisses it. A suggestion is
-- bound to the buffer version it was made for: any change drops it. Insert mode belongs to ghost text.
-- A cross-file edit (the server's textDocument names another loaded buffer, at its version: the uses
-- of a renamed name in a file that imports it) is drawn in that buffer and hinted at the cursor; the
-- key goes there first. An edit for a buffer that is not loaded here is not shown.
local compat = require("sdls.compat")

local M = {}

local METHOD, SHOWN = "sdls/nextEdit", "sdls/didShowNextEdit"
local REJECT = "sdls.rejectNextEdit"
M.ns = vim.api.nvim_create_namespace("sdls_next_edit")
M.stats = { requests = 0, shown = 0, stale = 0, not_shown = 0, accepted = 0, dismissed = 0, last_reason = nil }

local cfg = nil ---@type table resolved config (sdls.config)
local buffers = {} ---@type table<integer, table>

function M.configure(resolved)
  cfg = resolved
  local ok, delete = pcall(vim.api.nvim_get_hl, 0, { name = "DiffDelete", link = false })
  delete = ok and delete or {}
  delete.strikethrough, delete.default = true, true
  vim.api.nvim_set_hl(0, "SdlsNextEditDelete", delete)
  vim.api.nvim_set_hl(0, "SdlsNextEditAdd", { link = "DiffAdd", default = true })
  vim.api.nvim_set_hl(0, "SdlsNextEditHint", { link = "Comment", default = true })
end

--- Does the server offer next edits (experimental.sdls.nextEdit in its capabilities)?
function M.supported(client)
  local caps = client.server_capabilities or {}
  return vim.tbl_get(caps, "experimental", "sdls", "nextEdit") ~= nil
end

local function version_of(buf)
  return vim.lsp.util.buf_versions[buf]
end

--- The suggestion for `buf` (default: current buffer), or nil: one shown in it, or one it asked for
--- that is shown in another buffer (then its `buf` field names that buffer).
function M.current(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local st = buffers[buf]
  if not st then
    return nil
  end
  local other = st.elsewhere and buffers[st.elsewhere]
  if not st.edit and other and other.edit and other.edit.origin == buf then
    return other.edit
  end
  return st.edit
end

local clear
function clear(buf, st)
  if vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  end
  local origin = st.edit and st.edit.origin
  st.edit = nil
  if origin and buffers[origin] and buffers[origin].elsewhere == buf then
    clear(origin, buffers[origin]) -- its hint: the edit it pointed to is gone
  end
  local other = st.elsewhere and buffers[st.elsewhere]
  st.elsewhere = nil
  if other and other.edit and other.edit.origin == buf then
    clear(other.edit.buf, other) -- what this buffer asked for goes with its version
  end
end

--- The loaded buffer of a uri, or nil (never creates one).
local function loaded_buf(uri)
  local ok, fname = pcall(vim.uri_to_fname, uri)
  local b = ok and vim.fn.bufnr(fname) or -1
  return b > 0 and vim.api.nvim_buf_is_loaded(b) and b or nil
end

--- Byte positions of the edit's range in the buffer, or nil when it does not fit the buffer.
local function span(buf, edit, encoding)
  local s, e = edit.range.start, edit.range["end"]
  local count = vim.api.nvim_buf_line_count(buf)
  if s.line >= count or e.line >= count then
    return nil
  end
  local function line(row)
    return vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  end
  return s.line,
    compat.byte_col(line(s.line), s.character, encoding),
    e.line,
    compat.byte_col(line(e.line), e.character, encoding)
end

local function render(buf, st)
  local d = st.edit
  local added = vim.split(d.text, "\n", { plain = true })
  if d.erow > d.srow or d.ecol > d.scol then
    vim.api.nvim_buf_set_extmark(
      buf,
      M.ns,
      d.srow,
      d.scol,
      { end_row = d.erow, end_col = d.ecol, hl_group = "SdlsNextEditDelete" }
    )
  end
  local mark = { virt_text_pos = "inline", hl_mode = "combine" }
  if added[1] ~= "" then
    mark.virt_text = { { added[1], "SdlsNextEditAdd" } }
  end
  if #added > 1 then
    mark.virt_lines = {}
    for i = 2, #added do
      table.insert(mark.virt_lines, { { added[i], "SdlsNextEditAdd" } })
    end
  end
  vim.api.nvim_buf_set_extmark(buf, M.ns, d.erow, d.ecol, mark)
  local key = cfg.keys.next_edit or "<Tab>"
  vim.api.nvim_buf_set_extmark(buf, M.ns, d.srow, 0, {
    virt_text = { { ("  sdls: next edit (%s)"):format(key), "SdlsNextEditHint" } },
    virt_text_pos = "eol",
  })
end

local function show(buf, st, client, edit, version)
  if version_of(buf) ~= version or edit.textDocument.version ~= version then
    return false -- the buffer moved on while the server worked
  end
  local srow, scol, erow, ecol = span(buf, edit, client.offset_encoding)
  if not srow then
    return false
  end
  st.edit = {
    buf = buf,
    id = edit.id,
    text = edit.text,
    srow = srow,
    scol = scol,
    erow = erow,
    ecol = ecol,
    version = version,
    command = edit.command,
    source = edit.source,
  }
  render(buf, st)
  M.stats.shown = M.stats.shown + 1
  compat.notify(client, SHOWN, { id = edit.id })
  return true
end

--- A cross-file edit: drawn in `target` (at its own version), hinted at the cursor in `buf`.
local function show_elsewhere(buf, st, target, client, edit)
  local tst = buffers[target]
  clear(target, tst)
  if not show(target, tst, client, edit, version_of(target)) then
    return false
  end
  tst.edit.origin, st.elsewhere = buf, target
  local name = vim.fn.fnamemodify(vim.api.nvim_buf_get_name(target), ":t")
  local row = vim.api.nvim_win_get_cursor(0)[1] - 1
  vim.api.nvim_buf_set_extmark(buf, M.ns, row, 0, {
    virt_text = { { ("  sdls: next edit in %s (%s)"):format(name, cfg.keys.next_edit or "<Tab>"), "SdlsNextEditHint" } },
    virt_text_pos = "eol",
  })
  return true
end

--- Ask for the next edit in `buf` now.
function M.request(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local st = buffers[buf]
  local client = st and vim.lsp.get_client_by_id(st.client_id)
  if not client or not M.enabled then
    return
  end
  st.seq = st.seq + 1
  local seq, version = st.seq, version_of(buf)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.textDocument.version = version
  M.stats.requests = M.stats.requests + 1
  compat.request(client, METHOD, params, function(err, result)
    if st.seq ~= seq or not vim.api.nvim_buf_is_valid(buf) then
      M.stats.stale = M.stats.stale + 1 -- the buffer changed (or a newer request went out) meanwhile
      return
    end
    if err then
      M.stats.last_reason = err.message
      return
    end
    result = result or { edits = {} }
    M.stats.last_reason = result.reason
    clear(buf, st)
    local edit = result.edits and result.edits[1]
    local target = edit and edit.textDocument and loaded_buf(edit.textDocument.uri)
    local shown = false
    if target == buf then
      shown = show(buf, st, client, edit, version)
    elseif target and buffers[target] and version_of(buf) == version then
      shown = show_elsewhere(buf, st, target, client, edit)
    end
    if edit and not shown then
      M.stats.not_shown = M.stats.not_shown + 1 -- for a version that is gone, or a buffer not loaded here
    end
  end, buf)
end

local function schedule(buf, st)
  st.timer = st.timer or compat.uv.new_timer()
  st.timer:stop()
  st.timer:start(
    cfg.next_edit.debounce_ms,
    0,
    vim.schedule_wrap(function()
      if vim.api.nvim_get_current_buf() == buf and vim.api.nvim_get_mode().mode == "n" then
        M.request(buf)
      end
    end)
  )
end

--- Apply the shown suggestion (it must still match the buffer's version) and tell the server.
function M.accept(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local st = buffers[buf]
  local d = st and st.edit
  if not d or version_of(buf) ~= d.version then
    return false
  end
  local origin = d.origin and buffers[d.origin]
  if origin and origin.elsewhere == buf then
    clear(d.origin, origin) -- its hint; the edit itself goes next
  end
  local client = vim.lsp.get_client_by_id(st.client_id)
  clear(buf, st)
  vim.api.nvim_buf_set_text(buf, d.srow, d.scol, d.erow, d.ecol, vim.split(d.text, "\n", { plain = true }))
  M.stats.accepted = M.stats.accepted + 1
  if client and d.command then
    compat.exec_cmd(client, d.command, buf)
  end
  return true
end

--- Jump to the suggestion, or apply it when the cursor is already on its first line.
function M.jump_or_accept()
  local buf = vim.api.nvim_get_current_buf()
  local d = M.current(buf)
  if not d then
    return false
  end
  if d.buf ~= buf then -- a cross-file edit: go to its buffer (its window, if one shows it)
    vim.cmd("normal! m'")
    local win = vim.fn.bufwinid(d.buf)
    if win ~= -1 then
      vim.api.nvim_set_current_win(win)
    else
      vim.api.nvim_win_set_buf(0, d.buf)
    end
    vim.api.nvim_win_set_cursor(0, { d.srow + 1, d.scol })
    return true
  end
  local row = vim.api.nvim_win_get_cursor(0)[1] - 1
  if row ~= d.srow then
    vim.cmd("normal! m'")
    vim.api.nvim_win_set_cursor(0, { d.srow + 1, d.scol })
    return true
  end
  return M.accept(buf)
end

--- Hide the suggestion and tell the server the user dismissed it.
function M.dismiss(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local st = buffers[buf]
  local d = M.current(buf)
  if not d then
    return false
  end
  clear(buf, st)
  if buffers[d.buf] and buffers[d.buf].edit == d then
    clear(d.buf, buffers[d.buf])
  end
  M.stats.dismissed = M.stats.dismissed + 1
  local client = vim.lsp.get_client_by_id(st.client_id)
  if client then
    compat.exec_cmd(client, { title = "dismiss", command = REJECT, arguments = { d.id } }, buf)
  end
  return true
end

local function map_keys(buf)
  for name, fn in pairs({ next_edit = "jump_or_accept", next_edit_dismiss = "dismiss" }) do
    local key = cfg.keys[name]
    if key then
      vim.keymap.set("n", key, function()
        if M.current(buf) then
          return "<Cmd>lua require('sdls.next_edit')." .. fn .. "()<CR>"
        end
        return key -- nothing shown: the key keeps its usual meaning
      end, { buffer = buf, expr = true, silent = true, desc = "sdls: " .. name:gsub("_", " ") })
    end
  end
end

M.enabled = true

--- Start next-edit suggestions in `buf` for `client`. Idempotent.
function M.attach(buf, client)
  if buffers[buf] then
    buffers[buf].client_id = client.id
    return
  end
  local st = { client_id = client.id, seq = 0 }
  buffers[buf] = st
  local group = vim.api.nvim_create_augroup("sdls_next_edit_" .. buf, { clear = true })
  vim.api.nvim_create_autocmd({ "TextChanged", "TextChangedI" }, {
    group = group,
    buffer = buf,
    callback = function()
      st.seq = st.seq + 1 -- an answer on its way is for a version that is gone
      clear(buf, st)
      schedule(buf, st)
    end,
  })
  vim.api.nvim_create_autocmd("InsertLeave", {
    group = group,
    buffer = buf,
    callback = function()
      schedule(buf, st)
    end,
  })
  vim.api.nvim_create_autocmd({ "BufWipeout", "BufUnload" }, {
    group = group,
    buffer = buf,
    callback = function()
      M.detach(buf)
    end,
  })
  map_keys(buf)
end

function M.detach(buf)
  local st = buffers[buf]
  if not st then
    return
  end
  clear(buf, st)
  if st.timer then
    st.timer:close()
  end
  buffers[buf] = nil
  pcall(vim.api.nvim_del_augroup_by_name, "sdls_next_edit_" .. buf)
end

return M
