// EXPERIMENT: what the audit trail costs a write (migrations/0012_audit.sql).
//
//   npm run build && node bench/experiments/audit-index.mjs [--duration 10] [--rounds 3] [--clients 8]
//
// Runs the service's exact CompareAndSet and AppendEvent statements (the
// bench/pgbench scripts cas_new.sql and append_1.sql, which now pass a
// principal and a request id) against a fresh Postgres with this release's
// schema, alternating rounds with the audit indexes (kv_history_audit,
// events_audit) and without them (dropped), and prints per variant: the
// transactions per second (the median of the rounds) and the WAL bytes per
// transaction (pg_current_wal_lsn before and after each run; the machine-
// independent part of the cost). The principal and request id columns
// themselves are there in both variants.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import console from "node:console";
import process from "node:process";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { startPostgres } from "../lib/procs.mjs";
import { pgbench } from "../lib/runners.mjs";
import { PGBENCH_DIR } from "../lib/pgbenchSql.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.resolve(HERE, "../../dist");
const { values: o } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    rounds: { type: "string", default: "3" },
    clients: { type: "string", default: "8" },
  },
});

const INDEXES = {
  on: [
    "CREATE INDEX IF NOT EXISTS kv_history_audit ON kv_history (namespace, created_at, revision)",
    "CREATE INDEX IF NOT EXISTS events_audit ON events (namespace, created_at, position)",
  ],
  off: ["DROP INDEX IF EXISTS kv_history_audit", "DROP INDEX IF EXISTS events_audit"],
};

const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-audit-bench-"));
fs.chmodSync(runDir, 0o755); // Postgres runs as "postgres" and needs to reach its data dir
let pgp;
try {
  pgp = await startPostgres(runDir);
  await pgp.createDatabase("pgbench");
  const url = pgp.url("pgbench");
  const { migrate } = await import(path.join(DIST, "src/store/postgres/migrate.js"));
  const { createPool } = await import(path.join(DIST, "src/store/postgres/createPool.js"));
  const pool = createPool({ connectionString: url, max: 1, statementTimeoutMs: 60_000 });
  await migrate(pool, path.join(DIST, "migrations"));
  await pool.end();
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const lsn = async () => (await db.query("SELECT pg_current_wal_lsn()::text AS l")).rows[0].l;
  const walBytes = async (a, b) =>
    Number((await db.query("SELECT pg_wal_lsn_diff($2, $1)::bigint AS d", [a, b])).rows[0].d);

  const results = {};
  for (let round = 0; round < Number(o.rounds); round++) {
    for (const variant of round % 2 === 0 ? ["on", "off"] : ["off", "on"]) {
      for (const q of INDEXES[variant]) await db.query(q);
      for (const script of ["cas_new.sql", "append_1.sql"]) {
        const before = await lsn();
        const r = await pgbench(pgp.binDir, {
          port: pgp.port,
          db: "pgbench",
          script: path.join(PGBENCH_DIR, script),
          concurrency: Number(o.clients),
          durationS: Number(o.duration),
          logDir: path.join(runDir, "logs"),
          name: `${variant}-${script}-${round}`.replace(/[^a-z0-9-]/gi, "_"),
          mode: "prepared",
        });
        const wal = await walBytes(before, await lsn());
        (results[`${script} indexes ${variant}`] ??= []).push({ tps: r.rps, walPerTx: wal / r.count });
      }
    }
  }
  await db.end();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `clients ${o.clients}, ${o.duration} s per run, ${o.rounds} rounds (median tps; WAL bytes per transaction)`,
  );
  for (const [name, runs] of Object.entries(results)) {
    const tps = median(runs.map((r) => r.tps));
    const wal = median(runs.map((r) => r.walPerTx));
    console.log(`${name.padEnd(30)} tps ${tps.toFixed(0).padStart(7)}   WAL/tx ${wal.toFixed(0).padStart(6)}`);
  }
} finally {
  await pgp?.destroy();
  fs.rmSync(runDir, { recursive: true, force: true });
  process.exit(0);
}
