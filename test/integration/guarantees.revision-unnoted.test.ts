/**
 * Every reply carries the revision it reflects, cache hits included: a hit
 * reports its namespace's known revision, which each write and append raises
 * in Redis. A replica that cannot raise it (its Redis link is down) must not
 * acknowledge the change until no replica can serve a hit below it: it moves
 * the cache epoch and waits out the leases (CacheEpoch.fenceUnnoted). Without
 * that, another replica's cache hit right after the append reports the
 * namespace's revision from before the append.
 */
import * as assert from "node:assert/strict";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import type { Replica } from "../support/startCluster";
import { startProxiedCacheCluster, type ProxiedCacheCluster } from "../support/startProxiedCacheCluster";

const NS = "g3unnoted";

describe("guarantee 3: an append whose replica cannot note its revision in the cache", function () {
  this.timeout(180_000);
  let setup: ProxiedCacheCluster | undefined;
  let a: Replica; // reaches Redis through the proxy, which the test cuts
  let b: Replica; // reaches Redis directly

  before(async function () {
    this.timeout(600_000); // may install toxiproxy-server (pinned) on a fresh machine
    setup = await startProxiedCacheCluster({
      name: "g3unnoted",
      proxy: "redis-unnoted",
      // A new epoch serves from MARKER_TTL_MS after it began (the first hit waits it out).
      env: {
        AGENTSTATE_CACHE_LEASE_MS: "1000",
        AGENTSTATE_STATEMENT_TIMEOUT_MS: "1500",
        AGENTSTATE_CACHE_MARKER_TTL_MS: "3000",
      },
      proxiedRedisTimeoutMs: 200,
    });
    ({ direct: b, proxied: a } = setup);
  });

  after(async () => {
    await setup?.stop();
  });

  it("is acknowledged only once no cache hit can report a revision below it", async () => {
    await b.client.compareAndSet({ namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("v") });
    // B serves k from the cache (a hit), with the namespace's revision as of the write.
    await eventually(
      "a cache hit on B",
      async () => {
        const before = await cacheReads(b.server);
        await b.client.get({ namespace: NS, key: "k" });
        return (await cacheReads(b.server)).hit > before.hit;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );

    // A loses Redis, then appends in the same namespace.
    await setup!.toxi.setEnabled("redis-unnoted", false);
    const appended = await a.client.appendEvent(NS, "s", [{ type: "t", data: Buffer.from("x") }], { any: true });
    const appendRevision = appended.header!.revision;
    assert.ok(appendRevision >= 2);

    // Right after the acknowledgement, B's reply must reflect it.
    for (let i = 0; i < 20; i++) {
      const g = await b.client.get({ namespace: NS, key: "k" });
      assert.ok(
        g.header!.revision >= appendRevision,
        `Get on B reported revision ${g.header!.revision} after an append at ${appendRevision} was acknowledged`,
      );
    }
    await setup!.toxi.setEnabled("redis-unnoted", true);
  });
});
