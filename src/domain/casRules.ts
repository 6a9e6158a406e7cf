/**
 * Compare-and-set rules: whether an expected condition holds for a key's
 * current state, when an item reads as expired, and what version a put
 * produces. This is the specification, not the production path: the durable
 * store decides in SQL (agentstate_kv_write, in
 * src/store/postgres/functions/), inside the write's transaction, and
 * test/integration/kv.casRules.property.test.ts checks that function's
 * outcomes against these rules over random write sequences. Reads use
 * isExpired directly.
 */
import type { Expected, Item } from "./types";

/** True when `expected` holds for `current` (undefined: the key is absent or expired). */
export function expectationHolds(expected: Expected, current: Item | undefined): boolean {
  switch (expected.kind) {
    case "any":
      return true;
    case "absent":
      return current === undefined;
    case "version":
      return current !== undefined && current.version === expected.version;
  }
}

/** True when the item has an expiry at or before `now`: it reads as absent. */
export function isExpired(item: { expireTime: Date | undefined }, now: Date): boolean {
  return item.expireTime !== undefined && item.expireTime.getTime() <= now.getTime();
}

/** The version a put produces: a new incarnation starts at 1. */
export function nextVersion(current: Item | undefined): number {
  return current === undefined ? 1 : current.version + 1;
}
