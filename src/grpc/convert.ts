/**
 * Conversions between protobuf messages and domain values, including request
 * validation: every decode* function checks each field against the limits and
 * throws InvalidArgumentError naming it, before anything reaches a store.
 */
import type { Limits } from "../domain/limits";
import type { Expected, Fence, Item, ListQuery, WriteCommand } from "../domain/types";
import {
  validateBytes,
  validateDurationMs,
  validateEnum,
  validateKey,
  validateNamespace,
  validateShortString,
} from "../domain/validate";
import { InvalidArgumentError } from "../errors/errors";
import type { Fence as PbFence, Item as PbItem } from "../gen/agentstate/v1/common";
import {
  Consistency,
  type CompareAndSetRequest,
  type DeleteRequest,
  type Expected as PbExpected,
  type GetRequest,
  type ListRequest,
} from "../gen/agentstate/v1/kv";
import type { LockRequest, RenewLockRequest, UnlockRequest } from "../gen/agentstate/v1/lock";
import {
  Direction,
  type AppendEventRequest,
  type ExpectedStream as PbExpectedStream,
  type ReadStreamRequest,
  type RecordedEvent as PbRecordedEvent,
  type SubscribeRequest,
} from "../gen/agentstate/v1/event";
import type { AppendCommand, ExpectedStream, RecordedEvent, SubscriptionTarget } from "../domain/events";
import { randomUUID } from "node:crypto";

export function itemToPb(i: Item): PbItem {
  return {
    key: i.key,
    value: i.value,
    contentType: i.contentType,
    version: i.version,
    createRevision: i.createRevision,
    modRevision: i.modRevision,
    createTime: i.createTime,
    updateTime: i.updateTime,
    expireTime: i.expireTime,
  };
}

export function decodeExpected(field: string, e: PbExpected | undefined): Expected {
  if (e === undefined) throw new InvalidArgumentError(field, "is required (one of version, absent, any)");
  const set = [e.version !== undefined, e.absent !== undefined, e.any !== undefined].filter(Boolean).length;
  if (set !== 1) throw new InvalidArgumentError(field, "must set exactly one of version, absent, any");
  if (e.version !== undefined) {
    if (!Number.isSafeInteger(e.version) || e.version < 1) {
      throw new InvalidArgumentError(`${field}.version`, "must be >= 1");
    }
    return { kind: "version", version: e.version };
  }
  if (e.absent !== undefined) {
    if (!e.absent) throw new InvalidArgumentError(`${field}.absent`, "must be true when set");
    return { kind: "absent" };
  }
  if (!e.any) throw new InvalidArgumentError(`${field}.any`, "must be true when set");
  return { kind: "any" };
}

export function decodeFence(field: string, f: PbFence | undefined, limits: Limits): Fence | undefined {
  if (f === undefined) return undefined;
  validateKey(`${field}.lock_name`, f.lockName, limits);
  if (!Number.isSafeInteger(f.token) || f.token < 1) throw new InvalidArgumentError(`${field}.token`, "must be >= 1");
  return { lockName: f.lockName, token: f.token };
}

function optionalIdempotencyKey(v: string, limits: Limits): string | undefined {
  if (v === "") return undefined;
  return validateShortString("idempotency_key", v, limits.maxIdempotencyKeyBytes);
}

export function decodeGet(r: GetRequest, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  validateKey("key", r.key, limits);
  validateEnum("consistency", r.consistency, [
    Consistency.CONSISTENCY_UNSPECIFIED,
    Consistency.CONSISTENCY_LINEARIZABLE,
    Consistency.CONSISTENCY_DATABASE,
  ]);
  return {
    namespace: r.namespace,
    key: r.key,
    consistency: r.consistency === Consistency.CONSISTENCY_DATABASE ? ("database" as const) : ("linearizable" as const),
  };
}

export function decodeCompareAndSet(r: CompareAndSetRequest, limits: Limits): WriteCommand {
  validateNamespace("namespace", r.namespace);
  validateKey("key", r.key, limits);
  const expected = decodeExpected("expected", r.expected);
  const value = validateBytes("value", r.value, limits.maxValueBytes);
  const contentType = validateShortString("content_type", r.contentType, limits.maxContentTypeBytes);
  const ttlMs =
    r.ttl === undefined
      ? undefined
      : validateDurationMs("ttl", r.ttl, { maxSeconds: limits.maxTtlSeconds, allowZero: false });
  return {
    op: "put",
    namespace: r.namespace,
    key: r.key,
    expected,
    value,
    contentType,
    ttlMs,
    idempotencyKey: optionalIdempotencyKey(r.idempotencyKey, limits),
    fence: decodeFence("fence", r.fence, limits),
  };
}

export function decodeDelete(r: DeleteRequest, limits: Limits): WriteCommand {
  validateNamespace("namespace", r.namespace);
  validateKey("key", r.key, limits);
  return {
    op: "delete",
    namespace: r.namespace,
    key: r.key,
    expected: decodeExpected("expected", r.expected),
    idempotencyKey: optionalIdempotencyKey(r.idempotencyKey, limits),
    fence: decodeFence("fence", r.fence, limits),
  };
}

/** Page tokens are opaque to clients: base64url of the last key, bound to namespace and prefix. */
export function encodePageToken(namespace: string, prefix: string, lastKey: string): string {
  return Buffer.from(JSON.stringify({ n: namespace, p: prefix, k: lastKey }), "utf8").toString("base64url");
}

