/**
 * FencingTokenIssuer: issues fencing tokens from Postgres in batches, and
 * reads the latest one issued. Each issue is a committed write (one WAL
 * flush); the Locks granted while one batch is being committed share the next
 * statement and its flush, as KV writes do (PostgresKvStore). A name appears
 * at most once per batch; a second grant of the same name waits for the next
 * one, so its token is the greater. Reads (Unlock and RenewLock check that a
 * lock id's token is the latest) are batched the same way: a read is sent
 * after it was asked for, so it sees every token issued before.
 */
import type { Pool } from "pg";
import type { FencingTokens, IssuedToken, LatestToken } from "../../domain/ports";
import { GroupCommitQueue } from "./GroupCommitQueue";
import { isRetryableConflict, translatePgError } from "./pgErrors";
import { sql } from "./sql";

interface Pending {
  namespace: string;
  name: string;
  /** Namespace + name: a batch holds it at most once and is sorted on it (rows are locked in order). */
  id: string;
  resolve(t: IssuedToken): void;
  reject(err: unknown): void;
}

interface TokenRow {
  namespace: string;
  name: string;
  token: number;
  store_revision: number;
}

interface PendingRead {
  namespace: string;
  name: string;
  resolve(t: LatestToken): void;
  reject(err: unknown): void;
}

interface LatestRow {
  idx: number;
  last_token: number | null;
  store_revision: number;
}

const MAX_BATCH = 256;
const MAX_CONFLICT_RETRIES = 5;

export class FencingTokenIssuer implements FencingTokens {
  private readonly pending = new GroupCommitQueue<Pending>({
    maxBatch: MAX_BATCH,
    maxInFlight: 1,
    run: (batch) => this.issueBatch(batch),
    batchKey: idOf,
    compare: byId,
  });

  private readonly reads = new GroupCommitQueue<PendingRead>({
    maxBatch: MAX_BATCH,
    maxInFlight: 1,
    run: (batch) => this.readBatch(batch),
  });

  constructor(private readonly pool: Pool) {}

  /** The latest token issued for the name, read after this call. */
  latest(namespace: string, name: string): Promise<LatestToken> {
    return new Promise((resolve, reject) => {
      this.reads.push({ namespace, name, resolve, reject });
    });
  }

  private async readBatch(batch: PendingRead[]): Promise<void> {
    const params = [batch.map((p) => p.namespace), batch.map((p) => p.name)];
    let rows: LatestRow[];
    try {
      rows = (await this.pool.query<LatestRow>(sql("fencing_last"), params)).rows;
    } catch (err) {
      const e = translatePgError(err);
      for (const p of batch) p.reject(e);
      return;
    }
    const answered = new Array<boolean>(batch.length).fill(false);
    for (const row of rows) {
      const i = row.idx - 1;
      batch[i]?.resolve({ token: row.last_token, revision: row.store_revision });
      answered[i] = true;
    }
    batch.forEach((p, i) => answered[i] || p.reject(new Error("fencing_last returned no row for a name")));
  }

  issue(namespace: string, name: string): Promise<IssuedToken> {
    return new Promise((resolve, reject) => {
      this.pending.push({ namespace, name, id: `${namespace}\0${name}`, resolve, reject });
    });
  }

  private async issueBatch(batch: Pending[]): Promise<void> {
    const params = [batch.map((p) => p.namespace), batch.map((p) => p.name)];
    let rows: TokenRow[];
    for (let attempt = 0; ; attempt++) {
      try {
        rows = (await this.pool.query<TokenRow>(sql("fencing_issue"), params)).rows;
        break;
      } catch (err) {
        // A batch of fenced writes takes its fence rows in key order, not name
        // order: Postgres may end a deadlock by aborting this statement, which
        // then issued nothing and can run again.
        if (isRetryableConflict(err) && attempt < MAX_CONFLICT_RETRIES) continue;
        const e = translatePgError(err);
        for (const p of batch) p.reject(e);
        return;
      }
    }
    const waiting = new Map<string, Pending>();
    for (const p of batch) waiting.set(p.id, p);
    for (const row of rows) {
      const id = `${row.namespace}\0${row.name}`;
      waiting.get(id)?.resolve({ token: row.token, revision: row.store_revision });
      waiting.delete(id);
    }
    for (const p of waiting.values()) p.reject(new Error("fencing_issue returned no row for a name"));
  }
}

function idOf(p: Pending): string {
  return p.id;
}

/** The order `[...ids].sort()` gives (UTF-16 code units); ids in a batch are distinct. */
function byId(a: Pending, b: Pending): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
