/**
 * A call's request id: the caller's `x-request-id` when it is sane, a made-up
 * one otherwise, echoed in the response metadata.
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

// Made-up request ids need to be unique, not unguessable: a random
// per-process prefix and a counter, without a CSPRNG call per request.
const ID_PREFIX = randomBytes(6).toString("hex");
let idCounter = 0;

export function requestIdOf(md: Metadata): string {
  const v = md.get("x-request-id")[0];
  if (typeof v === "string" && /^[A-Za-z0-9._:-]{1,128}$/.test(v)) return v;
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${ID_PREFIX}-${idCounter.toString(36)}`;
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
