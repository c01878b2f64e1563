import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_LANGUAGES, documentSelector, RESTART_SETTINGS, SERVER_KEYS, serverCommand, serverSettings } from '../src/config';

const sectionOf = (values: Record<string, unknown>) => ({ get: <T>(key: string) => values[key] as T | undefined });

test('server settings keep the server keys and drop client-only ones', () => {
  const got = serverSettings(sectionOf({
    pythonPath: '/venv/bin/python',
    trace: { server: 'verbose' },
    model: { path: '/models/m', device: 'cpu' },
    completion: { maxTokens: 32, threshold: 0.8 },
    languages: ['python'],
  }));
  assert.deepEqual(got, { model: { path: '/models/m', device: 'cpu' }, completion: { maxTokens: 32, threshold: 0.8 }, languages: ['python'] });
});

test('server command runs the configured python, python3 when unset or blank', () => {
  const check = (python: string | undefined, command: string) =>
    assert.deepEqual(serverCommand(python), { command, args: ['-m', 'sdls', 'serve'] });
  check('/venv/bin/python', '/venv/bin/python');
  check(' /venv/bin/python ', '/venv/bin/python');
  check(undefined, 'python3');
  check('', 'python3');
});

test('document selector follows the languages setting', () => {
  const languagesOf = (l: string[] | undefined) => [...new Set(documentSelector(l).map((s) => s.language))];
  assert.deepEqual(languagesOf(['*']), DEFAULT_LANGUAGES);
  assert.deepEqual(languagesOf(undefined), DEFAULT_LANGUAGES);
  assert.deepEqual(languagesOf(['python', 'rust']), ['python', 'rust']);
  assert.deepEqual(documentSelector(['go']), [{ scheme: 'file', language: 'go' }, { scheme: 'untitled', language: 'go' }]);
});

test('every contributed setting is a server key or a known client-only key', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));
  const keys = Object.keys(pkg.contributes.configuration.properties);
  const clientOnly = ['sdls.pythonPath', 'sdls.trace.server'];
  for (const key of keys) {
    assert.ok(key.startsWith('sdls.'), key);
    const top = key.slice('sdls.'.length).split('.')[0];
    assert.ok(SERVER_KEYS.includes(top) || clientOnly.includes(key), `${key} is neither a server nor a client key`);
  }
  // Each contributed command has a handler registered in extension.ts (checked in extension.test.ts).
  assert.deepEqual(pkg.contributes.commands.map((c: { command: string }) => c.command).sort(), [
    'sdls.nextEdit.apply',
    'sdls.nextEdit.dismiss',
    'sdls.nextEdit.request',
    'sdls.restart',
    'sdls.showLog',
    'sdls.toggle',
  ]);
  // Tab and Esc act on a next edit only while one is shown.
  for (const binding of pkg.contributes.keybindings) {
    assert.match(binding.when, /sdls\.nextEditVisible/);
  }
  // Settings that choose what runs, what is read or where code goes: machine scope, restricted in
  // untrusted workspaces, and a change restarts the server (tests/test_editor_settings.py ties the
  // list to the server's STARTUP_ONLY).
  const machine = keys.filter((k) => pkg.contributes.configuration.properties[k].scope === 'machine');
  assert.deepEqual(machine.sort(), RESTART_SETTINGS.filter((k) => k !== 'languages').map((k) => `sdls.${k}`).sort());
  assert.deepEqual(pkg.capabilities.untrustedWorkspaces.restrictedConfigurations.sort(), machine.sort());
  // Activation covers the default selector's languages.
  assert.deepEqual(pkg.activationEvents, DEFAULT_LANGUAGES.map((l) => `onLanguage:${l}`));
});
