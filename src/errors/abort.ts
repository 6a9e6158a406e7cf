/**
 * Why a call's work was stopped, carried as an AbortSignal's reason, and the
 * one mapping from that reason to the typed error the caller gets.
 */
import { type AppError, CallerCancelledError, DeadlinePassedError, ServerShuttingDownError } from "./errors";

export type AbortKind = "cancelled" | "deadline" | "shutdown";

export class AbortReason extends Error {
  constructor(readonly kind: AbortKind) {
    super(kind === "shutdown" ? "server shutting down" : kind === "deadline" ? "deadline exceeded" : "cancelled");
  }
}

/**
 * Whether the caller is still there: why its call is over (cancelled,
 * deadline passed), or undefined while it waits. For work that only needs to
 * know at a few points (a write about to be sent), it costs nothing until
 * asked, where an AbortSignal per call is measurable on a hot path.
 */
export type CallerGone = () => AbortReason | undefined;

/** The error for work stopped by `signal`; `consequence` tells what did (not) happen, e.g. "nothing was written". */
export function abortError(signal: AbortSignal, consequence: string): AppError {
  return abortReasonError(signal.reason, consequence);
}

/** The error for work stopped for `reason` (an AbortReason; anything else counts as cancelled). */
export function abortReasonError(reason: unknown, consequence: string): AppError {
  const kind = reason instanceof AbortReason ? reason.kind : "cancelled";
  switch (kind) {
    case "shutdown":
      return new ServerShuttingDownError(consequence);
    case "deadline":
      return new DeadlinePassedError(`deadline passed; ${consequence}`);
    case "cancelled":
      return new CallerCancelledError(consequence);
  }
}
