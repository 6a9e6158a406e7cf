/**
 * NoCacheRegistration: what a replica without a cache does so that replicas
 * with one never serve a value it replaced (guarantee 3 in a mixed
 * deployment; README, "Mixed cache configurations and rolling changes").
 *
 * It registers the identity "none" in the truth and renews it every lease/3
 * (agentstate_cache_lease): while it is live no cache may take the epoch, and
 * a renewal that finds an owner revokes it. Its writes need nothing more: the
 * truth moves the epoch for a write without a cache fence while the epoch has
 * an owner, and counts how long the write must wait (cacheWaitMs), which the
 * store returned by `kv` waits before it answers. An append, which the truth
 * does not fence, goes through `fenceChange`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import { CACHE_WAIT_MARGIN_MS, type CacheEpochStore, type DurableKvStore } from "../domain/ports";
import type { KvStore } from "../domain/types";
import type { Logger } from "../log/Logger";
import type { CacheMixWatch } from "./CacheMixWatch";
import { Repeat } from "../domain/repeat";

/** The registration of replicas without a cache. */
export const NO_CACHE_IDENTITY = "none";
export const NO_CACHE_DESCRIPTION = "no cache";

export class NoCacheRegistration {
  /** The registration is live in the truth at least until then (performance.now()). */
  private liveUntil = 0;
  /** The last renewal found the epoch without an owner. */
  private ownerless = false;
  /** Writes wait for a replaced owner's leases until then (performance.now()). */
  private quietUntil = 0;
  /** Renews every lease/3, the next renewal once the last one settled. */
  private readonly renewal: Repeat;

  constructor(
    private readonly epochs: CacheEpochStore,
    private readonly opts: { leaseMs: number; markerTtlMs: number; statementTimeoutMs: number },
    private readonly watch: CacheMixWatch,
    private readonly log: Logger,
  ) {
    this.renewal = new Repeat(() => this.refresh(), Math.max(50, Math.floor(opts.leaseMs / 3)));
  }

  start(): void {
    this.renewal.start();
  }

  /** No renewal starts after this; resolves once the one running (if any) has settled. */
  stop(): Promise<void> {
    return this.renewal.stop();
  }

  /** Renews the registration; never rejects (a failure is logged, and the next tick tries again). */
  async refresh(): Promise<void> {
    const sent = performance.now();
    try {
      const row = await this.epochs.lease({
        identity: NO_CACHE_IDENTITY,
        previous: undefined,
        description: NO_CACHE_DESCRIPTION,
        leaseMs: this.opts.leaseMs,
        mayOwn: false,
      });
      if (!row) return;
      const got = performance.now();
      this.liveUntil = sent + this.opts.leaseMs;
      this.ownerless = row.owner === null;
      this.quietUntil = got + row.quietMs;
      this.watch.observe(row, NO_CACHE_IDENTITY);
    } catch (err) {
      this.log.debug("cache registration renewal failed", { error: (err as Error).message });
    }
  }

  /** The truth as this replica's KV store: a write is answered once no cache can serve an older state. */
  kv(pg: DurableKvStore): KvStore {
    return {
      get: (...args) => pg.get(...args),
      list: (...args) => pg.list(...args),
      write: async (cmd, opts) => {
        // While a cache owns the epoch, it is moved and the owner's leases
        // waited out before the write is made (as CacheEpoch.fenceBeforeWrite
        // does for a cache that cannot mark): otherwise readers here would see
        // the new value while the owner's replicas still served the old one.
        // The write must then commit while the epoch that move began is young.
        const sent = performance.now();
        await this.fenceChange(cmd.namespace);
        const commitBy = sent + this.opts.markerTtlMs - this.opts.statementTimeoutMs;
        const {
          epochBump: _bump,
          cacheWaitMs,
          ...outcome
        } = await pg.write(cmd, {
          ...opts,
          cacheFence: { kind: "unowned", commitBy },
        });
        if (cacheWaitMs !== undefined) await sleep(cacheWaitMs + CACHE_WAIT_MARGIN_MS);
        return outcome;
      },
    };
  }

  /**
   * For a change the truth did not fence (an append): resolves once no cache
   * can serve a state before it. While this registration is live and the
   * epoch had no owner at its last renewal, no cache can have taken it since
   * (taking it needs every other registration lapsed): only a replaced
   * owner's quiet time is waited. Otherwise the truth moves the epoch if it
   * has an owner and says how long to wait; if it cannot be asked, every
   * lease ends within one lease (renewals need it too).
   */
  async fenceChange(namespace: string): Promise<void> {
    const now = performance.now();
    if (this.ownerless && now < this.liveUntil) {
      if (this.quietUntil > now) await sleep(this.quietUntil - now + CACHE_WAIT_MARGIN_MS);
      return;
    }
    const wait = await this.epochs.fenceChange(namespace).catch(() => this.opts.leaseMs);
    if (wait > 0) await sleep(wait + CACHE_WAIT_MARGIN_MS);
  }
}
