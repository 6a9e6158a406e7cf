/**
 * Fenced writes under Redlock locks with short TTLs. Each worker takes a lock
 * (through a random replica), then makes a few unconditional CompareAndSet
 * writes carrying `fence {lock, token}` to the key that lock guards, sometimes
 * sleeping past the lock's TTL first (a paused holder), then unlocks. Every
 * written value names its token (`tok=<token>;w=<worker>;s=<seq>`), so the
 * history in Postgres (kv_history) tells which token every landed write
 * carried; checkFencing() then proves no stale token ever landed.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { status } from "@grpc/grpc-js";
import { Backoff, nowNs } from "./clock";
import type { FaultCluster } from "./FaultCluster";
import { callError, CodeCounter, EXPECTED_INDETERMINATE } from "./grpcOutcome";
import type { Rng } from "./Rng";

/** A protobuf Duration of `ms` milliseconds (ms >= 0). */
function durationFromMs(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.trunc(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1_000_000) };
}

export interface LockAttempt {
  worker: number;
  name: string;
  replica: number;
  invoke: number;
  complete: number;
  acquired: boolean;
  token?: number;
  error?: string;
}

export interface FencedWrite {
  worker: number;
  name: string;
  key: string;
  token: number;
  value: string;
  replica: number;
  invoke: number;
  complete: number;
  /** applied: acknowledged; stale: refused FENCE_STALE; indeterminate: failed in flight; other: any other answer. */
  outcome: "applied" | "stale" | "indeterminate" | "other";
  error?: string;
}

export interface LockWorkloadOptions {
  namespace: string;
  /** Lock names; lock i guards key `fenced-<name>`. */
  names: string[];
  workers: number;
  ttlMs: [number, number];
  deadlineMs: number;
}

export function fencedKey(name: string): string {
  return `fenced-${name}`;
}

export class LockWorkload {
  readonly attempts: LockAttempt[] = [];
  readonly writes: FencedWrite[] = [];
  /** FAILED_PRECONDITION is expected: FENCE_STALE for late writes (any other reason is flagged by the check). */
  readonly codes = new CodeCounter(new Set([...EXPECTED_INDETERMINATE, status.FAILED_PRECONDITION]));

  constructor(
    private readonly cluster: FaultCluster,
    private readonly opts: LockWorkloadOptions,
  ) {}

  async run(rng: Rng, stop: () => boolean): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.workers }, (_, id) => this.worker(id, rng.fork(), stop)));
  }

  private async worker(id: number, rng: Rng, stop: () => boolean): Promise<void> {
    const { namespace, deadlineMs } = this.opts;
    let seq = 0;
    const backoff = new Backoff();
    while (!stop()) {
      const replica = this.cluster.pick(rng);
      if (!replica) {
        await sleep(20);
        continue;
      }
      const name = rng.pick(this.opts.names);
      const ttlMs = rng.int(this.opts.ttlMs[0], this.opts.ttlMs[1]);
      const attempt: LockAttempt = {
        worker: id,
        name,
        replica: replica.index,
        invoke: nowNs(),
        complete: 0,
        acquired: false,
      };
      let lockId = "";
      try {
        const res = await replica.client.lock(
          { namespace, name, ttl: durationFromMs(ttlMs), wait: durationFromMs(rng.int(0, 1500)), owner: `w${id}` },
          { deadlineMs: deadlineMs + 1500 },
        );
        attempt.complete = nowNs();
        attempt.acquired = res.acquired;
        if (res.acquired) {
          attempt.token = res.fencingToken;
          lockId = res.lockId;
        }
        this.codes.ok();
      } catch (err) {
        attempt.complete = nowNs();
        const e = callError(err);
        attempt.error = e.text;
        this.codes.add(e);
      }
      this.attempts.push(attempt);
      if (attempt.error !== undefined) {
        await backoff.fail(rng.next());
        continue;
      }
      backoff.reset();
      if (attempt.token === undefined) {
        await sleep(rng.int(5, 50));
        continue;
      }
      const token = attempt.token;
      const writes = rng.int(1, 3);
      for (let w = 0; w < writes && !stop(); w++) {
        // Mostly prompt; sometimes a pause past the TTL, as a stalled holder would.
        if (rng.chance(0.25)) await sleep(rng.int(ttlMs / 2, ttlMs * 2));
        const target = this.cluster.pick(rng);
        if (!target) break;
        const key = fencedKey(name);
        const value = `tok=${token};w=${id};s=${++seq}`;
        const write: FencedWrite = {
          worker: id,
          name,
          key,
          token,
          value,
          replica: target.index,
          invoke: nowNs(),
          complete: 0,
          outcome: "other",
        };
        try {
          const res = await target.client.compareAndSet(
            { namespace, key, expected: { any: true }, value: Buffer.from(value), fence: { lockName: name, token } },
            { deadlineMs },
          );
          write.complete = nowNs();
          write.outcome = res.applied ? "applied" : "other";
          this.codes.ok();
        } catch (err) {
          write.complete = nowNs();
          const e = callError(err);
          write.error = e.text;
          this.codes.add(e);
          if (e.code === status.FAILED_PRECONDITION && e.reason === "FENCE_STALE") write.outcome = "stale";
          else if (EXPECTED_INDETERMINATE.has(e.code)) write.outcome = "indeterminate";
        }
        this.writes.push(write);
        if (write.outcome === "stale") break;
      }
      const unlockVia = this.cluster.pick(rng);
      if (unlockVia && rng.chance(0.8)) {
        await unlockVia.client.unlock({ namespace, name, lockId }, { deadlineMs }).catch(() => undefined);
      }
    }
  }
}
