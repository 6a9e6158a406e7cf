/**
 * Load and abuse (issue 17): requests. Huge metadata maps, alone and sent by
 * eight clients at once (header floods are in bounds.test.ts): every one is
 * refused naming the field and the limit with nothing written, a refused one
 * costs the server little CPU next to an accepted small append (a generous
 * ratio; BENCHMARKS.md has the figures), the server's RSS stays under a stated
 * bound, and a well-behaved client on its own connection keeps its Get p99
 * within a stated multiple of its quiet p99 (test/support/wellBehaved.ts).
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Metadata, status } from "@grpc/grpc-js";
import { AppendEventRequest } from "../../clients/typescript/src/gen/agentstate/v1/event";
import { EventClient } from "../support/eventClient";
import { pgQuery } from "../support/pgQuery";
import { cpuSeconds, rssMiB } from "../support/procfs";
import { RawGrpcClient } from "../support/RawGrpcClient";
import { startCluster, type Cluster } from "../support/startCluster";
import { assertKeepsLatency, WellBehavedClient } from "../support/wellBehaved";

const APPEND = "/agentstate.v1.EventService/AppendEvent";
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

  // Not yet passing here (branch abuse-wip): maximum-size requests of a repeated or unknown field, and header floods
  // over raw HTTP/2 (many fields, a huge value, binary values, a block that never ends).
});
