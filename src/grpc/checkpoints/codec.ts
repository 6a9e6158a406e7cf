/**
 * CheckpointService messages to domain values and back. Every decode* checks
 * each field against the limits and throws InvalidArgumentError naming it,
 * in the order the fields are listed, before anything reaches the store.
 * Thread ids, checkpoint ids, checkpoint namespaces, channels and task ids
 * follow the key rules (at most AGENTSTATE_MAX_KEY_BYTES, no NUL); type tags
 * and versions the content type's (at most 255 bytes).
 */
import {
  deltaHeader,
  parseJsonObject,
  type ChannelDelta,
  type ChannelValue,
  type CheckpointCursor,
  type CheckpointQuery,
  type PutCheckpointCommand,
  type PutWritesCommand,
  type StoredCheckpoint,
  type TypedValue,
} from "../../domain/checkpoints";
import type { Limits } from "../../domain/limits";
import { validateKey, validateNamespace, validateShortString } from "../../domain/validate";
import { InvalidArgumentError } from "../../errors/errors";
import type {
  Checkpoint as PbCheckpoint,
  ChannelValueDelta as PbChannelValueDelta,
  CopyThreadRequest,
  DeleteForRunsRequest,
  DeleteThreadRequest,
  GetCheckpointRequest,
  ListCheckpointsRequest,
  PruneCheckpointsRequest,
  PutCheckpointRequest,
  PutWritesRequest,
  TypedValue as PbTypedValue,
} from "../../gen/agentstate/v1/checkpoint";
import { requireNonNegative } from "../codec/fields";

/** An optional name (checkpoint ns, parent id, task path): key rules, but may be empty. */
function optionalName(field: string, v: string, limits: Limits): string {
  return validateShortString(field, v, limits.maxKeyBytes);
}

function typedValue(field: string, v: PbTypedValue | undefined, limits: Limits): TypedValue {
  if (v === undefined) throw new InvalidArgumentError(field, "is required");
  if (v.type === "") throw new InvalidArgumentError(`${field}.type`, "must not be empty");
  validateShortString(`${field}.type`, v.type, limits.maxContentTypeBytes);
  return { type: v.type, data: Buffer.from(v.data.buffer, v.data.byteOffset, v.data.length) };
}

/**
 * A value sent as a delta: its fields and its header (the format in
 * checkpoint.proto) checked; its base is the store's to check. The whole
 * value may be at most the message limit, as a whole value sent in one
 * request is.
 */
function channelDelta(
  field: string,
  channel: string,
  ownVersion: string,
  d: PbChannelValueDelta,
  limits: Limits,
): ChannelDelta {
  version(`${field}.base_version`, d.baseVersion, limits);
  if (d.baseVersion === ownVersion) throw new InvalidArgumentError(`${field}.base_version`, "must differ from version");
  if (d.type === "") throw new InvalidArgumentError(`${field}.type`, "must not be empty");
  validateShortString(`${field}.type`, d.type, limits.maxContentTypeBytes);
  if (d.type === "empty") throw new InvalidArgumentError(`${field}.type`, 'must not be "empty" (send that whole)');
  const data = Buffer.from(d.data.buffer, d.data.byteOffset, d.data.length);
  const h = deltaHeader(data);
  if (h === undefined) {
    throw new InvalidArgumentError(`${field}.data`, "is not a delta of format 1 (see ChannelValueDelta)");
  }
  if (h.type !== d.type) throw new InvalidArgumentError(`${field}.data`, "its type tag must equal type");
  if (!Number.isSafeInteger(d.size) || d.size > limits.maxMessageBytes) {
    throw new InvalidArgumentError(
      `${field}.size`,
      `must be at most ${limits.maxMessageBytes} bytes, the message limit (AGENTSTATE_MAX_VALUE_BYTES, AGENTSTATE_MAX_APPEND_BYTES)`,
    );
  }
  if (h.literalLength + h.runLength !== d.size) {
    throw new InvalidArgumentError(
      `${field}.size`,
      `must equal the delta's head, run and tail (${h.literalLength + h.runLength})`,
    );
  }
  return {
    channel,
    version: ownVersion,
    baseVersion: d.baseVersion,
    baseCrc: d.baseCrc32 | 0,
    data,
    crc: d.crc32 | 0,
    size: d.size,
    type: d.type,
    baseEnd: h.runAt + h.runLength,
  };
}

function version(field: string, v: string, limits: Limits): string {
  if (v === "") throw new InvalidArgumentError(field, "must not be empty");
  return validateShortString(field, v, limits.maxContentTypeBytes);
}

function threadAddress(r: { namespace: string; threadId: string; checkpointNs: string }, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  validateKey("thread_id", r.threadId, limits);
  optionalName("checkpoint_ns", r.checkpointNs, limits);
}

