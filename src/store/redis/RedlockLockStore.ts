/**
 * RedlockLockStore: locks over 1, 3 or 5 independent Redis masters with the
 * `redlock` package (5.0.0-beta2, its ioredis API), plus what Redlock lacks:
 *  - a fencing token from Postgres for every acquisition (issued after the
 *    quorum is reached; if Postgres cannot issue it, the lock is released);
 *  - no lock is granted whose remaining validity (after acquisition time and
 *    clock drift) is under a fifth of its TTL: such an acquisition is released
 *    and retried;
 *  - "held by someone" is told apart from "no quorum possible" (masters down),
 *    which answers UNAVAILABLE at once instead of waiting out `wait`.
 * Notes on redlock 5.0.0-beta2: it emits "error" for every vote against
 * (an unhandled EventEmitter error would crash the process), so a listener is
 * attached; and it returns locks whose validity may already be spent, hence
 * the validity check here.
 */
import type Redis from "ioredis";
import { createRedisClient } from "./createRedisClient";
import type { Pool } from "pg";
import Redlock, { ExecutionError, Lock, ResourceLockedError, type ExecutionStats } from "redlock";
import type { Acquired, LockStore, NotAcquired, Renewed } from "../../domain/locks";
import { formatLockId } from "../../domain/locks";
import { UnavailableError } from "../../errors/errors";
import type { Logger } from "../../log/Logger";
import { translatePgError } from "../postgres/pgErrors";
import { sql } from "../postgres/sql";

export interface RedlockOptions {
  urls: readonly string[];
  prefix: string;
  commandTimeoutMs: number;
  driftFactor?: number;
}

export class RedlockLockStore implements LockStore {
  private readonly clients: Redis[];
  private readonly redlock: Redlock;
  private readonly quorum: number;

  constructor(
    private readonly pool: Pool,
    private readonly opts: RedlockOptions,
    private readonly log: Logger,
  ) {
    this.clients = opts.urls.map((url) => {
      const c = createRedisClient(url, opts.commandTimeoutMs, log);
      c.connect().catch(() => undefined);
      return c;
    });
    this.quorum = Math.floor(this.clients.length / 2) + 1;
    this.redlock = new Redlock(this.clients, {
      driftFactor: opts.driftFactor ?? 0.01,
      retryCount: 0,
      retryDelay: 0,
      retryJitter: 0,
    });
    this.redlock.on("error", () => undefined);
  }

