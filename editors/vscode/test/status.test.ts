import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compact, fromServerStats, statusText } from '../src/status';

test('status text shows model, device and latency', () => {
  const check = (state: Parameters<typeof statusText>[0], text: string) => assert.equal(statusText(state).text, text);
  check({ running: true, enabled: true, model: 'tiny', device: 'cpu', latencyMs: 84.4 }, '$(sparkle) sdls tiny · cpu · 84 ms');
  check({ running: true, enabled: true, model: 'tiny', device: 'cuda' }, '$(sparkle) sdls tiny · cuda');
  check({ running: true, enabled: true, model: 'default', parameters: 42_300_000, device: 'cpu' }, '$(sparkle) sdls default 42M · cpu');
  check({ running: true, enabled: true }, '$(sparkle) sdls model ? · device ?');
  check({ running: true, enabled: false, model: 'tiny' }, '$(circle-slash) sdls off');
  check({ running: false, enabled: true }, '$(sync~spin) sdls');
  check({ running: true, enabled: true, error: 'no python' }, '$(error) sdls');
  check({ running: true, enabled: true, model: 'sdar', device: 'cpu', infill: 'prefix only (no fill-in-the-middle tokens: the suffix is not seen)' },
    '$(sparkle) sdls sdar · cpu · prefix only');
  check({ running: true, enabled: true, model: 'sdc', device: 'cpu', infill: 'fill-in-the-middle tokens (suffix, then prefix)' }, '$(sparkle) sdls sdc · cpu');
});

test('tooltip says the family and how the model fills in', () => {
  const { tooltip } = statusText({ running: true, enabled: true, model: 'sdar', device: 'cpu', family: 'sdar', attention: 'block_causal',
    infill: 'prefix only (no fill-in-the-middle tokens: the suffix is not seen)' });
  assert.match(tooltip, /family: sdar \(block-causal attention\)/);
  assert.match(tooltip, /infill: prefix only \(no fill-in-the-middle tokens: the suffix is not seen\)/);
});

test('parameter counts are compact', () => {
  const cases: [number, string][] = [[950, '950'], [94_528, '95k'], [1_500, '1.5k'], [42_300_000, '42M'], [1_540_000_000, '1.5B']];
  for (const [n, text] of cases) {
    assert.equal(compact(n), text);
  }
});

test('tooltip carries tokens per forward and the error text', () => {
  assert.match(statusText({ running: true, enabled: true, model: 'm', device: 'cpu', tokensPerForward: 2.5 }).tooltip, /tokens per forward: 2\.50/);
  assert.match(statusText({ running: true, enabled: true, error: 'spawn python3 ENOENT' }).tooltip, /spawn python3 ENOENT/);
});

test('server stats answers: model folder name, device, tokens per forward; junk ignored', () => {
  const check = (answer: unknown, expected: object) => assert.deepEqual(fromServerStats(answer), expected);
  const none = { model: undefined, parameters: undefined, device: undefined, family: undefined, attention: undefined, infill: undefined };
  check({ worker_info: { model: { model: '/home/u/models/tiny-dlm/', device: 'cuda:0', parameters: 94528 } }, latencies: [{ ms: 90, forwards: 8, tokens: 8 }, { ms: 75, forwards: 4, tokens: 12 }] },
    { ...none, model: 'tiny-dlm', parameters: 94528, device: 'cuda:0', tokensPerForward: 3 });
  check({ worker_info: { model: { model: '/m/sdar', family: 'sdar', attention: 'block_causal', infill: 'prefix only (...)' } } },
    { ...none, model: 'sdar', family: 'sdar', attention: 'block_causal', infill: 'prefix only (...)', tokensPerForward: undefined });
  check({ worker_info: null, counters: {} }, { ...none, tokensPerForward: undefined });
  check({ worker_info: { model: { model: 7, device: '', infill: 3 } }, latencies: [{ ms: 75, forwards: 0, tokens: 12 }] },
    { ...none, tokensPerForward: undefined });
  check({ latencies: [{ ms: 50, tokens_per_forward: 2.5 }] }, { ...none, tokensPerForward: 2.5 });
  check(null, { ...none, tokensPerForward: undefined });
});
