/**
 * The end-writes of one group-commit batch share one script call
 * (EndWrites, cacheEndWrite-n.lua): one eviction check and one script's fixed
 * cost per batch. What each write's end does must not change with it:
 * - against a real Redis, a batch whose writes meet different fates (one
 *   installs, one is refused because another writer is in flight on its key,
 *   one finds its epoch gone) gives each its own code and changes only what
 *   its own call would; a batch after a possible eviction changes nothing;
 * - random sequences of begin-writes and batched end-writes leave Redis in
 *   the state the same end-writes sent one call each leave it in;
 * - on a server, a burst of writes to one namespace sends one end-write call
 *   (one eviction check) per batch, not one per write, and every write is
 *   installed.
 */
import * as assert from "node:assert/strict";
import type { Redis } from "ioredis";
import { Logger } from "../../src/log/Logger";
import { CacheBeginWriteReply, CacheEndWriteReply } from "../../src/store/redis/cacheReplies";
import { defineCacheScripts, type CacheCommands } from "../../src/store/redis/cacheScripts";
import { createRedisClient } from "../../src/store/redis/createRedisClient";
import { EndWrites, type EndWrite, type EndWriteShared } from "../../src/store/redis/EndWrites";
import { histogramStats } from "../support/histogramStats";
import { serverMetrics } from "../support/serverMetrics";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { startCluster, type Cluster } from "../support/startCluster";
import { getTestEnv } from "../support/TestEnv";

const log = new Logger("error", {}, () => undefined);
const ALIVE = "1:run";
const { INSTALLED, NOT_INSTALLED, EPOCH_GONE, EVICTED } = CacheEndWriteReply;

