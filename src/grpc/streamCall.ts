/**
 * Wraps a server-streaming handler: request id, one log line per call, error
 * mapping through toGrpcError, and a `send` that honours backpressure: it
 * resolves only when the transport can take more, so a slow reader paces the
 * handler instead of growing server memory. A reader stalled longer than
 * `stallMs` is ended with RESOURCE_EXHAUSTED (it can resume from the last
 * position it received). Shutdown ends the stream with UNAVAILABLE.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { status, type ServerWritableStream } from "@grpc/grpc-js";
import { abortError } from "../errors/abort";
import { ResourceExhaustedError, UnavailableError } from "../errors/errors";
import { watchCall } from "./watchCall";
import { UndecodableRequest } from "./codec/decodeGuard";
import { requestIdMetadata } from "./requestIdMetadata";
import { toGrpcError } from "./toGrpcError";
import { requestIdOf, type CallContext, type CallEnv } from "./unaryCall";

export interface StreamContext extends CallContext {
  /** Writes one message; resolves when the transport can take more. */
  send(msg: unknown): Promise<void>;
}

export function streamCall<Req, Res>(
  rpc: string,
  env: CallEnv,
  stallMs: number,
  fn: (req: Req, ctx: StreamContext) => Promise<void>,
) {
  return (call: ServerWritableStream<Req, Res>): void => {
    const started = performance.now();
    const requestId = call.metadata ? requestIdOf(call.metadata) : randomUUID();
    const { shutdown } = env;
    const log = env.log.child({ request_id: requestId, rpc });
    const watched = watchCall(call);
    const all = AbortSignal.any([watched.signal, shutdown]);
    call.sendMetadata(requestIdMetadata(requestId));

    const send = (msg: unknown): Promise<void> => {
      if (all.aborted) return Promise.reject(abortError(all, "resume from the last position received"));
      if (call.write(msg as Res)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const cleanup = () => {
          clearTimeout(timer);
          call.removeListener("drain", onDrain);
          all.removeEventListener("abort", onAbort);
        };
        const onDrain = () => {
          cleanup();
          resolve();
        };
        const onAbort = () => {
          cleanup();
          reject(abortError(all, "resume from the last position received"));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new ResourceExhaustedError(
              `subscriber too slow: nothing was read for ${stallMs} ms; resubscribe from the last position received`,
            ),
          );
        }, stallMs);
        call.once("drain", onDrain);
        all.addEventListener("abort", onAbort, { once: true });
      });
    };

    const finish = (code: status) => {
      watched.dispose();
      const ms = performance.now() - started;
      log.info("rpc", { code: status[code], ms: Math.round(ms * 100) / 100 });
      env.observe?.(rpc, status[code], ms / 1000);
    };
    const req = call.request;
    const run =
      req instanceof UndecodableRequest
        ? Promise.reject(req.error)
        : fn(req, {
            requestId,
            log,
            signal: watched.signal,
            gone: watched.gone,
            shutdown,
            deadline: watched.deadline,
            send,
          });
    run.then(
      () => {
        if (shutdown.aborted && !watched.signal.aborted) {
          const e = toGrpcError(new UnavailableError("server shutting down; resume on another replica"), log);
          finish(e.code);
          call.emit("error", e);
          return;
        }
        finish(status.OK);
        call.end();
      },
      (err: unknown) => {
        const e = toGrpcError(err, log);
        finish(e.code);
        if (!watched.signal.aborted) call.emit("error", e);
      },
    );
  };
}
