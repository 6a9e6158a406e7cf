/**
 * Chooses the key-value store for the configuration: the truth (Postgres)
 * alone, or the truth behind the Redis cache when REDIS_URL is set. The cache
 * reaches the truth only through the ports it is given (DurableKvStore,
 * CacheEpochStore). Either way the replica registers its cache configuration
 * in the truth (CacheEpoch, NoCacheRegistration), so a mix of configurations
 * on one database is safe and seen (CacheMixWatch).
 */
import { randomBytes } from "node:crypto";
import type { Cluster } from "ioredis";
import type Redis from "ioredis";
import { type Config, ConfigError, type RedisClusterSeeds } from "../config/config";
import { connectFailureReason, DependencyUnreachableError, isAuthFailure, urlTarget } from "../errors/startup";
import type { CacheEpochStore, DurableKvStore } from "../domain/ports";
import type { KvStore } from "../domain/types";
import type { Logger } from "../log/Logger";
import { CachedKvStore, type CacheReadOutcome, type CacheWriteOutcome } from "../store/redis/CachedKvStore";
import { CacheEpoch } from "../store/redis/CacheEpoch";
import { ClusterKeyspace, evictionPolicies, unsafeEvictionPolicy } from "../store/redis/CacheKeyspace";
import { type CacheCommands, defineCacheScripts } from "../store/redis/cacheScripts";
import { NearCache } from "../store/redis/NearCache";
import { type NearCacheLike, NearCacheGroup } from "../store/redis/NearCacheGroup";
import { slotTag } from "../store/redis/clusterSlots";
import { createRedisClient, createRedisCluster } from "../store/redis/createRedisClient";
import { CacheMixWatch, describeCache } from "./CacheMixWatch";
import { NO_CACHE_DESCRIPTION, NO_CACHE_IDENTITY, NoCacheRegistration } from "./NoCacheRegistration";

export interface BuiltKvStore {
  store: KvStore;
  cache: CachedKvStore | undefined;
  /** The near cache, when on (metrics). */
  near?: NearCacheLike;
  /** This replica's view of the cache configurations on its database (metrics, health detail). */
  mix: CacheMixWatch;
  /**
   * Before an append is acknowledged: no cache may report a revision of its
   * namespace below it. `waitMs`: the truth's wait for the leases on an epoch
   * a recent move replaced (the append's cacheWaitMs).
   */
  noteRevision(namespace: string, revision: number, waitMs?: number, keyBaseBefore?: string): Promise<void>;
  /**
   * The namespace's cache key base now, taken before an append is sent and
   * handed back to noteRevision (undefined without a cache): an epoch move
   * between the two fences the append (CacheEpoch.noteRevision).
   */
  keyBase(namespace: string): string | undefined;
  close(): Promise<void>;
}

