import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { CheckpointDeltas, type WholeChannelValue } from "../../clients/typescript/src/checkpointDeltas";
import { applyDelta } from "../../src/store/postgres/valueDelta";

const thread = (threadId: string) => ({ namespace: "ns", threadId, checkpointNs: "" });
/** A JSON list of n items of 100 hex characters (seeded per list by `items`). */
const list = (items: string[], n: number) => Buffer.from(JSON.stringify(items.slice(0, n)));
const items = Array.from({ length: 80 }, () => randomBytes(50).toString("hex"));
const value = (n: number, channel = "messages"): WholeChannelValue => ({
  channel,
  version: `v${String(n).padStart(4, "0")}`,
  value: { type: "json", data: list(items, n) },
});

/** Puts versions from..to of a channel through `d` (each committed); the deltas sent. */
function puts(d: CheckpointDeltas, threadId: string, from: number, to: number, channel = "messages") {
  let sent = 0;
  for (let n = from; n <= to; n++) {
    const plan = d.encode(thread(threadId), [value(n, channel)]);
    sent += plan.deltas;
    d.commit(plan);
  }
  return sent;
}

describe("CheckpointDeltas (the TypeScript client's channel deltas)", () => {
  it("a delta names its base's version and CRC-32, and the server's applyDelta rebuilds the value from it", () => {
    const d = new CheckpointDeltas();
    d.commit(d.encode(thread("t"), [value(10)]));
    const plan = d.encode(thread("t"), [value(11)]);
    assert.equal(plan.deltas, 1);
    const delta = plan.values[0]!.delta!;
    assert.equal(delta.baseVersion, "v0010");
    assert.equal(delta.baseCrc32, crc32(list(items, 10)));
    assert.equal(delta.crc32, crc32(list(items, 11)));
    assert.equal(delta.size, list(items, 11).length);
    const rebuilt = applyDelta(list(items, 10), Buffer.from(delta.data!));
    assert.equal(rebuilt.type, "json");
    assert.ok(rebuilt.data.equals(list(items, 11)));
    assert.ok(plan.sentBytes * 5 < plan.valueBytes);
  });

  it("sends whole after maxDepth deltas, values under 256 bytes, and with deltas off", () => {
    const d = new CheckpointDeltas({ maxDepth: 4 });
    // 10 whole, 11..14 deltas (depth 1..4), 15 whole, 16..19 deltas, 20 whole.
    assert.equal(puts(d, "t", 10, 20), 8);
    assert.equal(d.stats.whole, 3);
    const small = new CheckpointDeltas();
    assert.equal(puts(small, "s", 1, 1) + puts(small, "s", 1, 1), 0, "a 100-byte list");
    assert.equal(new CheckpointDeltas({ maxBytes: 0 }).enabled, false);
    const off = new CheckpointDeltas();
    off.commit(off.encode(thread("t"), [value(10)]));
    assert.equal(off.encode(thread("t"), [value(11)], false).deltas, 0);
  });

  it("keeps at most maxBytes of last values, least recently used dropped first; a value over 1/64 of it is not kept", () => {
    const one = list(items, 20).length + 128;
    const d = new CheckpointDeltas({ maxBytes: 64 * one + 64 * 128 });
    // 64 threads' lists fit in the bound ...
    for (let t = 0; t < 64; t++) puts(d, `t${t}`, 20, 20);
    // ... t0 used again (most recent), then 40 more threads push the oldest out.
    assert.equal(puts(d, "t0", 21, 21), 1);
    for (let t = 64; t < 104; t++) puts(d, `t${t}`, 20, 20);
    assert.equal(puts(d, "t0", 22, 22), 1, "the most recently used is kept");
    assert.equal(puts(d, "t1", 21, 21), 0, "the least recently used was dropped");
    const bytes = (d as unknown as { bytes: number }).bytes;
    assert.ok(bytes <= 64 * one + 64 * 128, `${bytes}`);
    // A value over 1/64 of the bound is sent whole and not kept.
    const tiny = new CheckpointDeltas({ maxBytes: 64 * 300 });
    assert.equal(puts(tiny, "t", 20, 22), 0);
    assert.equal((tiny as unknown as { bytes: number }).bytes, 0);
  });

  it("forget and forgetThread drop what a refused base or a deleted thread left", () => {
    const d = new CheckpointDeltas();
    puts(d, "a", 10, 10);
    puts(d, "a", 10, 10, "other");
    puts(d, "b", 10, 10);
    d.forgetThread("ns", "a");
    assert.equal(puts(d, "a", 11, 11) + puts(d, "a", 11, 11, "other"), 0);
    assert.equal(puts(d, "b", 11, 11), 1);
    const plan = d.encode(thread("b"), [value(12)]);
    d.forget(plan);
    assert.equal(puts(d, "b", 13, 13), 0);
  });
});
