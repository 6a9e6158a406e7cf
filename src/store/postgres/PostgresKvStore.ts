/**
 * PostgresKvStore: the durable truth for versioned keys. A write is one
 * READ COMMITTED transaction that locks the key's row, checks the fence and the
 * expected condition with the domain's rules, then takes the store revision
 * (last, so revisions follow commit order) and writes the row and its history
 * entry. The reply is sent only after COMMIT returns (guarantee 1).
 */
import { performance } from "node:perf_hooks";
import type { Pool, PoolClient } from "pg";
import { expectationHolds, isExpired, nextVersion } from "../../domain/casRules";
import { requestFingerprint } from "../../domain/fingerprint";
import type {
  Item,
  KvStore,
  ListQuery,
  ListResult,
  ReadConsistency,
  ReadResult,
  WriteCommand,
  WriteOutcome,
} from "../../domain/types";
import { abortError } from "../../errors/abort";
import { FailedPreconditionError, UnavailableError } from "../../errors/errors";
import { checkFence } from "./checkFence";
import { checkout } from "./checkout";
import { isRetryableConflict, translatePgError } from "./pgErrors";
import { itemFromJson, itemToJson, keyBytes, rowToItem, type ItemJson, type KvRow } from "./rows";
import { sql, type Statement } from "./sql";

/** Extra steps the cache layer asks of a write transaction. */
export interface WriteHooks {
  /** Move the cache to a new epoch inside this transaction (the cache could not be invalidated). */
  bumpCacheEpoch?: boolean;
  /**
   * The cache epoch the write marked its key in. If the epoch has moved since
   * (checked under the revision row lock, so it cannot move again before this
   * commit), readers of the new epoch never saw the marker: the write then
   * bumps the epoch itself, as an unmarked write does.
   */
  markedEpoch?: number;
  /** performance.now() value after which the transaction must not commit. */
  commitDeadline?: number;
  /** Aborted when the caller has gone: the transaction then rolls back instead of committing. */
  signal?: AbortSignal;
}

export interface WriteResult extends WriteOutcome {
  /** Set when the transaction bumped the cache epoch. */
  epochBump?: { epoch: number; prevAgeMs: number };
}

interface OutcomeJson {
  applied: boolean;
  revision: number;
  item: ItemJson | null;
}

const MAX_CONFLICT_RETRIES = 5;

export class PostgresKvStore implements KvStore {
  constructor(private readonly pool: Pool) {}

  async get(namespace: string, key: string, _consistency?: ReadConsistency): Promise<ReadResult> {
    const res = await this.query<KvRow & { db_now: Date; store_revision: number }>(sql("kv_get"), [
      namespace,
      keyBytes(key),
    ]);
    const row = res.rows[0];
    if (!row) throw new Error("agentstate_state row missing: migrations not applied");
    const item =
      row.key !== null && !isExpired({ expireTime: row.expires_at ?? undefined }, row.db_now)
        ? rowToItem(row)
        : undefined;
    return { item, revision: row.store_revision };
  }

  async list(q: ListQuery): Promise<ListResult> {
    const prefix = keyBytes(q.prefix);
    const after = q.after === undefined ? undefined : keyBytes(q.after);
    const lower = after !== undefined && Buffer.compare(after, prefix) >= 0 ? after : prefix;
    const exclusive = lower === after;
    const res = await this.query<KvRow & { store_revision: number }>(sql("kv_list"), [
      q.namespace,
      lower,
      exclusive,
      prefixUpperBound(prefix),
      q.limit + 1,
      q.includeValues,
    ]);
    const rows = res.rows;
    const more = rows.length > q.limit;
    const items = rows.slice(0, q.limit).map(rowToItem);
    let revision = rows[0]?.store_revision;
    if (revision === undefined) {
      revision = (await this.query<{ store_revision: number }>(sql("store_revision"), [])).rows[0]?.store_revision ?? 0;
    }
    return { items, revision, more };
  }

  write(command: WriteCommand, signal?: AbortSignal): Promise<WriteOutcome> {
    return this.writeWithHooks(command, { signal });
  }

