/**
 * CacheEpoch: decides whether this replica may trust the Redis cache right now.
 *
 * The cache is split into epochs, numbered by the truth (a CacheEpochStore:
 * agentstate_state.cache_epoch in Postgres). Every Redis key carries the epoch; a new epoch starts with an
 * empty cache. The epoch moves when
 *  - a write could not mark its key in Redis (Redis down, slow, or lost data):
 *    the write bumps the epoch in its own transaction, then waits out the
 *    leases below before it is acknowledged;
 *  - Redis lost data (flush, restart, failover): the epoch's `alive` key is
 *    gone or carries another Redis run id.
 *
 * A replica serves from the cache only while it holds a lease: it re-reads the
 * epoch from Postgres every lease/3, and the lease lasts `leaseMs` from the
 * moment the read was sent. A new epoch is also "young" for `markerTtlMs`
 * (the write-in-flight marker TTL, which bounds every write transaction):
 * while young nobody hits or fills, so writes that began in an older epoch
 * (whose markers may be lost) have committed or aborted before the cache is
 * filled again.
 *
 * Namespace epochs (migrations/0019): the first three of those moves (a write
 * that could not mark, a write or append unseen by the owner's cache, a
 * revision that could not be noted) move only their namespace's epoch, within
 * the store epoch: the namespace's keys are named by both (nsKeyBase), so its
 * cache starts empty and young while every other namespace keeps serving.
 * Each lease read returns the namespace moves of the store epoch since the
 * last one this replica knows (all of them, numbered under the epoch row's
 * lock: agentstate_cache_lease), so a lease covers every namespace's current
 * epoch. What concerns the cache as a whole (owner, identity, lost data,
 * evictions, the eviction policy) still moves the store epoch, which starts
 * every namespace afresh.
 *
 * Ownership (mixed deployments): the cache's identity is an id kept in Redis
 * under the prefix (`identityKey`), so one Redis and prefix is one identity
 * whatever URL reaches it, and a Redis emptied or replaced is a new one. Each
 * lease read renews this identity's registration in the truth, which also
 * decides the epoch's owner (functions/agentstate_cache_lease.sql): a replica
 * serves hits and marks keys only in an epoch its identity owns. Otherwise
 * (another cache or a replica without one is live: a mixed deployment) its
 * writes go to the truth unmarked, which moves the epoch if it has an owner.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import { CACHE_WAIT_MARGIN_MS, type CacheEpochStore, type CacheLeaseState } from "../../domain/ports";
import { StoreUnavailableError } from "../../errors/errors";
import type { Logger } from "../../log/Logger";
import { Repeat } from "../../domain/repeat";
import { CacheNoteRevisionReply } from "./cacheReplies";
import { type ArmSnapshot, type CacheKeyspace, SingleRedisKeyspace, unsafeEvictionPolicy } from "./CacheKeyspace";
import type { CacheRedis } from "./cacheScripts";

export interface CacheEpochOptions {
  leaseMs: number;
  markerTtlMs: number;
  prefix: string;
  /** Where the cache is, for operators ("redis HOST:PORT/DB prefix P"); never a secret. */
  description: string;
  /** Told every lease read that renewed this identity's registration (mixed-deployment detection). */
  onLease?: (lease: CacheLeaseState, identity: string) => void;
  /** Where the keys live: one Redis (the default) or a Redis Cluster (see CacheKeyspace). */
  keyspace?: CacheKeyspace;
  /**
   * Re-read the Redis eviction policy at the lease renewal when the last read
   * is this old (unset: never). While a policy is unsafe the cache is off
   * (nothing served or marked), and leases end this long (plus the lease)
   * after the last read that found it safe.
   */
  evictionCheckMs?: number;
  /** Told when the cache turns off for an unsafe eviction policy (true) and back on (false). */
  onEvictionPolicy?: (unsafe: boolean) => void;
}

