/**
 * Load and abuse (issue 17): thousands of idle Subscribe streams. 2000 streams
 * over four HTTP/2 connections (500 each, under the default
 * AGENTSTATE_MAX_CONCURRENT_STREAMS of 1000 per connection) in four
 * namespaces, up to the per-namespace cap (AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE
 * = 500) and the per-server cap (AGENTSTATE_MAX_SUBSCRIBERS = 2000):
 *
 * - past each cap a Subscribe ends RESOURCE_EXHAUSTED naming that setting, and
 *   no stream already open is touched (each still gets the next append);
 * - while the 2000 streams are held idle, Postgres runs about as many
 *   statements a second as with none (one change reader per namespace and one
 *   fallback poll per replica, not one per subscriber: before issue 17 each
 *   subscriber polled once a second, 2000 statements/s here). Counted with
 *   pg_stat_statements, which has no flush delay (pg_stat_database's counters
 *   reach the view up to 10 s late), so this case runs its own Postgres;
 * - the server's RSS grows by under 200 MiB (measured ~20 MiB per 1000 streams);
 * - a well-behaved client on its own connection keeps its Get p99 within 10×
 *   its quiet p99 (floor 1 s, over the delivery's Gets only; test/support/wellBehaved.ts) while the streams
 *   are held and an append fans out to all of them.
 *
 * The streams are opened in waves of 250, so this case measures streams held
 * idle, not the burst of opening them: 2000 Subscribes at once (catch-up reads
 * bounded by AGENTSTATE_SUBSCRIBE_READS_IN_FLIGHT) are abuse.catchup.test.ts.
 * The case ends by itself within 60 s.
 */
import * as assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { EventClient, type Subscription } from "../support/eventClient";
import { PostgresProcess } from "../support/PostgresProcess";
import { rssMiB } from "../support/procfs";
import { startCluster, type Cluster } from "../support/startCluster";
import { ABUSE_WINDOW_FLOOR_MS, assertKeepsLatency, assertRssGrowth, WellBehavedClient } from "../support/wellBehaved";

const PER_NAMESPACE = 500;
const NAMESPACES = ["as0", "as1", "as2", "as3"];
const TOTAL = PER_NAMESPACE * NAMESPACES.length;
const DB = "abusestreams";
/** With one poll per subscriber a second this would be TOTAL statements/s; one per replica is about 1. */
const MAX_ADDED_STATEMENTS_PER_S = 10;
const WINDOW_MS = 3000;
/** Subscribes opened at once: each is a catch-up read queued on the Postgres pool (20 connections). */
const WAVE = 250;

