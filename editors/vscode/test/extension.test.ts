import './setup';
import { beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import * as vscode from './mock/vscode';
import { clients, FakeLanguageClient } from './mock/languageclient';
import * as extension from '../src/extension';

const contexts: { subscriptions: { dispose(): unknown }[] }[] = [];

function newContext() {
  const context = { subscriptions: [] as { dispose(): unknown }[] };
  contexts.push(context);
  return context as any;
}

beforeEach(() => {
  // What VS Code does on deactivation: dispose what the previous activation registered.
  for (const context of contexts.splice(0)) {
    context.subscriptions.forEach((d) => d.dispose());
  }
  vscode.reset();
  clients.length = 0;
  FakeLanguageClient.failStart = false;
});

test('activate starts `<python> -m sdls serve` with the server settings as initializationOptions', async () => {
  vscode.settings.set('pythonPath', '/venv/bin/python');
  vscode.settings.set('model.device', 'cpu');
  vscode.settings.set('completion.maxTokens', 16);
  vscode.settings.set('languages', ['python']);
  await extension.activate(newContext());
  assert.equal(clients.length, 1);
  const c = clients[0];
  assert.ok(c.started);
  assert.deepEqual(c.serverOptions, { command: '/venv/bin/python', args: ['-m', 'sdls', 'serve'] });
  assert.deepEqual(c.clientOptions.initializationOptions, { model: { device: 'cpu' }, completion: { maxTokens: 16 }, languages: ['python'] });
  assert.deepEqual(c.clientOptions.documentSelector.map((s: any) => s.language), ['python', 'python']);
  assert.deepEqual(c.clientOptions.markdown, { isTrusted: { enabledCommands: ['sdls.applyFix'] } });
  assert.deepEqual([...vscode.recorded.commands.keys()].sort(), [
    'sdls.nextEdit.accepted',
    'sdls.nextEdit.apply',
    'sdls.nextEdit.dismiss',
    'sdls.nextEdit.request',
    'sdls.restart',
    'sdls.showLog',
    'sdls.toggle',
  ]);
  assert.equal(vscode.providers.codeLens.length, 1);
  assert.equal(vscode.providers.inlineCompletion.length, 1);
  await extension.deactivate();
  assert.ok(c.stopped);
});

test('status bar shows the model and device the server reports, then the measured latency', async () => {
  await extension.activate(newContext());
  const item = vscode.recorded.statusItems[0];
  assert.equal(item.text, '$(sparkle) sdls tiny-dlm · cpu');
  assert.equal(item.visible, true);
  assert.deepEqual(clients[0].requests, [{ method: 'sdls/stats', params: {} }]);
  const mw = clients[0].clientOptions.middleware;
  await mw.provideInlineCompletionItems('d', 'p', 'c', { isCancellationRequested: false }, async () => new Promise((r) => setTimeout(() => r([]), 20)));
  assert.match(item.text as string, /^\$\(sparkle\) sdls tiny-dlm · cpu · \d+ ms$/);
  await extension.deactivate();
});

test('toggle turns completions off without asking the server, and back on', async () => {
  await extension.activate(newContext());
  const mw = clients[0].clientOptions.middleware;
  let asked = 0;
  const next = async () => (asked++, []);
  await vscode.commands.executeCommand('sdls.toggle');
  assert.equal(vscode.recorded.statusItems[0].text, '$(circle-slash) sdls off');
  assert.equal(await mw.provideInlineCompletionItems('d', 'p', 'c', { isCancellationRequested: false }, next), undefined);
  await vscode.commands.executeCommand('sdls.toggle');
  await mw.provideInlineCompletionItems('d', 'p', 'c', { isCancellationRequested: false }, next);
  assert.equal(asked, 1);
  await extension.deactivate();
});

test('restart stops the running client and starts a new one', async () => {
  await extension.activate(newContext());
  await vscode.commands.executeCommand('sdls.restart');
  assert.equal(clients.length, 2);
  assert.ok(clients[0].stopped && clients[1].started && !clients[1].stopped);
  await extension.deactivate();
});

test('settings changes reach the server; a new python restarts it', async () => {
  await extension.activate(newContext());
  vscode.settings.set('completion.threshold', 0.7);
  await vscode.configurationChanged.fire({ affectsConfiguration: (s: string) => s === 'sdls' || s === 'sdls.completion' });
  assert.deepEqual(clients[0].notifications, [{ method: 'workspace/didChangeConfiguration', params: { settings: { completion: { threshold: 0.7 } } } }]);
  assert.equal(clients.length, 1);
  vscode.settings.set('pythonPath', '/other/python');
  await vscode.configurationChanged.fire({ affectsConfiguration: (s: string) => s === 'sdls' || s === 'sdls.pythonPath' });
  assert.equal(clients.length, 2);
  assert.equal(clients[1].serverOptions.command, '/other/python');
  await extension.deactivate();
});

test('a new model path, service or worker socket restarts the server: it takes them only at start-up', async () => {
  await extension.activate(newContext());
  for (const key of ['model.path', 'model.url', 'model.token', 'model.tokenFile', 'model.id', 'worker.socket']) {
    const before = clients.length;
    vscode.settings.set(key, key === 'model.id' ? 'other' : '/elsewhere');
    await vscode.configurationChanged.fire({ affectsConfiguration: (s: string) => s === 'sdls' || s === `sdls.${key}` || `sdls.${key}`.startsWith(`${s}.`) });
    assert.equal(clients.length, before + 1, key);
    assert.deepEqual(clients[before - 1].notifications, [], key); // never sent as a change
  }
  await extension.deactivate();
});

test('a server that fails to start shows an error item that opens the log', async () => {
  FakeLanguageClient.failStart = true;
  await extension.activate(newContext());
  const item = vscode.recorded.statusItems[0];
  assert.equal(item.text, '$(error) sdls');
  assert.match(item.tooltip as string, /spawn python3 ENOENT/);
  assert.equal(item.command, 'sdls.showLog');
  await vscode.commands.executeCommand('sdls.showLog');
  assert.equal(vscode.recorded.outputShown, 1);
});

test('the model shows up once the server has loaded it (after the first completion)', async () => {
  const loaded = FakeLanguageClient.statsAnswer;
  FakeLanguageClient.statsAnswer = { worker_info: null, counters: {} };
  try {
    await extension.activate(newContext());
    const item = vscode.recorded.statusItems[0];
    assert.equal(item.text, '$(sparkle) sdls model ? · device ?');
    FakeLanguageClient.statsAnswer = loaded;
    const mw = clients[0].clientOptions.middleware;
    await mw.provideInlineCompletionItems('d', 'p', 'c', { isCancellationRequested: false }, async () => []);
    await new Promise((r) => setImmediate(r));
    assert.match(item.text as string, /^\$\(sparkle\) sdls tiny-dlm · cpu · \d+ ms$/);
  } finally {
    FakeLanguageClient.statsAnswer = loaded;
    await extension.deactivate();
  }
});
