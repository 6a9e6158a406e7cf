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
import * as assert from "node:assert/strict";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import type { Replica } from "../support/startCluster";
import { startProxiedCacheCluster, type ProxiedCacheCluster } from "../support/startProxiedCacheCluster";

const NS = "unmarked";

interface Read {
  replica: "a" | "b";
  start: number;
  end: number;
  value: string;
}

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
    let acked = Number.POSITIVE_INFINITY;
    const write = a.client
      .compareAndSet({ namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("new") })
      .then(() => {
        acked = performance.now();
      });
    // One reader, alternating replicas: each Get starts after the previous one returned.
    const reads: Read[] = [];
    let done = false;
    void write.finally(() => (done = true));
    const until = () => done && performance.now() > acked + 500;
    while (!until()) {
      for (const [name, r] of [
        ["a", a],
        ["b", b],
      ] as const) {
        const start = performance.now();
        const g = await r.client.get({ namespace: NS, key: "k" });
        reads.push({ replica: name, start, end: performance.now(), value: g.item?.value.toString() ?? "" });
      }
    }
    await write;
    await setup!.toxi.setEnabled("redis-unmarked", true);

    const firstNew = reads.find((r) => r.value === "new");
    assert.ok(firstNew, "some Get returned the new value");
    const stale = reads.filter((r) => r.value === "old" && r.start > firstNew.end);
    assert.deepEqual(
      stale.map((r) => `${r.replica} at +${Math.round(r.start - firstNew.end)} ms`),
      [],
      `${stale.length} Gets returned the old value after a Get (on ${firstNew.replica}) had returned the new one (${reads.length} Gets)`,
    );
    assert.ok(
      reads.every((r) => r.start < acked || r.value === "new"),
      "no Get begun after the write was acknowledged returned the old value",
    );
  });
});
