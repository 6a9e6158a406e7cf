/**
 * The error for a write (KV write, append) that must not be made any more
 * because its caller has gone or its deadline has passed, or undefined while
 * it may still be made. Checked when the write is queued, when its batch is
 * taken and before every send; the deadline itself also travels into the
 * statement, which checks it again under the revision lock.
 */
import type { WriteOptions } from "../../domain/types";
import { abortReasonError } from "../../errors/abort";
import { DeadlinePassedError, type AppError } from "../../errors/errors";

/** `consequence` says what did not happen, e.g. "nothing was written". */
export function callerGoneError(opts: WriteOptions, consequence: string): AppError | undefined {
  const why = opts.gone?.();
  if (why !== undefined) return abortReasonError(why, consequence);
  if (opts.deadline !== undefined && Date.now() >= opts.deadline) {
    return new DeadlinePassedError(`deadline passed; ${consequence}`);
  }
  return undefined;
}
