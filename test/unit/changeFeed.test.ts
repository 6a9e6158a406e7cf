import * as assert from "node:assert/strict";
import { setImmediate as tick } from "node:timers/promises";
import { ChangeFeed } from "../../src/domain/changeFeed";
import type {
  ChangeNotifier,
  EventStore,
  RecordedEvent,
  SubscriptionSink,
  SubscriptionTarget,
} from "../../src/domain/events";

/** Events in memory, positions per namespace as Postgres gives them (each read answers on a later tick). */
class MemStore implements EventStore {
  readonly events: (RecordedEvent & { namespace: string })[] = [];
  private readonly revisions = new Map<string, number>();
  readonly calls = { readAfter: 0, latestPositions: 0 };

  add(namespace: string, stream: string, n = 1): number {
    let rev = this.revisions.get(namespace) ?? 0;
    for (let i = 0; i < n; i++) {
      rev++;
      const version = this.events.filter((e) => e.namespace === namespace && e.stream === stream).length + 1;
      this.events.push({
        namespace,
        stream,
        id: `${namespace}/${rev}`,
        type: "t",
        data: Buffer.from(String(rev)),
        metadata: {},
        streamVersion: version,
        position: rev,
        createTime: new Date(0),
      });
    }
    this.revisions.set(namespace, rev);
    return rev;
  }

  /** A change that takes a position but is no event (a KV write). */
  skip(namespace: string): void {
    this.revisions.set(namespace, (this.revisions.get(namespace) ?? 0) + 1);
  }

  append(): never {
    throw new Error("not used");
  }
  readStream(): never {
    throw new Error("not used");
  }
  streamVersion(): never {
    throw new Error("not used");
  }

  async readAfter(namespace: string, target: SubscriptionTarget, after: number, limit: number) {
    this.calls.readAfter++;
    await tick();
    return this.events
      .filter((e) => e.namespace === namespace && e.position > after && matches(target, e.stream))
      .slice(0, limit);
  }

  async latestPositions(namespaces: readonly string[]) {
    this.calls.latestPositions++;
    await tick();
    const m = new Map<string, number>();
    for (const ns of namespaces) {
      let last = 0;
      for (const e of this.events) if (e.namespace === ns) last = e.position;
      m.set(ns, last);
    }
    return m;
  }
}

function matches(t: SubscriptionTarget, stream: string): boolean {
  return t.kind === "stream" ? t.stream === stream : stream.startsWith(t.prefix);
}

class MemNotifier implements ChangeNotifier {
  readonly watchers = new Set<(ns: string | undefined) => void>();
  watch(onChange: (ns: string | undefined) => void): () => void {
    this.watchers.add(onChange);
    return () => this.watchers.delete(onChange);
  }
  fire(ns: string | undefined): void {
    for (const w of this.watchers) w(ns);
  }
}

/** A subscriber: what it received, and a sink that may hold each event until released. */
class Sub {
  readonly got: RecordedEvent[] = [];
  caughtUpAt: number | undefined;
  readonly abort = new AbortController();
  done: Promise<void> | undefined;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  constructor(
    readonly namespace: string,
    readonly target: SubscriptionTarget,
    readonly after: number,
  ) {}

