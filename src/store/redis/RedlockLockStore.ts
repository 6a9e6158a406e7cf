/**
 * RedlockLockStore: locks over 1, 3 or 5 independent Redis masters with the
 * `redlock` package (5.0.0-beta2, its ioredis API), plus what Redlock lacks:
 *  - a fencing token from the truth (FencingTokens, issued by Postgres) for
 *    every acquisition, issued after the quorum is reached; if it cannot be
 *    issued, the lock is released;
 *  - no lock is granted whose remaining validity (after acquisition time and
 *    clock drift) is under a fifth of its TTL: such an acquisition is released
 *    and retried;
 *  - "held by someone" is told apart from "no quorum possible" (masters down),
 *    which answers UNAVAILABLE at once instead of waiting out `wait`.
 * The holder's owner lives in an owner key beside the lock key on each master:
 * the acquire script (./lua/locks) clears any older holder's, lockOwner sets
 * it right after the quorum is reached (on every master, beside the token's
 * issue, so it adds no round trip in series), with the lock's remaining TTL;
 * the extend and release scripts extend and delete both keys, so the owner
 * never outlives its lock. The owner key holds only the owner; the lock key
 * holds the secret, which is never read back.
 * Only redlock's public API is used (acquire, extend, release, Lock,
 * ExecutionError's attempts): the owner is not passed through redlock's
 * scripts, whose arguments it fixes. Notes on redlock 5.0.0-beta2 (pinned,
 * unmaintained; the maintained fork @sesamecare-oss/redlock runs its own fixed
 * scripts, so it cannot keep the owner beside the lock): it emits "error" for
 * every vote against (an unhandled EventEmitter error would crash the
 * process), so a listener is attached; it returns locks whose validity may
 * already be spent, hence the validity check here; and after an acquisition
 * refused by a quorum it runs its release script on every master (cheap with
 * the lock queue: only a queue's head attempts).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type Redis from "ioredis";
import Redlock, { ExecutionError, Lock, ResourceLockedError, type ExecutionStats } from "redlock";
import { LockOwnerReply } from "./cacheReplies";
import type { Acquired, LockStore, NotAcquired, Renewed } from "../../domain/locks";
import { formatLockId } from "../../domain/locks";
import type { FencingTokens, LockReleaseAnnouncer, StoreRevision } from "../../domain/ports";
import { connectFailureReason, isAuthFailure, urlTarget } from "../../errors/startup";
import { LockQuorumUnavailableError } from "../../errors/errors";
import type { Logger } from "../../log/Logger";
import { createRedisClient, type RedisTlsFiles } from "./createRedisClient";

export interface RedlockOptions {
  urls: readonly string[];
  prefix: string;
  commandTimeoutMs: number;
  driftFactor?: number;
  /** For rediss:// masters. */
  tls?: RedisTlsFiles | undefined;
}

/** lockOwner-2.lua, defined on each master's client (EVALSHA after the first call). */
const OWNER_COMMAND = "agentstateLockOwner";
type OwnerCommand = (lockKey: string, ownerKey: string, secret: string, owner: string) => Promise<unknown>;

const LOCK_LUA_DIR = join(__dirname, "lua", "locks");
const lockScript = (file: string) => readFileSync(join(LOCK_LUA_DIR, file), "utf8");

export class RedlockLockStore implements LockStore {
  private readonly clients: Redis[];
  private readonly redlock: Redlock;
  private readonly quorum: number;
  /** The last connection error of each master, to say why it is down. */
  private readonly lastErrors: unknown[] = [];

  constructor(
    private readonly truth: { tokens: FencingTokens; revision: StoreRevision; releases: LockReleaseAnnouncer },
    private readonly opts: RedlockOptions,
    private readonly log: Logger,
  ) {
    this.clients = opts.urls.map((url, i) => {
      const c = createRedisClient(url, opts.commandTimeoutMs, log, { tls: opts.tls });
      c.defineCommand(OWNER_COMMAND, { numberOfKeys: 2, lua: lockScript("lockOwner-2.lua") });
      c.on("error", (err: unknown) => (this.lastErrors[i] = err));
      c.connect().catch((err: unknown) => (this.lastErrors[i] = err));
      return c;
    });
    this.quorum = Math.floor(this.clients.length / 2) + 1;
    this.redlock = new Redlock(
      this.clients,
      { driftFactor: opts.driftFactor ?? 0.01, retryCount: 0, retryDelay: 0, retryJitter: 0 },
      // Functions, not strings: 5.0.0-beta2 ignores a string despite its typings.
      {
        acquireScript: () => lockScript("lockAcquire-2.lua"),
        extendScript: () => lockScript("lockExtend-2.lua"),
        releaseScript: () => lockScript("lockRelease-2.lua"),
      },
    );
    this.redlock.on("error", () => undefined);
  }

