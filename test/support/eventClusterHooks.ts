import { EventClient } from "./eventClient";
import { startCluster, type Cluster, type ClusterOptions } from "./startCluster";

/** What eventClusterHooks fills in before the describe's tests run. */
export interface EventCluster {
  cluster: Cluster;
  /** clients[i] talks to cluster.servers[i]. */
  clients: EventClient[];
  /** clients[0]. */
  client: EventClient;
}

/**
 * Registers hooks in the calling describe: before its tests, a cluster
 * (startCluster with `opts`) and one EventClient per replica; after them, the
 * clients closed and the cluster stopped. Returns the object the hooks fill.
 */
export function eventClusterHooks(opts: ClusterOptions): EventCluster {
  const ec = { clients: [] as EventClient[] } as EventCluster;
  before(async () => {
    ec.cluster = await startCluster(opts);
    ec.clients = ec.cluster.servers.map((s) => new EventClient(s.address));
    ec.client = ec.clients[0]!;
  });
  after(async () => {
    for (const c of ec.clients) c.close();
    await ec.cluster?.stop();
  });
  return ec;
}
