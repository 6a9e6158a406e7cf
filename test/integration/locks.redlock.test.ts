/**
 * Guarantee 4 over Redlock: three real redis-server masters started here, two
 * server replicas with REDLOCK_URLS listing all three, real Postgres (fencing
 * tokens), real gRPC. Mutual exclusion, fencing of a paused holder, quorum
 * loss and recovery, masters restarted with empty memory, non-holder unlock,
 * expiry, cancelled and timed-out waiters, bad input, and what each master
 * stores: the owner beside the lock, taken, extended and dropped with it.
 */
import * as assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { setTimeout as sleep } from "node:timers/promises";
import { duration, LockClient } from "../support/lockClients";
import {
  assertAcquired,
  assertHeld,
  at,
  expectFenceStale,
  expectNotHeld,
  history,
  lastToken,
  lockConformanceSuite,
  startLockReplicas,
  text,
  utf8,
  type LockTestContext,
} from "../support/lockScenarios";
import { RedisProcess } from "../support/RedisProcess";
import type { Cluster } from "../support/startCluster";
import { getTestEnv } from "../support/TestEnv";

describe("locks over Redlock: 3 Redis masters, 2 replicas (guarantee 4)", function () {
  this.timeout(120_000);
  const NS = "locks-redlock";
  let masters: RedisProcess[] = [];
  let cluster: Cluster | undefined;
  let prefix = "";
  const ctx: LockTestContext = { databaseUrl: "", servers: [], locks: [], kvs: [] };

  before(async function () {
    this.timeout(120_000);
    const env = await getTestEnv();
    prefix = env.redisPrefix();
    const started = await Promise.allSettled([RedisProcess.start(), RedisProcess.start(), RedisProcess.start()]);
    masters = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    cluster = await startLockReplicas(ctx, {
      name: "locks_redlock",
      env: {
        REDLOCK_URLS: masters.map((m) => m.url).join(","),
        AGENTSTATE_REDIS_PREFIX: prefix,
        AGENTSTATE_REDIS_TIMEOUT_MS: "300",
      },
      locks: "redlock(3)",
    });
  });

  after(async function () {
    this.timeout(60_000);
    for (const l of ctx.locks) l.close();
    await cluster?.stop();
    await Promise.allSettled(masters.map((m) => m.destroy()));
  });

  // A test that stops masters restores them even when it fails.
  afterEach(async () => {
    for (const m of masters) if (!m.running) await m.restart();
  });

  lockConformanceSuite(ctx, { namespace: NS, mutex: { workers: 20, increments: 50 } });

  it("a waiter on a replica polling every 10 minutes gets the lock when another replica unlocks (the release announced over NOTIFY)", async () => {
    const ns = `${NS}-handoff`;
    const { server } = await cluster!.addReplica({ AGENTSTATE_LOCK_POLL_MS: "600000" });
    const slow = new LockClient(server.address);
    try {
      const l0 = at(ctx.locks, 0);
      for (let i = 0; i < 3; i++) {
        const h = assertAcquired(
          await l0.lock({ namespace: ns, name: "n", ttl: duration(300_000), owner: "holder" }),
          "holder",
        );
        const waiting = slow.lock(
          { namespace: ns, name: "n", ttl: duration(10_000), wait: duration(60_000), owner: "waiter" },
          { deadlineMs: 90_000 },
        );
        await sleep(300); // queued, and its first attempt found the lock held
        assert.equal((await l0.unlock({ namespace: ns, name: "n", lockId: h.lockId })).released, true);
        const w = assertAcquired(await waiting, `the waiter, round ${i}`);
        assert.ok(w.fencingToken > h.fencingToken);
        assert.equal((await slow.unlock({ namespace: ns, name: "n", lockId: w.lockId })).released, true);
      }
    } finally {
      slow.close();
    }
  });

  it("each master keeps the holder's owner beside the lock (never its secret): extended by RenewLock, gone after Unlock and after expiry; an owner-less Lock reports no owner", async () => {
    const ns = `${NS}-owner`;
    const [l0, l1] = [at(ctx.locks, 0), at(ctx.locks, 1)];
    const lockKey = (name: string) => `${prefix}:lock:${ns}:${name}`;
    const ownerKey = (name: string) => `${prefix}:lockowner:${ns}:${name}`;
    const redis = masters.map((m) => new Redis(m.url, { maxRetriesPerRequest: 0 }));
    // Each master, as [lock key value, owner key value, owner key PTTL].
    const stored = (name: string) =>
      Promise.all(
        redis.map(async (r) => {
          const [lock, owner, ttl] = await Promise.all([
            r.get(lockKey(name)),
            r.get(ownerKey(name)),
            r.pttl(ownerKey(name)),
          ]);
          return { lock, owner, ttl };
        }),
      );
    // Redlock answers at a quorum; the last master may still be applying, hence `eventually`.
    const onEvery = (
      what: string,
      name: string,
      ok: (s: { lock: string | null; owner: string | null; ttl: number }) => boolean,
    ) => eventually(what, async () => (await stored(name)).every(ok));
    try {
      const a = assertAcquired(
        await l0.lock({ namespace: ns, name: "owned", ttl: duration(5_000), owner: "agent-7" }),
        "Lock with an owner",
      );
      const secret = a.lockId.split(".")[0]!;
      await onEvery("the owner beside the lock on every master, with the lock's TTL", "owned", (s) => {
        return s.lock === secret && s.owner === "agent-7" && s.ttl > 0 && s.ttl <= 5_000;
      });
      const seen = await assertHeld(l1, ns, "owned");
      assert.equal(seen, "agent-7", "the other replica reports the holder's owner");
      assert.notEqual(seen, secret);

      await l1.renewLock({ namespace: ns, name: "owned", lockId: a.lockId, ttl: duration(60_000) });
      await onEvery("the owner key extended with the lock", "owned", (s) => s.owner === "agent-7" && s.ttl > 5_000);

      assert.equal((await l1.unlock({ namespace: ns, name: "owned", lockId: a.lockId })).released, true);
      await onEvery("lock and owner keys gone after Unlock", "owned", (s) => s.lock === null && s.owner === null);

      assertAcquired(
        await l0.lock({ namespace: ns, name: "brief", ttl: duration(300), owner: "brief-owner" }),
        "a short lock",
      );
      await onEvery("lock and owner keys gone after the TTL", "brief", (s) => s.lock === null && s.owner === null);

      // An owner key left behind (e.g. by an older replica) must not be reported for a holder without an owner.
      await Promise.all(redis.map((r) => r.set(ownerKey("anon"), "stale-owner", "PX", 60_000)));
      const anon = assertAcquired(
        await l0.lock({ namespace: ns, name: "anon", ttl: duration(10_000) }),
        "owner-less Lock",
      );
      await onEvery("no owner stored for an owner-less holder", "anon", (s) => s.lock !== null && s.owner === null);
      assert.equal(await assertHeld(l1, ns, "anon"), "", "no owner reported for an owner-less holder");
      assert.equal((await l0.unlock({ namespace: ns, name: "anon", lockId: anon.lockId })).released, true);
    } finally {
      for (const r of redis) r.disconnect();
    }
  });

  it("with one master stopped locks still work; with two stopped Lock answers UNAVAILABLE at once; after restart they work again", async () => {
    const ns = `${NS}-quorum`;
    const [l0, l1] = [at(ctx.locks, 0), at(ctx.locks, 1)];
    const [m0, m1] = [at(masters, 0), at(masters, 1)];

    await m0.stop();
    // 2 of 3 masters: acquire, renew (on the other replica), unlock.
    const a = assertAcquired(
      await l0.lock({ namespace: ns, name: "two-of-three", ttl: duration(5_000), owner: "q" }),
      "Lock with one master down",
    );
    const r = await l1.renewLock({ namespace: ns, name: "two-of-three", lockId: a.lockId, ttl: duration(20_000) });
    assert.equal(r.fencingToken, a.fencingToken);
    assert.equal(await assertHeld(l1, ns, "two-of-three"), "q", "mutual exclusion holds with one master down");
    assert.equal((await l1.unlock({ namespace: ns, name: "two-of-three", lockId: a.lockId })).released, true);
    const again = assertAcquired(
      await l1.lock({ namespace: ns, name: "two-of-three", ttl: duration(5_000), owner: "q2" }),
      "Lock again after unlock, one master down",
    );
    assert.ok(again.fencingToken > a.fencingToken);
    assert.equal((await l0.unlock({ namespace: ns, name: "two-of-three", lockId: again.lockId })).released, true);

    const held = assertAcquired(
      await l0.lock({ namespace: ns, name: "held-at-loss", ttl: duration(30_000), owner: "h" }),
      "a lock taken before the quorum is lost",
    );

    await m1.stop();
    // 1 of 3: no quorum possible. Lock must say so (UNAVAILABLE), not wait out a 20 s `wait`.
    for (const [i, l] of [l0, l1].entries()) {
      const startedAt = Date.now();
      await expectGrpcError(
        l.lock(
          { namespace: ns, name: `no-quorum-${i}`, ttl: duration(10_000), wait: duration(20_000), owner: "nq" },
          { deadlineMs: 40_000 },
        ),
        status.UNAVAILABLE,
      );
      assert.ok(Date.now() - startedAt < 20_000, "UNAVAILABLE came before the 20 s wait ran out");
    }
    await expectGrpcError(
      l1.lock({ namespace: ns, name: "held-at-loss", ttl: duration(10_000), wait: duration(20_000), owner: "nq" }),
      status.UNAVAILABLE,
    );
    // Neither can the holder renew or release without a quorum: UNAVAILABLE, not a false "not held".
    await expectGrpcError(
      l1.renewLock({ namespace: ns, name: "held-at-loss", lockId: held.lockId, ttl: duration(30_000) }),
      status.UNAVAILABLE,
    );
    await expectGrpcError(l0.unlock({ namespace: ns, name: "held-at-loss", lockId: held.lockId }), status.UNAVAILABLE);

    await Promise.all([m0.restart(), m1.restart()]);
    for (const [i, l] of [l0, l1].entries()) {
      const back = await eventually(
        `replica ${i} taking locks again after the masters restarted`,
        async () => {
          const x = await l.lock({ namespace: ns, name: `back-${i}`, ttl: duration(10_000), owner: "back" });
          return x.acquired ? x : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      assert.equal(await assertHeld(at(ctx.locks, 1 - i), ns, `back-${i}`), "back");
      assert.equal((await l.unlock({ namespace: ns, name: `back-${i}`, lockId: back.lockId })).released, true);
    }
  });

  it("after all masters restart with empty memory, new fencing tokens are still greater than all before, and the old holder is fenced off", async () => {
    const ns = `${NS}-restart`;
    const name = "restart-lock";
    const key = "restart-key";
    const [l0, l1] = [at(ctx.locks, 0), at(ctx.locks, 1)];
    const [kv0, kv1] = [at(ctx.kvs, 0), at(ctx.kvs, 1)];

    // Some history on a second, free lock name.
    let lastFree = 0;
    for (let i = 0; i < 3; i++) {
      const x = assertAcquired(await l1.lock({ namespace: ns, name: "free-lock", ttl: duration(5_000) }), "free-lock");
      lastFree = x.fencingToken;
      assert.equal((await l1.unlock({ namespace: ns, name: "free-lock", lockId: x.lockId })).released, true);
    }

    const old = assertAcquired(
      await l0.lock({ namespace: ns, name, ttl: duration(60_000), owner: "before-restart" }),
      "holder before the restart",
    );
    const w0 = await kv0.compareAndSet({
      namespace: ns,
      key,
      expected: { absent: true },
      value: utf8("old"),
      fence: { lockName: name, token: old.fencingToken },
    });
    assert.equal(w0.applied, true);
    const issuedBefore = await lastToken(ctx.databaseUrl, ns, name);
    assert.equal(issuedBefore, old.fencingToken);

    await Promise.all(masters.map((m) => m.restart()));

    // Redis forgot the lock (Redlock's known gap without persistence): another client gets it...
    const fresh = await eventually(
      "the lock taken again after the masters restarted empty",
      async () => {
        const x = await l1.lock({ namespace: ns, name, ttl: duration(10_000), owner: "after-restart" });
        return x.acquired ? x : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    // ...but with a token greater than every token issued before, so the old holder is fenced off.
    assert.ok(fresh.fencingToken > issuedBefore, `token ${fresh.fencingToken} after restart > ${issuedBefore} before`);
    const w1 = await kv1.compareAndSet({
      namespace: ns,
      key,
      expected: { any: true },
      value: utf8("new"),
      fence: { lockName: name, token: fresh.fencingToken },
    });
    assert.equal(w1.applied, true);
    await expectFenceStale(
      kv0.compareAndSet({
        namespace: ns,
        key,
        expected: { any: true },
        value: utf8("old-late"),
        fence: { lockName: name, token: old.fencingToken },
      }),
    );
    await expectFenceStale(
      kv0.delete({ namespace: ns, key, expected: { any: true }, fence: { lockName: name, token: old.fencingToken } }),
    );
    // The old holder's lock id is dead: renew and unlock are refused, the new holder keeps the lock.
    await expectNotHeld(l0.renewLock({ namespace: ns, name, lockId: old.lockId, ttl: duration(60_000) }));
    await expectNotHeld(l0.unlock({ namespace: ns, name, lockId: old.lockId }));
    assert.equal(await assertHeld(l0, ns, name), "after-restart");
    assert.equal(text((await kv0.get({ namespace: ns, key })).item), "new");
    assert.deepEqual(
      (await history(ctx.databaseUrl, ns, key)).map((h) => h.value),
      ["old", "new"],
      "nothing of the fenced-off holder's late writes landed",
    );

    const free = assertAcquired(await l0.lock({ namespace: ns, name: "free-lock", ttl: duration(5_000) }), "free-lock");
    assert.ok(free.fencingToken > lastFree, `free-lock token ${free.fencingToken} > ${lastFree} before restart`);
    assert.equal((await l0.unlock({ namespace: ns, name: "free-lock", lockId: free.lockId })).released, true);
    assert.equal((await l0.unlock({ namespace: ns, name, lockId: fresh.lockId })).released, true);
  });
});
