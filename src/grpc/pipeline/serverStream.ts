/**
 * The server-streaming adapter of the call pipeline (PipelineCall.ts). The
 * x-request-id echo goes out when the call starts; `send` honours
 * backpressure: it resolves only when the transport can take more, so a slow
 * reader paces the handler instead of growing server memory. A reader stalled
 * longer than `stallMs` is ended with RESOURCE_EXHAUSTED (it can resume from
 * the last position it received). Shutdown ends the stream with UNAVAILABLE.
 */
import type { ServerWritableStream } from "@grpc/grpc-js";
import { abortError } from "../../errors/abort";
import { SubscriberTooSlowError } from "../../errors/errors";
import type { CallEnv, StreamContext } from "./context";
import { PipelineCall, type GrpcStatus } from "./PipelineCall";
import { requestIdMetadata } from "./requestId";

const RESUME = "resume from the last position received";
const DONE = Promise.resolve();

class ServerStreamCall<Req, Res> extends PipelineCall<Req, void> implements StreamContext<Res> {
  protected readonly cutByShutdown = true;

  constructor(
    rpc: string,
    env: CallEnv,
    private readonly call: ServerWritableStream<Req, Res>,
    private readonly stallMs: number,
  ) {
    super(rpc, env, call);
    call.sendMetadata(requestIdMetadata(this.requestId));
  }

  send(msg: Res): Promise<void> {
    return this.sendNow(msg) ?? DONE;
  }

  sendNow(msg: Res): Promise<void> | undefined {
    const { call, stallMs } = this;
    const stop = this.longWaitSignal;
    if (stop.aborted) return Promise.reject(abortError(stop, RESUME));
    if (call.write(msg)) return undefined;
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        call.removeListener("drain", onDrain);
        stop.removeEventListener("abort", onAbort);
      };
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onAbort = () => {
        cleanup();
        reject(abortError(stop, RESUME));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new SubscriberTooSlowError(stallMs));
      }, stallMs);
      call.once("drain", onDrain);
      stop.addEventListener("abort", onAbort, { once: true });
    });
  }

  protected sendResult(): void {
    this.call.end();
  }

  protected sendStatus(e: GrpcStatus): void {
    this.call.emit("error", e);
  }
}

export function serverStream<Req, Res>(
  rpc: string,
  env: CallEnv,
  stallMs: number,
  handler: (req: Req, ctx: StreamContext<Res>) => Promise<void>,
) {
  return (call: ServerWritableStream<Req, Res>): void =>
    new ServerStreamCall<Req, Res>(rpc, env, call, stallMs).run(call, handler);
}
