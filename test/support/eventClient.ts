/**
 * Promise / buffering wrappers over the generated grpc-js EventServiceClient,
 * for the event integration tests. Requests are always built with
 * `X.fromPartial` (the generated encoders write fields exactly as given).
 *
 * - appendEvent: a Promise of the reply (or the ServiceError).
 * - readStream: every event of the server stream, collected.
 * - subscribe: a Subscription that buffers what arrives, in arrival order:
 *   `events`, `positions`, `caughtUps`, a `caughtUp` promise, `until()` to wait
 *   for an outcome, `cancel()`, the raw call (for pause()/resume()), and the
 *   final status or error once the stream has ended.
 */
import {
  credentials,
  Metadata,
  status,
  type ClientReadableStream,
  type ServiceError,
  type StatusObject,
} from "@grpc/grpc-js";
import {
  AppendEventRequest,
  EventServiceClient,
  ReadStreamRequest,
  SubscribeRequest,
  type AppendEventResponse,
  type DeepPartial,
  type ReadStreamResponse,
  type RecordedEvent,
  type SubscribeResponse,
} from "../../clients/typescript/src/gen/agentstate/v1/event";
import {
  LockRequest,
  LockServiceClient,
  UnlockRequest,
  type LockResponse,
  type UnlockResponse,
} from "../../clients/typescript/src/gen/agentstate/v1/lock";
import { Waiters } from "./Waiters";

export type { RecordedEvent };

export const DEFAULT_EVENT_DEADLINE_MS = 30_000;

export interface EventClientOptions {
  /**
   * A channel of its own instead of grpc-js's process-wide shared one, so a
   * paused subscriber cannot hold up other calls on the same HTTP/2 connection.
   */
  ownChannel?: boolean;
}

export interface EventCallOptions {
  /** Deadline from now. Default 30 s for unary calls and reads; subscriptions have none unless given. */
  deadlineMs?: number;
  /** Sent as `x-request-id`, to find the call in the server log. */
  requestId?: string;
}

function metadataOf(opts: EventCallOptions): Metadata {
  const md = new Metadata();
  if (opts.requestId !== undefined) md.set("x-request-id", opts.requestId);
  return md;
}

export class EventClient {
  readonly raw: EventServiceClient;
  private readonly locks: LockServiceClient;

  constructor(
    readonly address: string,
    options: EventClientOptions = {},
  ) {
    const channelOptions = {
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
      ...(options.ownChannel ? { "grpc.use_local_subchannel_pool": 1 } : {}),
    };
    this.raw = new EventServiceClient(address, credentials.createInsecure(), channelOptions);
    this.locks = new LockServiceClient(address, credentials.createInsecure(), channelOptions);
  }

