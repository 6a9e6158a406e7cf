/**
 * The one way agentstate connects to Redis: fail fast instead of queueing (a
 * request never waits on a Redis that is down), no automatic resends (a
 * command is never replayed on a different connection or server), a
 * per-command timeout, and quick reconnects. Errors are logged at debug level
 * without the URL (it may carry a password). A rediss:// URL connects with TLS,
 * verifying the server's certificate and name against `tls.caFile` (default:
 * the system's CAs), and presents a client certificate when one is given.
 */
import { readFileSync } from "node:fs";
import Redis, { Cluster } from "ioredis";
import type { Logger } from "../../log/Logger";

/** PEM files for rediss:// connections (ignored for redis://). */
export interface RedisTlsFiles {
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
}

export interface RedisClientOptions {
  tls?: RedisTlsFiles | undefined;
  /**
   * Cork the connection for the rest of each event-loop turn (default true).
   * Off for a connection whose commands are sent from a setImmediate callback
   * and must leave at once (the near cache's sync PINGs).
   */
  corkPerTurn?: boolean;
  /** CLIENT SETNAME on every connect, so operators can tell the connections apart. */
  connectionName?: string;
  /** Re-subscribe after a reconnect (ioredis default true); off where the caller re-subscribes itself. */
  autoResubscribe?: boolean;
}

export function createRedisClient(
  url: string,
  commandTimeoutMs: number,
  log: Logger,
  opts: RedisClientOptions = {},
): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(1000, commandTimeoutMs * 4),
    retryStrategy: (times) => Math.min(50 * times, 1000),
    lazyConnect: true,
    autoResubscribe: opts.autoResubscribe ?? true,
    ...(opts.connectionName ? { connectionName: opts.connectionName } : {}),
    ...(url.startsWith("rediss:") ? { tls: tlsOptions(opts.tls ?? {}) } : {}),
  });
  redis.on("error", (err: Error) => log.debug("redis error", { error: err.message }));
  if (opts.corkPerTurn ?? true) corkPerTurn(redis);
  return redis;
}

/** A Redis Cluster's seed nodes and credentials (config's RedisClusterSeeds). */
export interface RedisClusterTarget {
  readonly nodes: readonly { readonly host: string; readonly port: number }[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
}

/**
 * The same rules for a Redis Cluster: no offline queue, no resends, a
 * per-command timeout. Redirections are never followed (maxRedirections 0): a
 * MOVED or ASK fails the command (the cache falls back to Postgres) and
 * refreshes the slot map, so a command reaches a new master only through a
 * new slot map, which the cache epoch is told of first (CacheKeyspace.watch).
 * Commands go to masters only, corked per turn on each master's connection
 * (corkPerTurn).
 */
export function createRedisCluster(
  target: RedisClusterTarget,
  commandTimeoutMs: number,
  log: Logger,
  opts: Pick<RedisClientOptions, "tls" | "connectionName"> = {},
): Cluster {
  const cluster = new Cluster(
    target.nodes.map((n) => ({ host: n.host, port: n.port })),
    {
      enableOfflineQueue: false,
      maxRedirections: 0,
      scaleReads: "master",
      lazyConnect: true,
      clusterRetryStrategy: (times) => Math.min(50 * times, 1000),
      slotsRefreshTimeout: Math.max(1000, commandTimeoutMs * 4),
      slotsRefreshInterval: 5000,
      redisOptions: {
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
        commandTimeout: commandTimeoutMs,
        connectTimeout: Math.max(1000, commandTimeoutMs * 4),
        ...(target.username === undefined ? {} : { username: target.username }),
        ...(target.password === undefined ? {} : { password: target.password }),
        ...(opts.connectionName ? { connectionName: opts.connectionName } : {}),
        ...(target.tls ? { tls: tlsOptions(opts.tls ?? {}) } : {}),
      },
    },
  );
  // Each master's connection is corked per turn like a single Redis's: the
  // scripts of one turn (the end-writes of a KV batch, concurrent begin-writes)
  // leave in one socket write per master, not one per command.
  cluster.on("+node", (node: Redis) => corkPerTurn(node));
  cluster.on("error", (err: Error) => log.debug("redis cluster error", { error: err.message }));
  cluster.on("node error", (err: Error) => log.debug("redis cluster node error", { error: err.message }));
  // A redirection means the slot map is stale: fetch it now rather than at the next periodic refresh.
  const send = cluster.sendCommand.bind(cluster);
  cluster.sendCommand = (command, stream, node) => {
    const p = send(command, stream, node);
    command.promise.catch((err: Error) => {
      if (/\b(MOVED|ASK|CLUSTERDOWN)\b/.test(err.message)) cluster.refreshSlotsCache();
    });
    return p;
  };
  return cluster;
}

function tlsOptions(files: RedisTlsFiles): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  return {
    ...(files.caFile ? { ca: readFileSync(files.caFile) } : {}),
    ...(files.certFile ? { cert: readFileSync(files.certFile) } : {}),
    ...(files.keyFile ? { key: readFileSync(files.keyFile) } : {}),
  };
}

/**
 * Commands sent in one event-loop turn (the Gets read from one socket read,
 * the end-writes of one KV write batch, the scripts of concurrent Locks) leave
 * in one socket write instead of a write syscall each: the connection is
 * corked from the turn's first command until the turn ends. Order on the
 * connection is unchanged; the delay is at most the rest of the turn.
 * Measured with bench/experiments/redis-cork.mjs (BENCHMARKS.md, finding 1).
 */
function corkPerTurn(redis: Redis): void {
  if (flushers.has(redis)) return;
  const send = redis.sendCommand.bind(redis);
  let corked: { uncork(): void } | undefined;
  const flush = () => {
    const socket = corked;
    corked = undefined;
    socket?.uncork();
  };
  redis.sendCommand = (command, stream) => {
    const socket = redis.stream;
    if (corked === undefined && redis.status === "ready" && socket?.writable) {
      corked = socket;
      socket.cork();
      setImmediate(flush);
    }
    return send(command, stream);
  };
  flushers.set(redis, flush);
}

const flushers = new WeakMap<Redis, () => void>();

/**
 * Sends what this turn's commands have corked on the connection now, not at
 * the end of the turn: for commands sent from a setImmediate callback, whose
 * corked window would otherwise last into the next turn.
 */
export function sendNow(redis: Redis): void {
  flushers.get(redis)?.();
}