/** An arm snapshot must be this much older than the epoch's start as the lease read bounds it (clock rounding). */
const ARM_MARGIN_MS = 5;

/**
 * Most namespaces with an epoch of their own a replica keeps in one store
 * epoch. Beyond it (or when one lease read could not return every move), the
 * replica moves the store epoch, which starts every namespace afresh.
 */
export const NS_EPOCHS_MAX = 100_000;

/** A namespace whose epoch moved in the current store epoch: its epoch (the move's number), mature from matureAt. */
interface NsEpoch {
  nsEpoch: number;
  matureAt: number;
}

export class CacheEpoch {
  private epoch = 0;
  private leaseUntil = 0;
  private matureAt = Infinity;
  private runId: string | undefined;
  private aliveOk = false;
  /** Renews every lease/3, the next renewal once the last one settled. */
  private readonly renewal: Repeat;
  private refreshing: Promise<void> | undefined;
  /** This cache's identity as last read from Redis, and the one before it (for a hand-over). */
  private identity: string | undefined;
  private previous: string | undefined;
  /** Until then the former identity is passed along (its registration outlives the change by a lease). */
  private previousUntil = 0;
  /** True while this identity owns the epoch read last. */
  private owned = false;
  /** The identity that owned it (see ownedAs). */
  private ownedId: string | undefined;
  /** Moves with every doubt: a refresh begun before one must not trust what it read. */
  private doubts = 0;
  private readonly keyspace: CacheKeyspace;
  /** The unsafe eviction policy found at the last check, if any. */
  private unsafePolicy: string | undefined;
  /** Recent arm snapshots, oldest first, each with the time its reply came (see arm). */
  private snapshots: { at: number; arm: ArmSnapshot }[] = [];
  /** The epoch an eviction was last reported in (evicted), so it is moved once. */
  private evictedEpoch: number | undefined;
  private evictionWarned = false;
  private snapshotting = false;
  private policyCheckedAt = Number.NEGATIVE_INFINITY;
  /** The namespaces whose epoch moved in the current store epoch (the others are at 0). */
  private nsEpochs = new Map<string, NsEpoch>();
  /** The last namespace move known in the current store epoch (its number; 0: none). */
  private nsAfter = 0;
  /** Namespaces this replica moved since its last lease read: it serves nothing there until the next. */
  private nsMovedHere = new Set<string>();

  constructor(
    private readonly epochs: CacheEpochStore,
    private readonly redis: CacheRedis,
    private readonly opts: CacheEpochOptions,
    private readonly log: Logger,
  ) {
    this.keyspace = opts.keyspace ?? new SingleRedisKeyspace(redis as never);
    this.renewal = new Repeat(() => this.refresh(), Math.max(50, Math.floor(opts.leaseMs / 3)));
    // A reconnect may be a different Redis (restart, failover): forget what we
    // knew until the run id has been read again.
    this.keyspace.watch(() => {
      this.doubts++;
      this.runId = undefined;
      this.aliveOk = false;
    });
    redis.on("ready", () => void this.refresh());
  }

  start(): void {
    this.renewal.start();
  }

  /** No renewal starts after this; resolves once the one running (if any) has settled. */
  stop(): Promise<void> {
    return this.renewal.stop();
  }

  /** True when cache hits and fills in `namespace` are safe now (its epoch mature too). */
  canServe(namespace: string): boolean {
    const now = performance.now();
    const ns = this.nsEpochs.get(namespace);
    return (
      (ns === undefined || now >= ns.matureAt) &&
      !this.nsMovedHere.has(namespace) &&
      this.owned &&
      this.aliveOk &&
      this.runId !== undefined &&
      now < this.leaseUntil &&
      now >= this.matureAt &&
      this.policySafe(now)
    );
  }

