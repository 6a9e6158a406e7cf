/**
 * Guarantee 4 in the embedded-default shape: no Redis at all, locks kept in
 * Postgres (DATABASE_URL set, REDIS_URL and REDLOCK_URLS unset), two server
 * replicas sharing the database, real gRPC. Same semantics as Redlock:
 * mutual exclusion, fencing of a paused holder, non-holder unlock, expiry,
 * renewal, cancelled and timed-out waiters, bad input, and tokens that keep
 * increasing across a restart of every server.
 */
import * as assert from "node:assert/strict";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { duration, LockClient } from "../support/lockClients";
import {
  assertAcquired,
  assertFree,
  assertHeld,
  at,
  expectFenceStale,
  lastToken,
  lockConformanceSuite,
  startLockReplicas,
  utf8,
  type LockTestContext,
} from "../support/lockScenarios";
import type { Cluster } from "../support/startCluster";

describe("locks in Postgres (embedded-default semantics, no Redis), 2 replicas (guarantee 4)", function () {
  this.timeout(90_000);
  const NS = "locks-pg";
  let cluster: Cluster | undefined;
  const ctx: LockTestContext = { databaseUrl: "", servers: [], locks: [], kvs: [] };
  const extraLocks: LockClient[] = [];

  before(async function () {
    this.timeout(120_000);
    cluster = await startLockReplicas(ctx, { name: "locks_pg", env: { REDLOCK_URLS: "" }, locks: "postgres" });
  });

  after(async function () {
    this.timeout(60_000);
    for (const l of [...ctx.locks, ...extraLocks]) l.close();
    await cluster?.stop();
  });

  lockConformanceSuite(ctx, { namespace: NS, mutex: { workers: 10, increments: 20 } });

  // Last: it stops every replica of the cluster.
  it("fencing tokens keep increasing across a restart of every server; a held lock survives it", async () => {
    const c = cluster!;
    const ns = `${NS}-restart`;
    const l0 = at(ctx.locks, 0);
    const kv0 = at(ctx.kvs, 0);

    let lastFree = 0;
    for (let i = 0; i < 3; i++) lastFree = await assertFree(at(ctx.locks, i % 2), ns, "free-lock");
    const held = assertAcquired(
      await l0.lock({ namespace: ns, name: "held-lock", ttl: duration(60_000), owner: "before-restart" }),
      "a lock held across the restart",
    );
    const w = await kv0.compareAndSet({
      namespace: ns,
      key: "k",
      expected: { absent: true },
      value: utf8("before"),
      fence: { lockName: "held-lock", token: held.fencingToken },
    });
    assert.equal(w.applied, true);
    const counterBefore = await lastToken(c.databaseUrl, `${NS}-mutex`, "counter-lock");

    await c.stop();
    assert.ok(
      c.servers.every((s) => !s.running),
      "both replicas stopped",
    );
    const { server } = await c.addReplica();
    const kv: AgentstateClient = at(c.clients, c.clients.length - 1);
    const l = new LockClient(server.address);
    extraLocks.push(l);

    // The lock is kept in Postgres: still held by the same holder after the restart.
    assert.equal(await assertHeld(l, ns, "held-lock"), "before-restart");
    const renewed = await l.renewLock({ namespace: ns, name: "held-lock", lockId: held.lockId, ttl: duration(60_000) });
    assert.equal(renewed.fencingToken, held.fencingToken);
    assert.equal((await l.unlock({ namespace: ns, name: "held-lock", lockId: held.lockId })).released, true);

    const next = assertAcquired(
      await l.lock({ namespace: ns, name: "held-lock", ttl: duration(10_000), owner: "after-restart" }),
      "held-lock after restart",
    );
    assert.ok(next.fencingToken > held.fencingToken, `${next.fencingToken} > ${held.fencingToken}`);
    await expectFenceStale(
      kv.compareAndSet({
        namespace: ns,
        key: "k",
        expected: { any: true },
        value: utf8("late"),
        fence: { lockName: "held-lock", token: held.fencingToken },
      }),
    );
    assert.equal((await l.unlock({ namespace: ns, name: "held-lock", lockId: next.lockId })).released, true);

    const free = await assertFree(l, ns, "free-lock");
    assert.ok(free > lastFree, `free-lock token ${free} after restart > ${lastFree} before`);
    const counter = await assertFree(l, `${NS}-mutex`, "counter-lock");
    assert.ok(counter > counterBefore, `counter-lock token ${counter} after restart > ${counterBefore} before`);
  });
});
