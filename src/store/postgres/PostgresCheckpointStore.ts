/**
 * The CheckpointStore in Postgres (tables: migrations/0009_checkpoints.sql).
 * A put is one statement (agentstate_checkpoint_put: strict check, channel
 * values, checkpoint row and head in one transaction); a read is one
 * statement returning the checkpoints, their channel values and pending
 * writes from one snapshot. Channel values larger than `chunkBytes` (the
 * value limit) are split into chunk rows here and joined again on read;
 * pending writes larger than it are split by agentstate_checkpoint_writes_put
 * (migrations/0012) and joined here. A write whose chunks are not all there
 * (a marker row left by a replica of an older release) is left out, never
 * returned in part.
 */
import type { Pool } from "pg";
import type {
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
import { CheckpointConflictError, InvalidArgumentError } from "../../errors/errors";
import { translatePgError } from "./pgErrors";
import { byName, sql, type Statement } from "./sql";
import { CheckpointPutStatus, CheckpointWritesStatus } from "./writeStatus";

export interface PostgresCheckpointStoreOptions {
  /** Channel values and pending writes above this many bytes are stored in chunks of this size. */
  chunkBytes: number;
  /**
   * A PutWrites of at least 1/64 of this many bytes (or with a value to chunk)
   * is refused when the checkpoint with its channel values and pending writes
   * would exceed it (checkpointReplyLimit; 0: no limit).
   */
  maxCheckpointBytes: number;
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

export class PostgresCheckpointStore implements CheckpointStore {
  constructor(
    private readonly pool: Pool,
    private readonly opts: PostgresCheckpointStoreOptions,
  ) {}

  async put(cmd: PutCheckpointCommand): Promise<PutCheckpointOutcome> {
    const chunks = { channel: [] as string[], version: [] as string[], chunk: [] as number[], type: [] as string[] };
    const data: Buffer[] = [];
    for (const v of cmd.values) {
      const size = this.opts.chunkBytes;
      const n = Math.max(1, Math.ceil(v.value.data.length / size));
      for (let i = 0; i < n; i++) {
        chunks.channel.push(v.channel);
        chunks.version.push(v.version);
        chunks.chunk.push(i);
        chunks.type.push(v.value.type);
        data.push(v.value.data.subarray(i * size, (i + 1) * size));
      }
    }
    const st = sql("checkpoint_put");
    const r = await this.q<{ status: number; created: boolean; head: string }>(
      st,
      byName(st, {
        p_namespace: cmd.namespace,
        p_thread_id: cmd.threadId,
        p_checkpoint_ns: cmd.checkpointNs,
        p_checkpoint_id: cmd.checkpointId,
        p_parent_id: cmd.parentCheckpointId,
        p_strict: cmd.strict,
        p_document_type: cmd.document.type,
        p_document: cmd.document.data,
        p_metadata: cmd.metadataJson,
        p_channel_versions: JSON.stringify(cmd.channelVersions),
        p_blob_channel: chunks.channel,
        p_blob_version: chunks.version,
        p_blob_chunk: chunks.chunk,
        p_blob_type: chunks.type,
        p_blob_size: data.map((d) => d.length),
        p_blob_data: Buffer.concat(data),
      }),
    );
    const row = r.rows[0]!;
    switch (row.status) {
      case CheckpointPutStatus.Stored:
        return { created: row.created, head: row.head };
      case CheckpointPutStatus.Conflict:
        throw new CheckpointConflictError(row.head);
      case CheckpointPutStatus.NotAfterHead:
        throw new InvalidArgumentError(
          "checkpoint_id",
          `must sort after the head's id (${row.head}) in strict mode (require_parent_is_head)`,
        );
      default:
        throw new Error(`agentstate_checkpoint_put returned status ${row.status}`);
    }
  }

  async putWrites(cmd: PutWritesCommand): Promise<number> {
    const bytes = cmd.writes.reduce((n, w) => n + w.value.data.length, 0);
    const limit = this.opts.maxCheckpointBytes;
    if (
      cmd.writes.every((w) => w.value.data.length <= this.opts.chunkBytes) &&
      (limit === 0 || bytes < limit / CHECK_FRACTION)
    ) {
      // The common case: small values, one plain statement, no size check.
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
      ]);
      return r.rows[0]?.stored ?? 0;
    }
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
    // Unnamed (text only): planned with its values, see the statement's header.
    const r = await this.q<ListRow>({ text: sql("checkpoint_list").text }, [
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
    const chunks = new Map<string, { version: string; channel: string; type: string; parts: [number, Buffer][] }>();
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
          document: { type: row.type, data: row.data },
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
          c = { channel: row.s1, version: row.s2!, type: row.type, parts: [] };
          chunks.set(key, c);
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
    for (const [key, c] of chunks) {
      c.parts.sort((a, b) => a[0] - b[0]);
      const data = c.parts.length === 1 ? c.parts[0]![1] : Buffer.concat(c.parts.map((p) => p[1]));
      values.set(key, { channel: c.channel, version: c.version, value: { type: c.type, data } });
    }
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

  async deleteThread(namespace: string, threadId: string): Promise<number> {
    const r = await this.q<{ removed: string }>(sql("checkpoint_delete_thread"), [namespace, threadId]);
    return Number(r.rows[0]?.removed ?? 0);
  }

  async copyThread(namespace: string, sourceThreadId: string, targetThreadId: string): Promise<number> {
    const r = await this.q<{ copied: string }>(sql("checkpoint_copy_thread"), [
      namespace,
      sourceThreadId,
      targetThreadId,
    ]);
    return Number(r.rows[0]?.copied ?? 0);
  }

  async prune(namespace: string, threadIds: string[], keepLatest: number): Promise<number> {
    if (threadIds.length === 0) return 0;
    const r = await this.q<{ removed: string }>(sql("checkpoint_prune"), [namespace, threadIds, keepLatest]);
    return Number(r.rows[0]?.removed ?? 0);
  }

  async deleteForRuns(namespace: string, runIds: string[]): Promise<number> {
    if (runIds.length === 0) return 0;
    const r = await this.q<{ removed: string }>(sql("checkpoint_delete_for_runs"), [namespace, runIds]);
    return Number(r.rows[0]?.removed ?? 0);
  }

  private async q<R extends object>(statement: Statement | { text: string }, values: unknown[]) {
    try {
      return await this.pool.query<R>(statement, values);
    } catch (err) {
      throw translatePgError(err, true);
    }
  }
}
