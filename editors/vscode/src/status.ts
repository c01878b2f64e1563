// What the status-bar item says: model, device and the last completion latency.

export interface StatusState {
  running: boolean;
  enabled: boolean;
  model?: string;
  device?: string;
  latencyMs?: number;
  tokensPerForward?: number;
  error?: string;
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
  const parts = [s.model ?? 'model ?', s.device ?? 'device ?'];
  if (s.latencyMs !== undefined) {
    parts.push(`${Math.round(s.latencyMs)} ms`);
  }
  const lines = [`model: ${s.model ?? 'unknown'}`, `device: ${s.device ?? 'unknown'}`];
  if (s.latencyMs !== undefined) {
    lines.push(`last completion: ${Math.round(s.latencyMs)} ms`);
  }
  if (s.tokensPerForward !== undefined) {
    lines.push(`tokens per forward: ${s.tokensPerForward.toFixed(2)}`);
  }
  lines.push('Click to turn inline completions off.');
  return { text: `$(sparkle) sdls ${parts.join(' · ')}`, tooltip: lines.join('\n') };
}

/** Pull model / device / tokens-per-forward out of the server's status answer (unknown shapes ignored). */
export function fromServerStatus(answer: unknown): Partial<StatusState> {
  if (!answer || typeof answer !== 'object') {
    return {};
  }
  const a = answer as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  return {
    model: text(a.model),
    device: text(a.device),
    tokensPerForward: num(a.tokens_per_forward ?? a.tokensPerForward),
  };
}
