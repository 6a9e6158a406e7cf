/**
 * Guarantee 1 for checkpoints: a server killed with SIGKILL in the middle of
 * concurrent PutCheckpoint / PutWrites calls loses nothing it acknowledged,
 * and leaves what it had not acknowledged wholly present or wholly absent (a
 * pending write stored in chunks is never left in part). Real Postgres, real
 * server processes over real gRPC; the value limit is small so that many
 * channel values and pending writes are chunked.
 */
import * as assert from "node:assert/strict";
import type { ServiceError } from "@grpc/grpc-js";
import type { Checkpoint } from "../../clients/typescript/src/gen/agentstate/v1/checkpoint";
import { CheckpointClient } from "../support/checkpointClient";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

const VALUE_LIMIT = 4096;
const WORKERS = 8;
const ACKS_BEFORE_KILL = 240;
const NS = "ck-durable";

/** Deterministic bytes: `n` of them, different for every seed. */
function pattern(n: number, seed: string): Buffer {
  let h = 2166136261;
  for (const ch of seed) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    h = Math.imul(h ^ i, 16777619) >>> 0;
    b[i] = h & 0xff;
  }
  return b;
}

interface WriteSpec {
  index: number;
  channel: string;
  data: Buffer;
}

/** One call a worker made: what it sent, and whether the server acknowledged it. */
type Op =
  | { kind: "put"; thread: string; id: string; values: Record<string, [string, Buffer]>; acked: boolean }
  | { kind: "writes"; thread: string; id: string; taskId: string; writes: WriteSpec[]; acked: boolean };

const idOf = (step: number) => `ckpt-${String(step).padStart(8, "0")}`;

