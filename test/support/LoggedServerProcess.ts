import * as net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { ManagedProcess } from "./ManagedProcess";
import { ServerProcess } from "./ServerProcess";

export interface LoggedServerOptions {
  /** Compiled entry point; default the repo's dist/src/main.js. */
  entry?: string;
  cwd: string;
  /** Over the inherited environment (AGENTSTATE_HOST=127.0.0.1 and AGENTSTATE_PORT are set here). */
  env: Record<string, string>;
  logPath: string;
  /** Node options before the entry point, e.g. --cpu-prof. */
  nodeArgs?: string[];
}

/**
 * The agentstate server as a child whose output goes straight to a log file
 * (not through this process, as ServerProcess's does): for long benchmark
 * runs, where one JSON line per RPC would fill memory and take CPU from the
 * machine being measured. Ready once it logs "listening" (or, below
 * LOG_LEVEL=info, once its port accepts connections).
 */
export class LoggedServerProcess extends ManagedProcess {
  private _address = "";
  private readonly quiet: boolean;

  private constructor(port: number, opts: LoggedServerOptions) {
    super(
      {
        name: "agentstate server",
        port,
        logPath: opts.logPath,
        file: process.execPath,
        args: [...(opts.nodeArgs ?? []), opts.entry ?? ServerProcess.entry],
        spawn: {
          cwd: opts.cwd,
          env: { ...process.env, AGENTSTATE_HOST: "127.0.0.1", ...opts.env, AGENTSTATE_PORT: String(port) },
        },
        readyTimeoutMs: 60_000,
        readyPollMs: 100,
        stopTimeoutMs: 20_000,
      },
      "SIGTERM",
    );
    const level = opts.env.LOG_LEVEL;
    this.quiet = level !== undefined && level !== "info" && level !== "debug";
  }

  static start(opts: LoggedServerOptions): Promise<LoggedServerProcess> {
    return ManagedProcess.startOnPort(
      undefined,
      undefined,
      /EADDRINUSE/,
      (port) => new LoggedServerProcess(port, opts),
    );
  }

  /** "127.0.0.1:PORT" */
  get address(): string {
    return this._address;
  }

  protected override async probe(): Promise<void> {
    for (const line of this.proc.logSinceLaunch().split("\n")) {
      if (!line.startsWith("{")) continue;
      const o = JSON.parse(line) as { msg?: unknown; address?: unknown };
      if (o.msg === "listening" && typeof o.address === "string") {
        this._address = o.address;
        return;
      }
    }
    // Below LOG_LEVEL=info there is no "listening" line: the port accepting
    // connections means the gRPC server is bound (it serves right after).
    if (this.quiet && (await portOpen(this.port))) {
      await sleep(200);
      this._address = `127.0.0.1:${this.port}`;
      return;
    }
    throw new Error("not listening yet");
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}
