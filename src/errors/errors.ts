/**
 * Typed errors. The domain and the stores throw these; the gRPC edge maps them
 * to status codes in exactly one place (src/grpc/toGrpcError.ts). Anything else
 * that is thrown is a bug: logged with its stack, answered as a generic INTERNAL.
 */

export type ErrorKind =
  | "invalid_argument"
  | "failed_precondition"
  | "not_found"
  | "unavailable"
  | "deadline_exceeded"
  | "resource_exhausted"
  | "cancelled"
  | "unimplemented";

export abstract class AppError extends Error {
  abstract readonly kind: ErrorKind;
}

/** Bad input. `field` names the offending request field, the message states the limit. */
export class InvalidArgumentError extends AppError {
  readonly kind = "invalid_argument";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** The request is well formed but the state forbids it (stale fence, idempotency key reuse). */
export class FailedPreconditionError extends AppError {
  readonly kind = "failed_precondition";
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

export class NotFoundError extends AppError {
  readonly kind = "not_found";
}

/** A dependency (Postgres, a Redis quorum) cannot serve the request right now; retrying may work. */
export class UnavailableError extends AppError {
  readonly kind = "unavailable";
}

export class DeadlineExceededError extends AppError {
  readonly kind = "deadline_exceeded";
}

export class ResourceExhaustedError extends AppError {
  readonly kind = "resource_exhausted";
}

/** The caller went away. */
export class CancelledError extends AppError {
  readonly kind = "cancelled";
}

export class UnimplementedError extends AppError {
  readonly kind = "unimplemented";
}
