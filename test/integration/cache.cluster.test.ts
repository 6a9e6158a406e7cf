/**
 * Guarantee 3 on a Redis Cluster (REDIS_URL=redis+cluster://...): readers and
 * writers race on a few keys through two server processes while one shard's
 * master is failed over by hand (CLUSTER FAILOVER on its replica) and another
 * is killed with SIGKILL (its replica takes over; writes it had not
 * replicated are lost: the replica is cut off first); no Get may return a version older than one already
 * acknowledged before it started, and the cache serves hits again after.
 */
import { strict as assert } from "node:assert";
import { setTimeout as sleep } from "node:timers/promises";
import { Cluster } from "ioredis";
import { cacheRace, loggedCacheStats } from "../support/cacheRace";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { RedisClusterProcess } from "../support/RedisClusterProcess";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";

describe("cache on a Redis Cluster: reads are never stale (guarantee 3)", function () {
  this.timeout(240_000);
  let cluster: RedisClusterProcess;
  let servers: ServerProcess[] = [];
  let prefix: string;

  before(async () => {
    const env = await getTestEnv();
    cluster = await RedisClusterProcess.start();
    prefix = env.redisPrefix();
    const common = {
      DATABASE_URL: await env.freshDatabase("cachecluster"),
      REDIS_URL: cluster.url,
      // Redlock never runs on the cluster: independent masters (here the run's single Redis).
      REDLOCK_URLS: env.redis.url,
      AGENTSTATE_REDIS_PREFIX: prefix,
      // Short timings so epochs mature quickly in a test; the protocol is the same.
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
      AGENTSTATE_CACHE_LEASE_MS: "500",
      AGENTSTATE_REDIS_TIMEOUT_MS: "300",
      LOG_LEVEL: "info",
    };
    servers = [await ServerProcess.start(common), await ServerProcess.start(common)];
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    await cluster?.destroy();
  });

  const hitsNow = async () => (await Promise.all(servers.map((s) => cacheReads(s)))).reduce((n, c) => n + c.hit, 0);

  it("no stale Get across a manual failover and a killed master; hits resume after each", async () => {
    const { violations, reads, writes } = await cacheRace(servers, {
      namespace: "cluster-race",
      keys: ["a", "b", "c", "d"],
      during: async (control) => {
        await eventually("cache hits on the cluster", async () => (await hitsNow()) > 50, { timeoutMs: 30_000 });
        // The namespace's own shard (its slot holds every key of the namespace), then another shard.
        const own = () => cluster.shardOf(`${prefix}:c:0:{cluster-race}:rev`);
        const resumed = async (what: string) => {
          const before = await hitsNow();
          await eventually(`hits after ${what}`, async () => (await hitsNow()) > before + 50, { timeoutMs: 30_000 });
        };
        await cluster.failover(await own());
        await resumed("a manual failover of the namespace's master");
        await cluster.killMaster(((await own()) + 1) % 3);
        await resumed("another shard's master was killed");
        // Its replica cut off first, so the master dies with writes (markers, installs) it never
        // replicated; no write runs from the kill until the replica has taken over (a write that
        // cannot reach Redis would move the epoch, hiding what this checks: that the failover does).
        await cluster.killMaster(await own(), { unreplicatedMs: 500, beforeKill: control.pauseWriters });
        await sleep(1000);
        control.resumeWriters();
        await resumed("the namespace's master was killed");
      },
    });

    assert.deepEqual(violations.slice(0, 10), []);
    assert.ok(writes > 50, `expected a real write load, got ${writes} writes`);
    assert.ok(reads > 200, `expected a real read load, got ${reads} reads`);
    await Promise.all(servers.map((s) => s.stop()));
    assert.ok(loggedCacheStats(servers, "hit") > 0, "no read was served from the cache");
    assert.ok(loggedCacheStats(servers, "near.hits") > 0, "no read was served from a near cache (one lane per master)");
    servers = [];
  });

  it("keeps every cache key of a namespace in one slot", async () => {
    const c = new Cluster([{ host: "127.0.0.1", port: cluster.nodes[0]!.port }], { scaleReads: "master" });
    try {
      await c.connect().catch(() => undefined);
      const keys = (await Promise.all(c.nodes("master").map((n) => n.keys(`${prefix}:c:*{cluster-race}*`)))).flat();
      assert.ok(keys.length > 0, "the namespace has keys in the cache");
      const slots = new Set(await Promise.all(keys.map((k) => c.cluster("KEYSLOT", k))));
      assert.equal(slots.size, 1);
    } finally {
      c.disconnect();
    }
  });
});
