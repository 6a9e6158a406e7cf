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
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { cacheRace, loggedCacheStats } from "../support/cacheRace";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { RedisClusterProcess } from "../support/RedisClusterProcess";
import { ServerProcess } from "../support/ServerProcess";
import { pgQuery } from "../support/pgQuery";
import { getTestEnv } from "../support/TestEnv";

describe("cache on a Redis Cluster: reads are never stale (guarantee 3)", function () {
  this.timeout(240_000);
  let cluster: RedisClusterProcess;
  let servers: ServerProcess[] = [];
  let prefix: string;
  let databaseUrl: string;

  before(async () => {
    const env = await getTestEnv();
    cluster = await RedisClusterProcess.start();
    prefix = env.redisPrefix();
    const common = {
      DATABASE_URL: (databaseUrl = await env.freshDatabase("cachecluster")),
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

  it("a namespace's epoch moved: its keys stay in its slot, Gets there are fresh, another namespace keeps its hits", async () => {
    const open = (s: ServerProcess) => ({ server: s, client: new AgentstateClient(s.address) });
    const w = open(servers[0]!);
    const r = open(servers[1]!);
    try {
      const moved = "cluster-nsmove";
      const other = "cluster-nsother";
      const hitOn = async (ns: string) => {
        const before = (await cacheReads(r.server)).hit;
        await r.client.get({ namespace: ns, key: "k" });
        return (await cacheReads(r.server)).hit > before;
      };
      await w.client.compareAndSet({ namespace: moved, key: "k", expected: { any: true }, value: Buffer.from("old") });
      await w.client.compareAndSet({ namespace: other, key: "k", expected: { any: true }, value: Buffer.from("o") });
      for (const ns of [moved, other]) {
        await eventually(`a cache hit in ${ns}`, () => hitOn(ns), { timeoutMs: 30_000, intervalMs: 50 });
      }
      await pgQuery(databaseUrl, "SELECT * FROM agentstate_cache_move($1, false)", [moved]);
      // Acknowledged once the leases on the replaced epoch are over (the move's wait, migrations/0020).
      await w.client.compareAndSet({ namespace: moved, key: "k", expected: { any: true }, value: Buffer.from("new") });
      assert.equal((await r.client.get({ namespace: moved, key: "k" })).item?.value.toString(), "new");
      let otherHits = 0;
      for (let i = 0; i < 20; i++) if (await hitOn(other)) otherHits++;
      assert.equal(otherHits, 20, "the other namespace's Gets left the cache after a move that was not theirs");
      // Hits resume in the moved namespace, under its new epoch's keys (P:c:E.n), all in its slot.
      await eventually("a cache hit in the moved namespace", () => hitOn(moved), { timeoutMs: 30_000, intervalMs: 50 });
      assert.equal((await r.client.get({ namespace: moved, key: "k" })).item?.value.toString(), "new");
      const c = new Cluster([{ host: "127.0.0.1", port: cluster.nodes[0]!.port }], { scaleReads: "master" });
      try {
        await c.connect().catch(() => undefined);
        // The cluster client learns the masters after connect() resolves: ask until it has them.
        let keys: string[] = [];
        await eventually(
          "the moved namespace's keys under a namespace epoch (P:c:E.n)",
          async () => {
            keys = (await Promise.all(c.nodes("master").map((n) => n.keys(`${prefix}:c:*{${moved}}*`)))).flat();
            return keys.some((k) => /:c:\d+\.\d+:/.test(k));
          },
          { timeoutMs: 10_000, intervalMs: 100 },
        );
        const slots = new Set(await Promise.all(keys.map((k) => c.cluster("KEYSLOT", k))));
        assert.equal(slots.size, 1, `the moved namespace's keys span slots: ${keys.join(", ")}`);
      } finally {
        c.disconnect();
      }
    } finally {
      w.client.close();
      r.client.close();
    }
  });

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
