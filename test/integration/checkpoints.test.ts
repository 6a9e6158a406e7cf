/**
 * CheckpointService against real Postgres and a real server process over real
 * gRPC: round trips (document, metadata, channel values, pending writes),
 * channel values stored once per version and shared, values above the value
 * limit in chunks (channel values and pending writes), the checkpoint size
 * limit on pending writes, strict puts (no silent fork: exactly one of two racing
 * workers wins, the loser gets ABORTED with the head), pending-write
 * idempotency and the special negative indexes, listing (newest first,
 * before, limit, metadata filter, pages, across threads), delete / copy /
 * prune / delete-for-runs, bad input (INVALID_ARGUMENT naming the field,
 * nothing written), and the Janitor's retention.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { status } from "@grpc/grpc-js";
import fc from "fast-check";
import {
  GetCheckpointRequest,
  ListCheckpointsRequest,
  PruneCheckpointsRequest,
  PutCheckpointRequest,
  PutWritesRequest,
  type Checkpoint,
} from "../../clients/typescript/src/gen/agentstate/v1/checkpoint";
import { CheckpointClient } from "../support/checkpointClient";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { randomBytesRequest } from "../support/fuzzRequests";
import { pgQuery } from "../support/pgQuery";
import { RawGrpcClient } from "../support/RawGrpcClient";
import { startCluster, type Cluster } from "../support/startCluster";

const VALUE_LIMIT = 4096;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const text = (b: Uint8Array | undefined) => Buffer.from(b ?? new Uint8Array()).toString("utf8");
/** Time-ordered ids like LangGraph's: a zero-padded counter. */
let counter = 0;
const nextId = () => `ckpt-${String(++counter).padStart(8, "0")}`;

function put(
  ns: string,
  thread: string,
  id: string,
  parent: string,
  values: Record<string, [string, string]>,
  versions: Record<string, string> = {},
  extra: Partial<PutCheckpointRequest> = {},
) {
  const channelVersions = { ...versions };
  for (const [ch, [ver]] of Object.entries(values)) channelVersions[ch] = ver;
  return {
    namespace: ns,
    threadId: thread,
    checkpointNs: "",
    checkpointId: id,
    parentCheckpointId: parent,
    document: { type: "json", data: json({ id }) },
    metadataJson: json({ source: "loop", step: counter }),
    channelVersions,
    values: Object.entries(values).map(([channel, [version, v]]) => ({
      channel,
      version,
      value: { type: "json", data: Buffer.from(v) },
    })),
    ...extra,
  };
}

const valuesOf = (c: Checkpoint | undefined) =>
  Object.fromEntries((c?.values ?? []).map((v) => [v.channel, text(v.value?.data)]));

