/**
 * The fence check shared by every fenced write: inside the write's own
 * transaction, the presented token must be the latest issued for the lock
 * name. The row is read FOR SHARE, so issuing a newer token waits for this
 * write to commit: a write lands before the new token exists, or not at all.
 */
import type { PoolClient } from "pg";
import type { Fence } from "../../domain/types";
import { FailedPreconditionError } from "../../errors/errors";
import { sql } from "./sql";

export async function checkFence(client: PoolClient, namespace: string, fence: Fence): Promise<void> {
  const f = await client.query<{ last_token: number }>(sql("fence_check"), [namespace, fence.lockName]);
  const last = f.rows[0]?.last_token;
  if (last === undefined || fence.token !== last) throw fenceError(fence, last);
}

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
