/**
 * The system under test for fault runs, all real processes:
 *  - one Postgres of its own (the run-wide TestEnv Postgres is never
 *    restarted), one database in it;
 *  - one Redis cache, and three independent Redis masters for Redlock;
 *  - one toxiproxy-server with a proxy per replica per store link, so a
 *    network fault can hit one replica's link to Postgres (or Redis) while
 *    the other replica's link stays healthy;
 *  - two (or more) agentstate server replicas reaching every store only
 *    through their proxies, each on a fixed port so that clients reconnect
 *    by themselves after the replica is killed and started again.
 * The checks read Postgres directly (`directDbUrl`), never through a proxy.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { credentials, type ChannelOptions } from "@grpc/grpc-js";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { EventServiceClient } from "../../clients/typescript/src/gen/agentstate/v1/event";
import { freePort } from "../support/freePort";
import { PostgresProcess } from "../support/PostgresProcess";
import { RedisProcess } from "../support/RedisProcess";
import { ServerProcess } from "../support/ServerProcess";
import type { Rng } from "./Rng";
import { ToxiproxyServer } from "./ToxiproxyServer";

export interface FaultClusterOptions {
  replicas: number;
  /** Locks over three Redlock masters (else the cache Redis is the one Redlock master). */
  redlock: boolean;
  toxiproxyBin: string;
  /** Extra server environment. */
  env?: Record<string, string>;
}

/** The names of one replica's proxies. */
export interface ReplicaLinks {
  pg: string;
  cache: string;
  masters: string[];
}

/** Server output lines kept per incarnation. */
const KEEP_LINES = 5000;

export class ReplicaSlot {
  server: ServerProcess | undefined;
  /** Set while the harness has this replica down (killed, or paused with SIGSTOP). */
  down = false;
  /** Output of every incarnation that has exited, oldest first. */
  readonly pastOutput: string[][] = [];
  /** Exits not caused by the harness (a crash). */
  readonly unexpectedExits: string[] = [];
  readonly client: AgentstateClient;
  readonly events: EventServiceClient;
  private expectingExit = false;
  private starting: Promise<void> | undefined;
  private closed = false;

  constructor(
    readonly index: number,
    readonly port: number,
    readonly env: Record<string, string>,
    readonly links: ReplicaLinks,
  ) {
    const channelOptions: ChannelOptions = {
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.min_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
      // Own channels: a stuck connection to one replica never holds up calls to another.
      "grpc.use_local_subchannel_pool": 1,
    };
    const address = `127.0.0.1:${port}`;
    this.client = new AgentstateClient(address, { channelOptions });
    this.events = new EventServiceClient(address, credentials.createInsecure(), {
      ...channelOptions,
      "grpc.max_receive_message_length": -1,
    });
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /**
   * Starts the replica unless it is running (or being started). Concurrent
   * callers (the nemesis, the supervisor) share one start.
   */
  ensureStarted(): Promise<void> {
    if (this.server?.running && !this.down) return Promise.resolve();
    this.starting ??= this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    // The port may linger briefly after a kill: retry.
    let lastErr: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      if (this.closed) return;
      try {
        const server = await ServerProcess.start(this.env);
        this.server = server;
        this.expectingExit = false;
        void server.exited.then((exit) => {
          this.scanLogs();
          this.pastOutput.push(server.lines.slice(-KEEP_LINES));
          if (this.expectingExit || this.server !== server || this.closed) return;
          // A crash: record it, and restart the replica as a supervisor (systemd, Kubernetes) would.
          this.down = true;
          this.unexpectedExits.push(
            `replica ${this.index} exited by itself (code=${exit.code} signal=${exit.signal}):\n${server.tail(40)}`,
          );
          setTimeout(() => void this.ensureStarted().catch(() => undefined), 200);
        });
        this.down = false;
        return;
      } catch (e) {
        lastErr = e;
        await sleep(250);
      }
    }
    throw lastErr;
  }

  /** Last cache-read counters scraped from each incarnation's /metrics, by outcome. */
  readonly cacheReadsByIncarnation: Record<string, number>[] = [];