describe("CheckpointService: checkpoints on a live server", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let cp: CheckpointClient;
  const count = async (table: string, ns: string) =>
    Number(
      (
        await pgQuery<{ n: string }>(cluster.databaseUrl, `SELECT count(*) AS n FROM ${table} WHERE namespace = $1`, [
          ns,
        ])
      )[0]!.n,
    );

  before(async () => {
    cluster = await startCluster({ name: "checkpoints", env: { AGENTSTATE_MAX_VALUE_BYTES: String(VALUE_LIMIT) } });
    cp = new CheckpointClient(cluster.servers[0]!.address);
  });
  after(async () => {
    cp?.close();
    await cluster?.stop();
  });

  it("round-trips a checkpoint; channel values are stored once per version and shared by later checkpoints", async () => {
    const ns = "ck-share";
    const t = randomUUID();
    const a = nextId();
    const b = nextId();
    const c = nextId();
    await cp.put(put(ns, t, a, "", { messages: ["1", '["hi"]'], count: ["1", "1"] }));
    // b changes count only; c changes nothing: both reference messages@1.
    await cp.put(put(ns, t, b, a, { count: ["2", "2"] }, { messages: "1" }));
    const r = await cp.put(put(ns, t, c, b, {}, { messages: "1", count: "2" }));
    assert.equal(r.created, true);
    assert.equal(r.headCheckpointId, c);

    const latest = await cp.get({ namespace: ns, threadId: t });
    assert.equal(latest.found, true);
    assert.equal(latest.checkpoint?.checkpointId, c);
    assert.equal(latest.checkpoint?.parentCheckpointId, b);
    assert.deepEqual(valuesOf(latest.checkpoint), { messages: '["hi"]', count: "2" });
    assert.deepEqual(JSON.parse(text(latest.checkpoint?.document?.data)), { id: c });
    assert.equal(JSON.parse(text(latest.checkpoint?.metadataJson)).source, "loop");
    const first = await cp.get({ namespace: ns, threadId: t, checkpointId: a });
    assert.deepEqual(valuesOf(first.checkpoint), { messages: '["hi"]', count: "1" });
    assert.equal((await cp.get({ namespace: ns, threadId: t, checkpointId: "nope" })).found, false);
    // 3 checkpoints, 3 stored values (messages@1, count@1, count@2): none repeated.
    assert.equal(await count("checkpoints", ns), 3);
    assert.equal(await count("checkpoint_blobs", ns), 3);
  });

  it("stores a channel value above the value limit in chunks and returns it whole", async () => {
    const ns = "ck-large";
    const t = randomUUID();
    const big = Buffer.alloc(VALUE_LIMIT * 3 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) % 251;
    const id = nextId();
    await cp.put({
      ...put(ns, t, id, "", {}),
      channelVersions: { blob: "1" },
      values: [{ channel: "blob", version: "1", value: { type: "bytes", data: big } }],
    });
    const rows = await pgQuery<{ chunk: number; len: number }>(
      cluster.databaseUrl,
      "SELECT chunk, length(data) AS len FROM checkpoint_blobs WHERE namespace = $1 ORDER BY chunk",
      [ns],
    );
    assert.deepEqual(
      rows.map((r) => r.len),
      [VALUE_LIMIT, VALUE_LIMIT, VALUE_LIMIT, 17],
    );
    const got = await cp.get({ namespace: ns, threadId: t });
    const v = got.checkpoint?.values[0];
    assert.equal(v?.value?.type, "bytes");
    assert.ok(Buffer.from(v!.value!.data).equals(big));
  });

  it("stores a pending write above the value limit in chunks and returns it whole; replaced, copied, pruned and deleted with its chunks", async () => {
    const ns = "ck-large-writes";
    const t = randomUUID();
    const pattern = (n: number, seed: number) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < b.length; i++) b[i] = (i * 31 + seed) % 251;
      return b;
    };
    const big = pattern(VALUE_LIMIT * 3 + 17, 1);
    const small = Buffer.from('"small"');
    const id = nextId();
    await cp.put(put(ns, t, id, "", { a: ["1", "x"] }));
    const addr = { namespace: ns, threadId: t, checkpointId: id };
    const stored = await cp.putWrites({
      ...addr,
      taskId: "task",
      writes: [
        { index: 0, channel: "small", value: { type: "json", data: small } },
        { index: 1, channel: "big", value: { type: "bytes", data: big } },
        { index: -1, channel: "__error__", value: { type: "bytes", data: pattern(VALUE_LIMIT * 2, 2) } },
      ],
    });
    assert.equal(stored.stored, 3);
    const chunks = async (thread = t) =>
      (
        await pgQuery<{ idx: number; chunk: number; len: number }>(
          cluster.databaseUrl,
          "SELECT idx, chunk, length(data) AS len FROM checkpoint_write_chunks WHERE namespace = $1 AND thread_id = $2 ORDER BY idx, chunk",
          [ns, thread],
        )
      ).map((r) => [r.idx, r.chunk, r.len]);
    assert.deepEqual(await chunks(), [
      [-1, 0, VALUE_LIMIT],
      [-1, 1, VALUE_LIMIT],
      [1, 0, VALUE_LIMIT],
      [1, 1, VALUE_LIMIT],
      [1, 2, VALUE_LIMIT],
      [1, 3, 17],
    ]);
    const writesOf = (c: Checkpoint | undefined) =>
      (c?.pendingWrites ?? []).map((w) => [w.index, w.channel, w.value?.type, Buffer.from(w.value!.data)]);
    const expectWrites = (c: Checkpoint | undefined, error: Buffer) =>
      assert.deepEqual(writesOf(c), [
        [-1, "__error__", "bytes", error],
        [0, "small", "json", small],
        [1, "big", "bytes", big],
      ]);
    expectWrites((await cp.get(addr)).checkpoint, pattern(VALUE_LIMIT * 2, 2));
    expectWrites((await cp.list({ namespace: ns, threadId: t })).checkpoints[0], pattern(VALUE_LIMIT * 2, 2));

    // A retry keeps the first value; a negative index replaces it (a larger one, then a small one), chunks and all.
    await cp.putWrites({
      ...addr,
      taskId: "task",
      writes: [{ index: 1, channel: "big", value: { type: "bytes", data: pattern(VALUE_LIMIT * 5, 3) } }],
    });
    await cp.putWrites({
      ...addr,
      taskId: "task",
      writes: [{ index: -1, channel: "__error__", value: { type: "bytes", data: pattern(VALUE_LIMIT * 4 + 1, 4) } }],
    });
    expectWrites((await cp.get(addr)).checkpoint, pattern(VALUE_LIMIT * 4 + 1, 4));
    assert.equal((await chunks()).filter(([idx]) => idx === -1).length, 5);
    await cp.putWrites({
      ...addr,
      taskId: "task",
      writes: [{ index: -1, channel: "__error__", value: { type: "bytes", data: Buffer.from("e") } }],
    });
    // A small write goes by the plain statement: the replaced write's chunks stay, unread (its row is no longer '').
    expectWrites((await cp.get(addr)).checkpoint, Buffer.from("e"));
    expectWrites((await cp.list({ namespace: ns, threadId: t })).checkpoints[0], Buffer.from("e"));

    // Copied with the thread; removed with the checkpoint (prune) and with the thread.
    const copy = randomUUID();
    await cp.copyThread({ namespace: ns, sourceThreadId: t, targetThreadId: copy });
    expectWrites((await cp.get({ ...addr, threadId: copy })).checkpoint, Buffer.from("e"));
    assert.equal((await chunks(copy)).length, 4);
    await cp.prune({ namespace: ns, threadIds: [t], keepLatest: 0 });
    assert.deepEqual(await chunks(), []);
    await cp.deleteThread({ namespace: ns, threadId: copy });
    assert.equal(await count("checkpoint_write_chunks", ns), 0);
    assert.equal(await count("checkpoint_writes", ns), 0);
  });

  it("a replica of release 3 (its statements, as fixtures) beside this one: its writes are whole, it never reads part of a chunked one", async () => {
    const old = (name: string) =>
      readFileSync(path.resolve(__dirname, "../../../test/fixtures/release3-checkpoint-sql", `${name}.sql`), "utf8");
    const ns = "ck-release3";
    const t = randomUUID();
    const id = nextId();
    await cp.put(put(ns, t, id, "", {}));
    const addr = { namespace: ns, threadId: t, checkpointId: id };
    const big = Buffer.alloc(VALUE_LIMIT * 3 + 5, 9);
    await cp.putWrites({
      ...addr,
      taskId: "k",
      writes: [
        { index: -1, channel: "e", value: { type: "bytes", data: big } },
        { index: 0, channel: "s", value: { type: "json", data: Buffer.from("1") } },
      ],
    });
    // Release 3 reads the chunked write as its marker: type '' (no serializer takes it), no data.
    const read = await pgQuery<{ kind: string; n: number; type: string; data: Buffer }>(
      cluster.databaseUrl,
      old("checkpoint_list"),
      [ns, t, "", id, "", null, null, null, null, 1],
    );
    assert.deepEqual(
      read.filter((r) => r.kind === "w").map((r) => [r.n, r.type, r.data.length]),
      [
        [-1, "", 0],
        [0, "json", 1],
      ],
    );
    // Release 3 replaces it with a whole value and adds one; this release reads both whole.
    const v = Buffer.from('"old"');
    await pgQuery(cluster.databaseUrl, old("checkpoint_writes_put"), [
      ns,
      t,
      "",
      id,
      "k",
      "",
      [-1, 1],
      ["e", "o"],
      ["json", "json"],
      [v.length, v.length],
      Buffer.concat([v, v]),
    ]);
    const got = (await cp.get(addr)).checkpoint!;
    assert.deepEqual(
      got.pendingWrites.map((w) => [w.index, w.value?.type, text(w.value?.data)]),
      [
        [-1, "json", '"old"'],
        [0, "json", "1"],
        [1, "json", '"old"'],
      ],
    );
    // This release replaces it in chunks again (the stale chunks go); release 3's delete leaves
    // chunks behind, which nothing reads (their row is gone).
    await cp.putWrites({
      ...addr,
      taskId: "k",
      writes: [{ index: -1, channel: "e", value: { type: "bytes", data: big } }],
    });
    assert.ok(Buffer.from((await cp.get(addr)).checkpoint!.pendingWrites[0]!.value!.data).equals(big));
    await pgQuery(cluster.databaseUrl, old("checkpoint_delete_thread"), [ns, t]);
    assert.equal((await cp.get(addr)).found, false);
    assert.equal(await count("checkpoint_writes", ns), 0);
  });

  it("metadata above the value limit round-trips (one jsonb, filterable)", async () => {
    const ns = "ck-large-meta";
    const t = randomUUID();
    const id = nextId();
    const note = "m".repeat(VALUE_LIMIT * 3);
    await cp.put({ ...put(ns, t, id, "", {}), metadataJson: json({ source: "loop", note }) });
    const got = await cp.list({ namespace: ns, threadId: t, metadataFilterJson: json({ source: "loop" }) });
    assert.equal(JSON.parse(text(got.checkpoints[0]?.metadataJson)).note, note);
  });

  it("a checkpoint is bounded by one reply: a PutWrites that would take it past is RESOURCE_EXHAUSTED naming the limit, nothing written", async () => {
    const ns = "ck-limit";
    const t = randomUUID();
    const id = nextId();
    const MiB = 1024 * 1024;
    await cp.put({
      ...put(ns, t, id, "", {}),
      channelVersions: { blob: "1" },
      values: [{ channel: "blob", version: "1", value: { type: "bytes", data: Buffer.alloc(MiB, 1) } }],
    });
    const addr = { namespace: ns, threadId: t, checkpointId: id };
    const write = (taskId: string, bytes: number) =>
      cp.putWrites({
        ...addr,
        taskId,
        writes: [{ index: 0, channel: "c", value: { type: "bytes", data: Buffer.alloc(bytes, 2) } }],
      });
    await write("a", MiB);
    await write("b", MiB);
    const before = await count("checkpoint_write_chunks", ns);
    // 1 MiB value + 2 MiB of writes + 1.5 MiB more: over the 4 MiB reply limit (AGENTSTATE_MAX_APPEND_BYTES's default).
    const err = await expectGrpcError(write("c", 1.5 * MiB), status.RESOURCE_EXHAUSTED);
    assert.match(err.details, /AGENTSTATE_MAX_APPEND_BYTES/);
    assert.match(err.details, /nothing was written/);
    assert.equal(await count("checkpoint_writes", ns), 2);
    assert.equal(await count("checkpoint_write_chunks", ns), before);
    // A retry of a stored write is not counted twice; a smaller write still fits, and the checkpoint reads back whole.
    await write("a", MiB);
    await write("c", MiB / 2);
    const got = (await cp.get(addr)).checkpoint!;
    assert.deepEqual(
      got.pendingWrites.map((w) => [w.taskId, w.value?.data.length]),
      [
        ["a", MiB],
        ["b", MiB],
        ["c", MiB / 2],
      ],
    );
  });

  it("strict: a put whose parent is not the head is ABORTED with the head, and nothing is written; a retried put is a replay", async () => {
    const ns = "ck-strict";
    const t = randomUUID();
    const a = nextId();
    const b = nextId();
    await cp.put(put(ns, t, a, "", { x: ["1", "1"] }, {}, { requireParentIsHead: true }));
    await cp.put(put(ns, t, b, a, { x: ["2", "2"] }, {}, { requireParentIsHead: true }));
    // A late worker still building on a.
    const late = nextId();
    const err = await expectGrpcError(
      cp.put(put(ns, t, late, a, { x: ["3", "3"] }, {}, { requireParentIsHead: true })),
      status.ABORTED,
      { reason: "CHECKPOINT_CONFLICT" },
    );
    assert.deepEqual(err.metadata.get("agentstate-checkpoint-head"), [b]);
    assert.match(err.details, new RegExp(b));
    // A parentless strict put on a thread that has checkpoints is a fork too.
    await expectGrpcError(cp.put(put(ns, t, nextId(), "", {}, {}, { requireParentIsHead: true })), status.ABORTED, {
      reason: "CHECKPOINT_CONFLICT",
    });
    assert.equal(await count("checkpoints", ns), 2);
    assert.equal(await count("checkpoint_blobs", ns), 2, "the refused put stored no channel value");
    // The same put of b again (a client retry after a lost reply) succeeds.
    const again = await cp.put(put(ns, t, b, a, { x: ["2", "2"] }, {}, { requireParentIsHead: true }));
    assert.equal(again.created, false);
    // Without strict mode the fork is allowed (time travel), and the head stays the greatest id.
    const fork = nextId();
    await cp.put(put(ns, t, fork, a, { x: ["9", "9"] }));
    assert.equal((await cp.get({ namespace: ns, threadId: t })).checkpoint?.checkpointId, fork);
  });

  it("strict: two workers racing on one thread, 20 steps: exactly one wins each step, the loser sees the winner as head", async () => {
    const ns = "ck-race";
    const t = randomUUID();
    const root = nextId();
    await cp.put(put(ns, t, root, "", {}, {}, { requireParentIsHead: true }));
    const other = new CheckpointClient(cluster.servers[0]!.address);
    try {
      let head = root;
      for (let step = 0; step < 20; step++) {
        const ids = [nextId(), nextId()];
        const outcomes = await Promise.allSettled(
          [cp, other].map((c, w) =>
            c.put(
              put(ns, t, ids[w]!, head, { step: [String(step + 2), String(w)] }, {}, { requireParentIsHead: true }),
            ),
          ),
        );
        const won = outcomes.flatMap((o, w) => (o.status === "fulfilled" ? [w] : []));
        assert.equal(won.length, 1, `step ${step}: exactly one worker wins`);
        const lost = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected")!;
        const e = lost.reason as { code: number; metadata: { get(k: string): unknown[] } };
        assert.equal(e.code, status.ABORTED);
        assert.deepEqual(e.metadata.get("agentstate-checkpoint-head"), [ids[won[0]!]]);
        head = ids[won[0]!]!;
      }
      // One chain: every checkpoint's parent is the one before it.
      const all = (await cp.list({ namespace: ns, threadId: t, limit: 100 })).checkpoints;
      assert.equal(all.length, 21);
      for (let i = 0; i < all.length - 1; i++) assert.equal(all[i]!.parentCheckpointId, all[i + 1]!.checkpointId);
    } finally {
      other.close();
    }
  });

  it("strict: eight first puts racing on a new thread (its head row created by one of them): exactly one wins", async () => {
    const ns = "ck-race-first";
    for (let round = 0; round < 5; round++) {
      const t = randomUUID();
      const ids = Array.from({ length: 8 }, () => nextId());
      const outcomes = await Promise.allSettled(
        ids.map((id, w) => cp.put(put(ns, t, id, "", { w: [String(w), "0"] }, {}, { requireParentIsHead: true }))),
      );
      const won = outcomes.flatMap((o, w) => (o.status === "fulfilled" ? [w] : []));
      assert.equal(won.length, 1, `round ${round}: exactly one first put wins`);
      for (const o of outcomes) {
        if (o.status === "fulfilled") continue;
        const e = o.reason as { code: number; metadata: { get(k: string): unknown[] } };
        assert.equal(e.code, status.ABORTED);
        assert.deepEqual(e.metadata.get("agentstate-checkpoint-head"), [ids[won[0]!]]);
      }
      const all = (await cp.list({ namespace: ns, threadId: t, limit: 100 })).checkpoints;
      assert.deepEqual(
        all.map((c) => c.checkpointId),
        [ids[won[0]!]],
      );
    }
  });

  it("pending writes: idempotent per (task, index); negative indexes replace; ordered by task path, task, index", async () => {
    const ns = "ck-writes";
    const t = randomUUID();
    const id = nextId();
    await cp.put(put(ns, t, id, "", {}));
    const w = (index: number, channel: string, v: string) => ({
      index,
      channel,
      value: { type: "json", data: Buffer.from(v) },
    });
    const addr = { namespace: ns, threadId: t, checkpointId: id };
    assert.equal(
      (await cp.putWrites({ ...addr, taskId: "task-b", writes: [w(0, "a", "1"), w(1, "b", "2")] })).stored,
      2,
    );
    assert.equal((await cp.putWrites({ ...addr, taskId: "task-b", writes: [w(0, "a", "changed")] })).stored, 0);
    await cp.putWrites({ ...addr, taskId: "task-a", writes: [w(-1, "__error__", "first")] });
    assert.equal((await cp.putWrites({ ...addr, taskId: "task-a", writes: [w(-1, "__error__", "second")] })).stored, 1);
    const got = (await cp.get({ namespace: ns, threadId: t, checkpointId: id })).checkpoint!;
    assert.deepEqual(
      got.pendingWrites.map((p) => [p.taskId, p.index, p.channel, text(p.value?.data)]),
      [
        ["task-a", -1, "__error__", "second"],
        ["task-b", 0, "a", "1"],
        ["task-b", 1, "b", "2"],
      ],
    );
  });

  it("lists newest first with before, limit, a metadata filter, pages, and across threads", async () => {
    const ns = "ck-list";
    const t1 = "thread-1";
    const t2 = "thread-2";
    const ids: string[] = [];
    for (const t of [t1, t2, t1, t2, t1]) {
      const id = nextId();
      const prev = ids.filter((_, i) => [t1, t2, t1, t2, t1][i] === t).pop() ?? "";
      await cp.put({
        ...put(ns, t, id, prev, {}),
        metadataJson: json({ source: ids.length % 2 ? "loop" : "input", run: t }),
      });
      ids.push(id);
    }
    const page = (r: { checkpoints: Checkpoint[] }) => r.checkpoints.map((c) => c.checkpointId);
    assert.deepEqual(page(await cp.list({ namespace: ns, threadId: t1 })), [ids[4], ids[2], ids[0]]);
    assert.deepEqual(page(await cp.list({ namespace: ns })), [...ids].reverse());
    assert.deepEqual(page(await cp.list({ namespace: ns, threadId: t1, beforeCheckpointId: ids[4] })), [
      ids[2],
      ids[0],
    ]);
    assert.deepEqual(page(await cp.list({ namespace: ns, metadataFilterJson: json({ source: "loop" }) })), [
      ids[3],
      ids[1],
    ]);
    assert.deepEqual(
      page(await cp.list({ namespace: ns, threadId: t1, metadataFilterJson: json({ source: "input" }) })),
      [ids[4], ids[2], ids[0]],
    );
    assert.deepEqual(page(await cp.list({ namespace: ns, checkpointNs: "child" })), []);
    // Pages of 2 cover everything once, in order.
    const seen: string[] = [];
    let token = "";
    do {
      const r = await cp.list({ namespace: ns, limit: 2, pageToken: token });
      seen.push(...page(r));
      token = r.nextPageToken;
    } while (token !== "");
    assert.deepEqual(seen, [...ids].reverse());
  });

  it("deletes, copies and prunes threads, and deletes the checkpoints of runs", async () => {
    const ns = "ck-admin";
    const src = randomUUID();
    const ids = [nextId(), nextId(), nextId()];
    await cp.put({ ...put(ns, src, ids[0]!, "", { m: ["1", "a"] }), metadataJson: json({ run_id: "r1" }) });
    await cp.put({ ...put(ns, src, ids[1]!, ids[0]!, { m: ["2", "b"] }), metadataJson: json({ run_id: "r2" }) });
    await cp.put({
      ...put(ns, src, ids[2]!, ids[1]!, { n: ["1", "c"] }, { m: "2" }),
      metadataJson: json({ run_id: "r2" }),
    });
    await cp.putWrites({
      namespace: ns,
      threadId: src,
      checkpointId: ids[0]!,
      taskId: "t",
      writes: [{ index: 0, channel: "m", value: { type: "json", data: json(1) } }],
    });
    await cp.putWrites({
      namespace: ns,
      threadId: src,
      checkpointId: ids[2]!,
      taskId: "t",
      writes: [{ index: 0, channel: "m", value: { type: "json", data: json(2) } }],
    });

    const dst = randomUUID();
    assert.equal(
      (await cp.copyThread({ namespace: ns, sourceThreadId: src, targetThreadId: dst })).checkpointsCopied,
      3,
    );
    const copied = (await cp.get({ namespace: ns, threadId: dst })).checkpoint!;
    assert.equal(copied.checkpointId, ids[2]);
    assert.deepEqual(valuesOf(copied), { m: "b", n: "c" });
    assert.equal(copied.pendingWrites.length, 1);

    // keep_latest 1 on the copy: the latest stays with its writes and every value it references; m@1 goes.
    assert.equal((await cp.prune({ namespace: ns, threadIds: [dst], keepLatest: 1 })).checkpointsDeleted, 2);
    const kept = (await cp.list({ namespace: ns, threadId: dst })).checkpoints;
    assert.deepEqual(
      kept.map((c) => c.checkpointId),
      [ids[2]],
    );
    assert.deepEqual(valuesOf(kept[0]), { m: "b", n: "c" });
    assert.equal(kept[0]!.pendingWrites.length, 1);
    const dstBlobs = await pgQuery<{ channel: string; version: string }>(
      cluster.databaseUrl,
      "SELECT channel, version FROM checkpoint_blobs WHERE namespace = $1 AND thread_id = $2 ORDER BY 1, 2",
      [ns, dst],
    );
    assert.deepEqual(dstBlobs, [
      { channel: "m", version: "2" },
      { channel: "n", version: "1" },
    ]);
    assert.equal(
      (
        await pgQuery(cluster.databaseUrl, "SELECT 1 FROM checkpoint_writes WHERE namespace = $1 AND thread_id = $2", [
          ns,
          dst,
        ])
      ).length,
      1,
    );

    // delete_for_runs: r2's two checkpoints on both threads; r1's stays on the source.
    assert.equal((await cp.deleteForRuns({ namespace: ns, runIds: ["r2", "nope"] })).checkpointsDeleted, 3);
    assert.deepEqual(page(await cp.list({ namespace: ns })), [ids[0]]);
    assert.equal((await cp.get({ namespace: ns, threadId: src })).checkpoint?.checkpointId, ids[0]);

    assert.equal((await cp.deleteThread({ namespace: ns, threadId: src })).checkpointsDeleted, 1);
    for (const table of ["checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_heads"]) {
      assert.equal(await count(table, ns), 0, table);
    }
    function page(r: { checkpoints: Checkpoint[] }) {
      return r.checkpoints.map((c) => c.checkpointId);
    }
  });

  it("bad input: INVALID_ARGUMENT naming the field, nothing written", async () => {
    const ns = "ck-bad";
    const good = put(ns, "t", nextId(), "", { a: ["1", "x"] });
    const cases: [Partial<PutCheckpointRequest>, string][] = [
      [{ threadId: "" }, "thread_id"],
      [{ checkpointId: "" }, "checkpoint_id"],
      [{ document: undefined }, "document"],
      [{ metadataJson: Buffer.from("[1]") }, "metadata_json"],
      [{ metadataJson: Buffer.from("{not json") }, "metadata_json"],
      [{ channelVersions: {} }, "values[0]"],
      [{ threadId: "x".repeat(2000) }, "thread_id"],
    ];
    for (const [patch, field] of cases) {
      await expectGrpcError(cp.put({ ...good, ...patch }), status.INVALID_ARGUMENT, { field });
    }
    await expectGrpcError(
      cp.putWrites({ namespace: ns, threadId: "t", checkpointId: "c", taskId: "", writes: [] }),
      status.INVALID_ARGUMENT,
      { field: "task_id" },
    );
    await expectGrpcError(cp.get({ namespace: ns, threadId: "" }), status.INVALID_ARGUMENT, { field: "thread_id" });
    await expectGrpcError(cp.list({ namespace: ns, metadataFilterJson: Buffer.from('"x"') }), status.INVALID_ARGUMENT, {
      field: "metadata_filter_json",
    });
    // Over the message limit: refused by the transport, nothing written.
    await expectGrpcError(
      cp.put({
        ...good,
        values: [{ channel: "a", version: "1", value: { type: "bytes", data: Buffer.alloc(5 * 1024 * 1024) } }],
      }),
      status.RESOURCE_EXHAUSTED,
    );
    for (const table of ["checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_heads"]) {
      assert.equal(await count(table, ns), 0, table);
    }
  });
});

