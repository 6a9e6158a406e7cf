/**
 * EventService.Subscribe against real Postgres and real server processes over
 * real gRPC: catch-up then live on another replica than the writers, prefix
 * and single-stream targets, resuming from a position (also after kill -9 of
 * the subscriber's server), an append that commits after later ones, a slow
 * subscriber (bounded server memory, RESOURCE_EXHAUSTED after a stall, resume),
 * and SIGTERM ending a subscription with UNAVAILABLE.
 */
import * as assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { status } from "@grpc/grpc-js";
import { Client } from "pg";
import type { EventData } from "../../clients/typescript/src/gen/agentstate/v1/event";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { EventClient, type RecordedEvent, type Subscription } from "../support/eventClient";
import { blockedBy } from "../support/blockedBy";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { pgQuery } from "../support/pgQuery";
import type { ServerProcess } from "../support/ServerProcess";
import { startCluster, type Cluster } from "../support/startCluster";

function ev(type = "e", data: string | Buffer = ""): EventData {
  return { id: randomUUID(), type, data: typeof data === "string" ? Buffer.from(data) : data, metadata: {} };
}

function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  assert.ok(x !== undefined, `no element ${i} (length ${xs.length})`);
  return x;
}

/** An event as acknowledged to an appender. */
interface Acked {
  id: string;
  stream: string;
  position: number;
  version: number;
}

/**
 * Appenders writing through one client: one loop per stream (batches of 1..3
 * events, expected any) and optionally a key-value writer (its revisions make
 * event positions non-dense). Records every acknowledged event.
 */
class Load {
  readonly acked: Acked[] = [];
  private stopped = false;
  private failure: unknown;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly client: EventClient,
    private readonly namespace: string,
    private readonly streams: string[],
    private readonly kv?: AgentstateClient,
  ) {}

  start(): this {
    this.loops = this.streams.map((stream, s) => this.appendLoop(stream, s));
    if (this.kv) this.loops.push(this.kvLoop(this.kv));
    for (const l of this.loops) {
      l.catch((e: unknown) => {
        this.failure ??= e;
        this.stopped = true;
      });
    }
    return this;
  }

  private async appendLoop(stream: string, s: number): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      const batch = Array.from({ length: 1 + ((n + s) % 3) }, (_, i) => ev(`t${s}`, `${stream}#${n}.${i}`));
      const r = await this.client.appendEvent({
        namespace: this.namespace,
        stream,
        expected: { any: true },
        events: batch,
      });
      assert.equal(r.applied, true);
      this.record(stream, batch, r.position, r.firstVersion);
    }
  }

  private async kvLoop(kv: AgentstateClient): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      await kv.compareAndSet({
        namespace: this.namespace,
        key: "noise",
        expected: { any: true },
        value: Buffer.from(String(n)),
      });
      await sleep(5);
    }
  }

  record(stream: string, batch: EventData[], position: number, firstVersion: number): void {
    batch.forEach((e, i) => this.acked.push({ id: e.id, stream, position: position + i, version: firstVersion + i }));
  }

  /** Waits until `n` events have been acknowledged; fails at once if an appender failed. */
  async untilAcked(n: number): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (this.acked.length < n) {
      if (this.failure !== undefined) throw this.failure;
      if (Date.now() > deadline) throw new Error(`only ${this.acked.length} of ${n} events acknowledged in 60 s`);
      await sleep(10);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** Acknowledged events of streams starting with `prefix`, in position order. */
  under(prefix: string): Acked[] {
    return this.acked.filter((e) => e.stream.startsWith(prefix)).sort((x, y) => x.position - y.position);
  }
}

interface DbEvent {
  position: number;
  stream: string;
  version: number;
  id: string;
}

