/**
 * Ports: what the services need of the stores, so that adapters meet only
 * here. `store/postgres` implements them against the database (the truth),
 * `store/redis` implements the cache and Redlock on top of them, and
 * `compose/buildServices.ts`, the one place that knows both, wires them
 * together by constructor injection.
 *
 * The service-facing ports live next to their rules and are re-exported here:
 * KvStore (types.ts), LockStore (locks.ts), EventStore and ChangeNotifier
 * (events.ts). The ports below are the ones the cache and the lock backends
 * need of the truth.
 *
 * Terminology (see also types.ts):
 * - cache epoch: a generation of the Redis cache, numbered by the truth. Every
 *   cached entry belongs to one epoch; moving to a new epoch ("bumping") makes
 *   the whole cache empty at once, which is how the cache forgets what it can
 *   no longer invalidate key by key.
 * - cache fence: what a write to the truth must do so that no reader is served
 *   a cached state older than the write once it is acknowledged (guarantee 3).
 *   Not to be confused with a write's lock fence (Fence in types.ts, guarantee 4).
 * - cache identity: one cache as the replicas share it (a Redis and a key
 *   prefix), named by an id kept in the cache itself; "none" stands for the
 *   replicas without a cache. Every identity serving a database registers in
 *   the truth, with a lease.
 * - epoch owner: the one cache identity whose replicas may serve hits in the
 *   current epoch (or none). The owner changes only with the epoch, so a write
 *   marked in the current epoch was marked in the owner's cache; any other
 *   write moves the epoch while it has an owner. A mixed deployment (several
 *   identities live) leaves the epoch without an owner: no cache serves.
 */
import type { KvStore, WriteCommand, WriteOptions, WriteOutcome } from "./types";

export type { KvStore } from "./types";
export type { LockReleaseFeed, LockStore } from "./locks";
export type { ChangeNotifier, EventStore } from "./events";

/**
 * The cache fence a write carries into the truth (guarantee 3's protocol, see
 * store/redis/CachedKvStore.ts). Checked by the truth in the write's own
 * transaction, under the store revision lock, so the answer cannot change
 * before the commit.
 */
export type CacheFence =
  /**
   * The key was marked "write in flight" in cache epoch `epoch`, which this
   * replica's cache (`identity`) owns; the truth checks that it is the
   * epoch's owner (a write marked elsewhere moves the epoch). The marker
   * keeps readers off the cache until `commitBy` (a `performance.now()` value
   * of this process). The write must not be made at or after `commitBy` (it
   * could then commit after its marker expired): it fails with
   * CommitWindowPassedError instead, nothing written. If the epoch has moved since the mark, readers of the
   * new epoch never saw the marker: the write then bumps the epoch itself, as
   * an unmarked write does.
   */
  | {
      kind: "marked";
      epoch: number;
      /** The namespace's epoch within `epoch` it was marked in (0: none moved; see CacheEpoch.nsEpoch). */
      nsEpoch: number;
      commitBy: number;
      identity: string;
    }
  /**
   * The key could not be marked: the write moves the cache to a new epoch in
   * its own transaction. `commitBy`, when set, is as for a marked write: the
   * replica moved the epoch and waited out its leases before this write (so
   * no cache serves the old state once it commits), and the write must commit
   * while the epoch that move began is young (nobody hits or fills).
   */
  | { kind: "bump"; commitBy?: number }
  /**
   * No fence of this cache's (it does not own the epoch), only the commit
   * window of a write whose replica moved the epoch and waited first (see
   * `bump`); the truth moves the epoch again if it has an owner.
   */
  | { kind: "unowned"; commitBy: number };
// A write without a cache fence (a replica without a cache, or whose cache
// does not own the epoch) moves the epoch if it has an owner.

/** A cache epoch bump made by a write's transaction. */
export interface EpochBump {
  /** The new epoch. */
  epoch: number;
  /** The replaced epoch's age at the bump (database clock): how long leases on it may still be served. */
  prevAgeMs: number;
}

export interface DurableWriteOptions extends WriteOptions {
  cacheFence?: CacheFence;
}

export interface DurableWriteOutcome extends WriteOutcome {
  /** Set when the write's transaction bumped the cache epoch: the write must wait out the old epoch's leases before it is acknowledged. */
  epochBump?: EpochBump;
  /**
   * Set when a cache may serve an older state for this long (ms, by the
   * truth's count: the leases of the epoch's owner, or of an owner replaced
   * moments ago): the write must not be acknowledged before.
   */
  cacheWaitMs?: number;
}

/**
 * The durable truth for keys, with the cache fence the cache needs. A KvStore
 * in its own right (a write without a fence is a plain write).
 */
export interface DurableKvStore extends KvStore {
  write(command: WriteCommand, opts?: DurableWriteOptions): Promise<DurableWriteOutcome>;
}

/** The cache epoch as the truth holds it, read in one snapshot. */
export interface CacheEpochState {
  epoch: number;
  /** Milliseconds since the epoch began, by the truth's clock. */
  ageMs: number;
}

