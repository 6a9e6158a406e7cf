/**
 * The composition root: the one place that knows every adapter. It connects to
 * Postgres (or starts the embedded one), applies migrations, builds the
 * Postgres adapters, hands the Redis adapters (cache, Redlock) the ports they
 * need of the truth, and builds the gRPC server on top. Adapters never import
 * each other; they meet here.
 */
import { join } from "node:path";
import type { Config } from "../config/config";
import { LockService, type LockStore } from "../domain/locks";
import { EmbeddedPostgres } from "../embedded/EmbeddedPostgres";
import { AgentstateServer, SERVICE_NAMES, serverCredentials } from "../grpc/server";
import type { Logger } from "../log/Logger";
import { Metrics } from "../metrics/Metrics";
import { createPool } from "../store/postgres/createPool";
import { FencingTokenIssuer } from "../store/postgres/FencingTokenIssuer";
import { Janitor } from "../store/postgres/Janitor";
import { migrate } from "../store/postgres/migrate";
import { PgChangeNotifier } from "../store/postgres/PgChangeNotifier";
import { PostgresCacheEpochStore } from "../store/postgres/PostgresCacheEpochStore";
import { PostgresEventStore } from "../store/postgres/PostgresEventStore";
import { PostgresKvStore } from "../store/postgres/PostgresKvStore";
import { PostgresLockStore } from "../store/postgres/PostgresLockStore";
import { PostgresStoreRevision } from "../store/postgres/PostgresStoreRevision";
import { PgLivenessProbe, probePostgres } from "../store/postgres/probe";
import { CACHE_READ_OUTCOMES, CACHE_WRITE_OUTCOMES } from "../store/redis/CachedKvStore";
import { RedlockLockStore } from "../store/redis/RedlockLockStore";
import { buildKvStore } from "./buildKvStore";
import { type Dependency, DependencyHealth } from "./DependencyHealth";
import { noteAppendRevisions } from "./noteAppendRevisions";

export const MIGRATIONS_DIR = join(__dirname, "..", "..", "migrations");

export interface Services {
  server: AgentstateServer;
  metrics: Metrics;
  /** Where the truth lives, for the start-up announcement. */
  database: "embedded" | "external";
  /** Stops background work and closes every connection, in dependency order (the server has shut down). */
  close(): Promise<void>;
}