  /** Scrapes agentstate_cache_reads_total (and near-cache hits) from the current incarnation (best effort). */
  async scrapeCacheReads(): Promise<void> {
    const server = this.server;
    if (!server?.running || this.down) return;
    const listening = server.logs().find((l) => l.msg === "listening");
    const address = typeof listening?.metrics === "string" ? listening.metrics : undefined;
    if (!address) return;
    try {
      const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(2000) });
      const text = await res.text();
      const counts: Record<string, number> = {};
      for (const m of text.matchAll(/^agentstate_cache_reads_total\{outcome="([a-z_]+)"\} (\d+)/gm)) {
        counts[m[1]!] = Number(m[2]);
      }
      // Hits served from the replica's near cache (a subset of "hit").
      const near = /^agentstate_near_cache_hits_total (\d+)/m.exec(text);
      if (near) counts["near_hits"] = Number(near[1]);
      let slot = this.metricsOf.get(server);
      if (slot === undefined) {
        slot = this.cacheReadsByIncarnation.push({}) - 1;
        this.metricsOf.set(server, slot);
      }
      this.cacheReadsByIncarnation[slot] = counts;
    } catch {
      // paused, stopping, or gone: the last scrape stands
    }
  }

  private readonly metricsOf = new Map<ServerProcess, number>();

  /** Keeps only the last lines of the current server's output (one line per RPC adds up). */
  trimLogs(): void {
    this.scanLogs();
    const lines = this.server?.lines;
    if (lines && lines.length > 2 * KEEP_LINES) {
      const cut = lines.length - KEEP_LINES;
      lines.splice(0, cut);
      this.scanned = Math.max(0, this.scanned - cut);
    }
  }

  /** The `error` of every "internal error" line any incarnation logged (the cause behind an INTERNAL reply). */
  readonly internalErrors: string[] = [];
  private scanned = 0;
  private scannedServer: ServerProcess | undefined;

  /** Collects new "internal error" lines of the current incarnation (called before its output is trimmed or lost). */
  scanLogs(): void {
    const server = this.server;
    if (!server) return;
    if (server !== this.scannedServer) {
      this.scannedServer = server;
      this.scanned = 0;
    }
    const lines = server.lines;
    for (; this.scanned < lines.length; this.scanned++) {
      const l = lines[this.scanned]!;
      if (!l.includes('"internal error"')) continue;
      try {
        const o = JSON.parse(l) as { msg?: string; error?: string; rpc?: string };
        if (o.msg === "internal error") this.internalErrors.push(`${o.rpc ?? "?"}: ${o.error ?? ""}`);
      } catch {
        // not JSON
      }
    }
  }

  /** kill -9. */
  async kill(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.down = true;
    this.expectingExit = true;
    await s.kill("SIGKILL");
  }

  /** SIGSTOP / SIGCONT: a process pause (GC, VM migration, swapped out). */
  pause(): void {
    const pid = this.server?.running ? this.server.pid : undefined;
    if (pid !== undefined) process.kill(pid, "SIGSTOP");
  }

  resume(): void {
    const pid = this.server?.running ? this.server.pid : undefined;
    if (pid !== undefined) process.kill(pid, "SIGCONT");
  }

  /** Graceful stop at the end of a run (and no more restarts). */
  async stop(): Promise<void> {
    this.closed = true;
    await this.starting?.catch(() => undefined);
    this.expectingExit = true;
    this.resume();
    await this.server?.stop();
  }

  close(): void {
    this.client.close();
    this.events.close();
  }
}

export class FaultCluster {
  readonly replicas: ReplicaSlot[] = [];
  private readonly trimTimer = setInterval(() => {
    for (const r of this.replicas) {
      r.trimLogs();
      void r.scrapeCacheReads();
    }
  }, 3000).unref();

  private constructor(
    readonly pg: PostgresProcess,
    readonly database: string,
    readonly cache: RedisProcess,
    readonly masters: RedisProcess[],
    readonly toxi: ToxiproxyServer,
  ) {}

  /** postgres:// URL of the database, straight to Postgres (not through a proxy). */
  get directDbUrl(): string {
    return this.pg.url(this.database);
  }

