-- Pure text logic for ghost text: no buffers, no LSP, so it is easy to test.
local M = {}

--- Split a string on "\n" into lines (always at least one line).
---@param s string
---@return string[]
function M.lines(s)
  return vim.split(s, "\n", { plain = true })
end

--- The next word a "accept word" key takes: leading whitespace (newlines too), then one run of
--- word characters or one run of other non-space characters.
---@param s string
---@return string
function M.next_word(s)
  local space = s:match("^%s*")
  local rest = s:sub(#space + 1)
  local word = rest:match("^[%w_]+") or rest:match("^[^%w_%s]+") or ""
  return space .. word
end

--- The next line a "accept line" key takes: up to (not including) the next newline; when the text
--- starts with a newline, that newline and the line after it.
---@param s string
---@return string
function M.next_line(s)
  if s:sub(1, 1) == "\n" then
    return "\n" .. (s:sub(2):match("^[^\n]*"))
  end
  return s:match("^[^\n]*")
end

--- Turn an LSP snippet into the plain text it inserts (placeholders keep their default text).
---@param snippet string
---@return string
function M.snippet_text(snippet)
  local out = snippet
  -- Innermost placeholders first, so nested ones unwrap one level per pass.
  for _ = 1, 10 do
    local replaced
    out, replaced = out:gsub("%${%d+:([^{}]*)}", "%1")
    if replaced == 0 then
      break
    end
  end
  out = out:gsub("%${%d+}", ""):gsub("%$%d+", ""):gsub("\\([$}\\])", "%1")
  return out
end

--- Where the end of `text` lands when it is inserted at (row, col): 0-based row, byte col.
---@param row integer
---@param col integer
---@param text string
---@return integer, integer
function M.end_of(row, col, text)
  local parts = M.lines(text)
  if #parts == 1 then
    return row, col + #parts[1]
  end
  return row + #parts - 1, #parts[#parts]
end

--- Does the user's edit follow the ghost text? If the line went from `old_line` to `new_line` by typing
--- a prefix of `ghost` at byte `col`, return the rest of the ghost; otherwise nil.
---@param ghost string
---@param old_line string the line when the ghost was drawn
---@param col integer byte column where the ghost starts (0-based)
---@param new_line string the line now
---@param new_col integer the cursor column now (0-based byte)
---@return string|nil
function M.advance(ghost, old_line, col, new_line, new_col)
  local typed_len = new_col - col
  if typed_len <= 0 or #new_line ~= #old_line + typed_len then
    return nil
  end
  local typed = new_line:sub(col + 1, new_col)
  local first = M.lines(ghost)[1]
  if typed ~= first:sub(1, typed_len) then
    return nil
  end
  if new_line:sub(1, col) ~= old_line:sub(1, col) or new_line:sub(new_col + 1) ~= old_line:sub(col + 1) then
    return nil
  end
  return ghost:sub(typed_len + 1)
end

return M
