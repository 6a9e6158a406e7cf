/**
 * Load and abuse (issue 17): connections. A real server, real Postgres, raw
 * sockets and raw HTTP/2 frames on loopback: thousands of silent TCP
 * connections, a client that ignores SETTINGS_MAX_CONCURRENT_STREAMS, a ping
 * flood, a connection past its maximum age, one that stops answering pings.
 * Each case asserts its bound holds, the server's RSS stays under a stated
 * bound, and a well-behaved client on its own connection keeps its Get p99
 * within a stated multiple of its quiet p99 measured in the same case
 * (test/support/wellBehaved.ts). Every case ends by itself within 60 s.
 */
import * as assert from "node:assert/strict";
import * as net from "node:net";
import { constants } from "node:http2";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { SubscribeRequest } from "../../clients/typescript/src/gen/agentstate/v1/event";
import { eventually } from "../support/eventually";
import { rssMiB, socketCount } from "../support/procfs";
import { grpcMessage, grpcRequestFields, RawH2Connection, frame, FLAG, FRAME } from "../support/rawH2";
import { startCluster, type Cluster } from "../support/startCluster";
import { assertKeepsLatency, assertRssGrowth, WellBehavedClient } from "../support/wellBehaved";

const SUBSCRIBE = "/agentstate.v1.EventService/Subscribe";
const subscribeBody = (namespace: string) =>
  grpcMessage(
    Buffer.from(SubscribeRequest.encode(SubscribeRequest.fromPartial({ namespace, streamPrefix: "" })).finish()),
  );

/** Opens a Subscribe on `stream` of a raw connection (HEADERS, then the request message). */
function rawSubscribe(c: RawH2Connection, stream: number, namespace: string): void {
  c.headers(stream, grpcRequestFields(SUBSCRIBE));
  c.write(frame(FRAME.data, 0, stream, subscribeBody(namespace)));
}

async function settingsOf(c: RawH2Connection): Promise<void> {
  await eventually("the server's SETTINGS", async () => c.settings.size > 0 || c.closedAt !== undefined);
}