  /**
   * True when writers can mark keys in the current epoch: as for serving, a
   * lease is needed (not a mature epoch). A replica whose lease has lapsed
   * (paused, cut off from Postgres) may believe in an epoch that has been
   * replaced and has matured meanwhile; a write marked in the old one would
   * commit while the new one serves without its marker.
   */
  canMark(): boolean {
    return (
      this.owned &&
      this.aliveOk &&
      this.runId !== undefined &&
      this.redis.status === "ready" &&
      performance.now() < this.leaseUntil &&
      this.policySafe()
    );
  }

  /**
   * When the read behind the current lease was sent (performance.now()). Any
   * epoch after the one it found began later, so it is young (nobody hits or
   * fills) until at least this plus markerTtlMs: a write marked in the epoch
   * it found must commit by then (CachedKvStore's commit window), so that,
   * should the epoch have moved meanwhile, its commit and the bump it then
   * makes happen while no replica serves the epoch that lacks its marker.
   */
  leaseReadAt(): number {
    return this.leaseUntil - this.opts.leaseMs;
  }

  /**
   * For a write that cannot mark its key: moves the epoch and waits out every
   * lease on the replaced one BEFORE the write is made (the write then moves
   * it again in its own transaction). A write that moved the epoch only in
   * its own transaction was visible to readers on Postgres from its commit,
   * while replicas still holding a lease on the replaced epoch served its
   * old value from the cache until their leases ended: a read of the new
   * value followed by a read of the old one (not linearizable, though no read
   * was older than an acknowledged write). Resolves with the commit deadline
   * of the write (performance.now()): the epoch this move began is young
   * until then. Rejects (nothing written) when the epoch cannot be moved.
   */
  async fenceBeforeWrite(namespace: string, statementTimeoutMs: number): Promise<number> {
    const sent = performance.now();
    let waitMs: number;
    try {
      waitMs = await this.epochs.moveNamespace(namespace);
    } catch (err) {
      this.log.debug("cache epoch move failed", { error: (err as Error).message });
      throw new StoreUnavailableError("database unavailable: the cache epoch could not be moved before the write");
    }
    this.moved(namespace);
    await sleep(this.waitAfterMoveMs(waitMs));
    return sent + this.opts.markerTtlMs - statementTimeoutMs;
  }

  /**
   * This replica moved `namespace`'s epoch: it serves nothing there until a
   * refresh has read the move (the wait that follows a move covers every
   * lease on the replaced epoch, this one's included; this only keeps the
   * replica off a cache it knows is being replaced).
   */
  private moved(namespace: string): void {
    this.nsMovedHere.add(namespace);
    void this.refresh();
  }

  /**
   * How long a change waits after this replica moved its namespace's epoch:
   * every lease this replica's settings allow on the replaced epoch (its age
   * is not known here), and what the truth counted for the owner's (`waitMs`).
   */
  private waitAfterMoveMs(waitMs: number): number {
    return Math.max(this.waitAfterBumpMs(Number.POSITIVE_INFINITY), waitMs + CACHE_WAIT_MARGIN_MS);
  }

  /**
   * The epoch of `namespace` within the current store epoch (0: it has not
   * moved in it), as the last lease read found it: a marked write names it
   * (CacheFence), and the namespace's keys are named by it (nsKeyBase).
   */
  nsEpoch(namespace: string): number {
    return this.nsEpochs.get(namespace)?.nsEpoch ?? 0;
  }

  /**
   * The base of `namespace`'s item keys and known revision: the store
   * epoch's, and the namespace's epoch after it when it has one (0 keeps the
   * store epoch's names, those replicas of release 5 use for every namespace).
   */
  nsKeyBase(namespace: string): string {
    const ns = this.nsEpoch(namespace);
    return ns === 0 ? this.keyBase() : `${this.keyBase()}.${ns}`;
  }

