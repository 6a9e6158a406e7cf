/**
 * Channel values as deltas of an earlier version (migrations/0017): a value
 * is a head, a run of its base's bytes and a tail. One run covers what a
 * growing channel does between versions whatever its serialization: a JSON
 * list that gains an item keeps its base as a prefix (the run starts at 0); a
 * msgpack list keeps its items but not its length header (the run starts
 * after the header: a probe of the base is looked for a few bytes either side
 * of where it was, then anywhere in the value).
 *
 * Encoding: u8 format (1), u8 type length, the type (UTF-8), u32 the run's
 * offset in the base, u32 its length, u32 the head's length, the head, the
 * tail (the rest).
 */

import { deltaHeader } from "../../domain/checkpoints";

const FORMAT = 1;
/** Bytes of the base searched for in the value, past their common prefix. */
const PROBE = 32;
/** Values smaller than this are stored whole (a delta would not pay for its row's base column). */
export const MIN_DELTA_VALUE_BYTES = 256;

/** Length of the common prefix of a and b: blocks compared natively, the differing one halved down. */
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

interface Run {
  /** Where the run starts in the base. */
  baseAt: number;
  /** Where it starts in the value. */
  valueAt: number;
  length: number;
}

/** The longest of: the common prefix, and the run around a probe of the base found in the value. */
function longestRun(base: Buffer, value: Buffer): Run {
  const p = prefixLength(base, value);
  let best: Run = { baseAt: 0, valueAt: 0, length: p };
  // Past a differing header (a length prefix) of at most 16 bytes.
  const probeAt = p + 16;
  if (base.length - probeAt >= PROBE && best.length < base.length) {
    const probe = base.subarray(probeAt, probeAt + PROBE);
    // Where a header that changed length moved it (a few bytes either way), else anywhere.
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
 * The delta of `value` (of type `type`) against `base`, or undefined when
 * storing it whole is as good (the delta would be more than half its size).
 */
export function makeDelta(base: Buffer, value: Buffer, type: string): Buffer | undefined {
  if (value.length < MIN_DELTA_VALUE_BYTES) return undefined;
  const run = longestRun(base, value);
  const typeBytes = Buffer.from(type, "utf8");
  if (typeBytes.length > 255) return undefined;
  const head = value.subarray(0, run.valueAt);
  const tail = value.subarray(run.valueAt + run.length);
  const size = 2 + typeBytes.length + 12 + head.length + tail.length;
  if (size * 2 > value.length) return undefined;
  const header = Buffer.alloc(2 + typeBytes.length + 12);
  header[0] = FORMAT;
  header[1] = typeBytes.length;
  typeBytes.copy(header, 2);
  header.writeUInt32LE(run.baseAt, 2 + typeBytes.length);
  header.writeUInt32LE(run.length, 6 + typeBytes.length);
  header.writeUInt32LE(head.length, 10 + typeBytes.length);
  return Buffer.concat([header, head, tail]);
}

/** The value a delta stands for, from its base's value. Throws on a delta that does not fit its base. */
export function applyDelta(base: Buffer, delta: Buffer): { type: string; data: Buffer } {
  const h = deltaHeader(delta);
  if (h === undefined) throw new Error("checkpoint value delta: unknown format or truncated");
  if (h.runAt + h.runLength > base.length) throw new Error("checkpoint value delta: does not fit its base");
  const rest = delta.subarray(delta.length - h.literalLength);
  return {
    type: h.type,
    data: Buffer.concat([
      rest.subarray(0, h.headLength),
      base.subarray(h.runAt, h.runAt + h.runLength),
      rest.subarray(h.headLength),
    ]),
  };
}
