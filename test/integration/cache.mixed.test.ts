/**
 * Guarantee 3 whatever the mix of cache configurations on one database
 * (issue 19): replicas without the cache, with another prefix, with another
 * Redis, and a Redis replaced by an empty one, each pair racing readers and
 * writers on a few keys through every replica across a Redis restart and a
 * FLUSHALL: no Get may return a version older than one acknowledged before it
 * began. Also: the mix is seen (warn log, agentstate_cache_mixed, /health),
 * AGENTSTATE_CACHE_MIX=fatal refuses it at start, and one Redis reached
 * through two URLs is one cache, not a mix.
 */
import { strict as assert } from "node:assert";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { pgQuery } from "../support/pgQuery";
import { RedisProcess } from "../support/RedisProcess";
import { ServerProcess } from "../support/ServerProcess";
import { serverMetrics } from "../support/serverMetrics";
import { StaleReadRace } from "../support/staleReadRace";
import { getTestEnv } from "../support/TestEnv";

/** Short timings so epochs mature quickly in a test; the protocol is the same. */
const TIMINGS = {
  AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
  AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
  AGENTSTATE_CACHE_LEASE_MS: "500",
  AGENTSTATE_REDIS_TIMEOUT_MS: "200",
};
const NO_CACHE = { REDIS_URL: "", REDLOCK_URLS: "" };
const KEYS = ["a", "b", "c"];

interface Deployment {
  servers: ServerProcess[];
  slots: (AgentstateClient | undefined)[];
}

async function startReplicas(databaseUrl: string, configs: Record<string, string>[]): Promise<Deployment> {
  const servers = await Promise.all(
    configs.map((c) => ServerProcess.start({ DATABASE_URL: databaseUrl, REDLOCK_URLS: "", ...TIMINGS, ...c })),
  );
  return { servers, slots: servers.map((s) => new AgentstateClient(s.address)) };
}

async function stopReplicas(d: Deployment | undefined): Promise<void> {
  if (!d) return;
  for (const c of d.slots) c?.close();
  await Promise.all(d.servers.map((s) => s.stop().catch(() => undefined)));
}

