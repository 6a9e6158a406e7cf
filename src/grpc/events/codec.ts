/**
 * EventService messages to domain values and back. Every decode* checks each
 * field against the limits and throws InvalidArgumentError naming it, in the
 * order the fields are listed, before anything reaches the event store.
 */
import { randomUUID } from "node:crypto";
import type { AppendCommand, ExpectedStream, RecordedEvent, SubscriptionTarget } from "../../domain/events";
import type { Limits } from "../../domain/limits";
import { validateEnum, validateKey, validateNamespace, validateShortString } from "../../domain/validate";
import { InvalidArgumentError } from "../../errors/errors";
import {
  Direction,
  type AppendEventRequest,
  type ExpectedStream as PbExpectedStream,
  type ReadStreamRequest,
  type RecordedEvent as PbRecordedEvent,
  type SubscribeRequest,
} from "../../gen/agentstate/v1/event";
import { appendOverLimits } from "../codec/wireCount";
import { decodeAddress, decodeFence, requireNonNegative, requirePositive } from "../codec/fields";

const DIRECTIONS = [Direction.DIRECTION_UNSPECIFIED, Direction.DIRECTION_FORWARDS, Direction.DIRECTION_BACKWARDS];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function recordedEventToPb(e: RecordedEvent): PbRecordedEvent {
  return {
    stream: e.stream,
    id: e.id,
    type: e.type,
    data: e.data,
    metadata: e.metadata,
    streamVersion: e.streamVersion,
    position: e.position,
    createTime: e.createTime,
  };
}

export function decodeExpectedStream(field: string, e: PbExpectedStream | undefined): ExpectedStream {
  if (e === undefined) throw new InvalidArgumentError(field, "is required (one of any, no_stream, exists, version)");
  const set = [e.any, e.noStream, e.exists, e.version].filter((v) => v !== undefined).length;
  if (set !== 1) throw new InvalidArgumentError(field, "must set exactly one of any, no_stream, exists, version");
  if (e.version !== undefined) return { kind: "version", version: requirePositive(`${field}.version`, e.version) };
  const [name, v, kind] =
    e.any !== undefined
      ? (["any", e.any, "any"] as const)
      : e.noStream !== undefined
        ? (["no_stream", e.noStream, "no_stream"] as const)
        : (["exists", e.exists, "exists"] as const);
  if (!v) throw new InvalidArgumentError(`${field}.${name}`, "must be true when set");
  return { kind };
}

/**
 * AppendEvent's counts checked on the raw bytes, before the decoder builds an
 * object per event and per metadata entry (the decode guard runs it).
 */
export function appendPreDecode(limits: Limits): (bytes: Buffer) => InvalidArgumentError | undefined {
  return (bytes) => {
    const over = appendOverLimits(bytes, limits.maxEventsPerAppend, limits.maxEventMetadataEntries);
    if (!over) return undefined;
    return over.path === "events"
      ? new InvalidArgumentError("events", `holds more than ${over.limit} events, the limit is ${over.limit}`)
      : metadataOver(over.path, over.limit);
  };
}

function metadataOver(field: string, limit: number): InvalidArgumentError {
  return new InvalidArgumentError(
    field,
    `holds more than ${limit} entries, the limit is ${limit} (AGENTSTATE_MAX_EVENT_METADATA_ENTRIES)`,
  );
}

export function decodeAppend(r: AppendEventRequest, limits: Limits): AppendCommand {
  decodeAddress(r.namespace, "stream", r.stream, limits);
  const expected = decodeExpectedStream("expected", r.expected);
  if (r.events.length === 0) throw new InvalidArgumentError("events", "must hold at least one event");
  if (r.events.length > limits.maxEventsPerAppend) {
    throw new InvalidArgumentError(
      "events",
      `holds ${r.events.length} events, the limit is ${limits.maxEventsPerAppend}`,
    );
  }
  // Entry counts before anything that walks the entries: a huge map is
  // refused after counting at most limit + 1 keys of each event.
  for (const [i, e] of r.events.entries()) {
    let n = 0;
    for (const k in e.metadata) {
      if (!Object.hasOwn(e.metadata, k)) continue;
      if (++n > limits.maxEventMetadataEntries)
        throw metadataOver(`events[${i}].metadata`, limits.maxEventMetadataEntries);
    }
  }
  let total = 0;
  const seen = new Set<string>();
  const events = r.events.map((e, i) => {
    const f = `events[${i}]`;
    let id = e.id.toLowerCase();
    if (id === "") id = randomUUID();
    else if (!UUID_RE.test(id))
      throw new InvalidArgumentError(`${f}.id`, "must be a UUID (or empty to have one generated)");
    if (seen.has(id)) throw new InvalidArgumentError(`${f}.id`, "appears twice in the batch");
    seen.add(id);
    if (e.type === "") throw new InvalidArgumentError(`${f}.type`, "is required");
    validateShortString(`${f}.type`, e.type, limits.maxEventTypeBytes);
    let bytes = e.data.length + Buffer.byteLength(e.type);
    for (const [k, v] of Object.entries(e.metadata)) {
      validateShortString(`${f}.metadata`, k, limits.maxEventBytes);
      validateShortString(`${f}.metadata`, v, limits.maxEventBytes);
      bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
    }
    if (bytes > limits.maxEventBytes) {
      throw new InvalidArgumentError(
        f,
        `is ${bytes} bytes (data, type and metadata), the limit is ${limits.maxEventBytes} bytes`,
      );
    }
    total += bytes;
    return {
      id,
      type: e.type,
      data: Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length),
      metadata: { ...e.metadata },
    };
  });
  if (total > limits.maxAppendBytes) {
    throw new InvalidArgumentError(
      "events",
      `total ${total} bytes, the limit is ${limits.maxAppendBytes} bytes per append`,
    );
  }
  return { namespace: r.namespace, stream: r.stream, expected, events, fence: decodeFence("fence", r.fence, limits) };
}

export function decodeReadStream(r: ReadStreamRequest, limits: Limits) {
  decodeAddress(r.namespace, "stream", r.stream, limits);
  validateEnum("direction", r.direction, DIRECTIONS);
  requireNonNegative("from_version", r.fromVersion);
  requireNonNegative("limit", r.limit, "0: no limit");
  return {
    namespace: r.namespace,
    stream: r.stream,
    fromVersion: r.fromVersion,
    direction: r.direction === Direction.DIRECTION_BACKWARDS ? ("backwards" as const) : ("forwards" as const),
    limit: r.limit,
  };
}

export function decodeSubscribe(r: SubscribeRequest, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  let target: SubscriptionTarget;
  if (r.stream !== undefined && r.streamPrefix !== undefined) {
    throw new InvalidArgumentError("target", "set one of stream or stream_prefix, not both");
  } else if (r.stream !== undefined) {
    target = { kind: "stream", stream: validateKey("stream", r.stream, limits) };
  } else if (r.streamPrefix !== undefined) {
    validateShortString("stream_prefix", r.streamPrefix, limits.maxKeyBytes);
    target = { kind: "prefix", prefix: r.streamPrefix };
  } else {
    throw new InvalidArgumentError("target", "is required: set stream or stream_prefix");
  }
  requireNonNegative("after_position", r.afterPosition);
  return { namespace: r.namespace, target, afterPosition: r.afterPosition };
}
