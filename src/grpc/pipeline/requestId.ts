/**
 * A call's request id: the caller's `x-request-id`, or a made-up one when the
 * caller sent none, echoed in the response metadata and recorded with every
 * change the call makes (the audit trail). A caller's id must be one value of
 * 1 to MAX_REQUEST_ID_CHARS visible ASCII characters (0x21-0x7E: no space, no
 * control or non-ASCII character, so it reads the same in a log line, a
 * table and a terminal); anything else is refused with INVALID_ARGUMENT
 * naming x-request-id and the limit, rather than silently replaced, so a
 * caller never correlates by an id the server did not keep.
 *
 * The echo is sent as a never-indexed HPACK header (`http2.sensitiveHeaders`).
 * A request id is new on every call, so indexing it would only churn both
 * ends' HPACK dynamic tables: each reply would insert a value that is never
 * used again and push out the entries that let the fixed headers
 * (content-type, grpc-encoding, ...) go as one-byte references. Measured on a
 * Get cache hit (BENCHMARKS.md): about 14 % less server CPU per call.
 */
import { randomBytes } from "node:crypto";
import { sensitiveHeaders, type OutgoingHttpHeaders } from "node:http2";
import { Metadata } from "@grpc/grpc-js";
import { InvalidArgumentError } from "../../errors/errors";

// Made-up request ids need to be unique, not unguessable: a random
// per-process prefix and a counter, without a CSPRNG call per request.
const ID_PREFIX = randomBytes(6).toString("hex");
let idCounter = 0;

/** Longest x-request-id a caller may send (characters; each is one byte). */
export const MAX_REQUEST_ID_CHARS = 128;
const SANE_ID = new RegExp(`^[\\x21-\\x7e]{1,${MAX_REQUEST_ID_CHARS}}$`);

/** A caller's x-request-id refused: the call gets `error`, its log lines and echo carry `made`. */
export interface RefusedRequestId {
  made: string;
  error: InvalidArgumentError;
}

function madeUp(): string {
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${ID_PREFIX}-${idCounter.toString(36)}`;
}

/** The call's request id, or (a caller's id that is not sane) the refusal. */
export function requestIdOf(md: Metadata): string | RefusedRequestId {
  const values = md.get("x-request-id");
  if (values.length === 0) return madeUp();
  const v = values[0];
  if (values.length === 1 && typeof v === "string" && SANE_ID.test(v)) return v;
  return {
    made: madeUp(),
    error: new InvalidArgumentError(
      "x-request-id",
      values.length > 1
        ? "send one value"
        : `must be 1 to ${MAX_REQUEST_ID_CHARS} visible ASCII characters (0x21-0x7E)`,
    ),
  };
}

const NEVER_INDEXED = Object.freeze(["x-request-id"]);

class RequestIdMetadata extends Metadata {
  override toHttp2Headers(): OutgoingHttpHeaders {
    const headers = super.toHttp2Headers();
    // grpc-js copies the object's own properties (symbols too) into the
    // headers it passes to http2's respond(), which reads this one.
    (headers as Record<symbol, unknown>)[sensitiveHeaders] = NEVER_INDEXED;
    return headers;
  }
}

export function requestIdMetadata(requestId: string): Metadata {
  const md = new RequestIdMetadata();
  md.set("x-request-id", requestId);
  return md;
}
