/**
 * Subscription: a resumable EventService.Subscribe. It remembers the position
 * of the last event it delivered and, when the stream breaks (UNAVAILABLE:
 * server shutting down or connection lost; RESOURCE_EXHAUSTED: the consumer
 * stalled; DEADLINE_EXCEEDED; or a stream that ends by itself), subscribes
 * again from that position after a jittered backoff. Positions are store
 * revisions in commit order, so "after the last position delivered" resumes
 * without a gap, and events at or below it are dropped, so without a
 * duplicate either. It runs until closed, aborted or broken for good.
 */
import { status, type ClientReadableStream, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { backoffDelayMs, sleep, type Backoff } from "./backoff";
import { SubscribeRequest, type RecordedEvent, type SubscribeResponse } from "./gen/agentstate/v1/event";

/** What a Subscription yields: an event, or the marker that catch-up is over and delivery is live. */
export type SubscriptionMessage =
  | { kind: "event"; event: RecordedEvent }
  | {
      kind: "caughtUp";
      /** Everything up to here has been delivered. */
      position: number;
    };

/** One stream by name, or every stream whose name starts with a prefix ("" for all). */
export type SubscriptionTarget = { stream: string } | { streamPrefix: string };

/** Why and from where a Subscription resubscribes. */
export interface ReconnectInfo {
  /** The error that broke the stream (undefined: the server ended it without one). */
  error: ServiceError | undefined;
  /** Consecutive failed connections so far (1 after the first). */
  attempt: number;
  /** The position the next connection resumes after. */
  afterPosition: number;
  /** Backoff before that connection. */
  delayMs: number;
}

export interface SubscribeOptions {
  /** Deliver events with a position strictly greater than this; default 0 (from the start). */
  afterPosition?: number;
  /** Ends the subscription: the iteration then finishes (no error). */
  signal?: AbortSignal;
  /** Backoff between reconnections. Default 100 ms doubling up to 5 s, full jitter; reset once a connection delivers. */
  backoff?: Backoff;
  /** Consecutive failed connections before the last error is thrown. Default Infinity. */
  maxReconnects?: number;
  /** Request metadata of every connection. */
  metadata?: Metadata;
  /** Told before every reconnection (logging, metrics). */
  onReconnect?: (info: ReconnectInfo) => void;
}

export const SUBSCRIBE_BACKOFF: Backoff = { initialMs: 100, maxMs: 5000 };

/** Errors after which a subscription resumes from its last position rather than fail. */
export function isResumable(err: unknown): boolean {
  const code = (err as Partial<ServiceError> | null)?.code;
  return code === status.UNAVAILABLE || code === status.RESOURCE_EXHAUSTED || code === status.DEADLINE_EXCEEDED;
}

/** Opens Subscribe calls for one Subscription; closed when the Subscription ends. */
export interface SubscribeTransport {
  open(request: SubscribeRequest, metadata: Metadata | undefined): ClientReadableStream<SubscribeResponse>;
  close(): void;
}

/**
 * An async iterable of SubscriptionMessage, iterated once:
 *
 *     const sub = client.subscribe("demo", { streamPrefix: "cart-" }, { afterPosition: saved });
 *     for await (const m of sub) {
 *       if (m.kind === "event") handle(m.event);
 *       else console.log("live from", m.position);
 *     }
 *
 * `position` is the resume point (the last event delivered), to persist and
 * pass back as `afterPosition` later. A `caughtUp` comes after the catch-up
 * of every connection: once at first, and again after each reconnection.
 * Leaving the loop (`break`), `close()` or the signal ends the subscription;
 * an error that no resubscription can fix (INVALID_ARGUMENT, ...) is thrown.
 */
export class Subscription implements AsyncIterable<SubscriptionMessage> {
  private _position: number;
  private _caughtUp = false;
  private _reconnects = 0;
  private readonly closer = new AbortController();
  private readonly signal: AbortSignal;
  private iterated = false;

  constructor(
    private readonly transport: () => SubscribeTransport,
    readonly namespace: string,
    readonly target: SubscriptionTarget,
    private readonly opts: SubscribeOptions = {},
  ) {
    this._position = opts.afterPosition ?? 0;
    this.signal = opts.signal ? AbortSignal.any([this.closer.signal, opts.signal]) : this.closer.signal;
  }

  /** Position of the last event delivered (the resume point); starts at `afterPosition`. */
  get position(): number {
    return this._position;
  }

  /** True once a caughtUp has been delivered (the subscription has gone live). */
  get caughtUp(): boolean {
    return this._caughtUp;
  }

  /** Resubscriptions so far. */
  get reconnects(): number {
    return this._reconnects;
  }

  /** Ends the subscription; an iteration in progress finishes. */
  close(): void {
    this.closer.abort();
  }

  get closed(): boolean {
    return this.signal.aborted;
  }

  [Symbol.asyncIterator](): AsyncIterator<SubscriptionMessage> {
    if (this.iterated) throw new Error("a Subscription can be iterated only once; subscribe again from .position");
    this.iterated = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<SubscriptionMessage, void, undefined> {
    const signal = this.signal;
    if (signal.aborted) return;
    const transport = this.transport();
    const backoff = this.opts.backoff ?? SUBSCRIBE_BACKOFF;
    const maxReconnects = this.opts.maxReconnects ?? Infinity;
    let failures = 0;
    try {
      while (!signal.aborted) {
        const request = SubscribeRequest.fromPartial({
          namespace: this.namespace,
          ...("stream" in this.target ? { stream: this.target.stream } : { streamPrefix: this.target.streamPrefix }),
          afterPosition: this._position,
        });
        const call = transport.open(request, this.opts.metadata);
        // grpc-js emits 'error' (CANCELLED) after we cancel: never leave it unheard.
        call.on("error", () => undefined);
        const onAbort = () => call.cancel();
        signal.addEventListener("abort", onAbort, { once: true });
        let error: ServiceError | undefined;
        try {
          for await (const res of call as AsyncIterable<SubscribeResponse>) {
            failures = 0;
            if (res.event) {
              // At or below the resume point: already delivered (never twice).
              if (res.event.position <= this._position) continue;
              this._position = res.event.position;
              yield { kind: "event", event: res.event };
            } else if (res.caughtUp) {
              this._caughtUp = true;
              yield { kind: "caughtUp", position: res.caughtUp.position };
            }
          }
        } catch (err) {
          error = err as ServiceError;
        } finally {
          signal.removeEventListener("abort", onAbort);
          call.cancel();
        }
        if (signal.aborted) return;
        if (error !== undefined && !isResumable(error)) throw error;
        failures++;
        if (failures > maxReconnects) throw error ?? new Error("subscription ended by the server");
        const delayMs = backoffDelayMs(backoff, failures);
        this._reconnects++;
        this.opts.onReconnect?.({ error, attempt: failures, afterPosition: this._position, delayMs });
        try {
          await sleep(delayMs, signal);
        } catch {
          return; // closed while waiting
        }
      }
    } finally {
      transport.close();
    }
  }
}
