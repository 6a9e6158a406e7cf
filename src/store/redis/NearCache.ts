/**
 * NearCache: this replica's own copy of recent cache hits, served without a
 * Redis command per Get and still never older than the latest acknowledged
 * write (guarantee 3).
 *
 * How it stays fresh: Redis client-side caching. The connection that runs the
 * cache reads has `CLIENT TRACKING ON REDIRECT <id>`, so Redis remembers every
 * key a read touched (the entry, its write markers, the epoch's alive key) and,
 * when one changes (a write's marker, an install, an eviction, an expiry, a
 * flush), pushes its name to the invalidation connection, subscribed to
 * `__redis__:invalidate`.
 *
 * - A copy is taken only of a hit read on the tracked connection, and only if
 *   no invalidation of its keys arrived while the read was in flight (and the
 *   tracking session did not change meanwhile).
 * - A near hit is served only after a sync: a PING on the invalidation
 *   connection, sent after the Get arrived. Redis queues an invalidation on
 *   that connection while the changing command runs, so before any write whose
 *   marker changed the entry can have been acknowledged; the PONG follows it on
 *   the same connection. Once the PONG is in, every invalidation for writes
 *   acknowledged before the Get has been applied, and the copy, if still here,
 *   is what a Redis read would have returned. One PING serves every Get that
 *   arrived while the previous PING was in flight (or in the same turn).
 * - The revision a near hit reports is read with the PING (an MGET of the
 *   known revisions of the round's namespaces in the epoch, sent with it): at
 *   least that of every write in the namespace acknowledged before the Gets of
 *   the round arrived, as a Redis hit reports. So writes to other keys never
 *   void a copy. A namespace whose known revision is absent gets no near hit
 *   (the Get reads Redis, where it is a miss that seeds it).
 * - Losing either connection, a flush, or a change of the epoch's alive key
 *   drops everything; near hits resume only once tracking is set up again on
 *   the current connections.
 * - With a probe (NearCacheOptions.probe), tracking is also proven by a
 *   round trip through Redis: set up, and then periodically, a key read on the
 *   tracked connection is changed on another and its invalidation must arrive
 *   in time. A link that silently stops delivering (blackholed, a tracking
 *   state Redis no longer keeps) is then found within everyMs + timeoutMs;
 *   meanwhile a sync's PING on the same link cannot return either, so no copy
 *   is served past an invalidation it did not see.
 * The caller still checks its lease after the sync, as for a Redis hit.
 */
import type Redis from "ioredis";
import type { Item } from "../../domain/types";
import type { Logger } from "../../log/Logger";
import { Repeat } from "../../domain/repeat";
import { sendNow } from "./createRedisClient";

const CHANNEL = "__redis__:invalidate";

export interface NearCacheOptions {
  /** Upper bound on the bytes held (values plus an estimate of the overhead). */
  maxBytes: number;
  /**
   * Read the known revisions with a GET each instead of one MGET: on a
   * cluster node, whose keys of several namespaces are in several slots.
   */
  getEachKnown?: boolean;
  /**
   * Proves tracking end to end before the near cache serves, and again every
   * `everyMs`: reads `key` (unique to this replica) on the tracked
   * connection, changes it on the plain one, and requires its invalidation
   * within `timeoutMs`. A probe that fails drops every copy and reconnects
   * both connections; near hits resume only once a probe passes again.
   */
  probe?: { key: string; everyMs: number; timeoutMs: number };
}

export interface NearCacheStats {
  /** Gets served from here. */
  hits: number;
  /** Sync PINGs sent. */
  syncs: number;
  /** Copies taken from Redis hits. */
  installs: number;
  /** Keys named by invalidation messages. */
  invalidations: number;
  /** Times everything was dropped (connection lost, flush, alive key changed). */
  resets: number;
}

/** What a copy holds: the entry as read, unexpired or not (expiry is checked at each hit). */
export interface NearEntry {
  readonly alive: string;
  readonly rev: number;
  readonly item: Item | undefined;
}

/** A cache read in flight on the tracked connection whose hit may be copied. */
export interface NearTicket {
  readonly key: string;
  readonly gen: number;
}