describe("abuse: connections", function () {
  this.timeout(60_000);
  const IDLE_MS = 2000;
  const MIN_PING_MS = 500;
  let cluster: Cluster;
  let wb: WellBehavedClient;
  let pid: number;
  let port: number;
  const raws: RawH2Connection[] = [];

  before(async function () {
    this.timeout(120_000);
    cluster = await startCluster({
      name: "abuseconn",
      env: {
        AGENTSTATE_CONNECTION_IDLE_MS: String(IDLE_MS),
        AGENTSTATE_MAX_CONCURRENT_STREAMS: "100",
        AGENTSTATE_KEEPALIVE_MIN_PING_INTERVAL_MS: String(MIN_PING_MS),
        AGENTSTATE_KEEPALIVE_MAX_PING_STRIKES: "2",
        AGENTSTATE_SUBSCRIBE_POLL_MS: "60000",
      },
    });
    pid = cluster.servers[0]!.pid!;
    port = cluster.servers[0]!.port;
    wb = new WellBehavedClient(cluster.servers[0]!.address);
    await wb.prepare();
  });
  after(async () => {
    for (const r of raws) r.destroy();
    wb?.close();
    await cluster?.stop();
  });
  const raw = (opts?: ConstructorParameters<typeof RawH2Connection>[1]) => {
    const r = new RawH2Connection(port, opts);
    raws.push(r);
    return r;
  };

  it("3000 silent TCP connections: the server closes every one it accepted within AGENTSTATE_CONNECTION_IDLE_MS; RSS grows by under 200 MiB", async () => {
    const N = 3000;
    const quiet = await wb.run(2000);
    const rssBefore = rssMiB(pid)!;
    const socketsBefore = socketCount(pid);
    const load = wb.background();
    const socks: net.Socket[] = [];
    for (let i = 0; i < N; i++) {
      const s = net.connect(port, "127.0.0.1");
      s.on("error", () => undefined);
      s.resume(); // read, so the server's FIN is seen
      socks.push(s);
      if (i % 200 === 199) await new Promise((r) => setImmediate(r));
    }
    let rssPeak = rssBefore;
    let socketsPeak = socketsBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssMiB(pid) ?? 0);
      socketsPeak = Math.max(socketsPeak, socketCount(pid));
    }, 100);
    try {
      // What the server holds is what counts: connections the kernel never handed to it (its accept
      // queue overflowed) look open to the client, but cost the server nothing.
      await eventually(
        "the server holds no silent connection",
        async () => socketsPeak > socketsBefore + 500 && socketCount(pid) <= socketsBefore + 5,
        { timeoutMs: IDLE_MS + 30_000 },
      );
    } finally {
      clearInterval(sampler);
      for (const s of socks) s.destroy();
    }
    const loaded = await load.stop();
    console.log(
      `      ${N} silent connections: server sockets ${socketsBefore} -> peak ${socketsPeak} -> ${socketCount(pid)}; ` +
        `RSS ${rssBefore.toFixed(0)} -> peak ${rssPeak.toFixed(0)} MiB`,
    );
    assertRssGrowth(rssBefore, rssPeak);
    assertKeepsLatency(quiet, loaded);
  });

  it("a client ignoring SETTINGS_MAX_CONCURRENT_STREAMS (100), again and again for 3 s: 1000 streams a connection, those past 100 refused; RSS grows by under 200 MiB", async () => {
    const quiet = await wb.run(2000);
    const load = wb.background();
    const rssBefore = rssMiB(pid)!;
    let rss = rssBefore;
    // Over and over for 3 s (one pass is over in a moment: too short for the well-behaved client to measure).
    const stopAt = Date.now() + 3000;
    const passes: RawH2Connection[] = [];
    do {
      const c = raw();
      passes.push(c);
      await settingsOf(c);
      assert.equal(c.settings.get(3), 100, "SETTINGS_MAX_CONCURRENT_STREAMS advertised");
      for (let i = 0; i < 1000; i++) rawSubscribe(c, 1 + 2 * i, "abuse-h2");
      await eventually(
        "the streams past the limit refused",
        async () => c.resets.size >= 900 || c.closedAt !== undefined,
      );
      rss = Math.max(rss, rssMiB(pid)!);
      c.destroy();
    } while (Date.now() < stopAt);
    const loaded = await load.stop();
    const c = passes[0]!;
    const codes = new Map<number, number>();
    for (const code of c.resets.values()) codes.set(code, (codes.get(code) ?? 0) + 1);
    console.log(
      `      ${passes.length} connections of 1000 streams, limit 100; the first: ${c.resets.size} reset (codes ${JSON.stringify([...codes])}), ` +
        `${c.answered.size} answered, goaway ${JSON.stringify(c.goaway)}; RSS peak ${rss.toFixed(0)} MiB`,
    );
    for (const p of passes) {
      // Past the advertised limit Node ends the stream or (Node 20) the whole connection: either way nothing past 100 is served.
      assert.ok(p.resets.size >= 900 || p.closedAt !== undefined, "streams past the limit were refused");
      assert.ok(p.answered.size <= 100, `at most 100 streams were served (${p.answered.size})`);
    }
    assertRssGrowth(rssBefore, rss);
    assertKeepsLatency(quiet, loaded);
  });

  it("pings sooner than AGENTSTATE_KEEPALIVE_MIN_PING_INTERVAL_MS: GOAWAY ENHANCE_YOUR_CALM too_many_pings past the strikes; a flood is cut; pings at the interval are fine", async () => {
    const quiet = await wb.run(2000);
    const load = wb.background();
    const polite = raw();
    const eager = raw();
    const flood = raw();
    await Promise.all([settingsOf(polite), settingsOf(eager), settingsOf(flood)]);
    // Each keeps a call open, so the idle timeout does not close it.
    for (const c of [polite, eager, flood]) rawSubscribe(c, 1, "abuse-ping");
    const politePings = setInterval(() => polite.ping(), MIN_PING_MS * 1.5);
    const eagerPings = setInterval(() => eager.ping(), 50);
    let sent = 0;
    while (flood.closedAt === undefined && sent < 100_000) {
      flood.ping();
      sent++;
      if (sent % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.race([Promise.all([flood.closed, eager.closed]), new Promise((r) => setTimeout(r, 10_000))]);
    await new Promise((r) => setTimeout(r, 4 * MIN_PING_MS));
    clearInterval(politePings);
    clearInterval(eagerPings);
    const loaded = await load.stop();
    console.log(
      `      20 pings/s: GOAWAYs ${JSON.stringify(eager.goaways)} after ${((eager.closedAt ?? NaN) - eager.openedAt).toFixed(0)} ms; ` +
        `flood: closed after ${sent} pings, GOAWAYs ${JSON.stringify(flood.goaways.slice(0, 2))}; polite connection open: ${polite.closedAt === undefined}`,
    );
    assert.deepEqual(eager.goaway, { code: constants.NGHTTP2_ENHANCE_YOUR_CALM, debug: "too_many_pings" });
    assert.ok(eager.closedAt !== undefined, "the eager connection was closed");
    assert.ok(flood.closedAt !== undefined, "the flooding connection was closed");
    assert.equal(polite.closedAt, undefined, "the polite connection is still open");
    assert.equal(polite.goaway, undefined);
    const warned = cluster.servers[0]!.logs().filter(
      (l) => l["msg"] === "connection closed: too many pings (GOAWAY too_many_pings)",
    );
    assert.ok(warned.length >= 1, "logged");
    assertKeepsLatency(quiet, loaded);
    polite.destroy();
  });

  it("a client that pings once per DATA frame it reads (grpc-go's BDP pings) while a Subscribe delivers 60 events 10 ms apart: no strike, no GOAWAY", async () => {
    const reader = raw({ pingOnData: true });
    await settingsOf(reader);
    reader.headers(1, grpcRequestFields(SUBSCRIBE));
    reader.write(frame(FRAME.data, FLAG.endStream, 1, subscribeBody("abuse-bdp"))); // the request, complete
    const writer = new AgentstateClient(cluster.servers[0]!.address);
    try {
      await writer.appendEvent("abuse-bdp", "s", [{ type: "t" }], "any");
      await eventually(
        "the subscription's first event",
        async () => reader.dataFrames > 0 || reader.closedAt !== undefined,
      );
      const before = reader.dataFrames;
      for (let i = 0; i < 60; i++) {
        await writer.appendEvent("abuse-bdp", "s", [{ type: "t" }], "any");
        await new Promise((r) => setTimeout(r, 10));
      }
      await eventually("60 events read", async () => reader.dataFrames - before >= 60 || reader.closedAt !== undefined);
      console.log(
        `      ${reader.dataFrames - before} DATA frames read, ${reader.bdpPings} pings sent ` +
          `(at least ${MIN_PING_MS} ms apart would be ${Math.ceil(600 / MIN_PING_MS) + 1}); GOAWAYs ${JSON.stringify(reader.goaways)}`,
      );
      assert.ok(reader.bdpPings > 10, "the client pinged far more often than the minimum interval allows without data");
      assert.equal(reader.goaway, undefined, "no GOAWAY");
      assert.equal(reader.closedAt, undefined, "the connection is open");
      assert.ok(reader.dataFrames - before >= 60, "every event was delivered");
    } finally {
      writer.close();
      reader.destroy();
    }
  });
});

