import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Redis } from "ioredis";
import { EarlyExitError, exitCleanups, KEEP_TMP, sleep, type Exit } from "./childProcesses";
import { freePort } from "./freePort";

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

  private child: ChildProcess | undefined;
  private exited: Promise<Exit> = Promise.resolve({ code: null, signal: null });
  private alive = false;
  private destroyed = false;
  private readonly exitCleanup: () => void;

  private constructor(bin: string, dir: string, port: number) {
    this.bin = bin;
    this.dir = dir;
    this.port = port;
    this.logPath = path.join(dir, "redis.log");
    this.exitCleanup = () => {
      this.killSync();
      if (!KEEP_TMP) fs.rmSync(this.dir, { recursive: true, force: true });
    };
    exitCleanups.add(this.exitCleanup);
  }

  /** Start redis-server (binary from $REDIS_SERVER or PATH). Picks a free port unless given. */
  static async start(opts: { port?: number } = {}): Promise<RedisProcess> {
    const bin = process.env.REDIS_SERVER ?? "redis-server";
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-redis-"));
    const attempts = opts.port === undefined ? 5 : 1;
    let lastErr: unknown;
    for (let i = 0; i < attempts; i++) {
      const port = opts.port ?? (await freePort());
      const redis = new RedisProcess(bin, dir, port);
      try {
        await redis.launch();
        return redis;
      } catch (e) {
        lastErr = e;
        exitCleanups.delete(redis.exitCleanup);
        redis.killSync();
        if (!(e instanceof EarlyExitError) || !/address already in use/i.test(e.message)) break;
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
    throw lastErr;
  }

  /** redis://127.0.0.1:PORT */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.alive;
  }

  get pid(): number | undefined {
    return this.alive ? this.child?.pid : undefined;
  }

  logTail(lines = 40): string {
    try {
      return fs.readFileSync(this.logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
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
    const child = this.child;
    if (!child || !this.alive) return;
    child.ref();
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stop and start a new redis-server on the same port: memory is EMPTY afterwards. */
  async restart(signal: RedisStopSignal = "SIGTERM"): Promise<void> {
    if (this.destroyed) throw new Error("RedisProcess: restart() after destroy()");
    await this.stop(signal);
    fs.rmSync(path.join(this.dir, "dump.rdb"), { force: true });
    // The port may linger (TIME_WAIT / slow release): retry the bind briefly.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await this.launch();
        return;
      } catch (e) {
        if (!(e instanceof EarlyExitError) || Date.now() > deadline) throw e;
        await sleep(200);
      }
    }
  }

  /** Stop and remove the temp dir. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.stop();
    exitCleanups.delete(this.exitCleanup);
    fs.rmSync(this.dir, { recursive: true, force: true });
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

  private async launch(): Promise<void> {
    const args = [
      "--port", String(this.port),
      "--bind", "127.0.0.1",
      "--save", "",
      "--appendonly", "no",
      "--daemonize", "no",
      "--maxmemory-policy", "volatile-lru",
      "--dir", this.dir,
    ]; // prettier-ignore
    fs.appendFileSync(this.logPath, `\n=== ${new Date().toISOString()} starting redis on port ${this.port}\n`);
    const logFd = fs.openSync(this.logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(this.bin, args, { cwd: this.dir, stdio: ["ignore", logFd, logFd] });
    } finally {
      fs.closeSync(logFd);
    }
    child.unref(); // never keep mocha alive; the exit hook kills it if forgotten
    this.child = child;
    this.alive = true;
    let spawnError: Error | undefined;
    this.exited = new Promise<Exit>((resolve) => {
      child.once("error", (err) => {
        spawnError = err;
        this.alive = false;
        resolve({ code: null, signal: null });
      });
      child.once("exit", (code, signal) => {
        this.alive = false;
        resolve({ code, signal });
      });
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastErr = "";
    while (Date.now() < deadline) {
      if (!this.alive) {
        const { code, signal } = await this.exited;
        throw new EarlyExitError(
          `redis-server exited during startup (code=${code} signal=${signal}${spawnError ? ` error=${spawnError.message}` : ""}); log tail (${this.logPath}):\n${this.logTail()}`,
        );
      }
      const client = this.client();
      try {
        await client.connect();
        // Make sure it is *our* redis-server answering, not another one on the port.
        const info = await client.info("server");
        if (new RegExp(`^process_id:${child.pid}\\s*$`, "m").test(info)) return;
        lastErr = `port ${this.port} is served by another redis-server`;
      } catch (e) {
        lastErr = (e as Error).message;
      } finally {
        client.disconnect();
      }
      await sleep(50);
    }
    this.killSync();
    await this.exited;
    throw new Error(
      `redis-server on port ${this.port} not ready after ${READY_TIMEOUT_MS} ms (last error: ${lastErr}); log tail:\n${this.logTail()}`,
    );
  }

  private killSync(): void {
    if (this.alive && this.child) this.child.kill("SIGKILL");
  }
}
