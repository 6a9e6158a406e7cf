import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import * as fs from "node:fs";
import { EarlyExitError, exitCleanups, KEEP_TMP, sleep, type Exit } from "./childProcesses";
import { freePort } from "./freePort";

export interface StoreProcessOptions {
  /** The server's name in its log and in errors ("postgres", "redis-server"). */
  name: string;
  port: number;
  /** The server's own temp dir: removed by destroy(), and at exit unless KEEP_TMP. */
  dir: string;
  /** Where the output of every (re)start is appended. */
  logPath: string;
  /** The server's executable, arguments and spawn options (its stdio is the log). */
  file: string;
  args: string[];
  spawn: Pick<SpawnOptions, "cwd" | "env" | "uid" | "gid">;
  /**
   * Resolves once the server answering on `port` is this child (`pid`, its
   * process id: not another server that holds the port); otherwise throws why
   * not, and is asked again.
   */
  probe: (pid: number | undefined) => Promise<void>;
  readyTimeoutMs: number;
  readyPollMs: number;
  /** After this long, stop() escalates to SIGKILL. */
  stopTimeoutMs: number;
  /**
   * The child's own children (Postgres backends) are SIGKILLed with it, and
   * stop() waits for them to be gone.
   */
  killTree?: boolean;
}

/**
 * StoreProcess: a store server the tests run as a child process (for
 * PostgresProcess and RedisProcess), one at a time on a fixed port in a temp
 * dir of its own: spawned with its output appended to a log in that dir,
 * polled until it answers, stopped with a signal that escalates to SIGKILL,
 * relaunched on the same port. If the test process exits first, the exit
 * clean-ups (childProcesses.ts) SIGKILL it and remove its dir.
 */
export class StoreProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<Exit> = Promise.resolve({ code: null, signal: null });
  private alive = false;
  private _destroyed = false;
  private readonly exitCleanup: () => void;

  constructor(private readonly opts: StoreProcessOptions) {
    this.exitCleanup = () => {
      this.killSync();
      if (!KEEP_TMP) fs.rmSync(opts.dir, { recursive: true, force: true, maxRetries: 3 });
    };
    exitCleanups.add(this.exitCleanup);
  }

  /**
   * Launches the server `make` sets up for a port: on `port`, or on a free one.
   * A picked port may be taken by someone else before the server binds it: then
   * (the child exited with a log that matches `portTaken`) tries another, up to
   * five ports. Once it gives up, removes `dir` and throws.
   */
  static async startOnPort<T>(
    port: number | undefined,
    dir: string,
    portTaken: RegExp,
    make: (port: number) => [T, StoreProcess],
  ): Promise<T> {
    const attempts = port === undefined ? 5 : 1;
    let lastErr: unknown;
    for (let i = 0; i < attempts; i++) {
      const [owner, proc] = make(port ?? (await freePort()));
      try {
        await proc.launch();
        return owner;
      } catch (e) {
        lastErr = e;
        exitCleanups.delete(proc.exitCleanup);
        proc.killSync();
        if (!(e instanceof EarlyExitError) || !portTaken.test(e.message)) break;
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
    throw lastErr;
  }

  get running(): boolean {
    return this.alive;
  }

  get pid(): number | undefined {
    return this.alive ? this.child?.pid : undefined;
  }

  get destroyed(): boolean {
    return this._destroyed;
  }

  /** Last lines of the log. */
  logTail(lines = 40): string {
    try {
      return fs.readFileSync(this.opts.logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** Spawns the server and waits until it answers. */
  async launch(): Promise<void> {
    const { name, port, logPath } = this.opts;
    fs.appendFileSync(logPath, `\n=== ${new Date().toISOString()} starting ${name} on port ${port}\n`);
    const logFd = fs.openSync(logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(this.opts.file, this.opts.args, { ...this.opts.spawn, stdio: ["ignore", logFd, logFd] });
    } finally {
      fs.closeSync(logFd);
    }
    // Do not keep mocha's event loop alive; the exit clean-up kills it if forgotten.
    child.unref();
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

    const deadline = Date.now() + this.opts.readyTimeoutMs;
    let lastErr = "";
    while (Date.now() < deadline) {
      if (!this.alive) {
        const { code, signal } = await this.exited;
        throw new EarlyExitError(
          `${name} exited during startup (code=${code} signal=${signal}${spawnError ? ` error=${spawnError.message}` : ""}); log tail (${logPath}):\n${this.logTail()}`,
        );
      }
      try {
        await this.opts.probe(child.pid);
        return;
      } catch (e) {
        lastErr = (e as Error).message;
      }
      await sleep(this.opts.readyPollMs);
    }
    this.killSync();
    await this.exited;
    throw new Error(
      `${name} on port ${port} not ready after ${this.opts.readyTimeoutMs} ms (last error: ${lastErr}); log tail (${logPath}):\n${this.logTail()}`,
    );
  }

  /** Sends `signal` and waits for the exit; SIGKILL after stopTimeoutMs. */
  async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.alive || child.pid === undefined) return;
    child.ref();
    const pid = child.pid;
    const family = this.opts.killTree ? childPids(pid) : [];
    child.kill(signal);
    if (signal === "SIGKILL") for (const c of family) killQuietly(c, "SIGKILL");
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      if (this.opts.killTree) for (const c of childPids(pid).concat(family)) killQuietly(c, "SIGKILL");
    }, this.opts.stopTimeoutMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
    // Orphaned Postgres backends hold the shared memory segment; wait until they
    // are gone so a relaunch does not fail with "pre-existing shared memory block".
    const deadline = Date.now() + 10_000;
    while (family.some(pidAlive) && Date.now() < deadline) await sleep(20);
  }

  /** Launches again after stop(); retries for 10 s while the child exits at once (port, lock file or shm lingering). */
  async relaunch(): Promise<void> {
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

  /** Stops it with `signal` and removes its dir. */
  async destroy(signal: NodeJS.Signals): Promise<void> {
    if (this._destroyed) return;
    this._destroyed = true;
    await this.stop(signal);
    exitCleanups.delete(this.exitCleanup);
    fs.rmSync(this.opts.dir, { recursive: true, force: true, maxRetries: 3 });
  }

  private killSync(): void {
    const child = this.child;
    if (!this.alive || child?.pid === undefined) return;
    const family = this.opts.killTree ? childPids(child.pid) : [];
    child.kill("SIGKILL");
    for (const c of family) killQuietly(c, "SIGKILL");
  }
}

/** Pids whose parent is `ppid` (scans /proc; Linux only). */
function childPids(ppid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      // "pid (comm) state ppid ..." - comm may contain spaces/parens.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[1]) === ppid) out.push(Number(e));
    } catch {
      // process vanished
    }
  }
  return out;
}

/** True while `pid` exists and is not a zombie (a zombie holds no shared memory). */
function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
