/**
 * PostgresEventStore: event streams in Postgres. An append is one READ
 * COMMITTED transaction: check the fence, lock (or claim) the stream's row,
 * resolve re-sent event ids, check the expected version, then take one store
 * revision per event (last, under the revision row lock) and insert the batch.
 * The reply is sent only after COMMIT.
 */
import type { Pool } from "pg";
import {
  eventFingerprint,
  expectedStreamHolds,
  type AppendCommand,
  type AppendOutcome,
  type EventStore,
  type RecordedEvent,
  type SubscriptionTarget,
} from "../../domain/events";
import { abortReasonError, type CallerGone } from "../../errors/abort";
import { FailedPreconditionError } from "../../errors/errors";
import { checkFence } from "./checkFence";
import { checkout } from "./checkout";
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

const MAX_CONFLICT_RETRIES = 5;

export class PostgresEventStore implements EventStore {
  /** `pageBytes`: a read page stops once its event data passes this many bytes (at least one event). */
  constructor(
    private readonly pool: Pool,
    private readonly pageBytes: number = 4 * 1024 * 1024,
  ) {}

  async append(cmd: AppendCommand, gone?: CallerGone): Promise<AppendOutcome> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.appendOnce(cmd, gone);
      } catch (err) {
        // A unique violation on event_id means a concurrent append of the same
        // ids to another stream committed first: retry, then it is resolved as a replay or refusal.
        const code = (err as { code?: string }).code;
        if ((isRetryableConflict(err) || code === "23505") && attempt < MAX_CONFLICT_RETRIES) continue;
        throw translatePgError(err);
      }
    }
  }

  private async appendOnce(cmd: AppendCommand, gone?: CallerGone): Promise<AppendOutcome> {
    let why = gone?.();
    if (why !== undefined) throw abortReasonError(why, "nothing was appended");
    const { client, release } = await checkout(this.pool);
    let inTx = false;
    try {
      await client.query("BEGIN");
      inTx = true;
      const { namespace: ns, stream } = cmd;

      // Lock the stream row, or claim a new stream.
      let version = 0;
      let claimed = false;
      for (;;) {
        const r = await client.query<{ version: number }>(sql("stream_lock"), [ns, stream]);
        if (r.rows[0]) {
          version = r.rows[0].version;
          break;
        }
        const c = await client.query(sql("stream_claim"), [ns, stream]);
        if (c.rowCount === 1) {
          claimed = true;
          break;
        }
      }

      const fingerprints = cmd.events.map((e) => eventFingerprint(stream, e));
      const ids = cmd.events.map((e) => e.id);
      const prior = await client.query<{
        event_id: string;
        stream: string;
        stream_version: number;
        position: number;
        fingerprint: Buffer;
      }>(sql("events_by_ids"), [ns, ids]);
      if (prior.rows.length > 0) {
        const byId = new Map(prior.rows.map((r) => [r.event_id, r]));
        for (const [i, e] of cmd.events.entries()) {
          const p = byId.get(e.id);
          if (p && (p.stream !== stream || !p.fingerprint.equals(fingerprints[i]!))) {
            throw new FailedPreconditionError(
              `event id ${e.id} was already appended with different content or to another stream`,
              "EVENT_ID_REUSED",
            );
          }
        }
        if (prior.rows.length !== cmd.events.length) {
          throw new FailedPreconditionError(
            "some event ids of this batch were already appended and others were not; re-send the original batch unchanged",
            "PARTIAL_BATCH_REPLAY",
          );
        }
        // Every id is already there, in this stream, with the same content: a retry.
        const first = prior.rows[0]!;
        const ordered = cmd.events.every((e, i) => byId.get(e.id)!.stream_version === first.stream_version + i);
        if (!ordered) {
          throw new FailedPreconditionError("event ids were appended in another order or batch", "EVENT_ID_REUSED");
        }
        await client.query("ROLLBACK");
        inTx = false;
        return {
          applied: true,
          replayed: true,
          currentVersion: version,
          firstVersion: first.stream_version,
          firstPosition: first.position,
          revision: await this.revision(),
        };
      }

      // After the replay check: a retry of an append that was fenced correctly
      // returns its first outcome even if a newer token exists by now.
      if (cmd.fence) await checkFence(client, ns, cmd.fence);

      if (!expectedStreamHolds(cmd.expected, version)) {
        if (claimed) await client.query(sql("stream_unclaim"), [ns, stream]);
        await client.query("COMMIT");
        inTx = false;
        return {
          applied: false,
          replayed: false,
          currentVersion: version,
          firstVersion: 0,
          firstPosition: 0,
          revision: await this.revision(),
        };
      }

      const n = cmd.events.length;
      const res = await client.query<{ first_position: number }>(sql("events_append"), [
        ns,
        stream,
        version,
        n,
        ids,
        cmd.events.map((e) => e.type),
        cmd.events.map((e) => e.data),
        cmd.events.map((e) => JSON.stringify(e.metadata)),
        fingerprints,
      ]);
      const firstPosition = res.rows[0]!.first_position;
      why = gone?.();
      if (why !== undefined) throw abortReasonError(why, "nothing was appended");
      await client.query("COMMIT");
      inTx = false;
      return {
        applied: true,
        replayed: false,
        currentVersion: version + n,
        firstVersion: version + 1,
        firstPosition,
        revision: firstPosition + n - 1,
      };
    } catch (err) {
      if (inTx) await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      release();
    }
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

  private async revision(): Promise<number> {
    const r = await this.q<{ store_revision: number }>(sql("store_revision"), []);
    return r.rows[0]?.store_revision ?? 0;
  }

  private async q<R extends object>(statement: Statement, values: unknown[]) {
    try {
      return await this.pool.query<R>(statement, values);
    } catch (err) {
      throw translatePgError(err);
    }
  }
}
