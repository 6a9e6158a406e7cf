/**
 * The session adapter of the call pipeline (PipelineCall.ts): many unary
 * calls carried as messages of one bidirectional stream
 * (CheckpointService.Session). A unary call costs an HTTP/2 stream, its
 * headers and trailers and grpc-js's call machinery at both ends, which in
 * Node is most of a small call's CPU; a message on an open stream costs its
 * bytes (BENCHMARKS.md, "Session").
 *
 * Each message is one PipelineCall, exactly as its unary RPC runs: request
 * id, the auth step with the stream's credentials and the call's own access
 * rule, the handler, the error mapping, the "rpc" log line and metrics, under
 * the RPC's own name. What differs is only how its end goes out: a
 * SessionResponse carrying the call's id and its reply, or its status (code,
 * message and the agentstate-* trailers the unary call would carry). A call's
 * lifetime is the stream's (a cancelled stream is a cancelled call) bounded by
 * its own timeout_ms.
 *
 * Bounds: open streams per server (AGENTSTATE_MAX_SESSIONS, at open) and calls
 * in flight per stream (AGENTSTATE_MAX_SESSION_CALLS, per call): past either,
 * RESOURCE_EXHAUSTED naming it, and nothing else changes. Replies the caller
 * does not read pause the reading of its calls (transport backpressure), so
 * a caller cannot queue replies in server memory.
 *
 * Ending: the caller half-closes (its calls are answered, then OK), the
 * caller cancels (calls in flight see a gone caller and send nothing), or the
 * server shuts down (calls in flight are answered, calls read after get
 * UNAVAILABLE, then the stream ends UNAVAILABLE so the caller reopens on
 * another replica). A message that does not decode ends the stream with its
 * INVALID_ARGUMENT: its call id cannot be read.
 */
import { performance } from "node:perf_hooks";
import { Metadata, status, type Deadline, type ServerDuplexStream } from "@grpc/grpc-js";
import type { StreamSlots } from "../../domain/streamSlots";
import {
  DeadlinePassedError,
  InvalidArgumentError,
  LimitExceededError,
  ServerShuttingDownError,
  type AppError,
} from "../../errors/errors";
import { UndecodableRequest } from "../codec/decodeGuard";
import { toGrpcError } from "../toGrpcError";
import type { CallContext, CallEnv } from "./context";
import { PipelineCall, type GrpcServerCall, type GrpcStatus } from "./PipelineCall";
import { requestIdMetadata, requestIdOf } from "./requestId";

/** One kind of call a session carries: its RPC's name and handler, and how its reply goes into a response. */
export interface SessionRoute<Res> {
  readonly rpc: string;
  readonly handler: (req: unknown, ctx: CallContext) => Promise<unknown>;
  readonly reply: (callId: number, res: unknown) => Res;
}

/** What a session needs of a request message: its id, its timeout and which call it carries. */
export interface SessionRequestShape {
  readonly callId: number;
  readonly timeoutMs: number;
}

/** A call's status as a session response carries it. */
export interface SessionStatusShape {
  code: number;
  message: string;
  metadata: { [key: string]: string };
}

export interface SessionOptions<Req extends SessionRequestShape, Res> {
  readonly rpc: string;
  /** Calls in flight per stream, and the setting that names the bound. */
  readonly maxCalls: number;
  readonly maxCallsSetting: string;
  /** Open streams of this kind on the server. */
  readonly slots: StreamSlots;
  /** The route of a request (its call and what it carries), or an InvalidArgumentError when it carries none or several. */
  readonly route: (req: Req) => { route: SessionRoute<Res>; request: unknown } | InvalidArgumentError;
  /** A response answering `callId` with `s`. */
  readonly statusReply: (callId: number, s: SessionStatusShape) => Res;
}

/** The agentstate-* trailers of a status, as the session response's map. */
function trailers(md: Metadata | undefined): { [key: string]: string } {
  const out: { [key: string]: string } = {};
  if (md === undefined) return out;
  for (const [k, v] of Object.entries(md.getMap())) {
    if (k.startsWith("agentstate-") && typeof v === "string") out[k] = v;
  }
  return out;
}

/** One call of a session, as the pipeline sees a grpc-js call. */
class SessionCallView implements GrpcServerCall {
  private readonly deadline: Deadline;

  constructor(
    private readonly stream: ServerDuplexStream<unknown, unknown>,
    readonly request: unknown,
    timeoutMs: number,
  ) {
    this.deadline = timeoutMs > 0 ? new Date(Date.now() + timeoutMs) : Infinity;
  }

