/**
 * CheckpointSession carries a client's PutCheckpoint, PutWrites and
 * GetCheckpoint calls as messages on one CheckpointService.Session stream
 * instead of one unary call each: a message costs far less CPU at both ends
 * than a call (its own HTTP/2 stream, headers, trailers and call machinery),
 * which is most of what a small LangGraph step costs (BENCHMARKS.md).
 *
 * What a caller sees is what the unary call would give:
 *
 * - a call's result is its reply, or an Error shaped as grpc-js's ServiceError
 *   (`code`, `details`, `message`, trailing `metadata` with agentstate-*
 *   keys), matched to its caller by call_id (results come in any order);
 * - each call has its deadline, sent as `timeout_ms` and kept here too: at it
 *   the call rejects DEADLINE_EXCEEDED (a late result is dropped);
 * - a call's `signal` rejects it at once with `signal.reason`. The server may
 *   still carry the call out (it was sent): the same uncertainty as a unary
 *   call cancelled after it was sent. Puts and PutWrites are idempotent;
 * - when the stream ends or breaks (server shutdown, connection lost), every
 *   call without a result rejects with the stream's status (UNAVAILABLE if
 *   it ended OK) and the next call opens a new stream: no caller hangs;
 * - a server without Session (an older release) answers the stream
 *   UNIMPLEMENTED: the session turns itself off for good, and the calls that
 *   saw it (never carried out: the server had no such method) and every later
 *   one go by unary;
 * - a stream that ends RESOURCE_EXHAUSTED was refused at open (the server's
 *   AGENTSTATE_MAX_SESSIONS) or broken by one reply over the client's message
 *   limit: its calls without a result go by unary, so each gets its own
 *   outcome (a call of the stream may have been carried out: puts and
 *   PutWrites are idempotent, a retried strict put is accepted); after a
 *   refused open, calls go by unary for RETRY_OPEN_MS before a stream is
 *   tried again. A request over the message limit is never sent on the
 *   stream (it would end it): it goes by unary, which refuses it alone.
 *
 * A stream carries the credentials it was opened with (the token source is
 * asked at open), and the server checks them at every call: a call answered
 * UNAUTHENTICATED (an expired JWT, a revoked token) was not carried out, so
 * its stream takes no new calls and the call is sent once more on a new
 * stream, with the token of the moment; a second UNAUTHENTICATED is its answer.
 *
 * Streams are replaced: one older than `maxAgeMs` takes no new calls (the
 * next call opens another) and is half-closed once its calls are answered, so
 * an expiring token, a server's max connection age and load balancing across
 * replicas all reach a fresh stream. One with no call in flight for about a
 * second is half-closed too, as an open stream keeps Node's event loop (and
 * the process) alive. At most `maxCalls` calls of a stream are in flight (the
 * server's AGENTSTATE_MAX_SESSION_CALLS, default 256); later calls wait here,
 * first in, first out. A call whose deadline passed or whose signal fired
 * keeps its call_id (and its place in that count) until the server answers
 * it, since the server still holds it.
 */
import { Metadata, status, type ClientDuplexStream, type StatusObject } from "@grpc/grpc-js";
import type {
  GetCheckpointRequest,
  GetCheckpointResponse,
  PutCheckpointRequest,
  PutCheckpointResponse,
  PutWritesRequest,
  PutWritesResponse,
  SessionRequest,
  SessionResponse,
} from "./gen/agentstate/v1/checkpoint";
import { serviceError, sessionStatusError } from "./serviceError";

/** How long a stream takes new calls. */
export const DEFAULT_SESSION_MAX_AGE_MS = 30_000;
/** Calls in flight on one stream: the server's default AGENTSTATE_MAX_SESSION_CALLS. */
export const DEFAULT_SESSION_MAX_CALLS = 256;
/** A stream with no call in flight for this long (checked every half of it) is half-closed. */
const IDLE_MS = 1000;
/** Deadlines past this (about 24.8 days, the longest Node timer) are none: timeout_ms 0, no local timer. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** After the server refused to open a stream (RESOURCE_EXHAUSTED), calls go by unary this long. */
const RETRY_OPEN_MS = 5000;

/** The calls a Session carries: each method's request and reply. */
export interface SessionCalls {
  putCheckpoint: { request: PutCheckpointRequest; response: PutCheckpointResponse };
  putWrites: { request: PutWritesRequest; response: PutWritesResponse };
  getCheckpoint: { request: GetCheckpointRequest; response: GetCheckpointResponse };
}
export type SessionMethod = keyof SessionCalls;

