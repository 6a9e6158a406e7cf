/**
 * Group commit of KV writes: concurrent CompareAndSet/Delete calls on one
 * replica are committed together (one agentstate_kv_write call per batch),
 * yet each behaves as if made alone: its own condition against the state the
 * writes before it left, its own fence and idempotency outcome, its own
 * revision, and a key held elsewhere stalls only the writes on that key.
 */
import * as assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { status } from "@grpc/grpc-js";
import { Client } from "pg";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { backendWaitingOnLock } from "../support/backendWaitingOnLock";
import { expectGrpcError } from "../support/expectGrpcError";
import { pgQuery } from "../support/pgQuery";
import { histogramStats } from "../support/histogramStats";
import { startCluster, type Cluster } from "../support/startCluster";

const NS = "batch";
const utf8 = (s: string) => Buffer.from(s, "utf8");

describe("KeyValueService: group commit of concurrent writes (real server, Postgres, Redis)", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let c: AgentstateClient;

  before(async () => {
    cluster = await startCluster({ name: "kv_batch", redis: true });
    c = cluster.clients[0]!;
  });
  after(async () => {
    await cluster?.stop();
  });

  /** Batches sent and writes in them so far, from the server's metrics. */
  async function batchStats(): Promise<{ batches: number; writes: number }> {
    const h = await histogramStats(cluster.servers[0]!, "agentstate_kv_write_batch_size");
    return { batches: h.count, writes: h.sum };
  }

  it("many concurrent writes share batches; each gets its own distinct revision, all durable", async () => {
    const before = await batchStats();
    const n = 80;
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        c.compareAndSet({ namespace: NS, key: `many/${i}`, expected: { absent: true }, value: utf8(`v${i}`) }),
      ),
    );
    const after = await batchStats();
    assert.ok(
      replies.every((r) => r.applied && r.item?.version === 1),
      "every write applied at version 1",
    );
    const revisions = replies.map((r) => r.item!.modRevision);
    assert.equal(new Set(revisions).size, n, "distinct revisions");
    assert.ok(
      replies.every((r) => r.header!.revision === r.item!.modRevision),
      "each reply reports its own revision",
    );
    assert.equal(after.writes - before.writes, n, "every write went through a batch");
    assert.ok(
      after.batches - before.batches < n,
      `writes were committed together: ${after.batches - before.batches} batches for ${n} writes`,
    );
    const rows = await pgQuery<{ revision: string; key: Buffer; value: Buffer }>(
      cluster.databaseUrl,
      "SELECT revision, key, value FROM kv_history WHERE namespace = $1 AND key >= $2 AND key < $3 ORDER BY revision",
      [NS, utf8("many/"), utf8("many0")],
    );
    assert.deepEqual(
      rows.map((r) => Number(r.revision)),
      [...revisions].sort((a, b) => a - b),
      "history holds exactly the acknowledged revisions",
    );
    for (const r of rows) assert.equal(r.value.toString(), `v${r.key.toString().slice("many/".length)}`);
  });

  it("writes to one key in one burst act one at a time: one CAS wins, increments all land", async () => {
    await c.compareAndSet({ namespace: NS, key: "hot", expected: { absent: true }, value: utf8("0") });
    const cas = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        c.compareAndSet({ namespace: NS, key: "hot", expected: { version: 1 }, value: utf8(`cas${i}`) }),
      ),
    );
    const winners = cas.filter((r) => r.applied);
    assert.equal(winners.length, 1, "exactly one expected=version 1 write applies");
    for (const r of cas.filter((x) => !x.applied)) {
      assert.equal(r.item?.version, 2, "the losers see the winner's version");
      assert.equal(r.item?.value.toString(), winners[0]!.item!.value.toString());
    }

    const puts = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        c.compareAndSet({ namespace: NS, key: "hot", expected: { any: true }, value: utf8(`any${i}`) }),
      ),
    );
    const versions = puts.map((r) => r.item!.version).sort((a, b) => a - b);
    assert.deepEqual(
      versions,
      Array.from({ length: 30 }, (_, i) => i + 3),
      "versions 3..32, each once",
    );
    const last = puts.find((r) => r.item!.version === 32)!;
    const got = await c.get({ namespace: NS, key: "hot" });
    assert.equal(got.item?.version, 32);
    assert.equal(got.item?.value.toString(), last.item!.value.toString());

    // Delete and re-create in one burst: each sees the state the one before it left.
    const [del, recreate] = await Promise.all([
      c.delete({ namespace: NS, key: "hot", expected: { version: 32 } }),
      c.compareAndSet({ namespace: NS, key: "hot", expected: { absent: true }, value: utf8("again") }),
    ]);
    assert.equal(del.applied, true);
    if (recreate.applied) {
      assert.equal(recreate.item?.version, 1, "a new incarnation starts at version 1");
      assert.ok(recreate.item!.createRevision > del.header!.revision);
    } else {
      assert.equal(recreate.item?.version, 32, "ordered before the delete, it saw the live key");
    }
  });

  it("one write's refusal does not fail the others in its batch", async () => {
    const lock1 = await c.lock({ namespace: NS, name: "fence", ttl: { seconds: 30 }, owner: "t" });
    await c.unlock({ namespace: NS, name: "fence", lockId: lock1.lockId });
    const lock2 = await c.lock({ namespace: NS, name: "fence", ttl: { seconds: 30 }, owner: "t" });
    assert.ok(lock2.fencingToken > lock1.fencingToken);
    await c.compareAndSet({
      namespace: NS,
      key: "used",
      expected: { any: true },
      value: utf8("x"),
      idempotencyKey: "k1",
    });

    const settled = await Promise.allSettled([
      c.compareAndSet({
        namespace: NS,
        key: "fenced-stale",
        expected: { any: true },
        value: utf8("no"),
        fence: { lockName: "fence", token: lock1.fencingToken },
      }),
      c.compareAndSet({
        namespace: NS,
        key: "fenced-ok",
        expected: { any: true },
        value: utf8("yes"),
        fence: { lockName: "fence", token: lock2.fencingToken },
      }),
      c.compareAndSet({ namespace: NS, key: "other", expected: { any: true }, value: utf8("y"), idempotencyKey: "k1" }),
      c.compareAndSet({ namespace: NS, key: "missing", expected: { version: 7 }, value: utf8("no") }),
      ...Array.from({ length: 20 }, (_, i) =>
        c.compareAndSet({ namespace: NS, key: `plain/${i}`, expected: { any: true }, value: utf8("ok") }),
      ),
    ]);
    const [stale, fencedOk, reused, missing, ...plain] = settled;
    assert.equal(stale!.status, "rejected");
    assert.equal((stale as PromiseRejectedResult).reason.code, status.FAILED_PRECONDITION);
    assert.match((stale as PromiseRejectedResult).reason.details, /stale/);
    assert.equal(fencedOk!.status, "fulfilled");
    assert.equal(reused!.status, "rejected");
    assert.equal((reused as PromiseRejectedResult).reason.code, status.FAILED_PRECONDITION);
    assert.equal(missing!.status, "fulfilled");
    assert.equal((missing as PromiseFulfilledResult<{ applied: boolean }>).value.applied, false);
    assert.ok(plain.every((p) => p.status === "fulfilled" && p.value.applied));

    // The refused writes left nothing behind: no key, no placeholder, no idempotency record.
    const rows = await pgQuery<{ key: Buffer }>(
      cluster.databaseUrl,
      "SELECT key FROM kv WHERE namespace = $1 AND key IN ($2, $3, $4)",
      [NS, utf8("fenced-stale"), utf8("other"), utf8("missing")],
    );
    assert.deepEqual(rows, []);
    const idem = await pgQuery<{ n: number }>(
      cluster.databaseUrl,
      "SELECT count(*)::int AS n FROM idempotency_keys WHERE namespace = $1",
      [NS],
    );
    assert.equal(idem[0]!.n, 1, "only the first use of k1 is recorded");
    await c.unlock({ namespace: NS, name: "fence", lockId: lock2.lockId });
  });

  it("a key held by another transaction stalls only the writes on that key", async () => {
    await c.compareAndSet({ namespace: NS, key: "held", expected: { any: true }, value: utf8("1") });
    const locker = new Client({ connectionString: cluster.databaseUrl });
    locker.on("error", () => undefined);
    await locker.connect();
    let heldDone = false;
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM kv WHERE namespace = $1 AND key = $2 FOR UPDATE", [NS, utf8("held")]);
      const held = c
        .compareAndSet(
          { namespace: NS, key: "held", expected: { version: 1 }, value: utf8("2") },
          { deadlineMs: 60_000 },
        )
        .finally(() => (heldDone = true));
      await backendWaitingOnLock(cluster.databaseUrl);
      // Many writes (and a cheap deadline) while that one waits: none of them is held up.
      const others = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          c.compareAndSet(
            { namespace: NS, key: `free/${i}`, expected: { any: true }, value: utf8("v") },
            { deadlineMs: 30_000 },
          ),
        ),
      );
      assert.ok(others.every((r) => r.applied));
      assert.equal(heldDone, false, "the write on the held key is still waiting");
      await expectGrpcError(
        c.compareAndSet(
          { namespace: NS, key: "held", expected: { any: true }, value: utf8("late") },
          { deadlineMs: 300 },
        ),
        status.DEADLINE_EXCEEDED,
      );
      // The server's deadline can be a few ms after the client's (it learns a
      // relative timeout on arrival): release the row once both have passed.
      await sleep(300);
      await locker.query("COMMIT");
      const res = await held;
      assert.equal(res.applied, true);
      assert.equal(res.item?.version, 2);
    } finally {
      await locker.query("ROLLBACK").catch(() => undefined);
      await locker.end().catch(() => undefined);
    }
    const final = await c.get({ namespace: NS, key: "held" });
    assert.equal(final.item?.value.toString(), "2", "the write whose caller gave up was not made");
  });
});
