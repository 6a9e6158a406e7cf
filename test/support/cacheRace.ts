import { setTimeout as sleep } from "node:timers/promises";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import type { ServerProcess } from "./ServerProcess";

export interface StaleReadRaceOptions {
  namespace: string;
  keys: readonly string[];
  /** Writer and reader loops per replica slot. Default 2 and 3. */
  writers?: number;
  readers?: number;
}

/**
 * The stale-read checker of guarantee 3: writers (unconditional
 * CompareAndSet) and readers (Get) race on a few keys through every replica
 * of a deployment. No Get may return a version older than the highest one
 * acknowledged (to any client) before that Get began. `slots[i]` is the
 * client of replica i; a test restarting a replica sets it to undefined
 * meanwhile and the slot's loops pause. Calls that fail (a replica or a store
 * restarting) are not counted; only acknowledged writes raise the floor.
 */
export class StaleReadRace {
  readonly violations: string[] = [];
  reads = 0;
  writes = 0;
  private readonly ackedMax = new Map<string, number>();
  private stopped = false;
  private paused = false;
  private writing = 0;
  private loops: Promise<void>[] = [];
  private readonly t0 = Date.now();

  constructor(
    private readonly slots: (AgentstateClient | undefined)[],
    private readonly opts: StaleReadRaceOptions,
  ) {
    for (const k of opts.keys) this.ackedMax.set(k, 0);
  }

  start(): void {
    const { keys } = this.opts;
    const writers = this.opts.writers ?? 2;
    const readers = this.opts.readers ?? 3;
    for (let s = 0; s < this.slots.length; s++) {
      for (let w = 0; w < writers; w++) this.loops.push(this.writer(s, s * writers + w, keys));
      for (let r = 0; r < readers; r++) this.loops.push(this.reader(s, s * readers + r, keys));
    }
  }

  /** Stops the writers; resolves once no write is in flight. */
  async pauseWriters(): Promise<void> {
    this.paused = true;
    while (this.writing > 0) await sleep(5);
  }

  resumeWriters(): void {
    this.paused = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async writer(slot: number, id: number, keys: readonly string[]): Promise<void> {
    let i = 0;
    while (!this.stopped) {
      const c = this.slots[slot];
      if (c === undefined || this.paused) {
        await sleep(10);
        continue;
      }
      const key = keys[(id + i++) % keys.length]!;
      this.writing++;
      try {
        const r = await c.compareAndSet(
          { namespace: this.opts.namespace, key, expected: { any: true }, value: Buffer.from(`w${id}-${i}`) },
          { deadlineMs: 10_000 },
        );
        this.writes++;
        const v = r.item!.version;
        if (v > this.ackedMax.get(key)!) this.ackedMax.set(key, v);
      } catch {
        await sleep(20);
      } finally {
        this.writing--;
      }
    }
  }

  private async reader(slot: number, id: number, keys: readonly string[]): Promise<void> {
    let i = 0;
    while (!this.stopped) {
      const c = this.slots[slot];
      if (c === undefined) {
        await sleep(20);
        continue;
      }
      const key = keys[(id + i++) % keys.length]!;
      const floor = this.ackedMax.get(key)!;
      try {
        const r = await c.get({ namespace: this.opts.namespace, key }, { deadlineMs: 10_000 });
        this.reads++;
        const v = r.found ? r.item!.version : 0;
        if (v < floor)
          this.violations.push(
            `t=${Date.now() - this.t0}ms replica ${slot} key ${key}: read version ${v} after version ${floor} was acknowledged`,
          );
      } catch {
        await sleep(20);
      }
    }
  }
}

export interface CacheRaceOptions extends StaleReadRaceOptions {
  /** Faults to inject while the loops run; the loops stop when it resolves. */
  during: (control: Pick<StaleReadRace, "pauseWriters" | "resumeWriters">) => Promise<void>;
}

export interface CacheRaceResult {
  /** Gets that returned a version older than one acknowledged before they started (should be none). */
  violations: string[];
  reads: number;
  writes: number;
}

/** A StaleReadRace through every server of a fixed set while `during` injects faults. */
export async function cacheRace(servers: ServerProcess[], opts: CacheRaceOptions): Promise<CacheRaceResult> {
  const clients = servers.map((s) => new AgentstateClient(s.address));
  const race = new StaleReadRace(clients, opts);
  race.start();
  try {
    await opts.during({ pauseWriters: () => race.pauseWriters(), resumeWriters: () => race.resumeWriters() });
  } finally {
    await race.stop();
    for (const c of clients) c.close();
  }
  return { violations: race.violations, reads: race.reads, writes: race.writes };
}

/** The sum of a field of the "cache stats" lines the servers logged at shutdown (`near.hits` for the near cache's). */
export function loggedCacheStats(servers: ServerProcess[], field: "hit" | "near.hits"): number {
  return servers
    .flatMap((s) => s.logs())
    .filter((l) => l["msg"] === "cache stats")
    .reduce((n, l) => {
      const v = field === "hit" ? l["hit"] : (l["near"] as { hits?: number } | undefined)?.hits;
      return n + Number(v ?? 0);
    }, 0);
}
