/**
 * Configuration: the environment is read once, here, validated with messages
 * that name the variable, and handed out as a frozen typed object. Nothing else
 * in src/ reads process.env.
 */

import { accessSync, constants } from "node:fs";
import type { Limits } from "../domain/limits";
import type { LockWaitSettings } from "../domain/locks";

export type { Limits };

/** PEM files of the gRPC listener's TLS; reread when they change (rotation). */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** Set: mTLS, clients must present a certificate signed by this CA. */
  readonly clientCaFile: string | undefined;
}

/** HTTP/2 connections: streams, headers, idle and age, keepalive (the gRPC server's options). */
export interface ConnectionLimits {
  readonly maxConcurrentStreams: number;
  readonly maxHeaderListBytes: number;
  /** A connection without calls for this long is closed (also one that never sent the HTTP/2 preface). */
  readonly idleMs: number;
  /** 0: no maximum age. */
  readonly maxAgeMs: number;
  readonly maxAgeGraceMs: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  /** Header fields per request (pseudo-headers and gRPC's own included); more: the stream is reset. */
  readonly maxHeaderCount: number;
  /** HTTP/2 session memory per connection, MiB: past it new streams on that connection are refused. */
  readonly maxSessionMemoryMiB: number;
  /** A client PING sooner than this after the previous one is a strike... */
  readonly minPingIntervalMs: number;
  /** ...and a connection with more strikes than this in a row is sent GOAWAY "too_many_pings" and closed. */
  readonly maxPingStrikes: number;
}

