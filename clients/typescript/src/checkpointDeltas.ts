/**
 * Channel values sent as deltas (ChannelValueDelta in checkpoint.proto): a
 * checkpoint saver keeps the last value it put per (namespace, thread,
 * checkpoint ns, channel) and sends the next version of the channel as a
 * delta of it when that pays, so a channel that grows step by step (a message
 * list) costs its growth on the wire, not its size, and the server stores the
 * delta as it is instead of computing one.
 *
 * The rule is the server's own: a value of at least 256 bytes whose delta is
 * under half its size, at most `maxDepth` deltas after a value sent whole.
 * The delta is a head, one run of the base's bytes and a tail (format 1,
 * described in checkpoint.proto; the server's src/store/postgres/valueDelta.ts
 * makes the same bytes). A put refused with FAILED_PRECONDITION, reason
 * CHECKPOINT_DELTA_BASE (the base was pruned, deleted, rewritten by another
 * writer, or is too deep on the server) is sent again whole: isDeltaBaseError,
 * forget.
 */
import { status } from "@grpc/grpc-js";
import * as zlib from "node:zlib";
import type { ChannelValue, DeepPartial } from "./gen/agentstate/v1/checkpoint";

/** Values smaller than this are sent whole (the server's rule). */
export const MIN_DELTA_VALUE_BYTES = 256;
/** Bytes of the base searched for in the value, past their common prefix. */
const PROBE = 32;
const FORMAT = 1;
/** Bytes an entry is counted for besides its value (key, fields). */
const ENTRY_BYTES = 128;

/** zlib.crc32 (Node >= 20.15); without it deltas are not sent. */
const crc32 = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32;

/** Length of the common prefix of a and b, compared natively in blocks. */
function prefixLength(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  let step = 4096;
  while (i < n) {
    const end = Math.min(n, i + step);
    if (a.compare(b, i, end, i, end) === 0) {
      i = end;
    } else if (end - i <= 16) {
      while (i < end && a[i] === b[i]) i++;
      return i;
    } else {
      step = (end - i) >> 1;
    }
  }
  return i;
}

/** The longest of: the common prefix, and the run around a probe of the base found in the value. */
function longestRun(base: Buffer, value: Buffer): { baseAt: number; valueAt: number; length: number } {
  const p = prefixLength(base, value);
  let best = { baseAt: 0, valueAt: 0, length: p };
  // Past a differing header (a msgpack list's length) of at most 16 bytes.
  const probeAt = p + 16;
  if (base.length - probeAt >= PROBE && best.length < base.length) {
    const probe = base.subarray(probeAt, probeAt + PROBE);
    let at = -1;
    for (let shift = 0; shift <= 8 && at < 0; shift++) {
      for (const d of shift === 0 ? [0] : [shift, -shift]) {
        const i = probeAt + d;
        if (i >= 0 && i + PROBE <= value.length && value.subarray(i, i + PROBE).equals(probe)) {
          at = i;
          break;
        }
      }
    }
    if (at < 0) at = value.indexOf(probe);
    if (at >= 0) {
      let back = 0;
      while (back < probeAt && back < at && base[probeAt - 1 - back] === value[at - 1 - back]) back++;
      const fwd = prefixLength(base.subarray(probeAt), value.subarray(at));
      if (back + fwd > best.length) best = { baseAt: probeAt - back, valueAt: at - back, length: back + fwd };
    }
  }
  return best;
}

/**
 * The delta of `value` (type tag `type`) against `base` in format 1, or
 * undefined when it does not pay (a value under 256 bytes, a delta of half
 * the value or more).
 */