describe("cache end-writes: one script call per batch (real Redis)", function () {
  this.timeout(60_000);
  let redis: Redis & CacheCommands;
  let ends: EndWrites;
  let n = 0;

  before(async () => {
    const env = await getTestEnv();
    redis = defineCacheScripts(createRedisClient(env.redis.url, 5000, log));
    await redis.connect();
    ends = new EndWrites(redis);
  });
  after(() => redis?.disconnect());

  /** A fresh epoch: its alive key, and an arm with this Redis's counters now (nothing evicted since). */
  async function epoch(): Promise<{ base: string; shared: EndWriteShared }> {
    const env = await getTestEnv();
    const base = `${env.redisPrefix()}:ew${++n}`;
    const shared = { alive: `${base}:alive`, known: `${base}:rev:ns`, armed: `${base}:armed` };
    const stats = await redis.info("stats");
    const e = /evicted_keys:(\d+)/.exec(stats)![1]!;
    await redis.multi().set(shared.alive, ALIVE).hset(shared.armed, { e, s: "0", r: "0", t: "1" }).exec();
    return { base, shared };
  }

  const itemKeys = (base: string, key: string) => {
    const k = `${base}:{${key}}`;
    return { entry: `${k}:e`, markers: `${k}:w`, token: `${k}:t`, writers: `${k}:lw` };
  };

  async function begin(base: string, shared: EndWriteShared, key: string, writerId: string): Promise<void> {
    const k = itemKeys(base, key);
    const r = await redis.cacheBeginWrite(
      shared.alive,
      k.entry,
      k.markers,
      k.token,
      k.writers,
      shared.known,
      ALIVE,
      writerId,
      "60000",
    );
    assert.equal(r, CacheBeginWriteReply.MARKED);
  }

  const endOf = (base: string, key: string, writerId: string, revision: number, aliveValue = ALIVE): EndWrite => ({
    ...itemKeys(base, key),
    aliveValue,
    writerId,
    revision: String(revision),
    meta: JSON.stringify({ k: key, rev: revision }),
    bytes: Buffer.from(`${key}@${revision}`),
    ttlMs: "60000",
  });

  /** Ends writes in one turn: EndWrites sends them as one call. */
  const endTogether = (shared: EndWriteShared, writes: EndWrite[]) =>
    Promise.all(writes.map((w) => ends.end(shared, w)));

  /** Everything a key's end-write may change, scores of markers left out (they are Redis's clock). */
  async function state(base: string, key: string): Promise<unknown> {
    const k = itemKeys(base, key);
    const [entry, markers, token, writers] = await Promise.all([
      redis.hgetall(k.entry),
      redis.zrange(k.markers, 0, -1),
      redis.exists(k.token),
      redis.hgetall(k.writers),
    ]);
    return { entry, markers, token, writers };
  }

  it("each write of a batch meets its own fate: installed, refused (another writer in flight), epoch gone", async () => {
    const { base, shared } = await epoch();
    await begin(base, shared, "a", "w1");
    await begin(base, shared, "b", "w2");
    await begin(base, shared, "b", "w3"); // still in flight when w2 ends
    await begin(base, shared, "c", "w4");
    const sent = await redis.info("commandstats");
    const codes = await endTogether(shared, [
      endOf(base, "a", "w1", 10),
      endOf(base, "b", "w2", 11),
      endOf(base, "c", "w4", 12, "0:another-epoch"),
    ]);
    assert.deepEqual(codes, [INSTALLED, NOT_INSTALLED, EPOCH_GONE]);
    // Counted since the INFO that read `sent`: that INFO, one script call, and its one INFO stats.
    assert.equal(scriptCalls(await redis.info("commandstats")) - scriptCalls(sent), 3, "one call, one check");
    assert.deepEqual(await state(base, "a"), {
      entry: { r: "10", m: JSON.stringify({ k: "a", rev: 10 }), b: "a@10" },
      markers: [],
      token: 0,
      writers: {},
    });
    assert.deepEqual(await state(base, "b"), { entry: {}, markers: ["w3"], token: 0, writers: { w: "w3", r: "11" } });
    assert.deepEqual(
      await state(base, "c"),
      { entry: {}, markers: ["w4"], token: 0, writers: { w: "w4" } },
      "a write whose epoch is gone changes nothing",
    );
    assert.equal(await redis.get(shared.known), "11", "the known revision: the highest ended in the epoch");
    // The writer still in flight ends alone later, and installs (it began last, and 13 > 11).
    assert.deepEqual(await endTogether(shared, [endOf(base, "b", "w3", 13)]), [INSTALLED]);
    assert.equal((await redis.hgetall(itemKeys(base, "b").entry)).r, "13");
    assert.equal(await redis.get(shared.known), "13");
  });

  it("a batch after a possible eviction changes nothing (every write EVICTED, or EPOCH_GONE first)", async () => {
    const { base, shared } = await epoch();
    for (const [key, w] of [
      ["a", "w1"],
      ["b", "w2"],
      ["c", "w3"],
    ] as const)
      await begin(base, shared, key, w);
    await redis.del(shared.armed); // the arm itself evicted: the check fails
    const before = await Promise.all(["a", "b", "c"].map((k) => state(base, k)));
    const codes = await endTogether(shared, [
      endOf(base, "a", "w1", 5),
      endOf(base, "b", "w2", 6, "0:another-epoch"),
      endOf(base, "c", "w3", 7),
    ]);
    assert.deepEqual(codes, [EVICTED, EPOCH_GONE, EVICTED]);
    assert.deepEqual(await Promise.all(["a", "b", "c"].map((k) => state(base, k))), before);
    assert.equal(await redis.get(shared.known), null);
  });

  it("an error of the call is every write's error", async () => {
    const { base, shared } = await epoch();
    // Writers hash of the wrong type: HMGET fails inside the script.
    await redis.set(itemKeys(base, "b").writers, "not a hash");
    const settled = await Promise.allSettled([
      ends.end(shared, endOf(base, "a", "w1", 5)),
      ends.end(shared, endOf(base, "b", "w2", 6)),
    ]);
    assert.deepEqual(
      settled.map((s) => s.status),
      ["rejected", "rejected"],
    );
  });

  it("random begin-writes and batched end-writes leave the state one call per end-write leaves", async () => {
    const batched = await epoch();
    const single = await epoch();
    const keys = ["a", "b", "c"];
    let seed = 20261207;
    const rnd = (k: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % k;
    };
    const inFlight: { key: string; writer: string }[] = [];
    let writers = 0;
    let revision = 0;
    for (let step = 0; step < 300; step++) {
      if (inFlight.length === 0 || rnd(3) === 0) {
        const key = keys[rnd(keys.length)]!;
        const writer = `w${++writers}`;
        await begin(batched.base, batched.shared, key, writer);
        await begin(single.base, single.shared, key, writer);
        inFlight.push({ key, writer });
        continue;
      }
      // End a few writes in flight (any order; revisions not in begin order; some with nothing to install).
      const batch: { key: string; writer: string; rev: number; alive: string }[] = [];
      for (let i = 1 + rnd(4); i > 0 && inFlight.length > 0; i--) {
        const [w] = inFlight.splice(rnd(inFlight.length), 1);
        revision += 1 + rnd(3);
        const rev = rnd(5) === 0 ? 0 : revision - rnd(3);
        batch.push({ ...w!, rev, alive: rnd(10) === 0 ? "0:another-epoch" : ALIVE });
      }
      const together = await endTogether(
        batched.shared,
        batch.map((b) => endOf(batched.base, b.key, b.writer, b.rev, b.alive)),
      );
      const oneByOne: number[] = [];
      for (const b of batch)
        oneByOne.push(await ends.end(single.shared, endOf(single.base, b.key, b.writer, b.rev, b.alive)));
      assert.deepEqual(together, oneByOne, `step ${step}: the codes`);
      for (const key of keys)
        assert.deepEqual(await state(batched.base, key), await state(single.base, key), `step ${step}: key ${key}`);
      assert.equal(await redis.get(batched.shared.known), await redis.get(single.shared.known), `step ${step}: known`);
    }
  });
});

