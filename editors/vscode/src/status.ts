// What the status-bar item says: model, device, the last completion latency, and how the model fills in.

/** What the status bar shows; a field set to undefined in an update is cleared. */
export interface StatusState {
  running: boolean;
  enabled: boolean;
  model?: string | undefined;
  parameters?: number | undefined;
  device?: string | undefined;
  family?: string | undefined;
  attention?: string | undefined;
  /** How completions are laid out: fill-in-the-middle tokens, in place, or the prefix alone. */
  infill?: string | undefined;
  latencyMs?: number | undefined;
  tokensPerForward?: number | undefined;
  error?: string | undefined;
}

/** 94528 -> "95k", 42_000_000 -> "42M", 1.5e9 -> "1.5B". */
export function compact(n: number): string {
  const [scale, unit] = n >= 1e9 ? [1e9, 'B'] : n >= 1e6 ? [1e6, 'M'] : n >= 1e3 ? [1e3, 'k'] : [1, ''];
  const v = n / scale;
  return `${v >= 10 || unit === '' ? Math.round(v) : Math.round(v * 10) / 10}${unit}`;
}

/** Text (with a codicon) and tooltip for the status-bar item. Pure, so it is tested directly. */
export function statusText(s: StatusState): { text: string; tooltip: string } {
  if (s.error) {
    return { text: '$(error) sdls', tooltip: `sdls: ${s.error}\nClick to show the log.` };
  }
  if (!s.running) {
    return { text: '$(sync~spin) sdls', tooltip: 'sdls: starting the server' };
  }
  if (!s.enabled) {
    return { text: '$(circle-slash) sdls off', tooltip: 'sdls: inline completions are off. Click to turn them on.' };
  }
  const model = s.model === undefined ? 'model ?' : s.parameters === undefined ? s.model : `${s.model} ${compact(s.parameters)}`;
  const parts = [model, s.device ?? 'device ?'];
  if (s.latencyMs !== undefined) {
    parts.push(`${Math.round(s.latencyMs)} ms`);
  }
  // A block-causal checkpoint without fill-in-the-middle tokens never sees the text after the cursor.
  if (s.infill?.startsWith('prefix only')) {
    parts.push('prefix only');
  }
  const lines = [`model: ${s.model ?? 'unknown'}${s.parameters !== undefined ? ` (${s.parameters.toLocaleString('en-US')} parameters)` : ''}`,
    `device: ${s.device ?? 'unknown'}`];
  if (s.family !== undefined) {
    lines.push(`family: ${s.family}${s.attention !== undefined ? ` (${s.attention.replace('_', '-')} attention)` : ''}`);
  }
  if (s.infill !== undefined) {
    lines.push(`infill: ${s.infill}`);
  }
  if (s.latencyMs !== undefined) {
    lines.push(`last completion: ${Math.round(s.latencyMs)} ms`);
  }
  if (s.tokensPerForward !== undefined) {
    lines.push(`tokens per forward: ${s.tokensPerForward.toFixed(2)}`);
  }
  lines.push('Click to turn inline completions off.');
  return { text: `$(sparkle) sdls ${parts.join(' · ')}`, tooltip: lines.join('\n') };
}

/** Model, device, family, infill and tokens per forward from the server's `sdls/stats` answer (unknown shapes ignored). */
export function fromServerStats(answer: unknown): Partial<StatusState> {
  const obj = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const stats = obj(answer);
  const model = obj(obj(stats.worker_info).model);
  const path = text(model.model);
  // One record per answered inline request: { ms, forwards, tokens?, tokens_per_forward?, ... }.
  const records = Array.isArray(stats.latencies) ? stats.latencies : [];
  const last = obj(records[records.length - 1]);
  const tokens = num(last.tokens);
  const forwards = num(last.forwards);
  const tokensPerForward = num(last.tokens_per_forward) ?? (tokens !== undefined && forwards ? tokens / forwards : undefined);
  return {
    // The model is named by its folder; the last part is what fits in a status bar.
    model: path?.split(/[\\/]/).filter(Boolean).pop(),
    parameters: num(model.parameters),
    device: text(model.device),
    family: text(model.family),
    attention: text(model.attention),
    infill: text(model.infill),
    tokensPerForward,
  };
}
