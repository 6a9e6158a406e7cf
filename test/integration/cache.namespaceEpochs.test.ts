/**
 * A cache epoch per namespace (issue 15 part 4; migrations/0019): a write
 * that cannot mark its key moves its own namespace's epoch, not the store's.
 * Two replicas share the cache; A's Redis link is cut, so its write to
 * namespace "nsep-a" cannot mark and moves that namespace's epoch (and waits
 * out the leases) before it is made. Meanwhile Gets of namespace "nsep-b"
 * through B go on: they keep being cache hits (B's metrics counters, read
 * around each Get), while Gets of "nsep-a" through both replicas never return
 * the old value after one has returned the new (guarantee 3's goal, as in
 * cache.unmarkedWrite.test.ts), and the database shows "nsep-a"'s epoch moved,
 * "nsep-b"'s and the store's not.
 *
 * The same for an append whose replica cannot note its namespace's revision
 * (CacheEpoch.fenceUnnoted).
 *
 * Without the change (one store-wide epoch) the write moves every namespace's
 * epoch: B's Gets of "nsep-b" go to Postgres (`unleased`) for a marker TTL
 * (this file against main ed331db: 10 of 221 and 28 of 242 were hits).
 */
import * as assert from "node:assert/strict";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { pgQuery } from "../support/pgQuery";
import type { Replica } from "../support/startCluster";
import { startProxiedCacheCluster, type ProxiedCacheCluster } from "../support/startProxiedCacheCluster";

const NS_A = "nsep-a";
const NS_B = "nsep-b";

interface Read {
  replica: "a" | "b";
  start: number;
  end: number;
  value: string;
}

interface EpochRow {
  namespace: string;
  cache_move_epoch: string | null;
  cache_move_seq: string | null;
}

