/**
 * Load and abuse (issue 17): requests. Huge metadata maps, alone and sent by
 * eight clients at once; header fields past AGENTSTATE_MAX_HEADER_COUNT;
 * maximum-size requests (one field repeated, unknown fields, one byte past the
 * message limit); raw HTTP/2 header floods (many fields, a huge value, -bin
 * values past the header list limit, a block that never ends). Each is
 * refused (the field and the limit named, or the stream reset before any
 * handler) with nothing written, a refused one costs the server little CPU
 * next to an accepted small call (a generous ratio; BENCHMARKS.md has the
 * figures), the server's RSS stays under a stated bound, and a well-behaved
 * client on its own connection keeps its Get p99 within a stated multiple of
 * its quiet p99 (test/support/wellBehaved.ts).
 */
import * as assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { Metadata, status } from "@grpc/grpc-js";
import { AppendEventRequest } from "../../clients/typescript/src/gen/agentstate/v1/event";
import { EventClient } from "../support/eventClient";
import { eventually } from "../support/eventually";
import { pgQuery } from "../support/pgQuery";
import { cpuSeconds, rssMiB } from "../support/procfs";
import { fBytes, message } from "../support/protoWire";
import { RawGrpcClient } from "../support/RawGrpcClient";
import { frame, FRAME, grpcRequestFields, headerBlock, RawH2Connection } from "../support/rawH2";
import { startCluster, type Cluster } from "../support/startCluster";
import { assertKeepsLatency, assertRssGrowth, WellBehavedClient, type LatencyStats } from "../support/wellBehaved";

const APPEND = "/agentstate.v1.EventService/AppendEvent";
const GET = "/agentstate.v1.KeyValueService/Get";
const NS = "abuse-req";

/** Server CPU seconds `pid` spent while `work` ran. */
async function serverCpu(pid: number, work: () => Promise<unknown>): Promise<number> {
  const before = cpuSeconds(pid);
  await work();
  // /proc counts in 10 ms ticks: let the last ones land.
  await new Promise((r) => setTimeout(r, 50));
  return cpuSeconds(pid) - before;
}

