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
import { Metadata, status, type ServerWritableStream } from "@grpc/grpc-js";
import { CancelledError, ResourceExhaustedError, UnavailableError } from "../errors/errors";
import { UndecodableRequest } from "./decodeGuard";
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
    const ac = new AbortController();
    const dl = call.getDeadline();
    const deadline = dl instanceof Date ? dl.getTime() : Number.isFinite(dl) ? Number(dl) : undefined;
    // grpc-js reports a passed deadline as a cancellation; tell the two apart.
    const onCancel = () =>
      ac.abort(new Error(deadline !== undefined && Date.now() >= deadline - 5 ? "deadline exceeded" : "cancelled"));
    call.on("cancelled", onCancel);
    const deadlineTimer =
      deadline !== undefined
        ? setTimeout(() => ac.abort(new Error("deadline exceeded")), Math.max(0, deadline - Date.now()))
        : undefined;
    const all = AbortSignal.any([ac.signal, shutdown]);
    const md = new Metadata();
    md.set("x-request-id", requestId);
    call.sendMetadata(md);

    const send = (msg: unknown): Promise<void> => {
      if (all.aborted) return Promise.reject(gone(all));
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
          reject(gone(all));
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
      if (deadlineTimer) clearTimeout(deadlineTimer);
      call.removeListener("cancelled", onCancel);
      const ms = performance.now() - started;
      log.info("rpc", { code: status[code], ms: Math.round(ms * 100) / 100 });
      env.observe?.(rpc, status[code], ms / 1000);
    };
    const req = call.request;
    const run =
      req instanceof UndecodableRequest
        ? Promise.reject(req.error)
        : fn(req, { requestId, log, signal: ac.signal, shutdown, deadline, send });
    run.then(
      () => {
        if (shutdown.aborted && !ac.signal.aborted) {
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
        if (!ac.signal.aborted) call.emit("error", e);
      },
    );
  };
}

function gone(signal: AbortSignal): Error {
  const reason = (signal.reason as Error | undefined)?.message ?? "";
  if (reason.includes("shutdown")) return new UnavailableError("server shutting down; resume on another replica");
  return new CancelledError("caller went away");
}
