/**
 * Lock rules. A lock is a name in a namespace held by at most one holder at a
 * time, until its TTL passes. Every acquisition gets a fencing token strictly
 * greater than every earlier token for the name (issued by Postgres), so a
 * holder that paused past its TTL cannot write once a newer holder exists:
 * writes carrying the old token are refused in their own transaction.
 *
 * The lock id handed to clients is `<secret>.<token>`: the secret proves
 * holdership to Unlock/RenewLock, the token is repeated in RenewLock replies.
 */
import { randomFillSync } from "node:crypto";
import { abortError } from "../errors/abort";
import { InvalidArgumentError, LockNotHeldError } from "../errors/errors";
import { LockQueues } from "./lockQueues";
import { Semaphore } from "./semaphore";

export interface Acquired {
  acquired: true;
  lockId: string;
  token: number;
  expireTime: Date;
  revision: number;
}

export interface NotAcquired {
  acquired: false;
  /** The holder's owner, when known. */
  holderOwner: string | undefined;
  revision: number;
}

export interface Renewed {
  token: number;
  expireTime: Date;
  revision: number;
}

/** What the lock service needs of a lock backend (Redlock, or Postgres in the embedded default). */
export interface LockStore {
  /**
   * One attempt: the lock, or undefined when it is held by someone (or the
   * acquisition could not be granted with useful validity). Throws
   * LockQuorumUnavailableError when the backend cannot decide (no quorum).
   */
  tryAcquire(namespace: string, name: string, ttlMs: number, owner: string): Promise<Acquired | undefined>;
  /**
   * The reply for a caller who did not get the lock: the holder's owner when
   * known (never the lock's secret) and the lock namespace's revision. Asked once, when
   * the caller stops waiting, not after every attempt.
   */
  notAcquired(namespace: string, name: string): Promise<NotAcquired>;
  /**
   * Releases the lock if it is held under `secret` and `token` is still the
   * latest token issued for the name; resolves with the store revision then,
   * undefined when it is not held that way. A release is announced to every
   * other replica (the LockReleaseFeed), so their waiters try at once.
   */
  release(namespace: string, name: string, secret: string, token: number): Promise<number | undefined>;
  /** The new expiry, or undefined when the lock is not held under `secret` with `token` the latest. */
  renew(namespace: string, name: string, secret: string, token: number, ttlMs: number): Promise<Renewed | undefined>;
  /**
   * The backend's identity: two replicas exclude each other's holders of a
   * name exactly when their identities are equal ("postgres"; Redlock: its
   * masters as host:port/db and its key prefix). Never a secret.
   */
  readonly identity: string;
  close(): Promise<void>;
}

/**
 * Whether this replica may grant and renew locks now: replicas of one
 * database whose lock backends differ must not both grant (issue 19). `check`
 * throws (LockBackendMixError, or StoreUnavailableError when the agreement
 * cannot be renewed) when it may not.
 */
export interface LockBackendGate {
  check(): void;
}

const SECRET_BYTES = 16;
// Secrets are cut from a block of CSPRNG output filled 256 secrets at a time
// (one native call instead of one per Lock); no byte is handed out twice.
const secretPool = Buffer.alloc(SECRET_BYTES * 256);
let secretPoolUsed = secretPool.length;

/** A lock's secret: 16 bytes from the CSPRNG, as 32 hex digits. */
export function newLockSecret(): string {
  if (secretPoolUsed === secretPool.length) {
    randomFillSync(secretPool);
    secretPoolUsed = 0;
  }
  const secret = secretPool.toString("hex", secretPoolUsed, secretPoolUsed + SECRET_BYTES);
  secretPoolUsed += SECRET_BYTES;
  return secret;
}

export function formatLockId(secret: string, token: number): string {
  return `${secret}.${token}`;
}

export function parseLockId(lockId: string): { secret: string; token: number } {
  const m = /^([0-9a-f]{32})\.([1-9][0-9]{0,15})$/.exec(lockId);
  if (!m) throw new InvalidArgumentError("lock_id", "is not a lock id returned by Lock");
  return { secret: m[1]!, token: Number(m[2]) };
}

export interface AcquireRequest {
  namespace: string;
  name: string;
  ttlMs: number;
  waitMs: number;
  owner: string;
  /** Absolute time (ms since epoch) of the call's deadline, if any. */
  deadline: number | undefined;
  /** Aborted when the caller has gone or the server shuts down. */
  signal: AbortSignal;
}

/** How Lock calls wait (LockQueues, the attempt semaphore); from configuration. */
export interface LockWaitSettings {
  /** The fallback: a queue's head tries the backend at least this often without an announced release. */
  readonly pollMs: number;
  /** Attempts on the lock backend in flight at once on this replica (the bounded share of the pool). */
  readonly attemptsInFlight: number;
  /** Lock calls waiting on this replica / on one name. */
  readonly maxWaiters: number;
  readonly maxWaitersPerName: number;
}

export const LOCK_WAIT_SETTINGS = {
  maxWaiters: "AGENTSTATE_MAX_LOCK_WAITERS",
  maxWaitersPerName: "AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME",
} as const;

/** A lock that was released (its name is free now), as announced between replicas. */
export interface ReleasedLock {
  namespace: string;
  name: string;
}

