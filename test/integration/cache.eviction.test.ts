/**
 * The cache's Redis switched to an eviction policy that could evict write
 * markers (allkeys-*) while the servers run: each turns its cache off within
 * AGENTSTATE_CACHE_EVICTION_CHECK_MS plus the lease (metric, one warning),
 * serves from Postgres meanwhile, and turns it back on once the policy is
 * safe again; the stale-read checker runs throughout.
 */
import { strict as assert } from "node:assert";
import { setTimeout as sleep } from "node:timers/promises";
import { cacheRace } from "../support/cacheRace";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { RedisProcess } from "../support/RedisProcess";
import { ServerProcess } from "../support/ServerProcess";
import { serverMetrics } from "../support/serverMetrics";
import { getTestEnv } from "../support/TestEnv";

describe("cache: an eviction policy changed while running (issue 19)", function () {
  this.timeout(120_000);
  let redis: RedisProcess;
  let servers: ServerProcess[] = [];

  before(async () => {
    const env = await getTestEnv();
    redis = await RedisProcess.start();
    const common = {
      DATABASE_URL: await env.freshDatabase("cacheevict"),
      REDIS_URL: redis.url,
      AGENTSTATE_REDIS_PREFIX: env.redisPrefix(),
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
      AGENTSTATE_CACHE_LEASE_MS: "500",
      AGENTSTATE_CACHE_EVICTION_CHECK_MS: "300",
    };
    servers = [await ServerProcess.start(common), await ServerProcess.start(common)];
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    await redis?.destroy();
  });

  const setPolicy = async (policy: string) => {
    const c = redis.client();
    try {
      await c.connect();
      await c.config("SET", "maxmemory-policy", policy);
    } finally {
      c.disconnect();
    }
  };
  const hits = async () => (await Promise.all(servers.map((s) => cacheReads(s)))).reduce((n, c) => n + c.hit, 0);
  const unsafeOnAll = async (want: 0 | 1) =>
    (await Promise.all(servers.map((s) => serverMetrics(s)))).every((t) =>
      new RegExp(`^agentstate_cache_eviction_unsafe ${want}$`, "m").test(t),
    );

  it("allkeys-lru mid-run: the cache turns off (metric, one warning), no stale read, and back on with volatile-lru", async () => {
    const { violations, reads, writes } = await cacheRace(servers, {
      namespace: "evict",
      keys: ["a", "b", "c"],
      during: async () => {
        await eventually("cache hits", async () => (await hits()) > 50, { timeoutMs: 30_000 });
        await setPolicy("allkeys-lru");
        await eventually("every server reports its cache off", () => unsafeOnAll(1), { timeoutMs: 10_000 });
        const off = await hits();
        await sleep(1500);
        assert.equal(await hits(), off, "no hit is served while the policy is unsafe");
        await setPolicy("volatile-lru");
        await eventually("every server reports its cache on", () => unsafeOnAll(0), { timeoutMs: 10_000 });
        await eventually("hits again", async () => (await hits()) > off + 50, { timeoutMs: 30_000 });
      },
    });
    assert.deepEqual(violations.slice(0, 10), []);
    assert.ok(writes > 20 && reads > 100, `a real load: ${writes} writes, ${reads} reads`);
    for (const s of servers) {
      const warned = s.logs().filter((l) => l["level"] === "warn" && String(l["msg"]).startsWith("cache off:"));
      assert.equal(warned.length, 1, "one warning when the cache turns off");
      assert.equal(warned[0]!["policy"], "allkeys-lru");
    }
  });
});