  static async start(opts: FaultClusterOptions): Promise<FaultCluster> {
    const started: { stop(): Promise<void> }[] = [];
    try {
      const [pg, cache, toxi] = await Promise.all([
        PostgresProcess.start(),
        RedisProcess.start(),
        ToxiproxyServer.start(opts.toxiproxyBin),
      ]);
      started.push({ stop: () => pg.destroy() }, { stop: () => cache.destroy() }, { stop: () => toxi.stop() });
      const masters = opts.redlock
        ? await Promise.all([RedisProcess.start(), RedisProcess.start(), RedisProcess.start()])
        : [];
      for (const m of masters) started.push({ stop: () => m.destroy() });
      const database = `faults_${randomBytes(4).toString("hex")}`;
      await pg.createDatabase(database);
      const cluster = new FaultCluster(pg, database, cache, masters, toxi);
      started.push({
        stop: async () => {
          for (const r of cluster.replicas) r.close();
          await Promise.allSettled(cluster.replicas.map((r) => r.stop()));
        },
      });
      const prefix = `f_${randomBytes(3).toString("hex")}`;
      for (let i = 0; i < opts.replicas; i++) {
        const links: ReplicaLinks = { pg: `r${i}-pg`, cache: `r${i}-cache`, masters: [] };
        const pgProxy = await toxi.createProxy(links.pg, `127.0.0.1:${pg.port}`);
        const cacheProxy = await toxi.createProxy(links.cache, `127.0.0.1:${cache.port}`);
        const masterUrls: string[] = [];
        for (const [j, m] of masters.entries()) {
          const name = `r${i}-m${j}`;
          const p = await toxi.createProxy(name, `127.0.0.1:${m.port}`);
          links.masters.push(name);
          masterUrls.push(`redis://127.0.0.1:${p.listenPort}`);
        }
        const port = await freePort();
        const env: Record<string, string> = {
          DATABASE_URL: `postgres://postgres@127.0.0.1:${pgProxy.listenPort}/${database}`,
          REDIS_URL: `redis://127.0.0.1:${cacheProxy.listenPort}`,
          ...(masterUrls.length > 0 ? { REDLOCK_URLS: masterUrls.join(",") } : {}),
          AGENTSTATE_REDIS_PREFIX: prefix,
          AGENTSTATE_PORT: String(port),
          AGENTSTATE_METRICS_PORT: "0",
          // Short timings so epochs, markers and leases turn over many times in a run.
          AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
          AGENTSTATE_CACHE_MARKER_TTL_MS: "2500",
          AGENTSTATE_CACHE_LEASE_MS: "600",
          AGENTSTATE_REDIS_TIMEOUT_MS: "200",
          AGENTSTATE_SUBSCRIBE_POLL_MS: "500",
          AGENTSTATE_SHUTDOWN_GRACE_MS: "2000",
          PG_POOL_MAX: "10",
          // "info" is needed: the harness waits for the "listening" line (one line per RPC follows; see trimLogs).
          LOG_LEVEL: "info",
          ...opts.env,
        };
        cluster.replicas.push(new ReplicaSlot(i, port, env, links));
      }
      // The first replica migrates the database alone; the others start once it has.
      await cluster.replicas[0]!.ensureStarted();
      await Promise.all(cluster.replicas.slice(1).map((r) => r.ensureStarted()));
      return cluster;
    } catch (e) {
      for (const s of started.reverse()) await s.stop().catch(() => undefined);
      throw e;
    }
  }

  /** A random replica the harness has not taken down (like a health-checking load balancer). */
  pick(rng: Rng): ReplicaSlot | undefined {
    const up = this.replicas.filter((r) => !r.down);
    return up.length > 0 ? rng.pick(up) : undefined;
  }

  /** Every proxy enabled and free of toxics, every process running, no replica paused. */
  async healAll(): Promise<void> {
    await this.toxi.reset();
    for (const r of this.replicas) r.resume();
    if (!this.pg.running) await this.pg.restart();
    if (!this.cache.running) await this.cache.restart();
    for (const m of this.masters) if (!m.running) await m.restart();
    for (const r of this.replicas) await r.ensureStarted();
  }

  /**
   * Stops the replicas gracefully (no more restarts) and returns their cache
   * read outcomes, summed over every incarnation (scraped from /metrics every
   * few seconds, so a killed incarnation's last seconds are missing).
   */
  async stopReplicas(): Promise<Record<string, number>> {
    await Promise.all(this.replicas.map((r) => r.scrapeCacheReads()));
    for (const r of this.replicas) r.close();
    await Promise.allSettled(this.replicas.map((r) => r.stop()));
    for (const r of this.replicas) r.scanLogs();
    const sum: Record<string, number> = {};
    for (const r of this.replicas) {
      for (const counts of r.cacheReadsByIncarnation) {
        for (const [k, v] of Object.entries(counts)) sum[k] = (sum[k] ?? 0) + v;
      }
    }
    return sum;
  }

  /** Stops everything (servers gracefully first) and removes temp dirs. */
  async stop(): Promise<void> {
    clearInterval(this.trimTimer);
    for (const r of this.replicas) r.close();
    await this.toxi.reset().catch(() => undefined);
    await Promise.allSettled(this.replicas.map((r) => r.stop()));
    await Promise.allSettled([
      this.toxi.stop(),
      this.pg.destroy(),
      this.cache.destroy(),
      ...this.masters.map((m) => m.destroy()),
    ]);
  }
}
