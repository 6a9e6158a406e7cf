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

/** Every domain error class and its answer. A subclass not listed is answered as its nearest listed ancestor. */
export const GRPC_MAPPINGS: ReadonlyMap<ErrorClass, GrpcMapping> = new Map<ErrorClass, GrpcMapping>([
  [errors.InvalidArgumentError, { code: status.INVALID_ARGUMENT }],
  [errors.NotFoundError, { code: status.NOT_FOUND }],
  [errors.StreamNotFoundError, { code: status.NOT_FOUND }],
  [errors.FenceUnknownError, { code: status.FAILED_PRECONDITION, reason: "FENCE_UNKNOWN" }],
  [errors.FenceStaleError, { code: status.FAILED_PRECONDITION, reason: "FENCE_STALE" }],
  [errors.LockNotHeldError, { code: status.FAILED_PRECONDITION, reason: "LOCK_NOT_HELD" }],
  [errors.IdempotencyKeyReusedError, { code: status.FAILED_PRECONDITION, reason: "IDEMPOTENCY_KEY_REUSED" }],
  [errors.EventIdReusedError, { code: status.FAILED_PRECONDITION, reason: "EVENT_ID_REUSED" }],
  [errors.PartialBatchReplayError, { code: status.FAILED_PRECONDITION, reason: "PARTIAL_BATCH_REPLAY" }],
  [errors.StoreUnavailableError, { code: status.UNAVAILABLE }],
  [errors.WriteContendedError, { code: status.UNAVAILABLE }],
  [errors.CommitWindowPassedError, { code: status.UNAVAILABLE }],
  [errors.LockQuorumUnavailableError, { code: status.UNAVAILABLE }],
  [errors.ServerShuttingDownError, { code: status.UNAVAILABLE }],
  [errors.DeadlinePassedError, { code: status.DEADLINE_EXCEEDED }],
  [errors.StatementTimedOutError, { code: status.DEADLINE_EXCEEDED }],
  [errors.CallerCancelledError, { code: status.CANCELLED }],
  [errors.LimitExceededError, { code: status.RESOURCE_EXHAUSTED }],
  [errors.SubscriberTooSlowError, { code: status.RESOURCE_EXHAUSTED }],
  [errors.UnavailableError, { code: status.UNAVAILABLE }],
  [errors.ResourceExhaustedError, { code: status.RESOURCE_EXHAUSTED }],
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
    return { code: mapping.code, details: e.message, metadata };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  log.error("internal error", { error: e.message, stack: e.stack });
  return { code: status.INTERNAL, details: "internal error" };
}
