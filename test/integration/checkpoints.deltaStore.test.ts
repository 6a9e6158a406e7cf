/**
 * PostgresCheckpointStore's deltas (migrations/0017) against real Postgres,
 * below the gRPC edge: deltas above the value limit (in chunks), deltas in
 * group-committed batches of many threads, and the bound on the last values
 * the store keeps to delta against (least recently used go: their threads'
 * next values are stored whole).
 */
import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import type { Pool } from "pg";
import type { PutCheckpointCommand } from "../../src/domain/checkpoints";
import { createPool } from "../../src/store/postgres/createPool";
import { migrate } from "../../src/store/postgres/migrate";
import { PostgresCheckpointStore } from "../../src/store/postgres/PostgresCheckpointStore";
import { pgQuery } from "../support/pgQuery";
import { getTestEnv } from "../support/TestEnv";

const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");
const version = (n: number) => `${String(n).padStart(32, "0")}.0.5`;
const query = (namespace: string, threadId: string, limit: number) => ({
  namespace,
  threadId,
  checkpointNs: "",
  checkpointId: undefined,
  before: undefined,
  metadataFilterJson: undefined,
  limit,
  after: undefined,
});
const id = (n: number) => `ck-${String(n).padStart(4, "0")}`;

function putCmd(ns: string, thread: string, n: number, value: Buffer): PutCheckpointCommand {
  return {
    namespace: ns,
    threadId: thread,
    checkpointNs: "",
    checkpointId: id(n),
    parentCheckpointId: n === 1 ? "" : id(n - 1),
    document: { type: "json", data: Buffer.from(JSON.stringify({ n })) },
    metadataJson: "{}",
    channelVersions: { messages: version(n) },
    values: [{ channel: "messages", version: version(n), value: { type: "json", data: value } }],
    strict: true,
  };
}

describe("CheckpointStore: channel values as deltas (real Postgres)", function () {
  this.timeout(120_000);
  let pool: Pool;
  let url: string;

  before(async () => {
    url = await (await getTestEnv()).freshDatabase("checkpoint_delta_store");
    pool = createPool({ connectionString: url, max: 6, statementTimeoutMs: 20_000 });
    await migrate(pool, MIGRATIONS_DIR);
  });
  after(async () => {
    await pool?.end();
  });

  const rows = (ns: string) =>
    pgQuery<{ thread_id: string; version: string; chunk: number; base: string | null }>(
      url,
      "SELECT thread_id, version, chunk, base FROM checkpoint_blobs WHERE namespace = $1 ORDER BY thread_id, version, chunk",
      [ns],
    );
  const latest = async (store: PostgresCheckpointStore, ns: string, thread: string) =>
    (await store.list(query(ns, thread, 1)))[0]!.values[0]!.value.data;

  it("a delta above the value limit is stored in chunks and rebuilt; many threads' deltas share batches", async () => {
    const batches: number[] = [];
    const store = new PostgresCheckpointStore(pool, {
      chunkBytes: 512,
      maxCheckpointBytes: 0,
      observeBatch: (n) => batches.push(n),
    });
    const ns = "chunks";
    const threads = Array.from({ length: 12 }, (_, i) => `t${i}`);
    // Each version grows by 1500 bytes (a delta of three 512-byte chunks) on every thread, all threads at once.
    const items = new Map(threads.map((t) => [t, [] as string[]]));
    for (let n = 1; n <= 8; n++) {
      await Promise.all(
        threads.map((t) => {
          items.get(t)!.push(randomBytes(750).toString("hex"));
          return store.put(putCmd(ns, t, n, Buffer.from(JSON.stringify(items.get(t)))));
        }),
      );
    }
    assert.ok(Math.max(...batches) > 1, `batched: ${batches.join(",")}`);
    const stored = await rows(ns);
    const deltaChunks = stored.filter((r) => r.version === version(8));
    assert.deepEqual(
      deltaChunks.filter((r) => r.thread_id === "t0").map((r) => [r.chunk, r.base]),
      [
        [0, version(7)],
        [1, null],
        [2, null],
      ],
    );
    for (const t of threads) {
      assert.ok((await latest(store, ns, t)).equals(Buffer.from(JSON.stringify(items.get(t)))), t);
    }
    // A fresh store (another replica, or after a restart) reads them too.
    const fresh = new PostgresCheckpointStore(pool, { chunkBytes: 512, maxCheckpointBytes: 0 });
    const page = await fresh.list(query(ns, "t5", 8));
    assert.equal(page.length, 8);
    for (const c of page) {
      const n = Number(c.checkpointId.slice(3));
      assert.ok(
        c.values[0]!.value.data.equals(Buffer.from(JSON.stringify(items.get("t5")!.slice(0, n)))),
        c.checkpointId,
      );
    }
  });

  it("keeps at most deltaCacheBytes of last values: a thread whose last value went stores its next one whole", async () => {
    const store = new PostgresCheckpointStore(pool, {
      chunkBytes: 1 << 20,
      maxCheckpointBytes: 0,
      batchMax: 1,
      deltaCacheBytes: 64 * 1024,
    });
    const ns = "lru";
    const value = (t: string, n: number) => Buffer.from(`${t}:`.padEnd(600, "v") + "w".repeat(400 * n));
    // Thread a's first value (1000 bytes), then 150 other threads' (600 bytes each: 90 KB > 64 KiB), then a's second.
    await store.put(putCmd(ns, "a", 1, value("a", 1)));
    for (let i = 0; i < 150; i++) await store.put(putCmd(ns, `x${i}`, 1, value(`x${i}`, 0)));
    await store.put(putCmd(ns, "a", 2, value("a", 2)));
    // The flood's last thread is among the recent ones.
    await store.put(putCmd(ns, "x149", 2, value("x149", 1)));
    const r = await rows(ns);
    const at = (t: string, n: number) => r.find((x) => x.thread_id === t && x.version === version(n))!;
    assert.equal(at("a", 2).base, null, "a's last value was evicted: stored whole");
    assert.equal(at("x149", 2).base, version(1), "a recent thread's next value is a delta");
    assert.ok((await latest(store, ns, "a")).equals(value("a", 2)));
  });
});