export function makeValueDelta(base: Buffer, value: Buffer, type: string): Buffer | undefined {
  if (value.length < MIN_DELTA_VALUE_BYTES) return undefined;
  const typeBytes = Buffer.from(type, "utf8");
  if (typeBytes.length > 255) return undefined;
  const run = longestRun(base, value);
  const head = value.subarray(0, run.valueAt);
  const tail = value.subarray(run.valueAt + run.length);
  const size = 14 + typeBytes.length + head.length + tail.length;
  if (size * 2 > value.length) return undefined;
  const out = Buffer.allocUnsafe(size);
  out[0] = FORMAT;
  out[1] = typeBytes.length;
  typeBytes.copy(out, 2);
  out.writeUInt32LE(run.baseAt, 2 + typeBytes.length);
  out.writeUInt32LE(run.length, 6 + typeBytes.length);
  out.writeUInt32LE(head.length, 10 + typeBytes.length);
  head.copy(out, 14 + typeBytes.length);
  tail.copy(out, 14 + typeBytes.length + head.length);
  return out;
}

/** True for the server's refusal of a put whose delta's base it does not hold as named. */
export function isDeltaBaseError(err: unknown): boolean {
  const e = err as { code?: unknown; metadata?: { get(key: string): unknown[] } } | null;
  return (
    e?.code === status.FAILED_PRECONDITION &&
    String(e.metadata?.get("agentstate-reason")[0] ?? "") === "CHECKPOINT_DELTA_BASE"
  );
}

export interface CheckpointDeltasOptions {
  /** Bytes of last values kept (default 32 MiB; 0: no deltas). A value over 1/64 of it is not kept. */
  maxBytes?: number;
  /** Most deltas after a value sent whole (default 32, the server's default AGENTSTATE_CHECKPOINT_DELTA_CHAIN). */
  maxDepth?: number;
}

/** Where a checkpoint's channel values live. */
export interface ThreadAddress {
  namespace: string;
  threadId: string;
  checkpointNs: string;
}

/** A channel value to put, whole. */
export interface WholeChannelValue {
  channel: string;
  version: string;
  value: { type: string; data: Buffer };
}

interface Entry {
  version: string;
  data: Buffer;
  crc: number;
  /** 0: sent whole. */
  depth: number;
}

/** What encode() decided, for commit() once the put is stored. */
export interface DeltaPlan {
  readonly values: DeepPartial<ChannelValue>[];
  /** How many of values are deltas. */
  readonly deltas: number;
  /** Bytes of the values whole, and as sent. */
  readonly valueBytes: number;
  readonly sentBytes: number;
  readonly address: ThreadAddress;
  readonly entries: { channel: string; entry: Entry | undefined }[];
}

/** Counters since the cache was made. */
export interface CheckpointDeltaStats {
  /** Values sent as deltas, and whole. */
  deltas: number;
  whole: number;
  /** Puts sent again whole after CHECKPOINT_DELTA_BASE. */
  resent: number;
  /** Bytes of the values put (whole), and of what was sent for them. */
  valueBytes: number;
  sentBytes: number;
}

/** The last value put per (namespace, thread, checkpoint ns, channel), least recently used first, bounded in bytes. */
export class CheckpointDeltas {
  readonly stats: CheckpointDeltaStats = { deltas: 0, whole: 0, resent: 0, valueBytes: 0, sentBytes: 0 };
  private readonly last = new Map<string, Entry>();
  private bytes = 0;
  private readonly maxBytes: number;
  private readonly maxDepth: number;

  constructor(options: CheckpointDeltasOptions = {}) {
    this.maxBytes = options.maxBytes ?? 32 * 1024 * 1024;
    this.maxDepth = options.maxDepth ?? 32;
    if (!Number.isSafeInteger(this.maxBytes) || this.maxBytes < 0) {
      throw new RangeError("CheckpointDeltas: maxBytes must be a non-negative integer");
    }
    if (!Number.isSafeInteger(this.maxDepth) || this.maxDepth < 0) {
      throw new RangeError("CheckpointDeltas: maxDepth must be a non-negative integer");
    }
  }

  /** Whether values are ever sent as deltas (a cache of 0 bytes, depth 0 or a Node without zlib.crc32: never). */
  get enabled(): boolean {
    return this.maxBytes > 0 && this.maxDepth > 0 && crc32 !== undefined;
  }

  private key(a: ThreadAddress, channel: string): string {
    return `${a.namespace}\0${a.threadId}\0${a.checkpointNs}\0${channel}`;
  }