/** A repeated field's count against its limit (AGENTSTATE_LIST_MAX_LIMIT). */
function countAtMost(field: string, n: number, limits: Limits): void {
  if (n > limits.listMaxLimit) {
    throw new InvalidArgumentError(
      field,
      `has ${n} entries, the limit is ${limits.listMaxLimit} (AGENTSTATE_LIST_MAX_LIMIT)`,
    );
  }
}

export function decodePutCheckpoint(r: PutCheckpointRequest, limits: Limits): PutCheckpointCommand {
  threadAddress(r, limits);
  validateKey("checkpoint_id", r.checkpointId, limits);
  optionalName("parent_checkpoint_id", r.parentCheckpointId, limits);
  if (r.parentCheckpointId === r.checkpointId) {
    throw new InvalidArgumentError("parent_checkpoint_id", "must differ from checkpoint_id");
  }
  const document = typedValue("document", r.document, limits);
  const metadataJson = parseJsonObject("metadata_json", r.metadataJson);
  const channelVersions: Record<string, string> = {};
  for (const [channel, v] of Object.entries(r.channelVersions)) {
    validateKey("channel_versions (channel)", channel, limits);
    channelVersions[channel] = version(`channel_versions[${JSON.stringify(channel)}]`, v, limits);
  }
  const seen = new Set<string>();
  const values: ChannelValue[] = [];
  const deltas: ChannelDelta[] = [];
  r.values.forEach((v, i) => {
    validateKey(`values[${i}].channel`, v.channel, limits);
    version(`values[${i}].version`, v.version, limits);
    if (channelVersions[v.channel] !== v.version) {
      throw new InvalidArgumentError(`values[${i}]`, "its channel and version must be in channel_versions");
    }
    if (seen.has(v.channel)) throw new InvalidArgumentError(`values[${i}].channel`, "is given twice");
    seen.add(v.channel);
    if (v.delta === undefined) {
      values.push({ channel: v.channel, version: v.version, value: typedValue(`values[${i}].value`, v.value, limits) });
    } else {
      if (v.value !== undefined) throw new InvalidArgumentError(`values[${i}]`, "must set value or delta, not both");
      deltas.push(channelDelta(`values[${i}].delta`, v.channel, v.version, v.delta, limits));
    }
  });
  return {
    namespace: r.namespace,
    threadId: r.threadId,
    checkpointNs: r.checkpointNs,
    checkpointId: r.checkpointId,
    parentCheckpointId: r.parentCheckpointId,
    document,
    metadataJson,
    channelVersions,
    values,
    deltas,
    strict: r.requireParentIsHead,
  };
}

export function decodePutWrites(r: PutWritesRequest, limits: Limits): PutWritesCommand {
  threadAddress(r, limits);
  validateKey("checkpoint_id", r.checkpointId, limits);
  validateKey("task_id", r.taskId, limits);
  optionalName("task_path", r.taskPath, limits);
  if (r.writes.length === 0) throw new InvalidArgumentError("writes", "must hold at least one write");
  const indexes = new Set<number>();
  const writes = r.writes.map((w, i) => {
    if (!Number.isInteger(w.index)) throw new InvalidArgumentError(`writes[${i}].index`, "must be an integer");
    if (indexes.has(w.index)) throw new InvalidArgumentError(`writes[${i}].index`, `${w.index} is given twice`);
    indexes.add(w.index);
    validateKey(`writes[${i}].channel`, w.channel, limits);
    return { index: w.index, channel: w.channel, value: typedValue(`writes[${i}].value`, w.value, limits) };
  });
  return {
    namespace: r.namespace,
    threadId: r.threadId,
    checkpointNs: r.checkpointNs,
    checkpointId: r.checkpointId,
    taskId: r.taskId,
    taskPath: r.taskPath,
    writes,
  };
}

/** GetCheckpoint is a one-row list: by id, or the latest of the thread and checkpoint ns. */
export function decodeGetCheckpoint(r: GetCheckpointRequest, limits: Limits): CheckpointQuery {
  threadAddress(r, limits);
  optionalName("checkpoint_id", r.checkpointId, limits);
  return {
    namespace: r.namespace,
    threadId: r.threadId,
    checkpointNs: r.checkpointNs,
    checkpointId: r.checkpointId === "" ? undefined : r.checkpointId,
    before: undefined,
    metadataFilterJson: undefined,
    limit: 1,
    after: undefined,
  };
}

/** Page tokens are opaque: base64url of the last row's (id, thread, checkpoint ns), bound to the namespace. */
export function encodeCheckpointPageToken(namespace: string, c: CheckpointCursor): string {
  return Buffer.from(JSON.stringify([namespace, c.checkpointId, c.threadId, c.checkpointNs]), "utf8").toString(
    "base64url",
  );
}

