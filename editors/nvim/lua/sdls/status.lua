-- :SdlsStatus: what the server says about itself (model, device, tokens per forward) and what this
-- client measured (last round-trip latency, requests, cancellations, accepts).
local compat = require("sdls.compat")

local M = {}

-- The server answers this request with counters, latencies and the worker's model description.
M.METHOD = "sdls/stats"

--- Ask a running server for its stats (blocking, up to timeout_ms). Returns the answer or nil, err.
function M.server_stats(client, timeout_ms)
  local answer, err = compat.request_sync(client, M.METHOD, vim.empty_dict(), timeout_ms or 5000, 0)
  if not answer then
    return nil, err or "no answer"
  end
  if answer.err then
    return nil, answer.err.message
  end
  return answer.result
end

--- The fields :SdlsStatus shows, from a sdls/stats answer (missing parts stay nil).
function M.summary(stats)
  local model = vim.tbl_get(stats, "worker_info", "model") or {}
  local counters = stats.counters or {}
  -- One record per answered inline request: { ms, forwards, tokens?, tokens_per_forward?, ... }.
  local records = stats.latencies or {}
  local last = records[#records] or {}
  local tpf = last.tokens_per_forward
  if tpf == nil and last.tokens and last.forwards and last.forwards > 0 then
    tpf = last.tokens / last.forwards
  end
  return {
    model = model.model,
    model_loaded = model.model ~= nil,
    device = model.device,
    dtype = model.dtype,
    parameters = model.parameters,
    family = model.family,
    attention = model.attention,
    -- How completions are laid out: fill-in-the-middle tokens, in place, or the prefix alone.
    infill = model.infill,
    context_reuse = model.context_reuse,
    server_latency_ms = last.ms,
    tokens_per_forward = tpf,
    completions = counters.inline_completion,
    cancelled = (counters.cancelled or 0) + (counters.superseded or 0),
    server_rss_mb = stats.rss_mb,
    worker_rss_mb = vim.tbl_get(stats, "worker", "rss_mb"),
  }
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
    table.insert(
      out,
      ("server: %s %s (client %d, root %s)"):format(
        info.name or "?",
        info.version or "",
        client.id,
        client.config.root_dir or "-"
      )
    )
    local stats, err = M.server_stats(client, 5000)
    if stats then
      local sum = M.summary(stats)
      local function add(label, value, unit)
        table.insert(
          out,
          ("  %s: %s%s"):format(label, value == nil and "-" or format_value(value), value ~= nil and unit or "")
        )
      end
      add("model", sum.model_loaded and sum.model or "not loaded yet (loads on the first request)", "")
      add("device", sum.device, sum.dtype and (" (" .. sum.dtype .. ")") or "")
      add("parameters", sum.parameters, "")
      add("family", sum.family, sum.attention and (" (" .. sum.attention:gsub("_", "-") .. ")") or "")
      add("infill", sum.infill, "")
      add("last server latency", sum.server_latency_ms, " ms")
      add("tokens per forward", sum.tokens_per_forward, "")
      add("completions", sum.completions, "")
      add("cancelled", sum.cancelled, "")
      add(
        "memory",
        sum.server_rss_mb,
        " MB server" .. (sum.worker_rss_mb and (", " .. format_value(sum.worker_rss_mb) .. " MB worker") or "")
      )
    else
      table.insert(out, "  server stats: " .. tostring(err))
    end
  end
  local stats = require("sdls.inline").stats
  local latency = stats.last_latency_ms and ("%.0f ms"):format(stats.last_latency_ms) or "-"
  table.insert(
    out,
    ("client: last latency %s, requests %d, cancelled %d, shown %d, accepted %d, completions %s"):format(
      latency,
      stats.requests,
      stats.cancelled,
      stats.shown,
      stats.accepted,
      require("sdls.inline").enabled and "on" or "off"
    )
  )
  if stats.last_error then
    table.insert(out, "last error: " .. stats.last_error)
  end
  return out
end

function M.show()
  vim.api.nvim_echo({ { table.concat(M.lines(), "\n") } }, true, {})
end

return M
