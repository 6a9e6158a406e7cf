/**
 * The CheckpointStore in Postgres (tables: migrations/0009_checkpoints.sql).
 * Puts are group-committed: a batch of puts of different threads is one
 * statement (agentstate_checkpoint_put_batch: per put, its strict check,
 * channel values, checkpoint row and head, each with its own result) and one
 * WAL flush, and a batch that fails is run again put by put (runWriteBatch),
 * so one bad put fails only itself. A PutWrites is one statement. A read is one
 * statement returning the checkpoints, their channel values and pending
 * writes from one snapshot. Channel values larger than `chunkBytes` (the
 * value limit) are split into chunk rows here and joined again on read;
 * pending writes larger than it are split by agentstate_checkpoint_writes_put
 * (migrations/0014) and joined here. A write whose chunks are not all there
 * (a marker row left by a replica of an older release) is left out, never
 * returned in part.
 *
 * Channel values as deltas (migrations/0017): a value is stored as a delta of
 * the channel's previous version in the thread when this server stored that
 * one (a cache of the last value per thread and channel, bounded in bytes)
 * and the delta is less than half the value (valueDelta.ts). At most
 * `deltaChain` deltas follow a whole value, so a read joins a bounded chain.
 * The put names the base's CRC-32 and depth and Postgres checks them under the
 * thread's head lock; a base gone or replaced (a prune, a delete, another
 * replica) refuses the put, which is sent again with whole values. So a
 * growing channel costs its growth per version, not its size. Documents are
 * stored deflated where that saves a quarter (documentCodec.ts).
 *
 * A client may send a value as a delta itself (ChannelDelta): it is stored as
 * sent, with the same meta, its base's CRC-32 and depth taken from the cache
 * (which keeps the version, CRC, depth and size of a client's delta, not its
 * bytes) or one probe of Postgres; a base not stored as named or too deep
 * refuses the put (CheckpointDeltaBaseError) and the client sends it whole.
 */
import { crc32 } from "node:zlib";
import type { Pool } from "pg";
import type {
  ChannelDelta,
  ChannelValue,
  CheckpointQuery,
  CheckpointStore,
  PendingWrite,
  PutCheckpointCommand,
  PutCheckpointOutcome,
  PutWritesCommand,
  StoredCheckpoint,
} from "../../domain/checkpoints";
import { checkpointTooLarge, compareIds } from "../../domain/checkpoints";
import type { Actor } from "../../domain/types";
import {
  CheckpointConflictError,
  CheckpointDeltaBaseError,
  InvalidArgumentError,
  StatementTimedOutError,
  StoreUnavailableError,
} from "../../errors/errors";
import { GroupCommitQueue } from "./GroupCommitQueue";
import { translatePgError } from "./pgErrors";
import { runWriteBatch, type WriteBatchSpec } from "./runWriteBatch";
import { byName, sql, type Statement } from "./sql";
import { readDocument, storedDocument } from "./documentCodec";
import { applyDelta, makeDelta, MIN_DELTA_VALUE_BYTES } from "./valueDelta";
import { CheckpointPutBatchStatus, CheckpointPutStatus, CheckpointWritesStatus } from "./writeStatus";

export interface PostgresCheckpointStoreOptions {
  /** Channel values and pending writes above this many bytes are stored in chunks of this size. */
  chunkBytes: number;
  /**
   * A PutWrites of at least 1/64 of this many bytes (or with a value to chunk)
   * is refused when the checkpoint with its channel values and pending writes
   * would exceed it (checkpointReplyLimit; 0: no limit).
   */
  maxCheckpointBytes: number;
  /** Most puts in one group-commit batch (default 64); 1: each put alone, unqueued. */
  batchMax?: number;
  /** Batches of puts running at once over every namespace, one per namespace (default 4). */
  batchesMax?: number;
  /** Called with the size of every batch sent (tests). */
  observeBatch?: (size: number) => void;
  /** Called with the size of every batch of PutWrites sent as one statement (tests). */
  observeWritesBatch?: (size: number) => void;
  /** Most deltas after a whole value of a channel (default 32); 0: values are stored whole. */
  deltaChain?: number;
  /** Bytes of last values kept to delta against (default 32 MiB). */
  deltaCacheBytes?: number;
}

/** Bytes of documents and values per batch: a batch is one message to Postgres. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

interface Chunk {
  channel: string;
  version: string;
  chunk: number;
  type: string;
  data: Buffer;
  /** Chunk 0 of a delta: its base's version, CRC-32 and the delta's depth (1 + the base's). */
  base: string | null;
  baseCrc: number | null;
  depth: number | null;
  /** Chunk 0: CRC-32 of the whole value (signed). */
  crc: number | null;
  /** Chunk 0 of a delta: the whole value's size. */
  bytes: number | null;
}

/** What chunk 0 of a value carries (the rest carry none of it). */
type ChunkMeta = Pick<Chunk, "base" | "baseCrc" | "depth" | "crc" | "bytes">;