async function dbEventsUnder(url: string, namespace: string, prefix: string): Promise<DbEvent[]> {
  const rows = await pgQuery<Record<string, string>>(
    url,
    `SELECT e.position::text AS p, e.stream, e.stream_version::text AS v, e.event_id::text AS id FROM events e
     WHERE e.namespace = $1 AND starts_with(e.stream, $2) ORDER BY e.position`,
    [namespace, prefix],
  );
  return rows.map((r) => ({ position: Number(r.p), stream: String(r.stream), version: Number(r.v), id: String(r.id) }));
}

const key = (e: { position: number; stream: string; id: string }) => `${e.position}|${e.stream}|${e.id}`;

/** Strictly increasing positions (so no duplicates), per-stream versions increasing by exactly 1. */
function assertOrdered(events: RecordedEvent[], what: string): void {
  const lastVersion = new Map<string, number>();
  for (const [i, e] of events.entries()) {
    if (i > 0) {
      const prev = events[i - 1]!.position;
      assert.ok(e.position > prev, `${what}: position ${e.position} at index ${i} follows ${prev}`);
    }
    const lv = lastVersion.get(e.stream);
    if (lv !== undefined) {
      assert.equal(e.streamVersion, lv + 1, `${what}: ${e.stream} version ${e.streamVersion} follows ${lv}`);
    }
    lastVersion.set(e.stream, e.streamVersion);
  }
}

/** Asserts `received` is exactly `expected` (same events, same order). */
function assertExactly(
  received: RecordedEvent[],
  expected: { position: number; stream: string; id: string }[],
  what: string,
): void {
  const got = received.map(key);
  const want = expected.map(key);
  if (got.length !== want.length || got.some((k, i) => k !== want[i])) {
    const gotSet = new Set(got);
    const wantSet = new Set(want);
    const missing = want.filter((k) => !gotSet.has(k));
    const extra = got.filter((k) => !wantSet.has(k));
    assert.fail(
      `${what}: received ${got.length} events, expected ${want.length}; missing ${missing.length} (first: ${missing.slice(0, 5).join(", ")}), unexpected ${extra.length} (first: ${extra.slice(0, 5).join(", ")})`,
    );
  }
}

/** True while a server's append waits on a stream's row lock. */
function memoryKb(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const num = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN);
  return { rss: num("VmRSS"), hwm: num("VmHWM") };
}

function pidOf(s: ServerProcess): number {
  assert.ok(s.pid !== undefined);
  return s.pid;
}

