import * as assert from "node:assert/strict";
import { prefixUpperBound } from "../../src/store/postgres/PostgresKvStore";

const hex = (b: Buffer | null) => (b === null ? null : b.toString("hex"));

describe("store/postgres prefixUpperBound", () => {
  it("increments the last byte", () => {
    assert.equal(hex(prefixUpperBound(Buffer.from("abc"))), hex(Buffer.from("abd")));
    assert.equal(hex(prefixUpperBound(Buffer.from([0x00]))), "01");
    assert.equal(hex(prefixUpperBound(Buffer.from([0x10, 0xfe]))), "10ff");
  });

  it("drops trailing 0xff bytes and increments the byte before them", () => {
    assert.equal(hex(prefixUpperBound(Buffer.from([0x61, 0xff]))), "62");
    assert.equal(hex(prefixUpperBound(Buffer.from([0x61, 0xff, 0xff]))), "62");
  });

  it("has no bound for the empty prefix or all-0xff bytes", () => {
    assert.equal(prefixUpperBound(Buffer.alloc(0)), null);
    assert.equal(prefixUpperBound(Buffer.from([0xff, 0xff])), null);
  });

  it("does not modify its argument", () => {
    const p = Buffer.from("az");
    prefixUpperBound(p);
    assert.equal(p.toString(), "az");
  });

  it("is greater than every key with the prefix and not greater than the next keys without it", () => {
    const prefixes = ["p/", "日本", "\u{10FFFF}", "a\u00ff"].map((s) => Buffer.from(s, "utf8"));
    for (const p of prefixes) {
      const ub = prefixUpperBound(p);
      assert.ok(ub, "a UTF-8 prefix always has a bound");
      for (const suffix of ["", "a", "\u{10FFFF}\u{10FFFF}", "\u00ff"]) {
        const key = Buffer.concat([p, Buffer.from(suffix, "utf8")]);
        assert.ok(Buffer.compare(key, ub) < 0, `${key.toString("hex")} < ${ub.toString("hex")}`);
      }
      // The bound itself does not start with the prefix: nothing at or above it does.
      assert.ok(!ub.subarray(0, p.length).equals(p));
      assert.ok(Buffer.compare(p, ub) < 0);
    }
  });
});