  appendEvent(req: DeepPartial<AppendEventRequest>, opts: EventCallOptions = {}): Promise<AppendEventResponse> {
    const deadline = new Date(Date.now() + (opts.deadlineMs ?? DEFAULT_EVENT_DEADLINE_MS));
    return new Promise((resolve, reject) => {
      this.raw.appendEvent(AppendEventRequest.fromPartial(req), metadataOf(opts), { deadline }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  /** ReadStream, collecting every event until the stream ends (rejects with the ServiceError). */
  readStream(req: DeepPartial<ReadStreamRequest>, opts: EventCallOptions = {}): Promise<RecordedEvent[]> {
    const deadline = new Date(Date.now() + (opts.deadlineMs ?? DEFAULT_EVENT_DEADLINE_MS));
    const call: ClientReadableStream<ReadStreamResponse> = this.raw.readStream(
      ReadStreamRequest.fromPartial(req),
      metadataOf(opts),
      { deadline },
    );
    return new Promise((resolve, reject) => {
      const out: RecordedEvent[] = [];
      let failed = false;
      call.on("data", (m: ReadStreamResponse) => {
        if (m.event) out.push(m.event);
      });
      call.on("error", (e: ServiceError) => {
        failed = true;
        reject(e);
      });
      call.on("end", () => {
        if (!failed) resolve(out);
      });
    });
  }

  subscribe(req: DeepPartial<SubscribeRequest>, opts: EventCallOptions & SubscriptionOptions = {}): Subscription {
    const callOpts = opts.deadlineMs !== undefined ? { deadline: new Date(Date.now() + opts.deadlineMs) } : {};
    const call = this.raw.subscribe(SubscribeRequest.fromPartial(req), metadataOf(opts), callOpts);
    return new Subscription(call, opts);
  }

  /** LockService.Lock (for fencing tokens). */
  lock(req: DeepPartial<LockRequest>, opts: EventCallOptions = {}): Promise<LockResponse> {
    const deadline = new Date(Date.now() + (opts.deadlineMs ?? DEFAULT_EVENT_DEADLINE_MS));
    return new Promise((resolve, reject) => {
      this.locks.lock(LockRequest.fromPartial(req), metadataOf(opts), { deadline }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  /** LockService.Unlock. */
  unlock(req: DeepPartial<UnlockRequest>, opts: EventCallOptions = {}): Promise<UnlockResponse> {
    const deadline = new Date(Date.now() + (opts.deadlineMs ?? DEFAULT_EVENT_DEADLINE_MS));
    return new Promise((resolve, reject) => {
      this.locks.unlock(UnlockRequest.fromPartial(req), metadataOf(opts), { deadline }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  close(): void {
    this.raw.close();
    this.locks.close();
  }
}

export interface SubscriptionOptions {
  /** Drop each event's data after it arrives (large-volume tests); `dataBytes` still counts it. */
  dropData?: boolean;
}

/** How a subscription ended: an error status (ServiceError) or OK. */
export interface SubscriptionEnd {
  code: status;
  details: string;
  error: ServiceError | undefined;
}

export class Subscription {
  /** Events received, in arrival order. */
  readonly events: RecordedEvent[] = [];
  /** Positions of every caught_up marker received (the contract: exactly one). */
  readonly caughtUps: number[] = [];
  /** Total bytes of event data received. */
  dataBytes = 0;
  /** Settles once, with the caught_up position; rejects if the stream ends first. */
  readonly caughtUp: Promise<number>;
  /** Resolves once the stream has ended (never rejects). */
  readonly ended: Promise<SubscriptionEnd>;
  /** Set once the stream has ended. */
  end: SubscriptionEnd | undefined;
  /** The caught_up marker arrived after this many events. */
  eventsBeforeCaughtUp: number | undefined;

  private readonly waiters = new Waiters();

  constructor(
    readonly call: ClientReadableStream<SubscribeResponse>,
    opts: SubscriptionOptions = {},
  ) {
    let caughtUpResolve!: (p: number) => void;
    let caughtUpReject!: (e: Error) => void;
    this.caughtUp = new Promise<number>((resolve, reject) => {
      caughtUpResolve = resolve;
      caughtUpReject = reject;
    });
    this.caughtUp.catch(() => undefined); // observed by whoever awaits it
    let endResolve!: (e: SubscriptionEnd) => void;
    this.ended = new Promise<SubscriptionEnd>((resolve) => (endResolve = resolve));

    const finish = (end: SubscriptionEnd) => {
      if (this.end) return;
      this.end = end;
      if (this.caughtUps.length === 0) {
        caughtUpReject(new Error(`subscription ended before caught_up: ${status[end.code]} ${end.details}`));
      }
      endResolve(end);
      this.notify();
    };
    call.on("data", (m: SubscribeResponse) => {
      if (m.event) {
        this.dataBytes += m.event.data.length;
        if (opts.dropData) m.event.data = Buffer.alloc(0);
        this.events.push(m.event);
      } else if (m.caughtUp) {
        if (this.caughtUps.length === 0) {
          this.eventsBeforeCaughtUp = this.events.length;
          caughtUpResolve(m.caughtUp.position);
        }
        this.caughtUps.push(m.caughtUp.position);
      }
      this.notify();
    });
    call.on("error", (e: ServiceError) => finish({ code: e.code, details: e.details, error: e }));
    call.on("status", (s: StatusObject) => {
      if (s.code === status.OK) finish({ code: s.code, details: s.details, error: undefined });
    });
  }

  get positions(): number[] {
    return this.events.map((e) => e.position);
  }

  /** Position of the last event received (or `fallback` when none). */
  lastPosition(fallback = 0): number {
    return this.events[this.events.length - 1]?.position ?? fallback;
  }

  /**
   * Resolves once `pred` holds over what has been received; rejects if the
   * stream ends first or after `timeoutMs` (a safety net, not a timing assertion).
   */
  until(what: string, pred: (s: Subscription) => boolean, timeoutMs = 60_000): Promise<void> {
    return this.waiters
      .until(
        () => (pred(this) ? true : undefined),
        () =>
          this.end &&
          `subscription ended (${status[this.end.code]}: ${this.end.details}) before ${what} (received ${this.events.length} events)`,
        () => `subscription: no ${what} within ${timeoutMs} ms (received ${this.events.length} events)`,
        timeoutMs,
      )
      .then(() => undefined);
  }

  /** Waits until an event with position >= `position` has been received. */
  untilPosition(position: number, timeoutMs?: number): Promise<void> {
    return this.until(`position ${position}`, (s) => s.lastPosition() >= position, timeoutMs);
  }

  /** Cancels the call (the stream then ends with CANCELLED). */
  cancel(): void {
    this.call.cancel();
  }

  private notify(): void {
    this.waiters.notify();
  }
}
