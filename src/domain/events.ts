/**
 * Event stream rules.
 *
 * - A stream is an append-only list of events in a namespace; an event's
 *   stream version is 1-based and dense within its stream.
 * - An event's position is a revision of its namespace: appends take one
 *   revision per event right before commit, so positions increase in the
 *   namespace's commit order across its streams, and a subscriber (always
 *   within one namespace: a stream or a stream prefix) that has seen position
 *   P has seen every committed event of the namespace below P. Reading "position > last seen" is therefore
 *   enough for catch-up-then-live delivery without gaps or duplicates.
 * - Event ids (UUIDs) are unique per namespace, enforced by the database: a
 *   re-sent batch whose ids were all appended is a no-op that returns the
 *   original positions; an id re-sent with other content is refused.
 */
import { createHash } from "node:crypto";
import type { Fence, WriteOptions } from "./types";

/**
 * What an append expects of its stream's current version (0: no stream):
 * any; no_stream (0); exists (> 0); version N (exactly N). Applied in the
 * append's own statement (agentstate_event_append, store/postgres/functions/agentstate_event_append.sql).
 */
export type ExpectedStream =
  { kind: "any" } | { kind: "no_stream" } | { kind: "exists" } | { kind: "version"; version: number };

export interface NewEvent {
  id: string;
  type: string;
  data: Buffer;
  metadata: Record<string, string>;
}

export interface AppendCommand {
  namespace: string;
  stream: string;
  expected: ExpectedStream;
  events: NewEvent[];
  fence: Fence | undefined;
}

export interface AppendOutcome {
  applied: boolean;
  /** Stream version after the append, or the current version on a mismatch (0: no stream). */
  currentVersion: number;
  firstVersion: number;
  firstPosition: number;
  replayed: boolean;
  revision: number;
}

export interface RecordedEvent {
  stream: string;
  id: string;
  type: string;
  data: Buffer;
  metadata: Record<string, string>;
  streamVersion: number;
  position: number;
  createTime: Date;
}

export type SubscriptionTarget = { kind: "stream"; stream: string } | { kind: "prefix"; prefix: string };

export interface EventStore {
  /** `opts`: what the append knows of its caller (an append not made by its deadline, or once it has gone, is not made). */
  append(cmd: AppendCommand, opts?: WriteOptions): Promise<AppendOutcome>;
  /**
   * One page of a stream from `fromVersion` (inclusive) in the given direction:
   * at most `limit` events, fewer when the page's size budget is reached (an
   * empty page means there is nothing more).
   */
  readStream(
    namespace: string,
    stream: string,
    fromVersion: number,
    direction: "forwards" | "backwards",
    limit: number,
  ): Promise<RecordedEvent[]>;
  /** Current version of a stream (0: no stream). */
  streamVersion(namespace: string, stream: string): Promise<number>;
  /** Up to `limit` events of the target with position > `after`, in position order (size-bounded like readStream). */
  readAfter(namespace: string, target: SubscriptionTarget, after: number, limit: number): Promise<RecordedEvent[]>;
}

/** Wakes subscribers when a namespace may have new events (a hint; Postgres stays the truth). */
export interface ChangeNotifier {
  /** Resolves on a change in `namespace`, after `timeoutMs`, or when `signal` aborts. */
  wait(namespace: string, timeoutMs: number, signal: AbortSignal): Promise<void>;
}

/** Identity of an event's content, so a re-sent id can be checked to carry the same event. */
export function eventFingerprint(stream: string, e: NewEvent): Buffer {
  const h = createHash("sha256");
  const meta = Object.keys(e.metadata)
    .sort()
    .map((k) => [k, e.metadata[k]!]);
  for (const part of [stream, e.type, JSON.stringify(meta)]) h.update(`${Buffer.byteLength(part)}:${part};`);
  h.update(e.data);
  return h.digest();
}

export interface SubscriptionSink {
  /** Delivers one event; resolves when the transport can take more (backpressure). */
  event(e: RecordedEvent): Promise<void>;
  caughtUp(position: number): Promise<void>;
}

export interface SubscribeOptions {
  pageSize: number;
  /** Re-read Postgres at least this often even without a notification. */
  pollMs: number;
}

/**
 * Catch-up then live: pages through Postgres by position, tells the sink once
 * it has caught up, then waits for a wake-up (or the poll interval) and reads
 * again from the last delivered position. Memory is one page at a time; the
 * sink's backpressure paces the reads.
 */
export async function runSubscription(
  store: EventStore,
  notifier: ChangeNotifier,
  namespace: string,
  target: SubscriptionTarget,
  afterPosition: number,
  sink: SubscriptionSink,
  signal: AbortSignal,
  opts: SubscribeOptions,
): Promise<void> {
  let last = afterPosition;
  let live = false;
  while (!signal.aborted) {
    // Start waiting for a wake-up before reading, so a commit that lands
    // between the read and the wait is not slept through.
    const round = new AbortController();
    const woken = notifier.wait(namespace, opts.pollMs, AbortSignal.any([signal, round.signal]));
    try {
      const page = await store.readAfter(namespace, target, last, opts.pageSize);
      for (const e of page) {
        if (signal.aborted) return;
        await sink.event(e);
        last = e.position;
      }
      // Pages are bounded by count and by bytes, so only an empty page says
      // that everything committed so far has been delivered.
      if (page.length > 0) continue;
      if (!live) {
        live = true;
        await sink.caughtUp(last);
      }
      await woken;
    } finally {
      round.abort();
    }
  }
}
