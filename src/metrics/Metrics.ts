/**
 * Prometheus metrics, served over HTTP at /metrics (loopback by default):
 * per-RPC latency histograms and status codes, cache hits/misses/bypasses,
 * lock waits, Postgres pool use, plus Node's default process metrics.
 */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** What the pool gauges read (a pg Pool): metrics know no store class. */
export interface PoolUse {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

/** What the near-cache gauges read (the Redis adapter's NearCache). */
export interface NearCacheUse {
  size(): { entries: number; bytes: number };
  readonly stats: { readonly invalidations: number };
}

export class Metrics {
  readonly registry = new Registry();
  readonly rpcDuration = new Histogram({
    name: "agentstate_rpc_duration_seconds",
    help: "RPC latency by method and status code",
    labelNames: ["rpc", "code"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly rpcTotal = new Counter({
    name: "agentstate_rpc_total",
    help: "RPCs by method and status code",
    labelNames: ["rpc", "code"] as const,
    registers: [this.registry],
  });
  readonly cacheReads = new Counter({
    name: "agentstate_cache_reads_total",
    help: "Get outcomes at the cache: hit, miss, fill (a miss that filled the cache), bypass (write in flight), unleased (no lease on a mature epoch), error",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly cacheWrites = new Counter({
    name: "agentstate_cache_writes_total",
    help: "CompareAndSet/Delete outcomes at the cache: marked (key marked in flight), unmarked (could not mark: the write moved the cache epoch), install_error (the new state could not be installed after commit)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly nearCacheHits = new Counter({
    name: "agentstate_near_cache_hits_total",
    help: "Cache hits served from this replica's near cache (also counted in agentstate_cache_reads_total as hits)",
    registers: [this.registry],
  });
  readonly lockWait = new Histogram({
    name: "agentstate_lock_wait_seconds",
    help: "Time Lock calls spent acquiring, by outcome",
    labelNames: ["outcome"] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly kvWriteBatch = new Histogram({
    name: "agentstate_kv_write_batch_size",
    help: "CompareAndSet/Delete writes committed together in one Postgres transaction (group commit)",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly eventAppendBatch = new Histogram({
    name: "agentstate_event_append_batch_size",
    help: "AppendEvent calls committed together in one Postgres transaction (group commit)",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly cacheEvictionUnsafe = new Gauge({
    name: "agentstate_cache_eviction_unsafe",
    help: "1 while the cache is off because a Redis maxmemory-policy could evict write markers (allkeys-*)",
    registers: [this.registry],
  });
  readonly dependencyUp = new Gauge({
    name: "agentstate_dependency_up",
    help: "1 while the dependency passes the health probe (postgres: a round trip; redlock: a quorum of masters connected), 0 once it has failed for AGENTSTATE_HEALTH_UNHEALTHY_AFTER_MS",
    labelNames: ["dependency"] as const,
    registers: [this.registry],
  });
  readonly subscribers = new Gauge({
    name: "agentstate_subscribers",
    help: "Open Subscribe streams",
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  watchPool(pool: PoolUse): void {
    new Gauge({
      name: "agentstate_pg_pool_connections",
      help: "Postgres pool connections by state",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        this.set({ state: "total" }, pool.totalCount);
        this.set({ state: "idle" }, pool.idleCount);
        this.set({ state: "waiting" }, pool.waitingCount);
      },
    });
  }

  /**
   * Records a finished RPC in rpcDuration and rpcTotal. The labelled children
   * are looked up once per (rpc, code), not per call.
   */
  rpcObserver(): (rpc: string, code: string, seconds: number) => void {
    const children = new Map<string, { duration: { observe(v: number): void }; total: { inc(): void } }>();
    return (rpc, code, seconds) => {
      const id = `${rpc} ${code}`;
      let c = children.get(id);
      if (c === undefined) {
        c = { duration: this.rpcDuration.labels({ rpc, code }), total: this.rpcTotal.labels({ rpc, code }) };
        children.set(id, c);
      }
      c.duration.observe(seconds);
      c.total.inc();
    };
  }

  /** Exports every cache outcome from the start (at 0), so a dashboard sees each series before it first moves. */
  startCacheOutcomes(reads: readonly string[], writes: readonly string[]): void {
    for (const outcome of reads) this.cacheReads.inc({ outcome }, 0);
    for (const outcome of writes) this.cacheWrites.inc({ outcome }, 0);
  }

  watchNearCache(near: NearCacheUse): void {
    const sized = (name: string, help: string, read: (size: { entries: number; bytes: number }) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read(near.size()));
        },
      });
    sized("agentstate_near_cache_entries", "Entries held by this replica's near cache", (s) => s.entries);
    sized(
      "agentstate_near_cache_bytes",
      "Estimated bytes held by this replica's near cache (bounded by AGENTSTATE_NEAR_CACHE_BYTES)",
      (s) => s.bytes,
    );
    new Counter({
      name: "agentstate_near_cache_invalidations_total",
      help: "Keys named by Redis invalidation messages to this replica",
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(near.stats.invalidations);
      },
    });
  }

  /** Serves /metrics; resolves with the bound "host:port". */
  listen(host: string, port: number): Promise<{ server: Server; address: string }> {
    const server = createServer((req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": this.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        const a = server.address();
        const p = typeof a === "object" && a ? a.port : port;
        resolve({ server, address: `${host.includes(":") ? `[${host}]` : host}:${p}` });
      });
    });
  }
}