/**
 * Release announcements from the other replicas (Postgres NOTIFY whatever the
 * lock backend): the waiters of a released name try at once instead of at
 * their next poll. `undefined` means announcements may have been missed (the
 * feed reconnected): every waiting name tries.
 */
export interface LockReleaseFeed {
  subscribe(onRelease: (released: ReleasedLock | undefined) => void): void;
}

export class LockService {
  private readonly queues: LockQueues;
  private readonly attempts: Semaphore;
  private latestExpiry = 0;

  constructor(
    private readonly store: LockStore,
    private readonly waits: LockWaitSettings,
    releases?: LockReleaseFeed,
    private readonly gate?: LockBackendGate,
  ) {
    this.queues = new LockQueues({
      perName: waits.maxWaitersPerName,
      perNameSetting: LOCK_WAIT_SETTINGS.maxWaitersPerName,
      perServer: waits.maxWaiters,
      perServerSetting: LOCK_WAIT_SETTINGS.maxWaiters,
    });
    this.attempts = new Semaphore(waits.attemptsInFlight);
    releases?.subscribe((r) => (r ? this.queues.wake(r.namespace, r.name) : this.queues.wakeAll()));
  }

  /** Lock calls waiting on this replica, and lock attempts in flight (metrics). */
  get waiting(): number {
    return this.queues.waiting;
  }

  get attemptsInFlight(): number {
    return this.attempts.inUse;
  }

  /**
   * Tries once, then (when `waitMs` allows) waits on the name's queue until
   * acquired, `waitMs` has passed, or the caller's deadline is near. A lock
   * acquired for a caller that has gone is released before returning.
   */
  async acquire(req: AcquireRequest): Promise<Acquired | NotAcquired> {
    this.gate?.check();
    const start = Date.now();
    // Answer a little before the deadline so the reply reaches the caller.
    const until = Math.min(start + req.waitMs, req.deadline !== undefined ? req.deadline - 50 : Infinity);
    if (until <= start) {
      // Try-once: no queue (it never waits), one attempt.
      const r = await this.attempt(req);
      return r ? this.granted(req, r) : this.store.notAcquired(req.namespace, req.name);
    }
    const w = this.queues.join(req.namespace, req.name);
    try {
      // A new head tries at once; a waiter behind others waits for its turn.
      let first = this.queues.waitingOn(req.namespace, req.name) === 1;
      for (;;) {
        if (!first) {
          const turn = await this.queues.turn(w, until, this.waits.pollMs, req.signal);
          if (req.signal.aborted) throw abortError(req.signal, "no lock is held for this call");
          if (turn === "timeout") return this.store.notAcquired(req.namespace, req.name);
        }
        first = false;
        const r = await this.attempt(req);
        if (r) {
          this.queues.acquired(w);
          return this.granted(req, r);
        }
      }
    } finally {
      this.queues.leave(w);
    }
  }

  /** One attempt on the backend, within the bounded number in flight. */
  private async attempt(req: AcquireRequest): Promise<Acquired | undefined> {
    const release = await this.attempts.take(req.signal);
    if (!release) throw abortError(req.signal, "no lock is held for this call");
    let r: Acquired | undefined;
    try {
      this.gate?.check();
      r = await this.store.tryAcquire(req.namespace, req.name, req.ttlMs, req.owner);
    } finally {
      release();
    }
    if (r && this.gate) {
      try {
        // The agreement may have lapsed while the lock was being taken: then it is not handed out.
        this.gate.check();
      } catch (err) {
        const { secret, token } = parseLockId(r.lockId);
        await this.store.release(req.namespace, req.name, secret, token).catch(() => undefined);
        throw err;
      }
      this.noteGranted(r.expireTime);
    }
    return r;
  }

  /** The latest expiry of any lock this replica granted or renewed (ms since epoch). */
  get grantedUntil(): number {
    return this.latestExpiry;
  }

  private noteGranted(expireTime: Date): void {
    this.latestExpiry = Math.max(this.latestExpiry, expireTime.getTime());
  }

  /** The acquisition, unless the caller has gone meanwhile: then the lock is released. */
  private async granted(req: AcquireRequest, r: Acquired): Promise<Acquired> {
    if (req.signal.aborted) {
      const { secret, token } = parseLockId(r.lockId);
      await this.store.release(req.namespace, req.name, secret, token).catch(() => undefined);
      this.queues.wake(req.namespace, req.name);
      throw abortError(req.signal, "no lock is held for this call");
    }
    return r;
  }

  /** Releases a held lock; resolves with the store revision. */
  async release(namespace: string, name: string, lockId: string): Promise<number> {
    const { secret, token } = parseLockId(lockId);
    const revision = await this.store.release(namespace, name, secret, token);
    if (revision === undefined) throw new LockNotHeldError(name);
    // This replica's waiters try at once; the store announced the release to the others.
    this.queues.wake(namespace, name);
    return revision;
  }

  async renew(namespace: string, name: string, lockId: string, ttlMs: number): Promise<Renewed> {
    const { secret, token } = parseLockId(lockId);
    this.gate?.check();
    const r = await this.store.renew(namespace, name, secret, token, ttlMs);
    if (!r) throw new LockNotHeldError(name);
    this.noteGranted(r.expireTime);
    return r;
  }
}