export interface SessionCallOptions {
  deadlineMs?: number;
  signal?: AbortSignal;
}

/** A Session stream whose requests are written already encoded (SessionRequest bytes). */
export type SessionDuplex = ClientDuplexStream<Uint8Array, SessionResponse>;

export interface CheckpointSessionOptions {
  /** Opens a Session stream (on the client's channel, with its interceptors). */
  open(): SessionDuplex;
  /** The same call by unary: for a server without Session. */
  unary<M extends SessionMethod>(
    method: M,
    request: SessionCalls[M]["request"],
    options: SessionCallOptions,
  ): Promise<SessionCalls[M]["response"]>;
  /** Deadline of a call that gives none. */
  deadlineMs: number;
  /** Default DEFAULT_SESSION_MAX_AGE_MS. */
  maxAgeMs?: number;
  /** Default DEFAULT_SESSION_MAX_CALLS. */
  maxCalls?: number;
  /** Encodes a request (the client's reused writer). */
  encode(request: SessionRequest): Uint8Array;
  /** The channel's send limit: a request above it goes by unary (on the stream it would end the stream). */
  maxSendBytes: number;
}

/** One call, from its caller's promise to its result. */
interface Call {
  readonly method: SessionMethod;
  readonly request: SessionCalls[SessionMethod]["request"];
  /** performance.now() past which the call fails DEADLINE_EXCEEDED. */
  readonly deadlineAt: number;
  readonly signal: AbortSignal | undefined;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  /** Settled: the caller has its answer; a result that comes later is dropped. */
  done: boolean;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  /** The stream it was sent on. */
  stream: Stream | undefined;
  /** Sent again after UNAUTHENTICATED (once at most). */
  resent: boolean;
}

/** One Session stream and the calls sent on it that have no result yet. */
interface Stream {
  readonly duplex: SessionDuplex;
  readonly openedAt: number;
  /** Sent, awaiting their result, by call_id (settled ones too: the server still holds their id). */
  readonly calls: Map<number, Call>;
  /** Takes no new calls. */
  retired: boolean;
  halfClosed: boolean;
  /** A result came on it (so the server has Session). */
  answered: boolean;
  lastUsed: number;
  status: StatusObject | undefined;
  readEnded: boolean;
  idleTimer: NodeJS.Timeout;
}

export class CheckpointSession {
  private readonly maxAgeMs: number;
  private readonly maxCalls: number;
  private current: Stream | undefined;
  private readonly streams = new Set<Stream>();
  /** Calls waiting for room on the current stream, in arrival order. */
  private readonly waiting: Call[] = [];
  private nextId = 0;
  /** The server has no Session: every call goes by unary. */
  private unsupported = false;
  /** performance.now() before which calls go by unary (the server refused a stream). */
  private unaryUntil = 0;
  private closed = false;

  constructor(private readonly options: CheckpointSessionOptions) {
    this.maxAgeMs = options.maxAgeMs ?? DEFAULT_SESSION_MAX_AGE_MS;
    this.maxCalls = options.maxCalls ?? DEFAULT_SESSION_MAX_CALLS;
    if (!(this.maxCalls >= 1)) throw new Error("agentstate: sessionMaxCalls must be at least 1");
    if (!(this.maxAgeMs >= 0)) throw new Error("agentstate: sessionMaxAgeMs must not be negative");
  }

  /** False once the server was found to have no Session (calls then go by unary). */
  get active(): boolean {
    return !this.unsupported && !this.closed;
  }

  /** Streams open (including retired ones still answering their calls). */
  get openStreams(): number {
    return this.streams.size;
  }

  call<M extends SessionMethod>(
    method: M,
    request: SessionCalls[M]["request"],
    options: SessionCallOptions = {},
  ): Promise<SessionCalls[M]["response"]> {
    if (!this.active || (this.unaryUntil !== 0 && performance.now() < this.unaryUntil))
      return this.options.unary(method, request, options);
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const deadlineMs = options.deadlineMs ?? this.options.deadlineMs;
    return new Promise((resolve, reject) => {
      const call: Call = {
        method,
        request,
        deadlineAt: performance.now() + deadlineMs,
        signal,
        resolve: resolve as (value: unknown) => void,
        reject,
        done: false,
        timer: undefined,
        onAbort: undefined,
        stream: undefined,
        resent: false,
      };
      if (deadlineMs < MAX_TIMER_MS) call.timer = setTimeout(() => this.expire(call), deadlineMs);
      if (signal !== undefined) {
        // As the unary call: cancelled while in flight is CANCELLED (an already aborted signal rejects with its reason).
        call.onAbort = () => this.settle(call, undefined, serviceError(status.CANCELLED, "Cancelled on client"));
        signal.addEventListener("abort", call.onAbort, { once: true });
      }
      this.waiting.push(call);
      this.pump();
    });
  }