describe("cache: a write that cannot mark moves only its namespace's epoch (issue 15 part 4)", function () {
  this.timeout(180_000);
  let setup: ProxiedCacheCluster | undefined;
  let a: Replica; // reaches Redis through the proxy, which the test cuts
  let b: Replica; // reaches Redis directly

  before(async function () {
    this.timeout(600_000); // may install toxiproxy-server (pinned) on a fresh machine
    setup = await startProxiedCacheCluster({
      name: "nsepoch",
      proxy: "redis-nsepoch",
      env: {
        AGENTSTATE_CACHE_LEASE_MS: "1000",
        AGENTSTATE_CACHE_MARKER_TTL_MS: "3000",
        AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
        // The policy read goes stale (and A's cache off) 500 ms + a lease after the last one.
        AGENTSTATE_CACHE_EVICTION_CHECK_MS: "500",
      },
      proxiedRedisTimeoutMs: 200,
    });
    ({ direct: b, proxied: a } = setup);
  });

  after(async () => {
    await setup?.stop();
  });

  const hitOnB = async (ns: string, key: string): Promise<boolean> => {
    const before = await cacheReads(b.server);
    await b.client.get({ namespace: ns, key });
    return (await cacheReads(b.server)).hit > before.hit;
  };

  it("B keeps serving hits in another namespace, and no Get in the written one is stale", async () => {
    await b.client.compareAndSet({ namespace: NS_A, key: "k", expected: { any: true }, value: Buffer.from("old") });
    await b.client.compareAndSet({ namespace: NS_B, key: "k", expected: { any: true }, value: Buffer.from("b") });
    for (const ns of [NS_A, NS_B]) {
      await eventually(`a cache hit on B in ${ns}`, () => hitOnB(ns, "k"), { timeoutMs: 60_000, intervalMs: 100 });
    }
    const url = setup!.cluster.databaseUrl;
    const storeEpoch = async () =>
      (await pgQuery<{ cache_epoch: string }>(url, "SELECT cache_epoch FROM agentstate_state"))[0]!.cache_epoch;
    const epochBefore = await storeEpoch();

    await setup!.toxi.setEnabled("redis-nsepoch", false);
    let acked = Number.POSITIVE_INFINITY;
    const write = a.client
      .compareAndSet({ namespace: NS_A, key: "k", expected: { any: true }, value: Buffer.from("new") })
      .then(() => (acked = performance.now()));
    const reads: Read[] = [];
    let bReads = 0;
    let bHits = 0;
    // Until a second after the acknowledgement: the old single epoch stayed young (no hits) for 3 s after the move.
    while (!(performance.now() > acked + 1000)) {
      for (const [name, r] of [
        ["a", a],
        ["b", b],
      ] as const) {
        const start = performance.now();
        const g = await r.client.get({ namespace: NS_A, key: "k" });
        reads.push({ replica: name, start, end: performance.now(), value: g.item?.value.toString() ?? "" });
      }
      bReads++;
      if (await hitOnB(NS_B, "k")) bHits++;
    }
    await write;
    await setup!.toxi.setEnabled("redis-nsepoch", true);

    // Namespace A: no Get returned the old value after one had returned the new.
    const firstNew = reads.find((r) => r.value === "new");
    assert.ok(firstNew, "some Get returned the new value");
    const stale = reads.filter((r) => r.value === "old" && r.start > firstNew.end);
    assert.deepEqual(
      stale.map((r) => `${r.replica} at +${Math.round(r.start - firstNew.end)} ms`),
      [],
      `${stale.length} Gets returned the old value after a Get had returned the new one (${reads.length} Gets)`,
    );

    // Namespace B: B kept serving it from the cache while A's epoch moved.
    assert.ok(bReads >= 5, `${bReads} Gets of ${NS_B} on B`);
    assert.ok(
      bHits >= 0.8 * bReads,
      `${bHits} of ${bReads} Gets of ${NS_B} on B were cache hits while ${NS_A}'s epoch moved`,
    );

    // The database: A's epoch moved (in the current store epoch), B's and the store's did not.
    const rows = await pgQuery<EpochRow>(
      url,
      "SELECT namespace, cache_move_epoch::text, cache_move_seq::text FROM namespace_revisions WHERE namespace = ANY($1) ORDER BY namespace",
      [[NS_A, NS_B]],
    );
    assert.equal(await storeEpoch(), epochBefore, "the store epoch did not move");
    const byNs = new Map(rows.map((r) => [r.namespace, r]));
    assert.equal(byNs.get(NS_A)?.cache_move_epoch, epochBefore, `${NS_A}'s epoch moved in the store epoch`);
    assert.ok(Number(byNs.get(NS_A)?.cache_move_seq) > 0, `${NS_A}'s epoch has a move number`);
    assert.equal(byNs.get(NS_B)?.cache_move_epoch ?? null, null, `${NS_B}'s epoch never moved`);

    // And A's namespace serves hits again once its new epoch has matured.
    await eventually(`a cache hit on B in ${NS_A} again`, () => hitOnB(NS_A, "k"), {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    const g = await b.client.get({ namespace: NS_A, key: "k" });
    assert.equal(g.item?.value.toString(), "new");
  });

  it("an append whose replica cannot note its revision moves only its namespace's epoch", async () => {
    const NS_C = "nsep-c";
    await b.client.compareAndSet({ namespace: NS_C, key: "k", expected: { any: true }, value: Buffer.from("c") });
    for (const ns of [NS_B, NS_C]) {
      await eventually(`a cache hit on B in ${ns}`, () => hitOnB(ns, "k"), { timeoutMs: 60_000, intervalMs: 100 });
    }
    const url = setup!.cluster.databaseUrl;
    const storeEpoch = async () =>
      (await pgQuery<{ cache_epoch: string }>(url, "SELECT cache_epoch FROM agentstate_state"))[0]!.cache_epoch;
    const epochBefore = await storeEpoch();

    await setup!.toxi.setEnabled("redis-nsepoch", false);
    let acked = Number.POSITIVE_INFINITY;
    const append = a.client.appendEvent(NS_C, "s", [{ type: "t", data: Buffer.from("x") }], { any: true }).then((r) => {
      acked = performance.now();
      return r;
    });
    let bReads = 0;
    let bHits = 0;
    while (!(performance.now() > acked + 1000)) {
      bReads++;
      if (await hitOnB(NS_B, "k")) bHits++;
    }
    const appendRevision = (await append).header!.revision;
    await setup!.toxi.setEnabled("redis-nsepoch", true);

    // The append's namespace: no reply below the acknowledged append (guarantee 3, as revision-unnoted).
    const g = await b.client.get({ namespace: NS_C, key: "k" });
    assert.ok(g.header!.revision >= appendRevision, `Get on B reported ${g.header!.revision} < ${appendRevision}`);
    // Another namespace: B kept serving it from the cache.
    assert.ok(bReads >= 5, `${bReads} Gets of ${NS_B} on B`);
    assert.ok(bHits >= 0.8 * bReads, `${bHits} of ${bReads} Gets of ${NS_B} on B were cache hits`);
    assert.equal(await storeEpoch(), epochBefore, "the store epoch did not move");
    const rows = await pgQuery<EpochRow>(
      url,
      "SELECT namespace, cache_move_epoch::text, cache_move_seq::text FROM namespace_revisions WHERE namespace = ANY($1) ORDER BY namespace",
      [[NS_B, NS_C]],
    );
    const byNs = new Map(rows.map((r) => [r.namespace, r]));
    assert.equal(byNs.get(NS_C)?.cache_move_epoch, epochBefore, `${NS_C}'s epoch moved`);
    assert.equal(byNs.get(NS_B)?.cache_move_epoch ?? null, null, `${NS_B}'s epoch never moved`);
  });
});