  /**
   * Waits (at most `timeoutMs`) for the masters to connect, so a server that
   * has just started does not answer its first Locks UNAVAILABLE while its
   * connections are still being made. Masters that are down do not hold up
   * the start for longer than that.
   */
  async ready(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.clients.some((c) => c.status !== "ready")) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const up = this.clients.filter((c) => c.status === "ready").length;
    if (up < this.clients.length)
      this.log.warn("redlock masters not all reachable at start", { up, masters: this.clients.length });
  }

  private resource(namespace: string, name: string): string {
    return `${this.opts.prefix}:lock:${namespace}:${name}`;
  }

  private ownerKey(namespace: string, name: string): string {
    return `${this.opts.prefix}:lockowner:${namespace}:${name}`;
  }

  async tryAcquire(namespace: string, name: string, ttlMs: number, owner: string): Promise<Acquired | NotAcquired> {
    const resource = this.resource(namespace, name);
    let lock: Lock;
    try {
      lock = await this.redlock.acquire([resource], ttlMs);
    } catch (err) {
      if (!(err instanceof ExecutionError)) throw err;
      await this.throwIfNoQuorumPossible(err);
      return { acquired: false, holderOwner: await this.holderOwner(namespace, name), revision: await this.revision() };
    }
    if (lock.expiration - Date.now() < ttlMs / 5) {
      // Acquisition took too long to leave a useful lock: give it back.
      await this.redlock.release(lock).catch(() => undefined);
      return { acquired: false, holderOwner: undefined, revision: await this.revision() };
    }
    let token: number;
    let revision: number;
    try {
      const r = await this.pool.query<{ token: number; store_revision: number }>(sql("fencing_issue"), [
        namespace,
        name,
      ]);
      token = r.rows[0]!.token;
      revision = r.rows[0]!.store_revision;
    } catch (err) {
      await this.redlock.release(lock).catch(() => undefined);
      throw translatePgError(err);
    }
    if (lock.expiration - Date.now() < ttlMs / 5) {
      // Issuing the token took too long (it waits for fenced writes of the
      // previous holder): do not hand out a lock that is nearly spent.
      await this.redlock.release(lock).catch(() => undefined);
      return { acquired: false, holderOwner: undefined, revision };
    }
    const ownerKey = this.ownerKey(namespace, name);
    await Promise.allSettled(this.clients.map((c) => c.set(ownerKey, owner, "PX", ttlMs)));
    return {
      acquired: true,
      lockId: formatLockId(lock.value, token),
      token,
      expireTime: new Date(lock.expiration),
      revision,
    };
  }

  async release(namespace: string, name: string, secret: string, token: number): Promise<number | undefined> {
    const latest = await this.latestToken(namespace, name);
    if (latest.token !== token) return undefined;
    const lock = new Lock(this.redlock, [this.resource(namespace, name)], secret, [], Date.now() + 1);
    try {
      await this.redlock.release(lock);
    } catch (err) {
      if (!(err instanceof ExecutionError)) throw err;
      await this.throwIfNoQuorumPossible(err);
      return undefined;
    }
    const ownerKey = this.ownerKey(namespace, name);
    await Promise.allSettled(this.clients.map((c) => c.del(ownerKey)));
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
    const latest = await this.latestToken(namespace, name);
    if (latest.token !== token) return undefined;
    const lock = new Lock(this.redlock, [this.resource(namespace, name)], secret, [], Number.MAX_SAFE_INTEGER);
    let renewed: Lock;
    try {
      renewed = await this.redlock.extend(lock, ttlMs);
    } catch (err) {
      if (!(err instanceof ExecutionError)) throw err;
      await this.throwIfNoQuorumPossible(err);
      return undefined;
    }
    const ownerKey = this.ownerKey(namespace, name);
    await Promise.allSettled(this.clients.map((c) => c.pexpire(ownerKey, ttlMs)));
    return { token, expireTime: new Date(renewed.expiration), revision: latest.revision };
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.disconnect();
  }

  /** Throws UNAVAILABLE when too many masters failed (not merely voted "locked") for any quorum. */
  private async throwIfNoQuorumPossible(err: ExecutionError): Promise<void> {
    const stats: ExecutionStats | undefined = await err.attempts[err.attempts.length - 1];
    if (!stats) return;
    let failed = 0;
    for (const e of stats.votesAgainst.values()) if (!(e instanceof ResourceLockedError)) failed++;
    if (this.clients.length - failed < this.quorum) {
      this.log.warn("redlock quorum unavailable", { masters: this.clients.length, failed });
      throw new UnavailableError(`lock quorum unavailable: ${failed} of ${this.clients.length} Redis masters failed`);
    }
  }

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

  private async latestToken(namespace: string, name: string): Promise<{ token: number | null; revision: number }> {
    try {
      const r = await this.pool.query<{ last_token: number | null; store_revision: number }>(sql("fencing_last"), [
        namespace,
        name,
      ]);
      return { token: r.rows[0]?.last_token ?? null, revision: r.rows[0]?.store_revision ?? 0 };
    } catch (err) {
      throw translatePgError(err);
    }
  }

  private async revision(): Promise<number> {
    try {
      const r = await this.pool.query<{ store_revision: number }>(sql("store_revision"), []);
      return r.rows[0]?.store_revision ?? 0;
    } catch (err) {
      throw translatePgError(err);
    }
  }
}
