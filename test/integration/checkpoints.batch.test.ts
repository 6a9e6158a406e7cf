/**
 * Group commit of checkpoint puts (PostgresCheckpointStore against a real
 * Postgres): puts of many threads made at once share batches
 * (one statement, one commit), yet each behaves as if made alone: its own
 * strict check and result, a conflict or an error failing only itself, and a
 * thread whose head row another transaction holds stalling only its own put.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { Pool } from "pg";
import type { PutCheckpointCommand, PutWritesCommand } from "../../src/domain/checkpoints";
import { CheckpointConflictError } from "../../src/errors/errors";
import { createPool } from "../../src/store/postgres/createPool";
import { migrate } from "../../src/store/postgres/migrate";
import { PostgresCheckpointStore } from "../../src/store/postgres/PostgresCheckpointStore";
import { backendWaitingOnLock } from "../support/backendWaitingOnLock";
import { holdRowLock } from "../support/holdRowLock";
import { pgQuery } from "../support/pgQuery";
import { getTestEnv } from "../support/TestEnv";

const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");
const NS = "batch";
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

function putCmd(thread: string, id: string, parent: string, over: Partial<PutCheckpointCommand> = {}) {
  return {
    namespace: NS,
    threadId: thread,
    checkpointNs: "",
    checkpointId: id,
    parentCheckpointId: parent,
    document: { type: "json", data: json({ id }) },
    metadataJson: JSON.stringify({ step: 1 }),
    channelVersions: { messages: id },
    values: [{ channel: "messages", version: id, value: { type: "json", data: json([thread, id]) } }],
    strict: true,
    ...over,
  } satisfies PutCheckpointCommand;
}

describe("CheckpointStore: group commit of puts (real Postgres)", function () {
  this.timeout(60_000);
  let pool: Pool;
  let url: string;
  let store: PostgresCheckpointStore;
  const batches = { put: [] as number[], writes: [] as number[] };

  before(async () => {
    url = await (await getTestEnv()).freshDatabase("checkpoint_batch");
    pool = createPool({ connectionString: url, max: 6, statementTimeoutMs: 20_000 });
    await migrate(pool, MIGRATIONS_DIR);
    store = new PostgresCheckpointStore(pool, {
      chunkBytes: 64,
      maxCheckpointBytes: 0,
      batchesMax: 2,
      observeBatch: (size) => batches.put.push(size),
      observeWritesBatch: (size) => batches.writes.push(size),
    });
  });
  after(async () => {
    await pool?.end();
  });

  const heads = async (prefix: string) =>
    new Map(
      (
        await pgQuery<{ thread_id: string; checkpoint_id: string; checkpoints: string }>(
          url,
          "SELECT thread_id, checkpoint_id, checkpoints FROM checkpoint_heads WHERE namespace = $1 AND thread_id LIKE $2",
          [NS, `${prefix}%`],
        )
      ).map((r) => [r.thread_id, [r.checkpoint_id, Number(r.checkpoints)]]),
    );

  it("each put of a batch records its own principal and request id (audit_changes), a refused one nothing", async () => {
    batches.put.length = 0;
    const threads = Array.from({ length: 30 }, (_, i) => `aud-${i}`);
    const who = (i: number) => ({ principal: i % 2 ? "odd" : "even", requestId: `req-${i}` });
    await Promise.all(threads.map((t, i) => store.put(putCmd(t, "c1", ""), who(i))));
    assert.ok(Math.max(...batches.put) > 1, `puts were committed together: ${batches.put.join(",")}`);
    // A second round, with a strict put whose parent is not the head (refused: nothing recorded).
    const second = await Promise.allSettled(
      threads.map((t, i) => store.put(putCmd(t, "c2", i === 3 ? "nope" : "c1"), who(100 + i))),
    );
    assert.equal(second.filter((r) => r.status === "rejected").length, 1);
    const rows = await pgQuery<{ target: string; op: number; principal: string; request_id: string }>(
      url,
      "SELECT target, op, principal, request_id FROM audit_changes WHERE namespace = $1 AND target LIKE 'aud-%' ORDER BY id",
      [NS],
    );
    const want = threads.flatMap((t, i) => [
      `${t}//c1 5 ${who(i).principal} ${who(i).requestId}`,
      ...(i === 3 ? [] : [`${t}//c2 5 ${who(100 + i).principal} ${who(100 + i).requestId}`]),
    ]);
    assert.deepEqual(rows.map((r) => `${r.target} ${r.op} ${r.principal} ${r.request_id}`).sort(), want.sort());
  });

  it("many threads' puts at once share batches; each is stored with its values and its own result", async () => {
    batches.put.length = 0;
    const n = 40;
    const threads = Array.from({ length: n }, (_, i) => `many-${i}`);
    // A value over chunkBytes: its chunks must land with their own put.
    const big = (t: string) => ({ type: "json", data: Buffer.from(`${t}:`.padEnd(200, "v")) });
    const first = await Promise.all(
      threads.map((t) =>
        store.put(putCmd(t, "c1", "", { values: [{ channel: "messages", version: "c1", value: big(t) }] })),
      ),
    );
    assert.ok(first.every((r) => r.created && r.head === "c1"));
    const second = await Promise.all(threads.map((t) => store.put(putCmd(t, "c2", "c1"))));
    assert.ok(second.every((r) => r.created && r.head === "c2"));
    assert.equal(
      batches.put.reduce((a, b) => a + b, 0),
      2 * n,
    );
    assert.ok(batches.put.length < 2 * n, `puts were committed together: ${batches.put.length} batches`);
    assert.ok(Math.max(...batches.put) > 1);
    const h = await heads("many-");
    for (const t of threads) assert.deepEqual(h.get(t), ["c2", 2], t);
    for (const t of threads) {
      const [latest, older] = await store.list({
        namespace: NS,
        threadId: t,
        checkpointNs: "",
        checkpointId: undefined,
        before: undefined,
        metadataFilterJson: undefined,
        limit: 2,
        after: undefined,
      });
      assert.equal(latest?.checkpointId, "c2");
      assert.equal(latest?.values[0]?.value.data.toString(), JSON.stringify([t, "c2"]));
      assert.equal(older?.values[0]?.value.data.toString(), big(t).data.toString(), `${t}: chunks joined`);
    }
  });

  it("a conflict or an error in one put fails only that put; the batch's others are stored", async () => {
    const threads = Array.from({ length: 12 }, (_, i) => `mixed-${i}`);
    await Promise.all(threads.map((t) => store.put(putCmd(t, "c1", ""))));
    batches.put.length = 0;
    const results = await Promise.allSettled(
      threads.map((t, i) => {
        if (i === 3) return store.put(putCmd(t, "c2", "not-the-head")); // strict conflict
        if (i === 7) return store.put(putCmd(t, "c2", "c1", { metadataJson: "{not json" })); // fails in Postgres
        return store.put(putCmd(t, "c2", "c1"));
      }),
    );
    assert.ok(Math.max(...batches.put) > 1, `batched: ${batches.put.join(",")}`);
    const h = await heads("mixed-");
    for (const [i, r] of results.entries()) {
      if (i === 3) {
        assert.equal(r.status, "rejected");
        assert.ok(r.reason instanceof CheckpointConflictError);
        assert.equal(r.reason.head, "c1");
      } else if (i === 7) {
        assert.equal(r.status, "rejected");
        assert.match(String(r.reason), /json/i);
      } else {
        assert.equal(r.status, "fulfilled", `${i}: ${r.status === "rejected" ? String(r.reason) : ""}`);
        assert.deepEqual(r.value, { created: true, head: "c2" });
      }
      assert.deepEqual(h.get(threads[i]!), i === 3 || i === 7 ? ["c1", 1] : ["c2", 2], threads[i]);
    }
  });

  it("a thread whose head row is held elsewhere stalls only its own put, which lands once the row is free", async () => {
    const threads = Array.from({ length: 10 }, (_, i) => `held-${i}`);
    await Promise.all(threads.map((t) => store.put(putCmd(t, "c1", ""))));
    const release = await holdRowLock(
      url,
      "SELECT 1 FROM checkpoint_heads WHERE namespace = $1 AND thread_id = $2 FOR UPDATE",
      [NS, "held-0"],
    );
    let heldDone = false;
    try {
      batches.put.length = 0;
      // The first puts go alone (a batch starts at once while one may); the
      // held thread's is queued behind them, so it lands in a batch with others.
      const early = threads.slice(1, 4).map((t) => store.put(putCmd(t, "c2", "c1")));
      const held = store.put(putCmd("held-0", "c2", "c1")).finally(() => {
        heldDone = true;
      });
      const late = threads.slice(4).map((t) => store.put(putCmd(t, "c2", "c1")));
      const others = await Promise.all([...early, ...late]);
      assert.ok(Math.max(...batches.put) > 1, `batched: ${batches.put.join(",")}`);
      assert.ok(
        others.every((r) => r.head === "c2"),
        "the other threads' puts landed while the row was held",
      );
      await backendWaitingOnLock(url);
      assert.equal(heldDone, false, "the held thread's put waits for its row");
      await release();
      assert.deepEqual(await held, { created: true, head: "c2" });
    } finally {
      await release();
    }
    assert.deepEqual((await heads("held-")).get("held-0"), ["c2", 2]);
  });

  const writesCmd = (thread: string, task: string, writes: [number, string, string][]): PutWritesCommand => ({
    namespace: NS,
    threadId: thread,
    checkpointNs: "",
    checkpointId: "c1",
    taskId: task,
    taskPath: "",
    writes: writes.map(([index, channel, v]) => ({ index, channel, value: { type: "json", data: json(v) } })),
  });
  const storedWrites = async (prefix: string) =>
    (
      await pgQuery<{ w: string }>(
        url,
        `SELECT thread_id || ' ' || task_id || ' ' || idx || ' ' || channel || ' ' || convert_from(data, 'UTF8') AS w
         FROM checkpoint_writes WHERE namespace = $1 AND thread_id LIKE $2 ORDER BY 1`,
        [NS, `${prefix}%`],
      )
    ).map((r) => r.w);

  it("PutWrites of many threads at once share statements; each call stores and counts its own writes, with its own audit row", async () => {
    batches.writes.length = 0;
    const threads = Array.from({ length: 24 }, (_, i) => `pw-${String(i).padStart(2, "0")}`);
    const who = (i: number) => ({ principal: `p${i}`, requestId: `req-w${i}` });
    const counts = await Promise.all(
      threads.map((t, i) =>
        store.putWrites(
          writesCmd(t, "task", [
            [0, "messages", `${t}-a`],
            [1, "step", `${t}-b`],
            ...(i % 2 ? ([[-1, "__error__", `${t}-e`]] as [number, string, string][]) : []),
          ]),
          who(i),
        ),
      ),
    );
    assert.deepEqual(
      counts,
      threads.map((_, i) => (i % 2 ? 3 : 2)),
    );
    assert.ok(Math.max(...batches.writes) > 1, `writes were committed together: ${batches.writes.join(",")}`);
    const want = threads.flatMap((t, i) => [
      ...(i % 2 ? [`${t} task -1 __error__ "${t}-e"`] : []),
      `${t} task 0 messages "${t}-a"`,
      `${t} task 1 step "${t}-b"`,
    ]);
    assert.deepEqual(await storedWrites("pw-"), want.sort());
    const audit = await pgQuery<{ a: string }>(
      url,
      "SELECT target || ' ' || op || ' ' || principal || ' ' || request_id AS a FROM audit_changes WHERE namespace = $1 AND target LIKE 'pw-%' ORDER BY 1",
      [NS],
    );
    assert.deepEqual(
      audit.map((r) => r.a),
      threads.map((t, i) => `${t}//c1 6 ${who(i).principal} ${who(i).requestId}`).sort(),
    );
  });

  it("a PutWrites sent again at once is never in its first's statement and lands after it: kept writes count 0, special channels replaced", async () => {
    batches.writes.length = 0;
    const threads = Array.from({ length: 8 }, (_, i) => `pwr-${i}`);
    const calls = threads.flatMap((t) => [
      writesCmd(t, "task", [
        [0, "messages", "first"],
        [-1, "__interrupt__", "first"],
      ]),
      writesCmd(t, "task", [
        [0, "messages", "again"],
        [-1, "__interrupt__", "again"],
      ]),
    ]);
    const counts = await Promise.all(calls.map((c) => store.putWrites(c)));
    assert.ok(Math.max(...batches.writes) > 1, `batched: ${batches.writes.join(",")}`);
    assert.deepEqual(
      counts,
      threads.flatMap(() => [2, 1]),
    );
    assert.deepEqual(
      await storedWrites("pwr-"),
      threads.flatMap((t) => [`${t} task -1 __interrupt__ "again"`, `${t} task 0 messages "first"`]).sort(),
    );
  });

  it("a PutWrites that Postgres refuses fails alone; the others of its statement are stored", async () => {
    batches.writes.length = 0;
    const threads = Array.from({ length: 10 }, (_, i) => `pwf-${i}`);
    const results = await Promise.allSettled(
      threads.map((t, i) => store.putWrites(writesCmd(t, "task", [[0, i === 5 ? "bad\u0000channel" : "ok", t]]))),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      threads.map((_, i) => (i === 5 ? "rejected" : "fulfilled")),
    );
    assert.deepEqual(
      await storedWrites("pwf-"),
      threads.filter((_, i) => i !== 5).map((t) => `${t} task 0 ok "${t}"`),
    );
  });
});
