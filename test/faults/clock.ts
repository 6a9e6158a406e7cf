import { setTimeout as sleep } from "node:timers/promises";

/**
 * One monotonic clock for every history of a run: nanoseconds since the run
 * started (process.hrtime), safe as JS numbers for about 104 days.
 */
const t0 = process.hrtime.bigint();

export function nowNs(): number {
  return Number(process.hrtime.bigint() - t0);
}

/** Exponential backoff with jitter after consecutive failures, as a well-behaved client does. */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly baseMs = 25,
    private readonly maxMs = 1000,
  ) {}

  reset(): void {
    this.failures = 0;
  }

  /** Waits after one more failure; `random` in [0, 1). */
  async fail(random: number): Promise<void> {
    this.failures++;
    const ms = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.failures - 1, 20));
    await sleep(ms / 2 + (random * ms) / 2);
  }
}
