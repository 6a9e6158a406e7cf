/**
 * CachedKvStore: the truth (a DurableKvStore, i.e. Postgres) behind a Redis
 * write-through cache whose reads are never older than the latest
 * acknowledged write (guarantee 3).
 *
 * Protocol (the Lua scripts in ./lua state each step's contract):
 *  - A write marks its key in flight (cacheBeginWrite: marker, entry dropped,
 *    fill tokens voided) before its transaction, commits, then installs the
 *    new state (cacheEndWrite, one call for the writes of a batch: EndWrites)
 *    before it answers. If it cannot mark the key, it moves the cache epoch
 *    in its transaction and waits out the leases (see CacheEpoch) before
 *    answering. Both are the write's cache fence
 *    (CacheFence in domain/ports.ts), which the truth checks in the write's
 *    own transaction.
 *  - A read is served from Redis only when this replica holds a lease on a
 *    mature epoch and no write is in flight on the key. On a miss it reads
 *    Postgres and fills only with the fill token it got at the miss, which any
 *    write beginning or ending in between has voided.
 *  - A write never commits after its marker's expiry (commit deadline), and
 *    statement timeouts bound every statement.
 *  - Hits are also kept in this replica's near cache, served after a sync
 *    with Redis's invalidations instead of a Redis read (see NearCache).
 *  - All of this only while this cache owns the epoch (CacheEpoch: other
 *    caches, or replicas without one, may serve the same database). When it
 *    does not, a read goes to Postgres and a write goes to it unmarked: the
 *    truth moves the epoch if another cache owns it, and says how long the
 *    write must wait before it answers.
 * Redis errors never fail a request: reads fall back to Postgres, writes take
 * the epoch path. List always reads Postgres.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { hash, randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type {
  Item,
  KvStore,
  ListQuery,
  ListResult,
  ReadConsistency,
  ReadResult,
  WriteCommand,
  WriteOptions,
  WriteOutcome,
} from "../../domain/types";
import { CACHE_WAIT_MARGIN_MS, type DurableKvStore, type EpochBump } from "../../domain/ports";
import {
  CallerCancelledError,
  DeadlinePassedError,
  FenceStaleError,
  FenceUnknownError,
  IdempotencyKeyReusedError,
  InvalidArgumentError,
  StatementTimedOutError,
} from "../../errors/errors";
import type { Logger } from "../../log/Logger";
import type { CacheEpoch } from "./CacheEpoch";
import { CacheBeginWriteReply, CacheEndWriteReply, CacheFillReply, CacheReadReply } from "./cacheReplies";
import type { CacheCommands, CacheRedis } from "./cacheScripts";
import { EndWrites } from "./EndWrites";
import type { NearEntry } from "./NearCache";
import type { NearCacheLike } from "./NearCacheGroup";

export interface CachedKvStoreOptions {
  /** Told the outcome of every cache read attempt (metrics). */
  observeRead?: (outcome: CacheReadOutcome) => void;
  /** Told the outcome of every write at the cache (metrics). */
  observeWrite?: (outcome: CacheWriteOutcome) => void;
  /** Told of every hit served from the near cache (also counted as a hit). */
  observeNearHit?: () => void;
  /**
   * This replica's near cache, with the tracked connection cache reads then
   * run on (see NearCache). Without it reads run on the main connection.
   */
  near?: { cache: NearCacheLike; reader: Pick<CacheCommands, "cacheReadBuffer"> };
  cacheTtlMs: number;
  markerTtlMs: number;
  statementTimeoutMs: number;
}

interface EntryMeta {
  /** Absent when the entry records that the key does not exist. */
  i?: {
    ct: string;
    ver: number;
    cr: number;
    mr: number;
    ctm: number;
    utm: number;
    etm: number | null;
  };
}

/**
 * What became of a Get at the cache (agentstate_cache_reads_total): served
 * from the cache (`hit`), read from Postgres after a miss (`miss`, and `fill`
 * when that read then filled the cache), kept off the cache by a write in
 * flight (`bypass`) or by holding no lease on a mature epoch (`unleased`:
 * Redis down, a new epoch), or a Redis error on the read or its fill (`error`).
 */
export const CACHE_READ_OUTCOMES = ["hit", "miss", "fill", "bypass", "unleased", "error"] as const;
export type CacheReadOutcome = (typeof CACHE_READ_OUTCOMES)[number];

