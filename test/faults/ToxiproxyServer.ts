/**
 * A toxiproxy-server child process and a client for its HTTP API
 * (https://github.com/Shopify/toxiproxy#http-api). Proxies listen on ports
 * picked here; toxics (latency, reset_peer, timeout, ...) are added and
 * removed by name; a proxy can be disabled (its connections are closed and new
 * ones refused) and enabled again. The process is SIGKILLed if the test
 * process exits without stopping it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { freePort } from "../support/freePort";

export type ToxicType = "latency" | "reset_peer" | "timeout" | "bandwidth" | "slow_close" | "slicer" | "limit_data";

export interface Toxic {
  name: string;
  type: ToxicType;
  /** "downstream" (server to client, the default) or "upstream". */
  stream?: "upstream" | "downstream";
  /** Probability the toxic applies to a connection, 0..1 (default 1). */
  toxicity?: number;
  attributes: Record<string, number>;
}

export interface Proxy {
  name: string;
  listenPort: number;
  upstream: string;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ToxiproxyServer {
  readonly proxies = new Map<string, Proxy>();
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly apiPort: number,
    readonly logPath: string,
  ) {
    live.add(child);
    this.exited = new Promise((resolve) =>
      child.once("exit", () => {
        live.delete(child);
        resolve();
      }),
    );
  }

  static async start(bin: string): Promise<ToxiproxyServer> {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const logPath = path.join(os.tmpdir(), `agentstate-toxiproxy-${process.pid}-${port}.log`);
      const fd = fs.openSync(logPath, "a");
      let child: ChildProcess;
      try {
        child = spawn(bin, ["-host", "127.0.0.1", "-port", String(port)], { stdio: ["ignore", fd, fd] });
      } finally {
        fs.closeSync(fd);
      }
      child.unref();
      const server = new ToxiproxyServer(child, port, logPath);
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && live.has(child)) {
        try {
          await server.api("GET", "/version");
          return server;
        } catch (e) {
          lastErr = e;
          await sleep(50);
        }
      }
      await server.stop();
    }
    throw new Error(`toxiproxy-server did not start: ${String(lastErr)}`);
  }

  /** Creates a proxy listening on a free 127.0.0.1 port, forwarding to `upstream` ("host:port"). */
  async createProxy(name: string, upstream: string): Promise<Proxy> {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const listenPort = await freePort();
      try {
        await this.api("POST", "/proxies", { name, listen: `127.0.0.1:${listenPort}`, upstream, enabled: true });
        const p = { name, listenPort, upstream };
        this.proxies.set(name, p);
        return p;
      } catch (e) {
        lastErr = e;
      }
    }
    throw lastErr;
  }

  async addToxic(proxy: string, toxic: Toxic): Promise<void> {
    await this.api("POST", `/proxies/${encodeURIComponent(proxy)}/toxics`, {
      name: toxic.name,
      type: toxic.type,
      stream: toxic.stream ?? "downstream",
      toxicity: toxic.toxicity ?? 1,
      attributes: toxic.attributes,
    });
  }

  async removeToxic(proxy: string, name: string): Promise<void> {
    await this.api("DELETE", `/proxies/${encodeURIComponent(proxy)}/toxics/${encodeURIComponent(name)}`);
  }

  /** Disabled: existing connections are closed and new ones refused. */
  async setEnabled(proxy: string, enabled: boolean): Promise<void> {
    await this.api("POST", `/proxies/${encodeURIComponent(proxy)}`, { enabled });
  }

  /** Enables every proxy and removes every toxic. */
  async reset(): Promise<void> {
    await this.api("POST", "/reset");
  }

  async stop(): Promise<void> {
    if (!live.has(this.child)) return;
    // Keep the event loop alive until the exit is seen (the child is unref'd).
    this.child.ref();
    this.child.kill("SIGKILL");
    await this.exited;
    fs.rmSync(this.logPath, { force: true });
  }

  private async api(method: string, p: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`http://127.0.0.1:${this.apiPort}${p}`, {
      method,
      headers: body === undefined ? undefined : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`toxiproxy ${method} ${p}: HTTP ${res.status} ${text}`);
    return text ? (JSON.parse(text) as unknown) : undefined;
  }
}
