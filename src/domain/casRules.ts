/**
 * Compare-and-set rules: whether an expected condition holds for a key's
 * current state, and what version a write produces, as pure functions. The
 * stores do not call them to decide a write: the decision is made inside the
 * write's own statement (agentstate_kv_write), where it cannot race. These are
 * the rules written down once, in TypeScript: the specification that SQL is
 * tested against (a property test drives random write sequences through the
 * real function and compares its outcomes with these). `isExpired` is also
 * used on the read path.
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