  get metadata(): Metadata {
    return this.stream.metadata;
  }

  get cancelled(): boolean {
    return this.stream.cancelled;
  }

  /** The grpc-js call chain, for sessionOf (auth's per-connection certificate cache). */
  get call(): unknown {
    return (this.stream as unknown as { call?: unknown }).call;
  }

  getDeadline(): Deadline {
    return this.deadline;
  }

  getAuthContext() {
    return this.stream.getAuthContext();
  }

  on(event: "cancelled", listener: () => void): unknown {
    return this.stream.on(event, listener);
  }

  removeListener(event: "cancelled", listener: () => void): unknown {
    return this.stream.removeListener(event, listener);
  }
}

class SessionCall<Req extends SessionRequestShape, Res> extends PipelineCall<unknown, unknown> {
  protected readonly cutByShutdown = false;

  constructor(
    private readonly session: Session<Req, Res>,
    readonly callId: number,
    private readonly route: SessionRoute<Res>,
    env: CallEnv,
    view: SessionCallView,
  ) {
    super(route.rpc, env, view);
  }

  protected sendResult(res: unknown): void {
    this.session.answer(this, this.route.reply(this.callId, res));
  }

  protected sendStatus(e: GrpcStatus): void {
    this.session.answerStatus(this, e);
  }

  protected override ended(): void {
    this.session.callEnded();
  }
}

type AnyCall = { readonly callId: number };

class Session<Req extends SessionRequestShape, Res> {
  /** Calls not answered yet, by id, with their timeout's timer. */
  private readonly unanswered = new Map<number, { call: AnyCall; timer: NodeJS.Timeout | undefined }>();
  /** Handlers running: what the in-flight limit counts (a call answered at its timeout may still run). */
  private running = 0;
  private readonly started = performance.now();
  private calls = 0;
  private halfClosed = false;
  private over = false;
  private readonly onShutdown = () => this.endIfIdle();

  constructor(
    private readonly stream: ServerDuplexStream<Req, Res>,
    private readonly env: CallEnv,
    private readonly o: SessionOptions<Req, Res>,
    private readonly requestId: string,
    private readonly release: () => void,
  ) {
    if (stream.cancelled) {
      // Cancelled while its authentication was pending: 'cancelled' has been emitted already.
      this.finish(status.CANCELLED);
      return;
    }
    stream.on("data", (msg: Req | UndecodableRequest) => this.received(msg));
    stream.on("end", () => {
      this.halfClosed = true;
      this.endIfIdle();
    });
    stream.on("cancelled", () => this.finish(status.CANCELLED));
    // A transport error on the stream (the connection is gone): grpc-js also reports it as cancelled.
    stream.on("error", () => this.finish(status.CANCELLED));
    env.shutdown.addEventListener("abort", this.onShutdown, { once: true });
  }

  private received(msg: Req | UndecodableRequest): void {
    if (this.over) return;
    if (msg instanceof UndecodableRequest) {
      this.endWith(toGrpcError(msg.error, this.env.log));
      return;
    }
    this.calls++;
    const { callId } = msg;
    if (this.unanswered.has(callId)) {
      this.refuse(callId, new InvalidArgumentError("call_id", `call_id ${callId} is already in flight on this stream`));
      return;
    }
    if (this.env.shutdown.aborted) {
      this.refuse(callId, new ServerShuttingDownError("open another session on another replica"));
      return;
    }
    if (this.running >= this.o.maxCalls) {
      this.refuse(
        callId,
        new LimitExceededError(
          this.o.maxCallsSetting,
          `too many calls in flight on this session: the limit is ${this.o.maxCalls} (${this.o.maxCallsSetting})`,
        ),
      );
      return;
    }
    const routed = this.o.route(msg);
    if (routed instanceof InvalidArgumentError) {
      this.refuse(callId, routed);
      return;
    }
    const view = new SessionCallView(
      this.stream as ServerDuplexStream<unknown, unknown>,
      routed.request,
      msg.timeoutMs,
    );
    const call = new SessionCall(this, callId, routed.route, this.env, view);
    // Past its timeout the caller is answered at once, as grpc-js ends a unary call at its deadline;
    // the handler sees its caller gone (the view's deadline) and its end sends nothing.
    const timer =
      msg.timeoutMs > 0
        ? setTimeout(
            () => this.answerStatus(call, toGrpcError(new DeadlinePassedError("Deadline exceeded"), this.env.log)),
            msg.timeoutMs,
          )
        : undefined;
    this.unanswered.set(callId, { call, timer });
    this.running++;
    call.run(view, routed.route.handler);
  }

