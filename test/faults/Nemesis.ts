/**
 * The fault schedule. One fault at a time: inject, hold for a while, heal,
 * then a quiet gap, cycling through the enabled kinds in a seeded random
 * order so every kind is injected before any repeats. Every fault is
 * recorded with its target and times (on the histories' clock).
 *
 * Network faults act on one replica's link (sometimes both replicas' links)
 * to a store, through toxiproxy. A link fault that drops data (timeout,
 * reset_peer) is healed by closing that proxy's connections as well as
 * removing the toxic, as a real partition ends: TCP never resumes a stream
 * that silently lost bytes.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { nowNs } from "./clock";
import type { FaultCluster, ReplicaSlot } from "./FaultCluster";
import type { Rng } from "./Rng";
import type { Toxic } from "./ToxiproxyServer";

export const FAULT_KINDS = [
  "replica-kill", // kill -9 one replica; started again after the hold
  "replica-pause", // SIGSTOP one replica for the hold, then SIGCONT
  "cache-restart", // Redis cache restarted: empty memory, new run id
  "cache-kill", // Redis cache kill -9, down for the hold, started again empty
  "cache-flushall", // FLUSHALL on the Redis cache
  "pg-restart", // Postgres fast shutdown, down for the hold, started again
  "pg-crash", // Postgres kill -9 (postmaster and backends), down for the hold, crash recovery
  "master-kill", // one Redlock master kill -9, started again empty after the hold
  "masters-kill-2", // two Redlock masters kill -9 (no quorum), started again empty
  "pg-latency", // replica->Postgres link: latency with jitter
  "pg-reset", // replica->Postgres link: connections reset (reset_peer)
  "pg-timeout", // replica->Postgres link: black hole, connections closed after a timeout
  "pg-down", // replica->Postgres link refused (proxy disabled)
  "cache-latency", // replica->Redis link: latency beyond the Redis command timeout
  "cache-reset", // replica->Redis link: connections reset
  "cache-timeout", // replica->Redis link: black hole
  "master-link-timeout", // replica->one Redlock master link: black hole
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

/** Kinds that need the three Redlock masters. */
const NEEDS_MASTERS = new Set<FaultKind>(["master-kill", "masters-kill-2", "master-link-timeout"]);

export interface FaultRecord {
  kind: FaultKind;
  target: string;
  start: number;
  end: number;
  holdMs: number;
  error?: string;
}

export interface NemesisOptions {
  kinds: readonly FaultKind[];
  /** Injected first (in random order), before the other kinds; then every kind cycles. */
  firstKinds?: readonly FaultKind[];
  holdMs: [number, number];
  gapMs: [number, number];
}

export class Nemesis {
  readonly faults: FaultRecord[] = [];
  private toxicSeq = 0;

  constructor(
    private readonly cluster: FaultCluster,
    private readonly opts: NemesisOptions,
  ) {}

  /** Injects faults until `stop()` returns true; the last fault is healed before returning. */
  async run(rng: Rng, stop: () => boolean): Promise<void> {
    const kinds = this.opts.kinds.filter((k) => !NEEDS_MASTERS.has(k) || this.cluster.masters.length > 0);
    if (kinds.length === 0) return;
    const first = kinds.filter((k) => this.opts.firstKinds?.includes(k));
    let queue: FaultKind[] = [...rng.shuffle(first), ...rng.shuffle(kinds.filter((k) => !first.includes(k)))];
    await this.sleepUnless(rng.int(this.opts.gapMs[0], this.opts.gapMs[1]), stop);
    while (!stop()) {
      if (queue.length === 0) queue = rng.shuffle(kinds);
      const kind = queue.shift()!;
      const holdMs = rng.int(this.opts.holdMs[0], this.opts.holdMs[1]);
      const rec: FaultRecord = { kind, target: "", start: nowNs(), end: 0, holdMs };
      try {
        await this.inject(kind, rng, holdMs, rec);
      } catch (e) {
        rec.error = (e as Error).message;
        await this.cluster.healAll().catch(() => undefined);
      }
      rec.end = nowNs();
      this.faults.push(rec);
      await this.sleepUnless(rng.int(this.opts.gapMs[0], this.opts.gapMs[1]), stop);
    }
  }