  /**
   * The same for a write while this cache does not own the epoch: the truth
   * moves it if another cache owns it, and the write waits out that owner's
   * leases (and a replaced owner's quiet time) before it is made.
   */
  async fenceUnownedBeforeWrite(namespace: string, statementTimeoutMs: number): Promise<number> {
    const sent = performance.now();
    let waitMs: number;
    try {
      waitMs = await this.epochs.fenceChange(namespace);
    } catch (err) {
      this.log.debug("cache fence failed", { error: (err as Error).message });
      throw new StoreUnavailableError("database unavailable: the cache epoch could not be moved before the write");
    }
    if (waitMs > 0) await sleep(waitMs + CACHE_WAIT_MARGIN_MS);
    return sent + this.opts.markerTtlMs - statementTimeoutMs;
  }

  /**
   * True while this cache's identity owns the epoch read last. When it does
   * not, writes carry no cache fence: the truth moves the epoch if another
   * identity owns it.
   */
  owns(): boolean {
    return this.owned;
  }

  /**
   * The identity this cache owned the epoch read last under (while owns()):
   * a marked write names it, and the truth checks it is the epoch's owner.
   */
  ownedAs(): string {
    return this.owned ? (this.ownedId ?? "") : "";
  }

  /**
   * The Redis key holding this cache's identity. On a Redis Cluster it is one
   * key like any other (readIdentity sends single-key commands, so its slot,
   * whichever it is, is all it needs); a failover that loses it makes a new
   * identity, a hand-over like an emptied Redis, and one that keeps it keeps
   * the identity: the masters' run ids in the alive keys move the epoch
   * (CacheKeyspace), as a restart does on a single Redis that kept its data.
   */
  identityKey(): string {
    return `${this.opts.prefix}:id`;
  }

  /** False while the eviction policy is unsafe, or not read recently enough to know (evictionCheckMs). */
  private policySafe(now = performance.now()): boolean {
    const every = this.opts.evictionCheckMs;
    if (every === undefined) return true;
    return this.unsafePolicy === undefined && now < this.policyCheckedAt + every + this.opts.leaseMs;
  }

  /**
   * Re-reads the eviction policy when due. On a change either way, moves the
   * epoch: keys of the current one may have been evicted while the policy was
   * unsafe, before this check saw it. True when it changed.
   */
  private async checkEvictionPolicy(epoch: number): Promise<boolean> {
    const every = this.opts.evictionCheckMs;
    const sent = performance.now();
    if (every === undefined || sent - this.policyCheckedAt < every) return false;
    const policy = unsafeEvictionPolicy(await this.keyspace.evictionPolicies());
    this.policyCheckedAt = sent;
    if (policy === this.unsafePolicy) return false;
    this.unsafePolicy = policy;
    this.opts.onEvictionPolicy?.(policy !== undefined);
    if (policy !== undefined) {
      this.log.warn(
        "cache off: redis maxmemory-policy may evict write markers; serving from postgres until it is noeviction or volatile-*",
        { policy },
      );
    } else {
      this.log.warn("cache on again: redis maxmemory-policy no longer evicts write markers");
    }
    void this.takeSnapshot(); // read before the next epoch begins (if it answers first): it can arm it
    await this.epochs.bump(epoch, true); // the replaced epoch's keys stay readable: changes wait out its leases
    return true;
  }

  /** The epoch this replica currently believes in. */
  current(): number {
    return this.epoch;
  }

  /** The value the epoch's alive key must hold; scripts refuse to run otherwise. */
  aliveValue(): string {
    return this.keyspace.aliveValue(this.epoch, this.runId ?? "?");
  }

  keyBase(): string {
    return `${this.opts.prefix}:c:${this.epoch}`;
  }

  /** The alive key the scripts on `namespace`'s keys check. */
  aliveKey(namespace: string): string {
    return this.keyspace.aliveKey(this.keyBase(), namespace);
  }