  /** Holds every delivery until resume(). */
  pause(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  resume(): void {
    this.open?.();
    this.gate = undefined;
  }

  readonly sink: SubscriptionSink = {
    event: async (e) => {
      this.got.push(e);
      if (this.gate) await this.gate;
    },
    caughtUp: async (p) => {
      this.caughtUpAt ??= p;
    },
  };

  start(feed: ChangeFeed): this {
    this.done = feed.subscribe(this.namespace, this.target, this.after, this.sink, this.abort.signal);
    return this;
  }

  stop(): Promise<void> {
    this.resume();
    this.abort.abort();
    return this.done!;
  }
}

/** Waits (ticks) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 20000; i++) {
    if (cond()) return;
    await tick();
  }
  assert.fail(`never: ${what}`);
}

function expected(store: MemStore, s: Sub): number[] {
  return store.events
    .filter((e) => e.namespace === s.namespace && e.position > s.after && matches(s.target, e.stream))
    .map((e) => e.position);
}

function assertExact(store: MemStore, s: Sub, what: string): void {
  assert.deepEqual(
    s.got.map((e) => e.position),
    expected(store, s),
    `${what}: every event of its target after its position, once, in order`,
  );
}

const OPTS = { pageSize: 3, pollMs: 60_000, queueEvents: 5, queueBytes: 1 << 20, wakeBatch: 7, readsInFlight: 2 };

describe("domain ChangeFeed: one reader per namespace, fanned out in memory", () => {
  it("many subscribers with mixed streams, prefixes and resume positions each get exactly their events, in order", async () => {
    const store = new MemStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, OPTS);
    for (let i = 0; i < 20; i++) store.add("ns", `s${i % 4}`);
    store.add("other", "s0", 5);
    const subs: Sub[] = [];
    for (let i = 0; i < 40; i++) {
      const target: SubscriptionTarget =
        i % 3 === 0 ? { kind: "prefix", prefix: i % 2 ? "s" : "s1" } : { kind: "stream", stream: `s${i % 4}` };
      subs.push(new Sub(i % 5 === 0 ? "other" : "ns", target, i % 7).start(feed));
    }
    // Appends land while subscribers are still catching up, some with positions that are no events.
    for (let round = 0; round < 30; round++) {
      store.add("ns", `s${round % 5}`, 1 + (round % 2));
      if (round % 4 === 0) store.skip("ns");
      if (round % 6 === 0) store.add("other", "s1");
      notifier.fire("ns");
      notifier.fire("other");
      await tick();
    }
    for (const s of subs) await until(() => s.got.length === expected(store, s).length, "delivered");
    // Nothing more arrives later (no duplicate).
    notifier.fire(undefined);
    for (let i = 0; i < 50; i++) await tick();
    subs.forEach((s, i) => assertExact(store, s, `subscriber ${i}`));
    for (const s of subs) assert.notEqual(s.caughtUpAt, undefined);
    assert.equal(feed.readers, 2);
    await Promise.all(subs.map((s) => s.stop()));
    assert.equal(feed.readers, 0, "the last subscriber to leave stops its namespace's reader");
    assert.equal(notifier.watchers.size, 0, "no reader: no longer watching");
  });

  it("a subscriber that joins mid-flow gets the backlog by itself, then the shared tail, without gap or duplicate", async () => {
    const store = new MemStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, OPTS);
    const early = new Sub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    await until(() => early.caughtUpAt !== undefined, "early caught up");
    for (let i = 0; i < 40; i++) {
      store.add("ns", `s${i % 2}`);
      notifier.fire("ns");
      if (i === 17) new Sub("ns", { kind: "stream", stream: "s1" }, 3).start(feed);
      await tick();
    }
    const late = new Sub("ns", { kind: "stream", stream: "s0" }, 10).start(feed);
    store.add("ns", "s0", 4);
    notifier.fire("ns");
    await until(() => late.got.length === expected(store, late).length, "late delivered");
    await until(() => early.got.length === expected(store, early).length, "early delivered");
    assertExact(store, late, "late");
    assertExact(store, early, "early");
    await Promise.all([early.stop(), late.stop()]);
  });

  it("a slow subscriber overflows its queue, reads by itself, rejoins, and misses nothing; the others are not held up", async () => {
    const store = new MemStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, OPTS);
    const slow = new Sub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    const fast = new Sub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    await until(() => slow.caughtUpAt !== undefined && fast.caughtUpAt !== undefined, "caught up");
    slow.pause();
    for (let i = 0; i < 30; i++) {
      store.add("ns", "s");
      notifier.fire("ns");
      await tick();
    }
    await until(() => fast.got.length === 30, "fast delivered while slow is stuck");
    assert.ok(slow.got.length <= 1, "slow is held on its first event");
    slow.resume();
    await until(() => slow.got.length === 30, "slow delivered");
    assertExact(store, slow, "slow");
    assertExact(store, fast, "fast");
    await Promise.all([slow.stop(), fast.stop()]);
  });

  it("a wake-up costs the namespace's reads once, whatever the number of subscribers", async () => {
    const counts: { readAfter: number; latestPositions: number }[] = [];
    for (const n of [1, 200]) {
      const store = new MemStore();
      const notifier = new MemNotifier();
      const feed = new ChangeFeed(store, notifier, OPTS);
      store.add("ns", "s", 2);
      const subs = Array.from({ length: n }, (_, i) =>
        new Sub("ns", { kind: "stream", stream: `s${i}` }, 0).start(feed),
      );
      for (const s of subs) await until(() => s.caughtUpAt !== undefined, "caught up");
      for (let i = 0; i < 20; i++) await tick();
      store.calls.readAfter = 0;
      store.calls.latestPositions = 0;
      store.add("ns", "s"); // nobody's stream: nothing to deliver
      notifier.fire("ns");
      for (let i = 0; i < 50; i++) await tick();
      counts.push({ ...store.calls });
      await Promise.all(subs.map((s) => s.stop()));
    }
    // The new event's page, then the empty page that says it was the last.
    assert.deepEqual(counts, [
      { readAfter: 2, latestPositions: 0 },
      { readAfter: 2, latestPositions: 0 },
    ]);
  });
  it("a fan-out wakes its subscribers a batch per turn of the event loop, and each still gets every event once, in order", async () => {
    const store = new MemStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, OPTS); // wakeBatch 7
    const subs = Array.from({ length: 30 }, (_, i) =>
      new Sub("ns", i % 2 ? { kind: "stream", stream: "s" } : { kind: "prefix", prefix: "" }, 0).start(feed),
    );
    for (const s of subs) await until(() => s.caughtUpAt !== undefined, "caught up");
    for (let i = 0; i < 20; i++) await tick();
    // Turns of the event loop (immediates) counted while one event is fanned out to 30.
    let turns = 0;
    let counting = true;
    const count = () => {
      if (!counting) return;
      turns++;
      setImmediate(count);
    };
    store.add("ns", "s");
    notifier.fire("ns");
    setImmediate(count);
    await until(() => subs.every((s) => s.got.length === 1), "delivered to all");
    counting = false;
    // 30 subscribers, 7 per turn: at least 4 more turns than waking all at once would take.
    assert.ok(turns >= 4, `${turns} turns of the event loop passed while 30 subscribers were woken 7 at a time`);
    // More events, several pages (pageSize 3), each to every subscriber once, in order.
    for (let i = 0; i < 10; i++) store.add("ns", i % 2 ? "s" : "t");
    notifier.fire("ns");
    for (const s of subs) await until(() => s.got.length === expected(store, s).length, "delivered");
    notifier.fire(undefined);
    for (let i = 0; i < 50; i++) await tick();
    subs.forEach((s, i) => assertExact(store, s, `subscriber ${i}`));
    await Promise.all(subs.map((s) => s.stop()));
  });
});

/** A MemStore that counts its reads in flight and can hold them until released. */
class CountingStore extends MemStore {
  inFlight = 0;
  maxInFlight = 0;
  private held: Promise<void> | undefined;
  private releaseHeld: (() => void) | undefined;