interface Stored extends NearEntry {
  readonly size: number;
}

interface Pending {
  n: number;
  dirty: boolean;
}

interface SyncRound {
  /** The known-revision keys (one per namespace and epoch) the round's Gets need, read with the PING. */
  readonly knownKeys: string[];
  /** The values read, in the order of knownKeys (null: absent); undefined when the sync failed. */
  readonly promise: Promise<(string | null)[] | undefined>;
  resolve(known: (string | null)[] | undefined): void;
}

export class NearCache {
  readonly stats: NearCacheStats = { hits: 0, syncs: 0, installs: 0, invalidations: 0, resets: 0 };
  private readonly entries = new Map<string, Stored>();
  private bytes = 0;
  /** Moves whenever tracking is set up or lost, or everything is dropped. */
  private gen = 0;
  private tracking = false;
  /** Moves whenever a connection is lost: a setup begun before it must not turn tracking on. */
  private session = 0;
  private subId: number | undefined;
  /** Reads in flight per entry key; dirty once an invalidation of that key arrived meanwhile. */
  private readonly pending = new Map<string, Pending>();
  /** The sync round Gets are joining (its PING not sent yet). */
  private round: SyncRound | undefined;
  private pinging = false;
  private scheduled = false;
  private settingUp = false;
  private setupAgain = false;
  private closed = false;
  /** The probe waiting for its invalidation. */
  private probeWait: { key: string; resolve: (seen: boolean) => void } | undefined;
  private probes = 0;
  private prober: Repeat | undefined;
  private probeFailing = false;

  constructor(
    /** The connection cache reads run on (tracked). */
    private readonly reader: Redis,
    /** The connection invalidations arrive on (subscribed; never auto-resubscribed). */
    private readonly sub: Redis,
    /** An untracked connection, for reading the known revision with each sync. */
    private readonly plain: Redis,
    private readonly opts: NearCacheOptions,
    private readonly log: Logger,
  ) {
    reader.on("close", () => this.lose());
    sub.on("close", () => {
      this.subId = undefined;
      this.lose();
    });
    reader.on("ready", () => void this.setup());
    sub.on("ready", () => void this.setup());
    sub.on("messageBuffer", (channel: Buffer, message: Buffer[] | Buffer | null) =>
      this.onInvalidate(channel, message),
    );
    if (opts.probe) {
      this.prober = new Repeat(() => this.checkTracking(), opts.probe.everyMs);
      this.prober.start(opts.probe.everyMs);
    }
  }

  /** True while tracking is on (near hits and copies possible). */
  active(): boolean {
    return this.tracking;
  }

  size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  /** Whether a copy of this entry is here now; serving it still needs sync(). */
  has(entryKey: string, alive: string): boolean {
    if (!this.tracking) return false;
    const e = this.entries.get(entryKey);
    return e !== undefined && e.alive === alive;
  }

  /**
   * The copy, read after a successful sync(): undefined when it is gone
   * (invalidated meanwhile) or belongs to another epoch.
   */
  get(entryKey: string, alive: string): NearEntry | undefined {
    if (!this.has(entryKey, alive)) return undefined;
    this.stats.hits++;
    return this.entries.get(entryKey);
  }

  /**
   * Resolves, once every invalidation Redis queued before this call's PING has
   * been applied, with the namespace's known revision (`knownKey`) read
   * with that PING; undefined if that cannot be known (tracking lost or
   * restarted, connection error, the key absent): then the caller reads
   * Redis instead.
   */
  sync(knownKey: string): Promise<number | undefined> {
    if (!this.tracking) return Promise.resolve(undefined);
    let round = this.round;
    if (round === undefined) {
      let resolve!: (known: (string | null)[] | undefined) => void;
      const promise = new Promise<(string | null)[] | undefined>((r) => (resolve = r));
      round = this.round = { knownKeys: [], promise, resolve };
      // Sent at the end of this turn, or when the PING in flight returns,
      // whichever is later: either way after every Get that joined it.
      if (!this.pinging && !this.scheduled) this.schedule();
    }
    let i = round.knownKeys.indexOf(knownKey);
    if (i < 0) i = round.knownKeys.push(knownKey) - 1;
    return round.promise.then((values) => {
      const v = values?.[i];
      return v === undefined || v === null ? undefined : Number(v);
    });
  }

