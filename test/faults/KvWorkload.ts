/**
 * Concurrent Get / CompareAndSet / Delete on a few keys through random
 * replicas, recorded as a history for the Porcupine checker
 * (test/faults/checker; the JSON format is documented in its history.go).
 *
 * Every written value is unique (`c<worker>-<seq>`), so a read names the
 * write it observed. Expectations mix the version the worker last saw (often
 * stale under contention), absent, any, and off-by-one versions, so applied
 * and refused writes, deletes and re-creations all occur. A failed Get is
 * dropped (a read has no effect); a failed write is kept as indeterminate.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { status } from "@grpc/grpc-js";
import type { Item } from "../../clients/typescript/src/gen/agentstate/v1/common";
import { Consistency, type Expected } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import { Backoff, nowNs } from "./clock";
import type { FaultCluster } from "./FaultCluster";
import { callError, CodeCounter, EXPECTED_INDETERMINATE } from "./grpcOutcome";
import type { Rng } from "./Rng";

export interface KvHistoryOp {
  client: number;
  key: string;
  kind: "get" | "cas" | "delete";
  expect?: "version" | "absent" | "any";
  expectVersion?: number;
  value?: string;
  call: number;
  return: number;
  /**
   * ok: answered. indeterminate: failed in flight, may or may not have taken
   * effect. committed: failed in flight, but found in kv_history afterwards
   * (see resolveIndeterminate): it took effect, with the output recorded, at
   * an unknown time after its call.
   */
  outcome: "ok" | "indeterminate" | "committed";
  applied?: boolean;
  found?: boolean;
  version?: number;
  outValue?: string;
  error?: string;
  /** Which replica served it (not used by the checker; for reading a failure). */
  replica: number;
  /** The write's idempotency key, when it carried one (unique per write). */
  idem?: string;
}

export interface KvWorkloadOptions {
  namespace: string;
  keys: string[];
  workers: number;
  deadlineMs: number;
}

/** A write's reply as the store recorded it for its idempotency key. */
export interface StoredOutcome {
  applied: boolean;
  found: boolean;
  version: number;
  outValue: string;
}

const text = (item: Item | undefined) => Buffer.from(item?.value ?? new Uint8Array()).toString("utf8");

export class KvWorkload {
  readonly ops: KvHistoryOp[] = [];
  readonly codes = new CodeCounter(EXPECTED_INDETERMINATE);
  failedGets = 0;
  /** Failed writes that never left the client (no connection): no effect, not in the history. */
  notSent = 0;

  constructor(
    private readonly cluster: FaultCluster,
    private readonly opts: KvWorkloadOptions,
  ) {}

  /** Calls completed (answered or failed), whatever becomes of them in the history. */
  completed = 0;

