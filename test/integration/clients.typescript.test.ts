import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { InterceptingCall, Metadata, status, type Interceptor, type ServiceError } from "@grpc/grpc-js";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { durationFromMs } from "../../clients/typescript/src/duration";
import { LockLostError, LockNotAcquiredError } from "../../clients/typescript/src/errors";
import type { NewEvent } from "../../clients/typescript/src/events";
import type { Item } from "../../clients/typescript/src/gen/agentstate/v1/common";
import type { AppendEventRequest, RecordedEvent } from "../../clients/typescript/src/gen/agentstate/v1/event";
import type { CompareAndSetRequest } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import type { ReconnectInfo, Subscription } from "../../clients/typescript/src/Subscription";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { startCluster, type Cluster } from "../support/startCluster";

const text = (item: Item | undefined) => Buffer.from(item?.value ?? new Uint8Array()).toString("utf8");

// The TypeScript client's helpers (update, withLock, put) against two server
// replicas sharing Postgres and Redis (cache and Redlock).
describe("TypeScript client helpers: update, withLock, put against two replicas", function () {
  this.timeout(120_000);
  const NS = "tsclient";
  let cluster: Cluster;
  const client = (i: number) => cluster.clients[i % cluster.clients.length]!;

  before(async () => {
    cluster = await startCluster({ name: "tsclient", replicas: 2, redis: true });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("update(): 10 concurrent updaters x 20 increments through 2 replicas end at exactly 200", async () => {
    const increment = (cur: Item | undefined) => String(cur ? Number(text(cur)) + 1 : 1);
    await Promise.all(
      Array.from({ length: 10 }, async (_, w) => {
        for (let i = 0; i < 20; i++) {
          const r = await client(w).update(NS, "counter", increment);
          assert.equal(r.applied, true);
        }
      }),
    );
    for (const c of cluster.clients) {
      const got = await c.get({ namespace: NS, key: "counter" });
      assert.equal(text(got.item), "200");
      assert.equal(got.item?.version, 200);
    }
  });

  it("update(): fn returning undefined aborts without writing; the content type is kept", async () => {
    const c = client(0);
    await c.put(NS, "abort", "keep", { contentType: "text/plain" });
    const r = await c.update(NS, "abort", (cur) => (text(cur) === "keep" ? undefined : "changed"));
    assert.equal(r.applied, false);
    assert.equal(text(r.item), "keep");
    assert.equal((await c.get({ namespace: NS, key: "abort" })).item?.version, 1);
    const w = await c.update(NS, "abort", () => "changed");
    assert.equal(w.item?.contentType, "text/plain");
    assert.equal(w.item?.version, 2);
  });

  it("withLock(): holders across replicas never overlap; fenced read-modify-writes add up", async () => {
    let active = 0;
    let maxActive = 0;
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        const c = client(w);
        for (let r = 0; r < 5; r++) {
          await c.withLock(
            NS,
            "mutex",
            async (held) => {
              maxActive = Math.max(maxActive, ++active);
              try {
                const got = await c.get({ namespace: NS, key: "mutex/count" }, { signal: held.signal });
                await sleep(5);
                await c.put(NS, "mutex/count", String(got.found ? Number(text(got.item)) + 1 : 1), {
                  fence: held.fence,
                  signal: held.signal,
                });
              } finally {
                active--;
              }
            },
            { ttlMs: 5000, owner: `worker-${w}` },
          );
        }
      }),
    );
    assert.equal(maxActive, 1);
    assert.equal(text((await client(1).get({ namespace: NS, key: "mutex/count" })).item), "20");
  });

  it("withLock(): renews past its TTL while fn runs, then releases", async () => {
    await client(0).withLock(
      NS,
      "renewed",
      async (held) => {
        await sleep(2500); // 2.5 x TTL
        const probe = await client(1).lock({ namespace: NS, name: "renewed", ttl: durationFromMs(5000), owner: "p" });
        assert.equal(probe.acquired, false, "the lock expired although it was being renewed");
        assert.equal(probe.holderOwner, "long-job");
        assert.equal(held.signal.aborted, false);
      },
      { ttlMs: 1000, owner: "long-job" },
    );
    const after = await client(1).lock({ namespace: NS, name: "renewed", ttl: durationFromMs(5000) });
    assert.equal(after.acquired, true, "withLock did not release the lock");
    await client(1).unlock({ namespace: NS, name: "renewed", lockId: after.lockId });
  });

  it("withLock(): a failed renewal aborts fn's signal and withLock rejects with LockLostError", async () => {
    const c = client(0);
    await assert.rejects(
      c.withLock(
        NS,
        "lost",
        async (held) => {
          await c.unlock({ namespace: NS, name: "lost", lockId: held.lockId }); // behind our back
          await new Promise<void>((resolve, reject) => {
            const t = setTimeout(() => reject(new Error("fn's signal was not aborted")), 10_000);
            held.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
          });
          assert.ok(held.signal.reason instanceof LockLostError);
        },
        { ttlMs: 900 },
      ),
      LockLostError,
    );
  });

  it("withLock(): not acquired within the wait rejects with the holder's owner; fn never runs", async () => {
    const c = client(0);
    const first = await c.lock({ namespace: NS, name: "busy", ttl: durationFromMs(10_000), owner: "first" });
    assert.equal(first.acquired, true);
    try {
      const err = await c
        .withLock(NS, "busy", () => assert.fail("fn ran without the lock"), { waitMs: 200 })
        .then(
          () => assert.fail("acquired a held lock"),
          (e: unknown) => e,
        );
      assert.ok(err instanceof LockNotAcquiredError);
      assert.equal(err.holderOwner, "first");
    } finally {
      await c.unlock({ namespace: NS, name: "busy", lockId: first.lockId });
    }
  });

  it("withLock(): a write fenced with a superseded token is refused", async () => {
    const c = client(0);
    const old = await c.withLock(NS, "fenced", (held) => held.fence);
    await c.withLock(NS, "fenced", async (held) => {
      assert.ok(held.token > old.token);
      await c.put(NS, "fenced/v", "new", { fence: held.fence });
    });
    await expectGrpcError(c.put(NS, "fenced/v", "old", { fence: old }), status.FAILED_PRECONDITION, {
      reason: "FENCE_STALE",
    });
  });

  it("put(): a retry after a lost reply reuses the idempotency key, so the write happens once", async () => {
    const keys: string[] = [];
    // Lets the first CompareAndSet reach the server and commit, then replaces
    // its reply with UNAVAILABLE, as a dropped connection would.
    const dropFirstReply: Interceptor = (options, nextCall) => {
      if (!options.method_definition.path.endsWith("/CompareAndSet")) return new InterceptingCall(nextCall(options));
      let drop = false;
      return new InterceptingCall(nextCall(options), {
        sendMessage(message: CompareAndSetRequest, next) {
          keys.push(message.idempotencyKey);
          drop = keys.length === 1;
          next(message);
        },
        start(metadata, listener, next) {
          next(metadata, {
            // A non-OK status fails the call even though the reply message came.
            onReceiveStatus(st, nextStatus) {
              if (drop && st.code === status.OK) {
                nextStatus({ code: status.UNAVAILABLE, details: "reply lost (test)", metadata: new Metadata() });
              } else nextStatus(st);
            },
          });
        },
      });
    };
    const c = new AgentstateClient(cluster.servers[0]!.address, { interceptors: [dropFirstReply] });
    try {
      const r = await c.put(NS, "once", "paid", { expected: { absent: true }, backoff: { initialMs: 1, maxMs: 10 } });
      assert.equal(keys.length, 2);
      assert.ok(keys[0] !== "" && keys[0] === keys[1], `attempts carried keys ${JSON.stringify(keys)}`);
      assert.equal(r.applied, true);
      assert.equal(r.replayed, true, "the retry was applied again instead of replayed");
      assert.equal(r.item?.version, 1);
      assert.equal((await client(1).get({ namespace: NS, key: "once" })).item?.version, 1);
      // A new put is a new logical write, with a new key.
      const again = await c.put(NS, "once", "again");
      assert.equal(again.replayed, false);
      assert.equal(again.item?.version, 2);
      assert.notEqual(keys[2], keys[0]);
    } finally {
      c.close();
    }
  });

  it("every call carries a deadline, and the lock wait extends the Lock call's", async () => {
    const deadlines: { path: string; ms: number }[] = [];
    const record: Interceptor = (options, nextCall) => {
      const d = options.deadline;
      deadlines.push({ path: options.method_definition.path, ms: d instanceof Date ? d.getTime() - Date.now() : NaN });
      return new InterceptingCall(nextCall(options));
    };
    const c = new AgentstateClient(cluster.servers[0]!.address, { interceptors: [record], deadlineMs: 5000 });
    try {
      await c.put(NS, "dl", "1");
      await c.update(NS, "dl", () => "2");
      await c.withLock(NS, "dl", () => undefined, { ttlMs: 1000, waitMs: 3000 });
      assert.ok(deadlines.length >= 5);
      for (const d of deadlines) assert.ok(d.ms > 0 && d.ms <= 8000, `${d.path}: deadline in ${d.ms} ms`);
      const lock = deadlines.find((d) => d.path.endsWith("/Lock"));
      assert.ok(lock && lock.ms > 5000, "the Lock call's deadline covers its wait");
    } finally {
      c.close();
    }
  });
});

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Iterates a Subscription in the background, keeping what it yields, in order. */
class Consumer {
  readonly events: RecordedEvent[] = [];
  /** Every message as "e:<position>" or "c:<position>", in arrival order. */
  readonly log: string[] = [];
  readonly done: Promise<void>;
  error: unknown;
  private stopAfter = Infinity;
  /** Resolves when the consumer should pause (see pauseAt), for `pauseMs`. */
  pauseAt = Infinity;
  pauseMs = 0;

