/**
 * Wraps a unary handler: assigns a request id (the caller's x-request-id when
 * it is sane, a fresh one otherwise), logs one structured line per call with
 * its status and duration, records metrics, and turns whatever the handler
 * throws into a gRPC status through toGrpcError. Handlers stay four steps:
 * validate, call the domain, (errors mapped here), stamp the revision.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { status, type Metadata, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import type { CallerGone } from "../errors/abort";
import type { Logger } from "../log/Logger";
import { UndecodableRequest } from "./codec/decodeGuard";
import { requestIdMetadata } from "./requestIdMetadata";
import { toGrpcError } from "./toGrpcError";
import { watchCall } from "./watchCall";

export interface CallContext {
  requestId: string;
  log: Logger;
  /** Aborted when the caller cancels or the deadline passes: work for this call should stop. */
  signal: AbortSignal;
  /** Why the call is over (cancelled, deadline passed), or undefined: cheaper than `signal` where a check will do. */
  gone: CallerGone;
  /**
   * Aborted when the server starts shutting down. Only long waits (lock waits,
   * subscriptions) follow it, ending with UNAVAILABLE; ordinary calls drain.
   */
  shutdown: AbortSignal;
  /** The call's deadline in ms since the epoch, if the caller set one. */
  deadline: number | undefined;
}

/** What every call wrapper needs from the server. */
export interface CallEnv {
  log: Logger;
  /** Aborted when the server starts shutting down. */
  shutdown: AbortSignal;
  /** Told about every finished call (metrics). */
  observe?: (rpc: string, code: string, seconds: number) => void;
}

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

export function unaryCall<Req, Res>(rpc: string, env: CallEnv, fn: (req: Req, ctx: CallContext) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const started = performance.now();
    const requestId = requestIdOf(call.metadata);
    const watched = watchCall(call);
    let log: Logger | undefined;
    // A per-call child logger is only needed when something logs for the call.
    const callLog = () => (log ??= env.log.child({ request_id: requestId, rpc }));
    const finish = (code: status) => {
      watched.dispose();
      const ms = performance.now() - started;
      env.log.info("rpc", { request_id: requestId, rpc, code: status[code], ms: Math.round(ms * 100) / 100 });
      env.observe?.(rpc, status[code], ms / 1000);
      // Sent with the reply, in the same tick: grpc-js then writes the
      // headers, the message and the trailers in one go instead of a HEADERS
      // frame of its own when the call starts.
      call.sendMetadata(requestIdMetadata(requestId));
    };
    let req: Req;
    try {
      req = call.request;
    } catch (err) {
      const e = toGrpcError(err, callLog());
      finish(status.INTERNAL);
      callback(e);
      return;
    }
    const ctx: CallContext = {
      requestId,
      get log() {
        return callLog();
      },
      get signal() {
        return watched.signal;
      },
      gone: watched.gone,
      shutdown: env.shutdown,
      deadline: watched.deadline,
    };
    const run = req instanceof UndecodableRequest ? Promise.reject(req.error) : fn(req, ctx);
    run.then(
      (res) => {
        finish(status.OK);
        callback(null, res);
      },
      (err: unknown) => {
        const e = toGrpcError(err, callLog());
        finish(e.code);
        callback(e);
      },
    );
  };
}
