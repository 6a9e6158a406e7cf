import * as assert from "node:assert/strict";
import fc from "fast-check";
import { applyDelta, makeDelta, MIN_DELTA_VALUE_BYTES } from "../../src/store/postgres/valueDelta";

/** msgpack's array header: fixarray up to 15 items, array16 beyond. */
function msgpackList(items: Buffer[]): Buffer {
  const n = items.length;
  const header = n < 16 ? Buffer.from([0x90 | n]) : Buffer.from([0xdc, n >> 8, n & 0xff]);
  return Buffer.concat([header, ...items.map((i) => Buffer.concat([Buffer.from([0xc4, i.length]), i]))]);
}

const item = (i: number) => Buffer.from(`message ${i} `.padEnd(120, String.fromCharCode(97 + (i % 26))));

describe("valueDelta: channel values as deltas of an earlier version", () => {
  it("a JSON list that gains an item is its base as a prefix and the new item", () => {
    const base = Buffer.from(JSON.stringify(Array.from({ length: 20 }, (_, i) => item(i).toString())));
    const value = Buffer.from(JSON.stringify(Array.from({ length: 21 }, (_, i) => item(i).toString())));
    const delta = makeDelta(base, value, "json")!;
    assert.ok(delta.length < 150, `${delta.length}`);
    assert.deepEqual(applyDelta(base, delta), { type: "json", data: value });
  });

  it("a msgpack list that gains an item (its length header changes) keeps its items as one run", () => {
    const items = Array.from({ length: 40 }, (_, i) => item(i));
    const base = msgpackList(items.slice(0, 39));
    const value = msgpackList(items);
    const delta = makeDelta(base, value, "msgpack")!;
    assert.ok(delta.length < 160, `${delta.length}`);
    assert.deepEqual(applyDelta(base, delta), { type: "msgpack", data: value });
  });

  it("stores whole what a delta would not halve, and small values", () => {
    const a = Buffer.alloc(4096, 1);
    const b = Buffer.alloc(4096, 2);
    assert.equal(makeDelta(a, b, "bytes"), undefined);
    assert.equal(makeDelta(a.subarray(0, 100), a.subarray(0, MIN_DELTA_VALUE_BYTES - 1), "bytes"), undefined);
  });

  it("any base and value: a delta, when made, rebuilds the value exactly", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 2000 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.nat(2000),
        fc.nat(2000),
        (body, head, tail, cut, len) => {
          const base = Buffer.from(body);
          const kept = base.subarray(Math.min(cut, base.length), Math.min(cut, base.length) + len);
          const value = Buffer.concat([Buffer.from(head), kept, Buffer.from(tail)]);
          const delta = makeDelta(base, value, "t");
          if (delta === undefined) return;
          assert.ok(delta.length * 2 <= value.length);
          assert.deepEqual(applyDelta(base, delta), { type: "t", data: value });
        },
      ),
      { numRuns: 500 },
    );
  });

  it("refuses a delta that does not fit its base", () => {
    const base = Buffer.from(JSON.stringify(Array.from({ length: 20 }, (_, i) => item(i).toString())));
    const value = Buffer.concat([base, Buffer.from("more")]);
    const delta = makeDelta(base, value, "json")!;
    assert.throws(() => applyDelta(base.subarray(0, 10), delta), /does not fit its base/);
    assert.throws(() => applyDelta(base, Buffer.from([9, 0])), /unknown format/);
  });
});
