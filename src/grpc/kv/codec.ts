/**
 * KeyValueService messages to domain values and back. Every decode* checks
 * each field against the limits and throws InvalidArgumentError naming it,
 * in the order the fields are listed, before anything reaches a store.
 */
import type { Limits } from "../../domain/limits";
import type { Expected, Item, ListQuery, WriteCommand } from "../../domain/types";
import {
  validateBytes,
  validateDurationMs,
  validateEnum,
  validateNamespace,
  validateShortString,
} from "../../domain/validate";
import { InvalidArgumentError } from "../../errors/errors";
import type { Item as PbItem } from "../../gen/agentstate/v1/common";
import {
  Consistency,
  type CompareAndSetRequest,
  type DeleteRequest,
  type Expected as PbExpected,
  type GetRequest,
  type ListRequest,
} from "../../gen/agentstate/v1/kv";
import { decodeAddress, decodeFence, requirePositive } from "../codec/fields";

const CONSISTENCIES = [
  Consistency.CONSISTENCY_UNSPECIFIED,
  Consistency.CONSISTENCY_LINEARIZABLE,
  Consistency.CONSISTENCY_DATABASE,
];

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
  if (e.version !== undefined) return { kind: "version", version: requirePositive(`${field}.version`, e.version) };
  if (e.absent !== undefined) {
    if (!e.absent) throw new InvalidArgumentError(`${field}.absent`, "must be true when set");
    return { kind: "absent" };
  }
  if (!e.any) throw new InvalidArgumentError(`${field}.any`, "must be true when set");
  return { kind: "any" };
}

function optionalIdempotencyKey(v: string, limits: Limits): string | undefined {
  if (v === "") return undefined;
  return validateShortString("idempotency_key", v, limits.maxIdempotencyKeyBytes);
}

export function decodeGet(r: GetRequest, limits: Limits) {
  decodeAddress(r.namespace, "key", r.key, limits);
  validateEnum("consistency", r.consistency, CONSISTENCIES);
  return {
    namespace: r.namespace,
    key: r.key,
    consistency: r.consistency === Consistency.CONSISTENCY_DATABASE ? ("database" as const) : ("linearizable" as const),
  };
}

export function decodeCompareAndSet(r: CompareAndSetRequest, limits: Limits): WriteCommand {
  decodeAddress(r.namespace, "key", r.key, limits);
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
  decodeAddress(r.namespace, "key", r.key, limits);
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
