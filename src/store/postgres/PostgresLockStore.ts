/**
 * PostgresLockStore: locks kept in Postgres, for the embedded default (no
 * Redis). Same API and semantics as Redlock: expiry by the database clock, and
 * the fencing token issued in the same statement as the acquisition. A release
 * announces itself to every replica's waiters in its own statement (NOTIFY,
 * see PgLockReleases).
 */
import type { Pool } from "pg";
import { checkout } from "./checkout";
import type { Acquired, LockStore, NotAcquired, Renewed } from "../../domain/locks";
import { formatLockId, newLockSecret } from "../../domain/locks";
import { isQueryReadTimeout, translatePgError } from "./pgErrors";
import { runStatement, sql, type Statement } from "./sql";

export class PostgresLockStore implements LockStore {
  readonly identity = "postgres";

  constructor(
    private readonly pool: Pool,
    /** The NOTIFY payload announcing a release (PgLockReleases.payload), sent by the release's own statement. */
    private readonly announcement: (namespace: string, name: string) => string,
  ) {}

  async tryAcquire(namespace: string, name: string, ttlMs: number, owner: string): Promise<Acquired | undefined> {
    const secret = newLockSecret();
    const { client, release } = await checkout(this.pool);
    let failed: unknown;
    try {
      await client.query("BEGIN");
      const r = await client.query<{ token: number; store_revision: number }>(sql("lock_acquire"), [
        namespace,
        name,
        secret,
        owner,
        ttlMs,
      ]);
      const row = r.rows[0];
      if (row) {
        const armed = await client.query<{ expires_at: Date }>(sql("lock_arm"), [namespace, name, secret, ttlMs]);
        await client.query("COMMIT");
        return {
          acquired: true,
          lockId: formatLockId(secret, row.token),
          token: row.token,
          expireTime: armed.rows[0]!.expires_at,
          revision: row.store_revision,
        };
      }
      await client.query("COMMIT");
      return undefined;
    } catch (err) {
      failed = err;
      // After a client-side timeout the connection is still busy: it is dropped, not rolled back.
      if (!isQueryReadTimeout(err)) await client.query("ROLLBACK").catch(() => undefined);
      throw translatePgError(err, true);
    } finally {
      release(failed);
    }
  }

  async notAcquired(namespace: string, name: string): Promise<NotAcquired> {
    const r = await this.q<{ owner: string | null; store_revision: number }>(sql("lock_holder"), [namespace, name]);
    return { acquired: false, holderOwner: r.rows[0]?.owner || undefined, revision: r.rows[0]?.store_revision ?? 0 };
  }

  async release(namespace: string, name: string, secret: string, token: number): Promise<number | undefined> {
    const r = await this.q<{ store_revision: number }>(sql("lock_release"), [
      namespace,
      name,
      secret,
      token,
      this.announcement(namespace, name),
    ]);
    return r.rows[0]?.store_revision;
  }

  async renew(
    namespace: string,
    name: string,
    secret: string,
    token: number,
    ttlMs: number,
  ): Promise<Renewed | undefined> {
    const r = await this.q<{ expires_at: Date; store_revision: number }>(sql("lock_renew"), [
      namespace,
      name,
      secret,
      ttlMs,
      token,
    ]);
    const row = r.rows[0];
    return row ? { token, expireTime: row.expires_at, revision: row.store_revision } : undefined;
  }

  async close(): Promise<void> {}

  private q<R extends object>(statement: Statement, values: unknown[]) {
    return runStatement<R>(this.pool, statement, values);
  }
}
