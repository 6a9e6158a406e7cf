/**
 * The unary adapter of the call pipeline (PipelineCall.ts): a handler returns
 * the reply, the x-request-id echo goes with it.
 */
import type { sendUnaryData, ServerUnaryCall } from "@grpc/grpc-js";
import type { CallContext, CallEnv } from "./context";
import { PipelineCall, type GrpcStatus } from "./PipelineCall";
import { requestIdMetadata } from "./requestId";

class UnaryCall<Req, Res> extends PipelineCall<Req, Res> {
  protected readonly cutByShutdown = false;

  constructor(
    rpc: string,
    env: CallEnv,
    private readonly call: ServerUnaryCall<Req, Res>,
    private readonly callback: sendUnaryData<Res>,
  ) {
    super(rpc, env, call);
  }

  // The echo goes with the reply, in the same tick: grpc-js then writes the
  // headers, the message and the trailers in one go instead of a HEADERS
  // frame of its own when the call starts.
  protected sendResult(res: Res): void {
    this.call.sendMetadata(requestIdMetadata(this.requestId));
    this.callback(null, res);
  }

  protected sendStatus(e: GrpcStatus): void {
    this.call.sendMetadata(requestIdMetadata(this.requestId));
    this.callback(e);
  }
}

export function unary<Req, Res>(rpc: string, env: CallEnv, handler: (req: Req, ctx: CallContext) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void =>
    new UnaryCall<Req, Res>(rpc, env, call, callback).run(call, handler);
}