/** AGENTSTATE_AUTH=required: who may call, and how they prove it (README, Security). */
export interface AuthConfig {
  /** AGENTSTATE_BOOTSTRAP_TOKEN: the bootstrap admin's token (unset: one is printed once, on a first start). */
  readonly bootstrapToken: string | undefined;
  /** How long a verified API token is trusted before it is read again (revocations arrive at once by NOTIFY). */
  readonly cacheMs: number;
  readonly jwt:
    | {
        readonly keysFile: string;
        readonly issuer: string | undefined;
        readonly audience: string;
        readonly grantsClaim: string;
      }
    | undefined;
  /** JSON: client certificate subjects (CN or URI SAN) to principals and grants. */
  readonly certPrincipalsFile: string | undefined;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  /** Unset: plaintext gRPC (allowed beyond loopback only with `insecure`). */
  readonly tls: TlsFiles | undefined;
  /**
   * For clients of this server (`agentstate health`): the CA that signed the
   * server's certificate (AGENTSTATE_TLS_CA_FILE, default the certificate
   * file itself).
   */
  readonly tlsCaFile: string | undefined;
  /** How often the TLS files are checked for a change, in ms. */
  readonly tlsReloadMs: number;
  /** AGENTSTATE_INSECURE=1: plaintext beyond loopback was asked for explicitly. */
  readonly insecure: boolean;
  /** Unset: AGENTSTATE_AUTH=off, every call is let through (the embedded loopback default). */
  readonly auth: AuthConfig | undefined;
  /** Server reflection (AGENTSTATE_REFLECTION=off turns it off). */
  readonly reflection: boolean;
  /** Address of the /metrics listener; loopback unless set (not AGENTSTATE_HOST). */
  readonly metricsHost: string;
  /** Prometheus /metrics port; -1 disables it. */
  readonly metricsPort: number;
  /** Unset: run an embedded Postgres in dataDir. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  /** Unset: no cache. */
  readonly redisUrl: string | undefined;
  /** Set when REDIS_URL names a Redis Cluster (redisClusterSeeds): the cache runs on it, Redlock never does. */
  readonly redisCluster: RedisClusterSeeds | undefined;
  readonly redisPrefix: string;
  readonly redlockUrls: readonly string[];
  /** For rediss:// URLs (cache and Redlock): the CA (default: the system's) and a client certificate. */
  readonly redisTls: {
    readonly caFile: string | undefined;
    readonly certFile: string | undefined;
    readonly keyFile: string | undefined;
  };
  readonly pgPoolMax: number;
  /** Most KV writes one replica sends to Postgres as one batch (group commit); 1 sends each alone. */
  readonly kvWriteBatchMax: number;
  /** KV write batches of one namespace one replica has in flight at once. */
  readonly kvWriteBatchesInFlight: number;
  /** Write batches (KV writes; appends, counted apart) one replica has in flight at once over every namespace. */
  readonly writeBatchesMax: number;
  /** Most appends one replica sends to Postgres as one batch (group commit); 1 sends each alone. */
  readonly eventAppendBatchMax: number;
  /** Most checkpoint puts one replica sends to Postgres as one batch (group commit); 1 sends each alone. */
  readonly checkpointBatchMax: number;
  /** Most deltas that follow a whole channel value (a read joins at most this many); 0 stores every value whole. */
  readonly checkpointDeltaChain: number;
  /** Bytes of channel values one replica keeps in memory to compute the next version's delta against. */
  readonly checkpointDeltaCacheBytes: number;
  readonly statementTimeoutMs: number;
  /** Client-side timeout of a pool query (a frozen or partitioned Postgres): a little above statementTimeoutMs. */
  readonly queryTimeoutMs: number;
  /** How often the health probe checks Postgres (and the Redlock quorum). */
  readonly healthProbeMs: number;
  /** A dependency that has not passed a check for this long makes health NOT_SERVING. */
  readonly healthUnhealthyAfterMs: number;
  /** AGENTSTATE_CACHE_REQUIRED=1: a cache Redis unreachable or refusing at start is fatal. */
  readonly cacheRequired: boolean;
  /** AGENTSTATE_CACHE_MIX: a mixed cache configuration found at start is logged (warn) or stops the server (fatal). */
  readonly cacheMix: "warn" | "fatal";
  readonly historyRetentionSeconds: number;
  readonly idempotencyTtlSeconds: number;
  readonly janitorIntervalMs: number;
  readonly cacheTtlSeconds: number;
  readonly cacheLeaseMs: number;
  readonly cacheMarkerTtlMs: number;
  /** How often the cache re-reads the Redis eviction policy (an allkeys-* policy turns the cache off). */
  readonly cacheEvictionCheckMs: number;
  /** Bytes for the per-replica near cache of hits (0: off). */
  readonly nearCacheBytes: number;
  /** How often the near cache proves its tracking delivers invalidations (0: never). */
  readonly nearCacheProbeMs: number;
  readonly redisCommandTimeoutMs: number;
  readonly shutdownGraceMs: number;
  readonly eventRetentionSeconds: number;
  readonly streamMaxEvents: number;
  /** Checkpoints kept per thread and checkpoint ns, the latest (0: no limit). */
  readonly checkpointKeepLatest: number;
  /** Checkpoints other than a thread's latest older than this are removed (0: kept). */
  readonly checkpointRetentionSeconds: number;
  readonly subscribePollMs: number;
  readonly eventPageBytes: number;
  readonly subscriberStallMs: number;
  /** Subscribe's reads of the event log in flight at once (a share of the Postgres pool). */
  readonly subscribeReadsInFlight: number;
  readonly logLevel: "debug" | "info" | "warn" | "error";
  /** "auto": readable lines when stdout is a terminal, JSON otherwise. */
  readonly logFormat: "json" | "pretty" | "auto";
  readonly limits: Limits;
  readonly connection: ConnectionLimits;
  /** Lock waits: queues, their caps, the fallback poll and the attempts in flight. */
  readonly lockWaits: LockWaitSettings;
  /** Lease of this replica's lock backend registration (replicas of one database agree on one backend). */
  readonly lockBackendLeaseMs: number;
  /** AGENTSTATE_LOCK_BACKEND_MIX_FATAL=1: replicas of this database with another lock backend make the start fail. */
  readonly lockBackendMixFatal: boolean;
}

/** A Redis Cluster's seed nodes and the credentials every node takes. */
export interface RedisClusterSeeds {
  readonly nodes: readonly { readonly host: string; readonly port: number }[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** rediss+cluster:// (or rediss:// seeds): TLS to every node, with the AGENTSTATE_REDIS_TLS_* files. */
  readonly tls: boolean;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  const v = Number(raw.trim());
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new ConfigError(`${name} must be between ${min} and ${max}, got ${raw}`);
  }
  return v;
}

