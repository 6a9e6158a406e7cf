/**
 * Errors shaped exactly as grpc-js shapes a failed call's (its
 * callErrorFromStatus): an Error whose message is "<code> <NAME>: <details>"
 * with `code`, `details` and `metadata` (a grpc-js Metadata). Calls carried on
 * a Session stream fail with these, so a caller cannot tell them from the
 * unary call's errors (the saver's error mapping reads `code` and the
 * agentstate-* metadata).
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import type { SessionStatus } from "./gen/agentstate/v1/checkpoint";

/** A grpc-js-shaped ServiceError for `code` and `details`. */
export function serviceError(code: status, details: string, metadata: Metadata = new Metadata()): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata });
}

/**
 * The ServiceError of a call answered with a SessionStatus: its metadata map
 * becomes the trailing metadata the unary call would carry. A key grpc-js
 * would refuse (not a legal header name, or a -bin key) is left out.
 */
export function sessionStatusError(s: SessionStatus): ServiceError {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(s.metadata)) {
    try {
      metadata.set(key, value);
    } catch {
      // Not a header grpc-js would have delivered either.
    }
  }
  return serviceError(s.code, s.message, metadata);
}
