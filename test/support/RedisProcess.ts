import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Redis } from "ioredis";
import { ManagedProcess } from "./ManagedProcess";

export type RedisStopSignal = "SIGTERM" | "SIGINT" | "SIGKILL";

export interface RedisOptions {
  /** Default: a free port. */
  port?: number;
  /** Working dir (--dir) to create; default a temp dir of its own, removed by destroy(). */
  dir?: string;
  /** Default: redis.log in the working dir. */
  logPath?: string;
  /** Serve TLS only (on `port`), with this certificate; client certificates optional, checked against `ca`. */
  tls?: { cert: string; key: string; ca: string };
  /** Run as a Redis Cluster node (nodes.conf in the working dir), its cluster bus on `busPort`. */
  cluster?: { busPort: number; nodeTimeoutMs: number };
}

/**
 * A real redis-server child (binary from $REDIS_SERVER or PATH): no
 * persistence, bound to 127.0.0.1. restart() leaves its memory EMPTY.
 */
export class RedisProcess extends ManagedProcess<RedisStopSignal> {
  /** Working dir (--dir). */
  readonly dir: string;
  readonly bin: string;

  private constructor(bin: string, dir: string, port: number, opts: RedisOptions) {
    super(
      {
        name: "redis-server",
        port,
        ownDir: opts.dir === undefined ? dir : undefined,
        logPath: opts.logPath ?? path.join(dir, "redis.log"),
        file: bin,
        args: [
          ...(opts.tls
            ? ["--port", "0", "--tls-port", String(port), "--tls-cert-file", opts.tls.cert, "--tls-key-file", opts.tls.key,
               "--tls-ca-cert-file", opts.tls.ca, "--tls-auth-clients", "optional"]
            : ["--port", String(port)]),
          "--bind", "127.0.0.1",
          "--save", "",
          "--appendonly", "no",
          "--daemonize", "no",
          "--maxmemory-policy", "volatile-lru",
          "--dir", dir,
          ...(opts.cluster
            ? ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port",
               String(opts.cluster.busPort), "--cluster-node-timeout", String(opts.cluster.nodeTimeoutMs),
               "--enable-debug-command", "local"]
            : []),
        ], // prettier-ignore
        spawn: { cwd: dir },
        readyTimeoutMs: 15_000,
        readyPollMs: 50,
        stopTimeoutMs: 15_000,
      },
      "SIGTERM",
    );
    this.bin = bin;
    this.dir = dir;
    this.tlsCa = opts.tls?.ca;
  }

  private readonly tlsCa: string | undefined;

  static async start(opts: RedisOptions = {}): Promise<RedisProcess> {
    const bin = process.env.REDIS_SERVER ?? "redis-server";
    const own = opts.dir === undefined;
    const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-redis-"));
    if (!own) fs.mkdirSync(dir, { recursive: true });
    return ManagedProcess.startOnPort(
      opts.port,
      own ? dir : undefined,
      /address already in use/i,
      (port) => new RedisProcess(bin, dir, port, opts),
    );
  }

  /** redis://127.0.0.1:PORT (rediss:// when it serves TLS) */
  get url(): string {
    return `${this.tlsCa ? "rediss" : "redis"}://127.0.0.1:${this.port}`;
  }

  /** FLUSHALL on the running server. */
  async flushAll(): Promise<void> {
    const client = this.client();
    try {
      await client.connect();
      await client.flushall();
    } finally {
      client.disconnect();
    }
  }

  protected override beforeRelaunch(): void {
    fs.rmSync(path.join(this.dir, "dump.rdb"), { force: true });
  }

  /** A plain client of this one server (not cluster-aware); the caller disconnects it. */
  client(): Redis {
    const client = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      connectTimeout: 2_000,
      retryStrategy: () => null,
      ...(this.tlsCa ? { tls: { ca: fs.readFileSync(this.tlsCa) } } : {}),
    });
    client.on("error", () => undefined);
    return client;
  }

  /** Resolves once *our* redis-server (process `pid`) answers, not another one on the port. */
  protected override async probe(pid: number | undefined): Promise<void> {
    const client = this.client();
    try {
      await client.connect();
      const info = await client.info("server");
      if (!new RegExp(`^process_id:${pid}\\s*$`, "m").test(info)) {
        throw new Error(`port ${this.port} is served by another redis-server`);
      }
    } finally {
      client.disconnect();
    }
  }
}
