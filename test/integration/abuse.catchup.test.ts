/**
 * Load and abuse (issue 17): 2000 Subscribes opened at once, each with a
 * backlog to catch up on (a prefix whose events come after thousands of
 * others, so each catch-up read scans them). Each catch-up is reads of the event log; unbounded,
 * all 2000 queued on the Postgres pool (20 connections) at once, so a Get
 * waited behind them (p99 5 s) and calls waiting past the pool's 5 s acquire
 * timeout ended UNAVAILABLE (abuse.streams opened its streams in waves for
 * that reason). With AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT (a quarter of the
 * pool by default) the subscribers wait their turn in memory:
 *
 * - a well-behaved client's Gets all succeed, p99 within 10× quiet (floor
 *   1 s, over the catch-up's Gets only; test/support/wellBehaved.ts) while the 2000 catch up;
 * - no more calls wait for a pool connection than the pool has connections
 *   (agentstate_pg_pool_connections{state="waiting"}, sampled every 20 ms:
 *   0 with the bound; ~980 without it);
 * - every subscriber gets its whole backlog, caught_up, then a later append;
 *   none ends.
 *
 * The case ends by itself within 60 s.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { EventClient, type Subscription } from "../support/eventClient";
import { serverMetrics } from "../support/serverMetrics";
import { startCluster, type Cluster } from "../support/startCluster";
import { ABUSE_WINDOW_FLOOR_MS, assertKeepsLatency, WellBehavedClient } from "../support/wellBehaved";

const PER_NAMESPACE = 500;
const NAMESPACES = ["ac0", "ac1", "ac2", "ac3"];
const TOTAL = PER_NAMESPACE * NAMESPACES.length;
/**
 * Each namespace holds NOISE events of other streams, then BACKLOG of the
 * subscribers' prefix: a catch-up read scans the namespace's positions past
 * the noise (milliseconds of Postgres each), the cost that queued on the pool.
 */
const NOISE = 30000;
const BACKLOG = 10;
const PREFIX = "m";
/** The server's pool (the default); catch-up reads may use a quarter of it (AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT). */
const PG_POOL_MAX = 20;
const DATA = Buffer.alloc(20, "x");

describe("abuse: 2000 Subscribes at once, each catching up on a backlog", function () {
  this.timeout(60_000);
  let cluster: Cluster | undefined;
  let wb: WellBehavedClient | undefined;
  const conns: EventClient[] = [];
  const subs: Subscription[] = [];

  before(async function () {
    this.timeout(120_000);
    cluster = await startCluster({
      env: {
        PG_POOL_MAX: String(PG_POOL_MAX),
        AGENTSTATE_MAX_SUBSCRIBERS: String(TOTAL),
        AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE: String(PER_NAMESPACE),
      },
    });
    wb = new WellBehavedClient(cluster.servers[0]!.address);
    await wb.prepare();
    // One connection per namespace (500 streams each, under AGENTSTATE_MAX_CONCURRENT_STREAMS), one for appends.
    for (let i = 0; i <= NAMESPACES.length; i++) {
      conns.push(new EventClient(cluster.servers[0]!.address, { ownChannel: true }));
    }
    const writer = conns[NAMESPACES.length]!;
    const append = (namespace: string, stream: string, n: number) =>
      writer.appendEvent({
        namespace,
        stream,
        expected: { any: true },
        events: Array.from({ length: n }, () => ({ id: randomUUID(), type: "t", data: DATA })),
      });
    // The noise's appends all at once (the server batches them), then each backlog after it.
    await Promise.all(
      NAMESPACES.flatMap((namespace) =>
        Array.from({ length: NOISE / 1000 }, (_, i) => append(namespace, `noise${i * 1000}`, 1000)),
      ),
    );
    await Promise.all(NAMESPACES.map((namespace) => append(namespace, `${PREFIX}0`, BACKLOG)));
  });
  after(async () => {
    for (const s of subs) s.cancel();
    for (const c of conns) c.close();
    wb?.close();
    await cluster?.stop();
  });

  it(`${TOTAL} Subscribes at once with a backlog of ${BACKLOG}: no Get fails, Get p99 within 10× quiet, every subscriber gets its backlog and the next event`, async () => {
    const writer = conns[NAMESPACES.length]!;
    const quiet = await wb!.run(2000);
    const load = wb!.background();
    let loaded;
    let caughtUpMs;
    let deliverMs;
    // Samples how many of the server's Postgres calls wait for a pool connection (agentstate_pg_pool_connections).
    let maxWaiting = 0;
    let sampling = true;
    const sampled = (async () => {
      while (sampling) {
        const m = /agentstate_pg_pool_connections\{state="waiting"\} (\d+)/.exec(
          await serverMetrics(cluster!.servers[0]!),
        );
        maxWaiting = Math.max(maxWaiting, Number(m![1]));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      const abuse = load.window();
      const t0 = performance.now();
      NAMESPACES.forEach((namespace, n) => {
        for (let i = 0; i < PER_NAMESPACE; i++) subs.push(conns[n]!.subscribe({ namespace, streamPrefix: PREFIX }));
      });
      await Promise.all(subs.map((s) => s.caughtUp));
      caughtUpMs = performance.now() - t0;
      sampling = false;
      await sampled;
      const t1 = performance.now();
      const positions = await Promise.all(
        NAMESPACES.map((namespace) =>
          writer.appendEvent({
            namespace,
            stream: `${PREFIX}1`,
            expected: { any: true },
            events: [{ id: randomUUID(), type: "t" }],
          }),
        ),
      );
      await Promise.all(subs.map((s, i) => s.untilPosition(positions[Math.floor(i / PER_NAMESPACE)]!.position)));
      deliverMs = performance.now() - t1;
      loaded = await abuse.close();
    } finally {
      sampling = false;
      await sampled.catch(() => undefined);
      await load.stop();
    }
    console.log(
      `      ${TOTAL} Subscribes opened at once caught up on ${BACKLOG} events each in ${caughtUpMs.toFixed(0)} ms; ` +
        `at most ${maxWaiting} calls waited for a pool connection; one append per namespace reached all in ${deliverMs.toFixed(0)} ms`,
    );
    assert.deepEqual(
      subs.filter((s) => s.end !== undefined).map((s) => s.end!.details),
      [],
      "no subscriber ended",
    );
    const wrong = subs.filter((s) => s.caughtUps.length !== 1 || s.eventsBeforeCaughtUp !== BACKLOG);
    assert.deepEqual(
      wrong.slice(0, 5).map((s) => ({ caughtUps: s.caughtUps, eventsBefore: s.eventsBeforeCaughtUp })),
      [],
      `every subscriber caught up once, after its backlog of ${BACKLOG} (${wrong.length} did not)`,
    );
    assert.equal(
      subs.filter((s) => s.events.length !== BACKLOG + 1).length,
      0,
      `every subscriber got its backlog of ${BACKLOG} and the event after, once each`,
    );
    assertKeepsLatency(quiet, loaded!, 10, ABUSE_WINDOW_FLOOR_MS);
    assert.ok(
      maxWaiting <= PG_POOL_MAX,
      `${maxWaiting} calls waited at once for one of the ${PG_POOL_MAX} Postgres connections (catch-up reads queued on the pool)`,
    );
  });
});
