// Experiment (issue 15 part 2): what the cache-epoch row's shared lock costs
// Postgres per KV write statement when statements of different namespaces run
// side by side. Every agentstate_kv_write reads agentstate_state (id = 1) FOR
// SHARE; concurrent share-lockers of one row turn its xmax into a MultiXact,
// which each new locker extends (a new MultiXact, its members written to the
// SLRU, the tuple header rewritten and WAL-logged). Batches of one namespace
// run one at a time, so at one namespace the row rarely has two lockers; over
// 16 namespaces up to AGENTSTATE_WRITE_BATCHES_MAX batches lock it at once.
//
// Two databases on one Postgres (durable: fsync on): "orig" with the
// functions as shipped, "noshare" with the same agentstate_kv_write except
// that the epoch row is read without the shared lock (NOT SAFE: only to
// measure the lock's cost). pgbench runs bench/pgbench/cas_new_ns.sql (one
// write per statement, like a batch of one) over 16 namespaces at each
// concurrency, alternating the databases for --rounds rounds; reported: tx/s
// and Postgres CPU (all processes) per transaction, median of the rounds.
//   npm run build && node bench/experiments/epoch-share-lock.mjs [--seconds 8] [--rounds 3] [--levels 5,16] [--nsn 16]
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import console from "node:console";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(import.meta.url);
const { PostgresProcess } = require(path.join(root, "dist/test/support/PostgresProcess.js"));
const { cpuSeconds, childPids } = require(path.join(root, "dist/test/support/procfs.js"));
const { readFunctions } = require(path.join(root, "dist/src/store/postgres/functions.js"));

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
    levels: { type: "string", default: "5,16" },
    nsn: { type: "string", default: "16" },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const levels = values.levels.split(",").map(Number);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-epochlock-"));
fs.chmodSync(dir, 0o755); // initdb runs as the postgres user when this runs as root
const pg = await PostgresProcess.start({
  dataDir: path.join(dir, "pg"),
  logPath: path.join(dir, "postgres.log"),
  settings: { shared_buffers: "256MB", fsync: "on", synchronous_commit: "on", full_page_writes: "on" },
}).catch((e) => {
  fs.rmSync(dir, { recursive: true, force: true });
  throw e;
});
const pgBin = pg.binDir;
try {
  const migrations = fs
    .readdirSync(path.join(root, "migrations"))
    .filter((f) => f.endsWith(".sql"))
    .sort();
  for (const db of ["orig", "noshare"]) {
    await pg.query("postgres", `CREATE DATABASE ${db}`);
    for (const f of migrations) await pg.query(db, fs.readFileSync(path.join(root, "migrations", f), "utf8"));
    for (const fn of readFunctions()) {
      let sql = fn.sql;
      if (db === "noshare" && fn.name === "agentstate_kv_write") {
        const locked = /FROM agentstate_state s WHERE s\.id = 1 FOR SHARE;/g;
        if (!locked.test(sql)) throw new Error("agentstate_kv_write no longer reads the epoch row FOR SHARE");
        sql = sql.replace(locked, "FROM agentstate_state s WHERE s.id = 1;");
      }
      await pg.query(db, sql);
    }
  }
  const pgCpu = () => cpuSeconds(pg.pid, true) + childPids(pg.pid).reduce((a, c) => a + cpuSeconds(c), 0);
  const results = {};
  for (let r = 0; r < rounds; r++) {
    for (const c of levels) {
      for (const db of r % 2 === 0 ? ["orig", "noshare"] : ["noshare", "orig"]) {
        const cpu0 = pgCpu();
        const { stdout } = await run(
          path.join(pgBin, "pgbench"),
          [
            "-h", "127.0.0.1", "-p", String(pg.port), "-U", "postgres", "-n", "-M", "prepared",
            "-f", path.join(root, "bench/pgbench/cas_new_ns.sql"), "-D", `nsn=${values.nsn}`,
            "-c", String(c), "-j", "2", "-T", String(seconds), db,
          ], // prettier-ignore
          { cwd: dir },
        );
        // pgbench's backends have exited: let the postmaster reap them (their CPU moves to its cutime).
        await sleep(500);
        const cpu = pgCpu() - cpu0;
        const tx = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
        const row = { tps: tx / seconds, cpuMs: (1000 * cpu) / tx };
        (results[`${db} c=${c}`] ??= []).push(row);
        console.log(
          `round ${r + 1} ${db} c=${c}: ${row.tps.toFixed(0)} tx/s, Postgres CPU ${row.cpuMs.toFixed(3)} ms/tx`,
        );
      }
    }
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `\nload average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}; median of ${rounds} rounds, ${values.nsn} namespaces`,
  );
  console.log("| database | c | tx/s | Postgres CPU ms/tx |\n|---|---|---:|---:|");
  for (const [k, rows] of Object.entries(results)) {
    const [db, c] = k.split(" ");
    console.log(
      `| ${db} | ${c.slice(2)} | ${med(rows.map((x) => x.tps)).toFixed(0)} | ${med(rows.map((x) => x.cpuMs)).toFixed(3)} |`,
    );
  }
} finally {
  await pg.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
