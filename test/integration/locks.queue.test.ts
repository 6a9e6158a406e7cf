/**
 * Lock waits as a queue (issue 17), Postgres lock backend, real replicas:
 * waiters are woken by releases announced between replicas, not by polling
 * (the poll interval here is ten minutes, and handoffs still happen at once);
 * a release nobody announced is still found by the fallback poll (a replica
 * with a short interval); the caps on waiters per name and per server answer
 * RESOURCE_EXHAUSTED naming their setting; waiters on one replica get the
 * lock in arrival order; and a flood of 2000 waiters on 100 names leaves
 * CompareAndSet on other keys working, its p99 within a generous multiple of
 * its quiet p99 (the precise ratio is measured in bench/).
 */
import * as assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { setTimeout as sleep } from "node:timers/promises";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { duration, LockClient } from "../support/lockClients";
import { assertAcquired, at, utf8 } from "../support/lockScenarios";
import { pgQuery } from "../support/pgQuery";
import { serverMetrics } from "../support/serverMetrics";
import { startCluster, type Cluster } from "../support/startCluster";

const LONG_POLL_MS = "600000";

describe("lock waits as a queue (Postgres locks, 2 replicas polling every 10 minutes)", function () {
  this.timeout(120_000);
  let cluster: Cluster | undefined;
  let l0: LockClient;
  let l1: LockClient;
  const extra: LockClient[] = [];

  before(async function () {
    this.timeout(120_000);
    cluster = await startCluster({
      replicas: 2,
      name: "locks_queue",
      env: {
        REDLOCK_URLS: "",
        AGENTSTATE_METRICS_PORT: "0",
        AGENTSTATE_LOCK_POLL_MS: LONG_POLL_MS,
        AGENTSTATE_MAX_LOCK_WAITERS: "5",
        AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME: "3",
      },
    });
    l0 = new LockClient(at(cluster.servers, 0).address);
    l1 = new LockClient(at(cluster.servers, 1).address);
  });

  after(async function () {
    this.timeout(60_000);
    for (const l of [l0, l1, ...extra]) l?.close();
    await cluster?.stop();
  });

  it("a waiter on another replica gets the lock when it is released, with the poll ten minutes away", async () => {
    const namespace = "queue-handoff";
    for (let i = 0; i < 3; i++) {
      const [holder, waiterReplica] = i % 2 === 0 ? [l0, l1] : [l1, l0];
      const h = assertAcquired(
        await holder.lock({ namespace, name: "n", ttl: duration(300_000), owner: "holder" }),
        "holder",
      );
      const waiting = waiterReplica.lock(
        { namespace, name: "n", ttl: duration(10_000), wait: duration(60_000), owner: "waiter" },
        { deadlineMs: 90_000 },
      );
      await sleep(300); // the waiter is queued and has tried once
      assert.equal((await holder.unlock({ namespace, name: "n", lockId: h.lockId })).released, true);
      const w = assertAcquired(await waiting, `waiter on the other replica (round ${i})`);
      assert.ok(w.fencingToken > h.fencingToken);
      assert.equal((await waiterReplica.unlock({ namespace, name: "n", lockId: w.lockId })).released, true);
    }
  });

  it("caps: past AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME and AGENTSTATE_MAX_LOCK_WAITERS a Lock answers RESOURCE_EXHAUSTED naming it; queued waiters then get the lock in arrival order", async () => {
    const namespace = "queue-caps";
    const hold = async (name: string) =>
      assertAcquired(await l0.lock({ namespace, name, ttl: duration(300_000), owner: "holder" }), name);
    const [ha, hb] = [await hold("a"), await hold("b")];
    const wait = (name: string, i: number) =>
      l1.lock(
        { namespace, name, ttl: duration(10_000), wait: duration(60_000), owner: `${name}-${i}` },
        { deadlineMs: 90_000 },
      );
    // Three waiters on "a", one at a time so their arrival order is known.
    const onA: Promise<Awaited<ReturnType<LockClient["lock"]>>>[] = [];
    for (let i = 0; i < 3; i++) {
      onA.push(wait("a", i));
      await sleep(200);
    }
    const perName = await expectGrpcError(wait("a", 3), status.RESOURCE_EXHAUSTED);
    assert.match(perName.details, /AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME/);
    assert.match(perName.details, /3/);
    // Two on "b" make five on the replica; the sixth, on a third name, is over the server cap.
    const onB = [wait("b", 0), wait("b", 1)];
    await sleep(300);
    const perServer = await expectGrpcError(wait("c", 0), status.RESOURCE_EXHAUSTED);
    assert.match(perServer.details, /AGENTSTATE_MAX_LOCK_WAITERS\b/);
    assert.match(perServer.details, /5/);
    // The other replica has its own caps; a try-once Lock never waits, so it is never refused.
    const other = await l0.lock({ namespace, name: "c", ttl: duration(1_000), wait: duration(10), owner: "x" });
    assertAcquired(other, "a waiter on the other replica");
    assert.equal((await l0.unlock({ namespace, name: "c", lockId: other.lockId })).released, true);
    const tryOnce = await l1.lock({ namespace, name: "a", ttl: duration(1_000), owner: "try-once" });
    assert.equal(tryOnce.acquired, false);
    assert.equal(tryOnce.holderOwner, "holder");

    // Release "a": its waiters get it one after the other, each releasing it, in arrival order.
    const order: string[] = [];
    const tokens: number[] = [];
    const drain = onA.map(async (p) => {
      const r = assertAcquired(await p, "queued waiter");
      order.push(r.lockId);
      tokens.push(r.fencingToken);
      await sleep(50);
      assert.equal((await l1.unlock({ namespace, name: "a", lockId: r.lockId })).released, true);
    });
    assert.equal((await l0.unlock({ namespace, name: "a", lockId: ha.lockId })).released, true);
    await Promise.all(drain);
    const byArrival = (await Promise.all(onA)).map((r) => r.lockId);
    assert.deepEqual(order, byArrival, "waiters on one replica got the lock in arrival order");
    assert.deepEqual(
      tokens,
      [...tokens].sort((x, y) => x - y),
      "tokens increase in that order",
    );

    assert.equal((await l0.unlock({ namespace, name: "b", lockId: hb.lockId })).released, true);
    for (const p of onB) {
      const r = assertAcquired(await p, "waiter on b");
      await l1.unlock({ namespace, name: "b", lockId: r.lockId });
    }
    // Every slot is free again.
    const free = await l1.lock({ namespace, name: "c", ttl: duration(1_000), wait: duration(5_000), owner: "y" });
    assertAcquired(free, "a waiter once the queues emptied");
  });

  it("a release nobody announced (the row deleted in Postgres) is found by the fallback poll, not by the 10-minute one", async () => {
    const namespace = "queue-fallback";
    const c = cluster!;
    const { server } = await c.addReplica({ AGENTSTATE_LOCK_POLL_MS: "200" });
    const short = new LockClient(server.address);
    extra.push(short);
    for (const [who, client] of [
      ["the replica polling every 200 ms", short],
      ["a replica polling every 10 minutes", l1],
    ] as const) {
      const h = assertAcquired(
        await l0.lock({ namespace, name: "n", ttl: duration(300_000), owner: "holder" }),
        "holder",
      );
      const waiting = client.lock(
        { namespace, name: "n", ttl: duration(10_000), wait: duration(3_000), owner: "waiter" },
        { deadlineMs: 30_000 },
      );
      await sleep(300);
      await pgQuery(c.databaseUrl, "DELETE FROM locks WHERE namespace = $1 AND name = $2 AND lock_id = $3", [
        namespace,
        "n",
        h.lockId.split(".")[0],
      ]);
      const r = await waiting;
      if (client === short) {
        const w = assertAcquired(r, `${who}: a lock released without an announcement`);
        await short.unlock({ namespace, name: "n", lockId: w.lockId });
      } else {
        // Nothing woke it within its wait: what the short poll found was the poll's doing.
        assert.equal(r.acquired, false, `${who} is not woken without an announcement`);
      }
    }
  });
});

