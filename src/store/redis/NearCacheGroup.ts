/**
 * NearCacheGroup: the near cache on a Redis Cluster. Client-side tracking is
 * per server (a node tracks the keys read on its own connections and sends
 * invalidations to a client of its own), so the group runs one NearCache per
 * master (a "lane": a tracked reader, an invalidation connection and a plain
 * connection to that node, each a connection to that one server) and routes
 * every call by the slot of the entry key (the namespace's hash tag) to the
 * master that serves it in the cluster's slot map.
 *
 * - A cache read of the namespace goes to its master's tracked reader; a
 *   node that no longer serves the slot answers MOVED (the read falls back to
 *   Postgres), so a lane never serves a slot another node now holds.
 * - When the slot map names another master for any slot (failover, a moved
 *   slot), every lane is closed at once, in the same turn the map changes,
 *   dropping every copy; lanes open again on demand and near hits resume
 *   once each has set up tracking. A lane's own connection lost drops its
 *   copies (NearCache).
 * - Copies are keyed by entry key, which names the epoch: a copy taken in an
 *   epoch is never served in another (the epoch moves with every failover).
 */
import type { Cluster } from "ioredis";
import type Redis from "ioredis";
import { keySlot, SLOTS } from "./clusterSlots";
import type { CacheCommands } from "./cacheScripts";
import type { NearCache, NearCacheStats, NearEntry, NearTicket } from "./NearCache";

/** One master's near cache and the tracked connection its cache reads run on. */
export interface NearLane {
  cache: NearCache;
  reader: Redis & CacheCommands;
  close(): void;
}

/** What CachedKvStore uses of a near cache (NearCache, or this group). */
export type NearCacheLike = Pick<NearCache, "has" | "get" | "sync" | "beginRead" | "endRead" | "size" | "close"> & {
  readonly stats: NearCacheStats;
};

export class NearCacheGroup implements NearCacheLike {
  private readonly lanes = new Map<string, NearLane>();
  /** Counts of lanes closed so far, so the stats stay monotonic. */
  private readonly closedStats: NearCacheStats = { hits: 0, syncs: 0, installs: 0, invalidations: 0, resets: 0 };
  private masters: string[] = [];
  private closed = false;

  constructor(
    private readonly cluster: Cluster & CacheCommands,
    /** Opens the lane of the master at `node` ("host:port"). */
    private readonly openLane: (node: string) => NearLane,
  ) {
    cluster.on("refresh", () => {
      const now = Array.from({ length: SLOTS }, (_, slot) => cluster.slots[slot]?.[0] ?? "");
      if (now.some((m, i) => m !== this.masters[i])) this.closeLanes();
      this.masters = now;
    });
  }

  get stats(): NearCacheStats {
    const s = { ...this.closedStats };
    for (const lane of this.lanes.values()) add(s, lane.cache.stats);
    return s;
  }

  /** Where cache reads run: on the tracked reader of the KEYS' master, or on the cluster while it has no lane. */
  readonly reader: Pick<CacheCommands, "cacheReadBuffer"> = {
    cacheReadBuffer: (...args) => {
      // A lane still connecting (or reconnecting) cannot take the read: the cluster can, untracked.
      const reader = this.lane(String(args[0]))?.reader;
      return (reader?.status === "ready" ? reader : this.cluster).cacheReadBuffer(...args);
    },
  };

  has(entryKey: string, alive: string): boolean {
    return this.lane(entryKey)?.cache.has(entryKey, alive) ?? false;
  }

  get(entryKey: string, alive: string): NearEntry | undefined {
    return this.lane(entryKey)?.cache.get(entryKey, alive);
  }

  sync(knownKey: string): Promise<number | undefined> {
    return this.lane(knownKey)?.cache.sync(knownKey) ?? Promise.resolve(undefined);
  }

  beginRead(entryKey: string): NearTicket | undefined {
    return this.lane(entryKey)?.cache.beginRead(entryKey);
  }

  endRead(ticket: NearTicket, hit?: NearEntry): void {
    // A lane closed meanwhile is gone with its pending reads: nothing is copied.
    this.lane(ticket.key, false)?.cache.endRead(ticket, hit);
  }

  size(): { entries: number; bytes: number } {
    let entries = 0;
    let bytes = 0;
    for (const lane of this.lanes.values()) {
      const s = lane.cache.size();
      entries += s.entries;
      bytes += s.bytes;
    }
    return { entries, bytes };
  }

  close(): void {
    this.closed = true;
    this.closeLanes();
  }

  private closeLanes(): void {
    for (const lane of this.lanes.values()) {
      add(this.closedStats, lane.cache.stats);
      lane.close();
    }
    this.lanes.clear();
  }

  /** The lane of the master serving `key`'s slot now (opened on demand unless `open` is false). */
  private lane(key: string, open = true): NearLane | undefined {
    const node = this.cluster.slots[keySlot(key)]?.[0];
    if (node === undefined || this.closed) return undefined;
    let lane = this.lanes.get(node);
    if (lane === undefined && open) {
      lane = this.openLane(node);
      this.lanes.set(node, lane);
    }
    return lane;
  }
}

function add(into: NearCacheStats, s: NearCacheStats): void {
  into.hits += s.hits;
  into.syncs += s.syncs;
  into.installs += s.installs;
  into.invalidations += s.invalidations;
  into.resets += s.resets;
}
