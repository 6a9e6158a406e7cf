import * as fs from "node:fs";
import { EarlyExitError } from "./childProcesses";
import { freePort } from "./freePort";
import { LoggedProcess, type LoggedProcessOptions } from "./LoggedProcess";

/**
 * What every server the harness runs from a log file shares (PostgresProcess,
 * RedisProcess, EtcdProcess, LoggedServerProcess): one LoggedProcess, started
 * on a given or a free port, and the controls the fault tests and benchmarks
 * use: stop (with a signal: fast shutdown, crash), restart on the same port
 * and data, destroy. Each kind says how to tell that the server on its port is
 * its own child (probe) and which signal stops it by default.
 */
export abstract class ManagedProcess<S extends NodeJS.Signals = NodeJS.Signals> {
  readonly port: number;
  /** Output of every (re)start, appended. */
  readonly logPath: string;
  protected readonly proc: LoggedProcess;

  protected constructor(
    opts: Omit<LoggedProcessOptions, "probe">,
    private readonly defaultStop: S,
  ) {
    this.port = opts.port;
    this.logPath = opts.logPath;
    this.proc = new LoggedProcess({ ...opts, probe: (pid) => this.probe(pid) });
  }

  /**
   * Launches the server `make` sets up for a port: on `port`, or on a free one.
   * A picked port may be taken by someone else before the server binds it: then
   * (the child exited with a log that matches `portTaken`) tries another, up to
   * five ports. Once it gives up, removes `ownDir` (when set) and throws.
   */
  protected static async startOnPort<T extends ManagedProcess>(
    port: number | undefined,
    ownDir: string | undefined,
    portTaken: RegExp,
    make: (port: number) => T | Promise<T>,
  ): Promise<T> {
    const attempts = port === undefined ? 5 : 1;
    let lastErr: unknown;
    for (let i = 0; i < attempts; i++) {
      const server = await make(port ?? (await freePort()));
      try {
        await server.proc.launch();
        return server;
      } catch (e) {
        lastErr = e;
        server.proc.abandon();
        if (!(e instanceof EarlyExitError) || !portTaken.test(e.message)) break;
      }
    }
    if (ownDir !== undefined) fs.rmSync(ownDir, { recursive: true, force: true });
    throw lastErr;
  }

  /**
   * Resolves once the server answering on `port` is this child (`pid`, its
   * process id: not another server that holds the port); otherwise throws why
   * not, and is asked again.
   */
  protected abstract probe(pid: number | undefined): Promise<void>;

  /** Called between stop and relaunch in restart(). */
  protected beforeRelaunch(): void {}

  get running(): boolean {
    return this.proc.running;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Last lines of the server log. */
  logTail(lines = 40): string {
    return this.proc.logTail(lines);
  }

  /** Sends `signal` (default: the kind's graceful stop) and waits for the exit; SIGKILL after the stop timeout. */
  async stop(signal: S = this.defaultStop): Promise<void> {
    await this.proc.stop(signal);
  }

  /** Stop (with `signal`) and start again: same port, same data dir. */
  async restart(signal: S = this.defaultStop): Promise<void> {
    if (this.proc.destroyed) throw new Error(`${this.constructor.name}: restart() after destroy()`);
    await this.proc.stop(signal);
    this.beforeRelaunch();
    // The port, a lock file or shared memory may linger: relaunch() retries briefly.
    await this.proc.relaunch();
  }

  /** Stop (graceful) and delete its own dir. */
  async destroy(): Promise<void> {
    await this.proc.destroy(this.defaultStop);
  }
}
