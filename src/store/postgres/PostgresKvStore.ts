/**
 * PostgresKvStore: the durable truth for versioned keys.
 *
 * Writes are group-committed per namespace. The writes to a namespace that
 * arrive while its batch is being committed form its next batch (batches of
 * different namespaces run side by side), sent as one call of agentstate_kv_write
 * (src/store/postgres/functions/agentstate_kv_write.sql) in autocommit: the function locks every key
 * first, then takes the namespace's revision row (last, so its
 * revisions follow its commit order) and applies each write in turn with its own condition, fence and
 * idempotency record. One round trip and one WAL flush serve the whole batch,
 * and every caller gets its own outcome once the batch has committed
 * (guarantee 1). A write whose key another transaction holds is answered
 * `busy` by the batch and is then run alone, waiting for the key as a single
 * write would, so one held key never stalls the others.
 */
import { performance } from "node:perf_hooks";
import type { Pool } from "pg";
import { isExpired } from "../../domain/casRules";
import { requestFingerprint } from "../../domain/fingerprint";
import type { DurableKvStore, DurableWriteOptions, DurableWriteOutcome } from "../../domain/ports";
import type {
  Item,
  ListQuery,
  ListResult,
  ReadConsistency,
  ReadResult,
  WriteCommand,
  WriteOptions,
} from "../../domain/types";
import {
  AppError,
  CommitWindowPassedError,
  DeadlinePassedError,
  IdempotencyKeyReusedError,
  WriteContendedError,
} from "../../errors/errors";
import { callerGoneError } from "./callerGoneError";
import { fenceError } from "./fenceError";
import { GroupCommitQueue } from "./GroupCommitQueue";
import { runWriteBatch, type WriteBatchSpec } from "./runWriteBatch";
import { itemFromJson, keyBytes, rowToItem, type ItemJson, type KvRow } from "./rows";
import { byName, runStatement, sql, type Statement } from "./sql";
import { KvExpectedKind, KvWriteOp, KvWriteStatus as Status } from "./writeStatus";

/**
 * A write's options as the statement takes them: the caller's (gone,
 * deadline) and its cache fence (see CacheFence in domain/ports.ts) spelled
 * out as agentstate_kv_write's parameters.
 */
interface WriteHooks extends WriteOptions {
  /** Move the cache to a new epoch in this write's transaction (the cache could not be invalidated). */
  bumpCacheEpoch?: boolean;
  /** The cache epoch the write marked its key in (bump instead if it has moved, checked in the write's statement). */
  markedEpoch?: number;
  /** The cache identity it marked under (bump instead if it is not the epoch's owner). */
  markedBy?: string;
  /** The namespace epoch (within markedEpoch) it marked in. */
  markedNsEpoch?: number;
  /** performance.now() value after which the write must not be made. */
  commitDeadline?: number;
}

/** The statement's form of a write's options. */
function writeHooks({ cacheFence, ...opts }: DurableWriteOptions): WriteHooks {
  if (cacheFence === undefined) return opts;
  if (cacheFence.kind === "bump") return { ...opts, bumpCacheEpoch: true, commitDeadline: cacheFence.commitBy };
  if (cacheFence.kind === "unowned") return { ...opts, commitDeadline: cacheFence.commitBy };
  return {
    ...opts,
    markedEpoch: cacheFence.epoch,
    markedNsEpoch: cacheFence.nsEpoch,
    markedBy: cacheFence.identity,
    commitDeadline: cacheFence.commitBy,
  };
}

export interface PostgresKvStoreOptions {
  /** Most writes in one batch (1: every write alone). */
  batchMax: number;
  /**
   * Batches of one namespace in flight at once. With two, the second locks
   * its keys while the first commits, then commits right after it; writes
   * that arrive meanwhile gather for the next. A key is in at most one batch
   * in flight, so batches of one replica never find each other's keys held.
   */
  batchesInFlight: number;
  /**
   * Batches in flight at once over every namespace (each holds a pool
   * connection). A batch holds one namespace's writes, so it never waits on
   * another namespace's revision row, and namespaces commit side by side.
   */
  batchesMax: number;
  /** Told the size of every batch sent (metrics). */
  observeBatch?: (writes: number) => void;
}

interface OutcomeJson {
  applied: boolean;
  revision: number;
  item: ItemJson | null;
}

/** A row of agentstate_kv_write's result. */
interface WriteRow {
  idx: number;
  status: number;
  revision: number | null;
  value: Buffer | null;
  content_type: string | null;
  version: number | null;
  create_revision: number | null;
  mod_revision: number | null;
  created_at: Date | null;
  updated_at: Date | null;
  expires_at: Date | null;
  outcome: OutcomeJson | null;
  fence_last: number | null;
  bump_epoch: number | null;
  bump_prev_age_ms: number | null;
  wait_ms: number | null;
}

/** One write waiting for its batch. */
interface Pending {
  cmd: WriteCommand;
  /** The key as stored (UTF-8 bytes): sorted on and sent. */
  key: Buffer;
  hooks: WriteHooks;
  fingerprint: Buffer | null;
  resolve(result: DurableWriteOutcome): void;
  reject(err: unknown): void;
}

