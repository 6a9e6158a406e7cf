/**
 * Chooses the key-value store for the configuration: Postgres alone, or
 * Postgres behind the Redis cache when REDIS_URL is set.
 */
import type { Pool } from "pg";
import type { Config } from "../config/config";
import type { KvStore } from "../domain/types";
import type { Logger } from "../log/Logger";
import type { PostgresKvStore } from "./postgres/PostgresKvStore";
import { CachedKvStore } from "./redis/CachedKvStore";
import { CacheEpoch } from "./redis/CacheEpoch";
import { defineCacheScripts } from "./redis/cacheScripts";
import { createRedisClient } from "./redis/createRedisClient";

export interface BuiltKvStore {
  store: KvStore;
  cache: CachedKvStore | undefined;
  close(): Promise<void>;
}

/** Eviction policies that could evict write-in-flight markers (kept without a TTL). */
const UNSAFE_POLICIES = /^allkeys-/;

export async function buildKvStore(
  config: Config,
  pool: Pool,
  pg: PostgresKvStore,
  log: Logger,
  observeRead?: (outcome: string) => void,
): Promise<BuiltKvStore> {
  if (!config.redisUrl) return { store: pg, cache: undefined, close: async () => undefined };
  const clog = log.child({ component: "cache" });
  const redis = createRedisClient(config.redisUrl, config.redisCommandTimeoutMs, clog);
  redis.on("ready", () => clog.info("redis connected"));
  redis.on("close", () => clog.debug("redis connection closed"));
  try {
    await redis.connect();
    const policy = (await redis.config("GET", "maxmemory-policy").catch(() => [])) as string[];
    if (policy[1] && UNSAFE_POLICIES.test(policy[1])) {
      clog.error("cache disabled: redis maxmemory-policy may evict write markers; use noeviction or volatile-*", {
        policy: policy[1],
      });
      redis.disconnect();
      return { store: pg, cache: undefined, close: async () => undefined };
    }
  } catch (err) {
    clog.warn("redis unreachable at start; serving from postgres until it is back", { error: (err as Error).message });
  }
  const scripts = defineCacheScripts(redis);
  const epoch = new CacheEpoch(
    pool,
    scripts,
    { leaseMs: config.cacheLeaseMs, markerTtlMs: config.cacheMarkerTtlMs, prefix: config.redisPrefix },
    clog,
  );
  epoch.start();
  const cache = new CachedKvStore(
    pg,
    scripts,
    epoch,
    {
      observeRead,
      cacheTtlMs: config.cacheTtlSeconds * 1000,
      markerTtlMs: config.cacheMarkerTtlMs,
      statementTimeoutMs: config.statementTimeoutMs,
    },
    clog,
  );
  return {
    store: cache,
    cache,
    close: async () => {
      epoch.stop();
      await cache.settle();
      clog.info("cache stats", { ...cache.stats });
      redis.disconnect();
    },
  };
}
