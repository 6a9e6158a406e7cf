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
   * undefined when it is not held that way.
   */
  release(namespace: string, name: string, secret: string, token: number): Promise<number | undefined>;
  /** The new expiry, or undefined when the lock is not held under `secret` with `token` the latest. */
  renew(namespace: string, name: string, secret: string, token: number, ttlMs: number): Promise<Renewed | undefined>;
  close(): Promise<void>;
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

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

export class LockService {
  constructor(private readonly store: LockStore) {}

  /**
   * Tries until acquired, `waitMs` has passed, or the caller's deadline is
   * near, with jittered backoff. A lock acquired for a caller that has gone
   * is released before returning.
   */
  async acquire(req: AcquireRequest): Promise<Acquired | NotAcquired> {
    const start = Date.now();
    // Answer a little before the deadline so the reply reaches the caller.
    const until = Math.min(start + req.waitMs, req.deadline !== undefined ? req.deadline - 50 : Infinity);
    let delay = 20;
    for (;;) {
      if (req.signal.aborted) throw abortError(req.signal, "no lock is held for this call");
      const r = await this.store.tryAcquire(req.namespace, req.name, req.ttlMs, req.owner);
      if (r) {
        if (req.signal.aborted) {
          const { secret, token } = parseLockId(r.lockId);
          await this.store.release(req.namespace, req.name, secret, token).catch(() => undefined);
          throw abortError(req.signal, "no lock is held for this call");
        }
        return r;
      }
      const left = until - Date.now();
      if (left <= 0) return this.store.notAcquired(req.namespace, req.name);
      const jittered = Math.floor(delay / 2 + Math.random() * delay);
      await sleep(Math.min(jittered, left), req.signal);
      delay = Math.min(delay * 2, 250);
    }
  }

  /** Releases a held lock; resolves with the store revision. */
  async release(namespace: string, name: string, lockId: string): Promise<number> {
    const { secret, token } = parseLockId(lockId);
    const revision = await this.store.release(namespace, name, secret, token);
    if (revision === undefined) throw new LockNotHeldError(name);
    return revision;
  }

  async renew(namespace: string, name: string, lockId: string, ttlMs: number): Promise<Renewed> {
    const { secret, token } = parseLockId(lockId);
    const r = await this.store.renew(namespace, name, secret, token, ttlMs);
    if (!r) throw new LockNotHeldError(name);
    return r;
  }
}
