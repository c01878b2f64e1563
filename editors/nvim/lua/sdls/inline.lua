-- Ghost text for textDocument/inlineCompletion on Neovim 0.10/0.11, drawn with extmarks:
-- inline virtual text for the first line, virtual lines below for the rest.
-- Flow per keystroke: drop the ghost (unless the user typed along it), cancel the in-flight request,
-- restart the debounce timer; when it fires, ask the server and draw the answer if nothing moved meanwhile.
local compat = require("sdls.compat")
local text = require("sdls.text")

local M = {}

local METHOD = "textDocument/inlineCompletion"
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2
M.ns = vim.api.nvim_create_namespace("sdls_ghost")

local cfg = nil ---@type table resolved config (sdls.config)
local buffers = {} ---@type table<integer, table> per-buffer state
M.enabled = true
M.stats = { requests = 0, cancelled = 0, shown = 0, accepted = 0, last_latency_ms = nil, last_error = nil }

function M.configure(resolved)
  cfg = resolved
end

local function now_ms()
  return compat.uv.hrtime() / 1e6
end

local function in_insert_mode()
  return vim.api.nvim_get_mode().mode:sub(1, 1) == "i"
end

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function line_at(buf, row)
  return vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
end

--- Is ghost text shown in `buf` (default: current buffer)?
function M.visible(buf)
  local st = buffers[buf or vim.api.nvim_get_current_buf()]
  return st ~= nil and st.ghost ~= nil
end

--- True while a keystroke's request is waiting for its debounce or its answer in `buf`.
function M.busy(buf)
  local st = buffers[buf or vim.api.nvim_get_current_buf()]
  return st ~= nil and (st.pending ~= nil or (st.timer ~= nil and st.timer:get_due_in() > 0))
end

--- The ghost text shown in `buf`, or nil.
function M.current(buf)
  local st = buffers[buf or vim.api.nvim_get_current_buf()]
  return st and st.ghost and st.ghost.text
end

