import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Redis } from "ioredis";
import { StoreProcess } from "./StoreProcess";

export type RedisStopSignal = "SIGTERM" | "SIGINT" | "SIGKILL";

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 15_000;

/** A real redis-server child: no persistence, bound to 127.0.0.1, own temp dir. */
export class RedisProcess {
  readonly port: number;
  /** Working dir (--dir) and log location. */
  readonly dir: string;
  readonly logPath: string;
  readonly bin: string;

  private readonly proc: StoreProcess;

  private constructor(bin: string, dir: string, port: number) {
    this.bin = bin;
    this.dir = dir;
    this.port = port;
    this.logPath = path.join(dir, "redis.log");
    this.proc = new StoreProcess({
      name: "redis-server",
      port,
      dir,
      logPath: this.logPath,
      file: bin,
      args: [
        "--port", String(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--maxmemory-policy", "volatile-lru",
        "--dir", dir,
      ], // prettier-ignore
      spawn: { cwd: dir },
      probe: (pid) => this.probe(pid),
      readyTimeoutMs: READY_TIMEOUT_MS,
      readyPollMs: 50,
      stopTimeoutMs: STOP_TIMEOUT_MS,
    });
  }

  /** Start redis-server (binary from $REDIS_SERVER or PATH). Picks a free port unless given. */
  static async start(opts: { port?: number } = {}): Promise<RedisProcess> {
    const bin = process.env.REDIS_SERVER ?? "redis-server";
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-redis-"));
    return StoreProcess.startOnPort(opts.port, dir, /address already in use/i, (port) => {
      const redis = new RedisProcess(bin, dir, port);
      return [redis, redis.proc];
    });
  }

  /** redis://127.0.0.1:PORT */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc.running;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  logTail(lines = 40): string {
    return this.proc.logTail(lines);
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

  /** Stop (default SIGTERM) and wait for exit; escalates to SIGKILL after 15 s. */
  async stop(signal: RedisStopSignal = "SIGTERM"): Promise<void> {
    await this.proc.stop(signal);
  }

  /** Stop and start a new redis-server on the same port: memory is EMPTY afterwards. */
  async restart(signal: RedisStopSignal = "SIGTERM"): Promise<void> {
    if (this.proc.destroyed) throw new Error("RedisProcess: restart() after destroy()");
    await this.proc.stop(signal);
    fs.rmSync(path.join(this.dir, "dump.rdb"), { force: true });
    // The port may linger (TIME_WAIT / slow release): relaunch() retries the bind briefly.
    await this.proc.relaunch();
  }

  /** Stop and remove the temp dir. */
  async destroy(): Promise<void> {
    await this.proc.destroy("SIGTERM");
  }

  // ---------------------------------------------------------------- internals

  private client(): Redis {
    const client = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      connectTimeout: 2_000,
      retryStrategy: () => null,
    });
    client.on("error", () => undefined);
    return client;
  }

  /** Resolves once *our* redis-server (process `pid`) answers, not another one on the port. */
  private async probe(pid: number | undefined): Promise<void> {
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