/** Calls of scripts and of INFO (the eviction check's read) so far, from INFO commandstats. */
function scriptCalls(commandstats: string): number {
  let calls = 0;
  for (const m of commandstats.matchAll(/^cmdstat_(evalsha|eval|info):calls=(\d+)/gm)) calls += Number(m[2]);
  return calls;
}

describe("cache end-writes on a server: one call, one eviction check, per batch", function () {
  this.timeout(120_000);
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster({
      name: "cache_end_writes",
      redis: true,
      // A new epoch serves from MARKER_TTL_MS after it began (default 15 s); 4 s keeps twice the statement timeout.
      env: {
        AGENTSTATE_CACHE_LEASE_MS: "500",
        AGENTSTATE_STATEMENT_TIMEOUT_MS: "2000",
        AGENTSTATE_CACHE_MARKER_TTL_MS: "4000",
      },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  const cacheHits = async () => (await cacheReads(cluster.servers[0]!)).hit;
  const cacheWrites = async (outcome: string) =>
    Number(
      new RegExp(`^agentstate_cache_writes_total\\{outcome="${outcome}"\\} (\\d+)$`, "m").exec(
        await serverMetrics(cluster.servers[0]!),
      )?.[1] ?? "0",
    );

  it("a burst of writes to one namespace: one end-write call per batch, every write installed", async () => {
    const c = cluster.clients[0]!;
    const env = await getTestEnv();
    const info = createRedisClient(env.redis.url, 5000, log);
    await info.connect();
    try {
      await c.compareAndSet({ namespace: "burst", key: "warm", expected: { absent: true }, value: Buffer.from("w") });
      // The cache serves (its epoch owned and mature): the burst's writes are marked and end in the cache.
      await eventually(
        "a cache hit",
        async () => {
          const h = await cacheHits();
          await c.get({ namespace: "burst", key: "warm" });
          return (await cacheHits()) > h;
        },
        { timeoutMs: 30_000 },
      );
      const n = 80;
      // Script calls on the cache's Redis: a begin-write per marked write, then the end-write calls.
      const scriptCalls = async () => {
        const stats = await info.info("commandstats");
        let calls = 0;
        for (const m of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) calls += Number(m[1]);
        return calls;
      };
      const batches = async () => (await histogramStats(cluster.servers[0]!, "agentstate_kv_write_batch_size")).count;
      const [calls0, batches0, marked0, failed0] = [
        await scriptCalls(),
        await batches(),
        await cacheWrites("marked"),
        await cacheWrites("install_error"),
      ];
      const replies = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          c.compareAndSet({
            namespace: "burst",
            key: `k${i}`,
            expected: { absent: true },
            value: Buffer.from(`v${i}`),
          }),
        ),
      );
      const sent = (await batches()) - batches0;
      const marked = (await cacheWrites("marked")) - marked0;
      const endCalls = (await scriptCalls()) - calls0 - marked;
      assert.ok(replies.every((r) => r.applied));
      assert.ok(sent < n, `writes shared batches: ${sent} batches for ${n} writes`);
      assert.equal(marked, n, "every write marked its key");
      assert.ok(endCalls <= sent, `${endCalls} end-write calls (each one eviction check) for ${sent} batches`);
      assert.equal((await cacheWrites("install_error")) - failed0, 0, "no end-write refused or failed");
      // Every write installed its value: a round of Gets, each a hit with its value (again if a lease lapsed meanwhile).
      await eventually(
        "every Get of the burst's keys a hit",
        async () => {
          const hits0 = await cacheHits();
          const got = await Promise.all(
            Array.from({ length: n }, (_, i) => c.get({ namespace: "burst", key: `k${i}` })),
          );
          for (const [i, h] of got.entries()) assert.equal(h.item?.value.toString(), `v${i}`);
          return (await cacheHits()) - hits0 === n;
        },
        { timeoutMs: 30_000 },
      );
    } finally {
      info.disconnect();
    }
  });
});