/** `data` (a value or a delta) as chunks of at most `size` bytes, appended to `out`; chunk 0 carries `meta`. */
function pushChunks(
  out: Chunk[],
  size: number,
  value: { channel: string; version: string; type: string; data: Buffer },
  meta: ChunkMeta,
): void {
  const none: ChunkMeta = { base: null, baseCrc: null, depth: null, crc: null, bytes: null };
  const n = Math.max(1, Math.ceil(value.data.length / size));
  for (let i = 0; i < n; i++) {
    out.push({
      channel: value.channel,
      version: value.version,
      chunk: i,
      type: value.type,
      data: value.data.subarray(i * size, (i + 1) * size),
      ...(i === 0 ? meta : none),
    });
  }
}

/** The last value of a channel this server stored, to delta the next version against. */
interface LastValue {
  version: string;
  /** Undefined when a client sent it as a delta (its CRC, depth and size serve the client's next delta). */
  data: Buffer | undefined;
  crc: number;
  /** 0: stored whole. */
  depth: number;
  /** The whole value's size. */
  size: number;
}

/** Bytes a LastValue is counted for besides its data (key, fields). */
const LAST_ENTRY_BYTES = 128;

/** A put refused because a delta's base is not stored as its put named it. */
class BaseMissing extends Error {}

/** One put waiting for its batch. */
interface PendingPut {
  cmd: PutCheckpointCommand;
  /** Recorded with the put (the audit trail). */
  actor: Actor | undefined;
  chunks: Chunk[];
  resolve(outcome: PutCheckpointOutcome): void;
  reject(err: unknown): void;
}

/** A PutWrites of small values waiting for its batch (checkpoint_writes_put_small_batch). */
interface PendingWrites {
  cmd: PutWritesCommand;
  actor: Actor | undefined;
  resolve(stored: number): void;
  reject(err: unknown): void;
}

interface PutRow {
  idx: number;
  status: number;
  created: boolean;
  head: string | null;
}

/** agentstate_checkpoint_put_batch's array parameters, one element per put or per chunk. */
const PUT_ARRAYS = [
  "p_namespace",
  "p_thread_id",
  "p_checkpoint_ns",
  "p_checkpoint_id",
  "p_parent_id",
  "p_strict",
  "p_document_type",
  "p_document_size",
  "p_metadata",
  "p_channel_versions",
  "p_blob_count",
  "p_blob_channel",
  "p_blob_version",
  "p_blob_chunk",
  "p_blob_type",
  "p_blob_size",
  "p_blob_base",
  "p_blob_base_crc",
  "p_blob_depth",
  "p_blob_crc",
  "p_blob_bytes",
] as const;

/** The (namespace, thread, checkpoint ns) a put is on: its head row. */
/** A PutWrites call's task on its checkpoint: its writes' key without the index. */
function taskKey(p: { cmd: PutWritesCommand }): string {
  return `${threadKey(p.cmd)}\u0000${p.cmd.checkpointId}\u0000${p.cmd.taskId}`;
}

function threadKey(c: { namespace: string; threadId: string; checkpointNs: string }): string {
  return `${c.namespace}\0${c.threadId}\0${c.checkpointNs}`;
}

/**
 * A PutWrites whose values total at least 1/CHECK_FRACTION of the checkpoint
 * limit (or that carries a value to chunk) is checked against the limit; a
 * smaller one is stored without the check (it costs about 100 us of Postgres
 * CPU, bench/experiments/checkpoint-writes-limit.mjs), so a checkpoint passes
 * the limit only through many small calls, and a read of it then names the limit.
 */
const CHECK_FRACTION = 64;

interface ListRow {
  kind: "c" | "b" | "w" | "x";
  thread_id: string;
  checkpoint_ns: string;
  checkpoint_id: string | null;
  s1: string;
  s2: string | null;
  s3: string | null;
  n: number;
  type: string;
  data: Buffer;
  at: Date | null;
}

/** The audit trail's principal and request id parameters (NULL: not recorded). */
function who(actor: Actor | undefined): [string | null, string | null] {
  return [actor?.principal ?? null, actor?.requestId ?? null];
}

const signedCrc = (data: Buffer) => crc32(data) | 0;

export class PostgresCheckpointStore implements CheckpointStore {
  private readonly puts: GroupCommitQueue<PendingPut>;
  /** PutWrites of small values, group-committed; undefined when batchMax is 1. */
  private readonly writes: GroupCommitQueue<PendingWrites> | undefined;
  /** (namespace, thread, checkpoint ns, channel) -> its last value stored here, least recently used first. */
  private readonly last = new Map<string, LastValue>();
  private lastBytes = 0;
  private readonly deltaChain: number;
  private readonly deltaCacheBytes: number;

