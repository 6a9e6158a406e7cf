import { spawn, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { exitCleanups } from "./childProcesses";
import { childPids, killQuietly } from "./procfs";
import { Waiters } from "./Waiters";

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const VERBOSE = process.env.AGENTSTATE_TEST_VERBOSE === "1";

/** Repo root: this file compiles to dist/test/support/. */
const REPO_ROOT = path.resolve(__dirname, "../../..");

function setRef(child: ChildProcess, ref: boolean): void {
  for (const s of [child.stdout, child.stderr]) {
    const sock = s as unknown as Partial<Socket> | null;
    if (ref) sock?.ref?.();
    else sock?.unref?.();
  }
  if (ref) child.ref();
  else child.unref();
}

/**
 * The compiled agentstate server (dist/src/main.js) as a real child process.
 * stdout/stderr lines are kept in `lines`; JSON lines are available via logs().
 */
export class ServerProcess {
  /** Compiled entry point that start() runs. */
  static readonly entry = path.join(REPO_ROOT, "dist", "src", "main.js");

  /** Every stdout/stderr line, in arrival order. */
  readonly lines: string[] = [];
  /** Resolves once the process has exited and its output is drained. */
  readonly exited: Promise<ServerExit>;

  private _address = "";
  private alive = true;
  private exitInfo: ServerExit | undefined;
  private readonly waiters = new Waiters();

  private constructor(
    private readonly child: ChildProcess,
    readonly env: Record<string, string>,
  ) {
    // SIGKILL it if the test process exits while it is alive (childProcesses.ts),
    // with its children: the postmaster of an embedded Postgres.
    const killAtExit = () => {
      const family = child.pid === undefined ? [] : childPids(child.pid);
      child.kill("SIGKILL");
      for (const pid of family) killQuietly(pid, "SIGKILL");
    };
    exitCleanups.add(killAtExit);
    this.exited = new Promise<ServerExit>((resolve) => {
      let exit: ServerExit | undefined;
      child.once("error", (err) => {
        this.push(`[harness] spawn error: ${err.message}`);
        if (!exit) {
          exit = { code: null, signal: null };
          this.exitInfo = exit;
          this.alive = false;
          exitCleanups.delete(killAtExit);
          resolve(exit);
          this.notify();
        }
      });
      child.once("close", (code, signal) => {
        exit = { code, signal };
        this.exitInfo = exit;
        this.alive = false;
        exitCleanups.delete(killAtExit);
        resolve(exit);
        this.notify();
      });
    });
    const out = child.stdout;
    const err = child.stderr;
    if (out) createInterface({ input: out, crlfDelay: Infinity }).on("line", (l) => this.push(l));
    if (err) createInterface({ input: err, crlfDelay: Infinity }).on("line", (l) => this.push(l));
  }

  /**
   * Spawn `node dist/src/main.js` with AGENTSTATE_HOST=127.0.0.1, AGENTSTATE_PORT=0,
   * LOG_LEVEL=info overridable by `env`; resolve once it logs {"msg":"listening","address":...}.
   */
  static async start(env: Record<string, string>): Promise<ServerProcess> {
    const fullEnv: Record<string, string> = {
      ...(process.env as Record<string, string>),
      AGENTSTATE_HOST: "127.0.0.1",
      AGENTSTATE_PORT: "0",
      AGENTSTATE_METRICS_PORT: "0",
      LOG_LEVEL: "info",
      ...env,
    };
    const child = spawn(process.execPath, [ServerProcess.entry], {
      cwd: REPO_ROOT,
      env: fullEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Don't keep mocha's event loop alive for a forgotten server; exit hook kills it.
    setRef(child, false);
    const server = new ServerProcess(child, env);
    try {
      const line = await server.waitForLog(
        (l) => l.msg === "listening" && typeof l.address === "string",
        READY_TIMEOUT_MS,
      );
      server._address = String(line.address);
      return server;
    } catch (e) {
      await server.kill("SIGKILL");
      throw new Error(`${(e as Error).message}\n--- last 50 lines of server output ---\n${server.tail(50)}`);
    }
  }

  /** "127.0.0.1:PORT" as logged by the server. */
  get address(): string {
    return this._address;
  }

  get port(): number {
    return Number(this._address.slice(this._address.lastIndexOf(":") + 1));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.alive;
  }

  /** Parsed JSON log lines (non-JSON lines are skipped). */
  logs(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const l of this.lines) {
      const o = parseJsonLine(l);
      if (o) out.push(o);
    }
    return out;
  }

  /** Last `n` output lines joined by newlines. */
  tail(n = 50): string {
    return this.lines.slice(-n).join("\n");
  }

  /**
   * Wait for a JSON log line matching `pred` (already-seen lines count).
   * Rejects on timeout or if the process exits first.
   */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    let seen = 0;
    return this.waiters.until(
      () => {
        for (; seen < this.lines.length; seen++) {
          const o = parseJsonLine(this.lines[seen] ?? "");
          if (o && pred(o)) return o;
        }
        return undefined;
      },
      () =>
        this.alive
          ? undefined
          : `server (pid ${this.pid}) exited (code=${this.exitInfo?.code} signal=${this.exitInfo?.signal}) before the expected log line`,
      () => `timed out after ${timeoutMs} ms waiting for a server log line`,
      timeoutMs,
    );
  }

  /** Send `signal` (default SIGKILL) and resolve with the exit once it has exited. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ServerExit> {
    if (this.alive) {
      setRef(this.child, true);
      this.child.kill(signal);
    }
    return this.exited;
  }

  /** SIGTERM, wait up to 15 s for a graceful exit, then SIGKILL. */
  async stop(): Promise<ServerExit> {
    if (!this.alive) return this.exited;
    setRef(this.child, true);
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => {
      this.push(`[harness] no exit ${STOP_TIMEOUT_MS} ms after SIGTERM: sending SIGKILL`);
      this.child.kill("SIGKILL");
    }, STOP_TIMEOUT_MS);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private push(line: string): void {
    this.lines.push(line);
    if (VERBOSE) process.stderr.write(`[server ${this.child.pid}] ${line}\n`);
    this.notify();
  }

  private notify(): void {
    this.waiters.notify();
  }
}

function parseJsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