  hold(): void {
    this.held = new Promise((r) => (this.releaseHeld = r));
  }
  release(): void {
    this.releaseHeld?.();
    this.held = undefined;
  }

  private async counted<T>(read: () => Promise<T>): Promise<T> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.held) await this.held;
      return await read();
    } finally {
      this.inFlight--;
    }
  }
  override readAfter(namespace: string, target: SubscriptionTarget, after: number, limit: number) {
    return this.counted(() => super.readAfter(namespace, target, after, limit));
  }
  override latestPositions(namespaces: readonly string[]) {
    return this.counted(() => super.latestPositions(namespaces));
  }
}

describe("domain ChangeFeed: reads of the store in flight (AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT)", () => {
  it("never more than readsInFlight reads at once, however many subscribers catch up; each still gets every event", async () => {
    const store = new CountingStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, OPTS); // readsInFlight 2
    for (const ns of ["a", "b", "c"]) store.add(ns, "s", 10);
    const subs = Array.from({ length: 60 }, (_, i) =>
      new Sub(["a", "b", "c"][i % 3]!, { kind: "prefix", prefix: "" }, 0).start(feed),
    );
    for (let round = 0; round < 10; round++) {
      store.add("a", "s");
      notifier.fire("a");
      await tick();
    }
    for (const s of subs) await until(() => s.got.length === expected(store, s).length, "delivered");
    subs.forEach((s, i) => assertExact(store, s, `subscriber ${i}`));
    assert.ok(store.maxInFlight <= OPTS.readsInFlight, `${store.maxInFlight} reads at once`);
    assert.equal(store.maxInFlight, OPTS.readsInFlight, "the permits were used");
    await Promise.all(subs.map((s) => s.stop()));
    assert.equal(feed.readsInUse, 0);
  });

  it("a subscriber whose call ends while it waits its turn leaves the line at once, without reading", async () => {
    const store = new CountingStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, { ...OPTS, readsInFlight: 1 });
    store.add("ns", "s", 4);
    // The tail's start (latestPositions) and then the first catch-up take the only permit in turn; hold them.
    store.hold();
    const first = new Sub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    const waiting = new Sub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    await until(() => store.inFlight === 1, "a read in flight");
    for (let i = 0; i < 20; i++) await tick();
    assert.equal(store.inFlight, 1, "the others wait for the permit, not on the store");
    const reads = store.calls.readAfter;
    let ended = false;
    void waiting.stop().then(() => (ended = true));
    await until(() => ended, "the waiting subscriber ended while the read it waited behind is still held");
    assert.equal(store.inFlight, 1);
    store.release();
    await until(() => first.caughtUpAt !== undefined, "the first caught up");
    assert.deepEqual(waiting.got, [], "the subscriber that left read nothing");
    assert.ok(store.calls.readAfter >= reads);
    // The tail started: now one waiting for the permit behind another's catch-up read.
    store.hold();
    const reading = new Sub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    await until(() => store.inFlight === 1, "a catch-up read in flight");
    const queued = new Sub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    for (let i = 0; i < 20; i++) await tick();
    const before = store.calls.readAfter;
    let left = false;
    void queued.stop().then(() => (left = true));
    await until(() => left, "the queued subscriber ended while the catch-up read ahead of it is still held");
    store.release();
    await until(() => reading.caughtUpAt !== undefined, "the reading one caught up");
    assert.deepEqual(queued.got, [], "the subscriber that left read nothing");
    await reading.stop();
    assert.ok(store.calls.readAfter - before >= 1);
    await first.stop();
    assert.equal(feed.readsInUse, 0, "every permit came back");
  });
});

