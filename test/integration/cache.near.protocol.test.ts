/**
 * The near cache's rules, one at a time, against a real Redis: which
 * invalidations drop a copy, that a read racing an invalidation is not
 * copied, and that a lost connection drops everything until tracking is set
 * up again. Keys follow the cache's layout (entry `…:e`, markers `…:w`, the
 * epoch's `…:alive` and `…:rev:<namespace>`). The replica-level behaviour is in
 * cache.near.test.ts.
 */
import * as assert from "node:assert/strict";
import type { Redis } from "ioredis";
import { Logger } from "../../src/log/Logger";
import { NearCache, type NearCacheOptions, type NearEntry } from "../../src/store/redis/NearCache";
import { createRedisClient } from "../../src/store/redis/createRedisClient";
import { eventually } from "../support/eventually";
import { getTestEnv } from "../support/TestEnv";

const log = new Logger("error", {}, () => undefined);
const ALIVE = "1:run";

describe("near cache protocol (real Redis)", function () {
  this.timeout(60_000);
  let reader: Redis;
  let sub: Redis;
  let other: Redis;
  let near: NearCache;
  let base: string;
  let n = 0;

  async function start(maxBytes: number, probe?: NearCacheOptions["probe"]): Promise<void> {
    const env = await getTestEnv();
    base = `${env.redisPrefix()}:c:1`;
    reader = createRedisClient(env.redis.url, 2000, log);
    sub = createRedisClient(env.redis.url, 2000, log, { corkPerTurn: false, autoResubscribe: false });
    other = createRedisClient(env.redis.url, 2000, log);
    near = new NearCache(reader, sub, other, { maxBytes, ...(probe ? { probe } : {}) }, log);
    await Promise.all([reader.connect(), sub.connect(), other.connect()]);
    await trackingOn();
  }

  function stop(): void {
    near.close();
    for (const c of [reader, sub, other]) c.disconnect();
  }

  const trackingOn = () => eventually("tracking on", async () => near.active(), { timeoutMs: 5000, intervalMs: 5 });
  const trackingOff = () =>
    eventually("the lost connection to be seen", async () => !near.active(), { timeoutMs: 5000, intervalMs: 5 });

  beforeEach(() => start(1 << 20));
  afterEach(stop);

  const keysOf = () => {
    const k = `${base}:{k${++n}}`;
    return { entry: `${k}:e`, markers: `${k}:w`, alive: `${base}:alive`, known: `${base}:rev:ns` };
  };

  const entry = (rev: number): NearEntry => ({ alive: ALIVE, rev, item: undefined });

  /** A cache read as the store makes it: every key it depends on is read on the tracked connection. */
  async function trackedRead(k: ReturnType<typeof keysOf>): Promise<void> {
    await reader.get(k.alive);
    await reader.exists(k.markers);
    await reader.hget(k.entry, "r");
    await reader.get(k.known);
  }

  async function copy(k: ReturnType<typeof keysOf>, rev = 1): Promise<void> {
    const t = near.beginRead(k.entry)!;
    assert.ok(t, "no ticket while tracking is on");
    await trackedRead(k);
    near.endRead(t, entry(rev));
    assert.equal(near.has(k.entry, ALIVE), true, "the copy was not kept");
  }

  /** Resolves once every invalidation sent so far has been applied (the namespace's known revision seeded first). */
  const synced = async (k: ReturnType<typeof keysOf>) => {
    await other.set(k.known, "1", "NX");
    assert.notEqual(await near.sync(k.known), undefined, "sync failed");
  };

  it("a sync answers each namespace's known revision, and nothing for a namespace whose known revision is absent", async () => {
    const k = keysOf();
    const otherNs = `${base}:rev:other`;
    await other.set(k.known, "4");
    const [mine, theirs, none] = await Promise.all([
      near.sync(k.known),
      near.sync(otherNs),
      near.sync(`${base}:rev:never`),
    ]);
    assert.deepEqual([mine, theirs, none], [4, undefined, undefined]);
    await other.set(otherNs, "9");
    assert.deepEqual(await Promise.all([near.sync(k.known), near.sync(otherNs)]), [4, 9]);
  });

  it("keeps a copy of a clean read and serves it after a sync, with the known revision read then", async () => {
    const k = keysOf();
    await copy(k, 3);
    await other.set(k.known, "7");
    assert.equal(await near.sync(k.known), 7);
    assert.equal(near.get(k.entry, ALIVE)?.rev, 3);
    await other.set(k.known, "8"); // a write to another key: the copy stays
    assert.equal(await near.sync(k.known), 8);
    assert.equal(near.get(k.entry, ALIVE)?.rev, 3);
    assert.equal(near.has(k.entry, "2:run"), false, "a copy of another epoch was offered");
  });

  it("does not copy a read that an invalidation of its key overtook", async () => {
    const k = keysOf();
    const t = near.beginRead(k.entry)!;
    await trackedRead(k);
    await other.hset(k.entry, "r", "2"); // changed after the read
    await synced(k); // the invalidation has arrived before the read is handed in
    near.endRead(t, entry(1));
    assert.equal(near.has(k.entry, ALIVE), false, "a read older than a change was copied");
  });

  for (const [what, change] of [
    ["the entry changes", (k: ReturnType<typeof keysOf>) => other.hset(k.entry, "r", "9")],
    ["a write marks the key", (k: ReturnType<typeof keysOf>) => other.zadd(k.markers, Date.now() + 1000, "w")],
    ["the epoch's alive key changes", (k: ReturnType<typeof keysOf>) => other.set(k.alive, "other")],
    ["Redis is flushed", () => other.flushdb()],
  ] as const) {
    it(`drops the copy when ${what}`, async () => {
      const k = keysOf();
      await copy(k);
      await change(k);
      await synced(k);
      assert.equal(near.has(k.entry, ALIVE), false);
      assert.equal(near.get(k.entry, ALIVE), undefined);
    });
  }

  it("drops everything and refuses syncs when a connection is lost, until tracking is back", async () => {
    const k = keysOf();
    await copy(k);
    reader.disconnect(true); // closes, then reconnects
    await trackingOff();
    assert.equal(near.has(k.entry, ALIVE), false);
    assert.equal(await near.sync(k.known), undefined);
    assert.equal(near.beginRead(k.entry), undefined, "a read on an untracked connection got a ticket");
    await trackingOn();
    // Tracked again: a change is seen.
    await copy(k);
    await other.hset(k.entry, "r", "5");
    await synced(k);
    assert.equal(near.has(k.entry, ALIVE), false);
  });

  it("does not copy a read that was in flight across a lost connection", async () => {
    const k = keysOf();
    const t = near.beginRead(k.entry)!;
    await trackedRead(k);
    sub.disconnect(true);
    await trackingOff();
    await trackingOn();
    near.endRead(t, entry(1));
    assert.equal(near.has(k.entry, ALIVE), false);
  });

  it("keeps a copy's value in memory of its own, not a view into a larger read buffer", async () => {
    const k = keysOf();
    const t = near.beginRead(k.entry)!;
    await trackedRead(k);
    const socketRead = Buffer.alloc(65536, 7);
    const value = socketRead.subarray(100, 164);
    const item = {
      key: "x",
      value,
      contentType: "",
      version: 1,
      createRevision: 1,
      modRevision: 1,
      createTime: new Date(),
      updateTime: new Date(),
      expireTime: undefined,
    };
    near.endRead(t, { alive: ALIVE, rev: 1, item });
    const kept = near.get(k.entry, ALIVE)!.item!.value;
    assert.deepEqual(kept, value);
    assert.equal(kept.buffer.byteLength, 64, "the copy pins a larger buffer");
  });

  it("stays within its byte budget, dropping the oldest copies first", async () => {
    stop();
    await start(2000);
    const value = Buffer.alloc(500);
    const keys = Array.from({ length: 6 }, keysOf);
    for (const k of keys) {
      const t = near.beginRead(k.entry)!;
      await trackedRead(k);
      const item = {
        key: "x",
        value,
        contentType: "",
        version: 1,
        createRevision: 1,
        modRevision: 1,
        createTime: new Date(),
        updateTime: new Date(),
        expireTime: undefined,
      };
      near.endRead(t, { alive: ALIVE, rev: 1, item });
    }
    assert.ok(near.size().bytes <= 2000, `holds ${near.size().bytes} bytes`);
    assert.equal(near.has(keys[0]!.entry, ALIVE), false, "the oldest copy was kept");
    assert.equal(near.has(keys[5]!.entry, ALIVE), true, "the newest copy was dropped");
  });

  it("with a probe: a link that silently stops delivering invalidations drops every copy and serves none until proven again", async () => {
    stop();
    await start(1 << 20, { key: `${base}:near-probe`, everyMs: 100, timeoutMs: 300 });
    const k = keysOf();
    await copy(k);
    await synced(k);
    // Our end of the invalidation link stops reading: Redis still sends, nothing arrives.
    const silenced = sub.stream;
    silenced.pause();
    try {
      // A write changes the entry: its invalidation is stuck on the silent link.
      await other.hset(k.entry, "r", "2");
      assert.equal(await near.sync(k.known), undefined, "a sync answered over the silent link");
      await trackingOff();
      assert.equal(near.has(k.entry, ALIVE), false, "a copy survived the failed probe");
      assert.equal(near.get(k.entry, ALIVE), undefined);
    } finally {
      silenced.resume();
    }
    // The probe reconnected both connections; tracking comes back once proven.
    await trackingOn();
    assert.equal(near.has(k.entry, ALIVE), false, "the copy taken before the silence came back");
    const k2 = keysOf();
    await copy(k2);
    await other.hset(k2.entry, "r", "2");
    await eventually("the copy is invalidated again", async () => !near.has(k2.entry, ALIVE), { timeoutMs: 5000 });
  });
});