  /** Masters as host:port/db, sorted, and the key prefix: equal exactly when two replicas' Redlocks exclude each other. */
  get identity(): string {
    const masters = this.opts.urls.map((url) => {
      let db = "0";
      try {
        db = new URL(url).pathname.replace(/^\//, "") || "0";
      } catch {
        // urlTarget names it unparseable
      }
      return `${urlTarget(url, 6379)}/${db}`;
    });
    return `redlock ${[...masters].sort().join(",")} prefix ${this.opts.prefix}`;
  }

  /**
   * Waits (at most `timeoutMs`) for the masters to connect, so a server that
   * has just started does not answer its first Locks UNAVAILABLE while its
   * connections are still being made. Masters that are down do not hold up
   * the start for longer than that.
   */
  /** For health: resolves when a quorum of masters is connected, else rejects naming how many are. */
  async checkQuorum(): Promise<void> {
    const up = this.clients.filter((c) => c.status === "ready").length;
    if (up < this.quorum) {
      throw new Error(`${up} of ${this.clients.length} redlock masters connected (quorum ${this.quorum})`);
    }
  }

  async ready(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.clients.some((c) => c.status !== "ready")) {
      await sleep(20);
    }
    const down = this.clients.flatMap((c, i) =>
      c.status === "ready"
        ? []
        : [
            `${urlTarget(this.opts.urls[i]!, 6379)}: ${
              this.lastErrors[i] === undefined ? "not connected yet" : connectFailureReason(this.lastErrors[i])
            }`,
          ],
    );
    if (down.length > 0) {
      const fields = { up: this.clients.length - down.length, masters: this.clients.length, down };
      // A refused password will not fix itself: error level, not a warning.
      const refused = this.clients.some((c, i) => c.status !== "ready" && isAuthFailure(this.lastErrors[i]));
      if (refused) this.log.error("redlock masters refused the credentials at start", fields);
      else this.log.warn("redlock masters not all reachable at start", fields);
    }
  }

  private resource(namespace: string, name: string): string {
    return `${this.opts.prefix}:lock:${namespace}:${name}`;
  }

  private ownerKey(namespace: string, name: string): string {
    return `${this.opts.prefix}:lockowner:${namespace}:${name}`;
  }

  /** What the lock scripts take as KEYS: the lock key, then its owner key. */
  private keys(namespace: string, name: string): string[] {
    return [this.resource(namespace, name), this.ownerKey(namespace, name)];
  }

  async tryAcquire(namespace: string, name: string, ttlMs: number, owner: string): Promise<Acquired | undefined> {
    const keys = this.keys(namespace, name);
    let lock: Lock;
    try {
      lock = await this.redlock.acquire(keys, ttlMs);
    } catch (err) {
      if (!(err instanceof ExecutionError)) throw err;
      await this.throwIfNoQuorumPossible(err);
      return undefined;
    }
    if (lock.expiration - Date.now() < ttlMs / 5) {
      // Acquisition took too long to leave a useful lock: give it back.
      await this.giveBack(lock, namespace, name);
      return undefined;
    }
    let token: number;
    let revision: number;
    try {
      const [issued] = await Promise.all([this.truth.tokens.issue(namespace, name), this.publishOwner(lock, owner)]);
      ({ token, revision } = issued);
    } catch (err) {
      // Already a domain error (the issuer translates driver errors).
      await this.giveBack(lock, namespace, name);
      throw err;
    }
    if (lock.expiration - Date.now() < ttlMs / 5) {
      // Issuing the token took too long (it waits for fenced writes of the
      // previous holder): do not hand out a lock that is nearly spent.
      await this.giveBack(lock, namespace, name);
      return undefined;
    }
    return {
      acquired: true,
      lockId: formatLockId(lock.value, token),
      token,
      expireTime: new Date(lock.expiration),
      revision,
    };
  }

