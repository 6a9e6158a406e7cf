/**
 * The one table that maps domain errors to gRPC status codes. Handlers never
 * build a status by hand: they throw, and the call wrapper passes whatever was
 * thrown through here. Unknown errors are logged with their stack and answered
 * as a generic INTERNAL, so no internal detail leaks to callers.
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { AppError, type ErrorKind, FailedPreconditionError, InvalidArgumentError } from "../errors/errors";
import type { Logger } from "../log/Logger";

const CODES: Record<ErrorKind, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  failed_precondition: status.FAILED_PRECONDITION,
  not_found: status.NOT_FOUND,
  unavailable: status.UNAVAILABLE,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  cancelled: status.CANCELLED,
  unimplemented: status.UNIMPLEMENTED,
};

export function toGrpcError(err: unknown, log: Logger): Partial<ServiceError> & { code: status } {
  if (err instanceof AppError) {
    const metadata = new Metadata();
    if (err instanceof InvalidArgumentError) metadata.set("agentstate-field", err.field);
    if (err instanceof FailedPreconditionError) metadata.set("agentstate-reason", err.reason);
    return { code: CODES[err.kind], details: err.message, metadata };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  log.error("internal error", { error: e.message, stack: e.stack });
  return { code: status.INTERNAL, details: "internal error" };
}