describe("CheckpointService: fuzzed requests (guarantee 6)", function () {
  this.timeout(300_000);
  let cluster: Cluster;
  let raw: RawGrpcClient;

  before(async () => {
    cluster = await startCluster({ name: "checkpoints_fuzz" });
    raw = new RawGrpcClient(cluster.servers[0]!.address);
  });
  after(async () => {
    raw?.close();
    await cluster?.stop();
  });

  it("random and malformed requests to every method: a documented status, never INTERNAL; INVALID_ARGUMENT names a field; the server lives", async () => {
    const text = fc.oneof(
      fc.constant(""),
      fc.string({ maxLength: 12 }),
      fc.constant("a\u0000b"),
      fc.constant("x".repeat(1100)),
      fc.constantFrom("ns-1", "t", "c-1", "-1"),
    );
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
      fc.constantFrom('{"a":1}', "[1]", "{", '"x"', '{"a":"\\u0000"}', "").map((t) => Buffer.from(t)),
    );
    const typed = fc.option(fc.record({ type: text, data: bytes }), { nil: undefined });
    const ns = fc.oneof(fc.constant("fz"), text);
    const requests: [string, fc.Arbitrary<Buffer>][] = [
      [
        "PutCheckpoint",
        fc
          .record({
            namespace: ns,
            threadId: text,
            checkpointNs: text,
            checkpointId: text,
            parentCheckpointId: text,
            document: typed,
            metadataJson: bytes,
            channelVersions: fc.dictionary(text, text, { maxKeys: 3 }),
            values: fc.array(fc.record({ channel: text, version: text, value: typed }), { maxLength: 3 }),
            requireParentIsHead: fc.boolean(),
          })
          .map((r) => Buffer.from(PutCheckpointRequest.encode(PutCheckpointRequest.fromPartial(r)).finish())),
      ],
      [
        "PutWrites",
        fc
          .record({
            namespace: ns,
            threadId: text,
            checkpointNs: text,
            checkpointId: text,
            taskId: text,
            taskPath: text,
            writes: fc.array(fc.record({ index: fc.integer({ min: -5, max: 5 }), channel: text, value: typed }), {
              maxLength: 3,
            }),
          })
          .map((r) => Buffer.from(PutWritesRequest.encode(PutWritesRequest.fromPartial(r)).finish())),
      ],
      [
        "GetCheckpoint",
        fc
          .record({ namespace: ns, threadId: text, checkpointNs: text, checkpointId: text })
          .map((r) => Buffer.from(GetCheckpointRequest.encode(GetCheckpointRequest.fromPartial(r)).finish())),
      ],
      [
        "ListCheckpoints",
        fc
          .record({
            namespace: ns,
            threadId: text,
            checkpointNs: fc.option(text, { nil: undefined }),
            beforeCheckpointId: text,
            metadataFilterJson: bytes,
            limit: fc.integer({ min: -2, max: 2000 }),
            pageToken: text,
          })
          .map((r) => Buffer.from(ListCheckpointsRequest.encode(ListCheckpointsRequest.fromPartial(r)).finish())),
      ],
      [
        "PruneCheckpoints",
        fc
          .record({
            namespace: ns,
            threadIds: fc.array(text, { maxLength: 3 }),
            keepLatest: fc.integer({ min: -2, max: 3 }),
          })
          .map((r) => Buffer.from(PruneCheckpointsRequest.encode(PruneCheckpointsRequest.fromPartial(r)).finish())),
      ],
    ];
    const allowed = new Set([status.OK, status.INVALID_ARGUMENT, status.ABORTED]);
    const methods = [...requests.map(([m]) => m), "DeleteThread", "CopyThread", "DeleteForRuns"];
    for (const m of methods) {
      const arb = requests.find(([n]) => n === m)?.[1] ?? randomBytesRequest;
      await fc.assert(
        fc.asyncProperty(fc.oneof(arb, randomBytesRequest), async (payload) => {
          const r = await raw.unary(`/agentstate.v1.CheckpointService/${m}`, payload);
          assert.ok(allowed.has(r.code), `${m}: ${status[r.code]} ${r.details}`);
          if (r.code === status.INVALID_ARGUMENT) {
            assert.equal(r.metadata.get("agentstate-field").length, 1, `${m}: ${r.details} names no field`);
          }
        }),
        {
          numRuns: Number(process.env.FUZZ_RUNS ?? 60),
          seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined,
        },
      );
    }
    assert.ok(cluster.servers[0]!.running, "the server is alive");
  });
});

