/**
 * How appends reach subscribers (issue 17, "one change poller per
 * namespace"): the replica that committed an append wakes its own readers
 * and NOTIFYs the other replicas after the commit (PgChangeNotifier.publish),
 * not from inside the append's transaction; on each replica one reader per
 * namespace reads the new events once and fans them out to every matching
 * subscriber (domain/changeFeed.ts); a lost wake-up is covered by one poll
 * per replica and interval; idle subscribers cost Postgres nothing each.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { EventData } from "../../clients/typescript/src/gen/agentstate/v1/event";
import { setTimeout as sleep } from "node:timers/promises";
import { EventClient, type RecordedEvent, type Subscription } from "../support/eventClient";
import { eventually } from "../support/eventually";
import { pgQuery } from "../support/pgQuery";
import { PostgresProcess } from "../support/PostgresProcess";
import { startCluster, type Cluster } from "../support/startCluster";

function ev(data = ""): EventData {
  return { id: randomUUID(), type: "e", data: Buffer.from(data), metadata: {} };
}

/** An event as acknowledged to its appender. */
interface Acked {
  stream: string;
  id: string;
  position: number;
}

/** What a subscriber asked for. */
interface Want {
  sub: Subscription;
  stream?: string;
  prefix?: string;
  after: number;
}

function wanted(acked: Acked[], w: Want): string[] {
  return acked
    .filter(
      (a) => a.position > w.after && (w.stream !== undefined ? a.stream === w.stream : a.stream.startsWith(w.prefix!)),
    )
    .sort((x, y) => x.position - y.position)
    .map((a) => `${a.position}:${a.id}`);
}

function received(events: RecordedEvent[]): string[] {
  return events.map((e) => `${e.position}:${e.id}`);
}

/** Appends `n` events (1-3 per call) to streams s0..s4 of `ns`, round robin over `clients`; returns what was acknowledged. */
async function appendMany(clients: EventClient[], ns: string, n: number, acked: Acked[]): Promise<void> {
  await Promise.all(
    clients.map(async (c, ci) => {
      for (let i = ci; i < n; i += clients.length) {
        const stream = `s${i % 5}`;
        const events = Array.from({ length: 1 + (i % 3) }, () => ev(String(i)));
        const r = await c.appendEvent({ namespace: ns, stream, expected: { any: true }, events });
        events.forEach((e, j) => acked.push({ stream, id: e.id!, position: r.position + j }));
      }
    }),
  );
}

/** The value of a gauge without labels from a replica's /metrics. */
async function gauge(metricsUrl: string, name: string): Promise<number> {
  const body = await (await fetch(metricsUrl)).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(body);
  assert.ok(m, `${name} is exported`);
  return Number(m[1]);
}

describe("EventService: wake-ups after commit (2 replicas, polling at 60 s)", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let a: EventClient;
  let b: EventClient;
  const subs: Subscription[] = [];

  before(async () => {
    cluster = await startCluster({
      name: "events_fanout",
      replicas: 2,
      env: { AGENTSTATE_SUBSCRIBE_POLL_MS: "60000" },
    });
    a = new EventClient(cluster.servers[0]!.address);
    b = new EventClient(cluster.servers[1]!.address);
  });
  afterEach(() => {
    for (const s of subs.splice(0)) if (!s.end) s.cancel();
  });
  after(async () => {
    a?.close();
    b?.close();
    await cluster?.stop();
  });

  it("an append through replica A reaches subscribers on A (woken in process) and on B (NOTIFY after commit), well before a poll", async () => {
    const NS = "fan-wake";
    const onA = a.subscribe({ namespace: NS, stream: "s", afterPosition: 0 });
    const onB = b.subscribe({ namespace: NS, streamPrefix: "", afterPosition: 0 });
    subs.push(onA, onB);
    await Promise.all([onA.caughtUp, onB.caughtUp]);
    for (let i = 0; i < 5; i++) {
      const r = await a.appendEvent({ namespace: NS, stream: "s", expected: { any: true }, events: [ev(String(i))] });
      await Promise.all([onA.untilPosition(r.position, 20_000), onB.untilPosition(r.position, 20_000)]);
    }
    assert.deepEqual(
      onA.events.map((e) => e.data.toString()),
      ["0", "1", "2", "3", "4"],
    );
    assert.deepEqual(
      onB.events.map((e) => e.data.toString()),
      ["0", "1", "2", "3", "4"],
    );
  });

  it("the append statement itself sends no NOTIFY (Postgres would serialise every commit on its notify lock)", async () => {
    const rows = await pgQuery<{ src: string }>(
      cluster.databaseUrl,
      "SELECT prosrc AS src FROM pg_proc WHERE proname = 'agentstate_event_append'",
    );
    assert.equal(rows.length, 1);
    assert.doesNotMatch(rows[0]!.src, /pg_notify|NOTIFY/i);
  });
});