describe("CheckpointService durability: kill -9 in the middle of PutWrites and PutCheckpoint", function () {
  this.timeout(180_000);
  let cluster: Cluster;
  const clients: CheckpointClient[] = [];

  before(async () => {
    cluster = await startCluster({ name: "ckdurable", env: { AGENTSTATE_MAX_VALUE_BYTES: String(VALUE_LIMIT) } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it(`every acknowledged checkpoint and pending write survives a SIGKILL with calls in flight (${WORKERS} workers); the rest is whole or absent`, async () => {
    const server = cluster.servers[0]!;
    const cp = new CheckpointClient(server.address);
    clients.push(cp);
    const ops: Op[] = [];
    const failures: ServiceError[] = [];
    let acks = 0;
    let inFlight = 0;
    let inFlightAtKill = -1;
    let killed: Promise<unknown> | undefined;

    const call = async (op: Op, fn: () => Promise<unknown>): Promise<boolean> => {
      ops.push(op);
      inFlight++;
      try {
        await fn();
        op.acked = true;
        acks++;
      } catch (e) {
        failures.push(e as ServiceError);
        return false; // the server is gone: this worker stops
      } finally {
        inFlight--;
      }
      if (acks >= ACKS_BEFORE_KILL && killed === undefined && op.kind === "writes") {
        inFlightAtKill = inFlight;
        killed = server.kill("SIGKILL");
      }
      return true;
    };

    const worker = async (w: number) => {
      const thread = `t${w}`;
      let parent = "";
      let bigVersion = "";
      for (let step = 1; ; step++) {
        const id = idOf(step);
        // A new value of "n" every step; of "big" (chunked) every third.
        const values: Record<string, [string, Buffer]> = { n: [String(step), Buffer.from(`${thread}:${step}`)] };
        if (step % 3 === 1) {
          bigVersion = String(step);
          values.big = [bigVersion, pattern(VALUE_LIMIT * 3 + step, `${thread}/big/${step}`)];
        }
        const put: Op = { kind: "put", thread, id, values, acked: false };
        const putOk = await call(put, () =>
          cp.put({
            namespace: NS,
            threadId: thread,
            checkpointId: id,
            parentCheckpointId: parent,
            document: { type: "json", data: Buffer.from(JSON.stringify({ id })) },
            metadataJson: Buffer.from(JSON.stringify({ step })),
            channelVersions: { n: String(step), big: bigVersion },
            values: Object.entries(values).map(([channel, [version, data]]) => ({
              channel,
              version,
              value: { type: "bytes", data },
            })),
            requireParentIsHead: true,
          }),
        );
        if (!putOk) return;
        parent = id;
        // Three tasks' writes on it: two with a chunked value (one with a special, negative,
        // index too), one with small values only (the plain statement).
        for (const task of ["a", "b", "c"]) {
          const taskId = `task-${task}`;
          const writes: WriteSpec[] = [{ index: 0, channel: "small", data: Buffer.from(`${thread}:${step}:${task}`) }];
          if (task !== "c") {
            writes.push({
              index: 1,
              channel: "large",
              data: pattern(VALUE_LIMIT * 2 + step, `${thread}/${step}/${task}`),
            });
          }
          if (task === "b") {
            writes.push({ index: -1, channel: "__error__", data: pattern(VALUE_LIMIT + 1, `${thread}/${step}/err`) });
          }
          const op: Op = { kind: "writes", thread, id, taskId, writes, acked: false };
          const ok = await call(op, () =>
            cp.putWrites({
              namespace: NS,
              threadId: thread,
              checkpointId: id,
              taskId,
              writes: writes.map((x) => ({
                index: x.index,
                channel: x.channel,
                value: { type: "bytes", data: x.data },
              })),
            }),
          );
          if (!ok) return;
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    const exit = await killed;
    assert.deepEqual(exit, { code: null, signal: "SIGKILL" });
    assert.ok(inFlightAtKill > 0, "calls were in flight when the server was killed");
    assert.equal(failures.length, WORKERS, "every worker saw its in-flight call fail");
    assert.ok(
      ops.some((o) => o.kind === "writes" && !o.acked),
      "at least one PutWrites was in flight when the server was killed",
    );

    // A new server on the same database reads everything back.
    const { server: next } = await cluster.addReplica();
    const after = new CheckpointClient(next.address);
    clients.push(after);
    const read = new Map<string, Checkpoint | undefined>();
    const checkpoint = async (thread: string, id: string) => {
      const key = `${thread}/${id}`;
      if (!read.has(key)) {
        const r = await after.get({ namespace: NS, threadId: thread, checkpointId: id });
        read.set(key, r.found ? r.checkpoint : undefined);
      }
      return read.get(key);
    };
    const valueOf = (c: Checkpoint, channel: string) => {
      const v = c.values.find((x) => x.channel === channel);
      return v === undefined ? undefined : Buffer.from(v.value!.data);
    };
    const writesOf = (c: Checkpoint | undefined, taskId: string) =>
      (c?.pendingWrites ?? [])
        .filter((w) => w.taskId === taskId)
        .map((w) => [w.index, w.channel, Buffer.from(w.value!.data)]);

    let checkedPuts = 0;
    let checkedWrites = 0;
    for (const op of ops) {
      const c = await checkpoint(op.thread, op.id);
      if (op.kind === "put") {
        if (!op.acked && c === undefined) continue; // not acknowledged, absent: allowed
        assert.ok(c, `acknowledged checkpoint ${op.thread}/${op.id} is there`);
        for (const [channel, [, data]] of Object.entries(op.values)) {
          assert.ok(valueOf(c, channel)?.equals(data), `${op.thread}/${op.id}: channel ${channel} is whole`);
        }
        checkedPuts++;
      } else {
        const got = writesOf(c, op.taskId);
        const sent = [...op.writes].sort((x, y) => x.index - y.index).map((x) => [x.index, x.channel, x.data]);
        if (!op.acked && got.length === 0) continue; // not acknowledged, absent: allowed
        assert.deepEqual(got, sent, `${op.thread}/${op.id} ${op.taskId}: every write, each value whole`);
        checkedWrites++;
      }
    }
    assert.ok(checkedPuts > 0 && checkedWrites >= ACKS_BEFORE_KILL / 2);

    // No pending write is stored in part: every chunked write's chunks are 0..n-1, adding up to its value.
    const sizes = new Map<string, number>();
    for (const op of ops) {
      if (op.kind === "writes")
        for (const x of op.writes) sizes.set(`${op.thread}/${op.id}/${op.taskId}/${x.index}`, x.data.length);
    }
    const chunked = await pgQuery<{ key: string; n: string; top: number; bytes: string }>(
      cluster.databaseUrl,
      `SELECT w.thread_id || '/' || w.checkpoint_id || '/' || w.task_id || '/' || w.idx AS key,
              count(x.chunk) AS n, max(x.chunk) AS top, coalesce(sum(length(x.data)), 0) AS bytes
       FROM checkpoint_writes w
       LEFT JOIN checkpoint_write_chunks x ON x.namespace = w.namespace AND x.thread_id = w.thread_id
         AND x.checkpoint_ns = w.checkpoint_ns AND x.checkpoint_id = w.checkpoint_id AND x.task_id = w.task_id AND x.idx = w.idx
       WHERE w.namespace = $1 AND w.type = ''
       GROUP BY 1`,
      [NS],
    );
    assert.ok(chunked.length > 0, "some writes were chunked");
    for (const r of chunked) {
      assert.equal(Number(r.bytes), sizes.get(r.key), `${r.key}: its chunks add up to its value`);
      assert.equal(Number(r.top), Number(r.n) - 1, `${r.key}: chunks 0..n-1`);
    }
  });
});
