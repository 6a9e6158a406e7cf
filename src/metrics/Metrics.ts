/**
 * Prometheus metrics, served over HTTP at /metrics (loopback by default):
 * per-RPC latency histograms and status codes, cache hits/misses/bypasses,
 * lock waits, Postgres pool use, plus Node's default process metrics. The
 * same listener serves /health: the detail behind grpc.health.v1's status
 * (JSON; today the cache configuration mix).
 */
import { createServer, type Server, type ServerResponse } from "node:http";
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

/** What the cache-mix gauge and the health detail read (compose's CacheMixWatch). */
export interface CacheMixUse {
  state(): { mixed: boolean; self: string; others: readonly string[] };
}

/** What the lock-wait gauges read (the domain's LockService). */
export interface LockWaitUse {
  readonly waiting: number;
  readonly attemptsInFlight: number;
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
  readonly authDenied = new Counter({
    name: "agentstate_auth_denied_total",
    help: "Calls refused by the auth step, by method and code (UNAUTHENTICATED, PERMISSION_DENIED)",
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
  readonly dependencyUp = new Gauge({
    name: "agentstate_dependency_up",
    help: "1 while the dependency passes the health probe (postgres: a round trip; redlock: a quorum of masters connected), 0 once it has failed for AGENTSTATE_HEALTH_UNHEALTHY_AFTER_MS",
    labelNames: ["dependency"] as const,
    registers: [this.registry],
  });
  readonly lockBackendMix = new Gauge({
    name: "agentstate_lock_backend_mix",
    help: "1 while live replicas of this database keep their locks in another lock backend than this replica (only one backend serves; the others refuse Lock)",
    registers: [this.registry],
  });
  readonly subscribers = new Gauge({
    name: "agentstate_subscribers",
    help: "Open Subscribe streams",
    registers: [this.registry],
  });
  readonly changeReaders = new Gauge({
    name: "agentstate_change_readers",
    help: "Namespaces whose new events this replica reads once for all their live subscribers",
    registers: [this.registry],
  });

  private readonly details = new Map<string, () => unknown>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * agentstate_cache_mixed, and the `cache` section of the health detail
   * (/health): whether other replicas of this database run with another
   * cache configuration, and which (descriptions, never secrets).
   */
  watchCacheMix(mix: CacheMixUse): void {
    new Gauge({
      name: "agentstate_cache_mixed",
      help: "1 while other replicas of this database run with another cache configuration (another Redis or prefix, or none): no cache serves reads meanwhile",
      registers: [this.registry],
      collect() {
        this.set(mix.state().mixed ? 1 : 0);
      },
    });
    this.details.set("cache", () => mix.state());
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

  watchLockWaits(locks: LockWaitUse): void {
    new Gauge({
      name: "agentstate_lock_waiters",
      help: "Lock calls waiting on this replica's lock queues",
      registers: [this.registry],
      collect() {
        this.set(locks.waiting);
      },
    });
    new Gauge({
      name: "agentstate_lock_attempts_in_flight",
      help: "Attempts on the lock backend in flight (at most AGENTSTATE_LOCK_ATTEMPTS_IN_FLIGHT)",
      registers: [this.registry],
      collect() {
        this.set(locks.attemptsInFlight);
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

  /**
   * Serves /metrics (resolves with the bound "host:port"), and /healthz (200, no credentials: a liveness probe
   * that says the process answers, nothing more). With `authorize` (auth on),
   * /metrics answers 401 unless it accepts the request's Authorization header.
   */
  listen(
    host: string,
    port: number,
    authorize?: (authorization: string | undefined) => Promise<boolean>,
  ): Promise<{ server: Server; address: string }> {
    const server = createServer((req, res) => {
      if (req.url === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
        return;
      }
      if (req.url !== "/metrics" && req.url !== "/health") {
        res.writeHead(404).end();
        return;
      }
      // /health: the detail behind grpc.health.v1's one word (JSON, one section
      // per concern); it names dependencies, so it needs a token like /metrics.
      const answer = req.url === "/health" ? () => this.serveDetail(res) : () => this.serve(res);
      if (authorize) {
        authorize(req.headers.authorization).then(
          (ok) => (ok ? answer() : res.writeHead(401, { "www-authenticate": "Bearer" }).end()),
          () => res.writeHead(503).end(),
        );
        return;
      }
      answer();
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

  private serveDetail(res: ServerResponse): void {
    const body = Object.fromEntries([...this.details].map(([name, read]) => [name, read()]));
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  }

  private serve(res: ServerResponse): void {
    this.registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": this.registry.contentType }).end(body),
      () => res.writeHead(500).end(),
    );
  }
}