  constructor(
    private readonly pool: Pool,
    private readonly opts: PostgresCheckpointStoreOptions,
  ) {
    // Group commit as KV writes have it: per namespace, one batch of puts in
    // flight; the puts that arrive meanwhile gather for the next. Puts of
    // different threads share a batch; one thread's are never in one batch
    // nor in two batches at once (so a batch never waits for another's head
    // row), and a batch is sorted by thread (so concurrent batches of two
    // replicas lock heads in one order).
    this.deltaChain = opts.deltaChain ?? 32;
    this.deltaCacheBytes = opts.deltaCacheBytes ?? 32 * 1024 * 1024;
    const batchMax = opts.batchMax ?? 64;
    const batchesMax = opts.batchesMax ?? 4;
    this.puts = new GroupCommitQueue<PendingPut>({
      maxBatch: batchMax,
      maxInFlight: batchesMax,
      maxInFlightPerPartition: 1,
      partition: (p) => p.cmd.namespace,
      run: (batch) => runWriteBatch(batch, false, this.putSpec),
      batchKey: (p) => threadKey(p.cmd),
      flightKey: (p) => threadKey(p.cmd),
      weight: (p) => p.cmd.document.data.length + p.chunks.reduce((n, c) => n + c.data.length, 0),
      maxWeight: MAX_BATCH_BYTES,
      compare: (a, b) => compareIds(threadKey(a.cmd), threadKey(b.cmd)),
    });
    // PutWrites of small values as well: the calls that arrive while a batch
    // is written go as one statement (a LangGraph step's writes come right
    // after its put, so concurrent threads send theirs together). As puts,
    // one batch per namespace in flight (namespaces side by side): with a
    // batch started whenever a connection was free, most calls went alone
    // (6,500 of 8,400 at 16 threads), and batching them took Postgres' CPU
    // per step down by a sixth. Two calls of one task on
    // one checkpoint (a retry) never share a batch, so no row is proposed
    // twice in one statement, nor are they in two batches at once, so they
    // are applied in the order they came.
    this.writes =
      batchMax === 1
        ? undefined
        : new GroupCommitQueue<PendingWrites>({
            maxBatch: batchMax,
            maxInFlight: batchesMax,
            maxInFlightPerPartition: 1,
            partition: (p) => p.cmd.namespace,
            run: (batch) => this.runWrites(batch),
            batchKey: taskKey,
            flightKey: taskKey,
            weight: (p) => p.cmd.writes.reduce((n, w) => n + w.value.data.length, 0),
            maxWeight: MAX_BATCH_BYTES,
          });
  }

  /**
   * Queues the put for the next batch; settles once that batch has committed
   * (or failed). With `batchMax` 1, each put is its own statement, unqueued.
   */
  async put(cmd: PutCheckpointCommand, actor?: Actor): Promise<PutCheckpointOutcome> {
    const deltas = cmd.deltas ?? [];
    const sent = deltas.length === 0 ? [] : await this.clientDeltaChunks(cmd, deltas);
    let outcome: PutCheckpointOutcome;
    try {
      outcome = await this.send(cmd, actor, [...sent, ...this.chunked(cmd, true)]);
    } catch (err) {
      if (!(err instanceof BaseMissing)) throw err;
      // A base gone or replaced: forget this thread's last values, send whole values.
      for (const v of cmd.values) this.forget(this.lastKey(cmd, v.channel));
      for (const d of deltas) this.forget(this.lastKey(cmd, d.channel));
      try {
        outcome = await this.send(cmd, actor, [...sent, ...this.chunked(cmd, false)]);
      } catch (again) {
        // Only the client's deltas are left to name a base: one of theirs is gone.
        if (again instanceof BaseMissing) {
          throw new CheckpointDeltaBaseError(
            deltas.map((d) => d.channel).join(", "),
            "its base was removed or replaced meanwhile",
          );
        }
        throw again;
      }
    }
    this.remember(cmd);
    return outcome;
  }

