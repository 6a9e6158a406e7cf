/**
 * PostgresEventStore: event streams in Postgres.
 *
 * Appends are group-committed per namespace, as KV writes are
 * (PostgresKvStore): the appends to a namespace that arrive while its batch
 * is being committed form its next batch,
 * sent as one call of agentstate_event_append (functions/agentstate_event_append.sql)
 * in autocommit. Per append it locks (or claims) the stream's row, resolves
 * re-sent event ids, checks the fence and the expected version, then, under
 * its namespace's revision row lock, takes one namespace revision per event
 * and inserts them. One round trip and one WAL flush serve the batch, the
 * revision locks are never held across a round trip, and every caller gets
 * its own outcome once the batch has committed. A batch holds a stream at most once; an append whose
 * stream another transaction holds is answered `busy` and run alone, waiting,
 * so one held stream never stalls the others.
 */
import type { Pool } from "pg";
import {
  eventFingerprint,
  type AppendCommand,
  type AppendOutcome,
  type EventStore,
  type RecordedEvent,
  type SubscriptionTarget,
} from "../../domain/events";
import type { WriteOptions } from "../../domain/types";
import {
  AppError,
  DeadlinePassedError,
  EventIdReusedError,
  PartialBatchReplayError,
  WriteContendedError,
} from "../../errors/errors";
import { GroupCommitQueue } from "./GroupCommitQueue";
import { runWriteBatch, type WriteBatchSpec } from "./runWriteBatch";
import { callerGoneError } from "./callerGoneError";
import { fenceError } from "./fenceError";
import { byName, runStatement, sql, type Statement } from "./sql";
import { EventAppendStatus as AppendStatus, EventExpectedKind } from "./writeStatus";

interface EventRow {
  position: number;
  stream: string;
  stream_version: number;
  event_id: string;
  type: string;
  data: Buffer;
  metadata: Record<string, string>;
  created_at: Date;
}

function rowToEvent(r: EventRow): RecordedEvent {
  return {
    stream: r.stream,
    id: r.event_id,
    type: r.type,
    data: r.data,
    metadata: r.metadata,
    streamVersion: r.stream_version,
    position: r.position,
    createTime: r.created_at,
  };
}

/** One append waiting for its batch. */
interface Pending {
  cmd: AppendCommand;
  opts: WriteOptions;
  /** Namespace + stream: a batch holds it at most once and is sorted on it. */
  id: string;
  fingerprints: Buffer[];
  resolve(outcome: AppendOutcome): void;
  reject(err: unknown): void;
}

/** A row agentstate_event_append returns. */
interface AppendRow {
  idx: number;
  status: number;
  current_version: number | null;
  first_version: number | null;
  first_position: number | null;
  revision: number | null;
  fence_last: number | null;
  wait_ms: number | null;
}

/** The `expected` kinds as agentstate_event_append numbers them. */
const EXPECTED_KIND = {
  any: EventExpectedKind.Any,
  no_stream: EventExpectedKind.NoStream,
  exists: EventExpectedKind.Exists,
  version: EventExpectedKind.Version,
} as const;

/** Bytes of event data per batch: a batch is one message to Postgres. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

export interface PostgresEventStoreOptions {
  /** A read page stops once its event data passes this many bytes (at least one event). */
  pageBytes: number;
  /** Most appends in one batch (1: every append alone). */
  batchMax: number;
  /**
   * Batches in flight at once over every namespace (one per namespace at a
   * time; each holds a pool connection). A batch holds one namespace's
   * appends, so it never waits on another namespace's revision row.
   */
  batchesMax: number;
  /** Told the size of every batch sent (metrics). */
  observeBatch?: (appends: number) => void;
  /** Told, once a batch has committed, each namespace it appended events to (to wake subscribers). */
  onAppended?: (namespace: string) => void;
}

export class PostgresEventStore implements EventStore {
  private readonly appends: GroupCommitQueue<Pending>;

