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

/** One Get of the well-behaved client: when it began and ended (performance.now()), and whether it answered. */
interface Call {
  start: number;
  end: number;
  ok: boolean;
}

function stats(calls: Call[]): LatencyStats {
  const errors = calls.filter((c) => !c.ok).length;
  const s = calls
    .filter((c) => c.ok)
    .map((c) => c.end - c.start)
    .sort((a, b) => a - b);
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
  async run(until: number | Promise<unknown>, calls: Call[] = []): Promise<LatencyStats> {
    let done = false;
    const stopAt = typeof until === "number" ? Date.now() + until : Infinity;
    if (typeof until !== "number") void until.finally(() => (done = true));
    const first = calls.length;
    while (!done && !this.closed && Date.now() < stopAt) {
      const start = performance.now();
      let ok = true;
      try {
        await this.client.get({ namespace: this.namespace, key: "k", consistency: Consistency.CONSISTENCY_DATABASE });
        this.answered++;
      } catch {
        ok = false;
      }
      calls.push({ start, end: performance.now(), ok });
    }
    return stats(calls.slice(first));
  }

  /**
   * Starts run() in the background; stop() ends it and resolves with its stats. samples(n) resolves once
   * n more calls have been answered since it was called (or after maxMs, whichever is first): a case
   * measures over a number of calls, which does not depend on how fast the machine is.
   *
   * window() measures the abuse alone: it opens now, and its close() takes the calls that overlapped the
   * window (begun before close, ended after open), once the call in flight at close has ended and the window
   * holds at least minCalls answered calls (it stays open for them, so a short abuse still yields a
   * p99; the calls after it are quiet ones, as few as that takes). Quiet calls around the abuse would
   * otherwise dilute its p99.
   */
  background(): {
    stop(): Promise<LatencyStats>;
    samples(n: number, maxMs?: number): Promise<void>;
    window(): { close(minCalls?: number, maxMs?: number): Promise<LatencyStats> };
  } {
    let end!: () => void;
    const stopped = new Promise<void>((r) => (end = r));
    const calls: Call[] = [];
    const running = this.run(stopped, calls);
    const waitFor = async (ready: () => boolean, maxMs: number) => {
      const giveUpAt = Date.now() + maxMs;
      while (!ready() && !this.closed && Date.now() < giveUpAt) {
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    return {
      stop: () => {
        end();
        return running;
      },
      samples: async (n, maxMs = 30_000) => {
        const target = this.answered + n;
        await waitFor(() => this.answered >= target, maxMs);
      },
      window: () => {
        const openAt = performance.now();
        return {
          close: async (minCalls = 10, maxMs = 30_000) => {
            let closeAt = performance.now();
            const inWindow = () => calls.filter((c) => c.end >= openAt && c.start < closeAt);
            // The call in flight at close (begun before it) belongs to the window: wait for its end.
            await waitFor(() => calls.some((c) => c.start >= closeAt), maxMs);
            if (inWindow().filter((c) => c.ok).length < minCalls) {
              closeAt = Infinity;
              await waitFor(() => inWindow().filter((c) => c.ok).length >= minCalls, maxMs);
            }
            return stats(inWindow());
          },
        };
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
/**
 * The floor for a p99 taken over the abuse's own window (WellBehavedClient.background().window()), with no
 * quiet calls around it to dilute it: a scheduling hiccup of a loaded 2-core machine during a burst costs a
 * few hundred ms there (seen: abuse.catchup's window p99 above 300 ms at load 16); the starvation the bound
 * is for cost seconds (p99 5 s with catch-up reads unbounded, issue 17).
 */
export const ABUSE_WINDOW_FLOOR_MS = 1000;

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
