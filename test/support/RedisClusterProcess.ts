import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { eventually } from "./eventually";
import { freePort } from "./freePort";
import { RedisProcess } from "./RedisProcess";

const run = promisify(execFile);

export interface RedisClusterOptions {
  /** Masters (each owns a third of the slots with 3). Default 3. */
  masters?: number;
  /** Replicas per master. Default 1. */
  replicasPerMaster?: number;
  /** cluster-node-timeout: how long a master may be unreachable before its replica takes over. Default 1000. */
  nodeTimeoutMs?: number;
}

/** One shard as the cluster sees it now: its master and the replicas following it. */
export interface Shard {
  master: RedisProcess;
  replicas: RedisProcess[];
}

/**
 * A real Redis Cluster on loopback: `masters` × (1 + `replicasPerMaster`)
 * redis-server processes in cluster mode (RedisProcess, each with its own
 * free data and bus ports), joined with `redis-cli --cluster create`, ready
 * once every node reports `cluster_state:ok`. failover() and killMaster()
 * move one shard's master to its replica (without and with data loss
 * possible); destroy() stops every node and removes their dirs.
 */
export class RedisClusterProcess {
  private constructor(
    readonly nodes: RedisProcess[],
    private readonly dir: string,
  ) {}

  static async start(opts: RedisClusterOptions = {}): Promise<RedisClusterProcess> {
    const masters = opts.masters ?? 3;
    const count = masters * (1 + (opts.replicasPerMaster ?? 1));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-rcluster-"));
    const started = await Promise.allSettled(
      Array.from({ length: count }, async (_, i) =>
        RedisProcess.start({
          dir: path.join(dir, `n${i}`),
          cluster: { busPort: await freePort(), nodeTimeoutMs: opts.nodeTimeoutMs ?? 1000 },
        }),
      ),
    );
    const nodes = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const cluster = new RedisClusterProcess(nodes, dir);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
    try {
      if (failed) throw failed.reason;
      await run(
        process.env.REDIS_CLI ?? "redis-cli",
        [
          "--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`),
          "--cluster-replicas", String(opts.replicasPerMaster ?? 1), "--cluster-yes",
        ], // prettier-ignore
        { timeout: 60_000 },
      );
      await cluster.waitOk();
      // Every replica attached to its master (redis-cli assigns them just after the slots).
      await eventually("every replica attached", async () => (await cluster.shards()).length === masters, {
        timeoutMs: 30_000,
        intervalMs: 100,
      });
    } catch (e) {
      await cluster.destroy();
      throw e;
    }
    return cluster;
  }

  /** `redis+cluster://` naming every node as a seed (REDIS_URL). */
  get url(): string {
    return `redis+cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(",")}`;
  }

  /** The shards as the running nodes report them now (CLUSTER NODES of the first running node). */
  async shards(): Promise<Shard[]> {
    const text = await this.onAny((c) => c.cluster("NODES") as Promise<string>);
    const byId = new Map<string, { port: number; master: string | undefined; isMaster: boolean; failed: boolean }>();
    for (const line of text.trim().split("\n")) {
      const [id, addr, flags, masterId] = line.split(" ");
      if (!id || !addr || !flags) continue;
      const port = Number(/:(\d+)@/.exec(addr)?.[1]);
      byId.set(id, {
        port,
        isMaster: flags.split(",").includes("master"),
        master: masterId === "-" ? undefined : masterId,
        failed: /fail|noaddr/.test(flags),
      });
    }
    const proc = (port: number) => this.nodes.find((n) => n.port === port);
    const shards: Shard[] = [];
    for (const [id, n] of byId) {
      const master = proc(n.port);
      if (!n.isMaster || n.failed || !master) continue;
      const replicas = [...byId.values()]
        .filter((r) => r.master === id && !r.failed)
        .flatMap((r) => proc(r.port) ?? []);
      shards.push({ master, replicas });
    }
    return shards.sort((a, b) => a.master.port - b.master.port);
  }