describe("abuse: thousands of idle Subscribe streams", function () {
  this.timeout(60_000);
  let pg: PostgresProcess | undefined;
  let cluster: Cluster | undefined;
  let wb: WellBehavedClient | undefined;
  const conns: EventClient[] = [];
  const subs: Subscription[] = [];

  before(async function () {
    this.timeout(120_000);
    pg = await PostgresProcess.start({
      settings: { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "top" },
    });
    await pg.createDatabase(DB);
    await pg.query("postgres", "CREATE EXTENSION pg_stat_statements");
    cluster = await startCluster({
      databaseUrl: pg.url(DB),
      env: {
        AGENTSTATE_MAX_SUBSCRIBERS: String(TOTAL),
        AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE: String(PER_NAMESPACE),
        AGENTSTATE_SUBSCRIBE_POLL_MS: "1000",
      },
    });
    wb = new WellBehavedClient(cluster.servers[0]!.address);
    await wb.prepare();
    // One connection per namespace, and one for the calls past the caps and the appends.
    for (let i = 0; i <= NAMESPACES.length; i++) {
      conns.push(new EventClient(cluster.servers[0]!.address, { ownChannel: true }));
    }
  });
  after(async () => {
    for (const s of subs) s.cancel();
    for (const c of conns) c.close();
    wb?.close();
    await cluster?.stop();
    await pg?.destroy();
  });

  /** Statements Postgres completed in the server's database so far (no flush delay). */
  const statements = async (): Promise<number> => {
    const rows = await pg!.query<{ n: string | null }>(
      "postgres",
      "SELECT sum(calls)::text AS n FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
      [DB],
    );
    return Number(rows[0]?.n ?? 0);
  };
  /** Statements per second over a window of WINDOW_MS. */
  const statementsPerSecond = async (): Promise<number> => {
    const n0 = await statements();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    return ((await statements()) - n0) / ((performance.now() - t0) / 1000);
  };

  it(`${TOTAL} idle streams: past each cap RESOURCE_EXHAUSTED naming it, the open ones unaffected; Postgres statements/s flat; RSS +200 MiB at most; Get p99 within 10× quiet`, async () => {
    const pid = cluster!.servers[0]!.pid!;
    const extra = conns[NAMESPACES.length]!;
    const quiet = await wb!.run(2000);
    const idleRate = await statementsPerSecond();
    const rssBefore = rssMiB(pid)!;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid) ?? 0)), 200);
    try {
      // In waves of WAVE (each caught up before the next), one less than the server's cap: the last namespace is
      // one short. Not all at once: see the header.
      const t0 = performance.now();
      const wanted = NAMESPACES.flatMap((namespace, n) =>
        Array.from({ length: n === NAMESPACES.length - 1 ? PER_NAMESPACE - 1 : PER_NAMESPACE }, () => n),
      );
      for (let i = 0; i < wanted.length; i += WAVE) {
        const wave = wanted
          .slice(i, i + WAVE)
          .map((n) => conns[n]!.subscribe({ namespace: NAMESPACES[n]!, streamPrefix: "" }));
        subs.push(...wave);
        await Promise.all(wave.map((s) => s.caughtUp));
      }
      const openMs = performance.now() - t0;

      // The namespace cap, with room left on the server.
      const inFull = await extra.subscribe({ namespace: NAMESPACES[0]!, streamPrefix: "" }).ended;
      assert.equal(inFull.code, status.RESOURCE_EXHAUSTED, inFull.details);
      assert.match(
        inFull.details,
        new RegExp(
          `namespace ${NAMESPACES[0]}: the limit is ${PER_NAMESPACE} \\(AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE\\)`,
        ),
      );
      // The last slot, then the server cap.
      const last = conns[NAMESPACES.length - 1]!.subscribe({ namespace: NAMESPACES.at(-1)!, streamPrefix: "" });
      subs.push(last);
      await last.caughtUp;
      const onServer = await extra.subscribe({ namespace: "as-other", streamPrefix: "" }).ended;
      assert.equal(onServer.code, status.RESOURCE_EXHAUSTED, onServer.details);
      assert.match(onServer.details, new RegExp(`the limit is ${TOTAL} \\(AGENTSTATE_MAX_SUBSCRIBERS\\)`));
      const rssOpen = rssMiB(pid)!;

      // Held idle: what they cost Postgres.
      const heldRate = await statementsPerSecond();

      // Held, while the well-behaved client measures: an append per namespace reaches every stream.
      const load = wb!.background();
      let loaded;
      let deliverMs;
      try {
        const abuse = load.window();
        const t1 = performance.now();
        const positions = await Promise.all(
          NAMESPACES.map((namespace) =>
            extra.appendEvent({
              namespace,
              stream: "s",
              expected: { any: true },
              events: [{ id: randomUUID(), type: "t" }],
            }),
          ),
        );
        await Promise.all(
          subs.map((s, i) =>
            s.untilPosition(positions[Math.min(NAMESPACES.length - 1, Math.floor(i / PER_NAMESPACE))]!.position),
          ),
        );
        deliverMs = performance.now() - t1;
        loaded = await abuse.close();
      } finally {
        await load.stop();
      }
      console.log(
        `      ${TOTAL} streams opened (waves of ${WAVE}) and caught up in ${openMs.toFixed(0)} ms; ` +
          `Postgres statements/s: ${idleRate.toFixed(1)} with none, ${heldRate.toFixed(1)} with ${TOTAL} held idle; ` +
          `one append per namespace reached all ${TOTAL} in ${deliverMs.toFixed(0)} ms; ` +
          `RSS ${rssBefore.toFixed(0)} -> ${rssOpen.toFixed(0)} MiB open (${(((rssOpen - rssBefore) / TOTAL) * 1000).toFixed(0)} MiB per 1000 streams), peak ${rssPeak.toFixed(0)}`,
      );
      assert.deepEqual(
        subs.filter((s) => s.end !== undefined).map((s) => s.end!.details),
        [],
        "no open stream was ended by the calls past the caps",
      );
      assert.ok(
        heldRate - idleRate <= MAX_ADDED_STATEMENTS_PER_S,
        `${TOTAL} idle streams added ${(heldRate - idleRate).toFixed(1)} Postgres statements/s (${idleRate.toFixed(1)} -> ${heldRate.toFixed(1)})`,
      );
      assertRssGrowth(rssBefore, rssPeak);
      assertKeepsLatency(quiet, loaded!, 10, ABUSE_WINDOW_FLOOR_MS);
    } finally {
      clearInterval(sampler);
    }
  });
});