describe("abuse: requests", function () {
  this.timeout(60_000);
  let cluster: Cluster;
  let wb: WellBehavedClient;
  let events: EventClient;
  let rawClient: RawGrpcClient;
  let pid: number;

  before(async function () {
    this.timeout(120_000);
    cluster = await startCluster({ name: "abusereq", env: { AGENTSTATE_MAX_HEADER_COUNT: "32" } });
    pid = cluster.servers[0]!.pid!;
    wb = new WellBehavedClient(cluster.servers[0]!.address);
    await wb.prepare();
    events = new EventClient(cluster.servers[0]!.address, { ownChannel: true });
    rawClient = new RawGrpcClient(cluster.servers[0]!.address);
  });
  after(async () => {
    rawClient?.close();
    events?.close();
    wb?.close();
    await cluster?.stop();
  });

  const smallAppend = () =>
    events.appendEvent({
      namespace: NS,
      stream: "small",
      expected: { any: true },
      events: [{ id: randomUUID(), type: "t", metadata: { a: "b" } }],
    });

  it("8 clients sending 120k-entry metadata maps for 5 s: all refused naming the field and the limit, nothing written; cheap", async () => {
    // Encoded once: the clients send bytes, so the test process spends its CPU on sending, not encoding.
    const huge = Buffer.from(
      AppendEventRequest.encode(
        AppendEventRequest.fromPartial({
          namespace: NS,
          stream: "huge",
          expected: { any: true },
          events: [
            {
              id: randomUUID(),
              type: "t",
              metadata: Object.fromEntries(Array.from({ length: 120_000 }, (_, i) => [`k${i}`, "v"])),
            },
          ],
        }),
      ).finish(),
    );
    // Server CPU per call, each kind alone: K refused huge appends, then K accepted 1-entry ones.
    const K = 20;
    const codes = new Map<string, number>();
    const sendHuge = async (c: RawGrpcClient) => {
      const r = await c.unary(APPEND, huge, 30_000);
      const key = `${status[r.code]} ${r.details}`;
      codes.set(key, (codes.get(key) ?? 0) + 1);
    };
    for (let i = 0; i < 20; i++) await smallAppend(); // warm
    await sendHuge(rawClient);
    const hugeCpu = await serverCpu(pid, async () => {
      for (let i = 0; i < K; i++) await sendHuge(rawClient);
    });
    const smallCpu = await serverCpu(pid, async () => {
      for (let i = 0; i < K; i++) await smallAppend();
    });

    // Then 8 clients at once, for 5 s, while the well-behaved client measures.
    const quiet = await wb.run(2000);
    const load = wb.background();
    const rssBefore = rssMiB(pid)!;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid) ?? 0)), 100);
    const clients = Array.from({ length: 8 }, () => new RawGrpcClient(cluster.servers[0]!.address));
    let sent = 0;
    const stopAt = Date.now() + 5000;
    await Promise.all(
      clients.map(async (c) => {
        while (Date.now() < stopAt) {
          await sendHuge(c);
          sent++;
        }
      }),
    );
    clearInterval(sampler);
    for (const c of clients) c.close();
    const loaded = await load.stop();

    const perSmall = smallCpu / K;
    const perHuge = hugeCpu / K;
    console.log(
      `      refused 120k-entry append (${(huge.length / 1e6).toFixed(1)} MB): ${(perHuge * 1000).toFixed(1)} ms server CPU each; ` +
        `accepted 1-entry append ${(perSmall * 1000).toFixed(1)} ms; ratio ${(perHuge / perSmall).toFixed(1)}×; ` +
        `8 clients for 5 s: ${sent} refused, RSS ${rssBefore.toFixed(0)} -> peak ${rssPeak.toFixed(0)} MiB`,
    );
    const [only] = [...codes.keys()];
    assert.equal(codes.size, 1, JSON.stringify([...codes]));
    assert.match(
      only!,
      /^INVALID_ARGUMENT events\[0\]\.metadata: .*the limit is 64 \(AGENTSTATE_MAX_EVENT_METADATA_ENTRIES\)$/,
    );
    const rows = await pgQuery<{ n: string }>(
      cluster.databaseUrl,
      "SELECT count(*)::text AS n FROM events WHERE namespace = $1 AND stream = 'huge'",
      [NS],
    );
    assert.equal(rows[0]?.n, "0", "nothing written");
    // Receiving 1.6 MB over HTTP/2 is most of it; the count stops at entry 65. Generous: 20×.
    assert.ok(
      perHuge < 20 * perSmall,
      `a refused huge append cost ${perHuge} s of server CPU, an accepted small one ${perSmall} s`,
    );
    assert.ok(rssPeak < 400, `server RSS peaked at ${rssPeak} MiB`);
    assertKeepsLatency(quiet, loaded);
  });
  it("header fields past AGENTSTATE_MAX_HEADER_COUNT (32 here): the stream is reset before any handler (RESOURCE_EXHAUSTED), nothing written", async () => {
    const call = (entries: number) =>
      new Promise<{ code: number; details: string } | undefined>((resolve) => {
        const md = new Metadata();
        for (let i = 0; i < entries; i++) md.set(`x-h${i}`, "v");
        events.raw.appendEvent(
          AppendEventRequest.fromPartial({
            namespace: NS,
            stream: `count${entries}`,
            expected: { any: true },
            events: [{ id: randomUUID(), type: "t" }],
          }),
          md,
          { deadline: new Date(Date.now() + 10_000) },
          (e) => resolve(e ? { code: e.code, details: e.details } : undefined),
        );
      });
    // About 10 fields come with every call: 40 more are over 32, 10 more are under.
    const over = await call(40);
    const under = await call(10);
    console.log(`      40 extra header fields: ${over && status[over.code]} (${over?.details})`);
    assert.equal(over?.code, status.RESOURCE_EXHAUSTED, JSON.stringify(over));
    assert.equal(under, undefined, "10 extra fields are under the limit");
    const rows = await pgQuery<{ stream: string }>(
      cluster.databaseUrl,
      "SELECT DISTINCT stream FROM events WHERE namespace = $1 AND stream LIKE 'count%'",
      [NS],
    );
    assert.deepEqual(
      rows.map((r) => r.stream),
      ["count10"],
    );
  });

  it("maximum-size requests of one field repeated or of unknown fields cost time in proportion to their size only; one byte past the message limit is refused", async () => {
    // ~3.6 MB each, under the message limit: max(AGENTSTATE_MAX_VALUE_BYTES, AGENTSTATE_MAX_APPEND_BYTES) + 64 KiB.
    // Built with Buffer.concat of an array: spreading 400k fields into one call overflowed the stack (abuse-wip).
    const N = 400_000;
    const LIMIT = 4 * 1024 * 1024 + 64 * 1024;
    const repeatedKey = Buffer.concat([fBytes(1, NS), ...Array.from({ length: N }, () => fBytes(2, "kkkkkkk"))]);
    const unknown = Buffer.concat([
      fBytes(1, NS),
      fBytes(2, "k"),
      ...Array.from({ length: N }, () => fBytes(99, "uuuuuu")),
    ]);
    const tooBig = Buffer.concat([fBytes(1, NS), fBytes(2, "k"), fBytes(99, Buffer.alloc(LIMIT))]);
    const plain = message(fBytes(1, NS), fBytes(2, "k"));
    for (let i = 0; i < 20; i++) await rawClient.unary(GET, plain);
    const K = 5;
    const cost = async (payload: Buffer) => {
      let last = "";
      const cpu = await serverCpu(pid, async () => {
        for (let i = 0; i < K; i++) {
          const r = await rawClient.unary(GET, payload, 20_000);
          last = `${status[r.code]} ${r.details}`;
        }
      });
      return { perCall: cpu / K, last };
    };
    const PLAIN = 50;
    const plainCpu = await serverCpu(pid, async () => {
      for (let i = 0; i < PLAIN; i++) await rawClient.unary(GET, plain);
    });
    const quiet = await wb.run(2000);
    const load = wb.background();
    const rssBefore = rssMiB(pid)!;
    let measured;
    let loaded: LatencyStats;
    try {
      measured = { rep: await cost(repeatedKey), unk: await cost(unknown), over: await cost(tooBig) };
    } finally {
      loaded = await load.stop();
    }
    const { rep, unk, over } = measured;
    const rss = rssMiB(pid)!;
    const perPlain = plainCpu / PLAIN;
    console.log(
      `      ${(repeatedKey.length / 1e6).toFixed(1)} MB Get of one field repeated ${N}x: ${(rep.perCall * 1000).toFixed(1)} ms server CPU (${rep.last}); ` +
        `of ${N} unknown fields: ${(unk.perCall * 1000).toFixed(1)} ms (${unk.last}); a plain Get ${(perPlain * 1000).toFixed(2)} ms; ` +
        `${(tooBig.length / 1e6).toFixed(2)} MB (past the ${LIMIT}-byte limit): ${(over.perCall * 1000).toFixed(1)} ms (${over.last}); ` +
        `RSS ${rssBefore.toFixed(0)} -> ${rss.toFixed(0)} MiB`,
    );
    // Decoded last-one-wins / skipped: the Get itself answers (no such key) rather than failing.
    assert.match(rep.last, /^(OK|NOT_FOUND)/);
    assert.match(unk.last, /^(OK|NOT_FOUND)/);
    assert.match(over.last, /^RESOURCE_EXHAUSTED /);
    // Bounded by the message limit: a few tens of milliseconds at most, whatever is inside.
    assert.ok(rep.perCall < 0.25, `repeated field: ${rep.perCall} s per call`);
    assert.ok(unk.perCall < 0.25, `unknown fields: ${unk.perCall} s per call`);
    assert.ok(over.perCall < 0.25, `past the limit: ${over.perCall} s per call`);
    assertRssGrowth(rssBefore, rss);
    assertKeepsLatency(quiet, loaded);
  });

  it("raw HTTP/2 header floods for 3 s (10 000 fields, a 1 MiB value, 27 KB of -bin values, a block that never ends) and 200 -bin entries through grpc-js: each refused before any handler, nothing written, the server keeps serving", async () => {
    const quiet = await wb.run(2000);
    const load = wb.background();
    const rssBefore = rssMiB(pid)!;
    let rssPeak = rssBefore;
    const base = grpcRequestFields(APPEND);
    const floods: [string, (c: RawH2Connection) => Promise<void>][] = [
      [
        "10000 fields",
        async (c) =>
          void c.headerBlock(
            1,
            headerBlock([...base, ...Array.from({ length: 10_000 }, (_, i) => [`x-h${i}`, "v"] as const)]),
          ),
      ],
      ["1 MiB value", async (c) => void c.headerBlock(1, headerBlock([...base, ["x-huge", "a".repeat(1024 * 1024)]]))],
      [
        "20 -bin values of 1000 bytes (base64, as on the wire)",
        async (c) =>
          void c.headerBlock(
            1,
            headerBlock([
              ...base,
              ...Array.from({ length: 20 }, (_, i) => [`x-b${i}-bin`, randomBytes(1000).toString("base64")] as const),
            ]),
          ),
      ],
      [
        "a block that never ends (8 MiB of CONTINUATION)",
        async (c) => {
          // HEADERS then CONTINUATION frames without END_HEADERS (the CVE-2024-27316 shape).
          c.write(frame(FRAME.headers, 0, 1, headerBlock(base)));
          const chunk = frame(FRAME.continuation, 0, 1, headerBlock([["x-c", "c".repeat(16_000)]]));
          for (let i = 0; i < 512 && c.closedAt === undefined && c.goaways.length === 0 && !c.resets.has(1); i++) {
            if (!c.write(chunk)) await new Promise((r) => setTimeout(r, 5));
          }
        },
      ],
    ];
    const outcomes = new Map<string, Set<string>>();
    let passes = 0;
    const stopAt = Date.now() + 3000;
    try {
      do {
        for (const [label, flood] of floods) {
          const c = new RawH2Connection(cluster.servers[0]!.port);
          try {
            await eventually("SETTINGS", async () => c.settings.size > 0 || c.closedAt !== undefined);
            await flood(c);
            // Refused: the stream reset, or the connection ended (GOAWAY, or closed).
            await eventually(
              `${label}: refused`,
              async () => c.resets.has(1) || c.goaways.length > 0 || c.closedAt !== undefined,
              { timeoutMs: 15_000 },
            );
            const outcome = c.resets.has(1)
              ? `RST_STREAM ${c.resets.get(1)}`
              : c.goaways.length > 0
                ? `GOAWAY ${c.goaways[0]!.code}`
                : "closed";
            assert.ok(!c.answered.has(1), `${label}: no response began (no handler ran)`);
            const seen = outcomes.get(label) ?? new Set<string>();
            seen.add(outcome);
            outcomes.set(label, seen);
            rssPeak = Math.max(rssPeak, rssMiB(pid) ?? 0);
          } finally {
            c.destroy();
          }
        }
        passes++;
      } while (Date.now() < stopAt);

      // Through grpc-js: 200 -bin entries (over the 16 KiB header list, and over AGENTSTATE_MAX_HEADER_COUNT=32).
      const bin = new Metadata();
      for (let i = 0; i < 200; i++) bin.set(`x-b${i}-bin`, randomBytes(64));
      const binErr = await new Promise<{ code: number; details: string } | undefined>((resolve) =>
        events.raw.appendEvent(
          AppendEventRequest.fromPartial({
            namespace: NS,
            stream: "flood",
            expected: { any: true },
            events: [{ type: "t" }],
          }),
          bin,
          { deadline: new Date(Date.now() + 10_000) },
          (e) => resolve(e ? { code: e.code, details: e.details } : undefined),
        ),
      );
      const loaded = await load.stop();
      console.log(
        `      ${passes} passes of 4 raw floods, each on a connection of its own: ` +
          `${JSON.stringify(Object.fromEntries([...outcomes].map(([k, v]) => [k, [...v]])))}; ` +
          `grpc-js, 200 -bin entries: ${binErr && status[binErr.code]} (${binErr?.details}); RSS ${rssBefore.toFixed(0)} -> peak ${rssPeak.toFixed(0)} MiB`,
      );
      assert.equal(binErr?.code, status.RESOURCE_EXHAUSTED, JSON.stringify(binErr));
      const rows = await pgQuery<{ n: string }>(
        cluster.databaseUrl,
        "SELECT count(*)::text AS n FROM events WHERE namespace = $1 AND stream = 'flood'",
        [NS],
      );
      assert.equal(rows[0]?.n, "0", "nothing written");
      assertRssGrowth(rssBefore, rssPeak);
      assertKeepsLatency(quiet, loaded);
      // Still serving: an ordinary append.
      await smallAppend();
    } finally {
      await load.stop();
    }
  });
});
