import * as assert from "node:assert/strict";
import { expectationHolds, isExpired, nextVersion } from "../../src/domain/casRules";
import type { Expected, Item } from "../../src/domain/types";

function item(version: number, expireTime?: Date): Item {
  const t = new Date("2030-01-01T00:00:00Z");
  return {
    key: "k",
    value: Buffer.from("v"),
    contentType: "",
    version,
    createRevision: 1,
    modRevision: version,
    createTime: t,
    updateTime: t,
    expireTime,
  };
}

describe("domain/casRules", () => {
  describe("expectationHolds", () => {
    const v3 = item(3);
    const table: [string, Expected, Item | undefined, boolean][] = [
      ["any on a live key", { kind: "any" }, v3, true],
      ["any on an absent key", { kind: "any" }, undefined, true],
      ["absent on an absent key", { kind: "absent" }, undefined, true],
      ["absent on a live key", { kind: "absent" }, v3, false],
      ["version on the same version", { kind: "version", version: 3 }, v3, true],
      ["version on an older version", { kind: "version", version: 2 }, v3, false],
      ["version on a newer version", { kind: "version", version: 4 }, v3, false],
      ["version on an absent key", { kind: "version", version: 1 }, undefined, false],
    ];
    for (const [name, expected, current, holds] of table) {
      it(`${name}: ${holds}`, () => assert.equal(expectationHolds(expected, current), holds));
    }
  });

  describe("isExpired", () => {
    const now = new Date("2030-01-01T00:00:10Z");
    it("an item without expiry never expires", () => assert.equal(isExpired({ expireTime: undefined }, now), false));
    it("an expiry in the future has not passed", () =>
      assert.equal(isExpired({ expireTime: new Date(now.getTime() + 1) }, now), false));
    it("an expiry exactly now has passed (reads as absent)", () =>
      assert.equal(isExpired({ expireTime: new Date(now.getTime()) }, now), true));
    it("an expiry in the past has passed", () =>
      assert.equal(isExpired({ expireTime: new Date(now.getTime() - 1) }, now), true));
  });

  describe("nextVersion", () => {
    it("a new incarnation starts at 1", () => assert.equal(nextVersion(undefined), 1));
    it("a change adds 1", () => {
      assert.equal(nextVersion(item(1)), 2);
      assert.equal(nextVersion(item(41)), 42);
    });
  });
});
