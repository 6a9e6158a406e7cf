/**
 * A minimal protobuf wire-format writer for tests that must send bytes no
 * well-behaved encoder would produce: int64 values beyond 2^53, negative
 * varints, invalid UTF-8 in string fields, unknown fields, wrong wire types,
 * truncated messages. Fields are written in the order given.
 */

export const WIRE = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

const MASK64 = (1n << 64n) - 1n;

/** A varint of a 64-bit value (negative numbers as two's complement, ten bytes). */
export function varint(value: bigint | number): Buffer {
  let v = BigInt(value) & MASK64;
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}

export function tag(fieldNo: number, wireType: number): Buffer {
  return varint((BigInt(fieldNo) << 3n) | BigInt(wireType));
}

/** A varint field (int64, int32, uint64, bool, enum). */
export function fVarint(fieldNo: number, value: bigint | number | boolean): Buffer {
  return Buffer.concat([tag(fieldNo, WIRE.varint), varint(typeof value === "boolean" ? (value ? 1 : 0) : value)]);
}

/** A length-delimited field: a string (UTF-8 unless given as bytes), bytes, or an embedded message. */
export function fBytes(fieldNo: number, value: string | Uint8Array): Buffer {
  const b = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value);
  return Buffer.concat([tag(fieldNo, WIRE.bytes), varint(b.length), b]);
}

export function fFixed64(fieldNo: number, value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, value));
  return Buffer.concat([tag(fieldNo, WIRE.fixed64), b]);
}

export function fFixed32(fieldNo: number, value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return Buffer.concat([tag(fieldNo, WIRE.fixed32), b]);
}

export function message(...fields: (Buffer | undefined)[]): Buffer {
  return Buffer.concat(fields.filter((f): f is Buffer => f !== undefined));
}
