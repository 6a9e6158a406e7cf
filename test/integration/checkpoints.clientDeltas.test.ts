/**
 * Channel values a client sends as deltas (ChannelValueDelta), against real
 * Postgres and two real server replicas over gRPC: a delta is stored as it was
 * sent (base, CRC, depth on chunk 0, as the server's own deltas) and reads back
 * whole; a replica that never saw the base learns its CRC and depth from
 * Postgres; a delta naming a base that is not stored as named (unknown
 * version, another CRC, deleted meanwhile through the other replica) or one
 * past the chain bound is refused with FAILED_PRECONDITION, reason
 * CHECKPOINT_DELTA_BASE, and nothing of the put is written; bad deltas are
 * INVALID_ARGUMENT naming the field, nothing written. The deltas are made by
 * the TypeScript client's makeValueDelta, which must give the server's bytes.
 */
import * as assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import type { ServiceError } from "@grpc/grpc-js";
import { makeValueDelta } from "../../clients/typescript/src/checkpointDeltas";
import { makeDelta } from "../../src/store/postgres/valueDelta";
import { CheckpointClient } from "../support/checkpointClient";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

const CHAIN = 3;
/** Values and deltas above this are stored in chunks of it. */
const VALUE_LIMIT = 4096;
const version = (i: number) => `${String(i).padStart(32, "0")}.0.5`;
const id = (i: number) => `ck-${String(i).padStart(4, "0")}`;
/** Step n's list: the first n + 4 items (so each step's growth is under half the value). */
const list = (items: string[], n: number) => Buffer.from(JSON.stringify(items.slice(0, n + 4)));