  /** Ends every stream; calls without a result reject CANCELLED. Later calls go by unary. */
  close(): void {
    this.closed = true;
    const cancelled = () => serviceError(status.CANCELLED, "Cancelled on client");
    for (const call of this.waiting.splice(0)) this.settle(call, undefined, cancelled());
    for (const s of [...this.streams]) {
      for (const call of s.calls.values()) this.settle(call, undefined, cancelled());
      this.forget(s);
      s.duplex.cancel();
    }
  }

  /** Sends waiting calls while the current stream has room. */
  private pump(): void {
    while (this.waiting.length > 0) {
      const call = this.waiting[0]!;
      if (call.done) {
        this.waiting.shift();
        continue;
      }
      let s: Stream;
      try {
        s = this.streamForNewCall();
      } catch (err) {
        this.waiting.shift();
        this.settle(call, undefined, err);
        continue;
      }
      if (s.calls.size >= this.maxCalls) return;
      this.waiting.shift();
      this.send(s, call);
    }
  }

  private send(s: Stream, call: Call): void {
    const left = call.deadlineAt - performance.now();
    if (left <= 0) {
      this.expire(call);
      return;
    }
    const timeoutMs = left < MAX_TIMER_MS ? Math.ceil(left) : 0;
    let id = this.nextId;
    do id = (id + 1) >>> 0;
    while (s.calls.has(id));
    const request: SessionRequest = { callId: id, timeoutMs };
    (request as unknown as Record<string, unknown>)[call.method] = call.request;
    const bytes = this.options.encode(request);
    if (bytes.byteLength > this.options.maxSendBytes) {
      this.viaUnary(call);
      return;
    }
    this.nextId = id;
    call.stream = s;
    s.calls.set(id, call);
    s.lastUsed = performance.now();
    s.duplex.write(bytes);
  }

  /** The stream new calls go on: the current one unless it is too old, else a new one. */
  private streamForNewCall(): Stream {
    const s = this.current;
    if (s !== undefined && performance.now() - s.openedAt < this.maxAgeMs) return s;
    if (s !== undefined) this.retire(s);
    return this.openStream();
  }

  private openStream(): Stream {
    const duplex = this.options.open();
    const now = performance.now();
    const s: Stream = {
      duplex,
      openedAt: now,
      calls: new Map(),
      retired: false,
      halfClosed: false,
      answered: false,
      lastUsed: now,
      status: undefined,
      readEnded: false,
      idleTimer: setInterval(() => {
        if (s.calls.size === 0 && performance.now() - s.lastUsed >= IDLE_MS) this.retire(s);
      }, IDLE_MS / 2),
    };
    // The interval must not keep the process alive; the open stream does, until it goes idle.
    s.idleTimer.unref();
    duplex.on("data", (res: SessionResponse) => this.result(s, res));
    // grpc-js emits 'error' (then 'status') for a status other than OK: the status handles it.
    duplex.on("error", () => undefined);
    // Results read before the status may still be queued in the readable:
    // the stream is over once both the status and the end of reading came.
    duplex.on("status", (st: StatusObject) => {
      s.status = st;
      // Over: no new call goes on it while its last results are read.
      s.retired = true;
      if (this.current === s) this.current = undefined;
      if (s.readEnded) this.ended(s, st);
    });
    duplex.on("end", () => {
      s.readEnded = true;
      if (s.status !== undefined) this.ended(s, s.status);
    });
    this.streams.add(s);
    this.current = s;
    return s;
  }

  /** No new calls on `s`; half-closed once its calls are answered. */
  private retire(s: Stream): void {
    s.retired = true;
    if (this.current === s) this.current = undefined;
    if (s.calls.size === 0) this.halfClose(s);
  }

