/**
 * Counting repeated fields in a protobuf message's wire bytes, without
 * decoding it: a request whose repeated field is far over its limit is refused
 * before the generated decoder builds an object per element (a 250k-entry map
 * cost ~0.3 s of server CPU to decode and walk). Only tags and lengths are
 * read; the walk stops as soon as a count passes its limit. Bytes that are not
 * valid protobuf answer "nothing over" and are left to the decoder.
 */

/** Reads a varint at `pos`; returns [value, next pos] or undefined when truncated or too long. */
function varint(b: Uint8Array, pos: number): [number, number] | undefined {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) return undefined;
    const byte = b[pos++]!;
    v += (byte & 0x7f) * mul;
    if (byte < 0x80) return [v, pos];
    mul *= 128;
  }
  return undefined;
}

/** Position after the field of wire type `wt` starting at `pos`, or undefined. */
function skip(b: Uint8Array, pos: number, wt: number): number | undefined {
  switch (wt) {
    case 0:
      return varint(b, pos)?.[1];
    case 1:
      return pos + 8 <= b.length ? pos + 8 : undefined;
    case 2: {
      const l = varint(b, pos);
      return l && l[1] + l[0] <= b.length ? l[1] + l[0] : undefined;
    }
    case 5:
      return pos + 4 <= b.length ? pos + 4 : undefined;
    default:
      return undefined; // groups (3, 4) are not used by these messages
  }
}

/**
 * Calls `each(start, end)` for every length-delimited occurrence of field
 * `field` in b[from, to), in order; stops when `each` returns true. Returns
 * the number of occurrences seen, or undefined when the bytes do not parse.
 */
export function forEachField(
  b: Uint8Array,
  from: number,
  to: number,
  field: number,
  each: (start: number, end: number, index: number) => boolean,
): number | undefined {
  let pos = from;
  let n = 0;
  while (pos < to) {
    const tag = varint(b, pos);
    if (!tag) return undefined;
    const wt = tag[0] % 8;
    const num = Math.floor(tag[0] / 8);
    if (num === field && wt === 2) {
      const l = varint(b, tag[1]);
      if (!l || l[1] + l[0] > to) return undefined;
      if (each(l[1], l[1] + l[0], n++)) return n;
      pos = l[1] + l[0];
    } else {
      const next = skip(b, tag[1], wt);
      if (next === undefined || next > to) return undefined;
      pos = next;
    }
  }
  return n;
}

export type Over = { path: string; count: number; limit: number };

/**
 * AppendEventRequest (events = 4; EventData.metadata = 4): the first
 * repeated field over its limit, counted on the wire (a map entry sent twice
 * counts twice), or undefined.
 */
export function appendOverLimits(b: Uint8Array, maxEvents: number, maxMetadataEntries: number): Over | undefined {
  let over: Over | undefined;
  const events = forEachField(b, 0, b.length, 4, (start, end, i) => {
    if (i >= maxEvents) return true;
    const entries = forEachField(b, start, end, 4, (_s, _e, j) => j >= maxMetadataEntries);
    if (entries !== undefined && entries > maxMetadataEntries) {
      over = { path: `events[${i}].metadata`, count: entries, limit: maxMetadataEntries };
      return true;
    }
    return false;
  });
  if (over) return over;
  if (events !== undefined && events > maxEvents) return { path: "events", count: events, limit: maxEvents };
  return undefined;
}
