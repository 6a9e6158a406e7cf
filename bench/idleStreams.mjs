#!/usr/bin/env node
// What idle Subscribe streams cost the server (issue 17), with the test
// harness compiled into dist/test/support (run `npm run build` first): its own
// Postgres (pg_stat_statements preloaded), one agentstate server on loopback.
//
//   node bench/idleStreams.mjs [--steps 0,1000,2000] [--seconds 20] [--entry DIST_MAIN_JS]
//
// For each step, that many idle Subscribe streams are held open (four
// namespaces, four client connections, opened in waves of 250, each caught
// up, nothing appended), then over a window of --seconds:
//  - Postgres statements/s in the server's database (pg_stat_statements calls,
//    top level: no flush delay),
//  - Postgres transactions/s (pg_stat_database xact_commit; its counters reach
//    the view up to 10 s late, so the window's end is read 11 s after it and
//    the rate taken over the window plus those 11 s, as bench/run.mjs --fanout),
//  - server CPU (% of one core) and RSS at the window's end.
// Then RSS per 1000 streams and the statements/s added per 1000, against step 0.
// --entry runs another build of the server (e.g. main's before issue 17, built
// in a temp directory) for a before/after comparison.
import console from "node:console";
import process from "node:process";
import { performance } from "node:perf_hooks";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { startCluster } = require("../dist/test/support/startCluster.js");
const { ServerProcess } = require("../dist/test/support/ServerProcess.js");
const { PostgresProcess } = require("../dist/test/support/PostgresProcess.js");
const { EventClient } = require("../dist/test/support/eventClient.js");
const { cpuSeconds, rssMiB } = require("../dist/test/support/procfs.js");
const { closeTestEnv } = require("../dist/test/support/TestEnv.js");

const { values: o } = parseArgs({
  options: {
    steps: { type: "string", default: "0,1000,2000" },
    seconds: { type: "string", default: "20" },
    entry: { type: "string" },
  },
});
if (o.entry) ServerProcess.entry = o.entry;
const STEPS = o.steps.split(",").map(Number);
const SECONDS = Number(o.seconds);
const MAX = Math.max(...STEPS);
const NAMESPACES = ["idle0", "idle1", "idle2", "idle3"];
const WAVE = 250;
const DB = "bench_idle";

async function main() {
  let pg;
  let cluster;
  const clients = [];
  const subs = [];
  try {
    pg = await PostgresProcess.start({
      settings: { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "top" },
    });
    await pg.createDatabase(DB);
    await pg.query("postgres", "CREATE EXTENSION pg_stat_statements");
    cluster = await startCluster({
      databaseUrl: pg.url(DB),
      env: {
        AGENTSTATE_MAX_SUBSCRIBERS: String(Math.max(MAX, 1)),
        AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE: String(Math.max(Math.ceil(MAX / NAMESPACES.length), 1)),
      },
    });
    const server = cluster.servers[0];
    for (const _ of NAMESPACES) clients.push(new EventClient(server.address, { ownChannel: true }));
    const statements = async () =>
      Number(
        (
          await pg.query(
            "postgres",
            "SELECT sum(calls)::text AS n FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
            [DB],
          )
        )[0].n ?? 0,
      );
    const commits = async () =>
      Number(
        (
          await pg.query(DB, "SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()")
        )[0].n,
      );
    const rows = [];
    for (const step of STEPS) {
      // Open (or cancel) streams until `step` are held.
      while (subs.length > step) subs.pop().cancel();
      const t0 = performance.now();
      while (subs.length < step) {
        const wave = [];
        for (let i = 0; i < WAVE && subs.length < step; i++) {
          const n = subs.length % NAMESPACES.length;
          const s = clients[n].subscribe({ namespace: NAMESPACES[n], streamPrefix: "" });
          subs.push(s);
          wave.push(s);
        }
        await Promise.all(wave.map((s) => s.caughtUp));
      }
      const openMs = performance.now() - t0;
      await sleep(11_000); // the opening's own commits reach pg_stat_database before the window starts
      const s0 = await statements();
      const c0 = await commits();
      const cpu0 = cpuSeconds(server.pid);
      const w0 = performance.now();
      await sleep(SECONDS * 1000);
      const wall = (performance.now() - w0) / 1000;
      const s1 = await statements();
      const cpu = cpuSeconds(server.pid) - cpu0;
      const rss = rssMiB(server.pid);
      await sleep(11_000);
      const c1 = await commits();
      const ended = subs.filter((s) => s.end !== undefined).length;
      const row = {
        streams: step,
        openMs,
        statementsPerS: (s1 - s0) / wall,
        txPerS: (c1 - c0) / (wall + 11),
        cpuPct: (100 * cpu) / wall,
        rss,
        ended,
      };
      rows.push(row);
      console.log(
        `${step} idle streams (opened in ${(openMs / 1000).toFixed(1)} s): ${row.statementsPerS.toFixed(1)} statements/s, ` +
          `${row.txPerS.toFixed(1)} tx/s, server CPU ${row.cpuPct.toFixed(1)} %, RSS ${rss.toFixed(0)} MiB` +
          (ended > 0 ? `, ${ended} ended` : ""),
      );
    }
    const base = rows.find((r) => r.streams === 0) ?? rows[0];
    console.log(`\nserver ${ServerProcess.entry}, window ${SECONDS} s, load average ${loadavg()[0].toFixed(1)}`);
    console.log(
      "| idle Subscribe streams | Postgres statements/s | tx/s | server CPU | RSS | RSS per 1000 streams | + statements/s per 1000 |",
    );
    console.log("|---|---|---|---|---|---|---|");
    for (const r of rows) {
      const per = r.streams > base.streams ? 1000 / (r.streams - base.streams) : undefined;
      console.log(
        `| ${r.streams} | ${r.statementsPerS.toFixed(1)} | ${r.txPerS.toFixed(1)} | ${r.cpuPct.toFixed(1)} % | ${r.rss.toFixed(0)} MiB | ` +
          `${per ? `${((r.rss - base.rss) * per).toFixed(1)} MiB` : "-"} | ${per ? ((r.statementsPerS - base.statementsPerS) * per).toFixed(2) : "-"} |`,
      );
    }
  } finally {
    for (const s of subs) s.cancel();
    for (const c of clients) c.close();
    await cluster?.stop();
    await pg?.destroy();
    await closeTestEnv();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
