import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { freePort } from "./freePort";
import { ManagedProcess } from "./ManagedProcess";

export interface EtcdOptions {
  /** Data dir (--data-dir, created by etcd); default one in a temp dir of its own, removed by destroy(). */
  dataDir?: string;
  /** Default: etcd.log beside the data dir. */
  logPath?: string;
}

/** A single-member etcd (binary `etcd` on the PATH) on free loopback client and peer ports: a benchmark baseline. */
export class EtcdProcess extends ManagedProcess {
  private constructor(dataDir: string, port: number, peerPort: number, ownDir: string | undefined, opts: EtcdOptions) {
    const client = `http://127.0.0.1:${port}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    super(
      {
        name: "etcd",
        port,
        ownDir,
        logPath: opts.logPath ?? path.join(path.dirname(dataDir), "etcd.log"),
        file: "etcd",
        args: [
          "--name", "bench", "--data-dir", dataDir,
          "--listen-client-urls", client, "--advertise-client-urls", client,
          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
          "--initial-cluster", `bench=${peer}`, "--initial-cluster-state", "new",
          "--logger", "zap", "--log-level", "warn",
        ], // prettier-ignore
        spawn: { cwd: path.dirname(dataDir) },
        readyTimeoutMs: 30_000,
        readyPollMs: 100,
        stopTimeoutMs: 15_000,
      },
      "SIGTERM",
    );
  }

  static async start(opts: EtcdOptions = {}): Promise<EtcdProcess> {
    const ownDir = opts.dataDir === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-etcd-")) : undefined;
    const dataDir = opts.dataDir ?? path.join(ownDir!, "data");
    return ManagedProcess.startOnPort(
      undefined,
      ownDir,
      /address already in use/i,
      async (port) => new EtcdProcess(dataDir, port, await freePort(), ownDir, opts),
    );
  }

  /** The installed etcd's version ("3.4.23"). */
  static version(): string {
    const out = execFileSync("etcd", ["--version"], { encoding: "utf8" });
    return /etcd Version: (\S+)/.exec(out)?.[1] ?? "unknown";
  }

  /** host:port of the client URL. */
  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Resolves once etcd on the port reports itself healthy. */
  protected override async probe(): Promise<void> {
    const res = await fetch(`http://${this.endpoint}/health`, { signal: AbortSignal.timeout(2_000) });
    const body = await res.text();
    if (!/"health":\s*"true"/.test(body)) throw new Error(`etcd not healthy yet: ${body}`);
  }
}
