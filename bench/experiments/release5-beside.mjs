// EXPERIMENT: a real release-5 server beside this release's, sharing one
// database and one Redis cache through a rolling upgrade, while namespace
// epochs move (issue 15 part 4; ARCHITECTURE.md, "A cache epoch per
// namespace", rolling upgrade from release 5).
//
//   npm run build && node bench/experiments/release5-beside.mjs [--ref ed331db] [--seconds 20] [--unsafe]
//
// Builds the server of --ref (release 5: git archive + its own npm run build,
// as bench/run.mjs --ab-ref does; --release5-main PATH reuses a build),
// starts it on a fresh database (which it migrates to release 5), then this
// checkout's server (which migrates the database to release 6 while the
// release-5 one runs on), both with the same Redis and prefix. Readers and
// writers race through both (test/support/cacheRace.ts: no Get may return a
// version older than one acknowledged before it began) while the namespace's
// epoch is moved every 300 ms (agentstate_cache_move, as a write that could
// not mark does). This release then makes every move store-wide while the
// release-5 replica is registered, so the release-5 replica never serves from
// keys this release's writes no longer fence.
//
// --unsafe replaces agentstate_cache_move and agentstate_kv_write in the
// database with ones that move the namespace alone whatever is registered,
// and agentstate_cache_lease with one whose release-5 renewals never move the
// store epoch (the three checks removed): the control, which should show
// stale reads from the release-5 replica. (With only some removed, the others'
// moves of the store epoch still cover the namespace moves.)
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import console from "node:console";
import { execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { killAllSync, startPostgres, startRedis, startServer } from "../lib/procs.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");
const { values: o } = parseArgs({
  options: {
    ref: { type: "string", default: "ed331db" },
    "release5-main": { type: "string" },
    seconds: { type: "string", default: "20" },
    unsafe: { type: "boolean", default: false },
  },
});
const NS = "r5mix";
const KEYS = ["a", "b", "c"];

const { AgentstateClient } = await import(path.join(REPO, "dist/clients/typescript/src/AgentstateClient.js"));
const { StaleReadRace } = await import(path.join(REPO, "dist/test/support/cacheRace.js"));

function buildRef(ref, dir) {
  fs.mkdirSync(dir, { recursive: true });
  const tar = path.join(dir, "..", "ref.tar");
  execFileSync("git", ["-C", REPO, "archive", "--format=tar", "-o", tar, ref]);
  execFileSync("tar", ["-xf", tar, "-C", dir]);
  fs.rmSync(tar);
  fs.symlinkSync(path.join(REPO, "node_modules"), path.join(dir, "node_modules"), "dir");
  const mainJs = path.join(dir, "dist", "src", "main.js");
  try {
    execFileSync("npm", ["run", "build"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    if (!fs.existsSync(mainJs)) throw e;
  }
  return mainJs;
}

const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-r5beside-"));
fs.chmodSync(runDir, 0o755); // Postgres runs as "postgres" and needs to reach its data dir
const servers = [];
let pgProc;
let redis;
const clients = [];
try {
  const r5Main = o["release5-main"] ?? buildRef(o.ref, path.join(runDir, "ref"));
  pgProc = await startPostgres(runDir);
  await pgProc.createDatabase("agentstate");
  redis = await startRedis(runDir, "redis");
  const env = {
    DATABASE_URL: pgProc.url("agentstate"),
    REDIS_URL: redis.url,
    AGENTSTATE_REDIS_PREFIX: "r5",
    AGENTSTATE_CACHE_LEASE_MS: "500",
    AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
    AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
    AGENTSTATE_METRICS_PORT: "0",
    LOG_LEVEL: "warn",
    NODE_PATH: path.join(REPO, "node_modules"),
  };
  servers.push(await startServer(r5Main, runDir, env, { logName: "release5.log" }));
  servers.push(await startServer(path.join(REPO, "dist/src/main.js"), runDir, env, { logName: "release6.log" }));
  const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 2 });
  const release = (await pool.query("SELECT release FROM agentstate_release")).rows[0]?.release;
  console.log(`database at release ${release}; release-5 server ${servers[0].address}, this one ${servers[1].address}`);
  if (o.unsafe) {
    const file = path.join(REPO, "src/store/postgres/functions/agentstate_cache_move.sql");
    const unsafe = fs
      .readFileSync(file, "utf8")
      .replace(
        "IF EXISTS (SELECT 1 FROM cache_registrations g WHERE g.legacy_until > clock_timestamp()) THEN",
        "IF false THEN",
      );
    await pool.query(unsafe);
    const writeFile = path.join(REPO, "src/store/postgres/functions/agentstate_kv_write.sql");
    await pool.query(
      fs
        .readFileSync(writeFile, "utf8")
        .replace(
          "IF EXISTS (SELECT 1 FROM cache_registrations g WHERE g.legacy_until > clock_timestamp()) THEN",
          "IF false THEN",
        ),
    );
    const leaseFile = path.join(REPO, "src/store/postgres/functions/agentstate_cache_lease.sql");
    await pool.query(fs.readFileSync(leaseFile, "utf8").replace("ELSIF legacy AND EXISTS", "ELSIF false AND EXISTS"));
    console.log("--unsafe: namespace moves alone whatever is registered, no store move at a release-5 renewal");
  }
  for (const s of servers) clients.push(new AgentstateClient(s.address));
  // Let both replicas register and the cache take the epoch and mature.
  await sleep(4000);
  const epochBefore = (await pool.query("SELECT cache_epoch FROM agentstate_state")).rows[0].cache_epoch;
  const race = new StaleReadRace(clients, { namespace: NS, keys: KEYS });
  race.start();
  let moves = 0;
  const until = Date.now() + Number(o.seconds) * 1000;
  while (Date.now() < until) {
    await pool.query("SELECT * FROM agentstate_cache_move($1, false)", [NS]);
    moves++;
    await sleep(300);
  }
  await race.stop();
  const epochAfter = (await pool.query("SELECT cache_epoch FROM agentstate_state")).rows[0].cache_epoch;
  const nsRow = (await pool.query("SELECT cache_move_epoch, cache_move_seq FROM namespace_revisions WHERE namespace = $1", [NS])).rows[0]; // prettier-ignore
  console.log(
    JSON.stringify({
      unsafe: o.unsafe,
      moves,
      reads: race.reads,
      writes: race.writes,
      staleReads: race.violations.length,
      firstStale: race.violations.slice(0, 3),
      storeEpoch: `${epochBefore} -> ${epochAfter}`,
      namespaceRow: nsRow,
    }),
  );
  await pool.end();
} finally {
  for (const c of clients) c.close();
  for (const s of servers) await s.stop().catch(() => undefined);
  await redis?.destroy().catch(() => undefined);
  await pgProc?.destroy().catch(() => undefined);
  killAllSync();
  fs.rmSync(runDir, { recursive: true, force: true });
}
