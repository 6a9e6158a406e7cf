/**
 * Chooses the key-value store for the configuration: the truth (Postgres)
 * alone, or the truth behind the Redis cache when REDIS_URL is set. The cache
 * reaches the truth only through the ports it is given (DurableKvStore,
 * CacheEpochStore).
 */
import type { Cluster } from "ioredis";
import type Redis from "ioredis";
import type { Config } from "../config/config";
import { connectFailureReason, DependencyUnreachableError, isAuthFailure, urlTarget } from "../errors/startup";
import type { CacheEpochStore, DurableKvStore } from "../domain/ports";
import type { KvStore } from "../domain/types";
import type { Logger } from "../log/Logger";
import { CachedKvStore, type CacheReadOutcome, type CacheWriteOutcome } from "../store/redis/CachedKvStore";
import { CacheEpoch } from "../store/redis/CacheEpoch";
import { ClusterKeyspace } from "../store/redis/CacheKeyspace";
import { type CacheCommands, defineCacheScripts } from "../store/redis/cacheScripts";
import { NearCache } from "../store/redis/NearCache";
import { createRedisClient, createRedisCluster } from "../store/redis/createRedisClient";

export interface BuiltKvStore {
  store: KvStore;
  cache: CachedKvStore | undefined;
  /** The near cache, when on (metrics). */
  near?: NearCache;
  close(): Promise<void>;
}

/** Eviction policies that could evict write-in-flight markers (kept without a TTL). */
const UNSAFE_POLICIES = /^allkeys-/;

export async function buildKvStore(
  config: Config,
  truth: { kv: DurableKvStore; cacheEpochs: CacheEpochStore },
  log: Logger,
  observe: {
    read?: (outcome: CacheReadOutcome) => void;
    write?: (outcome: CacheWriteOutcome) => void;
    nearHit?: () => void;
  } = {},
): Promise<BuiltKvStore> {
  const pg = truth.kv;
  if (!config.redisUrl) return { store: pg, cache: undefined, close: async () => undefined };
  const clog = log.child({ component: "cache" });
  const seeds = config.redisCluster;
  const redis: Redis | Cluster = seeds
    ? createRedisCluster(seeds, config.redisCommandTimeoutMs, clog, { tls: config.redisTls })
    : createRedisClient(config.redisUrl, config.redisCommandTimeoutMs, clog, { tls: config.redisTls });
  redis.on("ready", () => clog.info("redis connected"));
  redis.on("close", () => clog.debug("redis connection closed"));
  // connect() rejects with "Connection is closed." when the server refused the AUTH: the cause is the last error.
  let lastError: unknown;
  const noteError = (err: unknown) => (lastError = err);
  redis.on("error", noteError);
  try {
    await redis.connect();
    const policy = (await evictionPolicies(redis)).find((p) => UNSAFE_POLICIES.test(p));
    if (policy !== undefined) {
      clog.error("cache disabled: redis maxmemory-policy may evict write markers; use noeviction or volatile-*", {
        policy,
      });
      redis.disconnect();
      return { store: pg, cache: undefined, close: async () => undefined };
    }
  } catch (err) {
    const cause = lastError ?? err;
    const target = seeds ? seeds.nodes.map((n) => `${n.host}:${n.port}`).join(",") : urlTarget(config.redisUrl, 6379);
    const reason = connectFailureReason(cause);
    if (config.cacheRequired) {
      redis.disconnect();
      throw new DependencyUnreachableError("redis (cache)", target, reason);
    }
    const fields = { dependency: "redis (cache)", target, reason };
    if (isAuthFailure(cause)) {
      // It will not fix itself: say so loudly (retries go on, in case the password is changed on the server).
      clog.error("redis refused the credentials at start; serving from postgres without the cache", fields);
    } else {
      clog.warn("redis unreachable at start; serving from postgres until it is back", fields);
    }
  } finally {
    redis.off("error", noteError);
  }
  const scripts = defineCacheScripts(redis);
  const epoch = new CacheEpoch(
    truth.cacheEpochs,
    scripts,
    {
      leaseMs: config.cacheLeaseMs,
      markerTtlMs: config.cacheMarkerTtlMs,
      prefix: config.redisPrefix,
      ...(seeds ? { keyspace: new ClusterKeyspace(redis as Cluster, config.redisPrefix) } : {}),
    },
    clog,
  );
  epoch.start();
  if (seeds && config.nearCacheBytes > 0) clog.info("near cache off: not available on a Redis Cluster yet");
  const near = config.nearCacheBytes > 0 && !seeds ? await startNearCache(config, redis as Redis, clog) : undefined;
  const cache = new CachedKvStore(
    pg,
    scripts,
    epoch,
    {
      observeRead: observe.read,
      observeWrite: observe.write,
      observeNearHit: observe.nearHit,
      near: near && { cache: near.cache, reader: near.reader },
      cacheTtlMs: config.cacheTtlSeconds * 1000,
      markerTtlMs: config.cacheMarkerTtlMs,
      statementTimeoutMs: config.statementTimeoutMs,
    },
    clog,
  );
  return {
    store: cache,
    cache,
    near: near?.cache,
    close: async () => {
      epoch.stop();
      await cache.settle();
      const stats = { ...cache.stats.reads, writes: cache.stats.writes, ...(near ? { near: near.cache.stats } : {}) };
      clog.info("cache stats", stats);
      near?.close();
      redis.disconnect();
    },
  };
}

/**
 * The eviction policy of every server the cache writes to (one Redis, or
 * each node of a cluster); a server that cannot say is left out.
 */
async function evictionPolicies(redis: Redis | Cluster): Promise<string[]> {
  const servers = redis.isCluster ? (redis as Cluster).nodes("all") : [redis as Redis];
  const replies = await Promise.all(
    servers.map((s) => s.config("GET", "maxmemory-policy").catch(() => []) as Promise<string[]>),
  );
  return replies.flatMap((r) => (r[1] === undefined ? [] : [r[1]]));
}

/**
 * The near cache's two connections: cache reads run on `reader` (tracked),
 * invalidations arrive on `sub`. Neither waits for Redis at start: tracking is
 * set up whenever both are connected.
 */
async function startNearCache(
  config: Config,
  plain: Redis,
  log: Logger,
): Promise<{ cache: NearCache; reader: Redis & CacheCommands; close(): void }> {
  const url = config.redisUrl!;
  const reader = createRedisClient(url, config.redisCommandTimeoutMs, log, {
    tls: config.redisTls,
    connectionName: `${config.redisPrefix}:near-reader`,
  });
  const sub = createRedisClient(url, config.redisCommandTimeoutMs, log, {
    tls: config.redisTls,
    connectionName: `${config.redisPrefix}:near-invalidations`,
    corkPerTurn: false,
    autoResubscribe: false,
  });
  const cache = new NearCache(
    reader,
    sub,
    plain,
    { maxBytes: config.nearCacheBytes },
    log.child({ component: "near-cache" }),
  );
  await Promise.all([reader.connect(), sub.connect()]).catch((err: unknown) => {
    log.warn("near cache: redis unreachable at start; it starts when redis is back", {
      error: (err as Error).message,
    });
  });
  return {
    cache,
    reader: defineCacheScripts(reader),
    close: () => {
      cache.close();
      reader.disconnect();
      sub.disconnect();
    },
  };
}