/**
 * What became of a write at the cache (agentstate_cache_writes_total): its key
 * was marked in flight first (`marked`), or could not be (`unmarked`: Redis
 * down, slow or failing; the write moved the cache epoch instead), or this
 * cache does not own the epoch (`unowned`: a mixed deployment, or just after
 * a change; written to the truth alone, which moves the epoch if another
 * cache owns it), or the install of the new state after the commit failed
 * (`install_error`: readers stay on Postgres until the marker expires).
 */
export const CACHE_WRITE_OUTCOMES = ["marked", "unmarked", "unowned", "install_error"] as const;
export type CacheWriteOutcome = (typeof CACHE_WRITE_OUTCOMES)[number];

export interface CacheStats {
  reads: Record<CacheReadOutcome, number>;
  writes: Record<CacheWriteOutcome, number>;
}

const zeros = <K extends string>(keys: readonly K[]) =>
  Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;

export class CachedKvStore implements KvStore {
  readonly stats: CacheStats = { reads: zeros(CACHE_READ_OUTCOMES), writes: zeros(CACHE_WRITE_OUTCOMES) };
  /** Cache fills started and not yet settled (see settle). */
  private readonly inflight = new Set<Promise<void>>();
  private readonly near: NearCacheLike | undefined;
  private readonly hashes = new Map<string, string>();
  private readonly reader: Pick<CacheCommands, "cacheReadBuffer">;
  private readonly endWrites: EndWrites;

  constructor(
    private readonly pg: DurableKvStore,
    private readonly redis: CacheRedis,
    private readonly epoch: CacheEpoch,
    private readonly opts: CachedKvStoreOptions,
    private readonly log: Logger,
  ) {
    this.near = opts.near?.cache;
    this.reader = opts.near?.reader ?? redis;
    this.endWrites = new EndWrites(redis);
  }

  private count(outcome: CacheReadOutcome): void {
    this.stats.reads[outcome]++;
    this.opts.observeRead?.(outcome);
  }

  private countWrite(outcome: CacheWriteOutcome): void {
    this.stats.writes[outcome]++;
    this.opts.observeWrite?.(outcome);
  }

  list(query: ListQuery): Promise<ListResult> {
    return this.pg.list(query);
  }

  async get(namespace: string, key: string, consistency: ReadConsistency): Promise<ReadResult> {
    if (consistency === "database") return this.pg.get(namespace, key, consistency);
    if (!this.epoch.canServe(namespace)) {
      this.count("unleased");
      return this.pg.get(namespace, key, consistency);
    }
    // The keys are named by the namespace's epoch: a reply is served only if it is still the current one.
    const nsEpoch = this.epoch.nsEpoch(namespace);
    const serves = () => this.epoch.canServe(namespace) && this.epoch.nsEpoch(namespace) === nsEpoch;
    const keys = this.keysFor(namespace, key);
    const alive = this.epoch.aliveValue();
    const near = this.near;
    if (near !== undefined && near.has(keys[1], alive)) {
      const known = await near.sync(keys[5]);
      // After the sync, and re-checking the lease, as for a Redis hit.
      const entry = known !== undefined && serves() ? near.get(keys[1], alive) : undefined;
      if (entry !== undefined) {
        this.count("hit");
        this.opts.observeNearHit?.();
        return readResult(entry.item, Math.max(entry.rev, known!));
      }
    }
    const ticket = near?.beginRead(keys[1]);
    let token: string;
    try {
      const r = (await this.reader.cacheReadBuffer(...keys, alive, nextId(), String(this.opts.markerTtlMs))) as
        [number] | [number, Buffer, Buffer, Buffer] | [number, Buffer];
      const code = r[0];
      if (code === CacheReadReply.HIT) {
        const [, revBuf, meta, bytes, knownBuf] = r as unknown as [number, Buffer, Buffer, Buffer, Buffer];
        const entry: NearEntry = { alive, rev: Number(revBuf.toString("latin1")), item: parseEntry(key, meta, bytes) };
        const known = Number(knownBuf.toString("latin1"));
        if (ticket !== undefined) near!.endRead(ticket, entry);
        // Re-check the lease: the reply must not be older than it.
        if (serves()) {
          this.count("hit");
          return readResult(entry.item, Math.max(entry.rev, known));
        }
        return this.pg.get(namespace, key, consistency);
      }
      if (ticket !== undefined) near!.endRead(ticket);
      if (code === CacheReadReply.EPOCH_GONE) {
        this.epoch.distrust();
        return this.pg.get(namespace, key, consistency);
      }
      if (code === CacheReadReply.WRITE_IN_FLIGHT) {
        this.count("bypass");
        return this.pg.get(namespace, key, consistency);
      }
      token = (r[1] as Buffer).toString();
    } catch (err) {
      if (ticket !== undefined) near!.endRead(ticket);
      this.count("error");
      this.log.debug("cache read failed", { error: (err as Error).message });
      return this.pg.get(namespace, key, consistency);
    }
    this.count("miss");
    const res = await this.pg.get(namespace, key, consistency);
    // The reply does not wait for the fill: it does not depend on it, and a
    // fill that lands late is what the token and the revision compare in
    // cacheFill guard against (any write that began meanwhile voided the token).
    this.track(this.fill(namespace, keys, alive, token, res));
    return res;
  }

