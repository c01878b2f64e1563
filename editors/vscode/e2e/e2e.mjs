// End to end in a real VS Code workbench: code-server (VS Code in a browser) with the packaged
// sdls.vsix installed, driven with Playwright in Debian's chromium. Types in a Python file, waits for
// the ghost text the real `sdls serve` sends, screenshots it, accepts it with Tab and checks the text.
//
// Usage: node e2e.mjs [--model DIR] [--screenshot PATH] [--python PATH] [--no-action]
//                     [--file PATH --line N --typed TEXT] [--next-edit]   (node 24: code-server needs it)
// --next-edit: in rename.py rename the parameter `width` to `size` on line 1, wait for the next-edit
// code lens, press Tab (jump) and Tab (apply), and check the one line it changed reads as the lens said.
// --file opens that text as add.py and types TEXT at the end of its 0-based line N (default: the body
// of a second function, typing "return ").
// Exit code 0 = passed; 77 = skipped (a prerequisite is missing, reason printed); other = failed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
const extensionDir = resolve(here, '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    screenshot: { type: 'string', default: join(extensionDir, 'screenshots', 'ghost-text.png') },
    python: { type: 'string', default: join(repo, '.venv', 'bin', 'python') },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    timeout: { type: 'string', default: '180' },
    'no-action': { type: 'boolean', default: false },
    'next-edit': { type: 'boolean', default: false },
    file: { type: 'string' },
    line: { type: 'string', default: '5' },
    typed: { type: 'string', default: 'return ' },
  },
});
const TIMEOUT_MS = Number(args.timeout) * 1000;

function skip(reason) {
  console.log(`SKIP: ${reason}`);
  process.exit(77);
}

function log(message) {
  console.log(`[e2e ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

async function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
    srv.on('error', fail);
  });
}

async function waitForHttp(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer in ${ms / 1000} s`);
}

function modelDir() {
  if (args.model) return resolve(args.model);
  const probe = spawnSync(args.python, ['-c', 'from sdls_model.checkpoint import default_model_dir; print(default_model_dir())'], { encoding: 'utf8' });
  const dir = probe.stdout.trim();
  return dir && (existsSync(join(dir, 'config.json')) || existsSync(join(dir, 'model.safetensors'))) ? dir : null;
}

const codeServer = join(here, 'node_modules', '.bin', 'code-server');
const vsix = join(extensionDir, 'sdls.vsix');
if (!existsSync(codeServer)) skip('code-server is not installed (cd editors/vscode/e2e && npm ci)');
if (!existsSync(args.chromium)) skip(`no chromium at ${args.chromium} (apt-get install chromium)`);
if (!existsSync(args.python)) skip(`no Python with sdls at ${args.python}`);
if (!existsSync(vsix)) skip('editors/vscode/sdls.vsix is missing (run editors/vscode/ci.sh or npm run package)');
const model = modelDir();
if (!model) skip('no model: the shipped model (model/sdls_model/default) is missing and --model was not given');

const { chromium } = await import('playwright-core');
const work = mkdtempSync(join(tmpdir(), 'sdls-vscode-e2e-'));
const userData = join(work, 'user-data');
const extensions = join(work, 'extensions');
const workspace = join(work, 'workspace');
mkdirSync(join(workspace, '.vscode'), { recursive: true });
mkdirSync(join(userData, 'User'), { recursive: true });
const quiet = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'update.mode': 'none',
  'editor.inlineSuggest.enabled': true,
  'editor.quickSuggestions': { other: false, comments: false, strings: false },
  'editor.minimap.enabled': false,
  'editor.fontSize': 16,
  'window.commandCenter': false,
  'chat.disableAIFeatures': true,
};
// What runs and what is read are machine-scoped (a workspace's settings cannot choose them): user settings.
const machine = {
  'sdls.pythonPath': args.python,
  'sdls.model.path': model,
  'sdls.worker.socket': join(work, 'worker.sock'),
};
writeFileSync(join(userData, 'User', 'settings.json'), JSON.stringify({ ...quiet, ...machine }, null, 2));
writeFileSync(join(workspace, '.vscode', 'settings.json'), JSON.stringify({
  'sdls.worker.idleExitS': 20,
}, null, 2));
// A second function after a first one: a trained model has a pattern to follow.
const LINE = Number(args.line);
writeFileSync(join(workspace, 'add.py'), args.file ? readFileSync(args.file, 'utf8')
  : 'def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    \n');
writeFileSync(join(workspace, 'stub.py'), 'def add(a, b):\n    pass\n');
writeFileSync(join(workspace, 'rename.py'), 'def area(width, height):\n    w = width * 2\n    return w * height\n');

const common = ['--user-data-dir', userData, '--extensions-dir', extensions];
log(`installing ${vsix}`);
const install = spawnSync(codeServer, [...common, '--install-extension', vsix], { encoding: 'utf8' });
if (install.status !== 0) {
  console.error(install.stdout, install.stderr);
  throw new Error('code-server --install-extension failed');
}