  async writeWithHooks(cmd: WriteCommand, hooks: WriteHooks): Promise<WriteResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.writeOnce(cmd, hooks);
      } catch (err) {
        if (isRetryableConflict(err) && attempt < MAX_CONFLICT_RETRIES) continue;
        throw translatePgError(err);
      }
    }
  }

  private async writeOnce(cmd: WriteCommand, hooks: WriteHooks): Promise<WriteResult> {
    if (hooks.signal?.aborted) throw abortError(hooks.signal, "nothing was written");
    const { client, release } = await checkout(this.pool);
    let inTx = false;
    try {
      await client.query("BEGIN");
      inTx = true;
      const ns = cmd.namespace;
      const kb = keyBytes(cmd.key);

      if (cmd.idempotencyKey !== undefined) {
        const fp = requestFingerprint(cmd);
        const claim = await client.query(sql("idempotency_claim"), [ns, cmd.idempotencyKey, fp]);
        if (claim.rowCount === 0) {
          const prior = await client.query<{ fingerprint: Buffer; outcome: OutcomeJson }>(sql("idempotency_lookup"), [
            ns,
            cmd.idempotencyKey,
          ]);
          await client.query("ROLLBACK");
          inTx = false;
          const row = prior.rows[0];
          if (!row) throw new UnavailableError("idempotency record vanished; retry");
          if (!row.fingerprint.equals(fp)) {
            throw new FailedPreconditionError(
              "idempotency_key was already used for a different request",
              "IDEMPOTENCY_KEY_REUSED",
            );
          }
          return {
            applied: row.outcome.applied,
            revision: row.outcome.revision,
            item: row.outcome.item === null ? undefined : itemFromJson(row.outcome.item),
            replayed: true,
          };
        }
      }

      // Lock the key's row, or claim the absent key with a placeholder row.
      let current: Item | undefined;
      let rowExists = false;
      let placeholder = false;
      const wouldCreate = cmd.op === "put" && cmd.expected.kind !== "version";
      for (;;) {
        const res = await client.query<KvRow & { db_now: Date }>(sql("kv_lock_row"), [ns, kb]);
        const row = res.rows[0];
        if (row) {
          rowExists = true;
          current =
            row.version > 0 && !isExpired({ expireTime: row.expires_at ?? undefined }, row.db_now)
              ? rowToItem(row)
              : undefined;
          break;
        }
        if (!wouldCreate) break;
        const claimed = await client.query(sql("kv_insert_placeholder"), [ns, kb]);
        if (claimed.rowCount === 1) {
          placeholder = true;
          rowExists = true;
          break;
        }
        // A concurrent writer created the key and committed: lock its row instead.
      }

      if (cmd.fence !== undefined) await checkFence(client, ns, cmd.fence);

      let outcome: WriteResult;
      let epochNow: number | undefined;
      if (!expectationHolds(cmd.expected, current)) {
        if (placeholder) await client.query(sql("kv_delete_placeholder"), [ns, kb]);
        outcome = { applied: false, item: current, revision: await this.currentRevision(client), replayed: false };
      } else if (cmd.op === "put") {
        const res = await client.query<KvRow & { store_revision: number; cache_epoch: number }>(sql("kv_put"), [
          ns,
          kb,
          cmd.value,
          cmd.contentType,
          nextVersion(current),
          cmd.ttlMs ?? null,
          current === undefined,
        ]);
        const row = res.rows[0];
        if (!row) throw new Error("kv_put wrote no row");
        epochNow = row.cache_epoch;
        outcome = { applied: true, item: rowToItem(row), revision: row.store_revision, replayed: false };
      } else if (current !== undefined && rowExists) {
        const res = await client.query<KvRow & { store_revision: number; cache_epoch: number }>(sql("kv_delete"), [
          ns,
          kb,
          2,
        ]);
        const row = res.rows[0];
        if (!row) throw new Error("kv_delete removed no row");
        epochNow = row.cache_epoch;
        outcome = { applied: true, item: rowToItem(row), revision: row.store_revision, replayed: false };
      } else {
        // Deleting an absent (or expired) key whose condition holds: nothing changes.
        outcome = { applied: true, item: undefined, revision: await this.currentRevision(client), replayed: false };
      }

      const markLost = hooks.markedEpoch !== undefined && epochNow !== undefined && epochNow !== hooks.markedEpoch;
      if (hooks.bumpCacheEpoch || markLost) {
        const b = await client.query<{ cache_epoch: number; prev_age_ms: number }>(sql("cache_epoch_bump"), [null]);
        const r = b.rows[0];
        if (r) outcome.epochBump = { epoch: r.cache_epoch, prevAgeMs: r.prev_age_ms };
      }

      if (cmd.idempotencyKey !== undefined) {
        const json: OutcomeJson = {
          applied: outcome.applied,
          revision: outcome.revision,
          item: outcome.item ? itemToJson(outcome.item) : null,
        };
        await client.query(sql("idempotency_record"), [ns, cmd.idempotencyKey, json]);
      }

      if (hooks.signal?.aborted) {
        // The caller has gone (cancelled, deadline passed, server stopping): do not commit for nobody.
        throw abortError(hooks.signal, "nothing was written");
      }
      if (hooks.commitDeadline !== undefined && performance.now() > hooks.commitDeadline) {
        // Committing now could outlive the cache's write-in-flight marker.
        throw new UnavailableError("write took too long to commit safely; nothing was written, retry");
      }
      await client.query("COMMIT");
      inTx = false;
      return outcome;
    } catch (err) {
      if (inTx) await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      release();
    }
  }

  private async currentRevision(client: PoolClient): Promise<number> {
    const r = await client.query<{ store_revision: number }>(sql("store_revision"), []);
    return r.rows[0]?.store_revision ?? 0;
  }

  private async query<R extends object>(statement: Statement, values: unknown[]) {
    try {
      return await this.pool.query<R>(statement, values);
    } catch (err) {
      throw translatePgError(err);
    }
  }
}

/** The smallest byte string greater than every string with this prefix (null: none). */
export function prefixUpperBound(prefix: Buffer): Buffer | null {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      b[i] = b[i]! + 1;
      return b.subarray(0, i + 1);
    }
  }
  return null;
}
