/**
 * PostgresEventStore: event streams in Postgres. An append is one call of
 * agentstate_event_append (migrations/0005_event_append.sql) in autocommit:
 * lock (or claim) the stream's row, resolve re-sent event ids, check the
 * fence and the expected version, then take one store revision per event
 * (last, under the revision row lock) and insert the batch. One round trip,
 * and the revision lock is never held across one. The reply is sent only
 * after the commit.
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
import { abortReasonError } from "../../errors/abort";
import { AppError, DeadlineExceededError, FailedPreconditionError } from "../../errors/errors";
import { fenceError } from "./fenceError";
import { isRetryableConflict, translatePgError } from "./pgErrors";
import { sql, type Statement } from "./sql";

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

/** The row agentstate_event_append returns. */
interface AppendRow {
  status: number;
  current_version: number | null;
  first_version: number | null;
  first_position: number | null;
  revision: number | null;
  fence_last: number | null;
}

/** agentstate_event_append's statuses (migrations/0005_event_append.sql). */
const enum AppendStatus {
  Appended = 1,
  NotApplied = 2,
  Replayed = 3,
  IdReused = 4,
  PartialReplay = 5,
  FenceRefused = 6,
  DeadlinePassed = 7,
}

/** The `expected` kinds as agentstate_event_append numbers them. */
const EXPECTED_KIND = { any: 0, no_stream: 1, exists: 2, version: 3 } as const;

const MAX_CONFLICT_RETRIES = 5;

export class PostgresEventStore implements EventStore {
  /** `pageBytes`: a read page stops once its event data passes this many bytes (at least one event). */
  constructor(
    private readonly pool: Pool,
    private readonly pageBytes: number = 4 * 1024 * 1024,
  ) {}

  async append(cmd: AppendCommand, opts: WriteOptions = {}): Promise<AppendOutcome> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.appendOnce(cmd, opts);
      } catch (err) {
        if (err instanceof AppError) throw err;
        // A unique violation on event_id means a concurrent append of the same
        // ids to another stream committed first: retry, then it is resolved as a replay or refusal.
        const code = (err as { code?: string }).code;
        if ((isRetryableConflict(err) || code === "23505") && attempt < MAX_CONFLICT_RETRIES) continue;
        throw translatePgError(err);
      }
    }
  }

  private async appendOnce(cmd: AppendCommand, opts: WriteOptions): Promise<AppendOutcome> {
    const why = opts.gone?.();
    if (why !== undefined) throw abortReasonError(why, "nothing was appended");
    const deadlineMs = opts.deadline === undefined ? null : Math.floor(opts.deadline - Date.now());
    if (deadlineMs !== null && deadlineMs <= 0)
      throw new DeadlineExceededError("deadline passed; nothing was appended");
    const { namespace: ns, stream, expected, events, fence } = cmd;
    const res = await this.pool.query<AppendRow>(sql("event_append"), [
      ns,
      stream,
      EXPECTED_KIND[expected.kind],
      expected.kind === "version" ? expected.version : null,
      events.map((e) => e.id),
      events.map((e) => e.type),
      events.map((e) => e.data),
      events.map((e) => JSON.stringify(e.metadata)),
      events.map((e) => eventFingerprint(stream, e)),
      fence?.lockName ?? null,
      fence?.token ?? null,
      deadlineMs,
    ]);
    const row = res.rows[0]!;
    const outcome = (applied: boolean, replayed: boolean): AppendOutcome => ({
      applied,
      replayed,
      currentVersion: row.current_version!,
      firstVersion: row.first_version ?? 0,
      firstPosition: row.first_position ?? 0,
      revision: row.revision!,
    });
    switch (row.status as AppendStatus) {
      case AppendStatus.Appended:
        return outcome(true, false);
      case AppendStatus.NotApplied:
        return outcome(false, false);
      case AppendStatus.Replayed:
        return outcome(true, true);
      case AppendStatus.IdReused:
        throw new FailedPreconditionError(
          "event ids were already appended with different content, to another stream, or in another order or batch",
          "EVENT_ID_REUSED",
        );
      case AppendStatus.PartialReplay:
        throw new FailedPreconditionError(
          "some event ids of this batch were already appended and others were not; re-send the original batch unchanged",
          "PARTIAL_BATCH_REPLAY",
        );
      case AppendStatus.FenceRefused:
        throw fenceError(fence!, row.fence_last ?? undefined);
      case AppendStatus.DeadlinePassed:
        throw new DeadlineExceededError("deadline passed before the events could be appended; nothing was appended");
    }
    throw new Error(`agentstate_event_append returned status ${row.status}`);
  }

  async readStream(
    namespace: string,
    stream: string,
    fromVersion: number,
    direction: "forwards" | "backwards",
    limit: number,
  ): Promise<RecordedEvent[]> {
    const name = direction === "forwards" ? "stream_read_forwards" : "stream_read_backwards";
    const r = await this.q<EventRow>(sql(name), [namespace, stream, fromVersion, limit, this.pageBytes]);
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
        ? await this.q<EventRow>(sql("events_after_stream"), [namespace, target.stream, after, limit, this.pageBytes])
        : await this.q<EventRow>(sql("events_after_prefix"), [namespace, target.prefix, after, limit, this.pageBytes]);
    return r.rows.map(rowToEvent);
  }

  private async q<R extends object>(statement: Statement, values: unknown[]) {
    try {
      return await this.pool.query<R>(statement, values);
    } catch (err) {
      throw translatePgError(err);
    }
  }
}