local function render(buf, st)
  local g = st.ghost
  local lines = text.lines(g.text)
  -- A completion that replaces closers after the cursor ends with them; they are already on screen.
  if #lines == 1 and g.tail ~= "" and not g.tail:find("\n", 1, true) and vim.endswith(lines[1], g.tail) then
    lines[1] = lines[1]:sub(1, #lines[1] - #g.tail)
  end
  local hl = cfg.ghost.hl_group
  local mark = { id = st.mark_id, hl_mode = "combine", virt_text_pos = "inline" }
  if lines[1] ~= "" then
    mark.virt_text = { { lines[1], hl } }
  end
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      table.insert(mark.virt_lines, { { lines[i], hl } })
    end
  end
  st.mark_id = vim.api.nvim_buf_set_extmark(buf, M.ns, g.row, g.col, mark)
end

local function clear(buf, st)
  if vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  end
  st.ghost, st.mark_id = nil, nil
end

local function cancel(st)
  if st.timer then
    st.timer:stop()
  end
  st.seq = st.seq + 1 -- any answer still on its way is now stale
  if st.pending then
    local client = vim.lsp.get_client_by_id(st.pending.client_id)
    if client then
      compat.cancel_request(client, st.pending.id)
    end
    st.pending = nil
    M.stats.cancelled = M.stats.cancelled + 1
  end
end

--- Turn one InlineCompletionItem into what to draw at the cursor: `text` to insert there and `tail`,
--- the text after the cursor that the item's range replaces. nil when the item does not fit the cursor.
function M.to_ghost(buf, item, row, col, encoding)
  local insert = item.insertText
  if type(insert) == "table" then -- StringValue (snippet)
    insert = text.snippet_text(insert.value or "")
  end
  if type(insert) ~= "string" then
    return nil
  end
  local tail = ""
  if item.range then
    local s, e = item.range.start, item.range["end"]
    local srow, erow = s.line, e.line
    local scol = compat.byte_col(line_at(buf, srow), s.character, encoding)
    local ecol = compat.byte_col(line_at(buf, erow), e.character, encoding)
    local before = srow < row or (srow == row and scol <= col)
    local after = erow > row or (erow == row and ecol >= col)
    if not (before and after) then
      return nil
    end
    local typed = table.concat(vim.api.nvim_buf_get_text(buf, srow, scol, row, col, {}), "\n")
    if insert:sub(1, #typed) ~= typed then
      return nil
    end
    insert = insert:sub(#typed + 1)
    tail = table.concat(vim.api.nvim_buf_get_text(buf, row, col, erow, ecol, {}), "\n")
  end
  if insert == "" and tail == "" then
    return nil
  end
  return { text = insert, tail = tail, command = item.command }
end

local function on_result(buf, st, req, err, result)
  if not vim.api.nvim_buf_is_valid(buf) or st.seq ~= req.seq then
    return -- cancelled or superseded
  end
  st.pending = nil
  M.stats.last_latency_ms = now_ms() - req.started
  if err then
    M.stats.last_error = err.message or vim.inspect(err)
    return
  end
  M.stats.last_error = nil
  local row, col = cursor()
  if vim.b[buf].changedtick ~= req.tick or row ~= req.row or col ~= req.col or not in_insert_mode() then
    return -- the text or cursor moved while the server worked
  end
  local items = result and (result.items or result) or {}
  local ghosts = {}
  for _, item in ipairs(items) do
    table.insert(ghosts, M.to_ghost(buf, item, row, col, req.encoding))
  end
  if #ghosts == 0 then
    return
  end
  st.ghost = {
    row = row,
    col = col,
    line = line_at(buf, row),
    choices = ghosts,
    index = 1,
    text = ghosts[1].text,
    tail = ghosts[1].tail,
    command = ghosts[1].command,
    client_id = req.client_id,
  }
  M.stats.shown = M.stats.shown + 1
  render(buf, st)
end

--- Ask the server for a completion at the cursor now (no debounce).
---@param buf integer|nil
---@param trigger integer|nil LSP InlineCompletionTriggerKind (default: automatic)
function M.request(buf, trigger)
  buf = buf or vim.api.nvim_get_current_buf()
  local st = buffers[buf]
  if not st or not M.enabled or buf ~= vim.api.nvim_get_current_buf() or not in_insert_mode() then
    return
  end
  local client = vim.lsp.get_client_by_id(st.client_id)
  if not client then
    return
  end
  cancel(st)
  local row, col = cursor()
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = trigger or TRIGGER_AUTOMATIC }
  local req = {
    seq = st.seq,
    tick = vim.b[buf].changedtick,
    row = row,
    col = col,
    started = now_ms(),
    client_id = client.id,
    encoding = client.offset_encoding,
  }
  local ok, id = compat.request(client, METHOD, params, function(err, result)
    on_result(buf, st, req, err, result)
  end, buf)
  if ok then
    st.pending = { client_id = client.id, id = id }
    M.stats.requests = M.stats.requests + 1
  end
end

local function schedule(buf, st)
  st.timer = st.timer or compat.uv.new_timer()
  st.timer:stop()
  st.timer:start(
    cfg.ghost.debounce_ms,
    0,
    vim.schedule_wrap(function()
      M.request(buf)
    end)
  )
end

-- The ghost now shows only the rest of one suggestion, at (row, col) of `line`.
local function narrow(g, rest, row, col, line)
  g.text, g.row, g.col, g.line = rest, row, col, line
  g.choices, g.index = { { text = rest, tail = g.tail, command = g.command } }, 1
end

local function on_change(buf)
  local st = buffers[buf]
  if not st or not M.enabled then
    return
  end
  local g = st.ghost
  if g then
    local row, col = cursor()
    local line = line_at(buf, row)
    if row == g.row and col == g.col and line == g.line then
      return -- nothing moved (e.g. CursorMovedI right after the TextChangedI we already handled)
    end
    local rest = row == g.row and text.advance(g.text, g.line, g.col, line, col) or nil
    if rest and rest ~= "" then
      -- The user typed along the suggestion: keep showing the rest, no new request.
      narrow(g, rest, row, col, line)
      render(buf, st)
      return
    end
  end
  clear(buf, st)
  cancel(st)
  schedule(buf, st)
end

-- LSP: an item's command runs after its text is inserted.
local function run_command(g, buf)
  local client = g.command and vim.lsp.get_client_by_id(g.client_id)
  if client then
    compat.exec_cmd(client, g.command, buf)
  end
end

--- Accept the ghost text: how = "all" (default), "word" or "line". Returns false when none is shown.
function M.accept(how)
  local buf = vim.api.nvim_get_current_buf()
  local st = buffers[buf]
  local g = st and st.ghost
  if not g then
    return false
  end
  how = how or "all"
  local chunk = how == "word" and text.next_word(g.text) or how == "line" and text.next_line(g.text) or g.text
  local whole = chunk == g.text
  local erow, ecol = g.row, g.col
  if whole and g.tail ~= "" then
    erow, ecol = text.end_of(g.row, g.col, g.tail)
  end
  vim.api.nvim_buf_set_text(buf, g.row, g.col, erow, ecol, text.lines(chunk))
  local row, col = text.end_of(g.row, g.col, chunk)
  vim.api.nvim_win_set_cursor(0, { row + 1, col })
  M.stats.accepted = M.stats.accepted + 1
  if whole then
    clear(buf, st)
    run_command(g, buf)
    return true
  end
  -- Partial accept: keep the rest on screen at the new cursor, as if the user had typed the chunk.
  narrow(g, g.text:sub(#chunk + 1), row, col, line_at(buf, row))
  render(buf, st)
  return true
end

--- Hide the ghost text and cancel any request; the next keystroke asks again.
function M.dismiss(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local st = buffers[buf]
  if st then
    cancel(st)
    clear(buf, st)
  end
end

--- Show the next (step = 1) or previous (step = -1) item of the last answer.
function M.cycle(step)
  local buf = vim.api.nvim_get_current_buf()
  local st = buffers[buf]
  local g = st and st.ghost
  if not g or #g.choices < 2 then
    return false
  end
  g.index = (g.index - 1 + step) % #g.choices + 1
  local choice = g.choices[g.index]
  g.text, g.tail, g.command = choice.text, choice.tail, choice.command
  render(buf, st)
  return true
end

local function map_keys(buf)
  local actions = {
    accept = "accept()",
    accept_word = "accept('word')",
    accept_line = "accept('line')",
    dismiss = "dismiss()",
    next = "cycle(1)",
    prev = "cycle(-1)",
  }
  for name, call in pairs(actions) do
    local key = cfg.keys[name]
    if key then
      vim.keymap.set("i", key, function()
        if M.visible(buf) then
          return "<Cmd>lua require('sdls.inline')." .. call .. "<CR>"
        end
        return key -- nothing shown: the key keeps its usual meaning
      end, { buffer = buf, expr = true, silent = true, desc = "sdls: " .. name:gsub("_", " ") })
    end
  end
end

--- Start drawing ghost text in `buf` for `client`. Idempotent.
function M.attach(buf, client)
  if buffers[buf] then
    buffers[buf].client_id = client.id
    return
  end
  local st = { client_id = client.id, seq = 0 }
  buffers[buf] = st
  local group = vim.api.nvim_create_augroup("sdls_ghost_" .. buf, { clear = true })
  vim.api.nvim_create_autocmd({ "TextChangedI", "CursorMovedI", "InsertEnter" }, {
    group = group,
    buffer = buf,
    callback = function()
      on_change(buf)
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = buf,
    callback = function()
      M.dismiss(buf)
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
  cancel(st)
  clear(buf, st)
  if st.timer then
    st.timer:close()
  end
  buffers[buf] = nil
  pcall(vim.api.nvim_del_augroup_by_name, "sdls_ghost_" .. buf)
end

--- Turn ghost text on or off everywhere; returns the new state.
function M.toggle(on)
  if on == nil then
    on = not M.enabled
  end
  M.enabled = on
  if not on then
    for buf in pairs(buffers) do
      M.dismiss(buf)
    end
  end
  return on
end

return M