  /**
   * The epoch's armed key for `namespace`'s scripts: the Redis counters
   * (evicted keys, CONFIG SET and RESETSTAT calls, commands processed) read
   * before the epoch began, under a policy that evicts no key without a TTL.
   * The scripts that store an entry or raise a known revision compare them
   * with the current ones and refuse (EVICTED) unless no key was evicted
   * since, or CONFIG SET was not called since (the policy is still that safe
   * one). A hit needs no check: entries and known revisions are only written
   * by checked scripts, and an entry never coexists with a live marker.
   */
  armedKey(namespace: string): string {
    return this.keyspace.armedKey(this.keyBase(), namespace);
  }

  /**
   * A script found that keys without a TTL may have been evicted in this
   * epoch (EVICTED): stop trusting it, and move the epoch once (the next one
   * is armed with counters read before it began). Its alive keys are dropped
   * so that on a cluster, where they outlive epochs, the next one writes
   * them again with its arm.
   */
  evicted(): void {
    this.aliveOk = false;
    const epoch = this.epoch;
    if (this.evictedEpoch === epoch) return;
    this.evictedEpoch = epoch;
    const fields = { epoch };
    if (this.evictionWarned) this.log.debug("cache epoch moved: redis evicted keys since the epoch was armed", fields);
    else
      this.log.warn(
        "cache epoch moved: redis evicted keys since the epoch was armed (a maxmemory-policy that evicts keys without a TTL, or CONFIG RESETSTAT)",
        fields,
      );
    this.evictionWarned = true;
    void this.keyspace
      .dropAlive(this.keyBase())
      .catch(() => undefined)
      .then(() => this.epochs.bump(epoch))
      .catch((err: unknown) => this.log.debug("cache epoch bump failed", { error: (err as Error).message }))
      .finally(() => void this.refresh());
  }

  /** The common part of the keys of one item (`hash`: of its namespace and key) in this epoch. */
  itemKeyBase(namespace: string, hash: string): string {
    return this.keyspace.itemBase(this.nsKeyBase(namespace), namespace, hash);
  }

  /**
   * The namespace's known revision in this epoch: the highest revision of the
   * namespace known committed, raised by every write that ends through the
   * cache (cacheEndWrite), every fill (cacheFill: the revision it read from
   * Postgres) and every append (noteRevision). Seeded lazily: while it is
   * absent, cacheRead serves no hit in the namespace (a miss, whose fill then
   * seeds it from Postgres), so a hit never invents a revision. Once present
   * it is at least every revision of the namespace acknowledged in this epoch
   * (each raised it before its reply) or before it (the fill that created it
   * read Postgres after them).
   *
   * Redis Cluster: a cache script touches this key and an item's keys, so on
   * a cluster they share a slot: every key of a namespace is tagged with the
   * namespace (CacheKeyspace; one slot per namespace, so a hot namespace is
   * one shard; keeping the known revision per item slot instead would make
   * every noteRevision raise it in each slot the namespace uses).
   */
  knownRevisionKey(namespace: string): string {
    return this.keyspace.knownRevisionKey(this.nsKeyBase(namespace), namespace);
  }

  /**
   * Raises the namespace's known revision in this epoch; false when it could
   * not (Redis down or failing, epoch gone): the caller must then fence the
   * cache (fenceUnnoted) before it acknowledges the change.
   *
   * `keyBaseBefore`: the namespace's key base (nsKeyBase) when the change was
   * sent to the truth. If the namespace's epoch has moved since, the move may
   * have been committed after the change, so the truth's wait (the change's
   * cacheWaitMs) did not count it, while a replica whose lease predates the
   * move may still serve the replaced epoch, where this revision is never
   * noted: the revision is noted in the new epoch, and then the truth is
   * asked again how long changes in the namespace must wait (cache_change_wait),
   * and that is waited out before this resolves. No new move: appends in
   * flight across a move would otherwise each move the namespace again.
   */
  async noteRevision(namespace: string, revision: number, keyBaseBefore?: string): Promise<boolean> {
    if (!this.canMark()) return false;
    const noted = await this.noteIn(namespace, revision);
    if (noted && keyBaseBefore !== undefined && keyBaseBefore !== this.nsKeyBase(namespace)) {
      // If the truth cannot be asked: the wait fenceUnnoted makes when its move fails (no lease can be renewed either).
      const wait = await this.epochs
        .changeWaitMs(namespace)
        .then((ms) => ms + CACHE_WAIT_MARGIN_MS)
        .catch(() => this.waitAfterMoveMs(0));
      this.log.debug("cache epoch moved between a change and its note", { wait_ms: Math.round(wait) });
      if (wait > 0) await sleep(wait);
    }
    return noted;
  }

