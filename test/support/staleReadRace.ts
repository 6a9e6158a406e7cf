import { setTimeout as sleep } from "node:timers/promises";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";

export interface StaleReadRaceOptions {
  namespace: string;
  keys: readonly string[];
  /** Writers and readers per replica slot. Default 2 and 3. */
  writers?: number;
  readers?: number;
}

/**
 * Readers and writers racing on a few keys through every replica of a
 * deployment, checking guarantee 3: no Get returns a version older than one
 * acknowledged (to any client) before that Get began. `slots[i]` is the client
 * of replica i; a test restarting a replica sets it to undefined meanwhile and
 * the slot's loops pause. Calls that fail (a replica or a store restarting)
 * are not counted; only acknowledged writes raise the floor.
 */
export class StaleReadRace {
  readonly violations: string[] = [];
  reads = 0;
  writes = 0;
  private readonly ackedMax = new Map<string, number>();
  private stopped = false;
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
    for (let s = 0; s < this.slots.length; s++) {
      for (let w = 0; w < (this.opts.writers ?? 2); w++) this.loops.push(this.writer(s, s * 7 + w, keys));
      for (let r = 0; r < (this.opts.readers ?? 3); r++) this.loops.push(this.reader(s, s * 11 + r, keys));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async writer(slot: number, id: number, keys: readonly string[]): Promise<void> {
    let i = 0;
    while (!this.stopped) {
      const c = this.slots[slot];
      if (c === undefined) {
        await sleep(20);
        continue;
      }
      const key = keys[(id + i++) % keys.length]!;
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