  constructor(
    private readonly pool: Pool,
    private readonly opts: PostgresEventStoreOptions = { pageBytes: 4 * 1024 * 1024, batchMax: 64, batchesMax: 4 },
  ) {
    // A batch holds one namespace, a stream at most once, sorted by stream
    // (concurrent batches lock streams in one order). Appends whose caller
    // has gone are answered when reached.
    this.appends = new GroupCommitQueue<Pending>({
      maxBatch: opts.batchMax,
      maxInFlight: opts.batchesMax,
      maxInFlightPerPartition: 1,
      partition: (p) => p.cmd.namespace,
      run: (batch) => this.runBatch(batch, false),
      batchKey: (p) => p.id,
      expired: (p) => tooLate(p.opts),
      weight: appendBytes,
      maxWeight: MAX_BATCH_BYTES,
      compare: byStream,
    });
  }

  append(cmd: AppendCommand, opts: WriteOptions = {}): Promise<AppendOutcome> {
    const gone = tooLate(opts);
    if (gone !== undefined) return Promise.reject(gone);
    return new Promise((resolve, reject) => {
      this.appends.push({
        cmd,
        opts,
        id: `${cmd.namespace}\0${cmd.stream}`,
        fingerprints: cmd.events.map((e) => eventFingerprint(cmd.stream, e)),
        resolve,
        reject,
      });
    });
  }

  /**
   * Sends one batch and settles its appends. `wait` false: appends to streams
   * held elsewhere come back busy and are run alone (with `wait` true) at once.
   */
  private runBatch(batch: Pending[], wait: boolean): Promise<void> {
    return runWriteBatch(batch, wait, this.batchSpec);
  }

  private readonly batchSpec: WriteBatchSpec<Pending, AppendRow, AppendOutcome> = {
    tooLate: (p) => tooLate(p.opts),
    send: async (batch, wait) => {
      this.opts.observeBatch?.(batch.length);
      const rows = (await this.pool.query<AppendRow>(sql("event_append"), batchParams(batch, wait))).rows;
      const onAppended = this.opts.onAppended;
      if (onAppended !== undefined) {
        const appended = new Set<string>();
        for (const r of rows) if (r.status === AppendStatus.Appended) appended.add(batch[r.idx - 1]!.cmd.namespace);
        for (const ns of appended) onAppended(ns);
      }
      return rows;
    },
    // A unique violation on event_id: two appends of the batch carry one id
    // (run each alone: one then sees the other's), or, alone, a concurrent
    // append of the same ids to another stream committed first (run again: it
    // is then resolved as a replay or a refusal).
    onError: (err, size) => ((err as { code?: string }).code === "23505" ? (size > 1 ? "alone" : "retry") : undefined),
    busyStatus: AppendStatus.Busy,
    busyError: () => new WriteContendedError("append could not lock its stream; nothing was appended, retry"),
    settle,
  };

  async readStream(
    namespace: string,
    stream: string,
    fromVersion: number,
    direction: "forwards" | "backwards",
    limit: number,
  ): Promise<RecordedEvent[]> {
    const name = direction === "forwards" ? "stream_read_forwards" : "stream_read_backwards";
    const r = await this.q<EventRow>(sql(name), [namespace, stream, fromVersion, limit, this.opts.pageBytes]);
    return r.rows.map(rowToEvent);
  }

  async streamVersion(namespace: string, stream: string): Promise<number> {
    const r = await this.q<{ version: number }>(sql("stream_version"), [namespace, stream]);
    return r.rows[0]?.version ?? 0;
  }

  async readAfter(
    namespace: string,
    target: SubscriptionTarget,
    after: number,
    limit: number,
  ): Promise<RecordedEvent[]> {
    const r =
      target.kind === "stream"
        ? await this.q<EventRow>(sql("events_after_stream"), [
            namespace,
            target.stream,
            after,
            limit,
            this.opts.pageBytes,
          ])
        : await this.q<EventRow>(sql("events_after_prefix"), [
            namespace,
            target.prefix,
            after,
            limit,
            this.opts.pageBytes,
          ]);
    return r.rows.map(rowToEvent);
  }

  async latestPositions(namespaces: readonly string[]): Promise<Map<string, number>> {
    const r = await this.q<{ namespace: string; position: number }>(sql("events_latest_positions"), [namespaces]);
    return new Map(r.rows.map((row) => [row.namespace, row.position]));
  }

  private q<R extends object>(statement: Statement, values: unknown[]) {
    return runStatement<R>(this.pool, statement, values);
  }
}