/**
 * A subscriber whose sink can write at once (eventNow), like Subscribe's:
 * each write is taken at once, or held (the transport pushing back) until
 * released; what it received, and by which path.
 */
class NowSub extends Sub {
  /** Deliveries through eventNow (the fan-out's) and through event (the subscriber's own loop). */
  readonly via = { now: 0, loop: 0 };
  /** Holds the next writes (eventNow returns a promise, event's promise waits) until flow(). */
  private blocked: Promise<void> | undefined;
  private unblock: (() => void) | undefined;
  /** Writes made while a previous one was still held: the transport's pushback was not honoured. */
  overrun = 0;
  private holding = false;

  block(): void {
    this.blocked = new Promise((r) => (this.unblock = r));
  }
  flow(): void {
    this.unblock?.();
    this.blocked = undefined;
  }

  private write(e: RecordedEvent): Promise<void> | undefined {
    if (this.holding) this.overrun++;
    this.got.push(e);
    const b = this.blocked;
    if (b === undefined) return undefined;
    this.holding = true;
    return b.then(() => {
      this.holding = false;
    });
  }

  override readonly sink: SubscriptionSink = {
    event: async (e) => {
      this.via.loop++;
      await this.write(e);
    },
    eventNow: (e) => {
      this.via.now++;
      return this.write(e);
    },
    caughtUp: async (p) => {
      this.caughtUpAt ??= p;
    },
  };

