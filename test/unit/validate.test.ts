import * as assert from "node:assert/strict";
import {
  validateBytes,
  validateDurationMs,
  validateEnum,
  validateKey,
  validateNamespace,
  validateShortString,
} from "../../src/domain/validate";
import type { Limits } from "../../src/domain/limits";
import { expectInvalidArgument as rejects } from "../support/expectInvalidArgument";

const limits = { maxKeyBytes: 16 } as Limits;

describe("domain/validate", () => {
  describe("validateNamespace", () => {
    it("accepts [a-z0-9][a-z0-9._-]{0,62}", () => {
      for (const ns of ["a", "0", "tenant-1", "a.b_c-d", "x".repeat(63)])
        assert.equal(validateNamespace("namespace", ns), ns);
    });
    it("requires a value", () => rejects(() => validateNamespace("namespace", ""), "namespace", /is required/));
    it("refuses anything outside the pattern, naming the pattern", () => {
      for (const ns of ["A", "-a", ".a", "_a", "a b", "a/b", "é", "x".repeat(64), "a\u0000"]) {
        rejects(() => validateNamespace("ns_field", ns), "ns_field", /\[a-z0-9\]\[a-z0-9._-\]\{0,62\}/);
      }
    });
  });

  describe("validateKey", () => {
    it("accepts 1..maxKeyBytes bytes of UTF-8", () => {
      assert.equal(validateKey("key", "k", limits), "k");
      assert.equal(validateKey("key", "x".repeat(16), limits), "x".repeat(16));
      assert.equal(validateKey("key", "日本語だ!", limits), "日本語だ!"); // 13 bytes
    });
    it("refuses an empty key", () => rejects(() => validateKey("key", "", limits), "key", /must not be empty/));
    it("counts bytes, not characters, and states the limit", () => {
      rejects(() => validateKey("key", "x".repeat(17), limits), "key", /is 17 bytes, the limit is 16 bytes/);
      rejects(() => validateKey("key", "日".repeat(6), limits), "key", /is 18 bytes, the limit is 16 bytes/);
    });
    it("refuses NUL", () => rejects(() => validateKey("stream", "a\u0000b", limits), "stream", /must not contain NUL/));
    it("accepts U+FFFD: it is valid text (invalid UTF-8 bytes are refused while decoding)", () =>
      assert.equal(validateKey("key", "a\uFFFD", limits), "a\uFFFD"));
  });

  describe("validateShortString", () => {
    it("accepts up to max bytes, including empty", () => {
      assert.equal(validateShortString("content_type", "", 4), "");
      assert.equal(validateShortString("content_type", "abcd", 4), "abcd");
    });
    it("refuses more than max bytes, stating the limit", () => {
      rejects(
        () => validateShortString("idempotency_key", "abcde", 4),
        "idempotency_key",
        /is 5 bytes, the limit is 4 bytes/,
      );
      rejects(() => validateShortString("owner", "éé√", 4), "owner", /is 7 bytes/);
    });
    it("refuses NUL", () => rejects(() => validateShortString("owner", "a\u0000", 4), "owner", /NUL/));
  });

  describe("validateBytes", () => {
    it("accepts up to max bytes and returns a Buffer over the same memory", () => {
      const backing = new Uint8Array([9, 1, 2, 3, 9]);
      const view = backing.subarray(1, 4);
      const b = validateBytes("value", view, 3);
      assert.ok(Buffer.isBuffer(b));
      assert.deepEqual([...b], [1, 2, 3]);
      backing[2] = 7;
      assert.equal(b[1], 7, "no copy");
      assert.equal(validateBytes("value", new Uint8Array(), 0).length, 0);
    });
    it("refuses more than max bytes, stating the limit", () =>
      rejects(
        () => validateBytes("value", new Uint8Array(1025), 1024),
        "value",
        /is 1025 bytes, the limit is 1024 bytes/,
      ));
  });

  describe("validateDurationMs", () => {
    const opts = { maxSeconds: 100, allowZero: false };
    it("converts to whole milliseconds (sub-millisecond nanos are dropped)", () => {
      assert.equal(validateDurationMs("ttl", { seconds: 1, nanos: 500_000_000 }, opts), 1500);
      assert.equal(validateDurationMs("ttl", { seconds: 0, nanos: 1_999_999 }, opts), 1);
      assert.equal(validateDurationMs("ttl", { seconds: 100, nanos: 999_999_999 }, opts), 100_999);
    });
    it("refuses negative seconds or nanos", () => {
      rejects(() => validateDurationMs("ttl", { seconds: -1, nanos: 0 }, opts), "ttl", /must not be negative/);
      rejects(() => validateDurationMs("ttl", { seconds: 1, nanos: -1 }, opts), "ttl", /must not be negative/);
    });
    it("refuses nanos over 999999999", () =>
      rejects(
        () => validateDurationMs("ttl", { seconds: 0, nanos: 1_000_000_000 }, opts),
        "ttl",
        /nanos must be at most 999999999/,
      ));
    it("refuses more than maxSeconds, stating the limit", () =>
      rejects(() => validateDurationMs("wait", { seconds: 101, nanos: 0 }, opts), "wait", /at most 100 seconds/));
    it("refuses non-integers", () => {
      rejects(() => validateDurationMs("ttl", { seconds: 1.5, nanos: 0 }, opts), "ttl", /not a valid duration/);
      rejects(() => validateDurationMs("ttl", { seconds: 1, nanos: 0.5 }, opts), "ttl", /not a valid duration/);
      rejects(() => validateDurationMs("ttl", { seconds: 2 ** 60, nanos: 0 }, opts), "ttl", /not a valid duration/);
    });
    it("refuses zero (or under 1 ms) unless allowed", () => {
      rejects(() => validateDurationMs("ttl", { seconds: 0, nanos: 0 }, opts), "ttl", /at least 1 millisecond/);
      rejects(() => validateDurationMs("ttl", { seconds: 0, nanos: 999_999 }, opts), "ttl", /at least 1 millisecond/);
      assert.equal(validateDurationMs("wait", { seconds: 0, nanos: 0 }, { maxSeconds: 1, allowZero: true }), 0);
    });
  });

  describe("validateEnum", () => {
    it("accepts listed values", () => assert.equal(validateEnum("consistency", 2, [0, 1, 2]), 2));
    it("refuses others, listing the allowed values", () =>
      rejects(() => validateEnum("consistency", 7, [0, 1, 2]), "consistency", /unknown value 7; allowed: 0, 1, 2/));
  });
});
