import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromServerStatus, statusText } from '../src/status';

test('status text shows model, device and latency', () => {
  const check = (state: Parameters<typeof statusText>[0], text: string) => assert.equal(statusText(state).text, text);
  check({ running: true, enabled: true, model: 'tiny', device: 'cpu', latencyMs: 84.4 }, '$(sparkle) sdls tiny · cpu · 84 ms');
  check({ running: true, enabled: true, model: 'tiny', device: 'cuda' }, '$(sparkle) sdls tiny · cuda');
  check({ running: true, enabled: true }, '$(sparkle) sdls model ? · device ?');
  check({ running: true, enabled: false, model: 'tiny' }, '$(circle-slash) sdls off');
  check({ running: false, enabled: true }, '$(sync~spin) sdls');
  check({ running: true, enabled: true, error: 'no python' }, '$(error) sdls');
});

test('tooltip carries tokens per forward and the error text', () => {
  assert.match(statusText({ running: true, enabled: true, model: 'm', device: 'cpu', tokensPerForward: 2.5 }).tooltip, /tokens per forward: 2\.50/);
  assert.match(statusText({ running: true, enabled: true, error: 'spawn python3 ENOENT' }).tooltip, /spawn python3 ENOENT/);
});

test('server status answers: known fields taken, junk ignored', () => {
  assert.deepEqual(fromServerStatus({ model: 'm', device: 'cpu', tokens_per_forward: 3 }), { model: 'm', device: 'cpu', tokensPerForward: 3 });
  assert.deepEqual(fromServerStatus({ model: 7, device: '', tokensPerForward: 'x' }), { model: undefined, device: undefined, tokensPerForward: undefined });
  assert.deepEqual(fromServerStatus(null), {});
  assert.deepEqual(fromServerStatus('status'), {});
});