function decodePageToken(token: string, namespace: string): CheckpointCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw new InvalidArgumentError("page_token", "is not a token returned by ListCheckpoints");
  }
  if (!Array.isArray(parsed) || parsed.length !== 4 || !parsed.every((p) => typeof p === "string")) {
    throw new InvalidArgumentError("page_token", "is not a token returned by ListCheckpoints");
  }
  const [ns, checkpointId, threadId, checkpointNs] = parsed as string[];
  if (ns !== namespace) throw new InvalidArgumentError("page_token", "does not belong to this namespace");
  return { checkpointId: checkpointId!, threadId: threadId!, checkpointNs: checkpointNs! };
}

export function decodeListCheckpoints(r: ListCheckpointsRequest, limits: Limits): CheckpointQuery {
  validateNamespace("namespace", r.namespace);
  if (r.threadId !== "") validateKey("thread_id", r.threadId, limits);
  if (r.checkpointNs !== undefined) optionalName("checkpoint_ns", r.checkpointNs, limits);
  optionalName("checkpoint_id", r.checkpointId, limits);
  optionalName("before_checkpoint_id", r.beforeCheckpointId, limits);
  const filter =
    r.metadataFilterJson.length === 0 ? undefined : parseJsonObject("metadata_filter_json", r.metadataFilterJson);
  if (!Number.isInteger(r.limit) || r.limit < 0 || r.limit > limits.listMaxLimit) {
    throw new InvalidArgumentError(
      "limit",
      `must be between 0 and ${limits.listMaxLimit} (0: default ${limits.listDefaultLimit})`,
    );
  }
  return {
    namespace: r.namespace,
    threadId: r.threadId === "" ? undefined : r.threadId,
    checkpointNs: r.checkpointNs,
    checkpointId: r.checkpointId === "" ? undefined : r.checkpointId,
    before: r.beforeCheckpointId === "" ? undefined : r.beforeCheckpointId,
    metadataFilterJson: filter,
    limit: r.limit === 0 ? limits.listDefaultLimit : r.limit,
    after: r.pageToken === "" ? undefined : decodePageToken(r.pageToken, r.namespace),
  };
}

export function decodeDeleteThread(r: DeleteThreadRequest, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  validateKey("thread_id", r.threadId, limits);
  return { namespace: r.namespace, threadId: r.threadId };
}

export function decodeCopyThread(r: CopyThreadRequest, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  validateKey("source_thread_id", r.sourceThreadId, limits);
  validateKey("target_thread_id", r.targetThreadId, limits);
  if (r.sourceThreadId === r.targetThreadId) {
    throw new InvalidArgumentError("target_thread_id", "must differ from source_thread_id");
  }
  return { namespace: r.namespace, source: r.sourceThreadId, target: r.targetThreadId };
}

export function decodePruneCheckpoints(r: PruneCheckpointsRequest, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  countAtMost("thread_ids", r.threadIds.length, limits);
  r.threadIds.forEach((t, i) => validateKey(`thread_ids[${i}]`, t, limits));
  requireNonNegative("keep_latest", r.keepLatest, "0: remove every checkpoint");
  return { namespace: r.namespace, threadIds: [...new Set(r.threadIds)], keepLatest: r.keepLatest };
}

export function decodeDeleteForRuns(r: DeleteForRunsRequest, limits: Limits) {
  validateNamespace("namespace", r.namespace);
  countAtMost("run_ids", r.runIds.length, limits);
  r.runIds.forEach((id, i) => validateKey(`run_ids[${i}]`, id, limits));
  return { namespace: r.namespace, runIds: [...new Set(r.runIds)] };
}

export function checkpointToPb(c: StoredCheckpoint): PbCheckpoint {
  return {
    threadId: c.threadId,
    checkpointNs: c.checkpointNs,
    checkpointId: c.checkpointId,
    parentCheckpointId: c.parentCheckpointId,
    document: c.document,
    metadataJson: Buffer.from(c.metadataJson, "utf8"),
    channelVersions: c.channelVersions,
    values: c.values.map((v) => ({ channel: v.channel, version: v.version, value: v.value, delta: undefined })),
    pendingWrites: c.pendingWrites,
    createTime: c.createTime,
  };
}

/** Bytes a checkpoint takes in a reply, roughly (for keeping pages within the message limit). */
export function checkpointBytes(c: StoredCheckpoint): number {
  let n = 256 + c.document.data.length + c.metadataJson.length;
  for (const v of c.values) n += 64 + v.value.data.length + v.channel.length + v.version.length;
  for (const w of c.pendingWrites) n += 64 + w.value.data.length + w.channel.length + w.taskId.length;
  for (const [k, v] of Object.entries(c.channelVersions)) n += 8 + k.length + v.length;
  return n;
}
