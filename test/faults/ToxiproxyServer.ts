/**
 * A toxiproxy-server child process and a client for its HTTP API
 * (https://github.com/Shopify/toxiproxy#http-api). Proxies listen on ports
 * picked here; toxics (latency, reset_peer, timeout, ...) are added and
 * removed by name; a proxy can be disabled (its connections are closed and new
 * ones refused) and enabled again. The process is SIGKILLed if the test
 * process exits without stopping it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { freePort } from "../support/freePort";
import { ManagedProcess } from "../support/ManagedProcess";

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

export class ToxiproxyServer extends ManagedProcess {
  readonly proxies = new Map<string, Proxy>();

  private constructor(bin: string, dir: string, port: number) {
    super(
      {
        name: "toxiproxy-server",
        port,
        ownDir: dir,
        logPath: path.join(dir, "toxiproxy.log"),
        file: bin,
        args: ["-host", "127.0.0.1", "-port", String(port)],
        spawn: {},
        readyTimeoutMs: 15_000,
        readyPollMs: 50,
        stopTimeoutMs: 15_000,
      },
      "SIGKILL",
    );
  }

  static start(bin: string): Promise<ToxiproxyServer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-toxiproxy-"));
    return ManagedProcess.startOnPort(
      undefined,
      dir,
      /address already in use/i,
      (port) => new ToxiproxyServer(bin, dir, port),
    );
  }

  /** The HTTP API's port. */
  get apiPort(): number {
    return this.port;
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

  /** SIGKILL, and its log removed. */
  override stop(): Promise<void> {
    return this.destroy();
  }

  protected override async probe(): Promise<void> {
    await this.api("GET", "/version");
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