export async function buildKvStore(
  config: Config,
  truth: { kv: DurableKvStore; cacheEpochs: CacheEpochStore },
  log: Logger,
  observe: {
    read?: (outcome: CacheReadOutcome) => void;
    write?: (outcome: CacheWriteOutcome) => void;
    nearHit?: () => void;
    /** Told when the cache turns off for an unsafe eviction policy (true) and back on (false). */
    evictionUnsafe?: (unsafe: boolean) => void;
  } = {},
): Promise<BuiltKvStore> {
  const pg = truth.kv;
  const clog = log.child({ component: "cache" });
  if (!config.redisUrl) return withoutCache(config, truth, clog);
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
    const policy = unsafeEvictionPolicy(await evictionPolicies(redis));
    if (policy !== undefined) {
      clog.error("cache disabled: redis maxmemory-policy may evict write markers; use noeviction or volatile-*", {
        policy,
      });
      redis.disconnect();
      return withoutCache(config, truth, clog);
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
  const description = describeCache(config.redisUrl, config.redisPrefix, seeds);
  const mix = new CacheMixWatch(description, clog);
  const epoch = new CacheEpoch(
    truth.cacheEpochs,
    scripts,
    {
      leaseMs: config.cacheLeaseMs,
      markerTtlMs: config.cacheMarkerTtlMs,
      prefix: config.redisPrefix,
      description,
      onLease: (lease, identity) => mix.observe(lease, identity),
      evictionCheckMs: config.cacheEvictionCheckMs,
      onEvictionPolicy: observe.evictionUnsafe,
      ...(seeds ? { keyspace: new ClusterKeyspace(redis as Cluster, config.redisPrefix) } : {}),
    },
    clog,
  );
  if (config.cacheMix === "fatal") {
    const identity = redis.status === "ready" ? await redis.get(epoch.identityKey()).catch(() => null) : null;
    await refuseMix(truth.cacheEpochs, identity ?? undefined, description, config, () => redis.disconnect());
  }
  // The first lease before serving: the epoch is taken (or the mix seen) before any call.
  await epoch.refresh();
  epoch.start();
  let near: { cache: NearCacheLike; reader: Pick<CacheCommands, "cacheReadBuffer">; close(): void } | undefined;
  if (config.nearCacheBytes > 0 && seeds) {
    const cluster = scripts as Cluster & CacheCommands;
    const group = new NearCacheGroup(cluster, (node) => {
      const probeKey = `${config.redisPrefix}:near-probe:{${nodeTag(cluster, node)}}:${PROBE_ID}`;
      const lane = startNearCache(
        config,
        nodeUrl(seeds, node),
        { maxBytes: laneBytes(config, cluster), probeKey },
        clog,
      );
      void lane.connect();
      return lane;
    });
    near = { cache: group, reader: group.reader, close: () => group.close() };
  } else if (config.nearCacheBytes > 0) {
    const lane = startNearCache(
      config,
      config.redisUrl,
      {
        maxBytes: config.nearCacheBytes,
        plain: redis as Redis,
        probeKey: `${config.redisPrefix}:near-probe:${PROBE_ID}`,
      },
      clog,
    );
    await lane.connect();
    near = lane;
  }
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
    mix,
    noteRevision: (namespace, revision, waitMs, keyBaseBefore) =>
      cache.noteRevision(namespace, revision, waitMs, keyBaseBefore),
    keyBase: (namespace) => cache.keyBase(namespace),
    close: async () => {
      await epoch.stop();
      await cache.settle();
      const stats = { ...cache.stats.reads, writes: cache.stats.writes, ...(near ? { near: near.cache.stats } : {}) };
      clog.info("cache stats", stats);
      near?.close();
      redis.disconnect();
    },
  };
}

/** The truth alone, registered as a replica without a cache. */
async function withoutCache(
  config: Config,
  truth: { kv: DurableKvStore; cacheEpochs: CacheEpochStore },
  log: Logger,
): Promise<BuiltKvStore> {
  const mix = new CacheMixWatch(NO_CACHE_DESCRIPTION, log);
  if (config.cacheMix === "fatal") await refuseMix(truth.cacheEpochs, NO_CACHE_IDENTITY, NO_CACHE_DESCRIPTION, config);
  const registration = new NoCacheRegistration(
    truth.cacheEpochs,
    {
      leaseMs: config.cacheLeaseMs,
      markerTtlMs: config.cacheMarkerTtlMs,
      statementTimeoutMs: config.statementTimeoutMs,
    },
    mix,
    log,
  );
  await registration.refresh();
  registration.start();
  return {
    store: registration.kv(truth.kv),
    cache: undefined,
    mix,
    // No revision noted here: the append moves its namespace's epoch if a cache owns the store epoch, and
    // agentstate_cache_move's wait covers the leases of earlier moves too.
    noteRevision: (namespace) => registration.fenceChange(namespace),
    keyBase: () => undefined,
    close: async () => registration.stop(),
  };
}

/**
 * AGENTSTATE_CACHE_MIX=fatal: refuses to start when another cache
 * configuration than this one (`identity`) is live on the database. Reads
 * only: a refused replica leaves no registration behind.
 */
