/**
 * The one way agentstate connects to Redis: fail fast instead of queueing (a
 * request never waits on a Redis that is down), no automatic resends (a
 * command is never replayed on a different connection or server), a
 * per-command timeout, and quick reconnects. Errors are logged at debug level
 * without the URL (it may carry a password).
 */
import Redis from "ioredis";
import type { Logger } from "../../log/Logger";

export function createRedisClient(url: string, commandTimeoutMs: number, log: Logger): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(1000, commandTimeoutMs * 4),
    retryStrategy: (times) => Math.min(50 * times, 1000),
    lazyConnect: true,
  });
  redis.on("error", (err: Error) => log.debug("redis error", { error: err.message }));
  return redis;
}
