#!/usr/bin/env bash
# CI for the VS Code extension: clean install from package-lock.json, compile, unit tests, .vsix.
# Called by .ci/run; needs node >= 20 and the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npx tsc -p .
node --test out/test/*.test.js
rm -f sdls.vsix
npx vsce package --allow-missing-repository --skip-license -o sdls.vsix
# The package must carry the compiled extension and its runtime dependency.
npx vsce ls | grep -qx 'out/src/extension.js'
python3 -c "import sys, zipfile; sys.exit('extension/node_modules/vscode-languageclient/lib/node/main.js' not in zipfile.ZipFile('sdls.vsix').namelist())"
echo "editors/vscode: built, tested and packaged sdls.vsix"
