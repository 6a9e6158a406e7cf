import { findToxiproxy } from "../faults/goTools";
import { ToxiproxyServer } from "../faults/ToxiproxyServer";
import { startCluster, type Cluster, type Replica } from "./startCluster";
import { getTestEnv } from "./TestEnv";

export interface ProxiedCacheOptions {
  /** Name prefix of the fresh database. */
  name: string;
  /** Name of the toxiproxy proxy between `proxied` and Redis. */
  proxy: string;
  /** Environment of both replicas. */
  env: Record<string, string>;
  /** Extra environment of the direct replica. */
  direct?: Record<string, string>;
  /** AGENTSTATE_REDIS_TIMEOUT_MS of the proxied replica: how long its Redis commands may wait on a slowed link. */
  proxiedRedisTimeoutMs: number;
  /** The cache Redis (on 127.0.0.1) if not the run's: a test that reconfigures it brings its own. */
  redisPort?: number;
}

export interface ProxiedCacheCluster {
  toxi: ToxiproxyServer;
  cluster: Cluster;
  /** Reaches the cache Redis directly. */
  direct: Replica;
  /** Reaches it through the proxy, so a test can slow or cut its link alone. */
  proxied: Replica;
  /** Stops the replicas, then toxiproxy. */
  stop(): Promise<void>;
}

/**
 * Two replicas sharing one fresh database and the run's Redis cache, one of
 * them through a toxiproxy-server (installed, pinned, on a fresh machine):
 * the direct replica starts first.
 */
export async function startProxiedCacheCluster(opts: ProxiedCacheOptions): Promise<ProxiedCacheCluster> {
  const env = await getTestEnv();
  const toxi = await ToxiproxyServer.start(await findToxiproxy());
  let cluster: Cluster | undefined;
  const stop = async () => {
    await cluster?.stop();
    await toxi.stop();
  };
  try {
    const port = opts.redisPort ?? env.redis.port;
    const proxy = await toxi.createProxy(opts.proxy, `127.0.0.1:${port}`);
    cluster = await startCluster({
      name: opts.name,
      redis: true,
      replicas: 0,
      env: { ...(opts.redisPort === undefined ? {} : { REDIS_URL: `redis://127.0.0.1:${port}` }), ...opts.env },
    });
    const direct = await cluster.addReplica(opts.direct);
    const proxied = await cluster.addReplica({
      REDIS_URL: `redis://127.0.0.1:${proxy.listenPort}`,
      AGENTSTATE_REDIS_TIMEOUT_MS: String(opts.proxiedRedisTimeoutMs),
    });
    return { toxi, cluster, direct, proxied, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
