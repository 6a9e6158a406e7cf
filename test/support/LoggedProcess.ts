import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import * as fs from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { EarlyExitError, exitCleanups, KEEP_TMP, type Exit } from "./childProcesses";
import { childPids, killQuietly, pidAlive } from "./procfs";

export interface LoggedProcessOptions {
  /** The server's name in its log and in errors ("postgres", "redis-server"). */
  name: string;
  /** The port it serves (in messages). */
  port: number;
  /**
   * The server's own temp dir: removed by destroy(), and at exit unless
   * KEEP_TMP. Unset when its dirs belong to the caller (a bench run directory).
   */
  ownDir?: string;
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
 * LoggedProcess: a server run as a child process with its output appended to
 * a log file (Postgres, Redis, etcd, the agentstate server of a benchmark):
 * spawned, polled until it answers, stopped with a signal that escalates to
 * SIGKILL, relaunched on the same port. If the test or bench process exits
 * first, the exit clean-ups (childProcesses.ts) SIGKILL it and remove its own
 * dir. ManagedProcess gives each kind of server its controls on top.
 */
export class LoggedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<Exit> = Promise.resolve({ code: null, signal: null });
  private alive = false;
  private _destroyed = false;
  /** Where this launch's output starts in the log. */
  private logStart = 0;
  private readonly exitCleanup: () => void;

  constructor(private readonly opts: LoggedProcessOptions) {
    this.exitCleanup = () => {
      this.killSync();
      if (!KEEP_TMP) removeDir(opts.ownDir);
    };
    exitCleanups.add(this.exitCleanup);
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

  /** The log written since the last launch. */
  logSinceLaunch(): string {
    try {
      const fd = fs.openSync(this.opts.logPath, "r");
      try {
        const size = fs.fstatSync(fd).size;
        const buf = Buffer.alloc(Math.max(0, size - this.logStart));
        fs.readSync(fd, buf, 0, buf.length, this.logStart);
        return buf.toString("utf8");
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return "";
    }
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
    this.logStart = fs.statSync(logPath).size;
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

  /** Stops it with `signal` and removes its own dir. */
  async destroy(signal: NodeJS.Signals): Promise<void> {
    if (this._destroyed) return;
    this._destroyed = true;
    await this.stop(signal);
    exitCleanups.delete(this.exitCleanup);
    removeDir(this.opts.ownDir);
  }

  /** After a failed launch: SIGKILLs what is left, and forgets it (its dir stays, for another try). */
  abandon(): void {
    exitCleanups.delete(this.exitCleanup);
    this.killSync();
  }

  private killSync(): void {
    const child = this.child;
    if (!this.alive || child?.pid === undefined) return;
    const family = this.opts.killTree ? childPids(child.pid) : [];
    child.kill("SIGKILL");
    for (const c of family) killQuietly(c, "SIGKILL");
  }
}

function removeDir(dir: string | undefined): void {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}