  private async sleepUnless(ms: number, stop: () => boolean): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until && !stop()) await sleep(Math.min(100, until - Date.now()));
  }

  /** One or (sometimes) every replica, for link faults. */
  private linkTargets(rng: Rng): ReplicaSlot[] {
    const all = this.cluster.replicas;
    return rng.chance(0.3) ? all : [rng.pick(all)];
  }

  private async linkFault(
    rng: Rng,
    rec: FaultRecord,
    holdMs: number,
    link: (r: ReplicaSlot) => string,
    toxic: (name: string) => Toxic | "down",
  ): Promise<void> {
    const targets = this.linkTargets(rng);
    const proxies = targets.map(link);
    rec.target = proxies.join(",");
    const name = `t${++this.toxicSeq}`;
    const t = toxic(name);
    for (const p of proxies) {
      if (t === "down") await this.cluster.toxi.setEnabled(p, false);
      else await this.cluster.toxi.addToxic(p, t);
    }
    await sleep(holdMs);
    for (const p of proxies) {
      if (t === "down") {
        await this.cluster.toxi.setEnabled(p, true);
        continue;
      }
      const drops = t.type === "timeout" || t.type === "reset_peer";
      if (drops) await this.cluster.toxi.setEnabled(p, false);
      await this.cluster.toxi.removeToxic(p, t.name);
      if (drops) await this.cluster.toxi.setEnabled(p, true);
    }
  }

  private async inject(kind: FaultKind, rng: Rng, holdMs: number, rec: FaultRecord): Promise<void> {
    const c = this.cluster;
    switch (kind) {
      case "replica-kill": {
        const r = rng.pick(c.replicas);
        rec.target = `replica ${r.index}`;
        await r.kill();
        await sleep(holdMs);
        await r.ensureStarted();
        return;
      }
      case "replica-pause": {
        const r = rng.pick(c.replicas);
        rec.target = `replica ${r.index}`;
        r.pause();
        try {
          await sleep(holdMs);
        } finally {
          r.resume();
        }
        return;
      }
      case "cache-restart":
        rec.target = "cache";
        await c.cache.restart();
        await sleep(holdMs);
        return;
      case "cache-kill":
        rec.target = "cache";
        await c.cache.stop("SIGKILL");
        await sleep(holdMs);
        await c.cache.restart();
        return;
      case "cache-flushall":
        rec.target = "cache";
        await c.cache.flushAll();
        await sleep(holdMs);
        return;
      case "pg-restart":
      case "pg-crash":
        rec.target = "postgres";
        await c.pg.stop(kind === "pg-crash" ? "SIGKILL" : "SIGINT");
        await sleep(holdMs);
        await c.pg.restart();
        return;
      case "master-kill":
      case "masters-kill-2": {
        const victims = rng.shuffle(c.masters).slice(0, kind === "master-kill" ? 1 : 2);
        rec.target = victims.map((m) => `master :${m.port}`).join(",");
        for (const m of victims) await m.stop("SIGKILL");
        await sleep(holdMs);
        for (const m of victims) await m.restart();
        return;
      }
      case "pg-latency":
        return this.linkFault(
          rng,
          rec,
          holdMs,
          (r) => r.links.pg,
          (name) => ({ name, type: "latency", attributes: { latency: rng.int(20, 150), jitter: rng.int(0, 100) } }),
        );
      case "pg-reset":
        return this.linkFault(
          rng,
          rec,
          holdMs,
          (r) => r.links.pg,
          (name) => ({ name, type: "reset_peer", attributes: { timeout: rng.int(0, 200) } }),
        );
      case "pg-timeout":
        return this.linkFault(
          rng,
          rec,
          holdMs,
          (r) => r.links.pg,
          (name) => ({
            name,
            type: "timeout",
            stream: rng.chance(0.5) ? "upstream" : "downstream",
            attributes: { timeout: rng.int(100, Math.max(100, holdMs - 100)) },
          }),
        );
      case "pg-down":
        return this.linkFault(
          rng,
          rec,
          holdMs,
          (r) => r.links.pg,
          () => "down",
        );
      case "cache-latency":
        return this.linkFault(
          rng,
          rec,
          holdMs,
          (r) => r.links.cache,
          (name) => ({ name, type: "latency", attributes: { latency: rng.int(50, 400), jitter: rng.int(0, 150) } }),
        );
      case "cache-reset":
        return this.linkFault(
          rng,
          rec,
          holdMs,
          (r) => r.links.cache,
          (name) => ({ name, type: "reset_peer", attributes: { timeout: rng.int(0, 200) } }),
        );
      case "cache-timeout":
        return this.linkFault(
          rng,
          rec,
          holdMs,
          (r) => r.links.cache,
          (name) => ({
            name,
            type: "timeout",
            stream: rng.chance(0.5) ? "upstream" : "downstream",
            attributes: { timeout: rng.int(100, Math.max(100, holdMs - 100)) },
          }),
        );
      case "master-link-timeout": {
        const j = rng.int(0, c.masters.length - 1);
        return this.linkFault(
          rng,
          rec,
          holdMs,
          (r) => r.links.masters[j]!,
          (name) => ({ name, type: "timeout", attributes: { timeout: rng.int(100, Math.max(100, holdMs - 100)) } }),
        );
      }
    }
  }
}
