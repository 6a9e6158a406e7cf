/**
 * FencingTokenIssuer: issues fencing tokens from Postgres in batches. Each
 * issue is a committed write (one WAL flush); the Locks granted while one
 * batch is being committed share the next statement and its flush, as KV
 * writes do (PostgresKvStore). A name appears at most once per batch; a second
 * grant of the same name waits for the next one, so its token is the greater.
 */
import type { Pool } from "pg";
import { translatePgError } from "./pgErrors";
import { sql } from "./sql";

export interface IssuedToken {
  token: number;
  /** The store revision when the token was issued. */
  revision: number;
}

interface Pending {
  namespace: string;
  name: string;
  resolve(t: IssuedToken): void;
  reject(err: unknown): void;
}

const MAX_BATCH = 256;

export class FencingTokenIssuer {
  private readonly queue: Pending[] = [];
  private inFlight = false;

  constructor(private readonly pool: Pool) {}

  issue(namespace: string, name: string): Promise<IssuedToken> {
    return new Promise((resolve, reject) => {
      this.queue.push({ namespace, name, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.inFlight || this.queue.length === 0) return;
    const batch = new Map<string, Pending>();
    for (let i = 0; i < this.queue.length && batch.size < MAX_BATCH;) {
      const p = this.queue[i]!;
      const id = `${p.namespace}\0${p.name}`;
      if (batch.has(id)) {
        i++;
        continue;
      }
      batch.set(id, p);
      this.queue.splice(i, 1);
    }
    const ids = [...batch.keys()].sort();
    const items = ids.map((id) => batch.get(id)!);
    this.inFlight = true;
    this.pool
      .query<{ namespace: string; name: string; token: number; store_revision: number }>(sql("fencing_issue"), [
        items.map((p) => p.namespace),
        items.map((p) => p.name),
      ])
      .then(
        (res) => {
          for (const row of res.rows) {
            const p = batch.get(`${row.namespace}\0${row.name}`);
            batch.delete(`${row.namespace}\0${row.name}`);
            p?.resolve({ token: row.token, revision: row.store_revision });
          }
          for (const p of batch.values()) p.reject(new Error("fencing_issue returned no row for a name"));
        },
        (err: unknown) => {
          const e = translatePgError(err);
          for (const p of items) p.reject(e);
        },
      )
      .finally(() => {
        this.inFlight = false;
        this.next();
      });
  }
}