/** Bytes of values per batch: a batch is one message to Postgres. */
const MAX_BATCH_VALUE_BYTES = 4 * 1024 * 1024;

export class PostgresKvStore implements DurableKvStore {
  private readonly writes: GroupCommitQueue<Pending>;

  constructor(
    private readonly pool: Pool,
    private readonly opts: PostgresKvStoreOptions = { batchMax: 64, batchesInFlight: 1, batchesMax: 4 },
  ) {
    // A batch holds one namespace, sorted by key (concurrent batches then
    // claim keys in one order). Writes whose caller has gone are answered when
    // reached. A write on a key in a batch in flight, and a second write with
    // an idempotency key already in the batch, wait for a later batch.
    this.writes = new GroupCommitQueue<Pending>({
      maxBatch: opts.batchMax,
      maxInFlight: opts.batchesMax,
      maxInFlightPerPartition: opts.batchesInFlight,
      partition: (p) => p.cmd.namespace,
      run: (batch) => this.runBatch(batch, false),
      batchKey: idempotencyKeyOf,
      flightKey: keyOf,
      expired: (p) => tooLate(p.hooks),
      weight: valueBytes,
      maxWeight: MAX_BATCH_VALUE_BYTES,
      compare: byKey,
    });
  }

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
      revision =
        (await this.query<{ store_revision: number }>(sql("store_revision"), [q.namespace])).rows[0]?.store_revision ??
        0;
    }
    return { items, revision, more };
  }

  /** Queues the write for the next batch; settles once that batch has committed (or failed). */
  write(cmd: WriteCommand, opts: DurableWriteOptions = {}): Promise<DurableWriteOutcome> {
    const hooks = writeHooks(opts);
    const gone = tooLate(hooks);
    if (gone !== undefined) return Promise.reject(gone);
    return new Promise<DurableWriteOutcome>((resolve, reject) => {
      const fingerprint = cmd.idempotencyKey !== undefined ? requestFingerprint(cmd) : null;
      this.writes.push({ cmd, key: keyBytes(cmd.key), hooks, fingerprint, resolve, reject });
    });
  }

  /**
   * Sends one batch and settles its writes. `wait` false: writes on keys held
   * elsewhere come back busy and are run alone (with `wait` true) at once.
   */
  private runBatch(batch: Pending[], wait: boolean): Promise<void> {
    return runWriteBatch(batch, wait, this.batchSpec);
  }

  private readonly batchSpec: WriteBatchSpec<Pending, WriteRow, DurableWriteOutcome> = {
    tooLate: (p) => tooLate(p.hooks),
    send: async (batch, wait) => {
      this.opts.observeBatch?.(batch.length);
      return (await this.pool.query<WriteRow>(sql("kv_write"), batchParams(batch, wait))).rows;
    },
    busyStatus: Status.Busy,
    busyError: () => new WriteContendedError("write could not claim its key; nothing was written, retry"),
    settle,
  };

  private query<R extends object>(statement: Statement, values: unknown[]) {
    return runStatement<R>(this.pool, statement, values);
  }
}

/** The error for a write that must not be made any more, or undefined. */
function tooLate(hooks: WriteHooks): AppError | undefined {
  const gone = callerGoneError(hooks, "nothing was written");
  if (gone !== undefined) return gone;
  if (hooks.commitDeadline !== undefined && performance.now() >= hooks.commitDeadline) {
    // Committing now could outlive the cache's write-in-flight marker.
    return new CommitWindowPassedError();
  }
  return undefined;
}

/** Milliseconds from now within which the write must be made (the tighter deadline), or null. */
function remainingMs(hooks: WriteHooks): number | null {
  let ms = Infinity;
  if (hooks.deadline !== undefined) ms = hooks.deadline - Date.now();
  if (hooks.commitDeadline !== undefined) ms = Math.min(ms, hooks.commitDeadline - performance.now());
  return ms === Infinity ? null : Math.max(0, Math.floor(ms));
}

function keyOf(p: Pending): string {
  return `${p.cmd.namespace}\0${p.cmd.key}`;
}

function idempotencyKeyOf(p: Pending): string | undefined {
  return p.cmd.idempotencyKey === undefined ? undefined : `${p.cmd.namespace}\0${p.cmd.idempotencyKey}`;
}

function valueBytes(p: Pending): number {
  return p.cmd.op === "put" ? p.cmd.value.length : 0;
}

function byKey(a: Pending, b: Pending): number {
  if (a.cmd.namespace !== b.cmd.namespace) return a.cmd.namespace < b.cmd.namespace ? -1 : 1;
  return Buffer.compare(a.key, b.key);
}

/** The `expected` kinds as agentstate_kv_write numbers them. */
const EXPECTED_KIND = {
  any: KvExpectedKind.Any,
  absent: KvExpectedKind.Absent,
  version: KvExpectedKind.Version,
} as const;

