/**
 * The composition root: the one place that knows every adapter. It connects to
 * Postgres (or starts the embedded one), applies migrations, builds the
 * Postgres adapters, hands the Redis adapters (cache, Redlock) the ports they
 * need of the truth, and builds the gRPC server on top. Adapters never import
 * each other; they meet here.
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { CertPrincipals } from "../auth/certPrincipals";
import { CredentialAuthenticator } from "../auth/CredentialAuthenticator";
import { JwtVerifier } from "../auth/JwtVerifier";
import { GrantAdmin } from "../auth/GrantAdmin";
import { TokenAdmin } from "../auth/TokenAdmin";
import { ConfigError, type Config } from "../config/config";
import { checkpointReplyLimit } from "../domain/checkpoints";
import { LockService, type LockStore } from "../domain/locks";
import { EmbeddedPostgres } from "../embedded/EmbeddedPostgres";
import { AuthStep } from "../grpc/auth/AuthStep";
import { AgentstateServer, SERVICE_NAMES, serverCredentials } from "../grpc/server";
import type { Logger } from "../log/Logger";
import { Metrics } from "../metrics/Metrics";
import { createPool } from "../store/postgres/createPool";
import { FencingTokenIssuer } from "../store/postgres/FencingTokenIssuer";
import { Janitor } from "../store/postgres/Janitor";
import { migrate } from "../store/postgres/migrate";
import { PgChangeNotifier } from "../store/postgres/PgChangeNotifier";
import { PgLockReleases } from "../store/postgres/PgLockReleases";
import { PostgresLockBackendRegistry } from "../store/postgres/PostgresLockBackendRegistry";
import { PgTokenChanges } from "../store/postgres/PgTokenChanges";
import { PostgresAuditLog } from "../store/postgres/PostgresAuditLog";
import { PostgresGrantStore } from "../store/postgres/PostgresGrantStore";
import { PostgresTokenStore } from "../store/postgres/PostgresTokenStore";
import { PostgresCacheEpochStore } from "../store/postgres/PostgresCacheEpochStore";
import { PostgresCheckpointStore } from "../store/postgres/PostgresCheckpointStore";
import { PostgresEventStore } from "../store/postgres/PostgresEventStore";
import { PostgresItemStore } from "../store/postgres/PostgresItemStore";
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
  /** A bootstrap admin token made on this (first) start, to be shown once; see TokenAdmin.bootstrap. */
  bootstrapToken: string | undefined;
  /** With auth on: whether an HTTP Authorization header proves a principal with some grant (for /metrics). */
  authorizeHttp: ((authorization: string | undefined) => Promise<boolean>) | undefined;
  /** Stops background work and closes every connection, in dependency order (the server has shut down). */
  close(): Promise<void>;
}

