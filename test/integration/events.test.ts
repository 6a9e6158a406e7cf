/**
 * EventService against real Postgres and two real server processes over real
 * gRPC: AppendEvent conditions, batch atomicity, validation and limits,
 * concurrent appenders with expected versions across replicas, idempotent
 * retries (sequential, concurrent, after a client-side timeout), ReadStream
 * paging both ways, fences, and count-based retention.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { status, type ServiceError } from "@grpc/grpc-js";
import { Client } from "pg";
import {
  Direction,
  type AppendEventResponse,
  type DeepPartial,
  type EventData,
  type ExpectedStream,
} from "../../clients/typescript/src/gen/agentstate/v1/event";
import { EventClient, type RecordedEvent } from "../support/eventClient";
import { blockedBy } from "../support/blockedBy";
import { eventClusterHooks } from "../support/eventClusterHooks";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

const IA = status.INVALID_ARGUMENT;
const FP = status.FAILED_PRECONDITION;

function ev(type = "item_added", data: string | Buffer = "", metadata: Record<string, string> = {}): EventData {
  return { id: randomUUID(), type, data: typeof data === "string" ? Buffer.from(data) : data, metadata };
}

function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  assert.ok(x !== undefined, `no element ${i} (length ${xs.length})`);
  return x;
}

/** The stream's version according to ReadStream (0 when it does not exist). */
async function currentVersion(c: EventClient, namespace: string, stream: string): Promise<number> {
  try {
    const last = await c.readStream({ namespace, stream, direction: Direction.DIRECTION_BACKWARDS, limit: 1 });
    return last[0]?.streamVersion ?? 0;
  } catch (e) {
    if ((e as ServiceError).code === status.NOT_FOUND) return 0;
    throw e;
  }
}

interface DbEvent {
  position: number;
  stream: string;
  stream_version: number;
  event_id: string;
  type: string;
}

async function dbEvents(url: string, namespace: string, stream?: string): Promise<DbEvent[]> {
  const rows = await pgQuery<Record<string, string>>(
    url,
    `SELECT position::text, stream, stream_version::text, event_id::text, type FROM events
     WHERE namespace = $1 AND ($2::text IS NULL OR stream = $2) ORDER BY events.position`,
    [namespace, stream ?? null],
  );
  return rows.map((r) => ({
    position: Number(r.position),
    stream: String(r.stream),
    stream_version: Number(r.stream_version),
    event_id: String(r.event_id),
    type: String(r.type),
  }));
}

async function dbStreamVersion(url: string, namespace: string, stream: string): Promise<number | undefined> {
  const rows = await pgQuery<{ version: string }>(
    url,
    "SELECT version::text FROM streams WHERE namespace = $1 AND stream = $2",
    [namespace, stream],
  );
  return rows[0] === undefined ? undefined : Number(rows[0].version);
}

/** Versions of `events`, which must be exactly from..to in steps of +1 (or -1 when from > to). */
function assertVersions(events: RecordedEvent[], from: number, to: number, what: string): void {
  const step = from <= to ? 1 : -1;
  const want: number[] = [];
  for (let v = from; step > 0 ? v <= to : v >= to; v += step) want.push(v);
  assert.deepEqual(
    events.map((e) => e.streamVersion),
    want,
    `${what}: versions ${from}..${to}`,
  );
}

function assertIncreasing(xs: number[], what: string): void {
  for (let i = 1; i < xs.length; i++) {
    assert.ok(xs[i]! > xs[i - 1]!, `${what}: ${xs[i]} at index ${i} does not follow ${xs[i - 1]}`);
  }
}