  /**
   * Resolves when every cache fill started so far has settled. Called before
   * the Redis connection closes, so a fill in flight at shutdown finishes
   * instead of failing on a closed connection.
   */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    const done = () => void this.inflight.delete(p);
    p.then(done, done);
  }

  /** Never rejects: a fill is best effort, and its failure only costs a later miss. */
  private async fill(namespace: string, keys: CacheKeys, alive: string, token: string, res: ReadResult): Promise<void> {
    try {
      const [meta, bytes] = encodeEntry(res.item);
      const filled = await this.redis.cacheFill(
        ...keys,
        this.epoch.armedKey(namespace),
        alive,
        token,
        String(res.revision),
        meta,
        bytes,
        String(this.entryTtlMs(res.item)),
      );
      if (filled === CacheFillReply.STORED) this.count("fill");
      else if (filled === CacheFillReply.EPOCH_GONE) this.epoch.distrust();
      else if (filled === CacheFillReply.EVICTED) this.epoch.evicted();
    } catch (err) {
      this.count("error");
      this.log.debug("cache fill failed", { error: (err as Error).message });
    }
  }

  async write(cmd: WriteCommand, opts: WriteOptions = {}): Promise<WriteOutcome> {
    const keys = this.keysFor(cmd.namespace, cmd.key);
    const armed = this.epoch.armedKey(cmd.namespace);
    const writerId = nextId();
    const started = performance.now();
    const alive = this.epoch.aliveValue();
    const markedEpoch = this.epoch.current();
    const markedNsEpoch = this.epoch.nsEpoch(cmd.namespace);
    const markedBy = this.epoch.ownedAs();
    // Read in the same turn as the epoch: the lease read that found it.
    const leaseReadAt = this.epoch.leaseReadAt();
    if (!this.epoch.owns()) {
      // Another cache (or none) owns the epoch, or a mix left it without an
      // owner: the truth decides, and moves the epoch if it has an owner.
      this.countWrite("unowned");
      // Moved first, and waited out, before the write is made: see fenceBeforeWrite.
      const commitBy = await this.epoch.fenceUnownedBeforeWrite(cmd.namespace, this.opts.statementTimeoutMs);
      const { epochBump, cacheWaitMs, ...outcome } = await this.pg.write(cmd, {
        ...opts,
        cacheFence: { kind: "unowned", commitBy },
      });
      await this.waitOut(epochBump, cacheWaitMs);
      return outcome;
    }
    let marked = false;
    if (this.epoch.canMark()) {
      try {
        const r = await this.redis.cacheBeginWrite(...keys, alive, writerId, String(this.opts.markerTtlMs));
        marked = r === CacheBeginWriteReply.MARKED;
        if (r === CacheBeginWriteReply.EPOCH_GONE) this.epoch.distrust();
      } catch (err) {
        this.log.debug("cache mark failed", { error: (err as Error).message });
      }
    }
    this.countWrite(marked ? "marked" : "unmarked");
    if (!marked) {
      // The epoch is moved and its leases waited out before the write is made,
      // so that no replica serves the old value once the new one is visible
      // (CacheEpoch.fenceBeforeWrite); the write moves it again when it commits.
      const commitBy = await this.epoch.fenceBeforeWrite(cmd.namespace, this.opts.statementTimeoutMs);
      const { epochBump, cacheWaitMs, ...outcome } = await this.pg.write(cmd, {
        ...opts,
        cacheFence: { kind: "bump", commitBy },
      });
      await this.waitOut(epochBump, cacheWaitMs);
      return outcome;
    }
    // Leave room for the slowest COMMIT (bounded by the statement timeout) inside the marker's life,
    // and inside the youth of any epoch that replaced the one marked in (CacheEpoch.leaseReadAt).
    const commitBy = Math.min(started, leaseReadAt) + this.opts.markerTtlMs - this.opts.statementTimeoutMs;
    let out;
    try {
      out = await this.pg.write(cmd, {
        ...opts,
        cacheFence: { kind: "marked", epoch: markedEpoch, nsEpoch: markedNsEpoch, commitBy, identity: markedBy },
      });
    } catch (err) {
      // Refused before COMMIT was sent: nothing changed, clear the marker now.
      // Any other failure may hide a commit; the marker then simply expires.
      if (REFUSED_BEFORE_COMMIT.some((refused) => err instanceof refused)) {
        await this.endWrite(keys, armed, alive, writerId, "0", "{}", Buffer.alloc(0), "1").catch(() => undefined);
      }
      throw err;
    }
    const { epochBump, cacheWaitMs, ...outcome } = out;
    await this.waitOut(epochBump, cacheWaitMs);
    const changed = outcome.applied && !outcome.replayed && (cmd.op === "put" || outcome.item !== undefined);
    const installed = changed ? (cmd.op === "put" ? outcome.item : undefined) : undefined;
    const [meta, bytes] = encodeEntry(installed);
    try {
      // Sent with the end-writes of the rest of its batch: one script call (EndWrites).
      const r = await this.endWrite(
        keys,
        armed,
        alive,
        writerId,
        changed ? String(outcome.revision) : "0",
        meta,
        bytes,
        String(this.entryTtlMs(installed)),
      );
      if (r === CacheEndWriteReply.EPOCH_GONE) this.epoch.distrust();
      if (r === CacheEndWriteReply.EVICTED) {
        // Nothing was installed or noted: the epoch moves, and this change waits out its leases.
        this.countWrite("install_error");
        this.epoch.evicted();
        if (changed) await this.epoch.fenceUnnoted(cmd.namespace);
      }
    } catch (err) {
      // The marker keeps readers of this key on Postgres until it expires; but
      // the namespace's known revision may not have been raised, so hits on
      // its other keys could report a lower revision: fence the epoch.
      this.countWrite("install_error");
      this.log.debug("cache end-write failed", { error: (err as Error).message });
      if (changed) await this.epoch.fenceUnnoted(cmd.namespace);
    }
    return outcome;
  }

  /** A write's cacheEndWrite, sent in one call with the others asked for in this turn (see EndWrites). */
  private endWrite(
    keys: CacheKeys,
    armed: string,
    aliveValue: string,
    writerId: string,
    revision: string,
    meta: string,
    bytes: Buffer,
    ttlMs: string,
  ): Promise<number> {
    const [alive, entry, markers, token, writers, known] = keys;
    return this.endWrites.end(
      { alive, known, armed },
      { entry, markers, token, writers, aliveValue, writerId, revision, meta, bytes, ttlMs },
    );
  }

  /** The base of `namespace`'s cache keys in the epoch this replica believes in now. */
  keyBase(namespace: string): string {
    return this.epoch.nsKeyBase(namespace);
  }

  /**
   * Raises the namespace's known revision after a commit that did not go
   * through the cache (an event append), so later cache hits never report a
   * lower revision than an acknowledged write in the namespace. If it cannot,
   * moves the cache epoch and waits out its leases instead (as a write that
   * could not mark its key does). `waitMs` (the append's cacheWaitMs): the
   * reply is held until then as well, as waitOut holds a write's.
   * `keyBaseBefore`: `keyBase(namespace)` before the append was sent (a move
   * since then fences too: CacheEpoch.noteRevision).
   */
  async noteRevision(namespace: string, revision: number, waitMs?: number, keyBaseBefore?: string): Promise<void> {
    // The truth's wait counts from its reply, not from the end of the fences below.
    const until = waitMs === undefined ? 0 : performance.now() + waitMs + CACHE_WAIT_MARGIN_MS;
    if (!this.epoch.owns()) await this.epoch.fenceUnowned(namespace);
    else if (!(await this.epoch.noteRevision(namespace, revision, keyBaseBefore)))
      await this.epoch.fenceUnnoted(namespace);
    const left = until - performance.now();
    if (left > 0) await sleep(left);
  }

  /**
   * Holds the reply until every lease that could serve the replaced epoch has
   * expired (this cache's, by its own settings; the owner's, by the truth's
   * count) and a replaced owner's quiet time has passed.
   */
  private async waitOut(bump: EpochBump | undefined, cacheWaitMs: number | undefined): Promise<void> {
    let wait = cacheWaitMs === undefined ? 0 : cacheWaitMs + CACHE_WAIT_MARGIN_MS;
    if (bump) {
      wait = Math.max(wait, this.epoch.waitAfterBumpMs(bump.prevAgeMs));
      this.log.debug("cache epoch bumped by a write", { epoch: bump.epoch, wait_ms: Math.round(wait) });
      void this.epoch.refresh();
    }
    if (wait > 0) await sleep(wait);
  }

  private entryTtlMs(item: Item | undefined): number {
    let ttl = this.opts.cacheTtlMs;
    if (item?.expireTime) ttl = Math.min(ttl, item.expireTime.getTime() - Date.now());
    return Math.max(1, Math.floor(ttl));
  }

  private keysFor(namespace: string, key: string): CacheKeys {
    // Hash the namespace and key: fixed-size Redis keys, and no braces from
    // user input can change the hash slot. Namespaces hold no NUL, so the
    // separator makes the input unambiguous; same bytes as hashing the three
    // parts in turn, so the Redis keys are those every replica uses.
    const id = `${namespace}\0${key}`;
    let h = this.hashes.get(id);
    if (h === undefined) {
      h = hash("sha256", id, "base64url");
      // A small memo of recent keys (a hash per Get is measurable on the hit path).
      if (this.hashes.size >= HASH_MEMO_SIZE) this.hashes.clear();
      this.hashes.set(id, h);
    }
    const base = this.epoch.itemKeyBase(namespace, h);
    return [
      this.epoch.aliveKey(namespace),
      `${base}:e`,
      `${base}:w`,
      `${base}:t`,
      `${base}:lw`,
      this.epoch.knownRevisionKey(namespace),
    ];
  }
}

