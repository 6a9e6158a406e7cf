/**
 * ChangeFeed: Subscribe's delivery, with one reader per namespace instead of
 * one per subscriber.
 *
 * - A subscriber first catches up by itself: it pages through the store from
 *   its own position (readAfter), paced by its sink, as long as it is behind.
 * - Once caught up it is a member of its namespace's tail: one reader per
 *   namespace (per replica) that reads the namespace's new events once, in
 *   position order, when woken (a ChangeNotifier hint: an append committed
 *   here or on another replica) and fans them out in memory to every member
 *   whose target (stream, or stream prefix) they match. Each member keeps
 *   its own queue and position, so a slow one holds up nobody.
 * - The fallback poll is one statement per replica per interval for all
 *   namespaces with a tail (latestPositions): a tail reads only when its
 *   namespace has events past what it has read. Idle subscribers cost no
 *   statements of their own.
 * - A member whose queue passes its bound (a slow reader, or a catch-up that
 *   takes long while events keep coming) is dropped from the queue's
 *   delivery: it leaves the tail, reads from the store by itself again from
 *   its own position, and rejoins once caught up. Memory per subscriber is
 *   bounded by `queueEvents` and `queueBytes`.
 * - A tail exists while it has members: the last to leave stops it.
 * - Every read of the store (catch-up pages, tail pages, the tail's start and
 *   the poll) takes a permit of one semaphore of `readsInFlight`
 *   (AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT, a share of the Postgres pool) for
 *   the statement only: two thousand Subscribes opened at once wait their turn
 *   in memory instead of queueing on the pool ahead of every other call
 *   (issue 17). A subscriber whose call ends while it waits leaves the line.
 * - A read's fan-out wakes its members `wakeBatch` per turn of the event
 *   loop: a thousand subscribers of one stream are a thousand stream writes,
 *   and in one turn none of them would leave before the last was made, nor
 *   would any other call be served meanwhile.
 * - A live member whose loop is parked (its queue empty, nothing pending) and
 *   whose sink can write at once (`eventNow`) is written to by the fan-out
 *   itself: its queued events are delivered in order in the tail's turn,
 *   without a wake-up, promise and turn of its loop per event. Only when the
 *   transport pushes back (or the call ends, or the queue overflowed) is its
 *   loop woken, and it waits for that write before anything else.
 *
 * No gap, no duplicate: positions are revisions of the namespace, taken in
 * commit order, so the events visible at any moment are all those up to some
 * position (events.ts). A subscriber joins the tail before its last read of
 * the store: every event the tail read before the join was committed before
 * that read, which therefore returns it; every event the tail reads after the
 * join is queued for the member. Draining the queue skips what the
 * subscriber's own reads already delivered (position at or below its own).
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import type { ChangeNotifier, EventStore, RecordedEvent, SubscriptionSink, SubscriptionTarget } from "./events";
import { Semaphore } from "./semaphore";

export interface ChangeFeedOptions {
  /** Events per read. */
  pageSize: number;
  /** Every tail re-checks the store at least this often without a wake-up. */
  pollMs: number;
  /** Most events a member may have queued before it must read by itself. */
  queueEvents: number;
  /** Most bytes of event data a member may have queued before it must read by itself. */
  queueBytes: number;
  /** Most members woken (and so written to) per turn of the event loop by one read's fan-out. */
  wakeBatch: number;
  /** Reads of the store in flight at once (the rest wait their turn in memory). */
  readsInFlight: number;
  /** Told each failed read or poll of a tail (it is retried at the next wake-up or poll). */
  onError?: (err: unknown) => void;
  /** Told the number of tails (namespaces read) whenever it changes. */
  onReaders?: (count: number) => void;
}

/** A subscriber that has joined its namespace's tail. */
class Member {
  readonly queue: RecordedEvent[] = [];
  bytes = 0;
  /** Set when the queue passed its bound: it was emptied and takes no more. */
  overflowed = false;
  /** Position of the last event delivered to the subscriber (by its loop or by the fan-out). */
  last: number;
  /** A write the fan-out made that the transport has not taken yet: the loop waits for it first. */
  pending: Promise<void> | undefined;
  private waker: (() => void) | undefined;

  constructor(
    readonly target: SubscriptionTarget,
    last: number,
    private readonly sink: SubscriptionSink,
    private readonly signal: AbortSignal,
  ) {
    this.last = last;
  }

  matches(e: RecordedEvent): boolean {
    return this.target.kind === "stream" ? e.stream === this.target.stream : e.stream.startsWith(this.target.prefix);
  }

  /**
   * Queues `e`; past the bounds, drops the queue and marks the member
   * overflowed. Wakes nobody: the tail wakes the members it offered to (wakeAll).
   */
  offer(e: RecordedEvent, maxEvents: number, maxBytes: number): void {
    if (this.overflowed) return;
    this.queue.push(e);
    this.bytes += e.data.length;
    if (this.queue.length > maxEvents || this.bytes > maxBytes) {
      this.overflowed = true;
      this.queue.length = 0;
      this.bytes = 0;
    }
  }

