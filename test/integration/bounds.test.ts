/**
 * Bounds under abuse, against a real server over real gRPC on loopback: the
 * metadata entries per event (a huge map is refused cheaply, nothing written);
 * Subscribe streams per namespace and per server, ReadStream calls per server.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { EventClient, type Subscription } from "../support/eventClient";
import { eventually } from "../support/eventually";
import { expectGrpcError } from "../support/expectGrpcError";
import { pgQuery } from "../support/pgQuery";
import { cpuSeconds } from "../support/procfs";
import { startCluster, type Cluster } from "../support/startCluster";

const entries = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));

describe("bounds", function () {
  this.timeout(60_000);

  describe("metadata entries per event", () => {
    let cluster: Cluster;
    let c: EventClient;
    before(async () => {
      cluster = await startCluster({ env: { AGENTSTATE_MAX_EVENT_METADATA_ENTRIES: "8" } });
      c = new EventClient(cluster.servers[0]!.address);
    });
    after(async () => {
      c?.close();
      await cluster?.stop();
    });

    it("INVALID_ARGUMENT naming the field and the limit, nothing written; 8 entries accepted", async () => {
      const NS = "bounds-md";
      const ok = await c.appendEvent({
        namespace: NS,
        stream: "s",
        expected: { noStream: true },
        events: [{ id: randomUUID(), type: "t", metadata: entries(8) }],
      });
      assert.equal(ok.applied, true);
      const err = await expectGrpcError(
        c.appendEvent({
          namespace: NS,
          stream: "s",
          expected: { any: true },
          events: [
            { id: randomUUID(), type: "t" },
            { id: randomUUID(), type: "t", metadata: entries(9) },
          ],
        }),
        status.INVALID_ARGUMENT,
        { field: "events[1].metadata" },
      );
      assert.match(err.details, /the limit is 8 \(AGENTSTATE_MAX_EVENT_METADATA_ENTRIES\)/);
      const rows = await pgQuery<{ n: string }>(
        cluster.databaseUrl,
        "SELECT count(*)::text AS n FROM events WHERE namespace = $1",
        [NS],
      );
      assert.equal(rows[0]?.n, "1", "only the accepted append was written");
    });

    it("a 250k-entry map is refused cheaply (server CPU measured)", async () => {
      const pid = cluster.servers[0]!.pid!;
      const md = entries(250_000);
      const before = cpuSeconds(pid);
      const t0 = performance.now();
      await expectGrpcError(
        c.appendEvent({
          namespace: "bounds-md",
          stream: "big",
          expected: { any: true },
          events: [{ id: randomUUID(), type: "t", metadata: md }],
        }),
        status.INVALID_ARGUMENT,
        { field: "events[0].metadata" },
      );
      const cpu = cpuSeconds(pid) - before;
      console.log(
        `      250k-entry append refused: server CPU ${cpu.toFixed(2)} s, wall ${(performance.now() - t0).toFixed(0)} ms`,
      );
      assert.ok(cpu < 0.15, `server CPU for a refused 250k-entry append: ${cpu} s`);
    });
  });

  describe("Subscribe streams per namespace and per server", () => {
    let cluster: Cluster;
    let c: EventClient;
    const subs: Subscription[] = [];
    before(async () => {
      cluster = await startCluster({
        env: {
          AGENTSTATE_MAX_SUBSCRIBERS: "3",
          AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE: "2",
          AGENTSTATE_MAX_READ_STREAMS: "1",
        },
      });
      c = new EventClient(cluster.servers[0]!.address);
    });
    after(async () => {
      for (const s of subs) s.cancel();
      c?.close();
      await cluster?.stop();
    });

    const subscribe = (namespace: string) => {
      const s = c.subscribe({ namespace, streamPrefix: "" }, { deadlineMs: 50_000 });
      subs.push(s);
      return s;
    };
    const append = (namespace: string) =>
      c.appendEvent({ namespace, stream: "s", expected: { any: true }, events: [{ id: randomUUID(), type: "t" }] });

    it("RESOURCE_EXHAUSTED naming the limit; open streams keep receiving; a cancelled one frees its slot", async () => {
      const a1 = subscribe("cap-a");
      const a2 = subscribe("cap-a");
      await Promise.all([a1.caughtUp, a2.caughtUp]);
      const a3 = subscribe("cap-a");
      const end3 = await a3.ended;
      assert.equal(end3.code, status.RESOURCE_EXHAUSTED, end3.details);
      assert.match(end3.details, /namespace cap-a: the limit is 2 \(AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE\)/);

      const b1 = subscribe("cap-b");
      await b1.caughtUp;
      const c1 = subscribe("cap-c");
      const endC = await c1.ended;
      assert.equal(endC.code, status.RESOURCE_EXHAUSTED, endC.details);
      assert.match(endC.details, /the limit is 3 \(AGENTSTATE_MAX_SUBSCRIBERS\)/);

      await append("cap-a");
      await append("cap-b");
      await Promise.all([
        a1.until("1 event", (s) => s.events.length === 1),
        a2.until("1 event", (s) => s.events.length === 1),
      ]);
      await b1.until("1 event", (s) => s.events.length === 1);
      assert.equal(a1.end ?? a2.end ?? b1.end, undefined, "the open subscriptions were not touched");

      a1.cancel();
      await a1.ended;
      // The slot is released when the server sees the cancel: a new subscriber in cap-a gets in.
      const a4 = await eventually("a free slot in cap-a", async () => {
        const s = subscribe("cap-a");
        const r = await Promise.race([s.caughtUp.then(() => "ok" as const), s.ended.then((e) => e)]);
        if (r !== "ok") throw new Error(`refused: ${r.details}`);
        return s;
      });
      await append("cap-a");
      await a4.until("1 event", (s) => s.events.length === 1);
      await a2.until("2 events", (s) => s.events.length === 2);
    });

    it("ReadStream calls per server: over the cap RESOURCE_EXHAUSTED naming AGENTSTATE_MAX_READ_STREAMS, freed when a read ends", async () => {
      // Enough data that the server cannot push it all into the connection's windows and buffers.
      for (let i = 0; i < 12; i++) {
        await c.appendEvent({
          namespace: "cap-r",
          stream: "s",
          expected: { any: true },
          events: [{ id: randomUUID(), type: "t", data: Buffer.alloc(1_000_000) }],
        });
      }
      const reader = c.raw.readStream({ namespace: "cap-r", stream: "s", fromVersion: 0, direction: 0, limit: 0 });
      reader.on("error", () => undefined); // cancelled below
      await new Promise<void>((r) =>
        reader.once("data", () => {
          reader.pause(); // holds its slot: the server waits for the reader
          r();
        }),
      );
      const err = await expectGrpcError(c.readStream({ namespace: "cap-r", stream: "s" }), status.RESOURCE_EXHAUSTED);
      assert.match(err.details, /the limit is 1 \(AGENTSTATE_MAX_READ_STREAMS\)/);
      reader.cancel();
      await eventually(
        "a free ReadStream slot",
        async () => (await c.readStream({ namespace: "cap-r", stream: "s" })).length === 12,
      );
    });
  });
});
