#!/usr/bin/env bash
# The VS Code end-to-end check: install code-server + Node 24 + playwright-core (once, ~750 MB, a few
# minutes), package the extension, then run e2e.mjs. Needs Debian's chromium and, for
# code-server's native modules, libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev.
# Arguments go to e2e.mjs (--model DIR, --screenshot PATH, --python PATH).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/code-server ]; then
  npm ci --no-audit --no-fund
fi
if [ ! -d ../node_modules ]; then
  (cd .. && npm ci --no-audit --no-fund)
fi
(cd .. && npm run --silent package >/dev/null)   # the extension as it is now
PATH="$PWD/node_modules/node/bin:$PATH" exec node e2e.mjs "$@"