describe("EventService: appends, reads, idempotency, fences (Postgres, 2 replicas)", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let a: EventClient;
  let b: EventClient;

  before(async () => {
    cluster = await startCluster({ name: "events", replicas: 2 });
    a = new EventClient(at(cluster.servers, 0).address);
    b = new EventClient(at(cluster.servers, 1).address);
  });
  after(async () => {
    a?.close();
    b?.close();
    await cluster?.stop();
  });

  describe("AppendEvent: expected stream conditions", () => {
    const NS = "ev-expected";

    it("no_stream creates the stream; a second no_stream is a mismatch that reports the version and appends nothing", async () => {
      const first = [ev("created", "1"), ev("renamed", "2")];
      const r1 = await a.appendEvent({ namespace: NS, stream: "ns1", expected: { noStream: true }, events: first });
      assert.equal(r1.applied, true);
      assert.equal(r1.replayed, false);
      assert.equal(r1.firstVersion, 1);
      assert.equal(r1.currentVersion, 2);
      assert.ok(r1.position > 0);
      assert.equal(r1.header?.revision, r1.position + 1, "the reply reflects the revision of the batch's last event");

      const r2 = await b.appendEvent({ namespace: NS, stream: "ns1", expected: { noStream: true }, events: [ev()] });
      assert.equal(r2.applied, false);
      assert.equal(r2.replayed, false);
      assert.equal(r2.currentVersion, 2, "a mismatch reports the stream's current version");
      assert.equal(r2.firstVersion, 0);
      assert.equal(r2.position, 0);
      assert.ok((r2.header?.revision ?? 0) >= r1.position + 1, "the mismatch reply reflects a revision");

      const read = await b.readStream({ namespace: NS, stream: "ns1" });
      assert.deepEqual(
        read.map((e) => e.id),
        first.map((e) => e.id),
      );
      assert.equal(await dbStreamVersion(cluster.databaseUrl, NS, "ns1"), 2);
      assert.equal((await dbEvents(cluster.databaseUrl, NS, "ns1")).length, 2);
    });

    it("exists: a mismatch on a missing stream reports version 0 and leaves no stream behind; applies once it exists", async () => {
      const r1 = await a.appendEvent({ namespace: NS, stream: "ex1", expected: { exists: true }, events: [ev()] });
      assert.equal(r1.applied, false);
      assert.equal(r1.currentVersion, 0);
      await expectGrpcError(b.readStream({ namespace: NS, stream: "ex1" }), status.NOT_FOUND);
      assert.equal(await dbStreamVersion(cluster.databaseUrl, NS, "ex1"), undefined, "no claimed stream row is left");

      const r2 = await a.appendEvent({ namespace: NS, stream: "ex1", expected: { noStream: true }, events: [ev()] });
      assert.equal(r2.applied, true);
      const r3 = await b.appendEvent({
        namespace: NS,
        stream: "ex1",
        expected: { exists: true },
        events: [ev(), ev(), ev()],
      });
      assert.equal(r3.applied, true);
      assert.equal(r3.firstVersion, 2);
      assert.equal(r3.currentVersion, 4);
      assert.ok(r3.position > r2.position);
      assertVersions(await a.readStream({ namespace: NS, stream: "ex1" }), 1, 4, "ex1");
    });

    it("version N: applies only when N is the stream's version; a mismatch (lower, higher, or on a missing stream) appends nothing", async () => {
      const miss = await a.appendEvent({ namespace: NS, stream: "v1", expected: { version: 1 }, events: [ev()] });
      assert.equal(miss.applied, false);
      assert.equal(miss.currentVersion, 0);
      assert.equal(await dbStreamVersion(cluster.databaseUrl, NS, "v1"), undefined);

      await a.appendEvent({ namespace: NS, stream: "v1", expected: { noStream: true }, events: [ev(), ev(), ev()] });
      for (const wrong of [1, 2, 4, 1000]) {
        const r = await b.appendEvent({ namespace: NS, stream: "v1", expected: { version: wrong }, events: [ev()] });
        assert.equal(r.applied, false, `expected version ${wrong} on a stream at 3`);
        assert.equal(r.currentVersion, 3);
      }
      const ok = await b.appendEvent({ namespace: NS, stream: "v1", expected: { version: 3 }, events: [ev(), ev()] });
      assert.equal(ok.applied, true);
      assert.equal(ok.firstVersion, 4);
      assert.equal(ok.currentVersion, 5);
      const stale = await a.appendEvent({ namespace: NS, stream: "v1", expected: { version: 3 }, events: [ev()] });
      assert.equal(stale.applied, false);
      assert.equal(stale.currentVersion, 5);
      assertVersions(await a.readStream({ namespace: NS, stream: "v1" }), 1, 5, "v1");
      assert.equal((await dbEvents(cluster.databaseUrl, NS, "v1")).length, 5);
    });

    it("any: appends whether or not the stream exists", async () => {
      const r1 = await a.appendEvent({ namespace: NS, stream: "any1", expected: { any: true }, events: [ev()] });
      const r2 = await b.appendEvent({ namespace: NS, stream: "any1", expected: { any: true }, events: [ev(), ev()] });
      assert.deepEqual([r1.applied, r1.firstVersion, r1.currentVersion], [true, 1, 1]);
      assert.deepEqual([r2.applied, r2.firstVersion, r2.currentVersion], [true, 2, 3]);
    });

    it("racing creators of a new stream through both replicas: exactly one no_stream append applies, the other sees its version", async () => {
      for (let round = 0; round < 10; round++) {
        const stream = `race-new-${round}`;
        const batches = [[ev("a"), ev("a")], [ev("b")]];
        // Round by round, the second racer asks no_stream or exists (which claims and then releases the row).
        const second: ExpectedStream = round % 2 === 0 ? { noStream: true } : { exists: true };
        const [x, y] = await Promise.all([
          a.appendEvent({ namespace: NS, stream, expected: { noStream: true }, events: batches[0] }),
          b.appendEvent({ namespace: NS, stream, expected: second, events: batches[1] }),
        ]);
        assert.ok(x && y);
        const rows = await dbEvents(cluster.databaseUrl, NS, stream);
        if (second.noStream) {
          assert.equal([x.applied, y.applied].filter(Boolean).length, 1, `round ${round}: one creator wins`);
          const [win, lose, winBatch] = x.applied ? [x, y, batches[0]!] : [y, x, batches[1]!];
          assert.equal(lose.currentVersion, win.currentVersion, `round ${round}: the loser sees the winner's version`);
          assert.deepEqual(
            rows.map((r) => r.event_id),
            winBatch.map((e) => e.id),
          );
        } else {
          assert.equal(x.applied, true, `round ${round}: no_stream on a missing stream applies`);
          const want = y.applied ? [...batches[0]!, ...batches[1]!] : batches[0]!;
          if (y.applied) assert.equal(y.firstVersion, 3, "exists applied after the creator");
          else assert.equal(y.currentVersion, 0, "exists ran before the creator committed");
          assert.deepEqual(
            rows.map((r) => r.event_id),
            want.map((e) => e.id),
          );
        }
        assert.equal(await dbStreamVersion(cluster.databaseUrl, NS, stream), rows.length);
      }
    });

    it("stream versions are dense per stream; positions increase across streams (not densely: other writes take revisions)", async () => {
      const kv = at(cluster.clients, 0);
      const r1 = await a.appendEvent({ namespace: NS, stream: "pos-a", expected: { any: true }, events: [ev(), ev()] });
      const r2 = await b.appendEvent({ namespace: NS, stream: "pos-b", expected: { any: true }, events: [ev()] });
      const w = await kv.compareAndSet({ namespace: NS, key: "k", expected: { any: true }, value: Buffer.from("x") });
      const r3 = await a.appendEvent({ namespace: NS, stream: "pos-a", expected: { any: true }, events: [ev()] });
      assert.equal(r2.position, r1.position + 2, "nothing else was written between the two appends");
      assert.ok(w.item && w.item.modRevision > r2.position && r3.position > w.item.modRevision);
      const pa = await a.readStream({ namespace: NS, stream: "pos-a" });
      assertVersions(pa, 1, 3, "pos-a");
      assert.deepEqual(
        pa.map((e) => e.position),
        [r1.position, r1.position + 1, r3.position],
      );
      for (const e of pa) {
        assert.equal(e.stream, "pos-a");
        assert.ok(e.createTime instanceof Date && Math.abs(e.createTime.getTime() - Date.now()) < 120_000);
      }
    });

    it("generates ids for events sent without one; type, data (binary, empty) and metadata round-trip", async () => {
      const binary = Buffer.from([0, 1, 2, 255, 254, 0, 10, 13]);
      const sent: DeepPartial<EventData>[] = [
        {
          type: "with-id",
          id: randomUUID(),
          data: binary,
          metadata: { "trace-id": "abc", empty: "", ключ: "значение ✓" },
        },
        { type: "no-id", data: Buffer.from("payload") },
        { type: "no-id-empty-data", metadata: { a: "1" } },
        { type: "UPPER-id", id: randomUUID().toUpperCase(), data: Buffer.from("u") },
      ];
      const r = await a.appendEvent({ namespace: NS, stream: "rt", expected: { noStream: true }, events: sent });
      assert.equal(r.applied, true);
      const got = await b.readStream({ namespace: NS, stream: "rt" });
      assert.equal(got.length, 4);
      const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
      for (const [i, e] of got.entries()) {
        const s = at(sent, i);
        assert.match(e.id, UUID_RE, "every stored id is a UUID");
        if (s.id) assert.equal(e.id, s.id.toLowerCase(), "a client-supplied id is kept (canonical lower case)");
        assert.equal(e.type, s.type);
        assert.deepEqual(Buffer.from(e.data), Buffer.from(s.data ?? Buffer.alloc(0)));
        assert.deepEqual(e.metadata, s.metadata ?? {});
        assert.equal(e.streamVersion, i + 1);
        assert.equal(e.position, r.position + i);
      }
      assert.equal(new Set(got.map((e) => e.id)).size, 4, "generated ids are distinct");
      // A generated id is a real id: re-sending the stored event with it is a replay.
      const second = at(got, 1);
      const replay = await a.appendEvent({
        namespace: NS,
        stream: "rt",
        expected: { any: true },
        events: [{ id: second.id, type: second.type, data: second.data, metadata: second.metadata }],
      });
      assert.equal(replay.replayed, true);
      assert.equal(replay.firstVersion, 2);
      // The upper-case id is the same id in lower case.
      const upper = at(sent, 3);
      const replayUpper = await b.appendEvent({
        namespace: NS,
        stream: "rt",
        expected: { any: true },
        events: [{ ...upper, id: upper.id!.toLowerCase() }],
      });
      assert.equal(replayUpper.replayed, true);
      assert.equal(replayUpper.firstVersion, 4);
      assert.equal((await dbEvents(cluster.databaseUrl, NS, "rt")).length, 4);
    });
  });

  describe("AppendEvent: validation and batch atomicity", () => {
    const NS = "ev-invalid";

    it("a batch with one invalid event is INVALID_ARGUMENT naming events[i].<field>, and nothing of the batch is written", async () => {
      await a.appendEvent({ namespace: NS, stream: "s", expected: { noStream: true }, events: [ev()] });
      const bad: [string, DeepPartial<EventData>[]][] = [
        ["events[2].id", [ev(), ev(), { ...ev(), id: "not-a-uuid" }, ev()]],
        ["events[1].id", [ev(), { ...ev(), id: "0123456789abcdef0123456789abcdef" }]],
        ["events[1].type", [ev(), { ...ev(), type: "" }, ev()]],
        ["events[0].type", [{ ...ev(), type: "t".repeat(256) }]],
        [
          "events[3].id",
          (() => {
            const dup = ev();
            return [ev(), dup, ev(), { ...ev(), id: dup.id }];
          })(),
        ],
      ];
      for (const [field, events] of bad) {
        for (const client of [a, b]) {
          await expectGrpcError(
            client.appendEvent({ namespace: NS, stream: "s", expected: { any: true }, events }),
            IA,
            {
              field,
            },
          );
          await expectGrpcError(
            client.appendEvent({ namespace: NS, stream: "fresh", expected: { noStream: true }, events }),
            IA,
            { field },
          );
        }
      }
      assertVersions(await a.readStream({ namespace: NS, stream: "s" }), 1, 1, "s is unchanged");
      await expectGrpcError(a.readStream({ namespace: NS, stream: "fresh" }), status.NOT_FOUND);
      assert.equal((await dbEvents(cluster.databaseUrl, NS)).length, 1, "only the first valid event exists");
      assert.equal(await dbStreamVersion(cluster.databaseUrl, NS, "fresh"), undefined);
    });

    it("request-level fields: namespace, stream, expected, events", async () => {
      const e = [ev()];
      const cases: [string, Parameters<EventClient["appendEvent"]>[0]][] = [
        ["namespace", { namespace: "", stream: "s", expected: { any: true }, events: e }],
        ["namespace", { namespace: "Bad NS", stream: "s", expected: { any: true }, events: e }],
        ["stream", { namespace: NS, stream: "", expected: { any: true }, events: e }],
        ["stream", { namespace: NS, stream: "a\u0000b", expected: { any: true }, events: e }],
        ["expected", { namespace: NS, stream: "s2", events: e }],
        ["expected", { namespace: NS, stream: "s2", expected: {}, events: e }],
        ["expected.version", { namespace: NS, stream: "s2", expected: { version: 0 }, events: e }],
        ["expected.version", { namespace: NS, stream: "s2", expected: { version: -1 }, events: e }],
        ["expected.any", { namespace: NS, stream: "s2", expected: { any: false }, events: e }],
        ["expected.no_stream", { namespace: NS, stream: "s2", expected: { noStream: false }, events: e }],
        ["expected.exists", { namespace: NS, stream: "s2", expected: { exists: false }, events: e }],
        ["events", { namespace: NS, stream: "s2", expected: { any: true }, events: [] }],
        [
          "fence.lock_name",
          { namespace: NS, stream: "s2", expected: { any: true }, events: e, fence: { lockName: "", token: 1 } },
        ],
        [
          "fence.token",
          { namespace: NS, stream: "s2", expected: { any: true }, events: e, fence: { lockName: "l", token: 0 } },
        ],
      ];
      for (const [field, req] of cases) await expectGrpcError(b.appendEvent(req), IA, { field });
      await expectGrpcError(a.readStream({ namespace: NS, stream: "s2" }), status.NOT_FOUND);
      assert.equal(await dbStreamVersion(cluster.databaseUrl, NS, "s2"), undefined);
    });

    it("limits: events per batch, bytes per event (data + type + metadata) and bytes per batch (a replica with small limits)", async () => {
      const small = await cluster.addReplica({
        AGENTSTATE_MAX_EVENTS_PER_APPEND: "3",
        AGENTSTATE_MAX_EVENT_BYTES: "1000",
        AGENTSTATE_MAX_APPEND_BYTES: "2500",
      });
      const c = new EventClient(small.server.address);
      const NSL = "ev-limits";
      try {
        const bytes = (n: number) => Buffer.alloc(n, 0x61);
        // type "t" (1 byte) + 999 data bytes = exactly the 1000-byte event limit.
        const ok = await c.appendEvent({
          namespace: NSL,
          stream: "s",
          expected: { noStream: true },
          events: [ev("t", bytes(999)), ev("t", bytes(999))],
        });
        assert.equal(ok.applied, true, "events exactly at the per-event limit are accepted");

        const four = [ev("t"), ev("t"), ev("t"), ev("t")];
        let err = await expectGrpcError(
          c.appendEvent({ namespace: NSL, stream: "s", expected: { any: true }, events: four }),
          IA,
          { field: "events" },
        );
        assert.match(err.details, /\b3\b/, "names the limit");

        err = await expectGrpcError(
          c.appendEvent({
            namespace: NSL,
            stream: "s",
            expected: { any: true },
            events: [ev("t"), ev("t", bytes(1000))],
          }),
          IA,
          { field: "events[1]" },
        );
        assert.match(err.details, /1000/);
        await expectGrpcError(
          c.appendEvent({
            namespace: NSL,
            stream: "s",
            expected: { any: true },
            events: [ev("t", bytes(900), { k: "v".repeat(99) })],
          }),
          IA,
          { field: "events[0]" },
        );
        await expectGrpcError(
          c.appendEvent({
            namespace: NSL,
            stream: "s",
            expected: { any: true },
            events: [ev("t".repeat(200), bytes(801))],
          }),
          IA,
          { field: "events[0]" },
        );

        err = await expectGrpcError(
          c.appendEvent({
            namespace: NSL,
            stream: "s",
            expected: { any: true },
            events: [ev("t", bytes(900)), ev("t", bytes(900)), ev("t", bytes(900))],
          }),
          IA,
          { field: "events" },
        );
        assert.match(err.details, /2500/, "names the batch limit");

        assertVersions(await c.readStream({ namespace: NSL, stream: "s" }), 1, 2, "only the accepted batch");
        assert.equal((await dbEvents(cluster.databaseUrl, NSL)).length, 2);
        // The default replicas are not bound by the small limits.
        const big = await a.appendEvent({
          namespace: NSL,
          stream: "s",
          expected: { version: 2 },
          events: [ev("t"), ev("t"), ev("t"), ev("t", bytes(5000))],
        });
        assert.equal(big.applied, true);
      } finally {
        c.close();
        await small.server.stop();
      }
    });
  });

  describe("AppendEvent: 10 concurrent appenders with expected version through 2 replicas", () => {
    const NS = "ev-race";
    const STREAM = "contended";
    const WORKERS = 10;
    const APPENDS_EACH = 6;

    interface Ack {
      worker: number;
      ids: string[];
      expected: number;
      res: AppendEventResponse;
    }

    async function appender(worker: number, c: EventClient): Promise<{ acks: Ack[]; mismatches: number }> {
      const acks: Ack[] = [];
      let mismatches = 0;
      let known = await currentVersion(c, NS, STREAM);
      while (acks.length < APPENDS_EACH) {
        const batch = Array.from({ length: 1 + ((worker + acks.length) % 3) }, () =>
          ev(`w${worker}`, `${worker}:${acks.length}`),
        );
        // Same ids on every retry of this batch: a mismatch wrote nothing, so they are still new.
        for (;;) {
          const expected: ExpectedStream = known === 0 ? { noStream: true } : { version: known };
          const res = await c.appendEvent({ namespace: NS, stream: STREAM, expected, events: batch });
          assert.equal(res.replayed, false, "no batch of this test was appended before");
          if (res.applied) {
            assert.equal(res.firstVersion, known + 1, "the batch starts right after the expected version");
            assert.equal(res.currentVersion, known + batch.length);
            acks.push({ worker, ids: batch.map((e) => e.id), expected: known, res });
            known = res.currentVersion;
            break;
          }
          mismatches++;
          assert.ok(res.currentVersion > known, `mismatch at ${known} reports a newer version (${res.currentVersion})`);
          // Alternate between trusting the mismatch reply and re-reading the stream.
          known = mismatches % 2 === 0 ? res.currentVersion : await currentVersion(c, NS, STREAM);
        }
      }
      return { acks, mismatches };
    }

    it("exactly one append wins per version, versions are dense 1..N, every acknowledged event is in the stream exactly once", async () => {
      const results = await Promise.all(Array.from({ length: WORKERS }, (_, w) => appender(w, w % 2 === 0 ? a : b)));
      const acks = results.flatMap((r) => r.acks);
      const mismatches = results.reduce((n, r) => n + r.mismatches, 0);
      assert.equal(acks.length, WORKERS * APPENDS_EACH);
      assert.ok(mismatches > 0, "the appenders really raced (some expected versions were stale)");

      // Exactly one winner per version: the acknowledged ranges tile 1..N.
      acks.sort((x, y) => x.res.firstVersion - y.res.firstVersion);
      let next = 1;
      for (const k of acks) {
        assert.equal(k.res.firstVersion, next, `the batch acknowledged after version ${next - 1} starts at ${next}`);
        next += k.ids.length;
      }
      const N = next - 1;
      const ackedIds = acks.flatMap((k) => k.ids);
      assert.equal(ackedIds.length, N);

      // Positions follow the version order within the stream.
      assertIncreasing(
        acks.map((k) => k.res.position),
        "batch positions in version order",
      );

      for (const c of [a, b]) {
        const read = await c.readStream({ namespace: NS, stream: STREAM });
        assertVersions(read, 1, N, "ReadStream");
        assert.deepEqual(
          read.map((e) => e.id),
          ackedIds,
          "each acknowledged event, once, at the version it was acknowledged at",
        );
        assertIncreasing(
          read.map((e) => e.position),
          "positions",
        );
        for (const k of acks) {
          const first = at(read, k.res.firstVersion - 1);
          assert.equal(first.position, k.res.position, "the acknowledged position is the first event's");
          assert.equal(first.type, `w${k.worker}`);
        }
      }
      const rows = await dbEvents(cluster.databaseUrl, NS, STREAM);
      assert.deepEqual(
        rows.map((r) => r.stream_version),
        Array.from({ length: N }, (_, i) => i + 1),
        "Postgres: versions dense, in position order",
      );
      assert.deepEqual(
        rows.map((r) => r.event_id),
        ackedIds,
      );
      assert.equal(await dbStreamVersion(cluster.databaseUrl, NS, STREAM), N);
    });
  });

  describe("AppendEvent: idempotent retries", () => {
    const NS = "ev-idem";

    it("a batch re-sent after its reply was lost is appended once: the retry (through the other replica) replays the original outcome", async () => {
      const batch = [ev("a", "1"), ev("b", "2", { m: "x" }), ev("c", "3")];
      const first = await a.appendEvent({ namespace: NS, stream: "lost", expected: { noStream: true }, events: batch });
      assert.equal(first.applied, true);
      await a.appendEvent({ namespace: NS, stream: "lost", expected: { any: true }, events: [ev()] }); // the stream moves on
      for (const c of [b, a]) {
        // The retry carries the very same request, expected no_stream included.
        const retry = await c.appendEvent({
          namespace: NS,
          stream: "lost",
          expected: { noStream: true },
          events: batch,
        });
        assert.equal(retry.applied, true);
        assert.equal(retry.replayed, true);
        assert.equal(retry.firstVersion, first.firstVersion);
        assert.equal(retry.position, first.position);
        assert.equal(retry.currentVersion, 4, "the stream's current version");
      }
      const read = await b.readStream({ namespace: NS, stream: "lost" });
      assertVersions(read, 1, 4, "lost");
      assert.deepEqual(
        read.slice(0, 3).map((e) => e.id),
        batch.map((e) => e.id),
      );
      assert.equal((await dbEvents(cluster.databaseUrl, NS, "lost")).length, 4);
    });

    it("a batch retried after a client-side timeout (the first attempt stuck on the stream's row lock) is appended once", async () => {
      await a.appendEvent({ namespace: NS, stream: "timeout", expected: { noStream: true }, events: [ev()] });
      const batch = [ev("x"), ev("y")];
      const blocker = new Client({ connectionString: cluster.databaseUrl });
      blocker.on("error", () => undefined);
      await blocker.connect();
      try {
        await blocker.query("BEGIN");
        await blocker.query("SELECT version FROM streams WHERE namespace = $1 AND stream = $2 FOR UPDATE", [
          NS,
          "timeout",
        ]);
        await expectGrpcError(
          a.appendEvent(
            { namespace: NS, stream: "timeout", expected: { version: 1 }, events: batch },
            { deadlineMs: 500 },
          ),
          status.DEADLINE_EXCEEDED,
        );
        // The retry goes to the other replica and waits behind the same lock.
        const retry = b.appendEvent({ namespace: NS, stream: "timeout", expected: { version: 1 }, events: batch });
        await blocker.query("COMMIT");
        const r = await retry;
        assert.equal(r.applied, true);
        assert.equal(r.firstVersion, 2);
        assert.equal(r.currentVersion, 3);
        // And once more, as a client that is still unsure would.
        const again = await a.appendEvent({
          namespace: NS,
          stream: "timeout",
          expected: { version: 1 },
          events: batch,
        });
        assert.equal(again.replayed, true);
        assert.equal(again.position, r.position);
      } finally {
        await blocker.end().catch(() => undefined);
      }
      const rows = await dbEvents(cluster.databaseUrl, NS, "timeout");
      assert.deepEqual(
        rows.map((r) => r.stream_version),
        [1, 2, 3],
      );
      assert.deepEqual(
        rows.slice(1).map((r) => r.event_id),
        batch.map((e) => e.id),
      );
    });

    // Guarantee 7: work stops when the caller has gone. The append's own
    // statement checks the caller's deadline once it holds the revision lock.
    it("an append stuck on its stream's row lock past its caller's deadline is not applied once the lock is released", async () => {
      await a.appendEvent({ namespace: NS, stream: "late", expected: { noStream: true }, events: [ev()] });
      const blocker = new Client({ connectionString: cluster.databaseUrl });
      blocker.on("error", () => undefined);
      await blocker.connect();
      try {
        const blockerPid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
        await blocker.query("BEGIN");
        await blocker.query("SELECT version FROM streams WHERE namespace = $1 AND stream = $2 FOR UPDATE", [
          NS,
          "late",
        ]);
        const late = a.appendEvent(
          { namespace: NS, stream: "late", expected: { any: true }, events: [ev("late")] },
          { deadlineMs: 300 },
        );
        await expectGrpcError(late, status.DEADLINE_EXCEEDED);
        assert.equal(
          await blockedBy(cluster.databaseUrl, blockerPid),
          1,
          "the append is still waiting for the stream's row when its caller gives up",
        );
        await sleep(100); // past the deadline by the server's clock too
        await blocker.query("COMMIT");
        await eventually(
          "the stuck append to finish",
          async () => (await blockedBy(cluster.databaseUrl, blockerPid)) === 0,
        );
      } finally {
        await blocker.end().catch(() => undefined);
      }
      const next = await b.appendEvent({ namespace: NS, stream: "late", expected: { version: 1 }, events: [ev()] });
      assert.equal(next.applied, true, "the late append was applied after its caller had gone");
      assert.deepEqual(
        (await dbEvents(cluster.databaseUrl, NS, "late")).map((r) => r.stream_version),
        [1, 2],
      );
    });

    it("the same batch sent concurrently through both replicas is appended once; one applies, the other replays its position", async () => {
      const ROUNDS = 15;
      for (let round = 0; round < ROUNDS; round++) {
        const stream = round % 3 === 0 ? `conc-${round}` : "conc";
        const expected: ExpectedStream = round % 3 === 0 ? { noStream: true } : { any: true };
        const batch = [ev(`r${round}`, "1"), ev(`r${round}`, "2")];
        const [x, y] = await Promise.all(
          [a, b].map((c) => c.appendEvent({ namespace: NS, stream, expected, events: batch })),
        );
        assert.ok(x && y);
        assert.equal(x.applied && y.applied, true, `round ${round}: both report the batch as appended`);
        assert.equal(
          [x.replayed, y.replayed].filter((r) => !r).length,
          1,
          `round ${round}: exactly one of the two appended`,
        );
        assert.equal(x.position, y.position, `round ${round}: same position`);
        assert.equal(x.firstVersion, y.firstVersion, `round ${round}: same first version`);
      }
      const rows = await dbEvents(cluster.databaseUrl, NS);
      const conc = rows.filter((r) => r.stream.startsWith("conc"));
      assert.equal(conc.length, ROUNDS * 2, "every batch once");
      assert.equal(new Set(conc.map((r) => r.event_id)).size, ROUNDS * 2);
      const main = await a.readStream({ namespace: NS, stream: "conc" });
      assertVersions(main, 1, (ROUNDS - ROUNDS / 3) * 2, "conc");
    });

    it("an id re-sent with different content, in another order, or partly with new ids is FAILED_PRECONDITION and appends nothing", async () => {
      const e1 = ev("t", "data", { k: "v" });
      const e2 = ev("t", "data2");
      await a.appendEvent({ namespace: NS, stream: "reuse", expected: { noStream: true }, events: [e1, e2] });
      const variants: [string, DeepPartial<EventData>[]][] = [
        ["other data", [{ ...e1, data: Buffer.from("DATA") }, e2]],
        ["other type", [{ ...e1, type: "u" }, e2]],
        ["other metadata", [{ ...e1, metadata: { k: "w" } }, e2]],
        ["extra metadata", [{ ...e1, metadata: { k: "v", x: "" } }, e2]],
        ["other order", [e2, e1]],
        ["partial", [e1, e2, ev()]],
        ["partial, single id", [e2, ev()]],
      ];
      for (const [what, events] of variants) {
        for (const c of [a, b]) {
          const err = await expectGrpcError(
            c.appendEvent({ namespace: NS, stream: "reuse", expected: { any: true }, events }),
            FP,
          );
          assert.ok(err.details.length > 0, `${what}: explains why`);
        }
      }
      assertVersions(await b.readStream({ namespace: NS, stream: "reuse" }), 1, 2, "reuse is unchanged");
      assert.equal((await dbEvents(cluster.databaseUrl, NS, "reuse")).length, 2);
      // The exact batch is still a replay.
      const ok = await b.appendEvent({ namespace: NS, stream: "reuse", expected: { any: true }, events: [e1, e2] });
      assert.equal(ok.replayed, true);
    });

    it("the same ids appended to another stream are FAILED_PRECONDITION, also when both appends race through both replicas", async () => {
      const batch = [ev("t", "1"), ev("t", "2")];
      await a.appendEvent({ namespace: NS, stream: "home", expected: { any: true }, events: batch });
      await expectGrpcError(
        b.appendEvent({ namespace: NS, stream: "elsewhere", expected: { any: true }, events: batch }),
        FP,
        { reason: "EVENT_ID_REUSED" },
      );
      await expectGrpcError(b.readStream({ namespace: NS, stream: "elsewhere" }), status.NOT_FOUND);
      assert.equal(await dbStreamVersion(cluster.databaseUrl, NS, "elsewhere"), undefined);

      // Ids are per namespace: the same ids in another namespace are new events.
      const other = await b.appendEvent({
        namespace: `${NS}-2`,
        stream: "elsewhere",
        expected: { any: true },
        events: batch,
      });
      assert.equal(other.applied, true);
      assert.equal(other.replayed, false);

      for (let round = 0; round < 10; round++) {
        const race = [ev("r", String(round)), ev("r", "x")];
        const settled = await Promise.allSettled([
          a.appendEvent({ namespace: NS, stream: `race-a-${round}`, expected: { any: true }, events: race }),
          b.appendEvent({ namespace: NS, stream: `race-b-${round}`, expected: { any: true }, events: race }),
        ]);
        const ok = settled.filter((s) => s.status === "fulfilled");
        const failed = settled.filter((s): s is PromiseRejectedResult => s.status === "rejected");
        assert.equal(ok.length, 1, `round ${round}: exactly one stream gets the ids`);
        assert.equal(failed.length, 1);
        assert.equal((failed[0]!.reason as ServiceError).code, FP, `round ${round}: ${String(failed[0]!.reason)}`);
        const rows = (await dbEvents(cluster.databaseUrl, NS)).filter(
          (r) => /^race-[ab]-/.test(r.stream) && r.stream.endsWith(`-${round}`),
        );
        assert.equal(rows.length, 2, `round ${round}: the ids exist once`);
        assert.equal(new Set(rows.map((r) => r.stream)).size, 1);
        const loser = rows[0]!.stream === `race-a-${round}` ? `race-b-${round}` : `race-a-${round}`;
        assert.equal(
          await dbStreamVersion(cluster.databaseUrl, NS, loser),
          undefined,
          "the losing stream was not created",
        );
      }
    });
  });

  describe("ReadStream", () => {
    const NS = "ev-read";
    const N = 1203; // more than two of the server's 500-event pages
    let ids: string[] = [];

    before(async () => {
      ids = [];
      let v = 0;
      for (const size of [401, 401, 401]) {
        const batch = Array.from({ length: size }, (_, i) => ev("n", String(v + i + 1)));
        const r = await a.appendEvent({
          namespace: NS,
          stream: "long",
          expected: v === 0 ? { noStream: true } : { version: v },
          events: batch,
        });
        assert.equal(r.applied, true);
        // Another stream in between, so positions of "long" are not contiguous.
        await b.appendEvent({ namespace: NS, stream: "noise", expected: { any: true }, events: [ev()] });
        ids.push(...batch.map((e) => e.id));
        v += size;
      }
      assert.equal(v, N);
    });

    const fwd = Direction.DIRECTION_FORWARDS;
    const back = Direction.DIRECTION_BACKWARDS;

    it("reads a stream longer than one page forwards and backwards, whole", async () => {
      const all = await b.readStream({ namespace: NS, stream: "long" });
      assertVersions(all, 1, N, "forwards (default direction)");
      assert.deepEqual(
        all.map((e) => e.id),
        ids,
      );
      assert.ok(all.every((e) => e.stream === "long" && Buffer.from(e.data).toString() === String(e.streamVersion)));
      assertIncreasing(
        all.map((e) => e.position),
        "positions",
      );
      const explicit = await a.readStream({ namespace: NS, stream: "long", direction: fwd });
      assert.deepEqual(
        explicit.map((e) => e.id),
        ids,
      );
      const backwards = await a.readStream({ namespace: NS, stream: "long", direction: back });
      assertVersions(backwards, N, 1, "backwards from the end");
      assert.deepEqual(
        backwards.map((e) => e.id),
        [...ids].reverse(),
      );
    });

    it("from_version and limit, across page boundaries, both directions", async () => {
      const cases: [number, Direction, number, number, number][] = [
        // from, direction, limit, expected first, expected last
        [450, fwd, 600, 450, 1049],
        [1, fwd, 500, 1, 500],
        [1, fwd, 501, 1, 501],
        [0, fwd, 1000, 1, 1000],
        [700, fwd, 0, 700, N],
        [N, fwd, 0, N, N],
        [1100, back, 700, 1100, 401],
        [0, back, 501, N, N - 500],
        [0, back, 1, N, N],
        [1, back, 0, 1, 1],
        [600, back, 0, 600, 1],
        [5000, back, 3, N, N - 2],
      ];
      for (const [from, direction, limit, first, last] of cases) {
        const got = await (from % 2 === 0 ? a : b).readStream({
          namespace: NS,
          stream: "long",
          fromVersion: from,
          direction,
          limit,
        });
        assertVersions(got, first, last, `from ${from} ${Direction[direction]} limit ${limit}`);
        assert.equal(at(got, 0).id, ids[first - 1]);
      }
      const beyond = await a.readStream({ namespace: NS, stream: "long", fromVersion: N + 1 });
      assert.deepEqual(beyond, [], "forwards past the end: nothing");
    });

    it("NOT_FOUND for an unknown stream (also one that exists only in another namespace); INVALID_ARGUMENT naming the field", async () => {
      await expectGrpcError(a.readStream({ namespace: NS, stream: "nope" }), status.NOT_FOUND);
      await expectGrpcError(b.readStream({ namespace: "ev-read-other", stream: "long" }), status.NOT_FOUND);
      await expectGrpcError(a.readStream({ namespace: NS, stream: "long", fromVersion: -1 }), IA, {
        field: "from_version",
      });
      await expectGrpcError(a.readStream({ namespace: NS, stream: "long", limit: -5 }), IA, { field: "limit" });
      await expectGrpcError(a.readStream({ namespace: NS, stream: "long", direction: 7 as Direction }), IA, {
        field: "direction",
      });
      await expectGrpcError(a.readStream({ namespace: NS, stream: "" }), IA, { field: "stream" });
      await expectGrpcError(a.readStream({ namespace: "", stream: "long" }), IA, { field: "namespace" });
    });
  });

  describe("AppendEvent with a fence", () => {
    const NS = "ev-fence";
    const LOCK = "writer";

    it("a stale fencing token is FAILED_PRECONDITION and appends nothing; the current token appends", async () => {
      const ttl = { seconds: 30, nanos: 0 };
      const l1 = await a.lock({ namespace: NS, name: LOCK, ttl, owner: "first" });
      assert.equal(l1.acquired, true);
      const firstBatch = [ev()];
      const r1 = await a.appendEvent({
        namespace: NS,
        stream: "fenced",
        expected: { noStream: true },
        events: firstBatch,
        fence: { lockName: LOCK, token: l1.fencingToken },
      });
      assert.equal(r1.applied, true, "the holder's write is accepted");
      assert.equal((await a.unlock({ namespace: NS, name: LOCK, lockId: l1.lockId })).released, true);
      const l2 = await b.lock({ namespace: NS, name: LOCK, ttl, owner: "second" });
      assert.equal(l2.acquired, true);
      assert.ok(l2.fencingToken > l1.fencingToken);

      // The first holder, paused past its lock, writes with its old token.
      for (const [c, expected] of [
        [a, { any: true }],
        [b, { version: 1 }],
        [a, { exists: true }],
      ] as const) {
        await expectGrpcError(
          c.appendEvent({
            namespace: NS,
            stream: "fenced",
            expected,
            events: [ev("late")],
            fence: { lockName: LOCK, token: l1.fencingToken },
          }),
          FP,
          { reason: "FENCE_STALE" },
        );
      }
      // A stale fence on a stream that does not exist yet leaves no stream behind.
      await expectGrpcError(
        b.appendEvent({
          namespace: NS,
          stream: "fenced-new",
          expected: { noStream: true },
          events: [ev("late")],
          fence: { lockName: LOCK, token: l1.fencingToken },
        }),
        FP,
        { reason: "FENCE_STALE" },
      );
      // A token never issued is refused too.
      await expectGrpcError(
        b.appendEvent({
          namespace: NS,
          stream: "fenced",
          expected: { any: true },
          events: [ev("forged")],
          fence: { lockName: LOCK, token: l2.fencingToken + 10 },
        }),
        FP,
      );
      assertVersions(await b.readStream({ namespace: NS, stream: "fenced" }), 1, 1, "nothing was appended");
      await expectGrpcError(a.readStream({ namespace: NS, stream: "fenced-new" }), status.NOT_FOUND);
      assert.equal((await dbEvents(cluster.databaseUrl, NS)).length, 1);
      assert.equal(await dbStreamVersion(cluster.databaseUrl, NS, "fenced-new"), undefined);

      const r2 = await b.appendEvent({
        namespace: NS,
        stream: "fenced",
        expected: { version: 1 },
        events: [ev("current")],
        fence: { lockName: LOCK, token: l2.fencingToken },
      });
      assert.equal(r2.applied, true, "the current holder's write is accepted");
      // The first holder's batch, re-sent with its (now stale) token, is a retry: its first outcome.
      const firstAgain = await b.appendEvent({
        namespace: NS,
        stream: "fenced",
        expected: { noStream: true },
        events: firstBatch,
        fence: { lockName: LOCK, token: l1.fencingToken },
      });
      assert.equal(firstAgain.replayed, true);
      assert.equal(firstAgain.position, r1.position);
      await b.unlock({ namespace: NS, name: LOCK, lockId: l2.lockId });
    });
  });
});