  /**
   * The chunks of the values a client sent as deltas, each with its base's
   * CRC-32 and depth: from the last value this server stored for the channel
   * when that is the base, else read from Postgres (one probe per delta).
   * Postgres checks both again under the head row lock. Throws
   * CheckpointDeltaBaseError when the base is not stored as named or is
   * already `deltaChain` deep (the client then sends the value whole).
   */
  private async clientDeltaChunks(cmd: PutCheckpointCommand, deltas: ChannelDelta[]): Promise<Chunk[]> {
    const out: Chunk[] = [];
    for (const d of deltas) {
      if (this.deltaChain <= 0) {
        throw new CheckpointDeltaBaseError(
          d.channel,
          "this server stores values whole (AGENTSTATE_CHECKPOINT_DELTA_CHAIN=0)",
        );
      }
      const last = this.last.get(this.lastKey(cmd, d.channel));
      let base: { depth: number; size: number } | undefined;
      if (last !== undefined && last.version === d.baseVersion && last.crc === d.baseCrc) {
        base = last;
      } else {
        const r = await this.q<{ crc: number | null; depth: number; bytes: string | null }>(
          sql("checkpoint_blob_base"),
          [cmd.namespace, cmd.threadId, cmd.checkpointNs, d.channel, d.baseVersion],
        );
        const row = r.rows[0];
        if (row === undefined) throw new CheckpointDeltaBaseError(d.channel, "its base version is not stored");
        if (row.crc !== d.baseCrc) {
          throw new CheckpointDeltaBaseError(d.channel, "its base version is stored with another CRC-32 (other bytes)");
        }
        base = { depth: row.depth, size: Number(row.bytes ?? 0) };
      }
      if (base.depth + 1 > this.deltaChain) {
        throw new CheckpointDeltaBaseError(
          d.channel,
          `its base is already ${base.depth} deltas deep, the most is ${this.deltaChain} (AGENTSTATE_CHECKPOINT_DELTA_CHAIN)`,
        );
      }
      if (d.baseEnd > base.size) {
        throw new InvalidArgumentError(
          "values.delta.data",
          `the delta of channel ${JSON.stringify(d.channel)} takes bytes up to ${d.baseEnd} of a base of ${base.size} bytes`,
        );
      }
      const depth = base.depth + 1;
      this.pendingDepth.set(d, { crc: d.crc, depth });
      pushChunks(
        out,
        this.opts.chunkBytes,
        { channel: d.channel, version: d.version, type: "", data: d.data },
        { base: d.baseVersion, baseCrc: d.baseCrc, depth, crc: d.crc, bytes: d.size },
      );
    }
    return out;
  }

  private send(cmd: PutCheckpointCommand, actor: Actor | undefined, chunks: Chunk[]): Promise<PutCheckpointOutcome> {
    if (this.opts.batchMax === 1) {
      return new Promise<PutCheckpointOutcome>((resolve, reject) => {
        void runWriteBatch([{ cmd, actor, chunks, resolve, reject }], true, this.putSpec);
      });
    }
    return new Promise<PutCheckpointOutcome>((resolve, reject) => {
      this.puts.push({ cmd, actor, chunks, resolve, reject });
    });
  }

  private lastKey(c: { namespace: string; threadId: string; checkpointNs: string }, channel: string): string {
    return `${threadKey(c)}\0${channel}`;
  }

  private forget(key: string): void {
    const old = this.last.get(key);
    if (old === undefined) return;
    this.last.delete(key);
    this.lastBytes -= LAST_ENTRY_BYTES + (old.data?.length ?? 0);
  }

  /**
   * After a stored put: its values become their channels' last values. A
   * version that was stored before (kept as it was) may hold other bytes:
   * the next put's delta then names a CRC Postgres does not have, and is
   * sent again whole.
   */
  private remember(cmd: PutCheckpointCommand): void {
    if (this.deltaChain <= 0) return;
    for (const v of cmd.values) {
      const key = this.lastKey(cmd, v.channel);
      const meta = this.pendingDepth.get(v);
      this.forget(key);
      const data = v.value.data;
      if (meta === undefined || data.length < MIN_DELTA_VALUE_BYTES || data.length > this.deltaCacheBytes / 64)
        continue;
      this.last.set(key, {
        version: v.version,
        data: Buffer.from(data),
        crc: meta.crc,
        depth: meta.depth,
        size: data.length,
      });
      this.lastBytes += LAST_ENTRY_BYTES + data.length;
    }
    // A client's delta: what its next delta on the channel needs (no bytes).
    for (const d of cmd.deltas ?? []) {
      const key = this.lastKey(cmd, d.channel);
      const meta = this.pendingDepth.get(d);
      this.forget(key);
      if (meta === undefined) continue;
      this.last.set(key, { version: d.version, data: undefined, crc: d.crc, depth: meta.depth, size: d.size });
      this.lastBytes += LAST_ENTRY_BYTES;
    }
    while (this.lastBytes > this.deltaCacheBytes) {
      const [oldest] = this.last.keys();
      if (oldest === undefined) break;
      this.forget(oldest);
    }
  }

  /** Depth and CRC of each value of a put being sent (read by remember()). */
  private readonly pendingDepth = new WeakMap<object, { crc: number; depth: number }>();

  async putWrites(cmd: PutWritesCommand, actor?: Actor): Promise<number> {
    const bytes = cmd.writes.reduce((n, w) => n + w.value.data.length, 0);
    const limit = this.opts.maxCheckpointBytes;
    if (
      cmd.writes.every((w) => w.value.data.length <= this.opts.chunkBytes) &&
      (limit === 0 || bytes < limit / CHECK_FRACTION)
    ) {
      // The common case: small values, one plain statement (for the call, or
      // for its batch), no size check.
      const queue = this.writes;
      if (queue !== undefined) {
        return new Promise<number>((resolve, reject) => queue.push({ cmd, actor, resolve, reject }));
      }
      return this.putWritesSmall(cmd, actor);
    }
    return this.putWritesChecked(cmd, actor);
  }