describe("EventService: one reader per namespace, fanned out (2 replicas, polling at 500 ms)", function () {
  this.timeout(180_000);
  let cluster: Cluster;
  let a: EventClient;
  let b: EventClient;
  const subs: Subscription[] = [];
  const open = (c: EventClient, ns: string, w: Omit<Want, "sub">): Want => {
    const sub = c.subscribe({
      namespace: ns,
      ...(w.stream !== undefined ? { stream: w.stream } : { streamPrefix: w.prefix }),
      afterPosition: w.after,
    });
    subs.push(sub);
    return { sub, ...w };
  };

  before(async () => {
    cluster = await startCluster({
      name: "events_fanout_poll",
      replicas: 2,
      env: { AGENTSTATE_SUBSCRIBE_POLL_MS: "500" },
    });
    a = new EventClient(cluster.servers[0]!.address);
    b = new EventClient(cluster.servers[1]!.address);
  });
  afterEach(() => {
    for (const s of subs.splice(0)) if (!s.end) s.cancel();
  });
  after(async () => {
    a?.close();
    b?.close();
    await cluster?.stop();
  });

  it("many subscribers with mixed streams, prefixes and resume positions, some joining mid-flow: each gets exactly its events, in order", async () => {
    const NS = "fan-many";
    const acked: Acked[] = [];
    await appendMany([a], NS, 20, acked);
    const wants: Want[] = [];
    for (let i = 0; i < 60; i++) {
      const target = i % 3 === 0 ? { prefix: i % 2 ? "s" : "s1" } : { stream: `s${i % 5}` };
      wants.push(open(i % 2 ? a : b, NS, { ...target, after: (i * 7) % 30 }));
    }
    const load = appendMany([a, b, a], NS, 120, acked);
    // Joining mid-flow, from positions acknowledged so far (and from 0).
    await sleep(300);
    for (let i = 0; i < 20; i++) {
      const from = i % 4 === 0 ? 0 : (acked[Math.floor(acked.length / 2)]?.position ?? 0);
      wants.push(open(i % 2 ? b : a, NS, i % 2 ? { prefix: "s", after: from } : { stream: `s${i % 5}`, after: from }));
    }
    await load;
    const last = Math.max(...acked.map((x) => x.position));
    for (const w of wants) {
      const want = wanted(acked, w);
      const lastWanted = Number(want[want.length - 1]?.split(":")[0] ?? 0);
      if (lastWanted > 0) await w.sub.untilPosition(lastWanted, 30_000);
    }
    await sleep(600); // a poll interval: nothing more may arrive
    wants.forEach((w, i) => assert.deepEqual(received(w.sub.events), wanted(acked, w), `subscriber ${i}`));
    assert.ok(last > 0);
  });

  it("more subscribers on one replica than it wakes per turn (300, mixed targets and resume points): each gets exactly its events, in order, each event's encoding shared", async () => {
    // 300 subscribers of one namespace on replica A: each fan-out wakes them
    // 100 per turn of the event loop (events/handlers.ts), and every one
    // writes the same encoded message as the others of its event (encodeOnce).
    const NS = "fan-batches";
    const acked: Acked[] = [];
    await appendMany([a], NS, 10, acked);
    const wants: Want[] = [];
    for (let i = 0; i < 300; i++) {
      const target = i % 4 === 0 ? { prefix: i % 8 ? "s" : "s1" } : { stream: `s${i % 5}` };
      wants.push(open(a, NS, { ...target, after: i % 3 === 0 ? 0 : (i * 7) % 15 }));
    }
    await Promise.all(wants.map((w) => w.sub.caughtUp));
    await appendMany([a, b, a], NS, 60, acked);
    for (const w of wants) {
      const want = wanted(acked, w);
      const lastWanted = Number(want[want.length - 1]?.split(":")[0] ?? 0);
      if (lastWanted > 0) await w.sub.untilPosition(lastWanted, 30_000);
    }
    await sleep(600); // a poll interval: nothing more may arrive
    wants.forEach((w, i) => assert.deepEqual(received(w.sub.events), wanted(acked, w), `subscriber ${i}`));
  });

  it("a lost NOTIFY (LISTEN backends terminated; an append that sends none, as from a replica dead before its NOTIFY) is covered by the poll", async () => {
    const NS = "fan-lost";
    const onA = open(a, NS, { stream: "s", after: 0 });
    const onB = open(b, NS, { prefix: "", after: 0 });
    await Promise.all([onA.sub.caughtUp, onB.sub.caughtUp]);
    const acked: Acked[] = [];
    for (let i = 0; i < 3; i++) {
      await pgQuery(
        cluster.databaseUrl,
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'agentstate-listen'`,
      );
      await appendMany([a], NS, 1, acked);
      // Committed by hand: the function sends no NOTIFY, and no replica publishes it.
      const id = randomUUID();
      const rows = await pgQuery<{ first_position: string }>(
        cluster.databaseUrl,
        `SELECT first_position::text FROM agentstate_event_append(p_ns => $1, p_stream => ARRAY['s'],
           p_exp_kind => ARRAY[0]::smallint[], p_exp_version => ARRAY[NULL::bigint], p_count => ARRAY[1],
           p_ids => ARRAY[$2::uuid], p_types => ARRAY['e'], p_data => ARRAY['\\x00'::bytea],
           p_metadata => ARRAY['{}'::jsonb], p_fp => ARRAY['\\x00'::bytea], p_fence_name => ARRAY[NULL::text],
           p_fence_token => ARRAY[NULL::bigint], p_deadline_ms => ARRAY[NULL::bigint],
           p_principal => ARRAY['test'], p_request_id => ARRAY['by-hand'], p_wait => true)`,
        [NS, id],
      );
      acked.push({ stream: "s", id, position: Number(rows[0]!.first_position) });
      const lastPos = Math.max(...acked.map((x) => x.position));
      await Promise.all([onA.sub.untilPosition(lastPos, 20_000), onB.sub.untilPosition(lastPos, 20_000)]);
    }
    assert.deepEqual(received(onA.sub.events), wanted(acked, onA));
    assert.deepEqual(received(onB.sub.events), wanted(acked, onB));
  });

  it("a namespace's reader starts with its first subscriber on a replica and stops when its last leaves", async () => {
    const listening = cluster.servers[0]!.logs().find((l) => l["msg"] === "listening");
    const metricsUrl = `http://${String(listening!["metrics"])}/metrics`;
    await eventually(
      "no reader left from earlier tests",
      async () => (await gauge(metricsUrl, "agentstate_change_readers")) === 0,
    );
    const x = [0, 1, 2].map((i) => open(a, "fan-x", { stream: `s${i}`, after: 0 }));
    const y = open(a, "fan-y", { prefix: "", after: 0 });
    await Promise.all([...x, y].map((w) => w.sub.caughtUp));
    assert.equal(await gauge(metricsUrl, "agentstate_change_readers"), 2);
    for (const w of x) w.sub.cancel();
    await eventually("fan-x's reader gone", async () => (await gauge(metricsUrl, "agentstate_change_readers")) === 1);
    // The remaining reader still delivers.
    const acked: Acked[] = [];
    await appendMany([b], "fan-y", 2, acked);
    await y.sub.untilPosition(Math.max(...acked.map((z) => z.position)), 20_000);
    y.sub.cancel();
    await eventually("fan-y's reader gone", async () => (await gauge(metricsUrl, "agentstate_change_readers")) === 0);
  });
});

describe("EventService: idle subscribers cost Postgres no statements each (1 replica, polling at 200 ms)", function () {
  this.timeout(180_000);
  const DB = "events_fanout_idle";
  /** The window each count is taken over. */
  const WINDOW_MS = 5_000;
  /** Statements a second the 199 added subscribers may add (the window's jitter); one poll each would add ~1000. */
  const MAX_ADDED_PER_S = 3;
  let pg: PostgresProcess | undefined;
  let cluster: Cluster | undefined;
  let c: EventClient | undefined;
  const subs: Subscription[] = [];

  before(async function () {
    this.timeout(120_000);
    // Counted with pg_stat_statements, which counts a statement when it ends:
    // pg_stat_database's counters reach the view up to 10 s late (a backend
    // flushes its stats at most once a second, else after 10 s idle).
    pg = await PostgresProcess.start({
      settings: { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "top" },
    });
    await pg.createDatabase(DB);
    await pg.query("postgres", "CREATE EXTENSION pg_stat_statements");
    cluster = await startCluster({ databaseUrl: pg.url(DB), env: { AGENTSTATE_SUBSCRIBE_POLL_MS: "200" } });
    c = new EventClient(cluster.servers[0]!.address);
  });
  after(async () => {
    for (const s of subs.splice(0)) if (!s.end) s.cancel();
    c?.close();
    await cluster?.stop();
    await pg?.destroy();
  });

  /** Statements Postgres completed in the server's database so far (no flush delay). */
  async function statements(): Promise<number> {
    const rows = await pg!.query<{ n: string | null }>(
      "postgres",
      "SELECT sum(calls)::text AS n FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
      [DB],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Statements completed over WINDOW_MS, once the calls before it have settled. */
  async function statementsOverWindow(): Promise<number> {
    await sleep(1_000);
    const before = await statements();
    await sleep(WINDOW_MS);
    return (await statements()) - before;
  }

  it("the statements with 200 idle subscribers (over 4 namespaces) are those with 1, not 200 times a poll each", async () => {
    await c!.appendEvent({ namespace: "idle-0", stream: "s", expected: { any: true }, events: [ev()] });
    const one = c!.subscribe({ namespace: "idle-0", stream: "s", afterPosition: 0 });
    subs.push(one);
    await one.caughtUp;
    const withOne = await statementsOverWindow();
    for (let i = 0; i < 199; i++) {
      subs.push(c!.subscribe({ namespace: `idle-${i % 4}`, stream: `s${i}`, afterPosition: 0 }));
    }
    await Promise.all(subs.map((s) => s.caughtUp));
    const withMany = await statementsOverWindow();
    // One subscriber polling by itself every 200 ms would alone make ~25 statements in 5 s; 200 of them ~5000.
    assert.ok(
      withMany <= withOne + (MAX_ADDED_PER_S * WINDOW_MS) / 1000,
      `statements in ${WINDOW_MS} ms: ${withMany} with 200 idle subscribers, ${withOne} with 1`,
    );
  });
});