  private async noteIn(namespace: string, revision: number): Promise<boolean> {
    const alive = this.aliveValue();
    try {
      const r = await this.redis.cacheNoteRevision(
        this.aliveKey(namespace),
        this.knownRevisionKey(namespace),
        this.armedKey(namespace),
        alive,
        String(revision),
      );
      if (r === CacheNoteRevisionReply.DONE) return true;
      if (r === CacheNoteRevisionReply.EVICTED) this.evicted();
      else this.distrust();
      return false;
    } catch {
      return false;
    }
  }

  /**
   * For a change acknowledged without raising its namespace's known revision
   * (noteRevision or a write's install failed): moves the namespace to a new
   * epoch and waits out every lease that could serve the old one, as a write
   * that could not mark its key does, so no hit reports a revision below it.
   */
  async fenceUnnoted(namespace: string): Promise<void> {
    // Unconditional: the epoch this replica believes in may be gone already,
    // and the current one may hold the namespace's known revision below this change.
    const waitMs = await this.epochs.moveNamespace(namespace).catch((err: unknown) => {
      this.log.debug("cache epoch move failed", { error: (err as Error).message });
      return 0;
    });
    this.log.debug("cache epoch moved: a revision could not be noted", { from_epoch: this.epoch });
    this.moved(namespace);
    // The replaced epoch's age is not known here: wait as long as the worst case.
    // (If the move failed, Postgres is unreachable: no lease can be renewed,
    // so every lease has ended after this wait all the same.)
    await sleep(this.waitAfterMoveMs(waitMs));
  }

  /**
   * For a change acknowledged while this cache did not own the epoch (an
   * append, which no cache noted): the truth moves the epoch if another cache
   * owns it, and the change waits out that owner's leases and any replaced
   * owner's quiet time. If the truth cannot be asked, waits as fenceUnnoted.
   */
  async fenceUnowned(namespace: string): Promise<void> {
    let waitMs: number;
    try {
      waitMs = await this.epochs.fenceChange(namespace);
    } catch {
      return this.fenceUnnoted(namespace);
    }
    if (waitMs > 0) await sleep(waitMs + CACHE_WAIT_MARGIN_MS);
  }

  /** A script found the alive key missing or different: stop trusting the cache and re-check now. */
  distrust(): void {
    this.aliveOk = false;
    void this.refresh();
  }