/** The error for an append that must not be made any more, or undefined. */
function tooLate(opts: WriteOptions): AppError | undefined {
  return callerGoneError(opts, "nothing was appended");
}

function appendBytes(p: Pending): number {
  let n = 0;
  for (const e of p.cmd.events) n += e.data.length;
  return n;
}

/** The order `[...ids].sort()` gives (UTF-16 code units); ids in a batch are distinct. */
function byStream(a: Pending, b: Pending): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** agentstate_event_append's parameters, by the names it declares (sql/event_append.sql binds each by name). */
interface EventAppendParams {
  /** The batch's one namespace (the queue's partition). */
  p_ns: string;
  /** One element per append: */
  p_stream: string[];
  p_exp_kind: EventExpectedKind[];
  p_exp_version: (number | null)[];
  p_count: number[];
  p_fence_name: (string | null)[];
  p_fence_token: (number | null)[];
  p_deadline_ms: (number | null)[];
  p_principal: (string | null)[];
  p_request_id: (string | null)[];
  /** One element per event, the events of every append in order: */
  p_ids: string[];
  p_types: string[];
  p_data: Buffer[];
  p_metadata: string[];
  p_fp: Buffer[];
  p_wait: boolean;
}

function batchParams(batch: Pending[], wait: boolean): unknown[] {
  const p: EventAppendParams = {
    p_ns: batch[0]!.cmd.namespace,
    p_stream: [],
    p_exp_kind: [],
    p_exp_version: [],
    p_count: [],
    p_fence_name: [],
    p_fence_token: [],
    p_deadline_ms: [],
    p_principal: [],
    p_request_id: [],
    p_ids: [],
    p_types: [],
    p_data: [],
    p_metadata: [],
    p_fp: [],
    p_wait: wait,
  };
  for (const { cmd, opts, fingerprints } of batch) {
    p.p_stream.push(cmd.stream);
    p.p_exp_kind.push(EXPECTED_KIND[cmd.expected.kind]);
    p.p_exp_version.push(cmd.expected.kind === "version" ? cmd.expected.version : null);
    p.p_count.push(cmd.events.length);
    p.p_fence_name.push(cmd.fence?.lockName ?? null);
    p.p_fence_token.push(cmd.fence?.token ?? null);
    p.p_deadline_ms.push(opts.deadline === undefined ? null : Math.max(0, Math.floor(opts.deadline - Date.now())));
    p.p_principal.push(opts.actor?.principal ?? null);
    p.p_request_id.push(opts.actor?.requestId ?? null);
    cmd.events.forEach((e, j) => {
      p.p_ids.push(e.id);
      p.p_types.push(e.type);
      p.p_data.push(e.data);
      p.p_metadata.push(JSON.stringify(e.metadata));
      p.p_fp.push(fingerprints[j]!);
    });
  }
  return byName(sql("event_append"), p);
}

/** The outcome (or error) of one append from its row. */
function settle(p: Pending, row: AppendRow): AppendOutcome {
  const outcome = (applied: boolean, replayed: boolean): AppendOutcome => ({
    applied,
    replayed,
    currentVersion: row.current_version!,
    firstVersion: row.first_version ?? 0,
    firstPosition: row.first_position ?? 0,
    revision: row.revision!,
  });
  switch (row.status as AppendStatus) {
    case AppendStatus.Appended: {
      const o = outcome(true, false);
      if (row.wait_ms !== null && row.wait_ms > 0) o.cacheWaitMs = row.wait_ms;
      return o;
    }
    case AppendStatus.NotApplied:
      return outcome(false, false);
    case AppendStatus.Replayed:
      return outcome(true, true);
    case AppendStatus.IdReused:
      throw new EventIdReusedError();
    case AppendStatus.PartialReplay:
      throw new PartialBatchReplayError();
    case AppendStatus.FenceRefused:
      throw fenceError(p.cmd.fence!, row.fence_last ?? undefined);
    case AppendStatus.DeadlinePassed:
      throw (
        tooLate(p.opts) ??
        new DeadlinePassedError("deadline passed before the events could be appended; nothing was appended")
      );
    default:
      throw new Error(`agentstate_event_append returned status ${row.status}`);
  }
}
