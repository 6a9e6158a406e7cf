import * as assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { expectGrpcError } from "../support/expectGrpcError";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

const utf8 = (s: string) => Buffer.from(s, "utf8");

describe("KeyValueService: idempotent retries (2 replicas, real Postgres)", function () {
  this.timeout(60_000);
  const NS = "idem";
  let cluster: Cluster;
  let a: AgentstateClient;
  let b: AgentstateClient;

  before(async () => {
    cluster = await startCluster({ replicas: 2, name: "kv_idem" });
    [a, b] = [cluster.clients[0]!, cluster.clients[1]!];
  });
  after(async () => {
    await cluster?.stop();
  });

  async function historyCount(namespace: string, key: string): Promise<number> {
    const rows = await pgQuery<{ n: number }>(
      cluster.databaseUrl,
      "SELECT count(*)::int AS n FROM kv_history WHERE namespace = $1 AND key = $2",
      [namespace, utf8(key)],
    );
    return rows[0]!.n;
  }

  /** The namespace's revision (revisions are per namespace). */
  async function storeRevision(namespace = NS): Promise<number> {
    const rows = await pgQuery<{ revision: string }>(
      cluster.databaseUrl,
      "SELECT coalesce((SELECT revision FROM namespace_revisions WHERE namespace = $1), 0) AS revision",
      [namespace],
    );
    return Number(rows[0]!.revision);
  }

  it("a retry with the same idempotency key returns the first outcome (replayed) and writes once", async () => {
    const req = { namespace: NS, key: "retry", expected: { any: true }, value: utf8("pay 10"), idempotencyKey: "op-1" };
    const first = await a.compareAndSet(req);
    assert.equal(first.applied, true);
    assert.equal(first.replayed, false);
    const revAfterFirst = await storeRevision();

    for (const client of [a, b, a]) {
      const retry = await client.compareAndSet(req);
      assert.equal(retry.replayed, true);
      assert.equal(retry.applied, true);
      assert.equal(retry.header?.revision, first.header?.revision, "same revision as the first outcome");
      assert.deepEqual(retry.item, first.item, "same item as the first outcome");
    }
    assert.equal(await historyCount(NS, "retry"), 1, "one history row");
    assert.equal(await storeRevision(), revAfterFirst, "the retries took no revision");
    const got = await b.get({ namespace: NS, key: "retry" });
    assert.equal(got.item?.version, 1, "expected=any retried 3 times still wrote version 1 only");
  });

  it("Delete retries replay the first outcome too", async () => {
    await a.compareAndSet({ namespace: NS, key: "del", expected: { any: true }, value: utf8("x") });
    const req = { namespace: NS, key: "del", expected: { any: true }, idempotencyKey: "del-1" };
    const first = await a.delete(req);
    assert.equal(first.applied, true);
    assert.equal(first.found, true);
    // Someone re-creates the key; the retried delete must not remove it.
    await a.compareAndSet({ namespace: NS, key: "del", expected: { absent: true }, value: utf8("y") });
    const retry = await b.delete(req);
    assert.equal(retry.replayed, true);
    assert.equal(retry.applied, true);
    assert.equal(retry.header?.revision, first.header?.revision);
    assert.deepEqual(retry.item, first.item);
    const got = await a.get({ namespace: NS, key: "del" });
    assert.equal(got.found, true, "the retry removed nothing");
    assert.equal(Buffer.from(got.item!.value).toString(), "y");
    assert.equal(await historyCount(NS, "del"), 3, "put, delete, put: the retry logged nothing");
  });

  it("10 identical requests fired at once across two replicas apply exactly once", async () => {
    const req = {
      namespace: NS,
      key: "burst",
      expected: { absent: true },
      value: utf8("once"),
      idempotencyKey: "burst-1",
    };
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).compareAndSet(req)));
    assert.equal(replies.filter((r) => !r.replayed).length, 1, "exactly one reply is the original");
    for (const r of replies) {
      assert.equal(r.applied, true, "every duplicate reports the first (applied) outcome");
      assert.equal(r.header?.revision, replies[0]!.header?.revision);
      assert.equal(r.item?.version, 1);
    }
    assert.equal(await historyCount(NS, "burst"), 1);
  });

  it("the same idempotency key with a different request is FAILED_PRECONDITION and changes nothing", async () => {
    const req = {
      namespace: NS,
      key: "reuse",
      expected: { any: true },
      value: utf8("first"),
      idempotencyKey: "reuse-1",
    };
    const first = await a.compareAndSet(req);
    assert.equal(first.applied, true);
    const before = await storeRevision();

    const variants = [
      { ...req, value: utf8("second") },
      { ...req, key: "reuse-other-key" },
      { ...req, expected: { version: 1 } },
      { ...req, contentType: "text/plain" },
      { ...req, ttl: { seconds: 60, nanos: 0 } },
    ];
    for (const v of variants) {
      await expectGrpcError(b.compareAndSet(v), status.FAILED_PRECONDITION, { reason: "IDEMPOTENCY_KEY_REUSED" });
    }
    await expectGrpcError(
      a.delete({ namespace: NS, key: "reuse", expected: { any: true }, idempotencyKey: "reuse-1" }),
      status.FAILED_PRECONDITION,
      { reason: "IDEMPOTENCY_KEY_REUSED" },
    );
    const got = await a.get({ namespace: NS, key: "reuse" });
    assert.equal(got.item?.version, 1);
    assert.equal(Buffer.from(got.item!.value).toString(), "first");
    assert.equal((await a.get({ namespace: NS, key: "reuse-other-key" })).found, false);
    assert.equal(await storeRevision(), before, "nothing was written");
    // The original request is still replayed after the refusals.
    const retry = await a.compareAndSet(req);
    assert.equal(retry.replayed, true);
    assert.equal(retry.header?.revision, first.header?.revision);
  });

  it("the first outcome is replayed even when it was applied=false", async () => {
    await a.compareAndSet({ namespace: NS, key: "miss", expected: { absent: true }, value: utf8("existing") });
    const req = {
      namespace: NS,
      key: "miss",
      expected: { absent: true },
      value: utf8("mine"),
      idempotencyKey: "miss-1",
    };
    const first = await a.compareAndSet(req);
    assert.equal(first.applied, false);
    assert.equal(first.found, true);
    assert.equal(first.replayed, false);

    // The condition would now hold; the retry still answers the first outcome.
    const del = await a.delete({ namespace: NS, key: "miss", expected: { any: true } });
    assert.equal(del.applied, true);
    const retry = await b.compareAndSet(req);
    assert.equal(retry.replayed, true);
    assert.equal(retry.applied, false);
    assert.equal(retry.found, true);
    assert.deepEqual(retry.item, first.item);
    assert.equal(retry.header?.revision, first.header?.revision);
    assert.equal((await a.get({ namespace: NS, key: "miss" })).found, false, "the retry wrote nothing");
    assert.equal(await historyCount(NS, "miss"), 2, "put, delete");
  });

  it("idempotency keys are scoped to their namespace", async () => {
    const x = await a.compareAndSet({
      namespace: "idem-x",
      key: "k",
      expected: { any: true },
      value: utf8("x"),
      idempotencyKey: "shared",
    });
    const y = await b.compareAndSet({
      namespace: "idem-y",
      key: "k",
      expected: { any: true },
      value: utf8("y"),
      idempotencyKey: "shared",
    });
    assert.equal(x.applied, true);
    assert.equal(x.replayed, false);
    assert.equal(y.applied, true);
    assert.equal(y.replayed, false, "the same key in another namespace is a new request");
    // Each namespace has its own revision sequence: both are the first change of theirs.
    assert.equal(Number(x.header?.revision), await storeRevision("idem-x"));
    assert.equal(Number(y.header?.revision), await storeRevision("idem-y"));
    assert.equal(Buffer.from((await a.get({ namespace: "idem-y", key: "k" })).item!.value).toString(), "y");
    const rows = await pgQuery<{ namespace: string }>(
      cluster.databaseUrl,
      "SELECT namespace FROM idempotency_keys WHERE idempotency_key = 'shared' ORDER BY namespace",
    );
    assert.deepEqual(
      rows.map((r) => r.namespace),
      ["idem-x", "idem-y"],
    );
  });
});
