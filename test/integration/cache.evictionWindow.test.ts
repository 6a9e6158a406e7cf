/**
 * Guarantee 3 with no eviction window (issue 19): the cache Redis switched to
 * an eviction policy that evicts keys without a TTL (allkeys-lfu) really evicts
 * a write marker, before any replica's periodic policy check has seen the
 * switch (AGENTSTATE_CACHE_EVICTION_CHECK_MS at its maximum). The replica
 * that wrote is then killed between its commit and its cache update, the
 * case where the marker was the only guard.
 *
 * Two replicas share one Postgres and one Redis of the test's own (it is
 * reconfigured); A reaches it through toxiproxy, B directly. B serves k from
 * the cache; A's CompareAndSet marks k and waits on a row lock the test
 * holds. The test then sets allkeys-lfu and a maxmemory just above the
 * Redis's use, and writes filler keys (touching the keys it wants kept) until
 * Redis has evicted A's marker, then restores the policy. B reads k: a miss
 * whose fill would store the old version. A commits and is killed. Every read
 * through B must then return the committed version.
 *
 * Without the eviction check in the fill (and end-write) scripts B's fill
 * stores v1 and B serves it after A's commit.
 */
import * as assert from "node:assert/strict";
import { hash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { backendWaitingOnLock } from "../support/backendWaitingOnLock";
import { cacheRace } from "../support/cacheRace";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { holdRowLock } from "../support/holdRowLock";
import { pgQuery } from "../support/pgQuery";
import { RedisProcess } from "../support/RedisProcess";
import { settle } from "../support/settle";
import type { Replica } from "../support/startCluster";
import { startProxiedCacheCluster, type ProxiedCacheCluster } from "../support/startProxiedCacheCluster";

const NS = "evwin";
const KEY = "k";
// The steps inside A's statement (it waits on a row lock) took 0.25-0.5 s here, under load;
// each new epoch serves from MARKER_TTL_MS after it began, which both cases wait out.
const STATEMENT_TIMEOUT_MS = 3_000;
const MARKER_TTL_MS = 2 * STATEMENT_TIMEOUT_MS;

interface Seen {
  version: number;
  value: string | undefined;
}

describe("guarantee 3: a write marker evicted under allkeys-lfu before any policy check, its writer killed after commit", function () {
  this.timeout(240_000);
  let redis: RedisProcess | undefined;
  let setup: ProxiedCacheCluster | undefined;
  let a: Replica;
  let b: Replica;

  before(async function () {
    this.timeout(600_000); // may install toxiproxy-server (pinned) on a fresh machine
    redis = await RedisProcess.start();
    setup = await startProxiedCacheCluster({
      name: "evwin",
      proxy: "redis-evwin",
      redisPort: redis.port,
      env: {
        AGENTSTATE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        AGENTSTATE_CACHE_MARKER_TTL_MS: String(MARKER_TTL_MS),
        AGENTSTATE_CACHE_LEASE_MS: "1000",
        // The policy is re-read a minute after start: the whole test runs in the window before.
        AGENTSTATE_CACHE_EVICTION_CHECK_MS: "60000",
      },
      proxiedRedisTimeoutMs: 60_000,
    });
    ({ direct: b, proxied: a } = setup);
  });

  after(async () => {
    await setup?.stop();
    await redis?.destroy();
  });

  async function readB(): Promise<Seen> {
    const g = await b.client.get({ namespace: NS, key: KEY });
    return g.found
      ? { version: g.item!.version, value: Buffer.from(g.item!.value).toString() }
      : { version: 0, value: undefined };
  }

  it("reads through the surviving replica return the committed version", async () => {
    assert.ok(setup && redis);
    const db = setup.cluster.databaseUrl;
    const prefix = setup.cluster.redisPrefix!;
    const started = Date.now();
    const created = await a.client.compareAndSet({
      namespace: NS,
      key: KEY,
      expected: { absent: true },
      value: Buffer.from("v1"),
    });
    assert.equal(created.applied, true);
    await eventually(
      "replica B to serve k from the cache",
      async () => {
        const before = await cacheReads(b.server);
        assert.deepEqual(await readB(), { version: 1, value: "v1" });
        return (await cacheReads(b.server)).hit > before.hit;
      },
      { timeoutMs: 4 * MARKER_TTL_MS, intervalMs: 200 },
    );

    const r = redis.client();
    await r.connect();
    try {
      const rows = await pgQuery<{ cache_epoch: string }>(db, "SELECT cache_epoch FROM agentstate_state");
      const base = `${prefix}:c:${rows[0]!.cache_epoch}`;
      const marker = `${base}:{${hash("sha256", `${NS}\0${KEY}`, "base64url")}}:w`;
      const keep = [`${prefix}:id`, `${base}:alive`, `${base}:armed`, `${base}:rev:${NS}`];

      // A's write marks k, then waits on the row lock inside its transaction.
      const release = await holdRowLock(db, "SELECT 1 FROM kv WHERE namespace = $1 FOR UPDATE", [NS]);
      const pending = settle(
        a.client.compareAndSet(
          { namespace: NS, key: KEY, expected: { version: 1 }, value: Buffer.from("v2") },
          { deadlineMs: 120_000 },
        ),
      );
      let evictions = 0;
      try {
        await backendWaitingOnLock(db);
        assert.equal(await r.exists(marker), 1, "A marked k");

        // Real evictions: allkeys-lfu just above the memory in use, filler keys written
        // until Redis has evicted A's marker. The keys the epoch needs are kept by use
        // (lfu-log-factor 0: every access counts), as a busy epoch keeps them.
        const used = Number(/used_memory:(\d+)/.exec(await r.info("memory"))![1]);
        await r.config("SET", "maxmemory-policy", "allkeys-lfu");
        await r.config("SET", "lfu-log-factor", "0");
        for (let i = 0; i < 100; i++) await r.touch(...keep);
        await r.config("SET", "maxmemory", String(used + 2 * 1024 * 1024));
        const filler = Buffer.alloc(64 * 1024, "x");
        for (let i = 0; (await r.exists(marker)) === 1; i++) {
          assert.ok(i < 5_000, "Redis evicted the marker");
          await r.touch(...keep);
          const p = r.pipeline();
          for (let j = 0; j < 8; j++) p.set(`evwin-filler:${i}:${j}`, filler);
          await p.exec();
        }
        evictions = Number(/evicted_keys:(\d+)/.exec(await r.info("stats"))![1]);
        for (const k of keep) assert.equal(await r.exists(k), 1, `${k} kept`);
        // Back to a safe configuration: what was evicted stays evicted.
        await r.config("SET", "maxmemory", "0");
        await r.config("SET", "maxmemory-policy", "volatile-lru");
        await r.config("SET", "lfu-log-factor", "10");
        assert.ok(Date.now() - started < 50_000, "still before the replicas' next policy check");

        // Not committed yet: B reads the old version (a miss, then a fill).
        for (let i = 0; i < 3; i++)
          assert.deepEqual(await readB(), { version: 1, value: "v1" }, "read while in flight");
        await sleep(200); // B's fill lands
        await setup.toxi.addToxic("redis-evwin", {
          name: "blackhole",
          type: "timeout",
          stream: "upstream",
          attributes: { timeout: 0 },
        });
      } finally {
        await release();
      }
      assert.ok(evictions > 0);
      await eventually(
        "A's write to commit in Postgres",
        async () => {
          const rows = await pgQuery<{ version: string }>(
            db,
            "SELECT version FROM kv WHERE namespace = $1 AND key = $2",
            [NS, Buffer.from(KEY)],
          );
          return Number(rows[0]?.version) === 2;
        },
        { timeoutMs: 30_000 },
      );
      await a.server.kill("SIGKILL");
      assert.ok("err" in (await pending), "A died before acknowledging the write");
    } finally {
      r.disconnect();
    }

    // Every read through B returns the committed version, now and once B serves k from the cache again.
    const stale: string[] = [];
    const until = Date.now() + 3_000;
    let hitsAgain = false;
    const first = await cacheReads(b.server);
    while (Date.now() < until || !hitsAgain) {
      const seen = await readB();
      if (seen.version !== 2) stale.push(`read version ${seen.version} (${seen.value}) after version 2 committed`);
      hitsAgain = (await cacheReads(b.server)).hit > first.hit;
      assert.ok(Date.now() < until + 4 * MARKER_TTL_MS, "B serves k from the cache again");
      await sleep(100);
    }
    assert.deepEqual(stale.slice(0, 5), [], `${stale.length} stale reads through B`);
    assert.equal(b.server.running, true, `replica B crashed:\n${b.server.tail(30)}`);
    const warned = b.server
      .logs()
      .filter((l) => l["level"] === "warn" && String(l["msg"]).startsWith("cache epoch moved: redis evicted keys"));
    assert.equal(warned.length, 1, "B warned once that keys were evicted");
  });

  it("the stale-read checker through both replicas under allkeys-random evictions: no stale read, hits again after", async () => {
    assert.ok(setup && redis);
    const servers = setup.cluster.servers.filter((s) => s.running);
    // A was killed above: a fresh replica through the proxy (its link healed).
    await setup.toxi.removeToxic("redis-evwin", "blackhole").catch(() => undefined);
    const fresh = await setup.cluster.addReplica({ REDIS_URL: redis.url });
    servers.push(fresh.server);
    const hits = async () => (await Promise.all(servers.map((s) => cacheReads(s)))).reduce((n, c) => n + c.hit, 0);
    const r = redis.client();
    await r.connect();
    try {
      const { violations, reads, writes } = await cacheRace(servers, {
        namespace: "evrace",
        keys: ["a", "b", "c"],
        during: async () => {
          await eventually("cache hits", async () => (await hits()) > 50, { timeoutMs: 60_000 });
          const used = Number(/used_memory:(\d+)/.exec(await r.info("memory"))![1]);
          await r.config("SET", "maxmemory-policy", "allkeys-random");
          await r.config("SET", "maxmemory", String(used + 1024 * 1024));
          const filler = Buffer.alloc(16 * 1024, "y");
          const until = Date.now() + 4_000;
          for (let i = 0; Date.now() < until; i++) {
            const p = r.pipeline();
            for (let j = 0; j < 8; j++) p.set(`evrace-filler:${i}:${j}`, filler);
            await p.exec();
            await sleep(5);
          }
          const evicted = Number(/evicted_keys:(\d+)/.exec(await r.info("stats"))![1]);
          assert.ok(evicted > 100, `real evictions (${evicted})`);
          await r.config("SET", "maxmemory", "0");
          await r.config("SET", "maxmemory-policy", "volatile-lru");
          const off = await hits();
          await eventually("hits again", async () => (await hits()) > off + 50, { timeoutMs: 60_000 });
        },
      });
      assert.deepEqual(violations.slice(0, 10), []);
      assert.ok(writes > 20 && reads > 100, `a real load: ${writes} writes, ${reads} reads`);
      // Whichever replica's script met the evictions first refused and moved the epoch; each warns once.
      const warned = servers.map(
        (s) =>
          s
            .logs()
            .filter(
              (l) => l["level"] === "warn" && String(l["msg"]).startsWith("cache epoch moved: redis evicted keys"),
            ).length,
      );
      assert.ok(
        warned.some((n) => n === 1) && warned.every((n) => n <= 1),
        `the eviction check refused and moved the epoch (one warning per replica at most): ${warned.join(", ")}`,
      );
    } finally {
      r.disconnect();
    }
  });
});
