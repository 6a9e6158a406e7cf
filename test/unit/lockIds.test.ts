import * as assert from "node:assert/strict";
import { formatLockId, newLockSecret, parseLockId } from "../../src/domain/locks";

describe("lock secrets and ids", () => {
  it("secrets are 32 hex digits, never repeated across refills of the random pool, and round-trip through a lock id", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1_000; i++) {
      const s = newLockSecret();
      assert.match(s, /^[0-9a-f]{32}$/);
      assert.ok(!seen.has(s), "a secret handed out twice");
      seen.add(s);
      assert.deepEqual(parseLockId(formatLockId(s, i + 1)), { secret: s, token: i + 1 });
    }
  });
});