describe("EventService: retention by count (AGENTSTATE_STREAM_MAX_EVENTS=5, fast janitor)", function () {
  this.timeout(120_000);
  const NS = "ev-retention";
  const ec = eventClusterHooks({
    name: "events_retention",
    replicas: 1,
    env: { AGENTSTATE_STREAM_MAX_EVENTS: "5", AGENTSTATE_JANITOR_INTERVAL_MS: "100" },
  });

  it("a stream of 20 events is trimmed to its last 5; appends keep working during trimming and versions carry on", async () => {
    const { cluster, client: c } = ec;
    // One event per append, so trimming runs while the stream is being written.
    const busy = (async () => {
      const acks: AppendEventResponse[] = [];
      for (let i = 0; i < 60; i++) {
        const r = await c.appendEvent({
          namespace: NS,
          stream: "busy",
          expected: i === 0 ? { noStream: true } : { version: i },
          events: [ev("b", String(i + 1))],
        });
        acks.push(r);
      }
      return acks;
    })();
    for (let i = 0; i < 20; i++) {
      const r = await c.appendEvent({
        namespace: NS,
        stream: "twenty",
        expected: i === 0 ? { noStream: true } : { version: i },
        events: [ev("t", String(i + 1))],
      });
      assert.equal(r.applied, true);
    }
    const busyAcks = await busy;
    assert.ok(
      busyAcks.every((r, i) => r.applied && r.firstVersion === i + 1),
      "every append during trimming applied at its expected version",
    );

    await eventually("stream 'twenty' trimmed to versions 16..20", async () => {
      const got = await c.readStream({ namespace: NS, stream: "twenty" });
      return got.length === 5;
    });
    const got = await c.readStream({ namespace: NS, stream: "twenty", fromVersion: 0 });
    assertVersions(got, 16, 20, "forwards from 0");
    assert.deepEqual(
      got.map((e) => Buffer.from(e.data).toString()),
      ["16", "17", "18", "19", "20"],
    );
    assertVersions(
      await c.readStream({ namespace: NS, stream: "twenty", direction: Direction.DIRECTION_BACKWARDS }),
      20,
      16,
      "backwards",
    );
    assertVersions(
      await c.readStream({ namespace: NS, stream: "twenty", fromVersion: 3 }),
      16,
      20,
      "from a trimmed version",
    );

    // Trimming never resets a stream: its version carries on.
    const stale = await c.appendEvent({ namespace: NS, stream: "twenty", expected: { version: 5 }, events: [ev()] });
    assert.equal(stale.applied, false);
    assert.equal(stale.currentVersion, 20);
    const next = await c.appendEvent({ namespace: NS, stream: "twenty", expected: { version: 20 }, events: [ev()] });
    assert.equal(next.firstVersion, 21);
    await eventually("busy trimmed to its last 5", async () => {
      const rows = await dbEvents(cluster.databaseUrl, NS, "busy");
      return rows.length === 5 && rows[0]!.stream_version === 56;
    });
    await eventually("twenty trimmed to 17..21", async () => {
      const rows = await dbEvents(cluster.databaseUrl, NS, "twenty");
      return rows.map((r) => r.stream_version).join(",") === "17,18,19,20,21";
    });
  });
});

