/**
 * Checkpoints of agent graphs (LangGraph's checkpointer contract): the
 * CheckpointStore port and the rules a request must meet before it reaches it.
 *
 * Terminology:
 * - thread: one conversation or run history, named by the caller; checkpoint
 *   ns: a sub-graph's lane inside a thread ("" for the root graph).
 * - checkpoint: an opaque serialized document (without its channel values),
 *   JSON metadata and the version of every channel it references; ids sort in
 *   creation order, so "latest" is the greatest id (the head).
 * - channel value: one channel's value at one version, stored once per
 *   (thread, checkpoint ns, channel, version) and shared by the checkpoints
 *   referencing it; values above the value limit are stored in chunks.
 * - pending write: what a task wrote on a checkpoint, keyed by (task id,
 *   index); a negative index (LangGraph's error, scheduled, interrupt, resume)
 *   replaces what is there, any other is kept as first written. Values above
 *   the value limit are stored in chunks too.
 * - checkpoint size: a checkpoint with the channel values it references and
 *   its pending writes is read in one reply, so it is bounded by the reply
 *   limit (checkpointReplyLimit); a PutWrites that would take it past is
 *   refused (checkpointTooLarge), nothing written (the store may skip the
 *   check for small calls: a read then refuses the checkpoint, as fitReply does).
 * - strict put: refused (CheckpointConflictError, carrying the head) unless its
 *   parent is the head, so two workers on one thread never fork it silently.
 */
import type { Actor } from "./types";
import { InvalidArgumentError, LimitExceededError } from "../errors/errors";
import type { Limits } from "./limits";

export interface TypedValue {
  type: string;
  data: Buffer;
}

export interface ChannelValue {
  channel: string;
  version: string;
  value: TypedValue;
}

export interface PendingWrite {
  taskId: string;
  taskPath: string;
  index: number;
  channel: string;
  value: TypedValue;
}

export interface CheckpointAddress {
  namespace: string;
  threadId: string;
  checkpointNs: string;
  checkpointId: string;
}

/**
 * A channel value sent as a delta of an earlier version of its channel in the
 * same thread and checkpoint ns (proto ChannelValueDelta; the format is
 * deltaHeader's). Stored as the store's own deltas are; a base not stored as
 * named, or too deep, refuses the put (CheckpointDeltaBaseError).
 */
export interface ChannelDelta {
  channel: string;
  version: string;
  baseVersion: string;
  /** CRC-32 of the base's whole value (signed 32-bit, as stored). */
  baseCrc: number;
  /** The delta's bytes. */
  data: Buffer;
  /** CRC-32 of the whole value (signed 32-bit). */
  crc: number;
  /** The whole value's size. */
  size: number;
  type: string;
  /** The base must be at least this long (the end of the run of its bytes the delta takes). */
  baseEnd: number;
}

/** What a delta's header says (format 1; see ChannelValueDelta in checkpoint.proto). */
export interface DeltaHeader {
  type: string;
  runAt: number;
  runLength: number;
  headLength: number;
  /** head + tail. */
  literalLength: number;
}

/** Parses a delta's header; undefined when the bytes are not a delta of format 1 with its head within them. */
export function deltaHeader(data: Buffer): DeltaHeader | undefined {
  if (data.length < 2 || data[0] !== 1) return undefined;
  const t = data[1]!;
  if (data.length < 14 + t) return undefined;
  const headLength = data.readUInt32LE(10 + t);
  const literalLength = data.length - 14 - t;
  if (headLength > literalLength) return undefined;
  return {
    type: data.toString("utf8", 2, 2 + t),
    runAt: data.readUInt32LE(2 + t),
    runLength: data.readUInt32LE(6 + t),
    headLength,
    literalLength,
  };
}

export interface PutCheckpointCommand extends CheckpointAddress {
  /** "" for none. */
  parentCheckpointId: string;
  document: TypedValue;
  /** A JSON object, as text. */
  metadataJson: string;
  channelVersions: Record<string, string>;
  values: ChannelValue[];
  /** Values sent as deltas (none: every value is whole). */
  deltas?: ChannelDelta[];
  strict: boolean;
}

export interface PutCheckpointOutcome {
  created: boolean;
  head: string;
}

