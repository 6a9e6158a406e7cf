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
 *   enough for catch-up-then-live delivery without gaps or duplicates
 *   (changeFeed.ts: Subscribe, with one reader per namespace).
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
  /**
   * Set when a cache may report an older revision of the namespace for this
   * long (ms, by the truth's count: the leases on an epoch its last move
   * replaced): the append must not be acknowledged before.
   */
  cacheWaitMs?: number;
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
  /** The position of each namespace's latest event (0: none), in one statement for all of them. */
  latestPositions(namespaces: readonly string[]): Promise<Map<string, number>>;
}

/**
 * Hints that a namespace may have new events (Postgres stays the truth): an
 * append committed on this replica or another. A hint may be lost; readers
 * poll as well.
 */
export interface ChangeNotifier {
  /**
   * Calls `onChange(namespace)` on each hint, and `onChange(undefined)` when
   * hints may have been missed (any namespace may have changed); until the
   * returned function is called.
   */
  watch(onChange: (namespace: string | undefined) => void): () => void;
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
  /**
   * Optional, the same delivery without a promise when none is needed:
   * undefined once `e` is written and the transport can take more, else what
   * `event` would have returned (it resolves when the transport can take
   * more, or rejects). The change feed's shared reader uses it to write a
   * live subscriber's events itself, in its fan-out, instead of waking the
   * subscriber's own loop for each one.
   */
  eventNow?(e: RecordedEvent): Promise<void> | undefined;
  caughtUp(position: number): Promise<void>;
}
