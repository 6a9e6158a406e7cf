/**
 * Guarantee 3: reads served from the Redis cache are never stale. Readers and
 * writers race on a few keys through two server processes while Redis is
 * restarted (empty) and, later, flushed; no Get may return a version older
 * than one already acknowledged to any client before that Get started.
 * Also: with Redis stopped, every RPC keeps working through Postgres.
 */
import { strict as assert } from "node:assert";
import { setTimeout as sleep } from "node:timers/promises";
import { credentials, type ServiceError } from "@grpc/grpc-js";
import { Redis } from "ioredis";
import {
  CompareAndSetRequest,
  DeleteRequest,
  GetRequest,
  KeyValueServiceClient,
  ListRequest,
  type CompareAndSetResponse,
  type GetResponse,
  type ListResponse,
} from "../../clients/typescript/src/gen/agentstate/v1/kv";
import { cacheRace, loggedCacheStats } from "../support/cacheRace";
import { RedisProcess } from "../support/RedisProcess";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";

type Unary<Req, Res> = (req: Req, cb: (err: ServiceError | null, res: Res) => void) => unknown;
function call<Req, Res>(client: KeyValueServiceClient, fn: Unary<Req, Res>, req: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn.call(client, req, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))),
  );
}

const NS = "cache-test";
const KEYS = ["a", "b", "c"];

describe("cache: reads are never stale (guarantee 3)", function () {
  this.timeout(180_000);
  let redis: RedisProcess;
  let servers: ServerProcess[] = [];

  before(async () => {
    const env = await getTestEnv();
    redis = await RedisProcess.start();
    const db = await env.freshDatabase("cache");
    const common = {
      DATABASE_URL: db,
      REDIS_URL: redis.url,
      AGENTSTATE_REDIS_PREFIX: env.redisPrefix(),
      // Short timings so epochs mature quickly in a test; the protocol is the same.
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
      AGENTSTATE_CACHE_LEASE_MS: "500",
      AGENTSTATE_REDIS_TIMEOUT_MS: "200",
      LOG_LEVEL: "info",
    };
    servers = [await ServerProcess.start(common), await ServerProcess.start(common)];
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    await redis?.destroy();
  });

  it("no Get returns a version older than one acknowledged before it started, across Redis restart and flush", async () => {
    const { violations, reads, writes } = await cacheRace(servers, {
      namespace: NS,
      keys: KEYS,
      during: async () => {
        await sleep(4000); // epochs mature, cache warm
        await redis.restart(); // empty memory, new run id
        await sleep(4000);
        await redis.flushAll();
        await sleep(4000);
        await redis.stop("SIGKILL");
        await sleep(1500);
        await redis.restart();
        await sleep(4000);
      },
    });

    assert.deepEqual(violations.slice(0, 10), []);
    assert.ok(writes > 50, `expected a real write load, got ${writes} writes`);
    assert.ok(reads > 200, `expected a real read load, got ${reads} reads`);
    // The cache really served reads: hits are reported at shutdown.
    await Promise.all(servers.map((s) => s.stop()));
    assert.ok(loggedCacheStats(servers, "hit") > 0, "no read was served from the cache");
    assert.ok(loggedCacheStats(servers, "near.hits") > 0, "no read was served from a near cache");
    servers = [];
  });
});