export interface PutWritesCommand extends CheckpointAddress {
  taskId: string;
  taskPath: string;
  writes: { index: number; channel: string; value: TypedValue }[];
}

export interface StoredCheckpoint {
  threadId: string;
  checkpointNs: string;
  checkpointId: string;
  parentCheckpointId: string;
  document: TypedValue;
  metadataJson: string;
  channelVersions: Record<string, string>;
  values: ChannelValue[];
  /** Ordered by (task path, task id, index). */
  pendingWrites: PendingWrite[];
  createTime: Date;
}

/** Where a page of ListCheckpoints ended: the last checkpoint returned. */
export interface CheckpointCursor {
  checkpointId: string;
  threadId: string;
  checkpointNs: string;
}

export interface CheckpointQuery {
  namespace: string;
  /** Undefined: every thread of the namespace. */
  threadId: string | undefined;
  /** Undefined: every checkpoint ns. */
  checkpointNs: string | undefined;
  /** Undefined: any id; else only this one. */
  checkpointId: string | undefined;
  /** Only ids sorting before this one. */
  before: string | undefined;
  /** A JSON object the metadata must contain, as text. */
  metadataFilterJson: string | undefined;
  limit: number;
  after: CheckpointCursor | undefined;
}

/** What a server keeps of each thread and checkpoint ns; applied by the Janitor. 0: no such rule. */
export interface CheckpointRetention {
  keepLatest: number;
  maxAgeSeconds: number;
}

/**
 * Each change takes its `actor` (the principal and request id the audit trail
 * records with it, in its own statement; undefined: not recorded).
 */
export interface CheckpointStore {
  put(cmd: PutCheckpointCommand, actor?: Actor): Promise<PutCheckpointOutcome>;
  /**
   * Returns how many writes were stored or replaced. Throws checkpointTooLarge
   * (nothing written) when the checkpoint with its values and pending writes
   * would exceed the store's size limit.
   */
  putWrites(cmd: PutWritesCommand, actor?: Actor): Promise<number>;
  /** Newest first (greatest id, then thread and checkpoint ns), at most q.limit. */
  list(q: CheckpointQuery): Promise<StoredCheckpoint[]>;
  /** Each returns how many checkpoints it removed or copied. */
  deleteThread(namespace: string, threadId: string, actor?: Actor): Promise<number>;
  copyThread(namespace: string, sourceThreadId: string, targetThreadId: string, actor?: Actor): Promise<number>;
  prune(namespace: string, threadIds: string[], keepLatest: number, actor?: Actor): Promise<number>;
  deleteForRuns(namespace: string, runIds: string[], actor?: Actor): Promise<number>;
}

/** Compares ids as the store does (byte order of UTF-8, which is code point order). */
export function compareIds(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** Parses a JSON object given as bytes (metadata, a filter); `field` names it in the error. */
export function parseJsonObject(field: string, bytes: Uint8Array): string {
  if (bytes.length === 0) return "{}";
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError(field, "must be a JSON object (UTF-8): it does not parse");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new InvalidArgumentError(field, "must be a JSON object");
  }
  // Postgres jsonb refuses the NUL character in strings.
  if (text.includes("\\u0000")) throw new InvalidArgumentError(field, "must not contain \\u0000");
  return text;
}

/**
 * The most bytes one checkpoint may take in a reply (GetCheckpoint and
 * ListCheckpoints carry a checkpoint whole, with its channel values and
 * pending writes): the message limit less the envelope.
 */
export function checkpointReplyLimit(limits: Limits): number {
  return limits.maxMessageBytes - 64 * 1024;
}

/** A checkpoint over checkpointReplyLimit: RESOURCE_EXHAUSTED naming the settings the limit comes from. */
export function checkpointTooLarge(
  checkpointId: string,
  bytes: number,
  limit: number,
  what: string,
): LimitExceededError {
  return new LimitExceededError(
    "AGENTSTATE_MAX_APPEND_BYTES",
    `checkpoint ${JSON.stringify(checkpointId)} with its channel values and pending writes ${what} about ${bytes} bytes, ` +
      `over the checkpoint limit of ${limit} bytes (one reply: the message limit less 64 KiB, from ` +
      `AGENTSTATE_MAX_VALUE_BYTES and AGENTSTATE_MAX_APPEND_BYTES)`,
  );
}
