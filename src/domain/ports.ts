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
   * The key was marked "write in flight" in cache epoch `epoch`; the marker
   * keeps readers off the cache until `commitBy` (a `performance.now()` value
   * of this process). The write must not be made at or after `commitBy` (it
   * could then commit after its marker expired): it fails with
   * CommitWindowPassedError instead, nothing written. If the epoch has moved since the mark, readers of the
   * new epoch never saw the marker: the write then bumps the epoch itself, as
   * an unmarked write does.
   */
  | { kind: "marked"; epoch: number; commitBy: number }
  /** The key could not be marked: the write moves the cache to a new epoch in its own transaction. */
  | { kind: "bump" };

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

/** Where the cache epoch is kept (the truth), so every replica agrees on it. */
export interface CacheEpochStore {
  /** The current epoch, or undefined when the truth holds none (migrations not applied). */
  read(): Promise<CacheEpochState | undefined>;
  /** Moves to a new epoch if the current one is still `from` (unconditionally without it); true when this call moved it. */
  bump(from?: number): Promise<boolean>;
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