  /**
   * How long a write that bumped the epoch must wait after commit before it
   * is acknowledged, so every lease on an epoch that could have served reads
   * has expired. `prevAgeMs` is the replaced epoch's age at the bump.
   */
  waitAfterBumpMs(prevAgeMs: number): number {
    const { leaseMs, markerTtlMs } = this.opts;
    const margin = 50 + leaseMs / 10;
    // Leases on the replaced epoch were granted before the bump and end within
    // leaseMs of it; that epoch serves only from its maturity (markerTtlMs
    // after it began). If it could mature before those leases end, wait them out.
    if (prevAgeMs + leaseMs + margin >= markerTtlMs) return leaseMs + margin;
    // Otherwise only leases on older epochs can be live, and they end leaseMs
    // after the replaced epoch began.
    return Math.max(0, leaseMs - prevAgeMs) + margin;
  }

  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh()
        .catch((err: unknown) => {
          this.log.debug("cache epoch refresh failed", { error: (err as Error).message });
        })
        .finally(() => {
          this.refreshing = undefined;
        });
    }
    return this.refreshing;
  }

  /**
   * The identity stored in Redis under the prefix, created (SET NX, so
   * replicas agree) when absent: a new or emptied Redis is a new identity.
   * Undefined when Redis cannot answer.
   */
  private async readIdentity(): Promise<string | undefined> {
    if (this.redis.status !== "ready") return undefined;
    try {
      const key = this.identityKey();
      let id = await this.redis.get(key);
      if (id === null) {
        await this.redis.set(key, randomBytes(12).toString("hex"), "NX");
        id = await this.redis.get(key);
      }
      if (id === null) return undefined;
      if (id !== this.identity) {
        if (this.identity !== undefined) {
          this.previous = this.identity;
          this.previousUntil = performance.now() + 2 * this.opts.leaseMs;
          this.log.warn("cache identity changed: redis was emptied or replaced", { from: this.identity, to: id });
        }
        this.identity = id;
      }
      return id;
    } catch {
      return undefined;
    }
  }

  /**
   * Reads the arm counters of every server and keeps them with the time the
   * reply came (the counters are older than that). Failures only cost an arm.
   */
  private async takeSnapshot(): Promise<void> {
    if (this.redis.status !== "ready" || this.snapshotting) return;
    this.snapshotting = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Bounded: a command queued on a node that never answers must not stop every later snapshot.
      const arm = await Promise.race([
        this.keyspace.armSnapshot(),
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), Math.max(1000, this.opts.leaseMs)).unref();
        }),
      ]);
      if (arm === undefined) return;
      this.snapshots.push({ at: performance.now(), arm });
      if (this.snapshots.length > 4) this.snapshots.shift();
    } catch {
      // no snapshot this time
    } finally {
      clearTimeout(timer);
      this.snapshotting = false;
    }
  }

  /**
   * The latest snapshot read before the epoch began (it began no earlier
   * than `sent - ageMs`: the lease read was sent at `sent` and found it
   * `ageMs` old), or undefined.
   */
  private armFor(sent: number, ageMs: number): ArmSnapshot | undefined {
    const began = sent - ageMs - ARM_MARGIN_MS;
    for (let i = this.snapshots.length - 1; i >= 0; i--)
      if (this.snapshots[i]!.at < began) return this.snapshots[i]!.arm;
    return undefined;
  }

  private async doRefresh(): Promise<void> {
    // Not awaited: a server that does not answer must not hold the lease renewal up.
    void this.takeSnapshot();
    const sent = performance.now();
    // While Redis is unreachable the identity last confirmed is renewed: a
    // replaced Redis shows itself when it answers, and meanwhile nothing is served.
    const identity = (await this.readIdentity()) ?? (this.redis.status === "ready" ? undefined : this.identity);
    const row = await this.epochs.lease({
      identity,
      previous: this.previous,
      description: this.opts.description,
      leaseMs: this.opts.leaseMs,
      mayOwn: true,
      nsMoves: { epoch: this.epoch, after: this.nsAfter },
    });
    if (!row) return;
    const got = performance.now();
    if (identity !== undefined) this.opts.onLease?.(row, identity);
    if (row.epoch !== this.epoch) {
      this.aliveOk = false;
      this.epoch = row.epoch;
      // The moves of a new store epoch: the reply lists them from its first.
      this.nsEpochs.clear();
      this.nsAfter = 0;
    }
    for (const m of row.moves) {
      this.nsEpochs.set(m.namespace, {
        nsEpoch: m.nsEpoch,
        matureAt: got + Math.max(0, this.opts.markerTtlMs - m.ageMs),
      });
      this.nsAfter = m.nsEpoch;
    }
    // Namespaces this replica moved: this read lists the move, or was sent
    // before it (the next one lists it), or the move failed. Either way the
    // namespace's epoch is the one this read left (never 0 in its place).
    this.nsMovedHere.clear();
    if (row.movesMore || this.nsEpochs.size > NS_EPOCHS_MAX) {
      // Not every move is known: no lease from this read. A new store epoch starts every namespace afresh.
      this.leaseUntil = 0;
      this.aliveOk = false;
      this.log.warn("cache epoch moved: too many namespace epochs moved in this store epoch", {
        from_epoch: row.epoch,
        namespaces: this.nsEpochs.size,
      });
      await this.epochs.bump(row.epoch, true); // the replaced epoch's keys stay readable: changes wait out its leases
      setTimeout(() => void this.refresh(), 10).unref();
      return;
    }
    // A lease only from a renewal of the owner's registration (identity
    // confirmed in Redis just before): the truth then counts it in lease_until.
    this.owned = identity !== undefined && row.owner === identity;
    this.ownedId = this.owned ? identity : undefined;
    if (this.owned && performance.now() > this.previousUntil) this.previous = undefined;
    this.leaseUntil = this.owned ? sent + this.opts.leaseMs : 0;
    this.matureAt = got + Math.max(0, this.opts.markerTtlMs - row.ageMs);
    const young = row.ageMs < this.opts.markerTtlMs;

    if (this.redis.status !== "ready" || !this.owned) {
      // Not the owner: the alive key is the owner's business (a mixed
      // deployment would otherwise move the epoch at every refresh).
      this.aliveOk = false;
      return;
    }
    if (await this.checkEvictionPolicy(row.epoch)) {
      // Serve again only in the epoch that followed the change.
      this.aliveOk = false;
      setTimeout(() => void this.refresh(), 10).unref();
      return;
    }
    const doubts = this.doubts;
    if (this.runId === undefined) {
      const id = await this.keyspace.identity();
      // Doubted meanwhile: the next refresh asks again.
      if (doubts !== this.doubts) return;
      this.runId = id;
    }
    const want = this.aliveValue();
    const keys = this.keyspace.sampleAliveKeys(this.keyBase());
    let alive = await Promise.all(keys.map((k) => this.redis.get(k)));
    let unarmed = false;
    if (alive.some((v) => v !== want) && young) {
      const arm = this.armFor(sent, row.ageMs);
      // Without a snapshot from before the epoch began, another replica (or a later epoch) arms it.
      unarmed = arm === undefined;
      if (arm !== undefined) {
        await this.keyspace.createAliveKeys(this.keyBase(), want, () => performance.now() < this.matureAt, arm);
        alive = await Promise.all(keys.map((k) => this.redis.get(k)));
      }
    }
    if (alive.every((v) => v === want)) {
      // Known revisions are per namespace and seeded lazily (knownRevisionKey).
      if (doubts === this.doubts) this.aliveOk = true;
      return;
    }
    // The epoch is mature but Redis no longer holds its alive key (or holds
    // another Redis's): Redis lost or replaced data. Start a new epoch.
    this.aliveOk = false;
    // Read before the next epoch begins, so that epoch can be armed (bounded: takeSnapshot gives up
    // after a lease); without it a first start moved the epoch again and again until a snapshot won the race.
    await this.takeSnapshot();
    const bumped = await this.epochs.bump(row.epoch);
    if (unarmed) {
      // Nothing was lost: this epoch was never armed (a first start, or Redis answered late). Not a warning.
      this.log.info("cache epoch moved: no counter snapshot from before this epoch began; the next one is armed", {
        from_epoch: row.epoch,
        bumped,
      });
    } else {
      this.log.warn("cache epoch moved: redis does not hold this epoch (first start, flush, restart or failover)", {
        from_epoch: row.epoch,
        bumped,
      });
    }
    // Pick up the new epoch promptly (the next tick would too).
    setTimeout(() => void this.refresh(), 10).unref();
  }
}
