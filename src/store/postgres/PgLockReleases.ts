/**
 * PgLockReleases: lock releases announced between replicas over Postgres
 * NOTIFY, whatever the lock backend. A release is announced on channel
 * `agentstate_locks` (by lock_release.sql in the release's own statement for
 * Postgres-kept locks, by `announce` after a Redlock release), and one LISTEN
 * connection per replica hands each announcement to the lock service, whose
 * waiters on that name then try at once (domain/lockQueues.ts).
 *
 * It is only a wake-up: waiters also retry on their poll interval, so a lost
 * announcement (the connection was down, a lock expired instead of being
 * released) delays a handoff but never loses it. When the LISTEN connection
 * is lost PgListenConnection opens it again; once it is back, the
 * subscriber is told announcements may have been missed (every waiting name
 * tries once).
 *
 * Payload: JSON `[replica, namespace, name]`; a replica ignores its own
 * announcements (its LockService already woke its waiters locally).
 */
import type { Pool } from "pg";
import type { LockReleaseFeed, ReleasedLock } from "../../domain/locks";
import type { LockReleaseAnnouncer } from "../../domain/ports";
import type { Logger } from "../../log/Logger";
import { translatePgError } from "./pgErrors";
import { PgListenConnection } from "./PgListenConnection";
import { sql } from "./sql";

/** Announcements per statement (each payload is at most about 1 KiB). */
const ANNOUNCE_BATCH_MAX = 256;

export class PgLockReleases implements LockReleaseFeed, LockReleaseAnnouncer {
  private readonly connection: PgListenConnection;
  private readonly listeners: ((released: ReleasedLock | undefined) => void)[] = [];
  private readonly pending: { payload: string; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private sending = false;

  constructor(
    connectionString: string,
    private readonly pool: Pool,
    /** This replica's id in announcements (random per process). */
    readonly replica: string,
    log: Logger,
  ) {
    this.connection = new PgListenConnection(
      {
        connectionString,
        applicationName: "agentstate-lock-listen",
        channel: "agentstate_locks",
        logPrefix: "lock release ",
        meanwhile: "lock waiters poll meanwhile",
      },
      {
        notification: (n) => this.onNotification(n.payload),
        // Releases announced while nobody listened reached no one: every waiting name tries now.
        listening: (again) => {
          if (again) this.emit(undefined);
        },
        lost: () => undefined,
      },
      log,
    );
  }

  /** The NOTIFY payload announcing a release of (namespace, name) by this replica. */
  payload(namespace: string, name: string): string {
    return JSON.stringify([this.replica, namespace, name]);
  }

  subscribe(onRelease: (released: ReleasedLock | undefined) => void): void {
    this.listeners.push(onRelease);
  }

  /**
   * Announces a release made elsewhere (Redlock). Announcements asked for
   * while a statement is in flight go together in the next one, so a burst of
   * Unlocks costs one statement, not one each.
   */
  announce(namespace: string, name: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ payload: this.payload(namespace, name), resolve, reject });
      if (!this.sending) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.sending = true;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, ANNOUNCE_BATCH_MAX);
      try {
        await this.pool.query(sql("lock_release_announce"), [batch.map((a) => a.payload)]);
        for (const a of batch) a.resolve();
      } catch (err) {
        const e = translatePgError(err);
        for (const a of batch) a.reject(e);
      }
    }
    this.sending = false;
  }

  start(): void {
    void this.connection.start();
  }

  private emit(released: ReleasedLock | undefined): void {
    for (const l of this.listeners) l(released);
  }

  private onNotification(payload: string | undefined): void {
    if (!payload) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    if (!Array.isArray(parsed) || parsed.length !== 3) return;
    const [replica, namespace, name] = parsed as unknown[];
    if (replica === this.replica || typeof namespace !== "string" || typeof name !== "string") return;
    this.emit({ namespace, name });
  }

  close(): Promise<void> {
    return this.connection.close();
  }
}