describe("CheckpointService: channel values sent as deltas by the client (real Postgres)", function () {
  this.timeout(180_000);
  let cluster: Cluster;
  let cp: CheckpointClient;
  let other: CheckpointClient;
  const ns = "client-deltas";

  before(async () => {
    cluster = await startCluster({
      name: "checkpoints_client_deltas",
      replicas: 2,
      env: { AGENTSTATE_CHECKPOINT_DELTA_CHAIN: String(CHAIN), AGENTSTATE_MAX_VALUE_BYTES: String(VALUE_LIMIT) },
    });
    cp = new CheckpointClient(cluster.servers[0]!.address);
    other = new CheckpointClient(cluster.servers[1]!.address);
  });
  after(async () => {
    cp?.close();
    other?.close();
    await cluster?.stop();
  });

  /** A put of step i on `thread` (parent step i - 1), its messages whole or as given. */
  function put(client: CheckpointClient, thread: string, i: number, value: object, parent = i === 1 ? "" : id(i - 1)) {
    return client.put({
      namespace: ns,
      threadId: thread,
      checkpointNs: "",
      checkpointId: id(i),
      parentCheckpointId: parent,
      document: { type: "json", data: Buffer.from(JSON.stringify({ id: id(i) })) },
      metadataJson: Buffer.from("{}"),
      channelVersions: { messages: version(i) },
      values: [{ channel: "messages", version: version(i), ...value }],
      requireParentIsHead: true,
    });
  }

  const whole = (data: Buffer) => ({ value: { type: "json", data } });
  /** Step `to`'s list as a delta of step `from`'s. */
  function delta(items: string[], from: number, to: number, over: Record<string, unknown> = {}) {
    const base = list(items, from);
    const value = list(items, to);
    const data = makeValueDelta(base, value, "json")!;
    assert.ok(data !== undefined, "the delta pays");
    return {
      delta: {
        baseVersion: version(from),
        baseCrc32: crc32(base),
        data,
        crc32: crc32(value),
        size: value.length,
        type: "json",
        ...over,
      },
    };
  }

  const messagesAt = async (client: CheckpointClient, thread: string, checkpointId?: string) => {
    const r = await client.get({ namespace: ns, threadId: thread, checkpointId });
    const v = r.checkpoint?.values.find((x) => x.channel === "messages");
    assert.equal(v?.delta, undefined, "replies carry whole values");
    return Buffer.from(v?.value?.data ?? new Uint8Array());
  };

  const rows = (thread: string) =>
    pgQuery<{ version: string; type: string; data: Buffer; base: string | null; depth: number | null; crc: number }>(
      cluster.databaseUrl,
      `SELECT version, type, data, base, depth, crc FROM checkpoint_blobs
       WHERE namespace = $1 AND thread_id = $2 AND chunk = 0 ORDER BY version`,
      [ns, thread],
    );
  const checkpoints = async (thread: string) =>
    (
      await pgQuery<{ id: string }>(
        cluster.databaseUrl,
        "SELECT checkpoint_id AS id FROM checkpoints WHERE namespace = $1 AND thread_id = $2 ORDER BY 1",
        [ns, thread],
      )
    ).map((r) => r.id);

  async function refused(p: Promise<unknown>, code: number, check: (e: ServiceError) => void) {
    await assert.rejects(p, (e: ServiceError) => {
      assert.equal(e.code, code, e.details);
      check(e);
      return true;
    });
  }
  const deltaBase = (p: Promise<unknown>, why: RegExp) =>
    refused(p, 9 /* FAILED_PRECONDITION */, (e) => {
      assert.equal(e.metadata.get("agentstate-reason")[0], "CHECKPOINT_DELTA_BASE");
      assert.match(e.details, why);
    });
  const invalid = (p: Promise<unknown>, field: string) =>
    refused(p, 3 /* INVALID_ARGUMENT */, (e) => assert.equal(e.metadata.get("agentstate-field")[0], field));

  const itemsOf = (n: number) => Array.from({ length: n + 4 }, () => randomBytes(100).toString("hex"));

  it("the client's delta format is the server's, byte for byte", () => {
    const items = itemsOf(20);
    for (const [from, to] of [
      [3, 4],
      [10, 12],
      [5, 6],
    ] as const) {
      const a = makeValueDelta(list(items, from), list(items, to), "json");
      const b = makeDelta(list(items, from), list(items, to), "json");
      assert.ok(a !== undefined && b !== undefined && a.equals(b), `${from} -> ${to}`);
    }
    // A msgpack-like list whose length header changes: a run past the header.
    const base = Buffer.concat([Buffer.from([0x93]), randomBytes(600)]);
    const value = Buffer.concat([Buffer.from([0x94]), base.subarray(1), randomBytes(40)]);
    assert.ok(makeValueDelta(base, value, "msgpack")!.equals(makeDelta(base, value, "msgpack")!));
    assert.equal(makeValueDelta(base, randomBytes(700), "msgpack"), undefined, "a delta that does not pay");
  });

  it("a delta is stored as sent (base, CRC, depth) and reads back whole, through either replica", async () => {
    const thread = randomUUID();
    const items = itemsOf(10);
    await put(cp, thread, 1, whole(list(items, 1)));
    await put(cp, thread, 2, whole(list(items, 2)));
    const d3 = delta(items, 2, 3);
    await put(cp, thread, 3, d3);
    // The other replica never saw this thread: it reads the base's CRC and depth from Postgres.
    await put(other, thread, 4, delta(items, 3, 4));
    const r = await rows(thread);
    const at = (i: number) => r.find((x) => x.version === version(i))!;
    assert.equal(at(3).type, "");
    assert.equal(at(3).base, version(2));
    assert.ok(at(3).data.equals(d3.delta.data), "stored as sent");
    assert.equal(at(3).crc, crc32(list(items, 3)) | 0);
    assert.equal(at(4).base, version(3));
    // The server's own delta of version 2 (it stored 1 and 2 whole-sent) counts in the chain.
    assert.equal(at(4).depth, (at(2).depth ?? 0) + 2);
    for (const i of [1, 2, 3, 4]) {
      assert.ok((await messagesAt(cp, thread, id(i))).equals(list(items, i)), `step ${i}`);
      assert.ok((await messagesAt(other, thread, id(i))).equals(list(items, i)), `step ${i}, other replica`);
    }
  });

  it("a delta above the value limit is stored in chunks, its base too, and reads back whole", async () => {
    const thread = randomUUID();
    const items = itemsOf(60);
    // Step 36's list (40 items, ~8 KB: 2 chunks) whole, step 60's (64 items) as a delta of it (~5 KB: 2 chunks).
    await put(cp, thread, 36, whole(list(items, 36)), "");
    const d = delta(items, 36, 60);
    assert.ok(d.delta.data.length > VALUE_LIMIT, `${d.delta.data.length}`);
    await put(cp, thread, 60, d, id(36));
    const chunks = await pgQuery<{ version: string; n: string }>(
      cluster.databaseUrl,
      "SELECT version, count(*) AS n FROM checkpoint_blobs WHERE namespace = $1 AND thread_id = $2 GROUP BY 1 ORDER BY 1",
      [ns, thread],
    );
    assert.deepEqual(
      chunks.map((c) => Number(c.n)),
      [2, 2],
    );
    assert.ok((await messagesAt(cp, thread)).equals(list(items, 60)));
    assert.ok((await messagesAt(other, thread, id(36))).equals(list(items, 36)));
  });

  it("a delta whose bytes do not make its CRC-32: stored as sent, and every read of it is INTERNAL, never a wrong value", async () => {
    const thread = randomUUID();
    const items = itemsOf(10);
    await put(cp, thread, 1, whole(list(items, 1)));
    await put(cp, thread, 2, whole(list(items, 2)));
    // The delta of step 3, but declaring the CRC-32 of other bytes of the same size.
    const lying = delta(items, 2, 3);
    const wrong = Buffer.from(list(items, 3));
    wrong.writeUInt8(wrong.readUInt8(wrong.length - 2) ^ 0x01, wrong.length - 2);
    lying.delta.crc32 = crc32(wrong);
    await put(cp, thread, 3, lying);
    for (const client of [cp, other]) {
      await refused(client.get({ namespace: ns, threadId: thread, checkpointId: id(3) }), 13 /* INTERNAL */, (e) =>
        assert.doesNotMatch(e.details, /crc|delta|[0-9a-f]{16}/i, "a generic INTERNAL: no detail of the data"),
      );
      await refused(client.get({ namespace: ns, threadId: thread }), 13, () => undefined);
      // Checkpoints that do not reference it still read whole and right.
      assert.ok((await messagesAt(client, thread, id(2))).equals(list(items, 2)));
    }
  });

  it("a base not stored as named: FAILED_PRECONDITION CHECKPOINT_DELTA_BASE, nothing written", async () => {
    const thread = randomUUID();
    const items = itemsOf(10);
    await put(cp, thread, 1, whole(list(items, 1)));
    await put(cp, thread, 2, whole(list(items, 2)));
    // Another CRC (the base holds other bytes than the client's), through both replicas.
    const badCrc = delta(items, 2, 3, { baseCrc32: (crc32(list(items, 2)) + 1) >>> 0 });
    await deltaBase(put(cp, thread, 3, badCrc), /another CRC-32/);
    await deltaBase(put(other, thread, 3, badCrc), /another CRC-32/);
    // A version never stored.
    const unknown = delta(items, 2, 3, { baseVersion: version(99) });
    await deltaBase(put(cp, thread, 3, unknown), /not stored/);
    await deltaBase(put(other, thread, 3, unknown), /not stored/);
    assert.deepEqual(await checkpoints(thread), [id(1), id(2)]);
    assert.equal((await rows(thread)).length, 2);
    // The whole value goes.
    await put(cp, thread, 3, whole(list(items, 3)));
    assert.ok((await messagesAt(other, thread)).equals(list(items, 3)));
  });

  it("a base deleted through another replica after this one stored it: refused under the head lock, nothing written", async () => {
    const thread = randomUUID();
    const items = itemsOf(10);
    await put(cp, thread, 1, whole(list(items, 1)));
    await put(cp, thread, 2, delta(items, 1, 2));
    // cp's replica knows version 2 (its CRC and depth); the other deletes it.
    await other.deleteThread({ namespace: ns, threadId: thread });
    await cp
      .put({
        namespace: ns,
        threadId: thread,
        checkpointNs: "",
        checkpointId: id(3),
        parentCheckpointId: "",
        document: { type: "json", data: Buffer.from("{}") },
        channelVersions: { messages: version(3) },
        values: [{ channel: "messages", version: version(3), ...delta(items, 2, 3) }],
        requireParentIsHead: true,
      })
      .then(
        () => assert.fail("the put went through"),
        (e: ServiceError) => {
          assert.equal(e.code, 9, e.details);
          assert.equal(e.metadata.get("agentstate-reason")[0], "CHECKPOINT_DELTA_BASE");
        },
      );
    assert.deepEqual(await checkpoints(thread), []);
    assert.equal((await rows(thread)).length, 0);
  });

  it(`a base already ${CHAIN} deltas deep (AGENTSTATE_CHECKPOINT_DELTA_CHAIN): refused, nothing written`, async () => {
    const thread = randomUUID();
    const items = itemsOf(10);
    await put(cp, thread, 1, whole(list(items, 1)));
    for (let i = 2; i <= CHAIN + 1; i++) await put(cp, thread, i, delta(items, i - 1, i));
    const r = await rows(thread);
    assert.equal(r.find((x) => x.version === version(CHAIN + 1))!.depth, CHAIN);
    const deep = delta(items, CHAIN + 1, CHAIN + 2);
    // Known to this replica, and read from Postgres by the other.
    await deltaBase(put(cp, thread, CHAIN + 2, deep), new RegExp(`already ${CHAIN} deltas deep, the most is ${CHAIN}`));
    await deltaBase(put(other, thread, CHAIN + 2, deep), /AGENTSTATE_CHECKPOINT_DELTA_CHAIN/);
    assert.equal((await checkpoints(thread)).length, CHAIN + 1);
    assert.equal((await rows(thread)).length, CHAIN + 1);
    await put(other, thread, CHAIN + 2, whole(list(items, CHAIN + 2)));
    assert.ok((await messagesAt(cp, thread)).equals(list(items, CHAIN + 2)));
  });

  it("bad deltas are INVALID_ARGUMENT naming the field, nothing written", async () => {
    const thread = randomUUID();
    const items = itemsOf(10);
    await put(cp, thread, 1, whole(list(items, 1)));
    const good = delta(items, 1, 2);
    const withData = (f: (b: Buffer) => Buffer) => delta(items, 1, 2, { data: f(Buffer.from(good.delta.data)) });
    const cases: [Record<string, unknown>, string][] = [
      [{ ...good, ...whole(list(items, 2)) }, "values[0]"],
      [delta(items, 1, 2, { baseVersion: "" }), "values[0].delta.base_version"],
      [delta(items, 1, 2, { baseVersion: version(2) }), "values[0].delta.base_version"],
      [delta(items, 1, 2, { type: "" }), "values[0].delta.type"],
      [delta(items, 1, 2, { type: "x".repeat(256) }), "values[0].delta.type"],
      [delta(items, 1, 2, { type: "empty" }), "values[0].delta.type"],
      [delta(items, 1, 2, { type: "msgpack" }), "values[0].delta.data"],
      [withData((b) => Buffer.concat([Buffer.from([2]), b.subarray(1)])), "values[0].delta.data"],
      [withData((b) => b.subarray(0, 10)), "values[0].delta.data"],
      [delta(items, 1, 2, { size: list(items, 2).length + 1 }), "values[0].delta.size"],
      [delta(items, 1, 2, { size: 2 ** 40 }), "values[0].delta.size"],
      // The run one byte longer than head, run and tail add up to (the "json" tag: run length at 10).
      [
        withData((b) => {
          b.writeUInt32LE(b.readUInt32LE(10) + 1, 10);
          return b;
        }),
        "values[0].delta.size",
      ],
    ];
    for (const [value, field] of cases) {
      await invalid(put(cp, thread, 2, value), field);
    }
    // A run 2 bytes longer and a tail 2 bytes shorter: sizes add up, but the run
    // ends past the base (whose size the server knows, or reads): the store refuses it.
    const longer = Buffer.from(good.delta.data);
    longer.writeUInt32LE(longer.readUInt32LE(10) + 2, 10);
    const trimmed = longer.subarray(0, longer.length - 2);
    await invalid(put(cp, thread, 2, delta(items, 1, 2, { data: trimmed })), "values.delta.data");
    await invalid(put(other, thread, 2, delta(items, 1, 2, { data: trimmed })), "values.delta.data");
    assert.deepEqual(await checkpoints(thread), [id(1)]);
    assert.equal((await rows(thread)).length, 1);
  });
});