  /** The index in shards() of the shard whose master serves `key`'s slot now. */
  async shardOf(key: string): Promise<number> {
    const slot = Number(await this.onAny((c) => c.cluster("KEYSLOT", key)));
    const ranges = (await this.onAny((c) => c.cluster("SLOTS"))) as unknown as [number, number, [string, number]][];
    const port = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2][1];
    const i = (await this.shards()).findIndex((s) => s.master.port === port);
    if (i < 0) throw new Error(`no master serves slot ${slot}`);
    return i;
  }

  /** Resolves once every running node reports cluster_state:ok with all slots served. */
  async waitOk(timeoutMs = 30_000): Promise<void> {
    await eventually(
      "redis cluster state ok on every node",
      async () => {
        for (const n of this.nodes.filter((x) => x.running)) {
          const info = await this.on(n, (c) => c.cluster("INFO") as Promise<string>);
          if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
        }
        return true;
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  /**
   * A manual failover of shard `i` (CLUSTER FAILOVER on its replica: the
   * master stops taking writes until the replica has caught up, so nothing is
   * lost). Resolves once the replica is the master.
   */
  async failover(i: number): Promise<{ from: RedisProcess; to: RedisProcess }> {
    const shard = (await this.shards())[i];
    const to = shard?.replicas[0];
    if (!shard || !to) throw new Error(`shard ${i} has no replica to fail over to`);
    // A manual failover that does not complete in time (the replica still catching up, a vote that did not
    // come back on a loaded machine) is aborted by Redis without an error: ask again while the replica is
    // not yet the master, every FAILOVER_RETRY_MS.
    const FAILOVER_RETRY_MS = 5000;
    let asked = 0;
    await eventually(
      "the replica took over, the old master its replica",
      async () => {
        const shards = await this.shards();
        // Done when the old master serves as the new one's replica too: the cluster reports that a moment after
        // the takeover, and callers (tests) rely on the shard having its replica again.
        if (shards.some((s) => s.master === to && s.replicas.includes(shard.master))) return true;
        if (!shards.some((s) => s.master === to) && performance.now() - asked >= FAILOVER_RETRY_MS) {
          asked = performance.now();
          await this.on(to, (c) => c.cluster("FAILOVER"));
        }
        return false;
      },
      { timeoutMs: 45_000, intervalMs: 100 },
    );
    await this.waitOk();
    return { from: shard.master, to };
  }

  /**
   * Kills shard `i`'s master with SIGKILL (writes not yet replicated are
   * lost), waits until its replica has taken over, then starts the killed
   * node again, empty: it rejoins as the new master's replica. With
   * `unreplicatedMs`, the replica is first frozen (DEBUG SLEEP) and cut off
   * (CLIENT KILL TYPE replica on the master), and the master takes writes
   * that long that surely never reach the replica; `beforeKill` runs just
   * before the SIGKILL.
   */
  async killMaster(
    i: number,
    opts: { downMs?: number; unreplicatedMs?: number; beforeKill?: () => Promise<void> } = {},
  ): Promise<{ from: RedisProcess; to: RedisProcess }> {
    const shard = (await this.shards())[i];
    const to = shard?.replicas[0];
    if (!shard || !to) throw new Error(`shard ${i} has no replica to take over`);
    let frozen: Promise<unknown> | undefined;
    if (opts.unreplicatedMs) {
      const sleepS = String((opts.unreplicatedMs + 1000) / 1000);
      frozen = this.on(to, (c) => c.call("DEBUG", "SLEEP", sleepS)).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
      await this.on(shard.master, (c) => c.client("KILL", "TYPE", "replica"));
      await new Promise((r) => setTimeout(r, opts.unreplicatedMs));
    }
    await opts.beforeKill?.();
    await shard.master.stop("SIGKILL");
    await frozen;
    await eventually(
      "the replica took over from the killed master",
      async () => (await this.shards()).some((s) => s.master === to),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    await this.waitOk();
    if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
    await shard.master.restart();
    await eventually(
      "the killed master rejoined as a replica",
      async () => (await this.shards()).some((s) => s.master === to && s.replicas.includes(shard.master)),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    await this.waitOk();
    return { from: shard.master, to };
  }

  /** CONFIG SET on every running node. */
  async configSet(parameter: string, value: string): Promise<void> {
    for (const n of this.nodes.filter((x) => x.running)) await this.on(n, (c) => c.config("SET", parameter, value));
  }

  /** Stops every node and removes their dirs. */
  async destroy(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.destroy()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private async on<T>(node: RedisProcess, fn: (c: ReturnType<RedisProcess["client"]>) => Promise<T>): Promise<T> {
    const c = node.client();
    try {
      await c.connect();
      return await fn(c);
    } finally {
      c.disconnect();
    }
  }

  private async onAny<T>(fn: (c: ReturnType<RedisProcess["client"]>) => Promise<T>): Promise<T> {
    let last: unknown = new Error("no redis cluster node is running");
    for (const n of this.nodes.filter((x) => x.running)) {
      try {
        return await this.on(n, fn);
      } catch (e) {
        last = e;
      }
    }
    throw last;
  }
}
