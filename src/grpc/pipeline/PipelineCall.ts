/**
 * The call pipeline, written once for unary and server-streaming calls. Every
 * call goes through the same steps, in this order:
 *   1. request id: the caller's x-request-id, a made-up one when it sent none;
 *      a caller's id that is not sane (requestId.ts) ends the call with
 *      INVALID_ARGUMENT here, before anything else;
 *   1b. auth (when AGENTSTATE_AUTH=required): the call's principal from its
 *      credentials, and the RPC's access rule checked against the request
 *      (grpc/auth/AuthStep.ts), before the handler, so a refused call changes
 *      nothing;
 *   2. the handler, on the decoded request (a request the decode guard refused
 *      is answered with its INVALID_ARGUMENT without running it);
 *   3. error mapping: whatever the handler throws goes through toGrpcError,
 *      the one table from domain errors to status codes;
 *   4. termination: a caller that is gone (cancelled, deadline passed) is sent
 *      nothing more, and the call counts with the code that caller saw
 *      (DEADLINE_EXCEEDED or CANCELLED), not with what the handler made of it;
 *      a call that ends normally once shutdown has begun, where a normal end
 *      would claim completeness (a stream), ends with UNAVAILABLE instead;
 *   5. one "rpc" log line and one metrics observation, with that code.
 * The adapters (unary.ts, serverStream.ts) add only how a result or a status
 * goes out and, for streams, `send` with backpressure.
 *
 * Per-call cost is kept where it was on the hot path (a Get cache hit): the
 * child logger, the AbortController and its deadline timer, and the
 * long-wait signal are made only when a handler first reads them; `gone()`
 * allocates nothing while the caller waits; the call itself is one object
 * (plus its CallLifetime) rather than closures per step.
 *
 * nice-grpc's server model is the reference design here: one CallContext with
 * an AbortSignal for every method kind, one function mapping what was thrown
 * to a status, and its terminator middleware's idea that only calls that opt
 * in (here: those that read `longWaitSignal`) are aborted by shutdown, with
 * UNAVAILABLE. The library itself is not adopted: its server makes an
 * AbortController and converts the metadata for every call, and runs each
 * middleware as an async generator, all of which this path avoids; and it
 * owns the response metadata, where we send x-request-id as a never-indexed
 * header together with the reply (requestId.ts).
 */
import { performance } from "node:perf_hooks";
import { status, type Metadata, type ServiceError } from "@grpc/grpc-js";
import type { Principal } from "../../domain/principals";
import type { CallerGone } from "../../errors/abort";
import { ServerShuttingDownError, type InvalidArgumentError } from "../../errors/errors";
import type { Logger } from "../../log/Logger";
import { UndecodableRequest } from "../codec/decodeGuard";
import { toGrpcError } from "../toGrpcError";
import { CallLifetime, type LifetimeCall } from "./callLifetime";
import type { AuthCall, CallContext, CallEnv } from "./context";
import { requestIdOf } from "./requestId";

/** What the pipeline uses of a grpc-js server call, unary or server-streaming. */
export interface GrpcServerCall extends LifetimeCall, AuthCall {
  readonly metadata: Metadata;
  readonly request: unknown;
}

/** A status to send: what toGrpcError makes of a thrown error. */
export type GrpcStatus = Partial<ServiceError> & { code: status };

export abstract class PipelineCall<Req, Res> implements CallContext {
  readonly requestId: string;
  readonly gone: CallerGone;
  readonly deadline: number | undefined;
  readonly shutdown: AbortSignal;
  principal: Principal | undefined;
  /** The caller's x-request-id was refused: the call ends with this. */
  private readonly badRequestId: InvalidArgumentError | undefined;
  private readonly lifetime: CallLifetime;
  private readonly started = performance.now();
  private childLog: Logger | undefined;
  private longWait: AbortSignal | undefined;

  /** Whether a normal end after shutdown began would look complete when it is not (a stream). */
  protected abstract readonly cutByShutdown: boolean;
  /** Sends what the handler returned. */
  protected abstract sendResult(res: Res): void;
  /** Sends an error status. */
  protected abstract sendStatus(e: GrpcStatus): void;
  /** Told once the call has ended, whatever ended it (before its result or status is sent). */
  protected ended(): void {}

  constructor(
    readonly rpc: string,
    private readonly env: CallEnv,
    call: GrpcServerCall,
  ) {
    const id = requestIdOf(call.metadata);
    if (typeof id === "string") {
      this.requestId = id;
    } else {
      this.requestId = id.made;
      this.badRequestId = id.error;
    }
    this.lifetime = new CallLifetime(call);
    this.gone = this.lifetime.gone;
    this.deadline = this.lifetime.deadline;
    this.shutdown = env.shutdown;
  }

  get log(): Logger {
    return (this.childLog ??= this.env.log.child({ request_id: this.requestId, rpc: this.rpc }));
  }

  get signal(): AbortSignal {
    return this.lifetime.signal;
  }

  get longWaitSignal(): AbortSignal {
    return (this.longWait ??= AbortSignal.any([this.lifetime.signal, this.shutdown]));
  }

  /** Runs `handler` on the call's request, then ends the call with what it returned or threw. */
  run(call: GrpcServerCall, handler: (req: Req, ctx: this) => Promise<Res>): void {
    if (this.badRequestId !== undefined) return this.threw(this.badRequestId);
    const auth = this.env.auth;
    if (auth === undefined) return this.handle(call, handler);
    let admitted: Principal | Promise<Principal>;
    try {
      const req = call.request instanceof UndecodableRequest ? undefined : call.request;
      admitted = auth.admit(this.rpc, call, req, this);
    } catch (err) {
      return this.threw(err);
    }
    if (!(admitted instanceof Promise)) {
      this.principal = admitted;
      return this.handle(call, handler);
    }
    admitted.then(
      (p) => {
        this.principal = p;
        this.handle(call, handler);
      },
      (err: unknown) => this.threw(err),
    );
  }

  private handle(call: GrpcServerCall, handler: (req: Req, ctx: this) => Promise<Res>): void {
    let result: Promise<Res>;
    try {
      const req = call.request;
      result = req instanceof UndecodableRequest ? Promise.reject(req.error) : handler(req as Req, this);
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (res) => this.returned(res),
      (err: unknown) => this.threw(err),
    );
  }

  private returned(res: Res): void {
    if (this.endIfGone()) return;
    if (this.cutByShutdown && this.shutdown.aborted) {
      this.threw(new ServerShuttingDownError("resume on another replica"));
      return;
    }
    this.end(status.OK);
    this.sendResult(res);
  }

  private threw(err: unknown): void {
    const e = toGrpcError(err, this.log);
    if (this.endIfGone()) return;
    this.end(e.code);
    this.sendStatus(e);
  }

  /** Ends the call with the code its caller saw if the caller is gone: grpc-js has ended the call, or is about to. */
  private endIfGone(): boolean {
    const why = this.gone();
    if (why === undefined) return false;
    this.end(why.kind === "deadline" ? status.DEADLINE_EXCEEDED : status.CANCELLED);
    return true;
  }

  private end(code: status): void {
    this.lifetime.dispose();
    const ms = performance.now() - this.started;
    const name = status[code];
    const line = { request_id: this.requestId, rpc: this.rpc, code: name, ms: Math.round(ms * 100) / 100 };
    this.env.log.info("rpc", this.principal ? { ...line, principal: this.principal.name } : line);
    this.env.observe?.(this.rpc, name, ms / 1000);
    this.ended();
  }
}