  take(): RecordedEvent | undefined {
    const e = this.queue.shift();
    if (e !== undefined) this.bytes -= e.data.length;
    return e;
  }

  /**
   * Resolves once something is queued (or the member overflowed), or the
   * member is woken otherwise (its subscriber's signal aborts: subscribe
   * listens to it once per membership, not once per wait).
   */
  wait(): Promise<void> {
    if (this.queue.length > 0 || this.overflowed || this.pending !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.waker = resolve;
    });
  }

  /**
   * After the tail queued events for it: a parked loop's queue is delivered
   * here, in order, through `eventNow`, until empty (the loop stays parked) or
   * until a write is pending, the call ends or the queue overflowed (the loop
   * is woken to deal with it). A loop that is not parked finds the queue itself.
   */
  wake(): void {
    const w = this.waker;
    if (w === undefined) return;
    const now = this.sink.eventNow;
    if (now !== undefined) {
      for (;;) {
        if (this.overflowed || this.signal.aborted) break;
        const e = this.take();
        if (e === undefined) return; // all delivered: the loop stays parked
        if (e.position <= this.last) continue; // the subscriber's own read delivered it
        let p: Promise<void> | undefined;
        try {
          p = now.call(this.sink, e);
        } catch (err) {
          p = Promise.reject(err);
        }
        this.last = e.position;
        if (p !== undefined) {
          this.pending = p;
          break;
        }
      }
    }
    this.waker = undefined;
    w();
  }
}

/** One namespace's shared reader. */
class Tail {
  readonly members = new Set<Member>();
  /** Every event at or below it has been read and fanned out. */
  position = 0;
  stopped = false;
  /** Aborted when the tail stops: a read of its own still waiting its turn gives it up. */
  readonly halt = new AbortController();
  private reading = false;
  private again = false;

  /** Resolves once `position` is the namespace's latest at the tail's start (set by the feed). */
  ready: Promise<void> = Promise.resolve();

  constructor(
    private readonly feed: ChangeFeed,
    readonly namespace: string,
  ) {}

  /** Reads the new events now, or once more after the read in progress. */
  kick(): void {
    if (this.stopped) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    void this.read();
  }

  private async read(): Promise<void> {
    this.reading = true;
    try {
      await this.ready;
      do {
        this.again = false;
        for (;;) {
          const page = await this.feed.readPage(this.namespace, this.position, this.halt.signal);
          if (this.stopped) return;
          const offered = new Set<Member>();
          for (const e of page) {
            this.position = e.position;
            for (const m of this.members)
              if (m.matches(e)) {
                this.feed.offer(m, e);
                offered.add(m);
              }
          }
          await this.feed.wakeAll(offered);
          // Pages are bounded by count and bytes: only an empty page means "all read".
          if (page.length === 0) break;
        }
      } while (this.again && !this.stopped);
    } catch (err) {
      this.feed.failed(err); // retried at the next wake-up or poll
    } finally {
      this.reading = false;
    }
  }
}

export class ChangeFeed {
  private readonly tails = new Map<string, Tail>();
  private unwatch: (() => void) | undefined;
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private readonly reads: Semaphore;

  constructor(
    private readonly store: EventStore,
    private readonly notifier: ChangeNotifier,
    private readonly opts: ChangeFeedOptions,
  ) {
    this.reads = new Semaphore(opts.readsInFlight);
  }

  /** Reads of the store in flight (at most `readsInFlight`). */
  get readsInUse(): number {
    return this.reads.inUse;
  }

  /**
   * Runs `read` holding a read permit (for the statement only, never while
   * delivering); undefined, without reading, when `signal` aborts first.
   */
  private async gated<T>(signal: AbortSignal, read: () => Promise<T>): Promise<T | undefined> {
    const release = await this.reads.take(signal);
    if (release === undefined) return undefined;
    try {
      return await read();
    } finally {
      release();
    }
  }

  /** Namespaces with a tail (a reader) on this replica. */
  get readers(): number {
    return this.tails.size;
  }