  /** One PutWrites of small values alone: checkpoint_writes_put_small. */
  private async putWritesSmall(cmd: PutWritesCommand, actor: Actor | undefined): Promise<number> {
    const r = await this.q<{ stored: number }>(sql("checkpoint_writes_put_small"), [
      cmd.namespace,
      cmd.threadId,
      cmd.checkpointNs,
      cmd.checkpointId,
      cmd.taskId,
      cmd.taskPath,
      cmd.writes.map((w) => w.index),
      cmd.writes.map((w) => w.channel),
      cmd.writes.map((w) => w.value.type),
      cmd.writes.map((w) => w.value.data.length),
      Buffer.concat(cmd.writes.map((w) => w.value.data)),
      ...who(actor),
    ]);
    return r.rows[0]?.stored ?? 0;
  }

  /**
   * A batch of PutWrites of small values as one statement; each call settles
   * with its own count. A single call goes alone. A failure of the database
   * (unavailable, timed out) fails every call; any other failure is looked
   * for call by call, each alone, so it stays the one call's.
   */
  private async runWrites(batch: PendingWrites[]): Promise<void> {
    const alone = (p: PendingWrites) => this.putWritesSmall(p.cmd, p.actor).then(p.resolve, p.reject);
    if (batch.length === 1) return alone(batch[0]!);
    const call: number[] = [];
    const idx: number[] = [];
    const channel: string[] = [];
    const type: string[] = [];
    const size: number[] = [];
    const data: Buffer[] = [];
    batch.forEach((p, i) => {
      for (const w of p.cmd.writes) {
        call.push(i + 1);
        idx.push(w.index);
        channel.push(w.channel);
        type.push(w.value.type);
        size.push(w.value.data.length);
        data.push(w.value.data);
      }
    });
    const col = <T>(f: (p: PendingWrites) => T) => batch.map(f);
    let rows: { stored: number }[];
    try {
      rows = (
        await this.q<{ stored: number }>(sql("checkpoint_writes_put_small_batch"), [
          col((p) => p.cmd.namespace),
          col((p) => p.cmd.threadId),
          col((p) => p.cmd.checkpointNs),
          col((p) => p.cmd.checkpointId),
          col((p) => p.cmd.taskId),
          col((p) => p.cmd.taskPath),
          col((p) => p.actor?.principal ?? null),
          col((p) => p.actor?.requestId ?? null),
          call,
          idx,
          channel,
          type,
          size,
          Buffer.concat(data),
        ])
      ).rows;
    } catch (err) {
      if (err instanceof StoreUnavailableError || err instanceof StatementTimedOutError) {
        for (const p of batch) p.reject(err);
        return;
      }
      await Promise.all(batch.map(alone));
      return;
    }
    this.opts.observeWritesBatch?.(batch.length);
    batch.forEach((p, i) => p.resolve(rows[i]?.stored ?? 0));
  }

  /** A PutWrites with a value to chunk or large enough to check against the checkpoint's size. */
  private async putWritesChecked(cmd: PutWritesCommand, actor: Actor | undefined): Promise<number> {
    const st = sql("checkpoint_writes_put");
    const r = await this.q<{ status: number; stored: number; bytes: string | null }>(
      st,
      byName(st, {
        p_namespace: cmd.namespace,
        p_thread_id: cmd.threadId,
        p_checkpoint_ns: cmd.checkpointNs,
        p_checkpoint_id: cmd.checkpointId,
        p_task_id: cmd.taskId,
        p_task_path: cmd.taskPath,
        p_idx: cmd.writes.map((w) => w.index),
        p_channel: cmd.writes.map((w) => w.channel),
        p_type: cmd.writes.map((w) => w.value.type),
        p_size: cmd.writes.map((w) => w.value.data.length),
        p_data: Buffer.concat(cmd.writes.map((w) => w.value.data)),
        p_chunk_bytes: this.opts.chunkBytes,
        p_max_bytes: this.opts.maxCheckpointBytes,
        p_principal: actor?.principal ?? null,
        p_request_id: actor?.requestId ?? null,
      }),
    );
    const row = r.rows[0]!;
    switch (row.status) {
      case CheckpointWritesStatus.Stored:
        return row.stored;
      case CheckpointWritesStatus.TooLarge:
        throw checkpointTooLarge(
          cmd.checkpointId,
          Number(row.bytes),
          this.opts.maxCheckpointBytes,
          "would be (nothing was written)",
        );
      default:
        throw new Error(`agentstate_checkpoint_writes_put returned status ${row.status}`);
    }
  }

