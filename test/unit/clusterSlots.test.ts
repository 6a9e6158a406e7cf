import * as assert from "node:assert/strict";
import { keySlot, slotTag, SLOTS } from "../../src/store/redis/clusterSlots";

describe("store/redis/clusterSlots", () => {
  it("computes the slots Redis Cluster documents (CLUSTER KEYSLOT)", () => {
    assert.equal(keySlot("foo"), 12182);
    assert.equal(keySlot("bar"), 5061);
    assert.equal(keySlot("123456789"), 0x31c3 % SLOTS);
    // A hash tag: only the text between the first { and the next } counts; an empty one does not (the whole key is hashed).
    assert.equal(keySlot("{user1000}.following"), keySlot("user1000"));
    assert.notEqual(keySlot("foo{}{bar}"), keySlot("bar"));
  });

  it("names a tag for every slot, landing in that slot", () => {
    for (const slot of [0, 1, 5061, 12182, SLOTS - 1]) assert.equal(keySlot(`x:{${slotTag(slot)}}:alive`), slot);
    const all = new Set<string>();
    for (let s = 0; s < SLOTS; s++) all.add(slotTag(s));
    assert.equal(all.size, SLOTS);
  });
});