function str(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === "" ? undefined : raw.trim();
}

function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    // Never echo the value: URLs carry passwords.
    throw new ConfigError(`${name} is not a valid URL`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use one of ${protocols.join(", ")} (got ${parsed.protocol})`);
  }
  return raw;
}

function onOff(env: Env, name: string, def: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const v = raw.toLowerCase();
  if (["1", "on", "true", "yes"].includes(v)) return true;
  if (["0", "off", "false", "no"].includes(v)) return false;
  throw new ConfigError(`${name} must be on or off (1 or 0), got ${JSON.stringify(raw)}`);
}

/** A file path that must name a readable file (checked now, so a typo fails at start, naming the setting). */
function readableFile(env: Env, name: string): string | undefined {
  const path = str(env, name);
  if (path === undefined) return undefined;
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    throw new ConfigError(`${name} names a file that cannot be read: ${path} (${(err as NodeJS.ErrnoException).code})`);
  }
  return path;
}

/**
 * REDIS_URL naming a Redis Cluster, or undefined for a single Redis:
 * `redis+cluster://[user:password@]host:port[,host:port...]` (`rediss+cluster://`
 * for TLS), or two or more `redis://` / `rediss://` URLs separated by commas
 * (seed nodes, all with the same scheme and credentials). Any node will do as
 * a seed: the client learns the others from it.
 */
function redisClusterSeeds(env: Env, name: string): RedisClusterSeeds | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  const m = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/@?#]+)\/?$/.exec(raw);
  let urls: URL[];
  if (m) {
    // Each host:port becomes a URL of its own, so URL does the parsing (IPv6 brackets, ports).
    urls = m[3]!.split(",").map((hostPort, i) => {
      try {
        return new URL(`${m[1]}://${m[2] === undefined ? "" : `${m[2]}@`}${hostPort.trim()}`);
      } catch {
        throw new ConfigError(`${name} names a Redis Cluster whose seed node ${i} is not host:port`);
      }
    });
  } else if (raw.includes(",")) {
    urls = raw.split(",").map((u, i) => {
      try {
        return new URL(u.trim());
      } catch {
        throw new ConfigError(`${name} lists seed nodes; entry ${i} is not a valid URL`);
      }
    });
  } else {
    return undefined;
  }
  const scheme = urls[0]!.protocol;
  for (const [i, u] of urls.entries()) {
    if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
      throw new ConfigError(`${name} seed node ${i} must use redis: or rediss: (got ${u.protocol})`);
    }
    if (u.protocol !== scheme || u.username !== urls[0]!.username || u.password !== urls[0]!.password) {
      throw new ConfigError(`${name} seed nodes must all use the same scheme and credentials (node ${i} differs)`);
    }
    if (u.hostname === "" || u.port === "" || (u.pathname !== "" && u.pathname !== "/")) {
      throw new ConfigError(`${name} seed node ${i} must be host:port (with the port, no database number)`);
    }
  }
  return Object.freeze({
    nodes: Object.freeze(
      urls.map((u) => Object.freeze({ host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port) })),
    ),
    username: urls[0]!.username === "" ? undefined : decodeURIComponent(urls[0]!.username),
    password: urls[0]!.password === "" ? undefined : decodeURIComponent(urls[0]!.password),
    tls: scheme === "rediss:",
  });
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function tlsFiles(env: Env): TlsFiles | undefined {
  const certFile = readableFile(env, "AGENTSTATE_TLS_CERT_FILE");
  const keyFile = readableFile(env, "AGENTSTATE_TLS_KEY_FILE");
  const clientCaFile = readableFile(env, "AGENTSTATE_TLS_CLIENT_CA_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError("AGENTSTATE_TLS_CERT_FILE and AGENTSTATE_TLS_KEY_FILE must be set together (or neither)");
  }
  if (certFile === undefined || keyFile === undefined) {
    if (clientCaFile !== undefined) {
      throw new ConfigError("AGENTSTATE_TLS_CLIENT_CA_FILE needs AGENTSTATE_TLS_CERT_FILE and AGENTSTATE_TLS_KEY_FILE");
    }
    return undefined;
  }
  return Object.freeze({ certFile, keyFile, clientCaFile });
}

