-- Defaults, merging and validation for require("sdls").setup{...}.
local M = {}

M.defaults = {
  -- Command that starts the server; nil means `{ python, "-m", "sdls", "serve" }`.
  cmd = nil,
  -- Python interpreter that has sdls installed.
  python = "python3",
  filetypes = { "python", "javascript", "typescript", "rust", "go", "lua" },
  -- Files that mark a project root; the first match above the buffer wins, else the cwd.
  root_markers = { "pyproject.toml", "setup.py", "package.json", "Cargo.toml", "go.mod", ".git" },
  -- Sent to the server as initializationOptions and workspace/didChangeConfiguration, with the keys
  -- of the server's settings (sdls/lsp/settings.py) and of the VS Code extension, e.g.
  -- { model = { path = "/models/x", device = "cpu" }, completion = { maxTokens = 32, threshold = 0.9 },
  --   actions = { enabled = true }, hover = { enabled = true }, languages = { "python" } }.
  -- Empty means the server's own defaults; keys not checked here go through and the server warns.
  settings = {},
  ghost = {
    enabled = true,
    -- Wait this long after the last keystroke before asking the server.
    debounce_ms = 75,
    hl_group = "SdlsGhostText",
    -- "auto": Neovim's own vim.lsp.inline_completion on 0.12+, extmarks before that.
    native = "auto",
  },
  -- Next-edit suggestions: after an edit settles in normal mode, the next change as an inline diff.
  next_edit = {
    enabled = true,
    -- Wait this long after the last change (in normal mode, or after leaving insert mode) before asking.
    debounce_ms = 250,
  },
  -- Keys; false turns one off. Insert mode: accept .. prev (ghost text); normal mode: next_edit (jump to
  -- the suggestion, then apply it) and next_edit_dismiss. Each falls back to its usual meaning when
  -- nothing is shown.
  keys = {
    next_edit = "<Tab>",
    next_edit_dismiss = "<Esc>",
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-Down>",
    dismiss = "<C-]>",
    next = "<M-]>",
    prev = "<M-[>",
  },
}

local has_011 = vim.fn.has("nvim-0.11") == 1

-- vim.validate changed shape in 0.11 (positional arguments); the table form is deprecated there.
-- Errors come back as "sdls.setup: <field>: expected <what>, got <value>", without a Lua location.
local function check(name, value, kind, optional, expect)
  local ok, err = pcall(function()
    if has_011 then
      vim.validate(name, value, kind, optional, expect)
    else
      vim.validate({ [name] = { value, kind, optional or expect } })
    end
  end)
  if not ok then
    error("sdls.setup: " .. tostring(err):gsub("^[^:]*:%d+: ", ""), 0)
  end
end

local function is_list_of_strings(v)
  if not vim.islist(v) then
    return false
  end
  for _, item in ipairs(v) do
    if type(item) ~= "string" then
      return false
    end
  end
  return true
end

-- Every option a user may set, including those whose default is nil (so typos fail loudly).
local KNOWN = {
  [""] = { "cmd", "python", "filetypes", "root_markers", "settings", "ghost", "next_edit", "keys" },
  ghost = { "enabled", "debounce_ms", "hl_group", "native" },
  next_edit = { "enabled", "debounce_ms" },
  keys = { "accept", "accept_word", "accept_line", "dismiss", "next", "prev", "next_edit", "next_edit_dismiss" },
}

local function check_known(section, given)
  for key in pairs(given or {}) do
    if not vim.tbl_contains(KNOWN[section], key) then
      error(("sdls.setup: unknown option %s%s"):format(section ~= "" and section .. "." or "", tostring(key)), 0)
    end
  end
end

local function in_range(lo, hi)
  return function(v)
    return type(v) == "number" and v >= lo and v <= hi
  end
end

local function one_of(values)
  return function(v)
    return vim.tbl_contains(values, v)
  end
end

local function is_http_url(v)
  return type(v) == "string" and v:match("^https?://[^/]") ~= nil