describe("abuse: connection age and keepalive", function () {
  this.timeout(60_000);
  const AGE_MS = 4000;
  const GRACE_MS = 1000;
  let cluster: Cluster;
  let port: number;
  const raws: RawH2Connection[] = [];

  before(async function () {
    this.timeout(120_000);
    cluster = await startCluster({
      name: "abuseage",
      env: {
        AGENTSTATE_CONNECTION_MAX_AGE_MS: String(AGE_MS),
        AGENTSTATE_CONNECTION_MAX_AGE_GRACE_MS: String(GRACE_MS),
        AGENTSTATE_KEEPALIVE_TIME_MS: "1000",
        AGENTSTATE_KEEPALIVE_TIMEOUT_MS: "1000",
        AGENTSTATE_SUBSCRIBE_POLL_MS: "60000",
      },
    });
    port = cluster.servers[0]!.port;
  });
  after(async () => {
    for (const r of raws) r.destroy();
    await cluster?.stop();
  });

  it("past AGENTSTATE_CONNECTION_MAX_AGE_MS: GOAWAY NO_ERROR; a call still open is cut after the grace", async () => {
    const c = new RawH2Connection(port);
    raws.push(c);
    await settingsOf(c);
    rawSubscribe(c, 1, "abuse-age");
    await c.closed;
    const lived = c.closedAt! - c.openedAt;
    console.log(`      aged connection: GOAWAY ${JSON.stringify(c.goaway)}, closed after ${lived.toFixed(0)} ms`);
    assert.equal(c.goaway?.code, constants.NGHTTP2_NO_ERROR);
    // Age (±10% jitter) + grace, and room for a busy machine; never before the age.
    assert.ok(lived >= AGE_MS * 0.9, `closed after ${lived} ms`);
    assert.ok(lived < AGE_MS * 1.1 + GRACE_MS + 5000, `closed after ${lived} ms`);
  });

  it("a connection that stops answering pings is closed after AGENTSTATE_KEEPALIVE_TIME_MS + AGENTSTATE_KEEPALIVE_TIMEOUT_MS, even with a call open", async () => {
    const deaf = new RawH2Connection(port, { ackPings: false });
    const hearing = new RawH2Connection(port);
    raws.push(deaf, hearing);
    await Promise.all([settingsOf(deaf), settingsOf(hearing)]);
    rawSubscribe(deaf, 1, "abuse-ka");
    rawSubscribe(hearing, 1, "abuse-ka");
    await Promise.race([deaf.closed, new Promise((r) => setTimeout(r, 10_000))]);
    const lived = (deaf.closedAt ?? performance.now()) - deaf.openedAt;
    console.log(
      `      deaf connection: ${deaf.pingsReceived} pings unanswered, closed after ${lived.toFixed(0)} ms; ` +
        `the answering one got ${hearing.pingsReceived} pings`,
    );
    assert.ok(deaf.closedAt !== undefined, "the connection that does not answer pings was closed");
    assert.ok(deaf.pingsReceived >= 1);
    // Closed by the keepalive (about 2 s), before its maximum age (4 s ± 10%) and without the "max_age" GOAWAY.
    assert.ok(lived < AGE_MS * 0.9, `closed after ${lived} ms`);
    assert.notEqual(deaf.goaway?.debug, "max_age");
    assert.equal(hearing.closedAt, undefined, "the connection that answers pings is still open");
  });
});