function redisTls(env: Env): Config["redisTls"] {
  const certFile = readableFile(env, "AGENTSTATE_REDIS_TLS_CERT_FILE");
  const keyFile = readableFile(env, "AGENTSTATE_REDIS_TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(
      "AGENTSTATE_REDIS_TLS_CERT_FILE and AGENTSTATE_REDIS_TLS_KEY_FILE must be set together (or neither)",
    );
  }
  return Object.freeze({ caFile: readableFile(env, "AGENTSTATE_REDIS_TLS_CA_FILE"), certFile, keyFile });
}

function authConfig(env: Env): AuthConfig | undefined {
  const mode = str(env, "AGENTSTATE_AUTH") ?? "off";
  if (mode !== "required" && mode !== "off") {
    throw new ConfigError(`AGENTSTATE_AUTH must be required or off, got ${JSON.stringify(mode)}`);
  }
  const keysFile = readableFile(env, "AGENTSTATE_JWT_KEYS_FILE");
  const certPrincipalsFile = readableFile(env, "AGENTSTATE_AUTH_CERT_PRINCIPALS_FILE");
  const bootstrapToken = str(env, "AGENTSTATE_BOOTSTRAP_TOKEN");
  if (mode === "off") {
    for (const name of [
      "AGENTSTATE_JWT_KEYS_FILE",
      "AGENTSTATE_AUTH_CERT_PRINCIPALS_FILE",
      "AGENTSTATE_BOOTSTRAP_TOKEN",
    ]) {
      if (str(env, name) !== undefined) throw new ConfigError(`${name} needs AGENTSTATE_AUTH=required`);
    }
    return undefined;
  }
  // Never echo the token.
  if (bootstrapToken !== undefined && !/^[A-Za-z0-9._~+/=-]{32,512}$/.test(bootstrapToken)) {
    throw new ConfigError("AGENTSTATE_BOOTSTRAP_TOKEN must be 32..512 characters of A-Z a-z 0-9 . _ ~ + / = -");
  }
  const audience = str(env, "AGENTSTATE_JWT_AUDIENCE");
  if (keysFile !== undefined && audience === undefined) {
    throw new ConfigError("AGENTSTATE_JWT_KEYS_FILE needs AGENTSTATE_JWT_AUDIENCE (the aud a JWT must carry)");
  }
  return Object.freeze({
    bootstrapToken,
    cacheMs: int(env, "AGENTSTATE_AUTH_CACHE_MS", 30000, 0, 3600000),
    jwt:
      keysFile === undefined
        ? undefined
        : Object.freeze({
            keysFile,
            issuer: str(env, "AGENTSTATE_JWT_ISSUER"),
            audience: audience!,
            grantsClaim: str(env, "AGENTSTATE_JWT_GRANTS_CLAIM") ?? "agentstate_grants",
          }),
    certPrincipalsFile,
  });
}