  /**
   * Catch-up then live for one subscriber, until `signal` aborts (or the sink
   * or a read of its own throws): tells the sink once it has caught up, then
   * delivers every later event of its target, in position order.
   */
  async subscribe(
    namespace: string,
    target: SubscriptionTarget,
    afterPosition: number,
    sink: SubscriptionSink,
    signal: AbortSignal,
  ): Promise<void> {
    let last = afterPosition;
    let live = false;
    while (!signal.aborted) {
      const member = new Member(target, last, sink, signal);
      const tail = await this.join(namespace, member, signal);
      if (tail === undefined) return; // the call ended while the tail started
      const onAbort = () => member.wake();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        // The store by itself, from the subscriber's own position, until an empty page.
        for (;;) {
          const page = await this.gated(signal, () =>
            this.store.readAfter(namespace, target, member.last, this.opts.pageSize),
          );
          if (page === undefined) return; // the call ended while it waited its turn
          for (const e of page) {
            if (signal.aborted) return;
            await sink.event(e);
            member.last = e.position;
          }
          if (page.length === 0) break;
        }
        if (!live) {
          live = true;
          await sink.caughtUp(member.last);
        }
        // Then from the tail, until the queue overflows (then from the store again).
        for (;;) {
          const p = member.pending;
          if (p !== undefined) {
            // The fan-out's write, not yet taken by the transport: wait for it first.
            member.pending = undefined;
            await p;
            continue;
          }
          if (signal.aborted || member.overflowed) break;
          const e = member.take();
          if (e === undefined) {
            await member.wait();
            continue;
          }
          if (e.position <= member.last) continue; // the subscriber's own read delivered it
          await sink.event(e);
          member.last = e.position;
        }
      } finally {
        last = member.last;
        signal.removeEventListener("abort", onAbort);
        this.leave(tail, member);
      }
    }
  }

  /**
   * Adds `member` to its namespace's tail (started, and brought to the latest
   * position, if new); undefined, having left, when `signal` aborts first.
   */
  private async join(namespace: string, member: Member, signal: AbortSignal): Promise<Tail | undefined> {
    let tail = this.tails.get(namespace);
    if (tail === undefined) {
      const t = new Tail(this, namespace);
      t.ready = this.gated(t.halt.signal, () => this.store.latestPositions([namespace])).then((latest) => {
        t.position = latest?.get(namespace) ?? 0;
      });
      tail = t;
      this.tails.set(namespace, t);
      this.opts.onReaders?.(this.tails.size);
      this.start();
    }
    tail.members.add(member);
    let onAbort: (() => void) | undefined;
    try {
      const ended = await Promise.race([
        tail.ready.then(() => false),
        new Promise<boolean>((resolve) => {
          onAbort = () => resolve(true);
          signal.addEventListener("abort", onAbort, { once: true });
          if (signal.aborted) resolve(true);
        }),
      ]);
      if (ended) {
        this.leave(tail, member);
        return undefined;
      }
    } catch (err) {
      this.leave(tail, member);
      throw err;
    } finally {
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }
    return tail;
  }

  private leave(tail: Tail, member: Member): void {
    tail.members.delete(member);
    if (tail.members.size > 0 || this.tails.get(tail.namespace) !== tail) return;
    tail.stopped = true;
    tail.halt.abort();
    this.tails.delete(tail.namespace);
    this.opts.onReaders?.(this.tails.size);
    if (this.tails.size === 0) this.stop();
  }

  /** Listens for wake-ups and polls while any tail exists. */
  private start(): void {
    if (this.unwatch !== undefined) return;
    this.unwatch = this.notifier.watch((namespace) => {
      if (namespace === undefined) for (const t of this.tails.values()) t.kick();
      else this.tails.get(namespace)?.kick();
    });
    this.poller = setInterval(() => void this.poll(), this.opts.pollMs);
    this.poller.unref();
  }

  private stop(): void {
    this.unwatch?.();
    this.unwatch = undefined;
    clearInterval(this.poller);
    this.poller = undefined;
  }

  /** One statement for every tail: kicks those whose namespace has events past what they read. */
  private async poll(): Promise<void> {
    if (this.polling || this.tails.size === 0) return;
    this.polling = true;
    try {
      const latest = await this.gated(NEVER, () => this.store.latestPositions([...this.tails.keys()]));
      for (const [namespace, position] of latest ?? []) {
        const t = this.tails.get(namespace);
        if (t !== undefined && position > t.position) t.kick();
      }
    } catch (err) {
      this.failed(err);
    } finally {
      this.polling = false;
    }
  }

  /** @internal A tail's read of the events after `after`, the whole namespace (none once `signal` aborts). */
  readPage(namespace: string, after: number, signal: AbortSignal): Promise<RecordedEvent[]> {
    return this.gated(signal, () => this.store.readAfter(namespace, ALL_STREAMS, after, this.opts.pageSize)).then(
      (page) => page ?? [],
    );
  }

  /** @internal */
  offer(member: Member, e: RecordedEvent): void {
    member.offer(e, this.opts.queueEvents, this.opts.queueBytes);
  }

  /**
   * @internal Wakes `members` (those a read just queued events for), at most
   * `wakeBatch` per turn of the event loop: each batch's deliveries are
   * written, and the transport sends them (it flushes once per turn), before
   * the next batch's are made, so the first subscribers' events go out while
   * the server still writes the others', and other calls are served between
   * batches instead of after a thousand writes.
   */
  async wakeAll(members: Iterable<Member>): Promise<void> {
    let n = 0;
    for (const m of members) {
      if (n > 0 && n % this.opts.wakeBatch === 0) await nextTurn();
      m.wake();
      n++;
    }
  }

  /** @internal */
  failed(err: unknown): void {
    this.opts.onError?.(err);
  }
}

const ALL_STREAMS: SubscriptionTarget = { kind: "prefix", prefix: "" };
/** The signal of the poll's reads: it never gives up its turn. */
const NEVER = new AbortController().signal;