describe("EventService: retention by age (AGENTSTATE_EVENT_RETENTION_SECONDS=1, fast janitor)", function () {
  this.timeout(120_000);
  const NS = "ev-age";
  const ec = eventClusterHooks({
    name: "events_age",
    replicas: 1,
    env: { AGENTSTATE_EVENT_RETENTION_SECONDS: "1", AGENTSTATE_JANITOR_INTERVAL_MS: "100" },
  });

  it("events older than the retention are removed; the stream keeps its version and takes further appends", async () => {
    const { cluster, client: c } = ec;
    const r = await c.appendEvent({
      namespace: NS,
      stream: "old",
      expected: { noStream: true },
      events: [ev(), ev(), ev()],
    });
    assert.equal(r.currentVersion, 3);
    await eventually(
      "the old events to be removed",
      async () => (await dbEvents(cluster.databaseUrl, NS, "old")).length === 0,
      { timeoutMs: 30_000 },
    );
    assert.deepEqual(await c.readStream({ namespace: NS, stream: "old" }), [], "an emptied stream reads as empty");
    const stale = await c.appendEvent({ namespace: NS, stream: "old", expected: { noStream: true }, events: [ev()] });
    assert.equal(stale.applied, false, "an emptied stream still exists");
    assert.equal(stale.currentVersion, 3);
    const next = await c.appendEvent({ namespace: NS, stream: "old", expected: { version: 3 }, events: [ev("new")] });
    assert.equal(next.applied, true);
    assert.equal(next.firstVersion, 4);
  });
});