  constructor(readonly sub: Subscription) {
    this.done = (async () => {
      try {
        for await (const m of sub) {
          if (m.kind === "event") {
            this.events.push(m.event);
            this.log.push(`e:${m.event.position}`);
            if (this.events.length === this.pauseAt) await sleep(this.pauseMs);
            if (this.events.length >= this.stopAfter) break;
          } else this.log.push(`c:${m.position}`);
        }
      } catch (err) {
        this.error = err;
      }
    })();
  }

  /** Leaves the loop (break) once `n` events in all have been delivered. */
  breakAfter(n: number): void {
    this.stopAfter = n;
  }

  until(what: string, pred: (c: Consumer) => boolean, timeoutMs = 30_000): Promise<true> {
    return eventually(
      what,
      async () => {
        if (this.error !== undefined) throw this.error;
        return pred(this) || undefined;
      },
      { timeoutMs, intervalMs: 20 },
    );
  }

  untilPosition(position: number, timeoutMs = 30_000): Promise<true> {
    return this.until(`position ${position} (at ${this.sub.position})`, () => this.sub.position >= position, timeoutMs);
  }
}

/** Appends batches of 1..3 small events to `stream` through `c` until stopped; records the acknowledged ids in order. */
class Appender {
  readonly ids: string[] = [];
  lastPosition = 0;
  private stopped = false;
  readonly done: Promise<void>;