  async list(q: CheckpointQuery): Promise<StoredCheckpoint[]> {
    let scope: string | null = null;
    if (q.metadataFilterJson !== undefined && q.metadataFilterJson !== "{}") {
      const filter = JSON.parse(q.metadataFilterJson) as unknown;
      scope = JSON.stringify(
        q.threadId === undefined ? { n: q.namespace, m: filter } : { n: q.namespace, t: q.threadId, m: filter },
      );
    }
    const one =
      q.threadId !== undefined &&
      q.checkpointNs !== undefined &&
      q.before === undefined &&
      q.after === undefined &&
      scope === null &&
      q.limit >= 1;
    const r =
      one && q.checkpointId !== undefined
        ? await this.q<ListRow>(sql("checkpoint_get_by_id"), [q.namespace, q.threadId, q.checkpointNs, q.checkpointId])
        : one && q.limit === 1
          ? await this.q<ListRow>(sql("checkpoint_get_latest"), [q.namespace, q.threadId, q.checkpointNs])
          : // Unnamed (text only): planned with its values, see the statement's header.
            await this.q<ListRow>({ text: sql("checkpoint_list").text }, [
              q.namespace,
              q.threadId ?? "",
              q.checkpointNs ?? null,
              q.checkpointId ?? "",
              q.before ?? "",
              scope,
              q.after?.checkpointId ?? null,
              q.after?.threadId ?? null,
              q.after?.checkpointNs ?? null,
              q.limit,
            ]);
    const checkpoints: (StoredCheckpoint & { rank: number })[] = [];
    const chunks = new Map<
      string,
      {
        version: string;
        channel: string;
        type: string;
        parts: [number, Buffer][];
        base: string | null;
        crc: number | null;
        threadId: string;
        checkpointNs: string;
      }
    >();
    const writes = new Map<string, PendingWrite[]>();
    const writeChunks = new Map<string, { type: string; parts: [number, Buffer][] }>();
    for (const row of r.rows) {
      if (row.kind === "c") {
        checkpoints.push({
          rank: row.n,
          threadId: row.thread_id,
          checkpointNs: row.checkpoint_ns,
          checkpointId: row.checkpoint_id!,
          parentCheckpointId: row.s1,
          document: readDocument({ type: row.type, data: row.data }),
          metadataJson: row.s2!,
          channelVersions: JSON.parse(row.s3!) as Record<string, string>,
          values: [],
          pendingWrites: [],
          createTime: row.at!,
        });
      } else if (row.kind === "b") {
        const key = JSON.stringify([row.thread_id, row.checkpoint_ns, row.s1, row.s2]);
        let c = chunks.get(key);
        if (c === undefined) {
          c = {
            channel: row.s1,
            version: row.s2!,
            type: row.type,
            parts: [],
            base: null,
            crc: null,
            threadId: row.thread_id,
            checkpointNs: row.checkpoint_ns,
          };
          chunks.set(key, c);
        }
        if (row.n === 0 && row.s3 !== null) {
          c.base = row.s3;
          c.crc = Number(row.checkpoint_id);
        }
        c.parts.push([row.n, row.data]);
      } else if (row.kind === "x") {
        const key = JSON.stringify([row.thread_id, row.checkpoint_ns, row.checkpoint_id, row.s1, row.n]);
        let c = writeChunks.get(key);
        if (c === undefined) {
          c = { type: row.type, parts: [] };
          writeChunks.set(key, c);
        }
        c.parts.push([Number(row.s3), row.data]);
      } else {
        const key = JSON.stringify([row.thread_id, row.checkpoint_ns, row.checkpoint_id]);
        let list = writes.get(key);
        if (list === undefined) {
          list = [];
          writes.set(key, list);
        }
        list.push({
          taskId: row.s1,
          taskPath: row.s2!,
          index: row.n,
          channel: row.s3!,
          value: { type: row.type, data: row.data },
        });
      }
    }
    checkpoints.sort((a, b) => a.rank - b.rank);
    const values = new Map<string, ChannelValue>();
    // A delta's value from its base's, the base's from its own ... (a chain at most deltaChain long).
    const resolve = (key: string, depth: number): ChannelValue | undefined => {
      const done = values.get(key);
      if (done !== undefined) return done;
      const c = chunks.get(key);
      if (c === undefined) return undefined;
      c.parts.sort((a, b) => a[0] - b[0]);
      const data = c.parts.length === 1 ? c.parts[0]![1] : Buffer.concat(c.parts.map((p) => p[1]));
      let v: ChannelValue;
      if (c.base === null) {
        v = { channel: c.channel, version: c.version, value: { type: c.type, data } };
      } else {
        const base =
          depth < 1000
            ? resolve(JSON.stringify([c.threadId, c.checkpointNs, c.channel, c.base]), depth + 1)
            : undefined;
        if (base === undefined) {
          throw new Error(`checkpoint value ${c.channel}@${c.version}: its delta's base ${c.base} is not stored`);
        }
        const whole = applyDelta(base.value.data, data);
        if (signedCrc(whole.data) !== c.crc) {
          throw new Error(`checkpoint value ${c.channel}@${c.version}: its delta does not rebuild the value stored`);
        }
        v = { channel: c.channel, version: c.version, value: whole };
      }
      values.set(key, v);
      return v;
    };
    for (const key of chunks.keys()) resolve(key, 0);
    for (const cp of checkpoints) {
      for (const [channel, version] of Object.entries(cp.channelVersions)) {
        const v = values.get(JSON.stringify([cp.threadId, cp.checkpointNs, channel, version]));
        if (v !== undefined) cp.values.push(v);
      }
      const ws = (writes.get(JSON.stringify([cp.threadId, cp.checkpointNs, cp.checkpointId])) ?? []).filter((w) => {
        if (w.value.type !== "") return true;
        // A chunked write: its value is its chunks, 0..n-1, all of them, or the write is left out.
        const c = writeChunks.get(JSON.stringify([cp.threadId, cp.checkpointNs, cp.checkpointId, w.taskId, w.index]));
        if (c === undefined) return false;
        c.parts.sort((a, b) => a[0] - b[0]);
        if (!c.parts.every(([n], i) => n === i)) return false;
        w.value = { type: c.type, data: Buffer.concat(c.parts.map((p) => p[1])) };
        return true;
      });
      ws.sort((a, b) => compareIds(a.taskPath, b.taskPath) || compareIds(a.taskId, b.taskId) || a.index - b.index);
      cp.pendingWrites = ws;
    }
    return checkpoints.map(({ rank: _rank, ...cp }) => cp);
  }

