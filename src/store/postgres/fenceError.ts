/**
 * The refusal of a fenced write whose token is not the latest issued for its
 * lock name. The check itself runs inside the write's own statement
 * (agentstate_kv_write, agentstate_event_append), which reads the fence row
 * FOR SHARE, so issuing a newer token waits for the write to commit: a write
 * lands before the new token exists, or not at all.
 */
import type { Fence } from "../../domain/types";
import { FenceStaleError, FenceUnknownError } from "../../errors/errors";

/** The refusal of a fence whose token is not `last`, the latest issued for its lock name (undefined: none issued). */
export function fenceError(fence: Fence, last: number | undefined): FenceUnknownError | FenceStaleError {
  if (last === undefined || fence.token > last) return new FenceUnknownError(fence);
  return new FenceStaleError(fence, last);
}
