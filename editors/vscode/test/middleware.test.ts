import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inlineCompletionMiddleware } from '../src/middleware';

const token = (cancelled: boolean) => ({ isCancellationRequested: cancelled, onCancellationRequested: () => ({ dispose() {} }) });

test('answers pass through and their latency is reported', async () => {
  let clock = 1000;
  const latencies: number[] = [];
  const mw = inlineCompletionMiddleware({ enabled: true }, (ms) => latencies.push(ms), () => clock);
  const answer = { items: [{ insertText: 'x + 1' }] };
  const got = await mw.provideInlineCompletionItems('doc', 'pos', 'ctx', token(false), async () => {
    clock += 42;
    return answer;
  });
  assert.equal(got, answer);
  assert.deepEqual(latencies, [42]);
});

test('cancelled requests report no latency', async () => {
  const latencies: number[] = [];
  const mw = inlineCompletionMiddleware({ enabled: true }, (ms) => latencies.push(ms));
  await mw.provideInlineCompletionItems('doc', 'pos', 'ctx', token(true), async () => null);
  assert.deepEqual(latencies, []);
});

test('when toggled off the server is not asked', async () => {
  const toggle = { enabled: false };
  let asked = 0;
  const mw = inlineCompletionMiddleware(toggle, () => {});
  assert.equal(await mw.provideInlineCompletionItems('d', 'p', 'c', token(false), async () => (asked++, [])), undefined);
  toggle.enabled = true;
  assert.deepEqual(await mw.provideInlineCompletionItems('d', 'p', 'c', token(false), async () => (asked++, [])), []);
  assert.equal(asked, 1);
});
