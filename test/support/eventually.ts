import { setTimeout as sleep } from "node:timers/promises";

/**
 * Polls `probe` until it returns a value other than undefined/false, and
 * returns it. Fails after `timeoutMs` (default 10 s) with the last error or
 * `what`. For outcomes that happen "eventually", never for timing assertions.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      lastErr = undefined;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const why = lastErr instanceof Error ? `: last error: ${lastErr.message}` : "";
      throw new Error(`timed out waiting for ${what}${why}`);
    }
    await sleep(opts.intervalMs ?? 50);
  }
}
