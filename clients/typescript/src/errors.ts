/**
 * Errors the helpers raise themselves. RPC failures are grpc-js ServiceErrors
 * as received (`code`, `details`, trailer `metadata`).
 */
import { status, type ServiceError } from "@grpc/grpc-js";

/**
 * True for failures after which the outcome of a call is unknown but a retry
 * may succeed: UNAVAILABLE or DEADLINE_EXCEEDED. Retry a write blindly only
 * when it carries an idempotency key (put() does).
 */
export function isRetryable(err: unknown): boolean {
  const code = (err as Partial<ServiceError> | null)?.code;
  return code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED;
}

/** update() ran out of attempts because other writers kept changing the key first. Nothing was written. */
export class UpdateConflictError extends Error {
  override readonly name = "UpdateConflictError";
  constructor(
    readonly namespace: string,
    readonly key: string,
    readonly attempts: number,
  ) {
    super(`update of ${namespace}/${key} gave up after ${attempts} conflicting attempts`);
  }
}

/** withLock(): the lock stayed held by someone else for the whole wait. */
export class LockNotAcquiredError extends Error {
  override readonly name = "LockNotAcquiredError";
  constructor(
    readonly namespace: string,
    readonly lockName: string,
    /** The holder's owner string, when the server knows it. */
    readonly holderOwner: string,
  ) {
    super(
      `lock ${namespace}/${lockName} not acquired${holderOwner ? ` (held by ${JSON.stringify(holderOwner)})` : ""}`,
    );
  }
}

/**
 * withLock(): the lock could not be renewed. It expired, was released or taken
 * over, or the server was unreachable until it would have expired. Writes
 * fenced with its token are refused once a newer holder exists.
 */
export class LockLostError extends Error {
  override readonly name = "LockLostError";
  constructor(
    readonly namespace: string,
    readonly lockName: string,
    readonly token: number,
    options?: { cause?: unknown },
  ) {
    super(`lock ${namespace}/${lockName} (token ${token}) lost`, options);
  }
}