/** A replica's registration of its cache identity, renewed with every lease. */
export interface CacheLeaseRequest {
  /** The cache identity; undefined: renew nothing, only read the epoch (the cache cannot confirm its identity now). */
  identity: string | undefined;
  /** The identity this replica's cache had before (emptied or replaced): it may hand its epochs over. */
  previous: string | undefined;
  /** For operators: where the cache is ("redis HOST:PORT/DB prefix P", "no cache"). Never a secret. */
  description: string;
  leaseMs: number;
  /** False for "none": replicas without a cache never own an epoch. */
  mayOwn: boolean;
  /**
   * Set by a replica that keys namespaces by their own epochs: the store
   * epoch and the last namespace move it knows in it; the reply lists the
   * moves after it (CacheLeaseState.moves). Unset: the lease of a replica
   * without a cache, which serves nothing.
   */
  nsMoves?: { epoch: number; after: number };
}

/** A namespace's cache epoch moved (migrations/0019): its new epoch within the store epoch, and its age. */
export interface NamespaceMove {
  namespace: string;
  nsEpoch: number;
  ageMs: number;
}

/** The epoch as a lease renewal found it (after renewing: a lease taken from it ends before the registration's). */
export interface CacheLeaseState extends CacheEpochState {
  /** The identity that may serve hits in this epoch; null: none. */
  owner: string | null;
  /** Ms until writes no longer wait for a replaced owner's leases (0: none). */
  quietMs: number;
  /** The other live registrations, "identity description" each (a mixed deployment when not empty). */
  others: string[];
  /** With nsMoves: the namespace moves of this epoch after the one named, in order (none without it). */
  moves: NamespaceMove[];
  /** True when there were more moves than the reply holds (NS_MOVES_PAGE). */
  movesMore: boolean;
}

/** Where the cache epoch is kept (the truth), so every replica agrees on it. */
/**
 * Added to every wait the truth counts before a change may be acknowledged
 * (CacheEpochStore's wait_ms, a write's or append's cacheWaitMs): the
 * database clock's rounding and the reply's way back.
 */
export const CACHE_WAIT_MARGIN_MS = 50;

export interface CacheEpochStore {
  /**
   * Renews the registration, takes or gives up the epoch's ownership as the
   * live registrations require, and reads the epoch (agentstate_cache_lease);
   * undefined when the truth holds none (migrations not applied).
   */
  lease(req: CacheLeaseRequest): Promise<CacheLeaseState | undefined>;
  /**
   * Moves to a new epoch if the current one is still `from` (unconditionally without it); true when this call moved it.
   * `fenceLeases`: the replaced epoch's keys are still readable in Redis (not a loss of its data), so every change
   * made in the new one waits out the owner's leases, which may still serve the old one (migrations/0020).
   */
  bump(from?: number, fenceLeases?: boolean): Promise<boolean>;
  /**
   * For a change committed without any cache seeing it (an append by a
   * replica whose cache does not own the epoch): moves `namespace`'s epoch if
   * the store epoch has an owner; resolves with how long (ms) the change must
   * wait before it is acknowledged (the owner's leases, a replaced owner's
   * quiet time).
   */
  fenceChange(namespace: string): Promise<number>;
  /**
   * Moves `namespace`'s epoch unconditionally (a change its cache could not
   * see: agentstate_cache_move); the store epoch instead while a replica of
   * release 5 or older may hold a lease. Resolves with the wait the truth
   * counts (ms), as fenceChange.
   */
  moveNamespace(namespace: string): Promise<number>;
  /**
   * How long (ms) a change in `namespace` must still wait for the leases on
   * the epochs the latest moves replaced (the namespace's, the store's), as
   * the change's own statement counts it; 0 when none (cache_change_wait).
   */
  changeWaitMs(namespace: string): Promise<number>;
}

export interface IssuedToken {
  token: number;
  /** The lock namespace's revision when the token was issued. */
  revision: number;
}

/** The latest token issued for a name (null: none yet) and its namespace's revision. */
export interface LatestToken {
  token: number | null;
  revision: number;
}

/**
 * Fencing tokens (guarantee 4), issued durably by the truth: every token is
 * strictly greater than every token issued before for its lock name, across
 * restarts. Issuing waits for fenced writes of the previous holder in flight,
 * so a write lands before the new token exists or not at all.
 */
export interface FencingTokens {
  issue(namespace: string, name: string): Promise<IssuedToken>;
  /** The latest token issued for the name, read after this call. */
  latest(namespace: string, name: string): Promise<LatestToken>;
}

/** A namespace's revision, for replies that report state without changing any. */
export interface StoreRevision {
  current(namespace: string): Promise<number>;
}

/**
 * Announces a lock release to every replica (through the truth, whatever the
 * lock backend), so their waiters on the name try at once. A backend whose
 * release statement announces it itself (Postgres-kept locks) does not need
 * it; Redlock calls it after each release.
 */
export interface LockReleaseAnnouncer {
  announce(namespace: string, name: string): Promise<void>;
}