describe("cache: revisions per namespace (a known revision per namespace and epoch)", function () {
  this.timeout(60_000);
  let redis: RedisProcess;
  let server: ServerProcess | undefined;
  let client: KeyValueServiceClient;
  let plain: Redis;
  let prefix: string;

  before(async () => {
    const env = await getTestEnv();
    redis = await RedisProcess.start();
    prefix = env.redisPrefix();
    server = await ServerProcess.start({
      DATABASE_URL: await env.freshDatabase("cachens"),
      REDIS_URL: redis.url,
      AGENTSTATE_REDIS_PREFIX: prefix,
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
      AGENTSTATE_CACHE_LEASE_MS: "500",
      AGENTSTATE_NEAR_CACHE_BYTES: "0",
    });
    client = new KeyValueServiceClient(server.address, credentials.createInsecure());
    plain = new Redis(redis.url);
  });

  after(async () => {
    client?.close();
    plain?.disconnect();
    await server?.stop().catch(() => undefined);
    await redis?.destroy();
  });

  const cas = (namespace: string, key: string) =>
    call<unknown, CompareAndSetResponse>(
      client,
      client.compareAndSet as never,
      CompareAndSetRequest.fromPartial({ namespace, key, expected: { any: true }, value: Buffer.from("v") }),
    );
  const get = (namespace: string, key: string) =>
    call<unknown, GetResponse>(client, client.get as never, GetRequest.fromPartial({ namespace, key }));
  const knownKeys = (namespace: string) => plain.keys(`${prefix}:c:*:rev:${namespace}`);

  it("hits report their own namespace's revision; an absent known revision is seeded by a fill, never invented", async () => {
    // Wait until the cache serves (an epoch matures), then put x in ns-a and y in ns-b.
    const a1 = Number((await cas("ns-a", "x")).header!.revision);
    const b1 = Number((await cas("ns-b", "y")).header!.revision);
    assert.deepEqual([a1, b1], [1, 1], "each namespace starts its own sequence");
    for (let i = 0; i < 10; i++) await cas("ns-b", `more-${i}`);
    for (let i = 0; i < 40; i++) {
      const r = await get("ns-a", "x");
      assert.equal(Number(r.header!.revision), 1, "a read in ns-a reports ns-a's revision, not ns-b's");
      if ((await knownKeys("ns-a")).length > 0 && i > 20) break;
      await sleep(100);
    }
    assert.equal((await knownKeys("ns-a")).length, 1, "ns-a's known revision was seeded");
    // A write to another key of ns-a raises what a hit on x reports.
    const a2 = Number((await cas("ns-a", "z")).header!.revision);
    assert.equal(a2, 2);
    for (let i = 0; i < 5; i++) assert.ok(Number((await get("ns-a", "x")).header!.revision) >= a2);
    // Drop the known revision: reads must not report less than ns-a's revision
    // (they miss, read Postgres, and the fill seeds it again).
    await plain.del(...(await knownKeys("ns-a")));
    for (let i = 0; i < 40; i++) {
      assert.equal(Number((await get("ns-a", "x")).header!.revision), a2);
      if ((await knownKeys("ns-a")).length > 0) break;
      await sleep(100);
    }
    assert.equal(await plain.get((await knownKeys("ns-a"))[0]!), String(a2), "seeded from Postgres by a fill");
    assert.equal(Number((await get("ns-b", "y")).header!.revision), 11);
  });
});

describe("cache: Redis down, the service still answers", function () {
  this.timeout(120_000);
  let redis: RedisProcess;
  let server: ServerProcess;
  let client: KeyValueServiceClient;

  before(async () => {
    const env = await getTestEnv();
    redis = await RedisProcess.start();
    server = await ServerProcess.start({
      DATABASE_URL: await env.freshDatabase("cachedown"),
      REDIS_URL: redis.url,
      AGENTSTATE_REDIS_PREFIX: env.redisPrefix(),
      AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
      AGENTSTATE_CACHE_LEASE_MS: "500",
    });
    client = new KeyValueServiceClient(server.address, credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await server?.stop();
    await redis?.destroy();
  });

  it("serves Get, CompareAndSet, Delete and List with Redis stopped, and uses the cache again after", async () => {
    const put = (key: string, v: string) =>
      call<unknown, CompareAndSetResponse>(
        client,
        client.compareAndSet as never,
        CompareAndSetRequest.fromPartial({ namespace: NS, key, expected: { any: true }, value: Buffer.from(v) }),
      );
    await put("k1", "before");
    await redis.stop("SIGKILL");
    const w = await put("k1", "during");
    assert.equal(w.applied, true);
    const g = await call<unknown, GetResponse>(
      client,
      client.get as never,
      GetRequest.fromPartial({ namespace: NS, key: "k1" }),
    );
    assert.equal(Buffer.from(g.item!.value).toString(), "during");
    const l = await call<unknown, ListResponse>(
      client,
      client.list as never,
      ListRequest.fromPartial({ namespace: NS, prefix: "k" }),
    );
    assert.deepEqual(
      l.items.map((i) => i.key),
      ["k1"],
    );
    const d = await call<unknown, CompareAndSetResponse>(
      client,
      client.delete as never,
      DeleteRequest.fromPartial({ namespace: NS, key: "k1", expected: { version: w.item!.version } }),
    );
    assert.equal(d.applied, true);
    await redis.restart();
    await put("k1", "after");
    const g2 = await call<unknown, GetResponse>(
      client,
      client.get as never,
      GetRequest.fromPartial({ namespace: NS, key: "k1" }),
    );
    assert.equal(Buffer.from(g2.item!.value).toString(), "after");
    assert.equal(g2.item!.version, 1);
  });
});