describe("CheckpointService: retention by the Janitor", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let cp: CheckpointClient;

  before(async () => {
    cluster = await startCluster({
      name: "checkpoints_retention",
      env: { AGENTSTATE_CHECKPOINT_KEEP_LATEST: "2", AGENTSTATE_JANITOR_INTERVAL_MS: "200" },
    });
    cp = new CheckpointClient(cluster.servers[0]!.address);
  });
  after(async () => {
    cp?.close();
    await cluster?.stop();
  });

  it("keeps exactly the latest 2 checkpoints per thread and checkpoint ns, with their values; drops the rest's writes", async () => {
    const ns = "ck-retain";
    const threads = [randomUUID(), randomUUID()];
    const byThread = new Map<string, string[]>();
    for (const t of threads) {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const id = nextId();
        // Channel "k" is written once (version 1) and referenced by every checkpoint.
        await cp.put(
          put(
            ns,
            t,
            id,
            ids[ids.length - 1] ?? "",
            i === 0 ? { k: ["1", "kept"], s: ["1", "0"] } : { s: [String(i + 1), String(i)] },
            i === 0 ? {} : { k: "1" },
          ),
        );
        await cp.putWrites({
          namespace: ns,
          threadId: t,
          checkpointId: id,
          taskId: "t",
          writes: [{ index: 0, channel: "s", value: { type: "json", data: json(i) } }],
        });
        ids.push(id);
      }
      byThread.set(t, ids);
    }
    await eventually(
      "retention to leave 4 checkpoints",
      async () => {
        const n = await pgQuery<{ n: string }>(
          cluster.databaseUrl,
          "SELECT count(*) AS n FROM checkpoints WHERE namespace = $1",
          [ns],
        );
        return Number(n[0]!.n) === 4;
      },
      { timeoutMs: 30_000 },
    );
    for (const t of threads) {
      const ids = byThread.get(t)!;
      const kept = (await cp.list({ namespace: ns, threadId: t })).checkpoints;
      assert.deepEqual(
        kept.map((c) => c.checkpointId),
        [ids[5], ids[4]],
      );
      assert.deepEqual(valuesOf(kept[0]), { k: "kept", s: "5" });
      assert.deepEqual(valuesOf(kept[1]), { k: "kept", s: "4" });
      for (const c of kept) assert.equal(c.pendingWrites.length, 1);
    }
    const writes = await pgQuery<{ n: string }>(
      cluster.databaseUrl,
      "SELECT count(*) AS n FROM checkpoint_writes WHERE namespace = $1",
      [ns],
    );
    assert.equal(Number(writes[0]!.n), 4);
    const blobs = await pgQuery<{ n: string }>(
      cluster.databaseUrl,
      "SELECT count(*) AS n FROM checkpoint_blobs WHERE namespace = $1",
      [ns],
    );
    assert.equal(Number(blobs[0]!.n), 2 * 3, "per thread: k@1, s@5, s@6");
  });
});