  /**
   * The request's values: each whole, or (`deltas`) a delta of the channel's
   * last value when that pays. Call commit() with the plan once the put is stored.
   */
  encode(address: ThreadAddress, values: WholeChannelValue[], deltas = true): DeltaPlan {
    const out: DeepPartial<ChannelValue>[] = [];
    const entries: DeltaPlan["entries"] = [];
    let n = 0;
    let valueBytes = 0;
    let sentBytes = 0;
    for (const v of values) {
      const data = v.value.data;
      valueBytes += data.length;
      if (!this.enabled || data.length < MIN_DELTA_VALUE_BYTES || data.length > this.maxBytes / 64) {
        out.push(v);
        sentBytes += data.length;
        entries.push({ channel: v.channel, entry: undefined });
        continue;
      }
      const crc = crc32!(data) >>> 0;
      const key = this.key(address, v.channel);
      const last = deltas ? this.last.get(key) : undefined;
      const delta =
        last !== undefined && last.version !== v.version && last.depth < this.maxDepth
          ? makeValueDelta(last.data, data, v.value.type)
          : undefined;
      if (last !== undefined && delta !== undefined) {
        out.push({
          channel: v.channel,
          version: v.version,
          delta: {
            baseVersion: last.version,
            baseCrc32: last.crc,
            data: delta,
            crc32: crc,
            size: data.length,
            type: v.value.type,
          },
        });
        sentBytes += delta.length;
        n++;
        entries.push({ channel: v.channel, entry: { version: v.version, data, crc, depth: last.depth + 1 } });
      } else {
        out.push(v);
        sentBytes += data.length;
        entries.push({ channel: v.channel, entry: { version: v.version, data, crc, depth: 0 } });
      }
    }
    return { values: out, deltas: n, valueBytes, sentBytes, address, entries };
  }

  /**
   * Sends `values` through `send` as deltas where they pay, and, if the server
   * refuses a base it does not hold as named (CHECKPOINT_DELTA_BASE), once
   * more with every value whole; once stored, they are the channels' last
   * values. What `send` throws otherwise is thrown.
   */
  async put(
    address: ThreadAddress,
    values: WholeChannelValue[],
    send: (plan: DeltaPlan) => Promise<void>,
  ): Promise<void> {
    let plan = this.encode(address, values);
    try {
      await send(plan);
    } catch (e) {
      if (plan.deltas === 0 || !isDeltaBaseError(e)) throw e;
      this.forget(plan);
      this.stats.resent++;
      plan = this.encode(address, values, false);
      await send(plan);
    }
    this.commit(plan);
  }

  /** After the put of `plan` was stored: its values become their channels' last values. */
  commit(plan: DeltaPlan): void {
    this.stats.deltas += plan.deltas;
    this.stats.whole += plan.values.length - plan.deltas;
    this.stats.valueBytes += plan.valueBytes;
    this.stats.sentBytes += plan.sentBytes;
    for (const { channel, entry } of plan.entries) {
      const key = this.key(plan.address, channel);
      this.drop(key);
      if (entry === undefined) continue;
      this.last.set(key, entry);
      this.bytes += ENTRY_BYTES + entry.data.length;
    }
    while (this.bytes > this.maxBytes) {
      const [oldest] = this.last.keys();
      if (oldest === undefined) break;
      this.drop(oldest);
    }
  }

  /** Forgets the last values of the plan's channels (its put was refused for a base). */
  forget(plan: DeltaPlan): void {
    for (const { channel } of plan.entries) this.drop(this.key(plan.address, channel));
  }

  /** Forgets every last value of a thread (all its checkpoint namespaces), e.g. after deleting it. */
  forgetThread(namespace: string, threadId: string): void {
    const prefix = `${namespace}\0${threadId}\0`;
    for (const key of [...this.last.keys()]) if (key.startsWith(prefix)) this.drop(key);
  }

  private drop(key: string): void {
    const old = this.last.get(key);
    if (old === undefined) return;
    this.last.delete(key);
    this.bytes -= ENTRY_BYTES + old.data.length;
  }
}