const port = await freePort();
log(`starting code-server on 127.0.0.1:${port}`);
const server = spawn(codeServer, [...common, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none',
  '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override', workspace],
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SDLS_E2E: '1' } });
let serverLog = '';
server.stdout.on('data', (d) => (serverLog += d));
server.stderr.on('data', (d) => (serverLog += d));

let browser;
let page;
let failed = false;
try {
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, 60_000);
  browser = await chromium.launch({
    executablePath: args.chromium,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1100, height: 560 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
  log('workbench loaded');

  // Quick Open (files) and the command palette, as a user would.
  const pick = async (keys, text) => {
    await page.keyboard.press(keys);
    await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input', { timeout: 20_000 });
    await page.keyboard.type(text);
    await page.locator(`.quick-input-list .monaco-list-row:has-text("${text}")`).first().waitFor({ timeout: 20_000 });
    await page.keyboard.press('Enter');
  };
  const runCommand = (title) => pick('Control+Shift+P', title);
  // Ctrl+S, then the file's text once it differs from what was on disk.
  const saveAndRead = async (file) => {
    const before = readFileSync(file, 'utf8');
    await page.keyboard.press('Control+S');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const now = readFileSync(file, 'utf8');
      if (now !== before) return now;
      await page.waitForTimeout(100);
    }
    throw new Error(`saving ${file} changed nothing on disk`);
  };
  await pick('Control+P', 'add.py');
  const editor = page.locator('.editor-instance .monaco-editor').first();
  await editor.waitFor({ timeout: 30_000 });
  // The item reads "sdls <model> · <device>" once the server has started (a spinner before).
  await page.waitForSelector('.statusbar-item:has-text("sdls"):has-text("·")', { timeout: 60_000 });
  log('editor open, server started');

  // The line to type on (Go to Line, as a user would in a long file), at its end: ask by typing.
  await editor.locator('.view-line').first().click();
  await page.keyboard.press('Control+G');
  await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input', { timeout: 20_000 });
  await page.keyboard.type(String(LINE + 1));
  await page.keyboard.press('Enter');
  await page.keyboard.press('End');
  // Monaco draws the first line of a suggestion inline (.ghost-text-decoration) and the rest as a
  // view zone (.ghost-text); both only exist while a suggestion is shown.
  const ghost = page.locator('.ghost-text-decoration, .ghost-text');
  const ghostText = () => page.evaluate(() => {
    const inline = [...document.querySelectorAll('.ghost-text-decoration')].map((e) => e.textContent).join('');
    const below = [...document.querySelectorAll('.ghost-text .view-line')].map((e) => e.textContent);
    return [inline, ...below].join('\n').replace(/\u00a0/g, ' ');
  });
  let shown = '';
  let typed = '';
  const half = Math.max(1, Math.floor(args.typed.length / 2));
  for (const piece of [args.typed.slice(0, half), args.typed.slice(half)].filter((p) => p)) {
    await page.keyboard.type(piece, { delay: 60 });
    typed += piece;
    try {
      await ghost.first().waitFor({ timeout: TIMEOUT_MS / 3 });
      shown = await ghostText();
      if (shown.trim()) break;
    } catch {
      log(`no ghost text after typing "${piece}" yet`);
    }
  }
  if (!shown.trim()) throw new Error('no ghost text appeared');
  log(`ghost text: ${JSON.stringify(shown)}`);
  await page.waitForTimeout(300);
  mkdirSync(dirname(args.screenshot), { recursive: true });
  await page.screenshot({ path: args.screenshot });
  log(`screenshot: ${args.screenshot}`);
  const status = (await page.locator('.statusbar-item:has-text("sdls")').first().innerText()).trim();
  log(`status bar: ${JSON.stringify(status)}`);

  await page.keyboard.press('Tab');
  await page.waitForTimeout(300);
  if ((await ghostText()) === shown) {
    throw new Error('the same ghost text is still shown after Tab');
  }
  // Save, and read what the editor wrote: the typed text followed by the suggestion's first line.
  const saved = await saveAndRead(join(workspace, 'add.py'));
  const savedLine = saved.split('\n')[LINE];
  const indent = savedLine.slice(0, savedLine.length - savedLine.trimStart().length);
  const expected = `${indent}${typed}${shown.split('\n')[0]}`.trimEnd();
  if (!savedLine.startsWith(expected)) {
    throw new Error(`after Tab line ${LINE + 1} should start with ${JSON.stringify(expected)}; it reads ${JSON.stringify(savedLine)}`);
  }
  log(`accepted: line ${LINE + 1} now reads ${JSON.stringify(savedLine)}`);
  if (!args.file) log(`accepted: the file now reads ${JSON.stringify(saved)}`);

  // The extension's commands, from the command palette.
  await runCommand('sdls: Toggle Inline Completions');
  await page.waitForSelector('.statusbar-item:has-text("sdls off")', { timeout: 20_000 });
  await runCommand('sdls: Toggle Inline Completions');
  await page.waitForSelector('.statusbar-item:has-text("sdls"):has-text("·")', { timeout: 20_000 });
  log('toggle: status went to "sdls off" and back');
  await runCommand('sdls: Restart Server');
  await page.waitForSelector('.statusbar-item:has-text("sdls"):has-text("·")', { timeout: 60_000 });
  log('restart: the server is back');

  // A code action: "Fill in stub" (refactor.rewrite) from the lightbulb's menu, resolved by the server
  // when chosen. (--no-action skips it: a weak model may propose no change.)
  if (!args['no-action']) {
    await pick('Control+P', 'stub.py');
    await page.waitForSelector('.editor-instance .monaco-editor .view-line:has-text("pass")', { timeout: 30_000 });
    const stubEditor = page.locator('.editor-instance .monaco-editor').first();
    await stubEditor.locator('.view-line:has-text("pass")').click();
    await page.keyboard.press('End');
    const lightbulb = page.locator('.lightBulbWidget .codicon-light-bulb, .lightBulbWidget').first();
    await lightbulb.waitFor({ timeout: 30_000 });
    await lightbulb.click();
    const action = page.locator('.action-widget .monaco-list-row:has-text("Fill in stub")').first();
    await action.waitFor({ timeout: 30_000 });
    await action.click();
    await page.waitForFunction(() => {
      const lines = document.querySelector('.editor-instance .monaco-editor .view-lines');
      return lines && !lines.textContent.includes('pass');
    }, null, { timeout: TIMEOUT_MS });
    const filled = await saveAndRead(join(workspace, 'stub.py'));
    if (filled.includes('pass')) {
      throw new Error(`the code action's edit did not reach the file:\n${filled}`);
    }
    log(`code action applied: the file now reads ${JSON.stringify(filled)}`);
  }
  if (args['next-edit']) {
    await pick('Control+P', 'rename.py');
    await page.waitForSelector('.editor-instance .monaco-editor .view-line:has-text("def area")', { timeout: 30_000 });
    const renameEditor = page.locator('.editor-instance .monaco-editor').first();
    await renameEditor.locator('.view-line:has-text("def area")').click();
    await page.keyboard.press('Control+G');
    await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input', { timeout: 20_000 });
    await page.keyboard.type('1:10');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Control+Shift+ArrowRight');
    await page.keyboard.type('size', { delay: 60 });
    const lens = page.locator('.codelens-decoration:has-text("sdls: next edit")').first();
    await lens.waitFor({ timeout: TIMEOUT_MS });
    const lensText = (await lens.innerText()).trim();
    log(`next edit lens: ${JSON.stringify(lensText)}`);
    if ((await ghost.count()) > 0) {
      // Ghost text at the cursor (a model's completion of "size") takes Tab first, as in VS Code;
      // Esc hides it and leaves the next edit (the next Esc would dismiss that).
      log(`ghost text at the cursor too: ${JSON.stringify(await ghostText())}; Esc hides it`);
      await page.keyboard.press('Escape');
      await page.waitForFunction(() => !document.querySelector('.ghost-text-decoration, .ghost-text'), null, { timeout: 10_000 });
      await lens.waitFor({ timeout: 5_000 });
    }
    await page.keyboard.press('Tab'); // jump to it
    await page.waitForTimeout(300);
    await page.keyboard.press('Tab'); // apply it
    const renamed = await saveAndRead(join(workspace, 'rename.py'));
    // The lines the next edit changed (the scripted server's is line 2; a model's may be another)
    // hold the text the lens proposed.
    const typed = 'def area(size, height):\n    w = width * 2\n    return w * height\n'.split('\n');
    const changed = renamed.split('\n').filter((line, i) => line !== typed[i]);
    const proposed = JSON.parse(lensText.match(/→ (".*?") \(Tab/)?.[1] ?? '""');
    if (changed.length === 0 || !changed.some((line) => line.includes(proposed))) {
      throw new Error(`after Tab, Tab a changed line should hold ${JSON.stringify(proposed)}; the file reads ${JSON.stringify(renamed)}`);
    }
    log(`next edit applied: the file now reads ${JSON.stringify(renamed)}`);
  }
  console.log('PASS');
} catch (err) {
  failed = true;
  console.error(`FAIL: ${err instanceof Error ? err.stack : err}`);
  if (page) {
    const shot = args.screenshot.replace(/\.png$/, '') + '.failure.png';
    await page.screenshot({ path: shot }).catch(() => {});
    console.error(`screenshot of the failure: ${shot}`);
  }
  console.error(`code-server log (tail):\n${serverLog.slice(-3000)}`);
} finally {
  await browser?.close();
  server.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true, maxRetries: 3 });
}
process.exit(failed ? 1 : 0);