export async function buildServices(config: Config, log: Logger): Promise<Services> {
  // First: a bad certificate, key file or principals file fails the start before anything is started.
  const credentials = serverCredentials(config, log);
  const authFiles = await loadAuthFiles(config);
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
    batchesMax: config.writeBatchesMax,
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
  metrics.watchCacheMix(kv.mix);
  const janitor = new Janitor(
    pool,
    {
      intervalMs: config.janitorIntervalMs,
      historyRetentionSeconds: config.historyRetentionSeconds,
      idempotencyTtlSeconds: config.idempotencyTtlSeconds,
      eventRetentionSeconds: config.eventRetentionSeconds,
      streamMaxEvents: config.streamMaxEvents,
      checkpoints: { keepLatest: config.checkpointKeepLatest, maxAgeSeconds: config.checkpointRetentionSeconds },
    },
    log,
  );
  janitor.start();

  const healthDeps: Dependency[] = [];
  const pgProbe = new PgLivenessProbe(databaseUrl, Math.max(200, Math.min(config.healthUnhealthyAfterMs, 2000)));
  // Everything needs the truth; LockService too (tokens come from Postgres with either lock backend).
  healthDeps.push({ name: "postgres", services: ["", ...SERVICE_NAMES], check: () => pgProbe.check() });

  // Lock releases are announced between replicas over NOTIFY, whatever the lock backend.
  const lockReleases = new PgLockReleases(databaseUrl, pool, randomUUID(), log.child({ component: "locks" }));
  lockReleases.start();
  let lockStore: LockStore;
  if (config.redlockUrls.length > 0) {
    const redlock = new RedlockLockStore(
      { tokens: new FencingTokenIssuer(pool), revision: new PostgresStoreRevision(pool), releases: lockReleases },
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
    lockStore = new PostgresLockStore(pool, (namespace, name) => lockReleases.payload(namespace, name));
  }
  const notifier = new PgChangeNotifier(databaseUrl, log.child({ component: "events" }));
  notifier.start();
  const pgEvents = new PostgresEventStore(pool, {
    pageBytes: config.eventPageBytes,
    batchMax: config.eventAppendBatchMax,
    batchesMax: config.writeBatchesMax,
    observeBatch: (n) => metrics.eventAppendBatch.observe(n),
    onAppended: (namespace) => notifier.publish(namespace),
  });
  // Replicas of one database agree on one lock backend (issue 19): registered under a lease before serving.
  const locks: LockService = new LockService(lockStore, config.lockWaits, lockReleases, {
    check: () => lockBackends.check(),
  });
  const lockBackends = new PostgresLockBackendRegistry(
    pool,
    {
      replicaId: lockReleases.replica,
      backend: lockStore.identity,
      maxLockTtlMs: config.limits.maxLockTtlSeconds * 1000,
      leaseMs: config.lockBackendLeaseMs,
      onMix: (mixed) => metrics.lockBackendMix.set(mixed ? 1 : 0),
      grantedUntil: () => locks.grantedUntil,
    },
    log.child({ component: "locks" }),
  );
  const registered = await lockBackends.start();
  if (config.lockBackendMixFatal && registered.others.length > 0) {
    await lockBackends.stop();
    throw new ConfigError(
      `lock backend mix (AGENTSTATE_LOCK_BACKEND_MIX_FATAL=1): this replica keeps locks in ${lockStore.identity}, ` +
        `live replicas of this database keep them in ${registered.others.join("; ")}`,
    );
  }
  healthDeps.push({
    name: "lock_backend",
    services: ["agentstate.v1.LockService"],
    check: () => Promise.resolve().then(() => lockBackends.check()),
  });
  metrics.watchLockWaits(locks);
  let auth: { step: AuthStep; admin: TokenAdmin; audit: PostgresAuditLog; grants: GrantAdmin } | undefined;
  let tokenChanges: PgTokenChanges | undefined;
  let bootstrapToken: string | undefined;
  let authorizeHttp: Services["authorizeHttp"];
  if (config.auth) {
    const tokens = new PostgresTokenStore(pool);
    const grants = new PostgresGrantStore(pool);
    const authenticator = new CredentialAuthenticator({ tokens, grants, ...authFiles, cacheMs: config.auth.cacheMs });
    tokenChanges = new PgTokenChanges(databaseUrl, authenticator, log.child({ component: "auth" }));
    await tokenChanges.start();
    const admin = new TokenAdmin(tokens);
    bootstrapToken = await admin.bootstrap(config.auth.bootstrapToken);
    const step = new AuthStep(authenticator, (rpc, code) => metrics.authDenied.inc({ rpc, code }));
    auth = { step, admin, audit: new PostgresAuditLog(pool), grants: new GrantAdmin(grants) };
    authorizeHttp = (authorization) => step.allowsHttp(authorization);
  }
  const server = new AgentstateServer({
    auth,
    metrics,
    kv: kv.store,
    locks,
    events: noteAppendRevisions(
      pgEvents,
      (namespace, revision, waitMs, keyBaseBefore) => kv.noteRevision(namespace, revision, waitMs, keyBaseBefore),
      (namespace) => kv.keyBase(namespace),
    ),
    items: new PostgresItemStore(pool),
    notifier,
    checkpoints: new PostgresCheckpointStore(pool, {
      chunkBytes: config.limits.maxValueBytes,
      maxCheckpointBytes: checkpointReplyLimit(config.limits),
      batchMax: config.checkpointBatchMax,
      deltaChain: config.checkpointDeltaChain,
      deltaCacheBytes: config.checkpointDeltaCacheBytes,
      batchesMax: config.writeBatchesMax,
    }),
    eventOptions: {
      pageSize: 500,
      pollMs: config.subscribePollMs,
      stallMs: config.subscriberStallMs,
      queueBytes: config.eventPageBytes,
      readsInFlight: config.subscribeReadsInFlight,
      onFeedError: (err) =>
        log.warn("change feed read failed; retried at the next wake-up or poll", { error: (err as Error).message }),
      onSubscribers: (delta) => metrics.subscribers.inc(delta),
      onReaders: (count) => metrics.changeReaders.set(count),
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
    bootstrapToken,
    authorizeHttp,
    close: async () => {
      await tokenChanges?.close();
      health.stop();
      pgProbe.close();
      await janitor.stop();
      await notifier.close();
      await kv.close();
      await lockBackends.stop();
      await lockReleases.close();
      await lockStore.close();
      await pool.end().catch(() => undefined);
      if (embedded) await embedded.stop().catch(() => undefined);
    },
  };
}

/** The JWT keys and the certificate principals of AGENTSTATE_AUTH=required, read once at start. */
async function loadAuthFiles(config: Config) {
  try {
    return {
      jwt: config.auth?.jwt ? await JwtVerifier.load(config.auth.jwt) : undefined,
      certs: config.auth?.certPrincipalsFile ? CertPrincipals.load(config.auth.certPrincipalsFile) : undefined,
    };
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}
