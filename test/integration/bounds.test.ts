/**
 * Bounds under abuse, against a real server over real gRPC on loopback: the
 * metadata entries per event (a huge map is refused cheaply, nothing written);
 * Subscribe streams per namespace and per server, ReadStream calls per server;
 * HTTP/2 streams per connection, silent and idle connections closed, header
 * floods refused with the server still up.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import * as net from "node:net";
import { Metadata, status } from "@grpc/grpc-js";
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
      const last = await append("cap-a");
      await a4.untilPosition(last.position);
      await a2.untilPosition(last.position);
    });

    it("ReadStream calls per server: over the cap RESOURCE_EXHAUSTED naming AGENTSTATE_MAX_READ_STREAMS, freed when a read ends", async () => {
      // More than the client buffers (16 messages) and the HTTP/2 window: the server waits for the reader.
      for (let i = 0; i < 30; i++) {
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
        async () => (await c.readStream({ namespace: "cap-r", stream: "s" })).length === 30,
      );
    });
  });

  describe("HTTP/2 connections", () => {
    let cluster: Cluster;
    let c: EventClient;
    before(async () => {
      cluster = await startCluster({
        env: { AGENTSTATE_MAX_CONCURRENT_STREAMS: "3", AGENTSTATE_CONNECTION_IDLE_MS: "1000" },
      });
      c = new EventClient(cluster.servers[0]!.address, { ownChannel: true });
    });
    after(async () => {
      c?.close();
      await cluster?.stop();
    });

    it("streams per connection: past AGENTSTATE_MAX_CONCURRENT_STREAMS the client queues the stream until one ends", async () => {
      const subs = Array.from({ length: 5 }, () =>
        c.subscribe({ namespace: "h2", streamPrefix: "" }, { deadlineMs: 30_000 }),
      );
      try {
        const started = () => subs.filter((s) => s.caughtUps.length > 0).length;
        await eventually("3 streams started", async () => started() === 3);
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(started(), 3, "the 4th and 5th stream wait: HTTP/2 holds them back, nothing is refused");
        assert.ok(subs.every((s) => s.end === undefined));
        subs.find((s) => s.caughtUps.length > 0)!.cancel();
        await eventually("a queued stream started after one ended", async () => started() === 4);
      } finally {
        for (const s of subs) s.cancel();
      }
    });

    it("a silent TCP connection (no HTTP/2 preface) and an idle one are closed within AGENTSTATE_CONNECTION_IDLE_MS", async () => {
      const port = cluster.servers[0]!.port;
      const closedAfter = (send?: Buffer) =>
        new Promise<number>((resolve, reject) => {
          const t0 = performance.now();
          const sock = net.connect(port, "127.0.0.1", () => {
            if (send) sock.write(send);
          });
          sock.on("data", () => undefined);
          sock.on("error", () => undefined);
          sock.on("close", () => resolve(performance.now() - t0));
          setTimeout(() => {
            sock.destroy();
            reject(new Error("connection still open after 10 s"));
          }, 10_000).unref();
        });
      const preface = Buffer.concat([
        Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), // empty SETTINGS
      ]);
      const [silent, idle] = await Promise.all([closedAfter(), closedAfter(preface)]);
      console.log(
        `      silent connection closed after ${silent.toFixed(0)} ms, idle HTTP/2 one after ${idle.toFixed(0)} ms`,
      );
      assert.ok(silent < 5000 && idle < 5000);
    });

    it("the server advertises the stream and header list limits in its SETTINGS", async () => {
      const port = cluster.servers[0]!.port;
      const settings = await new Promise<Map<number, number>>((resolve, reject) => {
        const sock = net.connect(port, "127.0.0.1", () =>
          sock.write(
            Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]),
          ),
        );
        let buf = Buffer.alloc(0);
        sock.on("error", reject);
        sock.on("data", (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          // Frames: 3-byte length, type, flags, 4-byte stream id; SETTINGS (type 4) without ACK holds 6-byte entries.
          for (let at = 0; at + 9 <= buf.length;) {
            const len = buf.readUIntBE(at, 3);
            if (at + 9 + len > buf.length) break;
            if (buf[at + 3] === 4 && (buf[at + 4]! & 1) === 0) {
              const m = new Map<number, number>();
              for (let i = at + 9; i < at + 9 + len; i += 6) m.set(buf.readUInt16BE(i), buf.readUInt32BE(i + 2));
              sock.destroy();
              return resolve(m);
            }
            at += 9 + len;
          }
        });
      });
      assert.equal(settings.get(3), 3, "SETTINGS_MAX_CONCURRENT_STREAMS");
      assert.equal(settings.get(6), 16384, "SETTINGS_MAX_HEADER_LIST_SIZE");
    });

    it("a header flood is refused and the server keeps serving", async () => {
      const big = new Metadata();
      big.set("x-flood", "a".repeat(24 * 1024)); // over the 16 KiB limit, under Node's own default (64 KiB)
      const many = new Metadata();
      for (let i = 0; i < 1000; i++) many.set(`x-h${i}`, "v");
      for (const md of [big, many]) {
        const err = await new Promise<{ code: number; details: string } | undefined>((resolve) => {
          c.raw.appendEvent(
            {
              namespace: "h2",
              stream: "s",
              expected: { any: true },
              events: [{ id: randomUUID(), type: "t", data: Buffer.alloc(0), metadata: {} }],
              fence: undefined,
            },
            md,
            { deadline: new Date(Date.now() + 10_000) },
            (e) => resolve(e ? { code: e.code, details: e.details } : undefined),
          );
        });
        assert.ok(err, "refused");
        console.log(`      header flood: ${status[err.code]} ${err.details}`);
      }
      const rows = await pgQuery<{ n: string }>(
        cluster.databaseUrl,
        "SELECT count(*)::text AS n FROM events WHERE namespace = 'h2' AND stream = 's'",
      );
      assert.equal(rows[0]?.n, "0");
      // Headers under AGENTSTATE_MAX_HEADER_LIST_BYTES (16 KiB) pass.
      const fair = new Metadata();
      fair.set("x-fair", "a".repeat(8 * 1024));
      await new Promise<void>((resolve, reject) =>
        c.raw.appendEvent(
          {
            namespace: "h2",
            stream: "fair",
            expected: { any: true },
            events: [{ id: randomUUID(), type: "t", data: Buffer.alloc(0), metadata: {} }],
            fence: undefined,
          },
          fair,
          { deadline: new Date(Date.now() + 10_000) },
          (e) => (e ? reject(e) : resolve()),
        ),
      );
      const ok = await c.appendEvent({
        namespace: "h2",
        stream: "s",
        expected: { any: true },
        events: [{ id: randomUUID(), type: "t" }],
      });
      assert.equal(ok.applied, true);
    });
  });
});
