/**
 * Entry point: read configuration, connect to Postgres (or start the embedded
 * one), apply migrations, wire the stores, serve gRPC, and shut down gracefully
 * on SIGTERM/SIGINT.
 */
import { join } from "node:path";
import { ConfigError, loadConfig } from "./config/config";
import { EmbeddedPostgres } from "./embedded/EmbeddedPostgres";
import { AgentstateServer } from "./grpc/server";
import { Metrics } from "./metrics/Metrics";
import { Logger } from "./log/Logger";
import { createPool } from "./store/postgres/createPool";
import { Janitor } from "./store/postgres/Janitor";
import { migrate } from "./store/postgres/migrate";
import { PostgresKvStore } from "./store/postgres/PostgresKvStore";
import { buildKvStore } from "./store/buildKvStore";
import { LockService } from "./domain/locks";
import { PostgresLockStore } from "./store/postgres/PostgresLockStore";
import { PostgresEventStore } from "./store/postgres/PostgresEventStore";
import { PgChangeNotifier } from "./store/postgres/PgChangeNotifier";
import { RedlockLockStore } from "./store/redis/RedlockLockStore";

export const MIGRATIONS_DIR = join(__dirname, "..", "migrations");

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(JSON.stringify({ level: "error", msg: "invalid configuration", error: err.message }) + "\n");
      process.exit(2);
    }
    throw err;
  }
  const log = new Logger(config.logLevel, { service: "agentstate", pid: process.pid });
  process.on("unhandledRejection", (err) => {
    const e = err instanceof Error ? err : new Error(String(err));
    log.error("unhandled rejection", { error: e.message, stack: e.stack });
  });

  const embedded = config.databaseUrl === undefined ? await EmbeddedPostgres.start(config.dataDir, log) : undefined;
  const databaseUrl = config.databaseUrl ?? embedded!.url;
  const pool = createPool({
    connectionString: databaseUrl,
    max: config.pgPoolMax,
    statementTimeoutMs: config.statementTimeoutMs,
  });
  const applied = await migrate(pool, MIGRATIONS_DIR);
  if (applied.length > 0) log.info("migrations applied", { applied });

  const metrics = new Metrics();
  const pgStore = new PostgresKvStore(pool, {
    batchMax: config.kvWriteBatchMax,
    batchesInFlight: config.kvWriteBatchesInFlight,
    observeBatch: (n) => metrics.kvWriteBatch.observe(n),
  });
  metrics.watchPool(pool);
  const kv = await buildKvStore(config, pool, pgStore, log, {
    read: (outcome) => metrics.cacheReads.inc({ outcome }),
    nearHit: () => metrics.nearCacheHits.inc(),
  });
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

  const lockStore =
    config.redlockUrls.length > 0
      ? new RedlockLockStore(
          pool,
          { urls: config.redlockUrls, prefix: config.redisPrefix, commandTimeoutMs: config.redisCommandTimeoutMs },
          log.child({ component: "locks" }),
        )
      : new PostgresLockStore(pool);
  if (lockStore instanceof RedlockLockStore) await lockStore.ready(Math.max(2000, config.redisCommandTimeoutMs * 4));
  const notifier = new PgChangeNotifier(databaseUrl, log.child({ component: "events" }));
  notifier.start();
  const server = new AgentstateServer({
    metrics,
    kv: kv.store,
    locks: new LockService(lockStore),
    events: new PostgresEventStore(pool, {
      pageBytes: config.eventPageBytes,
      batchMax: config.eventAppendBatchMax,
      observeBatch: (n) => metrics.eventAppendBatch.observe(n),
    }),
    notifier,
    eventOptions: {
      pageSize: 500,
      pollMs: config.subscribePollMs,
      stallMs: config.subscriberStallMs,
      onSubscribers: (delta) => metrics.subscribers.inc(delta),
    },
    limits: config.limits,
    log,
  });
  const address = await server.listen(config.host, config.port);
  // Metrics are an aid, not a dependency: a taken port is logged, not fatal.
  const metricsHttp =
    config.metricsPort >= 0
      ? await metrics.listen(config.host, config.metricsPort).catch((err: Error) => {
          log.warn("metrics endpoint not started", { port: config.metricsPort, error: err.message });
          return undefined;
        })
      : undefined;
  log.announce("listening", {
    metrics: metricsHttp?.address,
    address,
    database: embedded ? "embedded" : "external",
    cache: config.redisUrl ? "redis" : "off",
    locks: config.redlockUrls.length > 0 ? `redlock(${config.redlockUrls.length})` : "postgres",
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal });
    await server.shutdown(config.shutdownGraceMs);
    metricsHttp?.server.close();
    await janitor.stop();
    await notifier.close();
    await kv.close();
    await lockStore.close();
    await pool.end().catch(() => undefined);
    if (embedded) await embedded.stop().catch(() => undefined);
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((err: unknown) => {
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(
    JSON.stringify({ level: "error", msg: "failed to start", error: e.message, stack: e.stack }) + "\n",
  );
  process.exit(1);
});