function decodePageToken(token: string, namespace: string, prefix: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw new InvalidArgumentError("page_token", "is not a token returned by List");
  }
  const t = (parsed !== null && typeof parsed === "object" ? parsed : {}) as { n?: unknown; p?: unknown; k?: unknown };
  if (typeof t.k !== "string" || t.n !== namespace || t.p !== prefix) {
    throw new InvalidArgumentError("page_token", "does not belong to this namespace and prefix");
  }
  return t.k;
}

export function decodeList(r: ListRequest, limits: Limits): ListQuery {
  validateNamespace("namespace", r.namespace);
  if (r.prefix !== "") {
    const bytes = Buffer.byteLength(r.prefix, "utf8");
    if (bytes > limits.maxKeyBytes) {
      throw new InvalidArgumentError("prefix", `is ${bytes} bytes, the limit is ${limits.maxKeyBytes} bytes`);
    }
    if (r.prefix.includes("\u0000")) throw new InvalidArgumentError("prefix", "must not contain NUL");
  }
  if (!Number.isInteger(r.limit) || r.limit < 0 || r.limit > limits.listMaxLimit) {
    throw new InvalidArgumentError(
      "limit",
      `must be between 0 and ${limits.listMaxLimit} (0: default ${limits.listDefaultLimit})`,
    );
  }
  return {
    namespace: r.namespace,
    prefix: r.prefix,
    after: r.pageToken === "" ? undefined : decodePageToken(r.pageToken, r.namespace, r.prefix),
    limit: r.limit === 0 ? limits.listDefaultLimit : r.limit,
    includeValues: r.includeValues,
  };
}

export function decodeLock(r: LockRequest, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  validateKey("name", r.name, limits);
  if (r.ttl === undefined) throw new InvalidArgumentError("ttl", "is required");
  const ttlMs = validateDurationMs("ttl", r.ttl, { maxSeconds: limits.maxLockTtlSeconds, allowZero: false });
  const waitMs =
    r.wait === undefined
      ? 0
      : validateDurationMs("wait", r.wait, { maxSeconds: limits.maxLockWaitSeconds, allowZero: true });
  const owner = validateShortString("owner", r.owner, limits.maxOwnerBytes);
  return { namespace: r.namespace, name: r.name, ttlMs, waitMs, owner };
}

export function decodeUnlock(r: UnlockRequest, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  validateKey("name", r.name, limits);
  if (r.lockId === "") throw new InvalidArgumentError("lock_id", "is required");
  return { namespace: r.namespace, name: r.name, lockId: r.lockId };
}

export function decodeRenewLock(r: RenewLockRequest, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  validateKey("name", r.name, limits);
  if (r.lockId === "") throw new InvalidArgumentError("lock_id", "is required");
  if (r.ttl === undefined) throw new InvalidArgumentError("ttl", "is required");
  const ttlMs = validateDurationMs("ttl", r.ttl, { maxSeconds: limits.maxLockTtlSeconds, allowZero: false });
  return { namespace: r.namespace, name: r.name, lockId: r.lockId, ttlMs };
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function decodeExpectedStream(field: string, e: PbExpectedStream | undefined): ExpectedStream {
  if (e === undefined) throw new InvalidArgumentError(field, "is required (one of any, no_stream, exists, version)");
  const set = [e.any, e.noStream, e.exists, e.version].filter((v) => v !== undefined).length;
  if (set !== 1) throw new InvalidArgumentError(field, "must set exactly one of any, no_stream, exists, version");
  if (e.version !== undefined) {
    if (!Number.isSafeInteger(e.version) || e.version < 1)
      throw new InvalidArgumentError(`${field}.version`, "must be >= 1");
    return { kind: "version", version: e.version };
  }
  const [name, v, kind] =
    e.any !== undefined
      ? (["any", e.any, "any"] as const)
      : e.noStream !== undefined
        ? (["no_stream", e.noStream, "no_stream"] as const)
        : (["exists", e.exists, "exists"] as const);
  if (!v) throw new InvalidArgumentError(`${field}.${name}`, "must be true when set");
  return { kind };
}

export function decodeAppend(r: AppendEventRequest, limits: Limits): AppendCommand {
  validateNamespace("namespace", r.namespace);
  validateKey("stream", r.stream, limits);
  const expected = decodeExpectedStream("expected", r.expected);
  if (r.events.length === 0) throw new InvalidArgumentError("events", "must hold at least one event");
  if (r.events.length > limits.maxEventsPerAppend) {
    throw new InvalidArgumentError(
      "events",
      `holds ${r.events.length} events, the limit is ${limits.maxEventsPerAppend}`,
    );
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
  validateNamespace("namespace", r.namespace);
  validateKey("stream", r.stream, limits);
  validateEnum("direction", r.direction, [
    Direction.DIRECTION_UNSPECIFIED,
    Direction.DIRECTION_FORWARDS,
    Direction.DIRECTION_BACKWARDS,
  ]);
  if (!Number.isSafeInteger(r.fromVersion) || r.fromVersion < 0)
    throw new InvalidArgumentError("from_version", "must be >= 0");
  if (!Number.isSafeInteger(r.limit) || r.limit < 0)
    throw new InvalidArgumentError("limit", "must be >= 0 (0: no limit)");
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
  if (!Number.isSafeInteger(r.afterPosition) || r.afterPosition < 0) {
    throw new InvalidArgumentError("after_position", "must be >= 0");
  }
  return { namespace: r.namespace, target, afterPosition: r.afterPosition };
}

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
