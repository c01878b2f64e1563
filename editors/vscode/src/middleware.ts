// Client-side hooks around inline completion: the on/off toggle and latency measurement.
import type { CancellationToken } from 'vscode';

export interface Toggle {
  enabled: boolean;
}

type Next<A extends unknown[], R> = (...args: A) => R;

/**
 * Middleware for vscode-languageclient's inline completion: skips the request while completions are
 * off, and reports the round trip of every answer that was not cancelled.
 */
export function inlineCompletionMiddleware(toggle: Toggle, onLatency: (ms: number) => void, now: () => number = () => performance.now()) {
  return {
    async provideInlineCompletionItems<D, P, C, R>(document: D, position: P, context: C, token: CancellationToken, next: Next<[D, P, C, CancellationToken], R>): Promise<Awaited<R> | undefined> {
      if (!toggle.enabled) {
        return undefined;
      }
      const started = now();
      const result = await next(document, position, context, token);
      if (!token.isCancellationRequested) {
        onLatency(now() - started);
      }
      return result;
    },
  };
}
