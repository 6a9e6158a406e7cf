/**
 * Channel values stored as deltas of an earlier version (migrations/0017),
 * against real Postgres and real server processes over gRPC: a growing
 * channel's stored bytes grow with its growth, not its size (asserted on the
 * stored sizes); every version reads back byte for byte; the chain stays
 * bounded (a whole value every 32 versions); prune, copy and delete keep
 * every base a remaining value needs; a base that is gone or holds other
 * bytes (a delete, then puts of the same versions through another replica)
 * makes the put go whole, never a wrong value. Checkpoint documents are
 * stored deflated, read back whole and counted whole by the size limit.
 */
import * as assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { CheckpointClient } from "../support/checkpointClient";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

/** A JSON list of `n` items, each 300 bytes of incompressible text (seeded per list). */
function list(items: string[], n: number): Buffer {
  return Buffer.from(JSON.stringify(items.slice(0, n)));
}

const version = (i: number) => `${String(i).padStart(32, "0")}.0.5`;

describe("CheckpointService: channel values as deltas (real Postgres)", function () {
  this.timeout(180_000);
  let cluster: Cluster;
  let cp: CheckpointClient;
  let other: CheckpointClient;

  before(async () => {
    cluster = await startCluster({ name: "checkpoints_deltas", replicas: 2 });
    cp = new CheckpointClient(cluster.servers[0]!.address);
    other = new CheckpointClient(cluster.servers[1]!.address);
  });
  after(async () => {
    cp?.close();
    other?.close();
    await cluster?.stop();
  });

  /** Puts `steps` checkpoints on one thread through `client`, the list growing by one item each. */
  async function grow(client: CheckpointClient, ns: string, thread: string, items: string[], from: number, to: number) {
    const ids: string[] = [];
    let parent = from === 1 ? "" : `ck-${String(from - 1).padStart(4, "0")}`;
    for (let i = from; i <= to; i++) {
      const id = `ck-${String(i).padStart(4, "0")}`;
      await client.put({
        namespace: ns,
        threadId: thread,
        checkpointNs: "",
        checkpointId: id,
        parentCheckpointId: parent,
        document: { type: "json", data: Buffer.from(JSON.stringify({ id })) },
        metadataJson: Buffer.from(JSON.stringify({ step: i })),
        channelVersions: { messages: version(i) },
        values: [{ channel: "messages", version: version(i), value: { type: "json", data: list(items, i) } }],
      });
      ids.push(id);
      parent = id;
    }
    return ids;
  }

  const messagesAt = async (client: CheckpointClient, ns: string, thread: string, id?: string) => {
    const r = await client.get({ namespace: ns, threadId: thread, ...(id === undefined ? {} : { checkpointId: id }) });
    const v = r.checkpoint?.values.find((x) => x.channel === "messages");
    return { type: v?.value?.type, data: Buffer.from(v?.value?.data ?? new Uint8Array()) };
  };

  const stored = async (ns: string, thread: string) =>
    (
      await pgQuery<{ bytes: string; rows: string; whole: string; depth: number | null }>(
        cluster.databaseUrl,
        `SELECT sum(octet_length(data)) AS bytes, count(*) AS rows, count(*) FILTER (WHERE base IS NULL) AS whole,
                max(depth) AS depth
         FROM checkpoint_blobs WHERE namespace = $1 AND thread_id = $2`,
        [ns, thread],
      )
    )[0]!;

  it("a growing channel stores its growth per version, not its size; every version reads back whole", async () => {
    const ns = "delta-grow";
    const thread = randomUUID();
    const items = Array.from({ length: 80 }, () => randomBytes(150).toString("hex"));
    const ids = await grow(cp, ns, thread, items, 1, 80);
    const s = await stored(ns, thread);
    const whole = items.reduce((n, _, i) => n + list(items, i + 1).length, 0);
    const last = list(items, 80).length;
    // Stored whole, the 80 versions would take ~1 MB (the square of the thread's
    // length); as deltas: each version's growth (~300 bytes) plus a whole value
    // every 32 versions (at most 3 here, the largest the last list's size).
    assert.ok(whole > 900_000, `${whole}`);
    assert.ok(Number(s.bytes) < 80 * 400 + 3 * last, `stored ${s.bytes} bytes of ${whole}`);
    assert.equal(Number(s.rows), 80);
    assert.ok(Number(s.depth) <= 32, `chain depth ${s.depth}`);
    assert.ok(Number(s.whole) >= 3, `whole values ${s.whole}`);
    for (const [i, id] of ids.entries()) {
      const got = await messagesAt(cp, ns, thread, id);
      assert.equal(got.type, "json");
      assert.ok(got.data.equals(list(items, i + 1)), `version ${i + 1}`);
    }
    // Through the other replica (no cache of this thread) too, and a page of the list.
    assert.ok((await messagesAt(other, ns, thread)).data.equals(list(items, 80)));
    const page = await cp.list({ namespace: ns, threadId: thread, limit: 40 });
    assert.equal(page.checkpoints.length, 40);
    for (const c of page.checkpoints) {
      const n = Number(c.checkpointId.slice(3));
      assert.ok(Buffer.from(c.values[0]!.value!.data).equals(list(items, n)), c.checkpointId);
    }
  });

  it("prune keeps the bases the remaining checkpoints need; copy and delete take the chain with them", async () => {
    const ns = "delta-prune";
    const thread = randomUUID();
    const items = Array.from({ length: 50 }, () => randomBytes(150).toString("hex"));
    await grow(cp, ns, thread, items, 1, 50);
    const copy = randomUUID();
    await cp.copyThread({ namespace: ns, sourceThreadId: thread, targetThreadId: copy });
    await cp.prune({ namespace: ns, threadIds: [thread], keepLatest: 1 });
    // The latest (version 50) is a delta at some depth d: its chain, d + 1 rows, stays; the rest goes.
    const s = await stored(ns, thread);
    const [row] = await pgQuery<{ depth: number | null }>(
      cluster.databaseUrl,
      "SELECT depth FROM checkpoint_blobs WHERE namespace = $1 AND thread_id = $2 AND version = $3",
      [ns, thread, version(50)],
    );
    const depth = row?.depth ?? 0;
    assert.ok(depth > 0, "the latest value is a delta");
    assert.equal(Number(s.rows), depth + 1);
    assert.ok((await messagesAt(cp, ns, thread)).data.equals(list(items, 50)));
    assert.ok((await messagesAt(other, ns, thread)).data.equals(list(items, 50)));
    // The copy has every version; the thread goes on growing from the pruned one.
    for (const n of [1, 17, 33, 50]) {
      const id = `ck-${String(n).padStart(4, "0")}`;
      assert.ok((await messagesAt(cp, ns, copy, id)).data.equals(list(items, n)), `copy ${id}`);
    }
    const more = [...items, ...Array.from({ length: 5 }, () => randomBytes(150).toString("hex"))];
    await grow(cp, ns, thread, more, 51, 55);
    assert.ok((await messagesAt(cp, ns, thread)).data.equals(list(more, 55)));
    await cp.deleteThread({ namespace: ns, threadId: copy });
    assert.equal(Number((await stored(ns, copy)).rows), 0);
  });

  it("a base gone or holding other bytes (deleted, then written again elsewhere) makes the put go whole", async () => {
    const ns = "delta-stale";
    const thread = randomUUID();
    const a = Array.from({ length: 8 }, () => randomBytes(150).toString("hex"));
    await grow(cp, ns, thread, a, 1, 5);
    await cp.deleteThread({ namespace: ns, threadId: thread });
    // The same versions again with other bytes (and the same chain depths),
    // through the other replica: this server's last value of the channel
    // (version 5, list a) is stale now. Then this server puts list a again
    // from version 6: a delta of its version 5 would rebuild garbage on b's.
    const b = Array.from({ length: 8 }, () => randomBytes(150).toString("hex"));
    await grow(other, ns, thread, b, 1, 5);
    await grow(cp, ns, thread, a, 6, 8);
    assert.ok((await messagesAt(cp, ns, thread, "ck-0005")).data.equals(list(b, 5)));
    for (const n of [6, 7, 8]) {
      const id = `ck-${String(n).padStart(4, "0")}`;
      assert.ok((await messagesAt(cp, ns, thread, id)).data.equals(list(a, n)), id);
    }
    // Version 6 went whole (its delta named list a's CRC, version 5 holds b's); 7 and 8 are deltas of it.
    const rows = await pgQuery<{ version: string; base: string | null }>(
      cluster.databaseUrl,
      "SELECT version, base FROM checkpoint_blobs WHERE namespace = $1 AND thread_id = $2 ORDER BY version",
      [ns, thread],
    );
    assert.deepEqual(
      rows.slice(5).map((r) => r.base),
      [null, version(6), version(7)],
    );
  });

  it("documents are stored deflated and read back whole; the size limit counts them whole; others are kept as they are", async () => {
    const ns = "doc-deflate";
    const thread = randomUUID();
    const doc = Buffer.from(JSON.stringify({ v: 4, versions: Array.from({ length: 100 }, (_, i) => version(i)) }));
    const noise = randomBytes(2048);
    for (const [id, type, data] of [
      ["d1", "json", doc],
      ["d2", "bytes", noise],
    ] as const) {
      await cp.put({
        namespace: ns,
        threadId: thread,
        checkpointNs: "",
        checkpointId: id,
        parentCheckpointId: id === "d1" ? "" : "d1",
        document: { type, data },
        metadataJson: Buffer.from("{}"),
      });
    }
    const rows = await pgQuery<{ checkpoint_id: string; document_type: string; len: number }>(
      cluster.databaseUrl,
      `SELECT checkpoint_id, document_type, octet_length(document) AS len FROM checkpoints
       WHERE namespace = $1 ORDER BY checkpoint_id`,
      [ns],
    );
    assert.equal(rows[0]!.document_type, "");
    assert.ok(rows[0]!.len * 4 < doc.length, `${rows[0]!.len} of ${doc.length}`);
    assert.deepEqual([rows[1]!.document_type, rows[1]!.len], ["bytes", noise.length]);
    for (const [id, type, data] of [
      ["d1", "json", doc],
      ["d2", "bytes", noise],
    ] as const) {
      for (const client of [cp, other]) {
        const got = (await client.get({ namespace: ns, threadId: thread, checkpointId: id })).checkpoint?.document;
        assert.equal(got?.type, type);
        assert.ok(Buffer.from(got!.data).equals(data), id);
      }
    }
    // The size PutWrites' limit check counts: the document whole (256 + its size + ...).
    const [check] = await pgQuery<{ status: number; bytes: string }>(
      cluster.databaseUrl,
      `SELECT status, bytes FROM agentstate_checkpoint_writes_put($1, $2, '', 'd1', 'task', '', ARRAY[0], ARRAY['c'],
         ARRAY['json'], ARRAY[1], '\\x31'::bytea, 4096, 1000000000)`,
      [ns, thread],
    );
    assert.equal(check!.status, 1);
    assert.ok(Number(check!.bytes) >= 256 + doc.length, `${check!.bytes}`);
  });
});
