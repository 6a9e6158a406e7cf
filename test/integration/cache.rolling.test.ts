/**
 * The rolling change of the cache configuration, scripted (issue 19; README,
 * "Mixed cache configurations and rolling changes"): two replicas without a
 * cache under load; the cache is added one replica at a time (each restarted
 * with REDIS_URL), then removed the same way. Readers and writers race
 * through both replicas the whole time: no Get may return a version older
 * than one acknowledged before it began, and once every replica runs with
 * the cache it serves reads.
 */
import { strict as assert } from "node:assert";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { cacheReads } from "../support/cacheReads";
import { ServerProcess } from "../support/ServerProcess";
import { StaleReadRace } from "../support/cacheRace";
import { getTestEnv } from "../support/TestEnv";

describe("cache: a rolling change adding then removing the cache never serves a stale read (guarantee 3, issue 19)", function () {
  this.timeout(240_000);
  const servers: (ServerProcess | undefined)[] = [];
  const slots: (AgentstateClient | undefined)[] = [];

  after(async () => {
    for (const c of slots) c?.close();
    await Promise.all(servers.map((s) => s?.stop().catch(() => undefined)));
  });

  it("adds the cache one replica at a time, then removes it, under load", async () => {
    const env = await getTestEnv();
    const common = {
      DATABASE_URL: await env.freshDatabase("rolling"),
      REDLOCK_URLS: "",
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
      AGENTSTATE_CACHE_LEASE_MS: "500",
      AGENTSTATE_REDIS_TIMEOUT_MS: "200",
      AGENTSTATE_SHUTDOWN_GRACE_MS: "2000",
    };
    const withCache = { ...common, REDIS_URL: env.redis.url, AGENTSTATE_REDIS_PREFIX: env.redisPrefix() };
    const withoutCache = { ...common, REDIS_URL: "" };
    const start = async (i: number, cfg: Record<string, string>) => {
      const s = await ServerProcess.start(cfg);
      servers[i] = s;
      slots[i] = new AgentstateClient(s.address);
    };
    /** One step of the rolling change: replica i leaves the pool, restarts with `cfg`, rejoins. */
    const restart = async (i: number, cfg: Record<string, string>) => {
      const client = slots[i];
      slots[i] = undefined;
      client?.close();
      await servers[i]!.stop();
      await start(i, cfg);
    };
    await Promise.all([start(0, withoutCache), start(1, withoutCache)]);

    const race = new StaleReadRace(slots, { namespace: "rolling", keys: ["a", "b", "c"] });
    race.start();
    let hitsWithCache = 0;
    try {
      await sleep(2000);
      await restart(0, withCache); // mixed: one replica with the cache, one without
      await sleep(3000);
      await restart(1, withCache); // every replica with the cache
      await sleep(6000);
      hitsWithCache = (await cacheReads(servers[0]!)).hit + (await cacheReads(servers[1]!)).hit;
      await restart(0, withoutCache); // mixed again
      await sleep(3000);
      await restart(1, withoutCache); // no cache anywhere
      await sleep(2000);
    } finally {
      await race.stop();
    }
    assert.deepEqual(race.violations.slice(0, 10), [], `${race.violations.length} stale reads`);
    assert.ok(race.writes > 50, `expected a real write load, got ${race.writes} writes`);
    assert.ok(race.reads > 200, `expected a real read load, got ${race.reads} reads`);
    assert.ok(hitsWithCache > 0, "once every replica ran with the cache, it served reads");
  });
});