async function refuseMix(
  epochs: CacheEpochStore,
  identity: string | undefined,
  description: string,
  config: Config,
  cleanUp?: () => void,
): Promise<void> {
  const seen = await epochs.lease({
    identity: undefined,
    previous: undefined,
    description,
    leaseMs: config.cacheLeaseMs,
    mayOwn: false,
  });
  // Others as "identity description": this identity, or this description (its Redis unreachable now), is no mix.
  const others = (seen?.others ?? []).filter(
    (o) => !(identity !== undefined && o.startsWith(`${identity} `)) && !o.endsWith(` ${description}`),
  );
  if (others.length === 0) return;
  cleanUp?.();
  throw new ConfigError(
    `AGENTSTATE_CACHE_MIX=fatal: other replicas of this database run with another cache configuration ` +
      `(this replica: ${description}; live: ${others.join("; ")}); run every replica with one REDIS_URL and ` +
      "AGENTSTATE_REDIS_PREFIX, or none (README: mixed cache configurations and rolling changes)",
  );
}

/** Names this process's near-cache probe keys: each replica changes only its own. */
const PROBE_ID = randomBytes(6).toString("hex");

/** A hash tag of a slot `node` serves, so a key with it lives on that node. */
function nodeTag(cluster: Cluster, node: string): string {
  const slot = cluster.slots.findIndex((nodes) => nodes?.[0] === node);
  return slotTag(Math.max(0, slot));
}

/** One cluster node's URL, with the seeds' scheme and credentials. */
function nodeUrl(seeds: RedisClusterSeeds, node: string): string {
  const auth =
    seeds.password === undefined
      ? ""
      : `${encodeURIComponent(seeds.username ?? "")}:${encodeURIComponent(seeds.password)}@`;
  return `${seeds.tls ? "rediss" : "redis"}://${auth}${node}`;
}

/** A cluster lane's share of the near cache's bytes: one per master. */
function laneBytes(config: Config, cluster: Cluster): number {
  return Math.max(1, Math.floor(config.nearCacheBytes / Math.max(1, cluster.nodes("master").length)));
}

/**
 * The near cache's connections to one Redis server: cache reads run on
 * `reader` (tracked), invalidations arrive on `sub`, known revisions are read
 * on `plain` (the cache's connection on a single Redis; on a cluster node a
 * connection of the lane's own). Nothing waits for Redis at start: tracking
 * is set up whenever both are connected.
 */
function startNearCache(
  config: Config,
  url: string,
  opts: { maxBytes: number; plain?: Redis; probeKey: string },
  log: Logger,
): { cache: NearCache; reader: Redis & CacheCommands; connect(): Promise<void>; close(): void } {
  const ownPlain =
    opts.plain === undefined
      ? createRedisClient(url, config.redisCommandTimeoutMs, log, { tls: config.redisTls })
      : undefined;
  const plain = opts.plain ?? ownPlain!;
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
    {
      maxBytes: opts.maxBytes,
      getEachKnown: ownPlain !== undefined,
      ...(config.nearCacheProbeMs > 0
        ? {
            probe: {
              key: opts.probeKey,
              everyMs: config.nearCacheProbeMs,
              timeoutMs: Math.max(200, config.redisCommandTimeoutMs),
            },
          }
        : {}),
    },
    log.child({ component: "near-cache" }),
  );
  return {
    cache,
    reader: defineCacheScripts(reader),
    connect: () =>
      Promise.all([reader.connect(), sub.connect(), ownPlain?.connect()]).then(
        () => undefined,
        (err: unknown) => {
          log.warn("near cache: redis unreachable at start; it starts when redis is back", {
            error: (err as Error).message,
          });
        },
      ),
    close: () => {
      cache.close();
      reader.disconnect();
      sub.disconnect();
      ownPlain?.disconnect();
    },
  };
}