/** agentstate_kv_write's parameters, by the names it declares (sql/kv_write.sql binds each by name). */
interface KvWriteParams {
  p_ns: string;
  p_key: Buffer[];
  p_op: KvWriteOp[];
  p_value: (Buffer | null)[];
  p_ct: (string | null)[];
  p_ttl_ms: (number | null)[];
  p_exp_kind: KvExpectedKind[];
  p_exp_version: (number | null)[];
  p_fence_name: (string | null)[];
  p_fence_token: (number | null)[];
  p_idem: (string | null)[];
  p_fp: (Buffer | null)[];
  p_deadline_ms: (number | null)[];
  p_marked_epoch: (number | null)[];
  p_bump: boolean[];
  p_principal: (string | null)[];
  p_request_id: (string | null)[];
  p_wait: boolean;
  p_marked_by: (string | null)[];
  p_marked_ns_epoch: (number | null)[];
}

/** A batch is one namespace's (the queue's partition). */
function batchParams(batch: Pending[], wait: boolean): unknown[] {
  const p: KvWriteParams = {
    p_ns: batch[0]!.cmd.namespace,
    p_key: [],
    p_op: [],
    p_value: [],
    p_ct: [],
    p_ttl_ms: [],
    p_exp_kind: [],
    p_exp_version: [],
    p_fence_name: [],
    p_fence_token: [],
    p_idem: [],
    p_fp: [],
    p_deadline_ms: [],
    p_marked_epoch: [],
    p_bump: [],
    p_principal: [],
    p_request_id: [],
    p_wait: wait,
    p_marked_by: [],
    p_marked_ns_epoch: [],
  };
  for (const { cmd, key, hooks, fingerprint } of batch) {
    const put = cmd.op === "put";
    p.p_key.push(key);
    p.p_op.push(put ? KvWriteOp.Put : KvWriteOp.Delete);
    p.p_value.push(put ? cmd.value : null);
    p.p_ct.push(put ? cmd.contentType : null);
    p.p_ttl_ms.push(put ? (cmd.ttlMs ?? null) : null);
    p.p_exp_kind.push(EXPECTED_KIND[cmd.expected.kind]);
    p.p_exp_version.push(cmd.expected.kind === "version" ? cmd.expected.version : null);
    p.p_fence_name.push(cmd.fence?.lockName ?? null);
    p.p_fence_token.push(cmd.fence?.token ?? null);
    p.p_idem.push(cmd.idempotencyKey ?? null);
    p.p_fp.push(fingerprint);
    p.p_deadline_ms.push(remainingMs(hooks));
    p.p_marked_epoch.push(hooks.markedEpoch ?? null);
    p.p_bump.push(hooks.bumpCacheEpoch === true);
    p.p_principal.push(hooks.actor?.principal ?? null);
    p.p_request_id.push(hooks.actor?.requestId ?? null);
    p.p_marked_by.push(hooks.markedBy ?? null);
    p.p_marked_ns_epoch.push(hooks.markedNsEpoch ?? null);
  }
  return byName(sql("kv_write"), p);
}

/** The outcome (or error) of one write from its row. */
function settle(p: Pending, row: WriteRow): DurableWriteOutcome {
  const { cmd, hooks } = p;
  switch (row.status as Status) {
    case Status.Applied:
    case Status.NotApplied: {
      const result: DurableWriteOutcome = {
        applied: row.status === Status.Applied,
        item: rowItem(cmd, row),
        revision: row.revision!,
        replayed: false,
      };
      if (row.bump_epoch !== null) result.epochBump = { epoch: row.bump_epoch, prevAgeMs: row.bump_prev_age_ms ?? 0 };
      if (row.wait_ms !== null && row.wait_ms > 0) result.cacheWaitMs = row.wait_ms;
      return result;
    }
    case Status.Replayed: {
      const o = row.outcome!;
      return {
        applied: o.applied,
        revision: o.revision,
        item: o.item === null ? undefined : itemFromJson(o.item),
        replayed: true,
      };
    }
    case Status.IdempotencyKeyReused:
      throw new IdempotencyKeyReusedError();
    case Status.FenceUnknown:
    case Status.FenceStale:
      throw fenceError(cmd.fence!, row.fence_last ?? undefined);
    case Status.DeadlinePassed:
      throw (
        tooLate(hooks) ?? new DeadlinePassedError("deadline passed before the write could be made; nothing was written")
      );
    default:
      throw new Error(`agentstate_kv_write returned status ${row.status}`);
  }
}

function rowItem(cmd: WriteCommand, row: WriteRow): Item | undefined {
  if (row.version === null) return undefined;
  return {
    key: cmd.key,
    // An applied put's value is the caller's own, not sent back by Postgres.
    value: row.value ?? (cmd.op === "put" ? cmd.value : Buffer.alloc(0)),
    contentType: row.content_type ?? "",
    version: row.version,
    createRevision: row.create_revision!,
    modRevision: row.mod_revision!,
    createTime: row.created_at!,
    updateTime: row.updated_at!,
    expireTime: row.expires_at ?? undefined,
  };
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
