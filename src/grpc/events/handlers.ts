/**
 * gRPC handlers for agentstate.v1.EventService: AppendEvent (unary),
 * ReadStream and Subscribe (server streaming, paged from the event store,
 * paced by the reader through `send`). Same four steps as every handler:
 * decode (codec.ts), call the domain, (errors mapped by the call pipeline),
 * stamp the revision.
 */
import type { Limits } from "../../domain/limits";
import { ChangeFeed } from "../../domain/changeFeed";
import type { ChangeNotifier, EventStore, RecordedEvent } from "../../domain/events";
import { StreamSlots } from "../../domain/streamSlots";
import { StreamNotFoundError } from "../../errors/errors";
import type { EventServiceServer, ReadStreamResponse, SubscribeResponse } from "../../gen/agentstate/v1/event";
import { decodeAppend, decodeReadStream, decodeSubscribe, recordedEventToPb } from "./codec";
import { serverStream } from "../pipeline/serverStream";
import { writeOptions, type CallEnv, type StreamContext } from "../pipeline/context";
import { unary } from "../pipeline/unary";

/**
 * Subscribers a fan-out writes to per turn of the event loop (ChangeFeed
 * wakeAll): small enough that the first ones' events leave while the rest are
 * written and other calls get a turn, large enough that the extra turns cost
 * nothing measurable (BENCHMARKS.md, issue 17).
 */
const SUBSCRIBERS_WOKEN_PER_TURN = 100;

export interface EventHandlerOptions {
  pageSize: number;
  pollMs: number;
  stallMs: number;
  /** Bytes of event data a live subscriber may have queued before it reads from the store by itself. */
  queueBytes: number;
  /** Reads of the event store by Subscribe in flight at once (AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT). */
  readsInFlight: number;
  /** Told each failed read of a namespace's shared reader (retried at the next wake-up or poll). */
  onFeedError?: (err: unknown) => void;
  /** Told the number of namespaces with a shared reader whenever it changes (metrics). */
  onReaders?: (count: number) => void;
  /** Told +1 when a subscription opens and -1 when it ends (metrics). */
  onSubscribers?: (delta: number) => void;
}

export function eventHandlers(
  store: EventStore,
  notifier: ChangeNotifier,
  limits: Limits,
  opts: EventHandlerOptions,
  env: CallEnv,
): EventServiceServer {
  const subscribers = new StreamSlots({
    what: "Subscribe streams",
    perServer: limits.maxSubscribers,
    perServerSetting: "AGENTSTATE_MAX_SUBSCRIBERS",
    perNamespace: limits.maxSubscribersPerNamespace,
    perNamespaceSetting: "AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE",
  });
  const feed = new ChangeFeed(store, notifier, {
    pageSize: opts.pageSize,
    pollMs: opts.pollMs,
    queueEvents: opts.pageSize,
    queueBytes: opts.queueBytes,
    wakeBatch: SUBSCRIBERS_WOKEN_PER_TURN,
    readsInFlight: opts.readsInFlight,
    onError: opts.onFeedError,
    onReaders: opts.onReaders,
  });
  // One response object per event, shared by every subscriber it is fanned
  // out to, so the server encodes it once (encodeOnce in server.ts).
  const responses = new WeakMap<RecordedEvent, SubscribeResponse>();
  const responseOf = (e: RecordedEvent): SubscribeResponse => {
    let r = responses.get(e);
    if (r === undefined) {
      r = { event: recordedEventToPb(e) };
      responses.set(e, r);
    }
    return r;
  };
  const readers = new StreamSlots({
    what: "ReadStream calls",
    perServer: limits.maxReadStreams,
    perServerSetting: "AGENTSTATE_MAX_READ_STREAMS",
  });
  return {
    appendEvent: unary("AppendEvent", env, async (req, ctx) => {
      const cmd = decodeAppend(req, limits);
      const o = await store.append(cmd, writeOptions(ctx));
      return {
        header: { revision: o.revision },
        applied: o.applied,
        currentVersion: o.currentVersion,
        firstVersion: o.firstVersion,
        position: o.firstPosition,
        replayed: o.replayed,
      };
    }),
    readStream: serverStream("ReadStream", env, opts.stallMs, async (req, ctx) => {
      const q = decodeReadStream(req, limits);
      const release = readers.acquire(q.namespace);
      try {
        await readStream(q, ctx);
      } finally {
        release();
      }
    }),
    subscribe: serverStream("Subscribe", env, opts.stallMs, async (req, ctx) => {
      const q = decodeSubscribe(req, limits);
      const release = subscribers.acquire(q.namespace);
      opts.onSubscribers?.(1);
      try {
        await feed.subscribe(
          q.namespace,
          q.target,
          q.afterPosition,
          {
            event: (e) => ctx.send(responseOf(e)),
            eventNow: (e) => ctx.sendNow(responseOf(e)),
            caughtUp: (position) => ctx.send({ caughtUp: { position } }),
          },
          ctx.longWaitSignal,
        );
      } finally {
        opts.onSubscribers?.(-1);
        release();
      }
    }),
  };

  async function readStream(
    q: ReturnType<typeof decodeReadStream>,
    ctx: StreamContext<ReadStreamResponse>,
  ): Promise<void> {
    const current = await store.streamVersion(q.namespace, q.stream);
    if (current === 0) throw new StreamNotFoundError(q.stream);
    let next = q.fromVersion !== 0 ? q.fromVersion : q.direction === "forwards" ? 1 : current;
    let left = q.limit === 0 ? Infinity : q.limit;
    while (left > 0 && !ctx.signal.aborted) {
      const page = await store.readStream(q.namespace, q.stream, next, q.direction, Math.min(opts.pageSize, left));
      for (const e of page) await ctx.send({ event: recordedEventToPb(e) });
      left -= page.length;
      const last = page[page.length - 1];
      if (!last) break; // pages are size-bounded: only an empty page ends the stream
      next = q.direction === "forwards" ? last.streamVersion + 1 : last.streamVersion - 1;
      if (next < 1) break;
    }
  }
}