  async deleteThread(namespace: string, threadId: string, actor?: Actor): Promise<number> {
    const r = await this.q<{ removed: string }>(sql("checkpoint_delete_thread"), [namespace, threadId, ...who(actor)]);
    return Number(r.rows[0]?.removed ?? 0);
  }

  async copyThread(namespace: string, sourceThreadId: string, targetThreadId: string, actor?: Actor): Promise<number> {
    const r = await this.q<{ copied: string }>(sql("checkpoint_copy_thread"), [
      namespace,
      sourceThreadId,
      targetThreadId,
      ...who(actor),
    ]);
    return Number(r.rows[0]?.copied ?? 0);
  }

  async prune(namespace: string, threadIds: string[], keepLatest: number, actor?: Actor): Promise<number> {
    if (threadIds.length === 0) return 0;
    const r = await this.q<{ removed: string }>(sql("checkpoint_prune"), [
      namespace,
      threadIds,
      keepLatest,
      ...who(actor),
    ]);
    return Number(r.rows[0]?.removed ?? 0);
  }

  async deleteForRuns(namespace: string, runIds: string[], actor?: Actor): Promise<number> {
    if (runIds.length === 0) return 0;
    const r = await this.q<{ removed: string }>(sql("checkpoint_delete_for_runs"), [namespace, runIds, ...who(actor)]);
    return Number(r.rows[0]?.removed ?? 0);
  }

  /**
   * The put's channel values as chunks of at most `chunkBytes`: each whole,
   * or (`deltas`) as a delta of its channel's last value where that pays.
   */
  private chunked(cmd: PutCheckpointCommand, deltas: boolean): Chunk[] {
    const out: Chunk[] = [];
    const size = this.opts.chunkBytes;
    for (const v of cmd.values) {
      const crc = signedCrc(v.value.data);
      let data = v.value.data;
      let type = v.value.type;
      let base: LastValue | undefined;
      if (deltas && this.deltaChain > 0 && data.length >= MIN_DELTA_VALUE_BYTES) {
        const key = this.lastKey(cmd, v.channel);
        const last = this.last.get(key);
        if (last?.data !== undefined && last.version !== v.version && last.depth < this.deltaChain) {
          const delta = makeDelta(last.data, data, type);
          if (delta !== undefined) {
            base = last;
            data = delta;
            type = "";
            // Recently used.
            this.last.delete(key);
            this.last.set(key, last);
          }
        }
      }
      const depth = base === undefined ? 0 : base.depth + 1;
      this.pendingDepth.set(v, { crc, depth });
      pushChunks(
        out,
        size,
        { channel: v.channel, version: v.version, type, data },
        base === undefined
          ? { base: null, baseCrc: null, depth: null, crc, bytes: null }
          : { base: base.version, baseCrc: base.crc, depth, crc, bytes: v.value.data.length },
      );
    }
    return out;
  }