describe("a flood of 2000 lock waiters on 100 names (Postgres locks)", function () {
  this.timeout(120_000);
  let cluster: Cluster | undefined;
  const clients: LockClient[] = [];

  before(async function () {
    this.timeout(120_000);
    cluster = await startCluster({
      replicas: 1,
      name: "locks_flood",
      env: { REDLOCK_URLS: "", AGENTSTATE_METRICS_PORT: "0", AGENTSTATE_MAX_CONCURRENT_STREAMS: "5000" },
    });
  });

  after(async function () {
    this.timeout(60_000);
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it("leaves CompareAndSet on other keys working (p99 within 10x of quiet), every waiter gets its turn, none answered UNAVAILABLE", async () => {
    const c = cluster!;
    const kv = at(c.clients, 0);
    const address = at(c.servers, 0).address;
    for (let i = 0; i < 4; i++) clients.push(new LockClient(address));
    const namespace = "flood";
    const names = Array.from({ length: 100 }, (_, i) => `name-${i}`);

    const casP99 = async (label: string) => {
      const lat: number[] = [];
      const one = async (w: number) => {
        for (let i = 0; i < 80; i++) {
          const t = process.hrtime.bigint();
          const r = await kv.compareAndSet({
            namespace: "flood-kv",
            key: `k-${w}`,
            expected: { any: true },
            value: utf8(`${label}-${i}`),
          });
          assert.equal(r.applied, true);
          lat.push(Number(process.hrtime.bigint() - t) / 1e6);
        }
      };
      await Promise.all(Array.from({ length: 5 }, (_, w) => one(w)));
      lat.sort((a, b) => a - b);
      return lat[Math.floor(lat.length * 0.99)]!;
    };

    await casP99("warm");
    const quiet = await casP99("quiet");

    const holders = await Promise.all(
      names.map(async (name) =>
        assertAcquired(
          await at(clients, 0).lock({ namespace, name, ttl: duration(60_000), owner: "holder" }),
          `holder of ${name}`,
        ),
      ),
    );
    const outcomes: string[] = [];
    const waiters = Array.from({ length: 2000 }, async (_, i) => {
      const name = names[i % names.length]!;
      const client = at(clients, i % clients.length);
      try {
        const r = await client.lock(
          { namespace, name, ttl: duration(10_000), wait: duration(50_000), owner: `w${i}` },
          { deadlineMs: 55_000 },
        );
        if (!r.acquired) return void outcomes.push("not_acquired");
        outcomes.push("acquired");
        await client.unlock({ namespace, name, lockId: r.lockId });
      } catch (e) {
        outcomes.push(status[(e as { code: number }).code] ?? "error");
      }
    });
    // Measure only once every waiter is queued (the server's gauge), not while the calls still arrive.
    await eventually(
      "2000 waiters queued",
      async () => /^agentstate_lock_waiters 2000$/m.test(await serverMetrics(at(c.servers, 0))),
      { timeoutMs: 40_000, intervalMs: 250 },
    );
    const flooded = await casP99("flooded");

    await Promise.all(holders.map((h, i) => at(clients, 0).unlock({ namespace, name: names[i]!, lockId: h.lockId })));
    await Promise.all(waiters);
    const counts = outcomes.reduce<Record<string, number>>((m, o) => ((m[o] = (m[o] ?? 0) + 1), m), {});
    console.log(
      `      CAS p99 quiet ${quiet.toFixed(1)} ms, with 2000 waiters ${flooded.toFixed(1)} ms (${(flooded / quiet).toFixed(2)}x); waiters: ${JSON.stringify(counts)}`,
    );
    assert.deepEqual(counts, { acquired: 2000 }, "every waiter got its turn");
    // Generous: the machine is shared and noisy; bench/ measures the real ratio.
    assert.ok(flooded <= 10 * quiet, `CAS p99 ${flooded} ms under the flood vs ${quiet} ms quiet`);
  });
});