describe("EventService.Subscribe (Postgres, 2+ replicas)", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let a: EventClient;
  let b: EventClient;
  const subs: Subscription[] = [];
  const extraClients: EventClient[] = [];

  const track = (s: Subscription) => {
    subs.push(s);
    return s;
  };

  before(async () => {
    cluster = await startCluster({
      name: "events_subscribe",
      replicas: 2,
      // Room for appends held on a row lock by the tests.
      env: { AGENTSTATE_STATEMENT_TIMEOUT_MS: "20000", AGENTSTATE_CACHE_MARKER_TTL_MS: "60000" },
    });
    a = new EventClient(at(cluster.servers, 0).address);
    b = new EventClient(at(cluster.servers, 1).address);
  });
  afterEach(() => {
    for (const s of subs.splice(0)) if (!s.end) s.cancel();
  });
  after(async () => {
    for (const c of [a, b, ...extraClients]) c?.close();
    await cluster?.stop();
  });

  it("a prefix subscriber started mid-load on replica B gets every acknowledged event once, in position order, including an append held on a row lock while later ones committed", async () => {
    const NS = "sub-load";
    const url = cluster.databaseUrl;
    const first = [ev("first")];
    const r0 = await a.appendEvent({ namespace: NS, stream: "load/held", expected: { noStream: true }, events: first });
    const load = new Load(a, NS, ["load/0", "load/1", "load/2", "load/3", "other/0"], at(cluster.clients, 0));
    load.record("load/held", first, r0.position, r0.firstVersion);
    load.start();
    const blocker = new Client({ connectionString: url });
    blocker.on("error", () => undefined);
    await blocker.connect();
    let sub: Subscription;
    try {
      await load.untilAcked(60);
      sub = track(b.subscribe({ namespace: NS, streamPrefix: "load/", afterPosition: 0 }));

      // Hold the row lock of "load/held": an append to it is stuck while the others commit.
      const blockerPid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
      await blocker.query("BEGIN");
      await blocker.query("SELECT version FROM streams WHERE namespace = $1 AND stream = $2 FOR UPDATE", [
        NS,
        "load/held",
      ]);
      const heldBatch = [ev("held"), ev("held"), ev("held")];
      const held = a.appendEvent({ namespace: NS, stream: "load/held", expected: { version: 1 }, events: heldBatch });
      await eventually(
        "the append to load/held to wait on the row lock",
        async () => (await blockedBy(url, blockerPid)) > 0,
      );
      const startedAt = load.acked.length;
      await load.untilAcked(startedAt + 60);
      // The subscriber is live and has delivered events that committed after the held append began.
      await sub.caughtUp;
      const passed = Math.max(...load.acked.slice(startedAt).map((e) => e.position));
      await sub.untilPosition(passed);
      await blocker.query("COMMIT");
      const h = await held;
      assert.equal(h.applied, true);
      assert.ok(h.position > passed, "the held append committed after events the subscriber had already seen");
      load.record("load/held", heldBatch, h.position, h.firstVersion);
      await load.untilAcked(load.acked.length + 40);
    } finally {
      await blocker.end().catch(() => undefined);
      await load.stop();
    }
    // A last event marks the end: everything before it must have arrived, nothing twice.
    const endBatch = [ev("end")];
    const end = await a.appendEvent({
      namespace: NS,
      stream: "load/zz-end",
      expected: { noStream: true },
      events: endBatch,
    });
    load.record("load/zz-end", endBatch, end.position, end.firstVersion);
    await sub.untilPosition(end.position);

    const expected = load.under("load/");
    assert.ok(expected.length > 100, `a real load (${expected.length} events)`);
    assertOrdered(sub.events, "subscriber");
    assertExactly(sub.events, expected, "subscriber vs acknowledged");
    assert.ok(
      sub.events.every((e) => e.stream.startsWith("load/")),
      "nothing outside the prefix",
    );
    const truth = await dbEventsUnder(cluster.databaseUrl, NS, "load/");
    assertExactly(sub.events, truth, "subscriber vs SELECT ... ORDER BY position");
    assert.deepEqual(
      sub.events.map((e) => e.streamVersion),
      truth.map((e) => e.version),
    );
    assert.equal(sub.caughtUps.length, 1, "caught_up is sent once");
    assert.ok((sub.eventsBeforeCaughtUp ?? 0) > 0, "the subscriber started mid-load: it caught up on earlier events");
    const cu = at(sub.caughtUps, 0);
    const catchUp = sub.events.slice(0, sub.eventsBeforeCaughtUp);
    assert.equal(cu, catchUp[catchUp.length - 1]!.position, "caught_up carries the last position delivered");
    assert.equal(sub.end, undefined, "the subscription is still open");
  });

  it("a single-stream subscription gets only that stream; after_position resumes exactly after the given position", async () => {
    const NS = "sub-single";
    const posOf: Record<string, number[]> = { x: [], y: [] };
    const idsOf: Record<string, string[]> = { x: [], y: [] };
    const append = async (stream: "x" | "y", n: number) => {
      const batch = Array.from({ length: n }, () => ev(stream));
      const r = await (stream === "x" ? a : b).appendEvent({
        namespace: NS,
        stream,
        expected: { any: true },
        events: batch,
      });
      batch.forEach((e, i) => {
        posOf[stream]!.push(r.position + i);
        idsOf[stream]!.push(e.id);
      });
    };
    for (let i = 0; i < 6; i++) {
      await append("x", 1 + (i % 2));
      await append("y", 2);
    }
    const sx = track(b.subscribe({ namespace: NS, stream: "x", afterPosition: 0 }));
    const cu = await sx.caughtUp;
    assert.equal(cu, posOf.x![posOf.x!.length - 1], "caught up at the stream's last position");
    assert.equal(sx.eventsBeforeCaughtUp, posOf.x!.length);
    // Live: only x's new events.
    await append("y", 3);
    await append("x", 2);
    await append("y", 1);
    await append("x", 1);
    await sx.untilPosition(posOf.x![posOf.x!.length - 1]!);
    assert.deepEqual(
      sx.events.map((e) => e.id),
      idsOf.x,
    );
    assert.deepEqual(
      sx.events.map((e) => e.streamVersion),
      idsOf.x!.map((_, i) => i + 1),
    );
    assert.ok(sx.events.every((e) => e.stream === "x"));

    // Resume from positions in the middle: exactly the events after them.
    const allX = sx.events;
    for (const k of [0, 3, 6]) {
      const after = at(allX, k).position;
      const s = track(a.subscribe({ namespace: NS, stream: "x", afterPosition: after }));
      await s.caughtUp;
      assert.deepEqual(
        s.events.map((e) => e.id),
        allX.slice(k + 1).map((e) => e.id),
        `resume after position ${after}`,
      );
      s.cancel();
    }
    // A position of another stream: starts with x's next event after it.
    const yPos = at(posOf.y!, 3);
    const sy = track(b.subscribe({ namespace: NS, stream: "x", afterPosition: yPos }));
    await sy.caughtUp;
    assert.deepEqual(
      sy.events.map((e) => e.position),
      allX.map((e) => e.position).filter((p) => p > yPos),
    );
    // Resuming after the last position: caught up at once, with nothing replayed.
    const last = allX[allX.length - 1]!.position;
    const sl = track(a.subscribe({ namespace: NS, stream: "x", afterPosition: last }));
    assert.equal(await sl.caughtUp, last);
    assert.equal(sl.events.length, 0);
    // The whole namespace (empty prefix) from a middle position.
    const sAll = track(a.subscribe({ namespace: NS, streamPrefix: "", afterPosition: at(allX, 2).position }));
    await sAll.caughtUp;
    const want = [...posOf.x!, ...posOf.y!].filter((p) => p > at(allX, 2).position).sort((p, q) => p - q);
    assert.deepEqual(
      sAll.events.map((e) => e.position),
      want,
    );
    // A stream that does not exist yet: caught up empty, then live once it is created.
    const sNew = track(b.subscribe({ namespace: NS, stream: "later", afterPosition: 0 }));
    await sNew.caughtUp;
    assert.equal(sNew.events.length, 0);
    const r = await a.appendEvent({ namespace: NS, stream: "later", expected: { noStream: true }, events: [ev("l")] });
    await sNew.untilPosition(r.position);
    assert.deepEqual(
      sNew.events.map((e) => [e.stream, e.streamVersion, e.position]),
      [["later", 1, r.position]],
    );
    assert.equal(sx.caughtUps.length, 1);
  });

  it("Subscribe validates its request: INVALID_ARGUMENT naming the field", async () => {
    const bad: [string, Parameters<EventClient["subscribe"]>[0]][] = [
      ["target", { namespace: "sub-v", afterPosition: 0 }],
      ["target", { namespace: "sub-v", stream: "s", streamPrefix: "p" }],
      ["after_position", { namespace: "sub-v", stream: "s", afterPosition: -1 }],
      ["namespace", { namespace: "", stream: "s" }],
      ["stream", { namespace: "sub-v", stream: "" }],
    ];
    for (const [field, req] of bad) {
      const s = track(b.subscribe(req));
      const end = await s.ended;
      assert.ok(end.error, `${field}: the subscription failed`);
      await expectGrpcError(Promise.reject(end.error), status.INVALID_ARGUMENT, { field });
    }
  });

  it("a subscription ended by its caller (deadline passed, cancelled) is logged with the code the caller saw", async () => {
    const server = at(cluster.servers, 1);
    const ended = async (how: "deadline" | "cancel") => {
      const requestId = `sub-${how}-${randomUUID()}`;
      const s = track(
        b.subscribe(
          { namespace: "sub-end", streamPrefix: "", afterPosition: 0 },
          { requestId, deadlineMs: how === "deadline" ? 1500 : undefined },
        ),
      );
      await s.caughtUp;
      if (how === "cancel") s.cancel();
      const end = await s.ended;
      const line = await server.waitForLog((l) => l.msg === "rpc" && l.request_id === requestId);
      return [status[end.code], line.code];
    };
    assert.deepEqual(await ended("deadline"), ["DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED"]);
    assert.deepEqual(await ended("cancel"), ["CANCELLED", "CANCELLED"]);
  });

  it("a subscriber resumes after kill -9 of its server, on another replica, from its last position: nothing lost, nothing repeated", async () => {
    const NS = "sub-kill";
    const victim = await cluster.addReplica();
    const vc = new EventClient(victim.server.address, { ownChannel: true });
    extraClients.push(vc);
    const load = new Load(a, NS, ["k/0", "k/1", "k/2", "other"]).start();
    let s2: Subscription;
    const s1 = track(vc.subscribe({ namespace: NS, streamPrefix: "k/", afterPosition: 0 }));
    try {
      await load.untilAcked(50);
      await s1.caughtUp;
      await s1.until("100 events", (s) => s.events.length >= 100);
      await victim.server.kill("SIGKILL");
      const end = await s1.ended;
      assert.equal(end.code, status.UNAVAILABLE, `the subscription on the killed server ended: ${end.details}`);
      const resumeFrom = s1.lastPosition();
      await load.untilAcked(load.acked.length + 50); // appends go on while nobody is subscribed
      s2 = track(b.subscribe({ namespace: NS, streamPrefix: "k/", afterPosition: resumeFrom }));
      await s2.caughtUp;
      await load.untilAcked(load.acked.length + 50);
    } finally {
      await load.stop();
    }
    const expected = load.under("k/");
    await s2.untilPosition(expected[expected.length - 1]!.position);
    const union = [...s1.events, ...s2.events];
    assertOrdered(union, "first subscription then the resumed one");
    assertExactly(union, expected, "union vs acknowledged");
    assertExactly(union, await dbEventsUnder(cluster.databaseUrl, NS, "k/"), "union vs Postgres");
    assert.ok(s1.events.length > 0 && s2.events.length > 0);
  });

  it("a lost wake-up (the LISTEN connections killed before every append) delays delivery but loses nothing", async () => {
    const NS = "sub-wake";
    const sub = track(b.subscribe({ namespace: NS, stream: "w", afterPosition: 0 }));
    await sub.caughtUp;
    const acked: Acked[] = [];
    for (let i = 0; i < 8; i++) {
      await pgQuery(
        cluster.databaseUrl,
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'agentstate-listen'`,
      );
      const batch = [ev("w", String(i))];
      const r = await a.appendEvent({ namespace: NS, stream: "w", expected: { any: true }, events: batch });
      acked.push({ id: at(batch, 0).id, stream: "w", position: r.position, version: r.firstVersion });
    }
    await sub.untilPosition(acked[acked.length - 1]!.position, 30_000);
    assertOrdered(sub.events, "subscriber");
    assertExactly(sub.events, acked, "subscriber vs acknowledged");
  });

  describe("a slow subscriber", () => {
    const NS = "sub-slow";
    const EVENT_BYTES = 256 * 1024;
    const EVENTS = 512; // 128 MiB
    const BATCH = 8; // 2 MiB per append, under the 4 MiB default batch limit
    const WARMUP = 32;
    const appended: Acked[] = [];

    /** Appends `count` large random events to big/0 and big/1 through replica A (two appenders). */
    async function appendVolume(count: number, onProgress?: () => void): Promise<void> {
      await Promise.all(
        [0, 1].map(async (s) => {
          for (let n = 0; n < count / BATCH / 2; n++) {
            const batch = Array.from({ length: BATCH }, () => ev("blob", randomBytes(EVENT_BYTES)));
            const r = await a.appendEvent(
              { namespace: NS, stream: `big/${s}`, expected: { any: true }, events: batch },
              { deadlineMs: 60_000 },
            );
            batch.forEach((e, i) =>
              appended.push({ id: e.id, stream: `big/${s}`, position: r.position + i, version: r.firstVersion + i }),
            );
            onProgress?.();
          }
        }),
      );
      appended.sort((x, y) => x.position - y.position);
    }

    // The servers whose memory is measured get a small, fixed young generation
    // (8 MiB semi-spaces): Node 24 and later size it up with the heap, which adds
    // tens of MiB of GC slack to RSS whatever the server buffers (measured: 49-58
    // MiB on Node 24 and 26 against 40-45 allowed). Pinned, the measure is the
    // server's buffering on every Node version; a server that held the backlog
    // would still grow by about its whole volume, so under half of it passes
    // (Node 26 under load: 46 MiB of 136).
    const MEASURED = { NODE_OPTIONS: "--max-semi-space-size=8" };

    it("does not grow its server's memory with the volume appended; is ended with RESOURCE_EXHAUSTED after a stall and resumes from its last position", async () => {
      const slow = await cluster.addReplica({ AGENTSTATE_SUBSCRIBER_STALL_MS: "600000", ...MEASURED });
      const stalled = await cluster.addReplica({ AGENTSTATE_SUBSCRIBER_STALL_MS: "2000" });
      const sc = new EventClient(slow.server.address, { ownChannel: true });
      const tc = new EventClient(stalled.server.address, { ownChannel: true });
      extraClients.push(sc, tc);

      // Both subscribers are live, then stop reading.
      const s = track(sc.subscribe({ namespace: NS, streamPrefix: "big/", afterPosition: 0 }, { dropData: true }));
      const t = track(tc.subscribe({ namespace: NS, streamPrefix: "big/", afterPosition: 0 }, { dropData: true }));
      await Promise.all([s.caughtUp, t.caughtUp]);
      // Warm-up: both servers deliver some large events first, so the baseline below
      // already includes what a working subscription costs.
      await appendVolume(WARMUP);
      const warm = appended[appended.length - 1]!.position;
      await Promise.all([s.untilPosition(warm), t.untilPosition(warm)]);
      s.call.pause();
      t.call.pause();

      const pid = pidOf(slow.server);
      const base = memoryKb(pid);
      let peakKb = base.rss;
      const sample = () => {
        peakKb = Math.max(peakKb, memoryKb(pid).rss);
      };
      const sampler = setInterval(sample, 20);
      try {
        await appendVolume(EVENTS, sample);
        // Let the slow server do whatever it would do with the backlog.
        for (let i = 0; i < 20; i++) {
          sample();
          await sleep(50);
        }
      } finally {
        clearInterval(sampler);
      }
      const after = memoryKb(pid);
      const growthBytes = (Math.max(peakKb, after.rss, after.hwm) - base.rss) * 1024;
      const volume = EVENTS * EVENT_BYTES;
      assert.ok(
        growthBytes < volume / 2,
        `server RSS grew by ${(growthBytes / 2 ** 20).toFixed(1)} MiB (from ${(base.rss / 1024).toFixed(1)} MiB) while ${volume / 2 ** 20} MiB were appended for a subscriber that did not read`,
      );
      assert.equal(slow.server.running, true);

      // The slow subscriber reads again: everything arrives, in order, once.
      s.call.resume();
      await s.untilPosition(appended[appended.length - 1]!.position, 60_000);
      assertOrdered(s.events, "slow subscriber");
      assertExactly(s.events, appended, "slow subscriber after resume()");
      assert.equal(s.end, undefined);
      assert.equal(s.dataBytes, volume + WARMUP * EVENT_BYTES);

      // The stalled one was ended by its server (2 s stall limit) ...
      const line = await stalled.server.waitForLog(
        (l) => l.rpc === "Subscribe" && l.code === "RESOURCE_EXHAUSTED",
        30_000,
      );
      assert.ok(line);
      // ... and learns it once it reads again: what was in flight, then RESOURCE_EXHAUSTED.
      t.call.resume();
      const end = await t.ended;
      assert.equal(
        end.code,
        status.RESOURCE_EXHAUSTED,
        `stalled subscriber ended with ${status[end.code]}: ${end.details}`,
      );
      assert.ok(t.events.length < appended.length, "the stalled subscriber was ended before the end of the stream");
      assertOrdered(t.events, "stalled subscriber");
      // Resuming from its last position delivers the rest, exactly.
      const r = track(
        a.subscribe({ namespace: NS, streamPrefix: "big/", afterPosition: t.lastPosition() }, { dropData: true }),
      );
      await r.untilPosition(appended[appended.length - 1]!.position, 60_000);
      const union = [...t.events, ...r.events];
      assertOrdered(union, "stalled subscriber then resumed");
      assertExactly(union, appended, "stalled + resumed vs acknowledged");
      await r.caughtUp;
      assert.equal(r.caughtUps.length, 1);
    });

    // Pages are bounded by bytes as well as by count (AGENTSTATE_EVENT_PAGE_BYTES).
    it("catching up on a large backlog without reading does not load the backlog into the server's memory", async () => {
      assert.equal(appended.length, EVENTS + WARMUP, "runs after the test above, which appended the backlog");
      const fresh = await cluster.addReplica({ AGENTSTATE_SUBSCRIBER_STALL_MS: "600000", ...MEASURED });
      const fc = new EventClient(fresh.server.address, { ownChannel: true });
      extraClients.push(fc);
      const pid = pidOf(fresh.server);
      const base = memoryKb(pid);
      const s = track(fc.subscribe({ namespace: NS, streamPrefix: "big/", afterPosition: 0 }, { dropData: true }));
      s.call.pause();
      let peakKb = base.rss;
      for (let i = 0; i < 60; i++) {
        peakKb = Math.max(peakKb, memoryKb(pid).rss);
        await sleep(50);
      }
      const after = memoryKb(pid);
      const growthBytes = (Math.max(peakKb, after.hwm) - base.rss) * 1024;
      const volume = appended.length * EVENT_BYTES;
      s.call.resume();
      await s.untilPosition(appended[appended.length - 1]!.position, 60_000);
      assertExactly(s.events, appended, "catch-up");
      assert.ok(
        growthBytes < volume / 2,
        `server RSS grew by ${(growthBytes / 2 ** 20).toFixed(1)} MiB for one paused subscriber catching up on ${volume / 2 ** 20} MiB`,
      );
    });
  });

  it("SIGTERM ends open subscriptions with UNAVAILABLE and the server exits 0", async () => {
    const NS = "sub-term";
    const r = await cluster.addReplica();
    const rc = new EventClient(r.server.address, { ownChannel: true });
    extraClients.push(rc);
    await a.appendEvent({ namespace: NS, stream: "s", expected: { any: true }, events: [ev(), ev()] });
    const live = track(rc.subscribe({ namespace: NS, stream: "s", afterPosition: 0 }));
    const prefix = track(rc.subscribe({ namespace: NS, streamPrefix: "", afterPosition: 0 }));
    await Promise.all([live.caughtUp, prefix.caughtUp]);
    const w = await a.appendEvent({ namespace: NS, stream: "s", expected: { any: true }, events: [ev()] });
    await live.untilPosition(w.position);
    const exit = r.server.kill("SIGTERM");
    for (const s of [live, prefix]) {
      const end = await s.ended;
      assert.equal(end.code, status.UNAVAILABLE, `ended with ${status[end.code]}: ${end.details}`);
    }
    assert.deepEqual(await exit, { code: 0, signal: null });
    assert.equal(live.events.length, 3);
  });
});
