/**
 * Event stream types of the helpers: what appendEvent() takes and returns,
 * readStream()'s options, and the conversions to the generated messages.
 */
import { randomUUID } from "node:crypto";
import type { Metadata } from "@grpc/grpc-js";
import type { Backoff } from "./backoff";
import type { DeepPartial, Fence } from "./gen/agentstate/v1/common";
import { Direction, type AppendEventResponse, type EventData, type ExpectedStream } from "./gen/agentstate/v1/event";

/** An event's payload: bytes, or a string stored as UTF-8. */
export type EventPayload = Uint8Array | string;

/** An event to append. */
export interface NewEvent {
  /**
   * A UUID that makes the append idempotent. When missing, appendEvent()
   * generates a UUIDv4 once per call, so its retries re-send the same ids.
   * Pass your own to stay idempotent across process restarts.
   */
  id?: string;
  /** Event type, e.g. "item_added" (1..255 bytes). */
  type: string;
  /** Payload; default empty. */
  data?: EventPayload;
  /** String metadata. */
  metadata?: Record<string, string>;
}

/**
 * The condition an append requires of the stream: `"any"`, `"no_stream"`
 * (no events yet), `"exists"` (at least one event), a version number (the
 * stream's last version must be exactly that, >= 1), or the message itself.
 */
export type ExpectedVersion = "any" | "no_stream" | "exists" | number | DeepPartial<ExpectedStream>;

export interface AppendOptions {
  /** Fence the append with a lock acquisition (`held.fence` inside withLock). */
  fence?: Fence;
  /** Retries after UNAVAILABLE or DEADLINE_EXCEEDED, with the same event ids. Default 3. */
  retries?: number;
  /** Backoff between retries. Default 100 ms doubling up to 2 s, full jitter. */
  backoff?: Backoff;
  /** Deadline of each attempt. */
  deadlineMs?: number;
  metadata?: Metadata;
  signal?: AbortSignal;
}

/** appendEvent()'s outcome: the server's reply plus the ids the events were sent with. */
export interface AppendResult extends AppendEventResponse {
  /** The id of each event, in order (generated ones included). */
  eventIds: string[];
}

export interface ReadStreamOptions {
  /** Default "forwards" (oldest first). */
  direction?: "forwards" | "backwards" | Direction;
  /** First version returned (inclusive); default 0: the start (forwards) or the end (backwards). */
  fromVersion?: number;
  /** At most this many events; default 0: no limit. */
  limit?: number;
  /** Deadline of the whole read (the client's default unless given). */
  deadlineMs?: number;
  metadata?: Metadata;
  /** Cancels the read; the iteration then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A UUIDv4 for an event id. */
export function newEventId(): string {
  return randomUUID();
}

export function toExpectedStream(e: ExpectedVersion): DeepPartial<ExpectedStream> {
  if (typeof e === "number") return { version: e };
  switch (e) {
    case "any":
      return { any: true };
    case "no_stream":
      return { noStream: true };
    case "exists":
      return { exists: true };
    default:
      if (typeof e === "object" && e !== null) return e;
      throw new TypeError(`expected must be "any", "no_stream", "exists", a version or an ExpectedStream; got ${e}`);
  }
}

function payload(v: EventPayload | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  if (typeof v === "string") return Buffer.from(v, "utf8");
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** The events as sent: ids filled in (a fresh UUIDv4 where missing), inputs left untouched. */
export function toEventData(events: readonly NewEvent[]): EventData[] {
  return events.map((e) => ({
    id: e.id || newEventId(),
    type: e.type,
    data: payload(e.data),
    metadata: { ...e.metadata },
  }));
}

export function toDirection(d: ReadStreamOptions["direction"]): Direction {
  if (d === undefined || d === "forwards") return Direction.DIRECTION_FORWARDS;
  if (d === "backwards") return Direction.DIRECTION_BACKWARDS;
  return d;
}