  override stop(): Promise<void> {
    this.flow();
    return super.stop();
  }
}

describe("domain ChangeFeed: the fan-out writes to live subscribers itself (eventNow)", () => {
  it("live subscribers get every event once, in order, written by the fan-out without a turn of their own loop", async () => {
    const store = new MemStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, OPTS); // pageSize 3, wakeBatch 7
    store.add("ns", "s", 4);
    const subs = Array.from({ length: 30 }, (_, i) =>
      new NowSub("ns", i % 3 ? { kind: "stream", stream: "s" } : { kind: "prefix", prefix: "" }, i % 5).start(feed),
    );
    for (const s of subs) await until(() => s.caughtUpAt !== undefined, "caught up");
    const loop = subs.map((s) => s.via.loop);
    for (let round = 0; round < 20; round++) {
      store.add("ns", round % 4 ? "s" : "t", 1 + (round % 3));
      notifier.fire("ns");
      await tick();
    }
    for (const s of subs) await until(() => s.got.length === expected(store, s).length, "delivered");
    notifier.fire(undefined);
    for (let i = 0; i < 50; i++) await tick();
    subs.forEach((s, i) => assertExact(store, s, `subscriber ${i}`));
    subs.forEach((s, i) =>
      assert.equal(s.via.loop, loop[i], `subscriber ${i}: once live, every event came from the fan-out (eventNow)`),
    );
    assert.ok(subs.every((s) => s.via.now > 0));
    await Promise.all(subs.map((s) => s.stop()));
    assert.equal(feed.readers, 0);
  });

  it("a write the transport has not taken holds that subscriber's next ones until it is; the others flow on", async () => {
    const store = new MemStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, { ...OPTS, queueEvents: 50 });
    const held = new NowSub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    const free = new NowSub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    await until(() => held.caughtUpAt !== undefined && free.caughtUpAt !== undefined, "caught up");
    held.block();
    for (let i = 0; i < 12; i++) {
      store.add("ns", "s");
      notifier.fire("ns");
      await tick();
    }
    await until(() => free.got.length === 12, "the free one got everything");
    for (let i = 0; i < 50; i++) await tick();
    assert.equal(held.got.length, 1, "the held one got the first event, then nothing while it is not taken");
    held.flow();
    await until(() => held.got.length === 12, "the held one got the rest once its write was taken");
    assert.equal(held.overrun, 0, "never a write while the previous one was held");
    assertExact(store, held, "held");
    assertExact(store, free, "free");
    await Promise.all([held.stop(), free.stop()]);
  });

  it("a held subscriber still overflows, reads by itself, rejoins, and misses nothing", async () => {
    const store = new MemStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, OPTS); // queueEvents 5
    const slow = new NowSub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    await until(() => slow.caughtUpAt !== undefined, "caught up");
    slow.block();
    for (let i = 0; i < 30; i++) {
      store.add("ns", "s");
      notifier.fire("ns");
      await tick();
    }
    slow.flow();
    await until(() => slow.got.length === 30, "delivered");
    notifier.fire(undefined);
    for (let i = 0; i < 50; i++) await tick();
    assertExact(store, slow, "slow");
    assert.ok(slow.via.loop > 0, "after the overflow it read by itself");
    assert.equal(slow.overrun, 0);
    await slow.stop();
  });

  it("a subscriber whose call ends is not written to by the fan-out, and leaves", async () => {
    const store = new MemStore();
    const notifier = new MemNotifier();
    const feed = new ChangeFeed(store, notifier, OPTS);
    const s = new NowSub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    const other = new NowSub("ns", { kind: "prefix", prefix: "" }, 0).start(feed);
    await until(() => s.caughtUpAt !== undefined && other.caughtUpAt !== undefined, "caught up");
    s.abort.abort();
    store.add("ns", "s");
    notifier.fire("ns");
    await s.done;
    await until(() => other.got.length === 1, "the other got it");
    assert.deepEqual(s.got, []);
    await other.stop();
    assert.equal(feed.readers, 0);
  });
});