  constructor(c: AgentstateClient, ns: string, stream: string, maxBatches = Infinity) {
    this.done = (async () => {
      for (let n = 0; n < maxBatches && !this.stopped; n++) {
        const batch = Array.from({ length: 1 + (n % 3) }, (_, i) => ({ type: "tick", data: `${n}.${i}` }));
        const r = await c.appendEvent(ns, stream, batch, "any", { deadlineMs: 30_000 });
        assert.equal(r.applied, true);
        this.ids.push(...r.eventIds);
        this.lastPosition = r.position + batch.length - 1;
        await sleep(5);
      }
    })();
    this.done.catch(() => undefined); // reported by stop()
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

function assertIncreasing(events: RecordedEvent[], what: string): void {
  for (let i = 1; i < events.length; i++) {
    assert.ok(
      events[i]!.position > events[i - 1]!.position,
      `${what}: position ${events[i]!.position} after ${events[i - 1]!.position}`,
    );
  }
}

// The TypeScript client's event helpers (appendEvent, readStream, subscribe)
// against real server replicas sharing Postgres; the last tests add replicas
// (one with a short stall limit) and stop and restart one.
describe("TypeScript client events: appendEvent, readStream, subscribe", function () {
  this.timeout(180_000);
  const NS = "tsevents";
  let cluster: Cluster;
  const client = (i: number) => cluster.clients[i % cluster.clients.length]!;
  const ev = (type: string, data = ""): NewEvent => ({ type, data, metadata: { by: "test" } });

  before(async () => {
    cluster = await startCluster({ name: "tsevents", replicas: 2 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("appendEvent(): expected versions; a mismatch answers applied=false with the current version", async () => {
    const c = client(0);
    const first = await c.appendEvent(NS, "exp", [ev("a", "1"), ev("b", "2")], "no_stream");
    assert.equal(first.applied, true);
    assert.equal(first.firstVersion, 1);
    assert.equal(first.currentVersion, 2);
    assert.equal(first.replayed, false);
    assert.equal(first.eventIds.length, 2);
    for (const id of first.eventIds) assert.match(id, UUID_V4);
    assert.ok(first.position > 0 && (first.header?.revision ?? 0) >= first.position);

    const again = await c.appendEvent(NS, "exp", [ev("c")], "no_stream");
    assert.deepEqual([again.applied, again.currentVersion], [false, 2]);
    const stale = await c.appendEvent(NS, "exp", [ev("c")], 1);
    assert.deepEqual([stale.applied, stale.currentVersion], [false, 2]);
    const onVersion = await client(1).appendEvent(NS, "exp", [ev("c", "3")], 2);
    assert.deepEqual([onVersion.applied, onVersion.firstVersion, onVersion.currentVersion], [true, 3, 3]);
    const exists = await c.appendEvent(NS, "exp", [ev("d", "4")], "exists");
    assert.deepEqual([exists.applied, exists.currentVersion], [true, 4]);
    const missing = await c.appendEvent(NS, "exp-none", [ev("d")], "exists");
    assert.deepEqual([missing.applied, missing.currentVersion], [false, 0]);
    const any = await c.appendEvent(NS, "exp", [ev("e", "5")], "any");
    assert.deepEqual([any.applied, any.firstVersion], [true, 5]);

    const read = await collect(c.readStream(NS, "exp"));
    assert.deepEqual(
      read.map((e) => [e.streamVersion, e.type, Buffer.from(e.data).toString(), e.metadata.by]),
      [
        [1, "a", "1", "test"],
        [2, "b", "2", "test"],
        [3, "c", "3", "test"],
        [4, "d", "4", "test"],
        [5, "e", "5", "test"],
      ],
    );
    assert.deepEqual(
      read.slice(0, 2).map((e) => e.id),
      first.eventIds,
      "the generated ids are the stored ones",
    );
    // Bad input is the server's INVALID_ARGUMENT, not retried.
    await expectGrpcError(c.appendEvent(NS, "exp", [], "any"), status.INVALID_ARGUMENT, { field: "events" });
    await expectGrpcError(c.appendEvent(NS, "exp", [ev("x")], 0), status.INVALID_ARGUMENT);
  });

  it("appendEvent(): a retry after a lost reply re-sends the same ids: replayed, appended once", async () => {
    const sent: string[][] = [];
    const dropFirstReply: Interceptor = (options, nextCall) => {
      if (!options.method_definition.path.endsWith("/AppendEvent")) return new InterceptingCall(nextCall(options));
      let drop = false;
      return new InterceptingCall(nextCall(options), {
        sendMessage(message: AppendEventRequest, next) {
          sent.push(message.events.map((e) => e.id));
          drop = sent.length === 1;
          next(message);
        },
        start(metadata, listener, next) {
          next(metadata, {
            onReceiveStatus(st, nextStatus) {
              if (drop && st.code === status.OK) {
                nextStatus({ code: status.UNAVAILABLE, details: "reply lost (test)", metadata: new Metadata() });
              } else nextStatus(st);
            },
          });
        },
      });
    };
    const c = new AgentstateClient(cluster.servers[0]!.address, { interceptors: [dropFirstReply] });
    try {
      const r = await c.appendEvent(NS, "idem", [ev("paid"), ev("shipped")], "no_stream", {
        backoff: { initialMs: 1, maxMs: 10 },
      });
      assert.equal(sent.length, 2);
      assert.deepEqual(sent[0], sent[1], "the retry carried other ids");
      assert.deepEqual(sent[0], r.eventIds);
      assert.equal(r.applied, true);
      assert.equal(r.replayed, true, "the retry was appended again instead of replayed");
      assert.deepEqual([r.firstVersion, r.currentVersion], [1, 2]);
      const read = await collect(client(1).readStream(NS, "idem"));
      assert.deepEqual(
        read.map((e) => e.id),
        r.eventIds,
      );
      assert.equal(read[0]!.position, r.position);

      // The same ids sent again by the caller (e.g. after a restart): a replay too.
      const explicit = read.map((e) => ({ id: e.id, type: e.type, data: e.data, metadata: e.metadata }));
      const resent = await client(1).appendEvent(NS, "idem", explicit, "any");
      assert.deepEqual([resent.applied, resent.replayed, resent.position], [true, true, r.position]);
      // A new call is a new append, with new ids.
      const next = await c.appendEvent(NS, "idem", [ev("paid")], 2);
      assert.deepEqual([next.applied, next.replayed, next.firstVersion], [true, false, 3]);
      assert.ok(!r.eventIds.includes(next.eventIds[0]!));
      assert.equal((await collect(c.readStream(NS, "idem"))).length, 3);
    } finally {
      c.close();
    }
  });

  it("appendEvent(): fenced with a lock's token; a superseded token is refused", async () => {
    const c = client(0);
    const old = await c.withLock(NS, "stream-lock", async (held) => {
      const r = await c.appendEvent(NS, "fenced", [ev("under-lock")], "any", { fence: held.fence });
      assert.equal(r.applied, true);
      return held.fence;
    });
    await c.withLock(NS, "stream-lock", () => undefined);
    await expectGrpcError(
      c.appendEvent(NS, "fenced", [ev("stale")], "any", { fence: old }),
      status.FAILED_PRECONDITION,
      {
        reason: "FENCE_STALE",
      },
    );
  });

  it("readStream(): forwards and backwards, from a version, with a limit; NOT_FOUND for no stream", async () => {
    const c = client(1);
    const events = Array.from({ length: 25 }, (_, i) => ev("n", String(i + 1)));
    await c.appendEvent(NS, "read", events, "no_stream");
    const versions = async (opts: Parameters<AgentstateClient["readStream"]>[2]) =>
      (await collect(c.readStream(NS, "read", opts))).map((e) => e.streamVersion);
    const all = await collect(c.readStream(NS, "read"));
    assert.deepEqual(
      all.map((e) => Buffer.from(e.data).toString()),
      events.map((e) => e.data),
    );
    assertIncreasing(all, "forwards");
    assert.deepEqual(
      await versions({ direction: "backwards" }),
      Array.from({ length: 25 }, (_, i) => 25 - i),
    );
    assert.deepEqual(await versions({ fromVersion: 20 }), [20, 21, 22, 23, 24, 25]);
    assert.deepEqual(await versions({ fromVersion: 5, limit: 3 }), [5, 6, 7]);
    assert.deepEqual(await versions({ direction: "backwards", fromVersion: 5 }), [5, 4, 3, 2, 1]);
    assert.deepEqual(await versions({ direction: "backwards", limit: 2 }), [25, 24]);
    // Leaving the loop early cancels the call; the client stays usable.
    let n = 0;
    for await (const e of c.readStream(NS, "read")) {
      assert.equal(e.streamVersion, ++n);
      if (n === 3) break;
    }
    assert.equal(n, 3);
    await expectGrpcError(collect(c.readStream(NS, "read-none")), status.NOT_FOUND);
    // A signal cancels the read with its reason.
    const ac = new AbortController();
    const reason = new Error("stop reading");
    await assert.rejects(
      (async () => {
        for await (const _e of c.readStream(NS, "read", { signal: ac.signal })) ac.abort(reason);
      })(),
      (err) => err === reason,
    );
  });

  it("every event call carries a deadline except Subscribe, which lives until closed", async () => {
    const deadlines = new Map<string, number>();
    const record: Interceptor = (options, nextCall) => {
      const d = options.deadline;
      const path = options.method_definition.path;
      deadlines.set(path.slice(path.lastIndexOf("/") + 1), d instanceof Date ? d.getTime() - Date.now() : Number(d));
      return new InterceptingCall(nextCall(options));
    };
    const c = new AgentstateClient(cluster.servers[0]!.address, { interceptors: [record], deadlineMs: 5000 });
    try {
      await c.appendEvent(NS, "dl", [ev("x")], "any");
      await collect(c.readStream(NS, "dl"));
      const sub = new Consumer(c.subscribe(NS, { stream: "dl" }));
      await sub.until("caught up", (s) => s.sub.caughtUp);
      sub.sub.close();
      await sub.done;
      for (const m of ["AppendEvent", "ReadStream"]) {
        const ms = deadlines.get(m);
        assert.ok(ms !== undefined && ms > 0 && ms <= 5000, `${m}: deadline in ${ms} ms`);
      }
      const sms = deadlines.get("Subscribe");
      assert.ok(sms === undefined || !Number.isFinite(sms), `Subscribe has a deadline in ${sms} ms`);
    } finally {
      c.close();
    }
  });

  it("subscribe(): catch-up in position order, one caughtUp, then live events; close() ends the loop", async () => {
    const w = client(0);
    const a1 = await w.appendEvent(NS, "cart-1", [ev("item"), ev("item"), ev("item")], "no_stream");
    await w.appendEvent(NS, "other-1", [ev("not-under-the-prefix")], "any");
    const b1 = await w.appendEvent(NS, "cart-2", [ev("item")], "no_stream");
    const before = [...a1.eventIds, ...b1.eventIds];

    const sub = client(1).subscribe(NS, { streamPrefix: "cart-" });
    assert.equal(sub.position, 0);
    const con = new Consumer(sub);
    await con.until("caught up", (s) => s.sub.caughtUp);
    assert.deepEqual(
      con.events.map((e) => e.id),
      before,
    );
    assertIncreasing(con.events, "catch-up");
    assert.ok(con.events.every((e) => e.stream.startsWith("cart-")));
    assert.equal(sub.position, b1.position);
    assert.deepEqual(con.log.slice(-1), [`c:${b1.position}`], "caughtUp follows the catch-up, at its last position");

    // Live: appended after caughtUp, through the other replica.
    const live = await w.appendEvent(NS, "cart-1", [ev("live"), ev("live")], 3);
    await w.appendEvent(NS, "other-1", [ev("not-under-the-prefix")], "any");
    const live2 = await w.appendEvent(NS, "cart-3", [ev("live")], "no_stream");
    await con.untilPosition(live2.position);
    assert.deepEqual(
      con.events.map((e) => e.id),
      [...before, ...live.eventIds, ...live2.eventIds],
    );
    assert.equal(con.log.filter((l) => l.startsWith("c:")).length, 1, "one caughtUp");
    assert.equal(sub.reconnects, 0);

    sub.close();
    await con.done;
    assert.equal(con.error, undefined, "close() ends the iteration without an error");

    // A single stream from a position: only what follows it.
    const one = new Consumer(client(0).subscribe(NS, { stream: "cart-1" }, { afterPosition: a1.position + 1 }));
    await one.until("caught up", (s) => s.sub.caughtUp);
    assert.deepEqual(
      one.events.map((e) => e.id),
      [a1.eventIds[2], ...live.eventIds],
    );
    one.sub.close();
    await one.done;
  });

  it("subscribe(): a signal ends it; breaking out of the loop ends it; an unfixable error is thrown", async () => {
    const ac = new AbortController();
    const con = new Consumer(client(0).subscribe(NS, { stream: "exp" }, { signal: ac.signal }));
    await con.until("caught up", (s) => s.sub.caughtUp);
    ac.abort();
    await con.done;
    assert.equal(con.error, undefined);
    assert.equal(con.sub.closed, true);

    const brk = new Consumer(client(0).subscribe(NS, { stream: "exp" }));
    brk.breakAfter(2);
    await brk.done;
    assert.deepEqual(
      brk.events.map((e) => e.streamVersion),
      [1, 2],
    );

    const bad = client(0).subscribe("Not A Namespace!", { streamPrefix: "" });
    await assert.rejects(collect(bad), (err: ServiceError) => err.code === status.INVALID_ARGUMENT);
    assert.equal(bad.reconnects, 0);
    assert.throws(() => bad[Symbol.asyncIterator](), /only once/);
  });

  it("subscribe(): cancel and resubscribe from the last position while appends go on: no gap, no duplicate", async () => {
    const stream = "cont";
    const writer = new Appender(client(0), NS, stream, 60);
    const first = new Consumer(client(1).subscribe(NS, { stream }));
    first.breakAfter(15);
    await first.done;
    assert.equal(first.error, undefined);
    assert.equal(first.events.length, 15);
    const resumeFrom = first.sub.position;
    assert.equal(resumeFrom, first.events[14]!.position);

    const second = new Consumer(client(0).subscribe(NS, { stream }, { afterPosition: resumeFrom }));
    await writer.done;
    await second.untilPosition(writer.lastPosition);
    second.sub.close();
    await second.done;

    const seen = [...first.events, ...second.events];
    assertIncreasing(seen, "first then resumed");
    const stored = await collect(client(1).readStream(NS, stream));
    assert.equal(stored.length, writer.ids.length);
    assert.deepEqual(
      seen.map((e) => e.id),
      stored.map((e) => e.id),
      "first + resumed subscription vs the stream",
    );
    assert.deepEqual(
      stored.map((e) => e.id),
      writer.ids,
    );
  });

  it("subscribe(): a stalled consumer (RESOURCE_EXHAUSTED) is resumed from its last position; other calls are not held up", async () => {
    const stall = await cluster.addReplica({ AGENTSTATE_SUBSCRIBER_STALL_MS: "1000" });
    const stream = "stall";
    // 47 MiB in 500 KiB events: far more than the transport buffers hold.
    const ids: string[] = [];
    for (let b = 0; b < 12; b++) {
      const batch = Array.from({ length: 8 }, () => ({ type: "blob", data: randomBytes(500 * 1024) }));
      const r = await client(0).appendEvent(NS, stream, batch, "any", { deadlineMs: 60_000 });
      ids.push(...r.eventIds);
    }
    const infos: ReconnectInfo[] = [];
    const c = stall.client;
    const con = new Consumer(c.subscribe(NS, { stream }, { onReconnect: (i) => infos.push(i) }));
    con.pauseAt = 2;
    con.pauseMs = 5000;
    await con.until("2 events", (s) => s.events.length >= 2);
    // While the subscription's reader sleeps, the same client's other calls go through.
    const got = await c.get({ namespace: NS, key: "probe" });
    assert.equal(got.found, false);
    await con.untilPosition(
      (await collect(c.readStream(NS, stream, { direction: "backwards", limit: 1 })))[0]!.position,
      90_000,
    );
    con.sub.close();
    await con.done;
    assert.ok(
      infos.some((i) => i.error?.code === status.RESOURCE_EXHAUSTED),
      `expected a resubscription after RESOURCE_EXHAUSTED, got ${JSON.stringify(infos.map((i) => i.error?.code))}`,
    );
    assertIncreasing(con.events, "stalled subscriber");
    assert.deepEqual(
      con.events.map((e) => e.id),
      ids,
    );
  });

  it("subscribe(): survives its server's shutdown (UNAVAILABLE) and crash (connection lost), resuming where it was", async () => {
    // The subscriber's server is stopped, then restarted on the same port (a
    // fresh process), then killed and restarted again; the writer uses another
    // replica throughout.
    const first = (await cluster.addReplica()).server;
    const address = first.address;
    const c = new AgentstateClient(address);
    const writer = new Appender(client(1), NS, "failover");
    const infos: ReconnectInfo[] = [];
    try {
      const con = new Consumer(
        c.subscribe(
          NS,
          { stream: "failover" },
          { onReconnect: (i) => infos.push(i), backoff: { initialMs: 20, maxMs: 500 } },
        ),
      );
      await con.until("10 events", (x) => x.events.length >= 10);
      await first.stop(); // SIGTERM: the server ends the subscription with UNAVAILABLE
      const n0 = con.events.length;
      const second = (await cluster.addReplica({ AGENTSTATE_PORT: String(first.port) })).server;
      assert.equal(second.address, address);
      await con.until("10 more events", (x) => x.events.length >= n0 + 10);
      const r0 = con.sub.reconnects;
      assert.ok(r0 >= 1, "no resubscription after the shutdown");
      await second.kill("SIGKILL"); // the connection is lost
      const n1 = con.events.length;
      await cluster.addReplica({ AGENTSTATE_PORT: String(first.port) });
      await con.until("10 more events", (x) => x.events.length >= n1 + 10);
      assert.ok(con.sub.reconnects > r0, "no resubscription after the crash");
      await writer.stop();
      await con.untilPosition(writer.lastPosition);
      con.sub.close();
      await con.done;
      assert.equal(con.error, undefined);
      assert.ok(
        infos.every((i) => i.error === undefined || i.error.code === status.UNAVAILABLE),
        `resubscribed after ${JSON.stringify(infos.map((i) => i.error?.code))}`,
      );
      assertIncreasing(con.events, "across restarts");
      const stored = await collect(client(1).readStream(NS, "failover"));
      assert.deepEqual(
        con.events.map((e) => e.id),
        stored.map((e) => e.id),
        "subscriber vs the stream",
      );
      assert.deepEqual(
        stored.map((e) => e.id),
        writer.ids,
      );
    } finally {
      await writer.stop().catch(() => undefined);
      c.close();
    }
  });
});
