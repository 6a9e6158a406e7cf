/**
 * Jittered exponential backoff: before retry n (1-based) wait a uniformly
 * random time in [0, min(maxMs, initialMs * 2^(n-1))] ("full jitter"), which
 * spreads contending clients apart fastest.
 */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export function backoffDelayMs(b: Backoff, n: number): number {
  const cap = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(n - 1, 32));
  return Math.random() * Math.max(cap, 0);
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
