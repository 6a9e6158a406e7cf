/**
 * The one table that maps domain errors to gRPC status codes. Handlers never
 * build a status by hand: they throw, and the call wrapper passes whatever was
 * thrown through here. A refusal also carries `agentstate-reason` (a stable
 * name clients branch on), bad input `agentstate-field`. Unknown errors are
 * logged with their stack and answered as a generic INTERNAL, so no internal
 * detail leaks to callers.
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import * as errors from "../errors/errors";
import type { Logger } from "../log/Logger";

/** How one error class is answered. */
export interface GrpcMapping {
  code: status;
  /** The `agentstate-reason` metadata value, for refusals. */
  reason?: string;
}

type ErrorClass = abstract new (...args: never[]) => errors.AppError;

const answered = (code: status, ...classes: ErrorClass[]): [ErrorClass, GrpcMapping][] =>
  classes.map((cls) => [cls, { code }]);
const refused = (...rows: [ErrorClass, string][]): [ErrorClass, GrpcMapping][] =>
  rows.map(([cls, reason]) => [cls, { code: status.FAILED_PRECONDITION, reason }]);

/** Every domain error class and its answer. A subclass not listed is answered as its nearest listed ancestor. */
export const GRPC_MAPPINGS: ReadonlyMap<ErrorClass, GrpcMapping> = new Map([
  ...answered(status.INVALID_ARGUMENT, errors.InvalidArgumentError),
  ...answered(status.UNAUTHENTICATED, errors.UnauthenticatedError),
  ...answered(status.PERMISSION_DENIED, errors.PermissionDeniedError),
  ...answered(status.NOT_FOUND, errors.NotFoundError, errors.StreamNotFoundError),
  ...refused(
    [errors.FenceUnknownError, "FENCE_UNKNOWN"],
    [errors.FenceStaleError, "FENCE_STALE"],
    [errors.LockNotHeldError, "LOCK_NOT_HELD"],
    [errors.LockBackendMixError, "LOCK_BACKEND_MIX"],
    [errors.IdempotencyKeyReusedError, "IDEMPOTENCY_KEY_REUSED"],
    [errors.EventIdReusedError, "EVENT_ID_REUSED"],
    [errors.PartialBatchReplayError, "PARTIAL_BATCH_REPLAY"],
    [errors.CheckpointDeltaBaseError, "CHECKPOINT_DELTA_BASE"],
  ),
  ...answered(
    status.UNAVAILABLE,
    errors.StoreUnavailableError,
    errors.WriteContendedError,
    errors.CommitWindowPassedError,
    errors.LockQuorumUnavailableError,
    errors.ServerShuttingDownError,
  ),
  [errors.CheckpointConflictError, { code: status.ABORTED, reason: "CHECKPOINT_CONFLICT" }],
  ...answered(status.DEADLINE_EXCEEDED, errors.DeadlinePassedError, errors.StatementTimedOutError),
  ...answered(status.CANCELLED, errors.CallerCancelledError),
  ...answered(status.RESOURCE_EXHAUSTED, errors.LimitExceededError, errors.SubscriberTooSlowError),
]);

/** The mapping of `err`'s class, or of its nearest mapped ancestor. */
function mappingOf(err: errors.AppError): GrpcMapping | undefined {
  for (let proto = Object.getPrototypeOf(err) as object | null; proto !== null; proto = Object.getPrototypeOf(proto)) {
    const m = GRPC_MAPPINGS.get((proto as { constructor: ErrorClass }).constructor);
    if (m !== undefined) return m;
  }
  return undefined;
}

export function toGrpcError(err: unknown, log: Logger): Partial<ServiceError> & { code: status } {
  const mapping = err instanceof errors.AppError ? mappingOf(err) : undefined;
  if (mapping !== undefined) {
    const e = err as errors.AppError;
    const metadata = new Metadata();
    if (e instanceof errors.InvalidArgumentError) metadata.set("agentstate-field", e.field);
    if (mapping.reason !== undefined) metadata.set("agentstate-reason", mapping.reason);
    if (e instanceof errors.CheckpointConflictError) metadata.set("agentstate-checkpoint-head", e.head);
    return { code: mapping.code, details: e.message, metadata };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  log.error("internal error", { error: e.message, stack: e.stack });
  return { code: status.INTERNAL, details: "internal error" };
}
