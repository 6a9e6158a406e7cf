// Experiment (issue 15 part 2): where Postgres spends the CPU of one
// agentstate_kv_write statement. Starts its own durable Postgres (the test
// harness's PostgresProcess, fsync on) with the migrations and functions,
// runs pgbench with bench/pgbench/cas_new_ns.sql (one write per statement)
// over NSN namespaces at concurrency C for 8 s under `perf record -a -g`,
// prints tx/s and Postgres CPU per transaction, and the top symbols of the
// postgres processes (perf report --comm postgres). Needs perf (as root).
//   npm run build && node bench/experiments/pg-statement-perf.mjs [NSN=16] [C=16] [--children]
import { execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import console from "node:console";
import process from "node:process";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(import.meta.url);
const { PostgresProcess } = require(path.join(root, "dist/test/support/PostgresProcess.js"));
const { cpuSeconds, childPids } = require(path.join(root, "dist/test/support/procfs.js"));
const { readFunctions } = require(path.join(root, "dist/src/store/postgres/functions.js"));

const [nsn = "16", c = "16"] = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const seconds = 8;
// --children: symbols by inclusive time (their callees' samples counted in), top 60.
const children = process.argv.includes("--children");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-pgperf-"));
fs.chmodSync(dir, 0o755); // initdb runs as the postgres user when this runs as root
const pg = await PostgresProcess.start({
  dataDir: path.join(dir, "pg"),
  logPath: path.join(dir, "postgres.log"),
  settings: { shared_buffers: "256MB", fsync: "on", synchronous_commit: "on", full_page_writes: "on" },
}).catch((e) => {
  fs.rmSync(dir, { recursive: true, force: true });
  throw e;
});
const perfData = path.join(dir, "perf.data");
try {
  await pg.query("postgres", "CREATE DATABASE b");
  const migrations = fs
    .readdirSync(path.join(root, "migrations"))
    .filter((f) => f.endsWith(".sql"))
    .sort();
  for (const f of migrations) await pg.query("b", fs.readFileSync(path.join(root, "migrations", f), "utf8"));
  for (const fn of readFunctions()) await pg.query("b", fn.sql);
  const pgCpu = () => cpuSeconds(pg.pid, true) + childPids(pg.pid).reduce((a, x) => a + cpuSeconds(x), 0);
  const perf = spawn("perf", ["record", "-F", "999", "-g", "-a", "-o", perfData, "--", "sleep", String(seconds - 1)], {
    stdio: "ignore",
  });
  // Listened for at once: perf may end before pgbench does.
  const perfDone = new Promise((r) => perf.on("exit", r));
  const cpu0 = pgCpu();
  const { stdout } = await run(
    path.join(pg.binDir, "pgbench"),
    [
      "-h", "127.0.0.1", "-p", String(pg.port), "-U", "postgres", "-n", "-M", "prepared",
      "-f", path.join(root, "bench/pgbench/cas_new_ns.sql"), "-D", `nsn=${nsn}`,
      "-c", c, "-j", "2", "-T", String(seconds), "b",
    ], // prettier-ignore
    { cwd: dir },
  );
  await sleep(500); // pgbench's backends have exited: let the postmaster reap them
  const cpu = pgCpu() - cpu0;
  const tx = Number(/actually processed: (\d+)/.exec(stdout)?.[1]);
  await perfDone;
  console.log(
    `${nsn} namespaces, c = ${c}: ${(tx / seconds).toFixed(0)} tx/s, Postgres CPU ${((1000 * cpu) / tx).toFixed(3)} ms/tx; load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  const { stdout: report } = await run(
    "perf",
    [
      "report",
      "-i",
      perfData,
      "--comm",
      "postgres",
      "--percentage",
      "relative",
      children ? "--children" : "--no-children",
      "-g",
      "none",
    ].concat(["--sort", "sym", "--stdio"]),
    { maxBuffer: 64 * 1024 * 1024 },
  );
  console.log(
    report
      .split("\n")
      .filter((l) => l.includes("%") && !l.startsWith("#"))
      .slice(0, children ? 60 : 30)
      .join("\n"),
  );
} finally {
  await pg.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
