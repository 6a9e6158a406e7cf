/**
 * Guarantee 3's goal: cached and uncached reads together are linearizable. A
 * write whose replica cannot mark its key in Redis (its Redis link is down)
 * moves the cache epoch. It used to move it only in its own transaction and
 * then wait out the leases before answering: from its commit, a Get on
 * Postgres (the cut-off replica's) returned the new value while the other
 * replica, still holding a lease on the replaced epoch, served the old one
 * from the cache: a read of the new value followed by a read of the old one.
 * No read was older than an acknowledged write, but the history was not
 * linearizable (the fault run's Illegal k3 history, seed 1618930203: a paused
 * replica's writes took this path). Now the epoch is moved and its leases
 * waited out before the write is made (CacheEpoch.fenceBeforeWrite).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { checkReads, readAcrossWrite } from "../support/readsAcrossWrite";
import type { Replica } from "../support/startCluster";
import { startProxiedCacheCluster, type ProxiedCacheCluster } from "../support/startProxiedCacheCluster";

const NS = "unmarked";

describe("cache: a write that cannot mark its key, read through both replicas", function () {
  this.timeout(180_000);
  let setup: ProxiedCacheCluster | undefined;
  let a: Replica; // reaches Redis through the proxy, which the test cuts
  let b: Replica; // reaches Redis directly

  before(async function () {
    this.timeout(600_000); // may install toxiproxy-server (pinned) on a fresh machine
    setup = await startProxiedCacheCluster({
      name: "unmarked",
      proxy: "redis-unmarked",
      env: {
        AGENTSTATE_CACHE_LEASE_MS: "1000",
        AGENTSTATE_CACHE_MARKER_TTL_MS: "3000",
        AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
        // The policy read goes stale (and the cache off) 500 ms + a lease after the last one.
        AGENTSTATE_CACHE_EVICTION_CHECK_MS: "500",
      },
      proxiedRedisTimeoutMs: 200,
    });
    ({ direct: b, proxied: a } = setup);
  });

  after(async () => {
    await setup?.stop();
  });

  it("no Get returns the old value after any Get has returned the new one", async () => {
    await b.client.compareAndSet({ namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("old") });
    await eventually(
      "a cache hit on B",
      async () => {
        const before = await cacheReads(b.server);
        await b.client.get({ namespace: NS, key: "k" });
        return (await cacheReads(b.server)).hit > before.hit;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );

    await setup!.toxi.setEnabled("redis-unmarked", false);
    const write = a.client.compareAndSet({
      namespace: NS,
      key: "k",
      expected: { any: true },
      value: Buffer.from("new"),
    });
    const reads = await readAcrossWrite(write, { a: a.client, b: b.client }, NS, "k");
    await setup!.toxi.setEnabled("redis-unmarked", true);
    checkReads(reads);
  });

  it("the same after the writer's replica was paused (SIGSTOP) longer than its lease: the fault run's case", async () => {
    await b.client.compareAndSet({ namespace: NS, key: "p", expected: { any: true }, value: Buffer.from("old") });
    await eventually(
      "a cache hit on B",
      async () => {
        const before = await cacheReads(b.server);
        await b.client.get({ namespace: NS, key: "p" });
        return (await cacheReads(b.server)).hit > before.hit;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const pid = a.server.pid!;
    process.kill(pid, "SIGSTOP");
    let write: Promise<unknown>;
    try {
      await sleep(2500);
      // Sent while A is stopped: A takes it up the moment it resumes, before any timer has renewed its lease.
      write = a.client.compareAndSet({ namespace: NS, key: "p", expected: { any: true }, value: Buffer.from("new") });
      await sleep(100);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    checkReads(await readAcrossWrite(write, { a: a.client, b: b.client }, NS, "p"));
  });
});