  private halfClose(s: Stream): void {
    if (s.halfClosed) return;
    s.halfClosed = true;
    clearInterval(s.idleTimer);
    s.duplex.end();
  }

  private result(s: Stream, res: SessionResponse): void {
    s.answered = true;
    const call = s.calls.get(res.callId);
    if (call === undefined) return; // not ours: nothing waits for it
    s.calls.delete(res.callId);
    if (!call.done) {
      if (res.status?.code === status.UNAUTHENTICATED && !call.resent && !this.closed) {
        // The stream's credentials are stale: the call again, first, on a new stream.
        call.resent = true;
        call.stream = undefined;
        this.retire(s);
        this.waiting.unshift(call);
      } else if (res.status !== undefined) this.settle(call, undefined, sessionStatusError(res.status));
      else {
        const reply = res[call.method];
        if (reply !== undefined) this.settle(call, reply, undefined);
        else
          this.settle(
            call,
            undefined,
            serviceError(status.INTERNAL, `agentstate: the Session result of a ${call.method} call carries no reply`),
          );
      }
    }
    if (s.calls.size === 0) {
      s.lastUsed = performance.now();
      if (s.retired) this.halfClose(s);
    }
    // Whatever stream answered: a retired one's answer may be what frees room for calls waiting.
    if (this.waiting.length > 0 && !this.closed) this.pump();
  }

  /** The stream is over: calls without a result fail with its status, or go by unary if the server has no Session. */
  private ended(s: Stream, st: StatusObject): void {
    if (!this.streams.has(s)) return;
    this.forget(s);
    const calls = [...s.calls.values()].filter((c) => !c.done);
    s.calls.clear();
    if (st.code === status.UNIMPLEMENTED && !s.answered && !this.closed) {
      this.unsupported = true;
      for (const call of [...calls, ...this.waiting.splice(0)]) this.viaUnary(call);
      return;
    }
    if (st.code === status.RESOURCE_EXHAUSTED && !this.closed) {
      if (!s.answered) {
        this.unaryUntil = performance.now() + RETRY_OPEN_MS;
        calls.push(...this.waiting.splice(0));
      }
      for (const call of calls) this.viaUnary(call);
      this.pump();
      return;
    }
    for (const call of calls) {
      const err =
        st.code === status.OK
          ? serviceError(status.UNAVAILABLE, "agentstate: the Session stream ended before the call's result")
          : serviceError(st.code, st.details, st.metadata?.clone() ?? new Metadata());
      this.settle(call, undefined, err);
    }
    if (!this.closed) this.pump();
  }

  private forget(s: Stream): void {
    this.streams.delete(s);
    clearInterval(s.idleTimer);
    s.retired = true;
    if (this.current === s) this.current = undefined;
  }

  /** Sends `call` by unary, with what is left of its deadline. */
  private viaUnary(call: Call): void {
    if (call.done) return;
    const remaining = call.deadlineAt - performance.now();
    if (remaining <= 0) {
      this.expire(call);
      return;
    }
    const { resolve, reject } = call;
    this.detach(call);
    this.options.unary(call.method, call.request, { deadlineMs: remaining, signal: call.signal }).then(resolve, reject);
  }

  /** The call's deadline passed. A stream where that happened takes no new calls (it may be stuck). */
  private expire(call: Call): void {
    if (call.done) return;
    this.settle(call, undefined, serviceError(status.DEADLINE_EXCEEDED, "Deadline exceeded"));
    const s = call.stream;
    if (s !== undefined) {
      if (!s.retired) this.retire(s);
      // Every call left on it was given up by its caller: a stuck stream would never be answered,
      // and an open stream keeps the process alive. Cancel it instead of waiting.
      if (this.streams.has(s) && [...s.calls.values()].every((c) => c.done)) {
        this.forget(s);
        s.duplex.cancel();
      }
    }
    // The retired stream's room is gone: calls waiting for room go on a new stream.
    if (this.waiting.length > 0 && !this.closed) this.pump();
  }

  private settle(call: Call, value: unknown, err: unknown): void {
    if (call.done) return;
    const { resolve, reject } = call;
    this.detach(call);
    if (err !== undefined) reject(err);
    else resolve(value);
  }

  /** Settled: no timer, no abort listener. */
  private detach(call: Call): void {
    call.done = true;
    clearTimeout(call.timer);
    if (call.onAbort !== undefined) call.signal?.removeEventListener("abort", call.onAbort);
  }
}
