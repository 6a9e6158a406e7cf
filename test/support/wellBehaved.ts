/**
 * The well-behaved client of the abuse suite: a connection of its own, one
 * Get after another (read from Postgres, so the server and the store are both
 * in the path), each latency kept. A case measures it quiet, then again while
 * the abuse runs, and asserts the loaded p99 stays within a stated multiple of
 * the quiet one (with a floor, so a quiet p99 of one millisecond on a noisy
 * 2-core machine does not make the bound a few milliseconds).
 */
import * as assert from "node:assert/strict";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { Consistency } from "../../clients/typescript/src/gen/agentstate/v1/kv";

export interface LatencyStats {
  n: number;
  p50: number;
  p99: number;
  errors: number;
}

function stats(ms: number[], errors: number): LatencyStats {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { n: s.length, p50: at(0.5), p99: at(0.99), errors };
}

export class WellBehavedClient {
  private readonly client: AgentstateClient;
  /**
   * Set by close(): a run() still going ends. Without it, a case that failed with its background run going
   * left a loop of Gets on a closed client, each rejected at once: a microtask loop that never yielded, so
   * the case's `after` (stopping the server) never ran and mocha hung.
   */
  private closed = false;
  /** Calls answered so far by every run (a case waits on it rather than for a fixed time). */
  private answered = 0;

  constructor(
    address: string,
    private readonly namespace = "wellbehaved",
  ) {
    // Its own connection: grpc-js shares one per target in a process unless told not to.
    this.client = new AgentstateClient(address, {
      deadlineMs: 30_000,
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
    });
  }

  /** Writes the key it reads (once, before measuring). */
  async prepare(): Promise<void> {
    await this.client.compareAndSet({
      namespace: this.namespace,
      key: "k",
      expected: { any: true },
      value: Buffer.from("v"),
    });
  }

  /** Gets one after another until `stop` resolves (or for `ms`); the latencies of those that answered. */
  async run(until: number | Promise<unknown>): Promise<LatencyStats> {
    let done = false;
    const stopAt = typeof until === "number" ? Date.now() + until : Infinity;
    if (typeof until !== "number") void until.finally(() => (done = true));
    const ms: number[] = [];
    let errors = 0;
    while (!done && !this.closed && Date.now() < stopAt) {
      const t0 = performance.now();
      try {
        await this.client.get({ namespace: this.namespace, key: "k", consistency: Consistency.CONSISTENCY_DATABASE });
        ms.push(performance.now() - t0);
        this.answered++;
      } catch {
        errors++;
      }
    }
    return stats(ms, errors);
  }

  /**
   * Starts run() in the background; stop() ends it and resolves with its stats. samples(n) resolves once
   * n more calls have been answered since it was called (or after maxMs, whichever is first): a case
   * measures over a number of calls, which does not depend on how fast the machine is.
   */
  background(): { stop(): Promise<LatencyStats>; samples(n: number, maxMs?: number): Promise<void> } {
    let end!: () => void;
    const stopped = new Promise<void>((r) => (end = r));
    const running = this.run(stopped);
    return {
      stop: () => {
        end();
        return running;
      },
      samples: async (n, maxMs = 30_000) => {
        const target = this.answered + n;
        const giveUpAt = Date.now() + maxMs;
        while (this.answered < target && !this.closed && Date.now() < giveUpAt) {
          await new Promise((r) => setTimeout(r, 10));
        }
      },
    };
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }
}

/**
 * The memory bound of the abuse cases: the server's RSS grows by at most 200 MiB over what it was before the
 * abuse (its baseline differs by Node version: about 190 MiB on Node 24, less on 20), and stays under 512 MiB.
 * Unbounded, 12k silent connections added about 190 MiB and 3000 idle streams 180 MiB (issue 17).
 */
export function assertRssGrowth(before: number, peak: number, boundMiB = 200): void {
  assert.ok(
    peak - before < boundMiB,
    `server RSS grew by ${(peak - before).toFixed(0)} MiB (${before.toFixed(0)} -> ${peak.toFixed(0)})`,
  );
  assert.ok(peak < 512, `server RSS peaked at ${peak.toFixed(0)} MiB`);
}

/**
 * The bound every abuse case states: loaded p99 ≤ max(multiple × quiet p99, floorMs), no errors, some calls.
 * The floor is for a quiet p99 of a few ms on a shared 2-core machine, where one scheduling hiccup during the
 * abuse's burst costs 100+ ms (seen: 139 ms against a quiet 4.7 ms in a full-suite run); starvation, what the
 * bound is for, showed as p99s of seconds before the caps (issue 17).
 */
export function assertKeepsLatency(quiet: LatencyStats, loaded: LatencyStats, multiple = 10, floorMs = 300): void {
  const bound = Math.max(multiple * quiet.p99, floorMs);
  console.log(
    `      well-behaved Get: quiet p99 ${quiet.p99.toFixed(1)} ms (n ${quiet.n}), under abuse p99 ` +
      `${loaded.p99.toFixed(1)} ms (n ${loaded.n}, ${loaded.errors} errors), ratio ${(loaded.p99 / quiet.p99).toFixed(1)}×, bound ${bound.toFixed(0)} ms`,
  );
  assert.equal(loaded.errors, 0, "the well-behaved client's calls all succeeded");
  assert.ok(loaded.n >= 10, `the well-behaved client made calls while the abuse ran (${loaded.n})`);
  assert.ok(
    loaded.p99 <= bound,
    `well-behaved p99 ${loaded.p99.toFixed(1)} ms under abuse, over max(${multiple} × quiet ${quiet.p99.toFixed(1)} ms, ${floorMs} ms)`,
  );
}