describe("CheckpointService: age retention by the Janitor", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let cp: CheckpointClient;

  before(async () => {
    cluster = await startCluster({
      name: "checkpoints_age",
      env: { AGENTSTATE_CHECKPOINT_RETENTION_SECONDS: "2", AGENTSTATE_JANITOR_INTERVAL_MS: "200" },
    });
    cp = new CheckpointClient(cluster.servers[0]!.address);
  });
  after(async () => {
    cp?.close();
    await cluster?.stop();
  });

  it("removes checkpoints older than the TTL except each thread's latest, with their writes and values", async () => {
    const ns = "ck-age";
    const ids = [nextId(), nextId(), nextId()];
    await cp.put(put(ns, "busy", ids[0]!, "", { m: ["1", "old"] }));
    await cp.put(put(ns, "busy", ids[1]!, ids[0]!, { m: ["2", "older"] }));
    await cp.putWrites({
      namespace: ns,
      threadId: "busy",
      checkpointId: ids[1]!,
      taskId: "t",
      writes: [{ index: 0, channel: "m", value: { type: "json", data: json(1) } }],
    });
    const idle = nextId();
    await cp.put(put(ns, "idle", idle, "", { m: ["1", "only"] }));
    // Past the TTL, one more step on "busy": its first two checkpoints are now old and not the head.
    const stored = async () =>
      (
        await pgQuery<{ thread_id: string; checkpoint_id: string }>(
          cluster.databaseUrl,
          "SELECT thread_id, checkpoint_id FROM checkpoints WHERE namespace = $1 ORDER BY 1, 2",
          [ns],
        )
      ).map((r) => `${r.thread_id}/${r.checkpoint_id}`);
    await eventually(
      "the first checkpoints to pass the TTL",
      async () => {
        const age = await pgQuery<{ old: boolean }>(
          cluster.databaseUrl,
          "SELECT min(created_at) < now() - interval '2 seconds' AS old FROM checkpoints WHERE namespace = $1",
          [ns],
        );
        return age[0]!.old;
      },
      { timeoutMs: 20_000 },
    );
    await cp.put(put(ns, "busy", ids[2]!, ids[1]!, { n: ["1", "new"] }, { m: "2" }));
    await eventually(
      "age retention",
      async () => (await stored()).length === 2 && (await stored()).includes(`busy/${ids[2]}`),
      { timeoutMs: 30_000 },
    );
    assert.deepEqual(await stored(), [`busy/${ids[2]}`, `idle/${idle}`]);
    // The latest keeps the value it references (m@2, written by a removed checkpoint); m@1 and the writes are gone.
    assert.deepEqual(valuesOf((await cp.get({ namespace: ns, threadId: "busy" })).checkpoint), {
      m: "older",
      n: "new",
    });
    const writes = await pgQuery(cluster.databaseUrl, "SELECT 1 FROM checkpoint_writes WHERE namespace = $1", [ns]);
    assert.equal(writes.length, 0);
    const blobs = await pgQuery<{ k: string }>(
      cluster.databaseUrl,
      "SELECT thread_id || ':' || channel || '@' || version AS k FROM checkpoint_blobs WHERE namespace = $1 ORDER BY 1",
      [ns],
    );
    assert.deepEqual(
      blobs.map((b) => b.k),
      ["busy:m@2", "busy:n@1", "idle:m@1"],
    );
  });
});