/** What the truth throws for a write it refused before sending COMMIT: nothing changed. */
const REFUSED_BEFORE_COMMIT = [
  FenceUnknownError,
  FenceStaleError,
  IdempotencyKeyReusedError,
  InvalidArgumentError,
  CallerCancelledError,
  DeadlinePassedError,
  StatementTimedOutError,
];

/** Keys whose hash is remembered (cleared when full). */
const HASH_MEMO_SIZE = 4096;

/** KEYS of the cache scripts for one key: alive, entry, markers, token, writers, its namespace's known revision. */
type CacheKeys = [string, string, string, string, string, string];

// Fill tokens and writer ids only need to be unique among all replicas: a
// random per-process prefix and a counter are, without a CSPRNG call per Get.
const ID_PREFIX = randomBytes(8).toString("hex");
let idCounter = 0;
function nextId(): string {
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${ID_PREFIX}${idCounter.toString(36)}`;
}

function encodeEntry(item: Item | undefined): [string, Buffer] {
  if (!item) return [JSON.stringify({} satisfies EntryMeta), Buffer.alloc(0)];
  const meta: EntryMeta = {
    i: {
      ct: item.contentType,
      ver: item.version,
      cr: item.createRevision,
      mr: item.modRevision,
      ctm: item.createTime.getTime(),
      utm: item.updateTime.getTime(),
      etm: item.expireTime ? item.expireTime.getTime() : null,
    },
  };
  return [JSON.stringify(meta), item.value];
}

/** A cached entry's item (undefined: the entry records that the key does not exist). */
function parseEntry(key: string, metaBuf: Buffer, bytes: Buffer): Item | undefined {
  const i = (JSON.parse(metaBuf.toString()) as EntryMeta).i;
  if (!i) return undefined;
  return {
    key,
    value: bytes,
    contentType: i.ct,
    version: i.ver,
    createRevision: i.cr,
    modRevision: i.mr,
    createTime: new Date(i.ctm),
    updateTime: new Date(i.utm),
    expireTime: i.etm === null ? undefined : new Date(i.etm),
  };
}

/**
 * A cache hit as a ReadResult. The entry is current as of the read, so the
 * reply reflects every revision of the namespace known committed (`revision`:
 * the larger of the entry's observed revision and the namespace's known
 * revision in the epoch), not only the
 * one observed when the entry was stored. An item past its expiry reads as absent.
 */
function readResult(item: Item | undefined, revision: number): ReadResult {
  if (item?.expireTime !== undefined && item.expireTime.getTime() <= Date.now()) return { item: undefined, revision };
  return { item, revision };
}
