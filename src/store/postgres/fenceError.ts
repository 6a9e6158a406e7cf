/**
 * The refusal of a fenced write whose token is not the latest issued for its
 * lock name. The check itself runs inside the write's own statement
 * (agentstate_kv_write, agentstate_event_append), which reads the fence row
 * FOR SHARE, so issuing a newer token waits for the write to commit: a write
 * lands before the new token exists, or not at all.
 */
import type { Fence } from "../../domain/types";
import { FailedPreconditionError } from "../../errors/errors";

/** The refusal of a fence whose token is not `last`, the latest issued for its lock name (undefined: none issued). */
export function fenceError(fence: Fence, last: number | undefined): FailedPreconditionError {
  if (last === undefined || fence.token > last) {
    return new FailedPreconditionError(
      `fence token ${fence.token} was never issued for lock "${fence.lockName}"`,
      "FENCE_UNKNOWN",
    );
  }
  return new FailedPreconditionError(
    `fence token ${fence.token} for lock "${fence.lockName}" is stale: token ${last} was issued since`,
    "FENCE_STALE",
  );
}