  private schedule(): void {
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.ping();
    });
  }

  /** Sends the open round's PING; one at a time, so a burst of Gets shares few PINGs. */
  private ping(): void {
    const round = this.round;
    if (round === undefined || this.pinging) return;
    this.round = undefined;
    const gen = this.gen;
    if (!this.tracking) return round.resolve(undefined);
    this.stats.syncs++;
    this.pinging = true;
    const known = this.opts.getEachKnown
      ? Promise.all(round.knownKeys.map((k) => this.plain.get(k)))
      : this.plain.mget(...round.knownKeys);
    sendNow(this.plain);
    Promise.all([this.sub.ping(), known]).then(
      ([, k]) => this.pinged(round, this.tracking && this.gen === gen ? k : undefined),
      (err: unknown) => {
        this.log.debug("near cache sync failed", { error: (err as Error).message });
        this.pinged(round, undefined);
      },
    );
  }

  private pinged(round: SyncRound, known: (string | null)[] | undefined): void {
    this.pinging = false;
    round.resolve(known);
    // The next round goes at the end of this turn, gathering the Gets read meanwhile.
    if (this.round !== undefined && !this.scheduled) this.schedule();
  }

  /** Call before sending a cache read on the tracked connection; pass the ticket to endRead. */
  beginRead(entryKey: string): NearTicket | undefined {
    if (!this.tracking) return undefined;
    const p = this.pending.get(entryKey);
    if (p === undefined) this.pending.set(entryKey, { n: 1, dirty: false });
    else p.n++;
    return { key: entryKey, gen: this.gen };
  }

  /**
   * Ends a read begun with beginRead. With `hit`, copies it unless anything
   * that could make it stale happened while it was in flight.
   */
  endRead(ticket: NearTicket, hit?: NearEntry): void {
    const p = this.pending.get(ticket.key);
    let dirty = true;
    if (p !== undefined) {
      dirty = p.dirty;
      if (--p.n === 0) this.pending.delete(ticket.key);
    }
    if (hit === undefined || dirty || !this.tracking || ticket.gen !== this.gen) return;
    this.put(ticket.key, hit);
  }

  close(): void {
    this.closed = true;
    void this.prober?.stop();
    this.probeWait?.resolve(false);
    this.lose();
  }

  /** The periodic probe: while tracking is on, proves it; on failure drops everything and reconnects. */
  private async checkTracking(): Promise<void> {
    if (!this.tracking || this.probeWait !== undefined) return;
    const gen = this.gen;
    if (await this.proveTracking()) {
      if (this.probeFailing) this.log.warn("near cache on again: its tracking delivers invalidations");
      this.probeFailing = false;
      return;
    }
    if (this.closed || !this.tracking || gen !== this.gen) return;
    if (!this.probeFailing)
      this.log.warn("near cache off: its tracking connection did not deliver an invalidation in time; reconnecting", {
        timeout_ms: this.opts.probe?.timeoutMs,
      });
    this.probeFailing = true;
    this.lose();
    // New connections: their "ready" sets tracking up again, proven by a probe first.
    this.subId = undefined;
    this.sub.disconnect(true);
    this.reader.disconnect(true);
  }

  /** One probe round trip (see NearCacheOptions.probe): true when its invalidation arrived in time. */
  private async proveTracking(): Promise<boolean> {
    const probe = this.opts.probe;
    if (probe === undefined) return true;
    try {
      await this.reader.get(probe.key);
      const seen = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), probe.timeoutMs);
        this.probeWait = {
          key: probe.key,
          resolve: (ok) => {
            clearTimeout(timer);
            resolve(ok);
          },
        };
      });
      await this.plain.set(probe.key, String(++this.probes), "PX", Math.max(60_000, probe.everyMs * 10));
      return await seen;
    } catch (err) {
      this.log.debug("near cache probe failed", { error: (err as Error).message });
      return false;
    } finally {
      this.probeWait = undefined;
    }
  }

  private put(key: string, entry: NearEntry): void {
    const size = key.length * 2 + 200 + (entry.item ? entry.item.value.length + entry.item.key.length * 2 : 0);
    if (size > this.opts.maxBytes) return;
    this.remove(key);
    this.entries.set(key, { alive: entry.alive, rev: entry.rev, item: entry.item && ownCopy(entry.item), size });
    this.bytes += size;
    this.stats.installs++;
    // Oldest copies go first.
    for (const [k] of this.entries) {
      if (this.bytes <= this.opts.maxBytes) break;
      this.remove(k);
    }
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    this.entries.delete(key);
    this.bytes -= e.size;
  }

  private onInvalidate(channel: Buffer, message: Buffer[] | Buffer | null): void {
    if (channel.toString() !== CHANNEL) return;
    // null: FLUSHALL/FLUSHDB (or tracking table overflow handling): everything.
    if (message === null || !Array.isArray(message)) return this.dropAll();
    for (const b of message) {
      this.stats.invalidations++;
      const key = b.toString("latin1");
      if (this.probeWait !== undefined && key === this.probeWait.key) this.probeWait.resolve(true);
      else if (key.endsWith(":e")) this.drop(key);
      else if (key.endsWith(":w")) this.drop(`${key.slice(0, -2)}:e`);
      else if (key.endsWith(":alive")) this.dropAll();
    }
  }

  private drop(entryKey: string): void {
    this.remove(entryKey);
    const p = this.pending.get(entryKey);
    if (p !== undefined) p.dirty = true;
  }

  /** Drops every copy and voids every read and sync in flight; tracking stays as it is. */
  private dropAll(): void {
    this.gen++;
    this.stats.resets++;
    this.entries.clear();
    this.bytes = 0;
  }

  private lose(): void {
    if (this.tracking) this.log.debug("near cache off until tracking is set up again");
    this.tracking = false;
    this.session++;
    this.dropAll();
  }

  /** Sets tracking up on the current connections (again after any reconnect). */
  private async setup(): Promise<void> {
    if (this.settingUp) {
      this.setupAgain = true;
      return;
    }
    this.settingUp = true;
    try {
      do {
        this.setupAgain = false;
        await this.setupOnce().catch((err: unknown) => {
          this.log.debug("near cache tracking setup failed", { error: (err as Error).message });
        });
      } while (this.setupAgain && !this.closed);
    } finally {
      this.settingUp = false;
    }
  }

  private async setupOnce(): Promise<void> {
    if (this.closed || this.tracking) return;
    if (this.reader.status !== "ready" || this.sub.status !== "ready") return;
    const session = this.session;
    if (this.subId === undefined) {
      const id = Number(await this.sub.client("ID"));
      await this.sub.subscribe(CHANNEL);
      if (session !== this.session) return;
      this.subId = id;
    }
    await this.reader.client("TRACKING", "ON", "REDIRECT", String(this.subId));
    // Proven before any copy is served (with a probe).
    if (!(await this.proveTracking())) {
      this.log.debug("near cache tracking set up but not proven; retrying at the next probe");
      if (session === this.session && !this.closed)
        setTimeout(() => void this.setup(), this.opts.probe?.everyMs ?? 0).unref();
      return;
    }
    // A connection lost meanwhile moved the session: its next "ready" sets up again.
    if (session !== this.session || this.closed || this.reader.status !== "ready" || this.sub.status !== "ready")
      return;
    this.gen++;
    this.tracking = true;
    this.log.debug("near cache tracking on", { redirect: this.subId });
  }
}

/**
 * The item with its value in memory of its own. A value read from Redis is a
 * view into the connection's read buffer; kept as is, one small copy would
 * hold a whole socket read in memory.
 */
function ownCopy(item: Item): Item {
  const value = Buffer.allocUnsafeSlow(item.value.length);
  item.value.copy(value);
  return { ...item, value };
}
