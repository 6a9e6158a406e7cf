/**
 * Guarantee 3 with the near cache: a replica serves repeated Gets from its own
 * copy (no Redis read per Get), and still never returns a version older than
 * one acknowledged before the Get started.
 *
 * Replica B (near cache on) reaches Redis through toxiproxy; replica A (near
 * cache off) writes, directly. Each test first makes B serve key k from its
 * near cache (its near-hit counter moves), then changes k through A and reads
 * it through B right after A's acknowledgement:
 *  - plain: the invalidation Redis pushes to B drops the copy;
 *  - with every byte from Redis to B delayed by a second: the invalidation is
 *    still on the wire when B's Get arrives, so only the sync (a PING whose
 *    PONG queues behind the invalidation) keeps B from serving its copy;
 *  - with B's invalidation connection killed by Redis: invalidations for B are
 *    dropped from then on, so B must stop serving copies until it has set up
 *    tracking again on its new connection.
 */
import * as assert from "node:assert/strict";
import { Redis } from "ioredis";
import { ToxiproxyServer } from "../faults/ToxiproxyServer";
import { eventually } from "../support/eventually";
import { serverMetrics } from "../support/serverMetrics";
import type { Cluster, Replica } from "../support/startCluster";
import { startProxiedCacheCluster, type ProxiedCacheCluster } from "../support/startProxiedCacheCluster";
import { getTestEnv } from "../support/TestEnv";
import type { ServerProcess } from "../support/ServerProcess";

const NS = "near";
const MARKER_TTL_MS = 2000;

async function nearHits(server: ServerProcess): Promise<number> {
  const m = /^agentstate_near_cache_hits_total (\d+)$/m.exec(await serverMetrics(server));
  return m ? Number(m[1]) : 0;
}

describe("near cache: copies of cache hits are never served stale (guarantee 3)", function () {
  this.timeout(180_000);
  let setup: ProxiedCacheCluster | undefined;
  let toxi: ToxiproxyServer | undefined;
  let cluster: Cluster | undefined;
  let redis: Redis | undefined;
  let a: Replica;
  let b: Replica;

  before(async function () {
    this.timeout(600_000); // may install toxiproxy-server (pinned) on a fresh machine
    setup = await startProxiedCacheCluster({
      name: "near",
      proxy: "redis-b",
      env: {
        AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
        AGENTSTATE_CACHE_MARKER_TTL_MS: String(MARKER_TTL_MS),
        AGENTSTATE_CACHE_LEASE_MS: "1000",
      },
      direct: { AGENTSTATE_NEAR_CACHE_BYTES: "0" },
      // B's Redis commands may take a delayed round trip (2 s) without timing out.
      proxiedRedisTimeoutMs: 10_000,
    });
    ({ toxi, cluster, direct: a, proxied: b } = setup);
    redis = new Redis((await getTestEnv()).redis.url);
  });

  after(async () => {
    redis?.disconnect();
    await setup?.stop();
  });

  async function put(key: string, value: string): Promise<number> {
    const r = await a.client.compareAndSet({
      namespace: NS,
      key,
      expected: { any: true },
      value: Buffer.from(value),
    });
    assert.equal(r.applied, true);
    return r.item!.version;
  }

  async function readB(key: string): Promise<{ version: number; value: string | undefined }> {
    const g = await b.client.get({ namespace: NS, key });
    return g.found
      ? { version: g.item!.version, value: Buffer.from(g.item!.value).toString() }
      : { version: 0, value: undefined };
  }

  /** Reads key through B until B serves it from its near cache, at the given version. */
  async function nearServed(key: string, version: number): Promise<void> {
    await eventually(
      `replica B to serve ${key} v${version} from its near cache`,
      async () => {
        const before = await nearHits(b.server);
        const seen = await readB(key);
        const after = await nearHits(b.server);
        assert.equal(seen.version, version, "B read an older version while warming up");
        return after > before;
      },
      { timeoutMs: 10 * MARKER_TTL_MS, intervalMs: 100 },
    );
  }

  it("serves repeated Gets from the near cache and sees every write acknowledged through another replica", async () => {
    let version = await put("k1", "v0");
    await nearServed("k1", version);
    const hitsBefore = await nearHits(b.server);
    for (let i = 1; i <= 20; i++) {
      version = await put("k1", `v${i}`);
      assert.deepEqual(await readB("k1"), { version, value: `v${i}` }, `read after write ${i}`);
      // Read it again a few times: these may come from the near cache again.
      for (let j = 0; j < 3; j++) assert.deepEqual(await readB("k1"), { version, value: `v${i}` });
    }
    assert.ok((await nearHits(b.server)) > hitsBefore, "B never served k1 from its near cache between writes");
  });

  it("reports a revision no lower than any write acknowledged before the Get, to any key", async () => {
    const v = await put("k4", "steady");
    await nearServed("k4", v);
    const hitsBefore = await nearHits(b.server);
    for (let i = 0; i < 20; i++) {
      const w = await a.client.compareAndSet({
        namespace: NS,
        key: `elsewhere-${i}`,
        expected: { any: true },
        value: Buffer.from("x"),
      });
      const g = await b.client.get({ namespace: NS, key: "k4" });
      assert.equal(g.item?.version, v);
      assert.ok(
        g.header!.revision >= w.header!.revision,
        `Get reported revision ${g.header!.revision} after a write at ${w.header!.revision} was acknowledged`,
      );
    }
    assert.ok((await nearHits(b.server)) > hitsBefore, "writes to other keys voided the copy of k4");
  });

  it("waits for an invalidation that is still on the wire when the Get arrives", async () => {
    assert.ok(toxi);
    const v1 = await put("k2", "old");
    await nearServed("k2", v1);
    // Every byte from Redis to B now takes a second: the invalidation for the
    // write below reaches B long after A acknowledged it.
    await toxi.addToxic("redis-b", {
      name: "slow-down",
      type: "latency",
      stream: "downstream",
      attributes: { latency: 1000, jitter: 0 },
    });
    try {
      const v2 = await put("k2", "new");
      assert.deepEqual(
        await readB("k2"),
        { version: v2, value: "new" },
        "B served its copy past an acknowledged write",
      );
    } finally {
      await toxi.removeToxic("redis-b", "slow-down");
    }
  });

  it("stops serving copies when its invalidation connection is replaced, until tracking is set up again", async () => {
    assert.ok(redis && cluster);
    const v1 = await put("k3", "old");
    await nearServed("k3", v1);
    const name = `${cluster.redisPrefix}:near-invalidations`;
    const idOf = async (): Promise<string | undefined> => {
      const list = (await redis!.client("LIST")) as string;
      return [...list.matchAll(/^id=(\d+) .*?name=(\S+)/gm)].find((m) => m[2] === name)?.[1];
    };
    const old = await idOf();
    assert.ok(old, "B's invalidation connection is not in CLIENT LIST");
    await redis.client("KILL", "ID", old);
    // B reconnects at once; from the kill on, Redis drops the invalidations it
    // would have sent to the old connection.
    await eventually(
      "B's invalidation connection to be back",
      async () => {
        const now = await idOf();
        return now !== undefined && now !== old;
      },
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    const v2 = await put("k3", "new");
    assert.deepEqual(await readB("k3"), { version: v2, value: "new" }, "B served a copy nobody invalidated");
    // Near hits resume on the new connection, and stay fresh.
    await nearServed("k3", v2);
    const v3 = await put("k3", "newer");
    assert.deepEqual(await readB("k3"), { version: v3, value: "newer" });
  });
});