  /** Runs the workers until `stop()` returns true. */
  async run(rng: Rng, stop: () => boolean): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.workers }, (_, id) => this.worker(id, rng.fork(), stop)));
  }

  private async worker(id: number, rng: Rng, stop: () => boolean): Promise<void> {
    const { namespace, keys, deadlineMs } = this.opts;
    const seen = new Map<string, number>(); // key -> last version this worker saw (0: absent)
    let seq = 0;
    const backoff = new Backoff();
    while (!stop()) {
      const replica = this.cluster.pick(rng);
      if (!replica) {
        await sleep(20);
        continue;
      }
      const key = rng.pick(keys);
      const r = rng.next();
      const last = seen.get(key) ?? 0;
      const expected = (): { pb: Expected; op: Pick<KvHistoryOp, "expect" | "expectVersion"> } => {
        const x = rng.next();
        if (x < 0.55 && last > 0) return { pb: { version: last }, op: { expect: "version", expectVersion: last } };
        if (x < 0.7) return { pb: { absent: true }, op: { expect: "absent" } };
        if (x < 0.85) return { pb: { any: true }, op: { expect: "any" } };
        const v = Math.max(1, last + rng.int(-1, 1));
        return { pb: { version: v }, op: { expect: "version", expectVersion: v } };
      };
      const call = nowNs();
      const base = { client: id, key, call, replica: replica.index };
      this.completed++; // counted up front: the call completes below, one way or another
      const opts = { deadlineMs };
      try {
        if (r < 0.45) {
          const consistency =
            rng.next() < 0.15 ? Consistency.CONSISTENCY_DATABASE : Consistency.CONSISTENCY_UNSPECIFIED;
          const res = await replica.client.get({ namespace, key, consistency }, opts);
          const ret = nowNs();
          this.codes.ok();
          this.ops.push({
            ...base,
            kind: "get",
            return: ret,
            outcome: "ok",
            found: res.found,
            version: res.found ? res.item?.version : 0,
            outValue: res.found ? text(res.item) : "",
          });
          seen.set(key, res.found ? (res.item?.version ?? 0) : 0);
          backoff.reset();
        } else if (r < 0.85) {
          const e = expected();
          const value = `c${id}-${++seq}`;
          const idem = rng.chance(0.5) ? `i${id}-${seq}` : undefined;
          const pending: KvHistoryOp = {
            ...base,
            kind: "cas",
            ...e.op,
            value,
            idem,
            return: 0,
            outcome: "indeterminate",
          };
          try {
            const res = await replica.client.compareAndSet(
              { namespace, key, expected: e.pb, value: Buffer.from(value), idempotencyKey: idem },
              opts,
            );
            const ret = nowNs();
            this.codes.ok();
            this.ops.push({
              ...pending,
              return: ret,
              outcome: "ok",
              applied: res.applied,
              found: res.found || res.applied,
              version: res.item?.version ?? 0,
              outValue: res.item ? text(res.item) : "",
            });
            seen.set(key, res.item?.version ?? 0);
            backoff.reset();
          } catch (err) {
            this.recordFailedWrite(pending, err);
            await backoff.fail(rng.next());
          }
        } else {
          const e = expected();
          const idem = `i${id}-${++seq}`;
          const pending: KvHistoryOp = { ...base, kind: "delete", ...e.op, idem, return: 0, outcome: "indeterminate" };
          try {
            const res = await replica.client.delete({ namespace, key, expected: e.pb, idempotencyKey: idem }, opts);
            const ret = nowNs();
            this.codes.ok();
            this.ops.push({
              ...pending,
              return: ret,
              outcome: "ok",
              applied: res.applied,
              found: res.found,
              version: res.item?.version ?? 0,
              outValue: res.item ? text(res.item) : "",
            });
            seen.set(key, res.applied ? 0 : (res.item?.version ?? 0));
            backoff.reset();
          } catch (err) {
            this.recordFailedWrite(pending, err);
            await backoff.fail(rng.next());
          }
        }
      } catch (err) {
        // A failed Get: no effect, nothing to record in the history.
        this.failedGets++;
        this.codes.add(callError(err));
        await backoff.fail(rng.next());
      }
    }
  }

  private recordFailedWrite(pending: KvHistoryOp, err: unknown): void {
    const e = callError(err);
    this.codes.add(e);
    if (e.code === status.INVALID_ARGUMENT || e.code === status.FAILED_PRECONDITION) {
      // Refused before anything was written: a definite no-op, but never expected here.
      return;
    }
    if (e.code === status.UNAVAILABLE && /No connection established/.test(e.text)) {
      // grpc-js failed the call before opening a stream (no transport): the server never saw it.
      this.notSent++;
      return;
    }
    this.ops.push({ ...pending, return: nowNs(), outcome: "indeterminate", error: e.text });
  }

  /**
   * Settles indeterminate writes with the truth in Postgres, read once no
   * replica runs (so nothing can still commit):
   *  - a write with an idempotency key committed iff its idempotency_keys row
   *    exists (claimed and recorded in the write's own transaction), and that
   *    row holds the outcome it would have answered;
   *  - a CompareAndSet without one committed iff its (unique) value is in
   *    kv_history, at the version recorded there.
   * Committed writes become "committed" (known output, unknown return time);
   * the others had no effect and are dropped. (etcd's robustness tests settle
   * failed requests from the store's history in the same way.)
   */
  resolveIndeterminate(
    written: Map<string, { key: string; version: number }>,
    outcomes: Map<string, StoredOutcome>,
  ): { committed: number; dropped: number; unresolved: number } {
    let committed = 0;
    let dropped = 0;
    let unresolved = 0;
    const kept: KvHistoryOp[] = [];
    for (const op of this.ops) {
      if (op.outcome !== "indeterminate") {
        kept.push(op);
        continue;
      }
      if (op.idem !== undefined) {
        const o = outcomes.get(op.idem);
        if (o === undefined) {
          dropped++;
          continue;
        }
        committed++;
        kept.push({ ...op, outcome: "committed", ...o });
        continue;
      }
      if (op.kind === "cas") {
        const w = written.get(op.value ?? "");
        if (w === undefined) {
          dropped++;
          continue;
        }
        if (w.key !== op.key) throw new Error(`value ${op.value} was written to ${w.key}, sent for ${op.key}`);
        committed++;
        kept.push({ ...op, outcome: "committed", applied: true, found: true, version: w.version, outValue: op.value });
        continue;
      }
      unresolved++;
      kept.push(op);
    }
    this.ops.splice(0, this.ops.length, ...kept);
    return { committed, dropped, unresolved };
  }

  /** The history as the checker reads it. */
  historyJson(): string {
    return JSON.stringify({ ops: this.ops });
  }
}
