// Experiment (issue 15 part 2, fourth pass): what one agentstate_kv_write
// statement costs Postgres, per statement and per write, and which of the
// function's inner statements it goes to; A/B of this tree's functions
// against another git ref's, in the same run.
//
// One durable Postgres (the test harness's PostgresProcess, fsync on) with
// pg_stat_statements preloaded, and two databases: "head" with this tree's
// migrations and functions, "ref" with --ref's (git archive). pgbench runs
// bench/pgbench/cas_new_ns.sql (one write a statement, p_wait true: a write
// run alone) and experiments/cas_new_ns_batch4.sql (four writes of one
// namespace a statement, p_wait false: a group-commit batch) over --nsn
// namespaces at concurrency --c, alternating the databases for --rounds
// rounds, with pg_stat_statements.track = none (nothing measured but the
// statement). Reported: tx/s and Postgres CPU (every Postgres process) per
// transaction, median of the rounds. Then one --seconds run of each script
// on each database with track = all (nested statements counted, which costs
// CPU of its own: only the split is read from it), printing the function's
// inner statements: calls and exec time per transaction, at --breakdown-c
// (default 1: no waits for another's row lock, so exec time is CPU time).
// The floors, on "head" in each round: SELECT 1, and one row inserted alone.
//   npm run build && node bench/experiments/kv-write-statements.mjs [--ref main] [--seconds 8] [--rounds 3] [--c 16] [--nsn 16] [--breakdown-c 1]
import { execFile, execFileSync } from "node:child_process";
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
    ref: { type: "string", default: "main" },
    seconds: { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
    c: { type: "string", default: "16" },
    nsn: { type: "string", default: "16" },
    "breakdown-c": { type: "string", default: "1" },
    "no-breakdown": { type: "boolean", default: false },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const scripts = { "1 write": "cas_new_ns.sql", "4 writes": "experiments/cas_new_ns_batch4.sql" };
// The floors, on the same Postgres: a read-only statement, and the smallest
// durable write (one row inserted, committed and flushed alone).
const floors = { "SELECT 1": "floor_select.sql", "INSERT one row": "floor_insert.sql" };

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-kvstmts-"));
fs.chmodSync(dir, 0o755); // initdb runs as the postgres user when this runs as root
// The ref's migrations and functions, as that commit has them.
const refDir = path.join(dir, "ref");
fs.mkdirSync(refDir);
execFileSync(
  "sh",
  ["-c", `git archive ${JSON.stringify(values.ref)} migrations src/store/postgres/functions | tar -x -C "${refDir}"`],
  {
    cwd: root,
  },
);
const trees = {
  head: { migrations: path.join(root, "migrations"), functions: path.join(root, "src/store/postgres/functions") },
  ref: { migrations: path.join(refDir, "migrations"), functions: path.join(refDir, "src/store/postgres/functions") },
};
const pg = await PostgresProcess.start({
  dataDir: path.join(dir, "pg"),
  logPath: path.join(dir, "postgres.log"),
  settings: {
    shared_buffers: "256MB",
    fsync: "on",
    synchronous_commit: "on",
    full_page_writes: "on",
    shared_preload_libraries: "pg_stat_statements",
    "pg_stat_statements.track": "none",
  },
}).catch((e) => {
  fs.rmSync(dir, { recursive: true, force: true });
  throw e;
});
try {
  for (const [db, tree] of Object.entries(trees)) {
    await pg.query("postgres", `CREATE DATABASE ${db}`);
    await pg.query(db, "CREATE EXTENSION pg_stat_statements");
    for (const f of fs
      .readdirSync(tree.migrations)
      .filter((x) => x.endsWith(".sql"))
      .sort())
      await pg.query(db, fs.readFileSync(path.join(tree.migrations, f), "utf8"));
    for (const fn of readFunctions(tree.functions)) await pg.query(db, fn.sql);
  }
  await pg.query("head", "CREATE TABLE floor_rows (id bigserial PRIMARY KEY, v bytea)");
  fs.writeFileSync(path.join(dir, "floor_select.sql"), "SELECT 1;\n");
  fs.writeFileSync(path.join(dir, "floor_insert.sql"), "INSERT INTO floor_rows (v) VALUES ('\\x7676'::bytea);\n");
  const pgCpu = () => cpuSeconds(pg.pid, true) + childPids(pg.pid).reduce((a, c) => a + cpuSeconds(c), 0);
  const bench = async (db, script, secs, c = values.c) => {
    const cpu0 = pgCpu();
    const { stdout } = await run(
      path.join(pg.binDir, "pgbench"),
      [
        "-h", "127.0.0.1", "-p", String(pg.port), "-U", "postgres", "-n", "-M", "prepared",
        "-f", script.startsWith("floor_") ? path.join(dir, script) : path.join(root, "bench/pgbench", script),
        "-D", `nsn=${values.nsn}`, "-c", String(c), "-j", String(Math.min(2, Number(c))), "-T", String(secs), db,
      ], // prettier-ignore
      { cwd: dir },
    );
    // pgbench's backends have exited: let the postmaster reap them (their CPU moves to its cutime).
    await sleep(500);
    const cpu = pgCpu() - cpu0;
    const tx = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
    return { tx, tps: tx / secs, cpuMs: (1000 * cpu) / tx };
  };
  const results = {};
  for (let r = 0; r < rounds; r++) {
    for (const [label, script] of Object.entries(scripts)) {
      for (const db of r % 2 === 0 ? ["ref", "head"] : ["head", "ref"]) {
        const row = await bench(db, script, seconds);
        (results[`${db}|${label}`] ??= []).push(row);
        console.log(
          `round ${r + 1} ${db} ${label}: ${row.tps.toFixed(0)} tx/s, Postgres CPU ${row.cpuMs.toFixed(3)} ms/tx`,
        );
      }
    }
    for (const [label, script] of Object.entries(floors)) {
      const row = await bench("head", script, seconds);
      (results[`floor|${label}`] ??= []).push(row);
      console.log(
        `round ${r + 1} floor ${label}: ${row.tps.toFixed(0)} tx/s, Postgres CPU ${row.cpuMs.toFixed(3)} ms/tx`,
      );
    }
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `\nload average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}; median of ${rounds} rounds, ${values.nsn} namespaces, c = ${values.c}; ref = ${values.ref}`,
  );
  console.log("| functions | writes a statement | tx/s | Postgres CPU ms/tx |\n|---|---|---:|---:|");
  for (const [k, rows] of Object.entries(results)) {
    const [db, label] = k.split("|");
    console.log(
      `| ${db} | ${label} | ${med(rows.map((x) => x.tps)).toFixed(0)} | ${med(rows.map((x) => x.cpuMs)).toFixed(3)} |`,
    );
  }
  if (!values["no-breakdown"]) {
    for (const db of Object.keys(trees))
      await pg.query(db, `ALTER DATABASE ${db} SET pg_stat_statements.track = 'all'`);
    for (const [label, script] of Object.entries(scripts)) {
      for (const db of ["ref", "head"]) {
        await pg.query(db, "SELECT pg_stat_statements_reset()");
        const row = await bench(db, script, seconds, values["breakdown-c"]);
        const rows = await pg.query(
          db,
          `SELECT calls, total_exec_time AS ms, regexp_replace(left(query, 110), '\\s+', ' ', 'g') AS q
             FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC LIMIT 24`,
        );
        console.log(
          `\n${db}, ${label}, c = ${values["breakdown-c"]}, track = all: ${row.tps.toFixed(0)} tx/s, Postgres CPU ${row.cpuMs.toFixed(3)} ms/tx (${row.tx} tx)`,
        );
        console.log("| calls/tx | µs/tx | statement |\n|---:|---:|---|");
        for (const s of rows.rows ?? rows)
          console.log(
            `| ${(Number(s.calls) / row.tx).toFixed(2)} | ${((1000 * Number(s.ms)) / row.tx).toFixed(1)} | \`${s.q}\` |`,
          );
      }
    }
  }
} finally {
  await pg.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
