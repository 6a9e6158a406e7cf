/**
 * Why a call's work was stopped, carried as an AbortSignal's reason, and the
 * one mapping from that reason to the typed error the caller gets.
 */
import { type AppError, CancelledError, DeadlineExceededError, UnavailableError } from "./errors";

export type AbortKind = "cancelled" | "deadline" | "shutdown";

export class AbortReason extends Error {
  constructor(readonly kind: AbortKind) {
    super(kind === "shutdown" ? "server shutting down" : kind === "deadline" ? "deadline exceeded" : "cancelled");
  }
}

/** The error for work stopped by `signal`; `consequence` tells what did (not) happen, e.g. "nothing was written". */
export function abortError(signal: AbortSignal, consequence: string): AppError {
  const kind = signal.reason instanceof AbortReason ? signal.reason.kind : "cancelled";
  switch (kind) {
    case "shutdown":
      return new UnavailableError(`server shutting down; ${consequence}`);
    case "deadline":
      return new DeadlineExceededError(`deadline passed; ${consequence}`);
    case "cancelled":
      return new CancelledError(`caller went away; ${consequence}`);
  }
}