  async notAcquired(namespace: string, name: string): Promise<NotAcquired> {
    const [holderOwner, revision] = await Promise.all([
      this.holderOwner(namespace, name),
      this.truth.revision.current(namespace),
    ]);
    return { acquired: false, holderOwner, revision };
  }

  async release(namespace: string, name: string, secret: string, token: number): Promise<number | undefined> {
    const latest = await this.truth.tokens.latest(namespace, name);
    if (latest.token !== token) return undefined;
    const lock = new Lock(this.redlock, this.keys(namespace, name), secret, [], Date.now() + 1);
    try {
      await this.redlock.release(lock);
    } catch (err) {
      if (!(err instanceof ExecutionError)) throw err;
      await this.throwIfNoQuorumPossible(err);
      return undefined;
    }
    // Waiters on other replicas try at once; the reply does not wait for it (a lost announcement: their next poll).
    this.truth.releases.announce(namespace, name).catch((err: unknown) => {
      this.log.debug("lock release not announced", { error: (err as Error).message });
    });
    return latest.revision;
  }

  async renew(
    namespace: string,
    name: string,
    secret: string,
    token: number,
    ttlMs: number,
  ): Promise<Renewed | undefined> {
    // The secret proves holdership to Redis; the token must also be the latest
    // issued, or a holder could present (and be echoed) a token not its own.
    const latest = await this.truth.tokens.latest(namespace, name);
    if (latest.token !== token) return undefined;
    const lock = new Lock(this.redlock, this.keys(namespace, name), secret, [], Number.MAX_SAFE_INTEGER);
    let renewed: Lock;
    try {
      renewed = await this.redlock.extend(lock, ttlMs);
    } catch (err) {
      if (!(err instanceof ExecutionError)) throw err;
      await this.throwIfNoQuorumPossible(err);
      return undefined;
    }
    return { token, expireTime: new Date(renewed.expiration), revision: latest.revision };
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.disconnect();
  }

  /** Releases a lock that is not handed out after all; others' waiters, who found it held meanwhile, try again. */
  private async giveBack(lock: Lock, namespace: string, name: string): Promise<void> {
    await this.redlock.release(lock).catch(() => undefined);
    this.truth.releases.announce(namespace, name).catch(() => undefined);
  }

  /** Sets the owner key beside a just-acquired lock on every master that holds it; best effort (the owner is reported "when known"). */
  private async publishOwner(lock: Lock, owner: string): Promise<void> {
    if (owner === "") return;
    await Promise.all(
      this.clients.map((c) => {
        const setOwner = (c as unknown as Record<typeof OWNER_COMMAND, OwnerCommand>)[OWNER_COMMAND];
        return setOwner
          .call(c, lock.resources[0]!, lock.resources[1]!, lock.value, owner)
          .then((reply) => reply === LockOwnerReply.SET)
          .catch(() => false);
      }),
    );
  }

  /** Throws LockQuorumUnavailableError when too many masters failed (not merely voted "locked") for any quorum. */
  private async throwIfNoQuorumPossible(err: ExecutionError): Promise<void> {
    const stats: ExecutionStats | undefined = await err.attempts[err.attempts.length - 1];
    if (!stats) return;
    let failed = 0;
    for (const e of stats.votesAgainst.values()) if (!(e instanceof ResourceLockedError)) failed++;
    if (this.clients.length - failed < this.quorum) {
      this.log.warn("redlock quorum unavailable", { masters: this.clients.length, failed });
      throw new LockQuorumUnavailableError(failed, this.clients.length);
    }
  }

  /** The owner published beside the lock on the first master that has one. */
  private async holderOwner(namespace: string, name: string): Promise<string | undefined> {
    const key = this.ownerKey(namespace, name);
    for (const c of this.clients) {
      try {
        const v = await c.get(key);
        if (v !== null && v !== "") return v;
      } catch {
        // try the next master
      }
    }
    return undefined;
  }
}
