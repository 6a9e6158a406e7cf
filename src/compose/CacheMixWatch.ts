/**
 * Mixed cache configurations (README, "Mixed cache configurations and rolling
 * changes"): every lease read a replica makes (CacheEpoch with a cache,
 * NoCacheRegistration without) lists the other cache configurations live on
 * the same database. This keeps that list for the metric
 * (agentstate_cache_mixed) and the health detail, and logs once at warn when
 * this replica finds itself in a mix, with what differs (descriptions: host,
 * port, database number, prefix; never a secret), and once at info when the
 * mix is over. The replica keeps working: while the mix lasts no cache serves
 * reads (the epoch has no owner), and writes never wait for one another's
 * caches beyond a lease.
 */
import type { RedisClusterSeeds } from "../config/config";
import type { CacheLeaseState } from "../domain/ports";
import type { Logger } from "../log/Logger";

export interface CacheMixState {
  mixed: boolean;
  /** This replica's configuration ("IDENTITY redis HOST:PORT/DB prefix P", "none no cache"). */
  self: string;
  /** The other configurations live on the database, by description. */
  others: readonly string[];
}

export class CacheMixWatch {
  private self: string;
  private others: readonly string[] = [];

  constructor(
    private readonly description: string,
    private readonly log: Logger,
  ) {
    this.self = description;
  }

  /** A lease read by this replica, as `identity` (others excludes it). */
  observe(lease: CacheLeaseState, identity: string): void {
    this.self = `${identity} ${this.description}`;
    // By description: a cache emptied or replaced is a new identity with the same configuration.
    const others = [...new Set(lease.others.map((o) => o.slice(o.indexOf(" ") + 1)))].sort();
    if (others.join("\n") === this.others.join("\n")) return;
    const was = this.others.length > 0;
    this.others = Object.freeze([...others]);
    if (others.length > 0) {
      this.log.warn(
        "mixed cache configuration: other replicas of this database run with another cache or none; no cache serves reads until every replica runs with one configuration",
        { this: this.self, others },
      );
    } else if (was) {
      this.log.info("cache configuration no longer mixed", { this: this.self });
    }
  }

  state(): CacheMixState {
    return { mixed: this.others.length > 0, self: this.self, others: this.others };
  }
}

/**
 * "redis HOST:PORT/DB prefix P" for a cache URL ("redis cluster HOST:PORT,...
 * prefix P" for a Redis Cluster's seeds): where it is, never who logs in.
 */
export function describeCache(url: string, prefix: string, cluster?: RedisClusterSeeds): string {
  if (cluster) {
    const nodes = cluster.nodes.map((n) => `${n.host}:${n.port}`).join(",");
    return `redis cluster${cluster.tls ? " (tls)" : ""} ${nodes} prefix ${prefix}`;
  }
  try {
    const u = new URL(url);
    const db = u.pathname.replace(/^\//, "") || "0";
    return `redis${u.protocol === "rediss:" ? " (tls)" : ""} ${u.hostname || "localhost"}:${u.port || "6379"}/${db} prefix ${prefix}`;
  } catch {
    return `redis (unparseable URL) prefix ${prefix}`;
  }
}