  private readonly putSpec: WriteBatchSpec<PendingPut, PutRow, PutCheckpointOutcome> = {
    tooLate: () => undefined,
    // A put alone: agentstate_checkpoint_put itself (cheaper than the batch
    // function for one put). It waits for a head row held elsewhere, which
    // only a server statement holds (another replica's put, a prune), so it
    // stalls its namespace's queue for one statement at most. A batch:
    // agentstate_checkpoint_put_batch, whose puts on held rows come back busy.
    send: async (batch, wait) => {
      this.opts.observeBatch?.(batch.length);
      if (batch.length === 1) return [await this.putAlone(batch[0]!)];
      const p: Record<string, unknown[]> = {};
      for (const k of PUT_ARRAYS) p[k] = [];
      const docs: Buffer[] = [];
      const data: Buffer[] = [];
      const principals: (string | null)[] = [];
      const requestIds: (string | null)[] = [];
      for (const { cmd, actor, chunks } of batch) {
        principals.push(actor?.principal ?? null);
        requestIds.push(actor?.requestId ?? null);
        p.p_namespace!.push(cmd.namespace);
        p.p_thread_id!.push(cmd.threadId);
        p.p_checkpoint_ns!.push(cmd.checkpointNs);
        p.p_checkpoint_id!.push(cmd.checkpointId);
        p.p_parent_id!.push(cmd.parentCheckpointId);
        p.p_strict!.push(cmd.strict);
        const doc = storedDocument(cmd.document);
        p.p_document_type!.push(doc.type);
        p.p_document_size!.push(doc.data.length);
        docs.push(doc.data);
        p.p_metadata!.push(cmd.metadataJson);
        p.p_channel_versions!.push(JSON.stringify(cmd.channelVersions));
        p.p_blob_count!.push(chunks.length);
        for (const c of chunks) {
          p.p_blob_channel!.push(c.channel);
          p.p_blob_version!.push(c.version);
          p.p_blob_chunk!.push(c.chunk);
          p.p_blob_type!.push(c.type);
          p.p_blob_size!.push(c.data.length);
          p.p_blob_base!.push(c.base);
          p.p_blob_base_crc!.push(c.baseCrc);
          p.p_blob_depth!.push(c.depth);
          p.p_blob_crc!.push(c.crc);
          p.p_blob_bytes!.push(c.bytes);
          data.push(c.data);
        }
      }
      const st = sql("checkpoint_put_batch");
      const values = byName(st, {
        ...p,
        p_document: Buffer.concat(docs),
        p_blob_data: Buffer.concat(data),
        p_wait: wait,
        p_principal: principals,
        p_request_id: requestIds,
      });
      return (await this.pool.query<PutRow>(st, values)).rows;
    },
    busyStatus: CheckpointPutBatchStatus.Busy,
    busyError: () => new Error("agentstate_checkpoint_put_batch answered busy to a put that waits"),
    settle: (_p, row) => {
      switch (row.status) {
        case CheckpointPutStatus.Stored:
          return { created: row.created, head: row.head! };
        case CheckpointPutStatus.Conflict:
          throw new CheckpointConflictError(row.head!);
        case CheckpointPutStatus.BaseMissing:
          throw new BaseMissing("a delta's base is not stored as named");
        case CheckpointPutStatus.NotAfterHead:
          throw new InvalidArgumentError(
            "checkpoint_id",
            `must sort after the head's id (${row.head}) in strict mode (require_parent_is_head)`,
          );
        default:
          throw new Error(`agentstate_checkpoint_put_batch returned status ${row.status}`);
      }
    },
  };

  private async putAlone({ cmd, actor, chunks }: PendingPut): Promise<PutRow> {
    const st = sql("checkpoint_put");
    const doc = storedDocument(cmd.document);
    const r = await this.pool.query<Omit<PutRow, "idx">>(
      st,
      byName(st, {
        p_namespace: cmd.namespace,
        p_thread_id: cmd.threadId,
        p_checkpoint_ns: cmd.checkpointNs,
        p_checkpoint_id: cmd.checkpointId,
        p_parent_id: cmd.parentCheckpointId,
        p_strict: cmd.strict,
        p_document_type: doc.type,
        p_document: doc.data,
        p_metadata: cmd.metadataJson,
        p_channel_versions: JSON.stringify(cmd.channelVersions),
        p_blob_channel: chunks.map((c) => c.channel),
        p_blob_version: chunks.map((c) => c.version),
        p_blob_chunk: chunks.map((c) => c.chunk),
        p_blob_type: chunks.map((c) => c.type),
        p_blob_size: chunks.map((c) => c.data.length),
        p_blob_data: Buffer.concat(chunks.map((c) => c.data)),
        p_blob_base: chunks.map((c) => c.base),
        p_blob_base_crc: chunks.map((c) => c.baseCrc),
        p_blob_depth: chunks.map((c) => c.depth),
        p_blob_crc: chunks.map((c) => c.crc),
        p_blob_bytes: chunks.map((c) => c.bytes),
        p_principal: actor?.principal ?? null,
        p_request_id: actor?.requestId ?? null,
      }),
    );
    return { idx: 1, ...r.rows[0]! };
  }

  private async q<R extends object>(statement: Statement | { text: string }, values: unknown[]) {
    try {
      return await this.pool.query<R>(statement, values);
    } catch (err) {
      throw translatePgError(err, true);
    }
  }
}