end

-- Server settings the client checks before sending (types only; the server owns the meaning).
local SETTINGS = {
  ["model.path"] = { "string" },
  ["model.device"] = { "string" },
  ["model.dtype"] = { one_of({ "auto", "float32", "bfloat16", "float16" }), "auto, float32, bfloat16 or float16" },
  ["model.url"] = { is_http_url, "an http:// or https:// URL of an `sdls service`" },
  ["model.token"] = { "string" },
  ["model.tokenFile"] = { "string" },
  ["model.id"] = { "string" },
  ["completion.enabled"] = { "boolean" },
  ["completion.maxTokens"] = { in_range(1, 4096), "number in 1..4096" },
  ["completion.maxTokensMultiline"] = { in_range(1, 4096), "number in 1..4096" },
  ["completion.threshold"] = { in_range(0, 1), "number in 0..1" },
  ["completion.blockSize"] = { in_range(1, 4096), "number in 1..4096" },
  ["completion.debounceMs"] = { in_range(0, 10000), "milliseconds in 0..10000" },
  ["actions.enabled"] = { "boolean" },
  ["hover.enabled"] = { "boolean" },
  ["nextEdit.enabled"] = { "boolean" },
  ["nextEdit.rules"] = { "boolean" },
  ["nextEdit.model"] = { "boolean" },
  ["nextEdit.rewriteRules"] = { "boolean" },
  ["languages"] = { is_list_of_strings, "list of strings" },
}

--- Merge user options over the defaults and validate every field; errors name the field.
---@param opts table|nil
---@return table
function M.resolve(opts)
  opts = opts or {}
  check("opts", opts, "table")
  check_known("", opts)
  check("settings", opts.settings, "table", true)
  for _, section in ipairs({ "ghost", "next_edit", "keys" }) do
    check(section, opts[section], "table", true)
    check_known(section, opts[section])
  end

  local cfg = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)
  local g = cfg.ghost

  check("cmd", cfg.cmd, is_list_of_strings, true, "list of strings")
  check("python", cfg.python, "string")
  check("filetypes", cfg.filetypes, is_list_of_strings, false, "list of strings")
  check("root_markers", cfg.root_markers, is_list_of_strings, false, "list of strings")
  for path, rule in pairs(SETTINGS) do
    local value = vim.tbl_get(cfg.settings, unpack(vim.split(path, ".", { plain = true })))
    check("settings." .. path, value, rule[1], true, rule[2])
  end
  check("ghost.enabled", g.enabled, "boolean")
  check("ghost.debounce_ms", g.debounce_ms, in_range(0, 10000), false, "milliseconds in 0..10000")
  check("ghost.hl_group", g.hl_group, "string")
  check("next_edit.enabled", cfg.next_edit.enabled, "boolean")
  check("next_edit.debounce_ms", cfg.next_edit.debounce_ms, in_range(0, 10000), false, "milliseconds in 0..10000")
  check("ghost.native", g.native, function(v)
    return v == "auto" or type(v) == "boolean"
  end, false, '"auto" or a boolean')
  for name, key in pairs(cfg.keys) do
    check("keys." .. name, key, function(v)
      return v == false or (type(v) == "string" and v ~= "")
    end, false, 'a key like "<Tab>", or false')
  end

  cfg.cmd = cfg.cmd or { cfg.python, "-m", "sdls", "serve" }
  return cfg
end

-- An empty Lua table is ambiguous; JSON-encoded it becomes [] and the server wants an object.
local function as_objects(value, key)
  if type(value) ~= "table" or key == "languages" then
    return value
  end
  if next(value) == nil then
    return vim.empty_dict()
  end
  local out = {}
  for k, v in pairs(value) do
    out[k] = as_objects(v, k)
  end
  return out
end

--- The settings table as the server reads it (empty tables sent as JSON objects).
---@param cfg table a resolved config
---@return table
function M.server_settings(cfg)
  return as_objects(vim.deepcopy(cfg.settings))
end

return M