export async function buildServices(config: Config, log: Logger): Promise<Services> {
  // First: a bad certificate fails the start before anything is started.
  const credentials = serverCredentials(config, log);
  const embedded = config.databaseUrl === undefined ? await EmbeddedPostgres.start(config.dataDir, log) : undefined;
  const databaseUrl = config.databaseUrl ?? embedded!.url;
  const pool = createPool({
    connectionString: databaseUrl,
    max: config.pgPoolMax,
    statementTimeoutMs: config.statementTimeoutMs,
    queryTimeoutMs: config.queryTimeoutMs,
  });
  await probePostgres(pool, databaseUrl, embedded ? "embedded postgres" : "postgres");
  // Migrations may run long (no statement timeout): a pool of their own, without the client-side query timeout.
  const migrationPool = createPool({
    connectionString: databaseUrl,
    max: 1,
    statementTimeoutMs: config.statementTimeoutMs,
    applicationName: "agentstate-migrate",
  });
  try {
    const applied = await migrate(migrationPool, MIGRATIONS_DIR);
    if (applied.length > 0) log.info("migrations applied", { applied });
  } finally {
    await migrationPool.end().catch(() => undefined);
  }

  const metrics = new Metrics();
  const pgStore = new PostgresKvStore(pool, {
    batchMax: config.kvWriteBatchMax,
    batchesInFlight: config.kvWriteBatchesInFlight,
    observeBatch: (n) => metrics.kvWriteBatch.observe(n),
  });
  metrics.watchPool(pool);
  const kv = await buildKvStore(config, { kv: pgStore, cacheEpochs: new PostgresCacheEpochStore(pool) }, log, {
    read: (outcome) => metrics.cacheReads.inc({ outcome }),
    write: (outcome) => metrics.cacheWrites.inc({ outcome }),
    nearHit: () => metrics.nearCacheHits.inc(),
    evictionUnsafe: (unsafe) => metrics.cacheEvictionUnsafe.set(unsafe ? 1 : 0),
  });
  if (kv.cache) metrics.startCacheOutcomes(CACHE_READ_OUTCOMES, CACHE_WRITE_OUTCOMES);
  if (kv.near) metrics.watchNearCache(kv.near);
  const janitor = new Janitor(
    pool,
    {
      intervalMs: config.janitorIntervalMs,
      historyRetentionSeconds: config.historyRetentionSeconds,
      idempotencyTtlSeconds: config.idempotencyTtlSeconds,
      eventRetentionSeconds: config.eventRetentionSeconds,
      streamMaxEvents: config.streamMaxEvents,
    },
    log,
  );
  janitor.start();

  const healthDeps: Dependency[] = [];
  const pgProbe = new PgLivenessProbe(databaseUrl, Math.max(200, Math.min(config.healthUnhealthyAfterMs, 2000)));
  // Everything needs the truth; LockService too (tokens come from Postgres with either lock backend).
  healthDeps.push({ name: "postgres", services: ["", ...SERVICE_NAMES], check: () => pgProbe.check() });

  let lockStore: LockStore;
  if (config.redlockUrls.length > 0) {
    const redlock = new RedlockLockStore(
      { tokens: new FencingTokenIssuer(pool), revision: new PostgresStoreRevision(pool) },
      {
        urls: config.redlockUrls,
        prefix: config.redisPrefix,
        commandTimeoutMs: config.redisCommandTimeoutMs,
        tls: config.redisTls,
      },
      log.child({ component: "locks" }),
    );
    await redlock.ready(Math.max(2000, config.redisCommandTimeoutMs * 4));
    lockStore = redlock;
    healthDeps.push({ name: "redlock", services: ["agentstate.v1.LockService"], check: () => redlock.checkQuorum() });
  } else {
    lockStore = new PostgresLockStore(pool);
  }
  const notifier = new PgChangeNotifier(databaseUrl, log.child({ component: "events" }));
  notifier.start();
  const pgEvents = new PostgresEventStore(pool, {
    pageBytes: config.eventPageBytes,
    batchMax: config.eventAppendBatchMax,
    observeBatch: (n) => metrics.eventAppendBatch.observe(n),
  });
  const cache = kv.cache;
  const server = new AgentstateServer({
    metrics,
    kv: kv.store,
    locks: new LockService(lockStore),
    events: cache
      ? noteAppendRevisions(pgEvents, (namespace, revision) => cache.noteRevision(namespace, revision))
      : pgEvents,
    notifier,
    eventOptions: {
      pageSize: 500,
      pollMs: config.subscribePollMs,
      stallMs: config.subscriberStallMs,
      onSubscribers: (delta) => metrics.subscribers.inc(delta),
    },
    limits: config.limits,
    connection: config.connection,
    log,
    credentials,
    reflection: config.reflection,
  });

  const health = new DependencyHealth(
    healthDeps,
    {
      probeMs: config.healthProbeMs,
      unhealthyAfterMs: config.healthUnhealthyAfterMs,
      onChange: (down) => server.setDependencyDown(down),
      onDependency: (name, up) => metrics.dependencyUp.set({ dependency: name }, up ? 1 : 0),
    },
    log.child({ component: "health" }),
  );
  health.start();

  return {
    server,
    metrics,
    database: embedded ? "embedded" : "external",
    close: async () => {
      health.stop();
      pgProbe.close();
      await janitor.stop();
      await notifier.close();
      await kv.close();
      await lockStore.close();
      await pool.end().catch(() => undefined);
      if (embedded) await embedded.stop().catch(() => undefined);
    },
  };
}