  /** A call answered before it ran (no handler; the stream's log line counts it). */
  private refuse(callId: number, err: AppError): void {
    this.write(this.o.statusReply(callId, this.statusOf(toGrpcError(err, this.env.log))));
  }

  answer(call: AnyCall, res: Res): void {
    if (this.settle(call)) this.write(res);
    this.endIfIdle();
  }

  answerStatus(call: AnyCall, e: GrpcStatus): void {
    if (this.settle(call)) this.write(this.o.statusReply(call.callId, this.statusOf(e)));
    this.endIfIdle();
  }

  callEnded(): void {
    this.running--;
    this.endIfIdle();
  }

  /** Whether `call` was still unanswered (it is not any more). */
  private settle(call: AnyCall): boolean {
    const u = this.unanswered.get(call.callId);
    if (u === undefined || u.call !== call) return false;
    if (u.timer !== undefined) clearTimeout(u.timer);
    this.unanswered.delete(call.callId);
    return true;
  }

  private statusOf(e: GrpcStatus): SessionStatusShape {
    return { code: e.code, message: e.details ?? "", metadata: trailers(e.metadata) };
  }

  /** Writes a response; a caller not reading its replies stops the reading of its calls until it does. */
  private write(res: Res): void {
    if (this.over) return;
    if (!this.stream.write(res) && !this.stream.isPaused()) {
      this.stream.pause();
      this.stream.once("drain", () => this.stream.resume());
    }
  }

  private endIfIdle(): void {
    if (this.over || this.running > 0 || this.unanswered.size > 0) return;
    if (this.env.shutdown.aborted) {
      this.endWith(toGrpcError(new ServerShuttingDownError("open another session on another replica"), this.env.log));
    } else if (this.halfClosed) {
      this.finish(status.OK);
      this.stream.end();
    }
  }

  private endWith(e: GrpcStatus): void {
    if (this.over) return;
    this.finish(e.code);
    this.stream.emit("error", e);
  }

  private finish(code: status): void {
    if (this.over) return;
    this.over = true;
    for (const u of this.unanswered.values()) if (u.timer !== undefined) clearTimeout(u.timer);
    this.unanswered.clear();
    this.release();
    this.env.shutdown.removeEventListener("abort", this.onShutdown);
    streamEnded(this.env, this.o.rpc, this.requestId, code, performance.now() - this.started, this.calls);
  }
}

/** The stream's own "rpc" log line and metrics observation (its calls have theirs). */
function streamEnded(env: CallEnv, rpc: string, requestId: string, code: status, ms: number, calls: number): void {
  const name = status[code];
  env.log.info("rpc", { request_id: requestId, rpc, code: name, ms: Math.round(ms * 100) / 100, calls });
  env.observe?.(rpc, name, ms / 1000);
}

/**
 * A session handler: opens the stream (request id, authentication when auth
 * is on, a slot), then runs each message as its own call.
 */
export function session<Req extends SessionRequestShape, Res>(env: CallEnv, o: SessionOptions<Req, Res>) {
  return (stream: ServerDuplexStream<Req, Res>): void => {
    const refuse = (err: unknown, requestId: string) => {
      const e = toGrpcError(err, env.log);
      streamEnded(env, o.rpc, requestId, e.code, 0, 0);
      stream.emit("error", e);
    };
    const id = requestIdOf(stream.metadata);
    if (typeof id !== "string") return refuse(id.error, id.made);
    stream.sendMetadata(requestIdMetadata(id));
    let release: () => void;
    try {
      if (env.shutdown.aborted) throw new ServerShuttingDownError("open the session on another replica");
      release = o.slots.acquire("");
    } catch (err) {
      return refuse(err, id);
    }
    const open = () => new Session<Req, Res>(stream, env, o, id, release);
    const auth = env.auth;
    if (auth === undefined) {
      open();
      return;
    }
    // Authentication only (no request: each call's own access rule is checked when it runs).
    let admitted: unknown;
    try {
      admitted = auth.admit(o.rpc, stream, undefined, { log: env.log.child({ request_id: id, rpc: o.rpc }) });
    } catch (err) {
      release();
      return refuse(err, id);
    }
    Promise.resolve(admitted).then(open, (err: unknown) => {
      release();
      refuse(err, id);
    });
  };
}