async function health(server: ServerProcess): Promise<{ cache: { mixed: boolean; self: string; others: string[] } }> {
  const listening = server.logs().find((l) => l["msg"] === "listening");
  const res = await fetch(`http://${String(listening?.["metrics"])}/health`, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as { cache: { mixed: boolean; self: string; others: string[] } };
}

async function mixedGauge(server: ServerProcess): Promise<number> {
  const m = /^agentstate_cache_mixed (\d+)$/m.exec(await serverMetrics(server));
  return Number(m?.[1]);
}

/** Races through every replica while `faults` runs, then checks no read was stale. */
async function race(d: Deployment, namespace: string, faults: () => Promise<void>): Promise<StaleReadRace> {
  const r = new StaleReadRace(d.slots, { namespace, keys: KEYS });
  r.start();
  try {
    await faults();
  } finally {
    await r.stop();
  }
  assert.deepEqual(r.violations.slice(0, 10), [], `${r.violations.length} stale reads`);
  assert.ok(r.writes > 30, `expected a real write load, got ${r.writes} writes`);
  assert.ok(r.reads > 100, `expected a real read load, got ${r.reads} reads`);
  return r;
}

describe("cache: mixed configurations on one database never serve a stale read (guarantee 3, issue 19)", function () {
  this.timeout(240_000);
  let redisA: RedisProcess;
  let redisB: RedisProcess;
  let d: Deployment | undefined;

  before(async () => {
    [redisA, redisB] = await Promise.all([RedisProcess.start(), RedisProcess.start()]);
  });
  afterEach(async () => {
    await stopReplicas(d);
    d = undefined;
  });
  after(async () => {
    await Promise.all([redisA?.destroy(), redisB?.destroy()]);
  });

  /** Warm-up, a Redis restart (empty), a FLUSHALL, each followed by racing. */
  const restartAndFlush = (redis: RedisProcess) => async () => {
    await sleep(3000);
    await redis.restart();
    await sleep(3000);
    await redis.flushAll();
    await sleep(3000);
  };

  it("no cache beside cache A/P: the mix is seen, logged once, and reads stay fresh", async () => {
    const env = await getTestEnv();
    const prefix = env.redisPrefix();
    d = await startReplicas(await env.freshDatabase("mix_none"), [
      { REDIS_URL: redisA.url, AGENTSTATE_REDIS_PREFIX: prefix },
      NO_CACHE,
    ]);
    await race(d, "mix-none", restartAndFlush(redisA));
    for (const s of d.servers) {
      assert.equal(await mixedGauge(s), 1, "agentstate_cache_mixed");
      const h = await health(s);
      assert.equal(h.cache.mixed, true);
      assert.ok(h.cache.others.length > 0);
    }
    const cached = await health(d.servers[0]!);
    assert.match(cached.cache.others.join(" "), /no cache/);
    assert.ok(!JSON.stringify(cached).includes("@"), "no credentials in the health detail");
    const uncached = await health(d.servers[1]!);
    assert.match(
      uncached.cache.others.join(" "),
      new RegExp(`redis 127\\.0\\.0\\.1:${redisA.port}/0 prefix ${prefix}`),
    );
    // Logged once, at warn (a Redis restart or a flush gives the cache a new
    // identity, not a new configuration).
    const warned = d.servers[1]!.logs().filter((l) => String(l["msg"]).startsWith("mixed cache configuration"));
    assert.equal(warned.length, 1, `warned ${warned.length} times`);
    assert.equal(warned[0]!["level"], "warn");
  });

  it("cache A/P beside cache A/Q (one Redis, two prefixes)", async () => {
    const env = await getTestEnv();
    d = await startReplicas(await env.freshDatabase("mix_prefix"), [
      { REDIS_URL: redisA.url, AGENTSTATE_REDIS_PREFIX: env.redisPrefix() },
      { REDIS_URL: redisA.url, AGENTSTATE_REDIS_PREFIX: env.redisPrefix() },
    ]);
    await race(d, "mix-prefix", restartAndFlush(redisA));
    for (const s of d.servers) assert.equal(await mixedGauge(s), 1);
  });

  it("cache A beside cache B (two Redis servers)", async () => {
    const env = await getTestEnv();
    const prefix = env.redisPrefix();
    d = await startReplicas(await env.freshDatabase("mix_redis"), [
      { REDIS_URL: redisA.url, AGENTSTATE_REDIS_PREFIX: prefix },
      { REDIS_URL: redisB.url, AGENTSTATE_REDIS_PREFIX: prefix },
    ]);
    await race(d, "mix-redis", async () => {
      await sleep(3000);
      await redisB.restart();
      await sleep(3000);
      await redisA.flushAll();
      await sleep(3000);
    });
    for (const s of d.servers) assert.equal(await mixedGauge(s), 1);
  });

  it("one Redis through two URLs is one cache: no mix, and the cache serves", async () => {
    const env = await getTestEnv();
    const prefix = env.redisPrefix();
    d = await startReplicas(await env.freshDatabase("mix_same"), [
      { REDIS_URL: redisA.url, AGENTSTATE_REDIS_PREFIX: prefix },
      { REDIS_URL: `redis://localhost:${redisA.port}/0`, AGENTSTATE_REDIS_PREFIX: prefix },
    ]);
    await race(d, "mix-same", async () => sleep(6000));
    for (const s of d.servers) {
      assert.equal(await mixedGauge(s), 0);
      assert.ok((await cacheReads(s)).hit > 0, "the cache served reads");
    }
  });

  it("a cache Redis replaced by an empty one at the same port: a new identity, nothing from before is served", async () => {
    const env = await getTestEnv();
    const prefix = env.redisPrefix();
    const port = redisA.port;
    d = await startReplicas(await env.freshDatabase("mix_replaced"), [
      { REDIS_URL: redisA.url, AGENTSTATE_REDIS_PREFIX: prefix },
      { REDIS_URL: redisA.url, AGENTSTATE_REDIS_PREFIX: prefix },
    ]);
    const deployment = d;
    let hitsBefore = 0;
    await race(d, "mix-replaced", async () => {
      await sleep(4000);
      hitsBefore = (await Promise.all(deployment.servers.map(cacheReads))).reduce((n, c) => n + c.hit, 0);
      await redisA.destroy();
      redisA = await RedisProcess.start({ port });
      await sleep(6000);
    });
    assert.ok(hitsBefore > 0, "the cache served before the replacement");
    const hitsAfter = (await Promise.all(d.servers.map(cacheReads))).reduce((n, c) => n + c.hit, 0);
    assert.ok(hitsAfter > hitsBefore, "the replacement serves again once its epoch is owned and mature");
    const changed = d.servers
      .flatMap((s) => s.logs())
      .filter((l) => l["msg"] === "cache identity changed: redis was emptied or replaced");
    assert.ok(changed.length > 0, "the replicas saw a new cache identity");
    for (const s of d.servers) assert.equal(await mixedGauge(s), 0, "its own former identity is not a mix");
  });

  it("registrations lapse: a dead owner stops forcing epoch moves, and a new cache takes the epoch once the others are gone", async () => {
    const env = await getTestEnv();
    const db = await env.freshDatabase("mix_lapse");
    const state = async () =>
      (
        await pgQuery<{ owner: string | null; epoch: number }>(
          db,
          "SELECT cache_owner AS owner, cache_epoch::int AS epoch FROM agentstate_state WHERE id = 1",
        )
      )[0]!;
    d = await startReplicas(db, [{ REDIS_URL: redisA.url, AGENTSTATE_REDIS_PREFIX: env.redisPrefix() }]);
    const owner = await eventually("the cache owns the epoch", async () => (await state()).owner ?? undefined);
    // The owner dies without a word; a replica without a cache starts.
    await d.servers[0]!.kill("SIGKILL");
    d.slots[0]!.close();
    const none = await ServerProcess.start({ DATABASE_URL: db, ...TIMINGS, ...NO_CACHE });
    d.servers.push(none);
    const client = new AgentstateClient(none.address);
    d.slots.push(client);
    assert.equal((await state()).owner, null, "its first renewal revoked the dead owner");
    const before = (await state()).epoch;
    for (let i = 0; i < 20; i++)
      await client.compareAndSet({
        namespace: "lapse",
        key: "k",
        expected: { any: true },
        value: Buffer.from(String(i)),
      });
    assert.equal((await state()).epoch, before, "writes without a cache move no epoch once no cache owns it");
    // The replica without a cache leaves; a new cache (another prefix) takes
    // the epoch once that registration and the dead owner's have lapsed.
    d.slots[1]!.close();
    await none.stop();
    const other = await ServerProcess.start({
      DATABASE_URL: db,
      ...TIMINGS,
      REDIS_URL: redisA.url,
      AGENTSTATE_REDIS_PREFIX: env.redisPrefix(),
    });
    d.servers.push(other);
    const next = await eventually("the new cache owns the epoch", async () => {
      const o = (await state()).owner;
      return o !== null && o !== owner ? o : undefined;
    });
    assert.notEqual(next, owner);
  });

  it("AGENTSTATE_CACHE_MIX=fatal: a replica refuses to start beside another cache configuration", async () => {
    const env = await getTestEnv();
    const db = await env.freshDatabase("mix_fatal");
    d = await startReplicas(db, [{ REDIS_URL: redisA.url, AGENTSTATE_REDIS_PREFIX: env.redisPrefix() }]);
    await assert.rejects(
      ServerProcess.start({ DATABASE_URL: db, ...TIMINGS, ...NO_CACHE, AGENTSTATE_CACHE_MIX: "fatal" }),
      /AGENTSTATE_CACHE_MIX=fatal: other replicas of this database run with another cache configuration/,
    );
    // The same configuration as the running one starts.
    const same = await ServerProcess.start({ ...d.servers[0]!.env, AGENTSTATE_CACHE_MIX: "fatal" });
    d.servers.push(same);
  });
});