/** Reads and validates the environment. Throws ConfigError naming the variable. */
export function loadConfig(env: Env = process.env): Config {
  const host = str(env, "AGENTSTATE_HOST") ?? "127.0.0.1";
  const tls = tlsFiles(env);
  const insecure = onOff(env, "AGENTSTATE_INSECURE", false);
  // Safe default: plaintext gRPC stays on loopback unless the operator says
  // otherwise, with auth on or off: a bearer token sent in plaintext is as
  // good as no authentication to whoever can see the traffic. Beyond
  // loopback: TLS, or AGENTSTATE_INSECURE=1 (e.g. TLS ended by a proxy).
  if (!isLoopback(host) && tls === undefined && !insecure) {
    throw new ConfigError(
      `AGENTSTATE_HOST=${host} is not a loopback address: set AGENTSTATE_TLS_CERT_FILE and AGENTSTATE_TLS_KEY_FILE ` +
        "to serve TLS, or AGENTSTATE_INSECURE=1 to serve plaintext anyway",
    );
  }
  // Beyond loopback, authentication too: with auth off, TLS only hides the
  // traffic from whoever can reach the port and change every namespace.
  const auth = authConfig(env);
  if (!isLoopback(host) && auth === undefined && !insecure) {
    throw new ConfigError(
      `AGENTSTATE_HOST=${host} is not a loopback address: set AGENTSTATE_AUTH=required ` +
        "(API tokens, JWTs or client certificates), or AGENTSTATE_INSECURE=1 to serve without authentication anyway",
    );
  }
  const redisCluster = redisClusterSeeds(env, "REDIS_URL");
  const redisUrl = redisCluster ? str(env, "REDIS_URL") : url(env, "REDIS_URL", ["redis:", "rediss:"]);
  const redlockRaw = str(env, "REDLOCK_URLS");
  if (redisCluster && !redlockRaw) {
    // Redlock needs independent masters; a cluster's shards are not (and a key lives on one of them).
    throw new ConfigError(
      "REDIS_URL names a Redis Cluster, which Redlock cannot run on: set REDLOCK_URLS to 1, 3 or 5 independent Redis masters",
    );
  }
  const redlockUrls = redlockRaw
    ? redlockRaw.split(",").map((u, i) => {
        const one = url({ [`REDLOCK_URLS[${i}]`]: u.trim() }, `REDLOCK_URLS[${i}]`, ["redis:", "rediss:"]);
        if (!one) throw new ConfigError(`REDLOCK_URLS has an empty entry at position ${i}`);
        return one;
      })
    : redisUrl
      ? [redisUrl]
      : [];
  if (![0, 1, 3, 5].includes(redlockUrls.length)) {
    throw new ConfigError(`REDLOCK_URLS must list 1, 3 or 5 independent Redis masters, got ${redlockUrls.length}`);
  }
  const logLevel = str(env, "LOG_LEVEL") ?? "info";
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of debug, info, warn, error, got ${JSON.stringify(logLevel)}`);
  }
  const cacheMix = str(env, "AGENTSTATE_CACHE_MIX") ?? "warn";
  if (cacheMix !== "warn" && cacheMix !== "fatal") {
    throw new ConfigError(`AGENTSTATE_CACHE_MIX must be one of warn, fatal, got ${JSON.stringify(cacheMix)}`);
  }
  const logFormat = str(env, "LOG_FORMAT") ?? "auto";
  if (!["json", "pretty", "auto"].includes(logFormat)) {
    throw new ConfigError(`LOG_FORMAT must be one of json, pretty, auto, got ${JSON.stringify(logFormat)}`);
  }
  const prefix = str(env, "AGENTSTATE_REDIS_PREFIX") ?? "agentstate";
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix)) {
    throw new ConfigError("AGENTSTATE_REDIS_PREFIX must be 1..64 characters of A-Z a-z 0-9 _ . : -");
  }

  const maxValueBytes = int(env, "AGENTSTATE_MAX_VALUE_BYTES", 1024 * 1024, 1, 64 * 1024 * 1024);
  const maxEventBytes = int(env, "AGENTSTATE_MAX_EVENT_BYTES", 1024 * 1024, 1, 64 * 1024 * 1024);
  const maxAppendBytes = int(env, "AGENTSTATE_MAX_APPEND_BYTES", 4 * 1024 * 1024, 1, 256 * 1024 * 1024);
  const listMaxLimit = int(env, "AGENTSTATE_LIST_MAX_LIMIT", 1000, 1, 100000);
  const maxSubscribers = int(env, "AGENTSTATE_MAX_SUBSCRIBERS", 2000, 1, 1000000);
  const maxSubscribersPerNamespace = int(env, "AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE", 500, 1, 1000000);
  if (maxSubscribersPerNamespace > maxSubscribers) {
    throw new ConfigError(
      `AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE (${maxSubscribersPerNamespace}) must not exceed AGENTSTATE_MAX_SUBSCRIBERS (${maxSubscribers})`,
    );
  }
  const statementTimeoutMs = int(env, "AGENTSTATE_STATEMENT_TIMEOUT_MS", 5000, 100, 600000);
  const limits: Limits = Object.freeze({
    maxKeyBytes: 1024,
    maxValueBytes,
    maxContentTypeBytes: 255,
    maxIdempotencyKeyBytes: 255,
    maxOwnerBytes: 255,
    listDefaultLimit: Math.min(100, listMaxLimit),
    listMaxLimit,
    maxTtlSeconds: int(env, "AGENTSTATE_MAX_TTL_SECONDS", 10 * 365 * 24 * 3600, 1, 100 * 365 * 24 * 3600),
    maxLockTtlSeconds: int(env, "AGENTSTATE_MAX_LOCK_TTL_SECONDS", 3600, 1, 30 * 24 * 3600),
    maxLockWaitSeconds: int(env, "AGENTSTATE_MAX_LOCK_WAIT_SECONDS", 300, 0, 24 * 3600),
    maxEventsPerAppend: int(env, "AGENTSTATE_MAX_EVENTS_PER_APPEND", 1000, 1, 100000),
    maxEventMetadataEntries: int(env, "AGENTSTATE_MAX_EVENT_METADATA_ENTRIES", 64, 0, 100000),
    maxEventTypeBytes: 255,
    maxEventBytes,
    maxAppendBytes,
    // Room for the largest value or batch plus the envelope, so the transport
    // never refuses what the edge would accept.
    maxMessageBytes: Math.max(maxValueBytes, maxAppendBytes) + 64 * 1024,
    maxSubscribers,
    maxSubscribersPerNamespace,
    maxReadStreams: int(env, "AGENTSTATE_MAX_READ_STREAMS", 1000, 1, 1000000),
    maxSessions: int(env, "AGENTSTATE_MAX_SESSIONS", 1000, 1, 1000000),
    maxSessionCalls: int(env, "AGENTSTATE_MAX_SESSION_CALLS", 256, 1, 100000),
  });

  const cacheMarkerTtlMs = int(env, "AGENTSTATE_CACHE_MARKER_TTL_MS", 15000, 1000, 3600000);
  if (cacheMarkerTtlMs < 2 * statementTimeoutMs) {
    // The write-in-flight marker must outlive any write transaction (guarantee 3).
    throw new ConfigError(
      `AGENTSTATE_CACHE_MARKER_TTL_MS (${cacheMarkerTtlMs}) must be at least twice AGENTSTATE_STATEMENT_TIMEOUT_MS (${statementTimeoutMs})`,
    );
  }

  const pgPoolMax = int(env, "PG_POOL_MAX", 20, 1, 1000);
  const queryTimeoutMs = int(env, "AGENTSTATE_QUERY_TIMEOUT_MS", statementTimeoutMs + 2000, 100, 600000);
  if (queryTimeoutMs <= statementTimeoutMs) {
    // Postgres must get to cancel a slow statement itself (a clean error) before the client gives up on it.
    throw new ConfigError(
      `AGENTSTATE_QUERY_TIMEOUT_MS (${queryTimeoutMs}) must be above AGENTSTATE_STATEMENT_TIMEOUT_MS (${statementTimeoutMs})`,
    );
  }

  const lockAttemptsInFlight = int(
    env,
    "AGENTSTATE_LOCK_ATTEMPTS_IN_FLIGHT",
    Math.max(1, Math.floor(pgPoolMax / 5)),
    1,
    1000,
  );
  if (lockAttemptsInFlight > pgPoolMax) {
    // Lock attempts may use only a share of the pool, never all of it.
    throw new ConfigError(
      `AGENTSTATE_LOCK_ATTEMPTS_IN_FLIGHT (${lockAttemptsInFlight}) must not exceed PG_POOL_MAX (${pgPoolMax})`,
    );
  }
  const subscribeReadsInFlight = int(
    env,
    "AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT",
    Math.max(1, Math.floor(pgPoolMax / 4)),
    1,
    1000,
  );
  if (subscribeReadsInFlight > pgPoolMax) {
    // Subscribe's catch-up reads may use only a share of the pool, never all of it.
    throw new ConfigError(
      `AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT (${subscribeReadsInFlight}) must not exceed PG_POOL_MAX (${pgPoolMax})`,
    );
  }
  const maxLockWaiters = int(env, "AGENTSTATE_MAX_LOCK_WAITERS", 10000, 1, 1000000);
  const maxLockWaitersPerName = int(env, "AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME", 1000, 1, 1000000);
  if (maxLockWaitersPerName > maxLockWaiters) {
    throw new ConfigError(
      `AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME (${maxLockWaitersPerName}) must not exceed AGENTSTATE_MAX_LOCK_WAITERS (${maxLockWaiters})`,
    );
  }

  return Object.freeze({
    host,
    port: int(env, "AGENTSTATE_PORT", 50051, 0, 65535),
    tls,
    tlsCaFile: readableFile(env, "AGENTSTATE_TLS_CA_FILE") ?? tls?.certFile,
    tlsReloadMs: int(env, "AGENTSTATE_TLS_RELOAD_MS", 1000, 50, 3600000),
    insecure,
    auth,
    reflection: onOff(env, "AGENTSTATE_REFLECTION", true),
    metricsHost: str(env, "AGENTSTATE_METRICS_HOST") ?? "127.0.0.1",
    metricsPort: int(env, "AGENTSTATE_METRICS_PORT", 9464, -1, 65535),
    databaseUrl: url(env, "DATABASE_URL", ["postgres:", "postgresql:"]),
    dataDir: str(env, "AGENTSTATE_DATA_DIR") ?? ".agentstate",
    redisUrl,
    redisCluster,
    redisPrefix: prefix,
    redlockUrls: Object.freeze(redlockUrls),
    redisTls: redisTls(env),
    pgPoolMax,
    writeBatchesMax: int(env, "AGENTSTATE_WRITE_BATCHES_MAX", Math.max(1, Math.floor(pgPoolMax / 4)), 1, 1000),
    kvWriteBatchMax: int(env, "AGENTSTATE_KV_WRITE_BATCH", 64, 1, 1000),
    kvWriteBatchesInFlight: int(env, "AGENTSTATE_KV_WRITE_BATCHES_IN_FLIGHT", 1, 1, 16),
    eventAppendBatchMax: int(env, "AGENTSTATE_EVENT_APPEND_BATCH", 64, 1, 1000),
    checkpointBatchMax: int(env, "AGENTSTATE_CHECKPOINT_BATCH", 64, 1, 1000),
    checkpointDeltaChain: int(env, "AGENTSTATE_CHECKPOINT_DELTA_CHAIN", 32, 0, 256),
    checkpointDeltaCacheBytes: int(
      env,
      "AGENTSTATE_CHECKPOINT_DELTA_CACHE_BYTES",
      32 * 1024 * 1024,
      0,
      4 * 1024 * 1024 * 1024,
    ),
    statementTimeoutMs,
    queryTimeoutMs,
    healthProbeMs: int(env, "AGENTSTATE_HEALTH_PROBE_MS", 1000, 50, 600000),
    healthUnhealthyAfterMs: int(env, "AGENTSTATE_HEALTH_UNHEALTHY_AFTER_MS", 3000, 100, 3600000),
    cacheRequired: onOff(env, "AGENTSTATE_CACHE_REQUIRED", false),
    cacheMix,
    historyRetentionSeconds: int(env, "AGENTSTATE_HISTORY_RETENTION_SECONDS", 7 * 24 * 3600, 0, 100 * 365 * 24 * 3600),
    idempotencyTtlSeconds: int(env, "AGENTSTATE_IDEMPOTENCY_TTL_SECONDS", 24 * 3600, 60, 365 * 24 * 3600),
    janitorIntervalMs: int(env, "AGENTSTATE_JANITOR_INTERVAL_MS", 60000, 100, 24 * 3600 * 1000),
    cacheTtlSeconds: int(env, "AGENTSTATE_CACHE_TTL_SECONDS", 3600, 1, 30 * 24 * 3600),
    cacheLeaseMs: int(env, "AGENTSTATE_CACHE_LEASE_MS", 2000, 200, 60000),
    cacheMarkerTtlMs,
    cacheEvictionCheckMs: int(env, "AGENTSTATE_CACHE_EVICTION_CHECK_MS", 2000, 100, 60000),
    nearCacheBytes: int(env, "AGENTSTATE_NEAR_CACHE_BYTES", 64 * 1024 * 1024, 0, 64 * 1024 * 1024 * 1024),
    redisCommandTimeoutMs: int(env, "AGENTSTATE_REDIS_TIMEOUT_MS", 500, 10, 60000),
    nearCacheProbeMs: int(env, "AGENTSTATE_NEAR_CACHE_PROBE_MS", 1000, 0, 60000),
    shutdownGraceMs: int(env, "AGENTSTATE_SHUTDOWN_GRACE_MS", 10000, 0, 600000),
    eventRetentionSeconds: int(env, "AGENTSTATE_EVENT_RETENTION_SECONDS", 0, 0, 100 * 365 * 24 * 3600),
    streamMaxEvents: int(env, "AGENTSTATE_STREAM_MAX_EVENTS", 0, 0, Number.MAX_SAFE_INTEGER),
    checkpointKeepLatest: int(env, "AGENTSTATE_CHECKPOINT_KEEP_LATEST", 0, 0, 1_000_000_000),
    checkpointRetentionSeconds: int(env, "AGENTSTATE_CHECKPOINT_RETENTION_SECONDS", 0, 0, 100 * 365 * 24 * 3600),
    subscribePollMs: int(env, "AGENTSTATE_SUBSCRIBE_POLL_MS", 1000, 10, 60000),
    eventPageBytes: int(env, "AGENTSTATE_EVENT_PAGE_BYTES", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    subscriberStallMs: int(env, "AGENTSTATE_SUBSCRIBER_STALL_MS", 30000, 100, 3600000),
    subscribeReadsInFlight,
    logLevel: logLevel as Config["logLevel"],
    logFormat: logFormat as Config["logFormat"],
    limits,
    connection: Object.freeze({
      maxConcurrentStreams: int(env, "AGENTSTATE_MAX_CONCURRENT_STREAMS", 1000, 1, 2 ** 31 - 1),
      maxHeaderListBytes: int(env, "AGENTSTATE_MAX_HEADER_LIST_BYTES", 16384, 1024, 16 * 1024 * 1024),
      idleMs: int(env, "AGENTSTATE_CONNECTION_IDLE_MS", 60000, 100, 24 * 3600 * 1000),
      maxAgeMs: int(env, "AGENTSTATE_CONNECTION_MAX_AGE_MS", 0, 0, 30 * 24 * 3600 * 1000),
      maxAgeGraceMs: int(env, "AGENTSTATE_CONNECTION_MAX_AGE_GRACE_MS", 30000, 0, 24 * 3600 * 1000),
      keepaliveTimeMs: int(env, "AGENTSTATE_KEEPALIVE_TIME_MS", 60000, 1000, 24 * 3600 * 1000),
      keepaliveTimeoutMs: int(env, "AGENTSTATE_KEEPALIVE_TIMEOUT_MS", 20000, 100, 3600 * 1000),
      // Every gRPC call carries about 10 (pseudo-headers, content-type, te, user-agent, grpc-timeout, ...).
      maxHeaderCount: int(env, "AGENTSTATE_MAX_HEADER_COUNT", 64, 16, 10000),
      maxSessionMemoryMiB: int(env, "AGENTSTATE_MAX_SESSION_MEMORY_MB", 64, 1, 64 * 1024),
      minPingIntervalMs: int(env, "AGENTSTATE_KEEPALIVE_MIN_PING_INTERVAL_MS", 5000, 0, 3600 * 1000),
      maxPingStrikes: int(env, "AGENTSTATE_KEEPALIVE_MAX_PING_STRIKES", 2, 0, 1000),
    }),
    lockBackendLeaseMs: int(env, "AGENTSTATE_LOCK_BACKEND_LEASE_MS", 10000, 300, 600000),
    lockBackendMixFatal: onOff(env, "AGENTSTATE_LOCK_BACKEND_MIX_FATAL", false),
    lockWaits: Object.freeze({
      pollMs: int(env, "AGENTSTATE_LOCK_POLL_MS", 1000, 10, 3600000),
      attemptsInFlight: lockAttemptsInFlight,
      maxWaiters: maxLockWaiters,
      maxWaitersPerName: maxLockWaitersPerName,
    }),
  });
}
