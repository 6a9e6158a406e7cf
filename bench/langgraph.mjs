#!/usr/bin/env node
// LangGraph checkpointers side by side, same Postgres, same run:
// AgentstateSaver (@agentstate/langgraph, through an agentstate server) and
// PostgresSaver (@langchain/langgraph-checkpoint-postgres 1.0.5, straight to
// Postgres). Each gets its own database in one Postgres (durable: fsync on).
//
// Per saver and per concurrency level (threads run side by side, one worker each):
//   steps    every thread takes 200 steps as LangGraph's loop does: put a
//            checkpoint (the channels that changed: a growing message list
//            and a step counter; a 4 KB "context" written at step 0 and
//            carried) and putWrites (two writes of the step's task); steps/s
//   getTuple the latest checkpoint of the worker's thread, for --seconds; calls/s
//   list     list(thread, { limit: 10 }), for --seconds; calls/s
//   bytes    pg_total_relation_size of the saver's tables after the level's run
//   cpu      CPU seconds per 1000 steps while the steps ran: the agentstate
//            server, Postgres (postmaster and backends) and this process
// With --rounds N the levels run N times, the savers' order alternating, and
// the table gives each metric's median over the rounds (the machine may be
// shared: interleaved rounds see the same load). --warmup N rounds (default 1)
// run first, the same way, and are not recorded: a server's first few hundred
// calls run before V8 has optimized its code. At the end: what each table,
// its TOAST and each index of the two savers hold, per thread run.
//
//   npm run build && npm --prefix clients/typescript-langgraph ci \
//     && node_modules/.bin/tsc -p clients/typescript/tsconfig.json \
//     && npx --prefix clients/typescript-langgraph tsc -p clients/typescript-langgraph/tsconfig.json
//   node bench/langgraph.mjs [--levels 1,16] [--steps 200] [--seconds 5] [--rounds 1] [--warmup 1] [--cpu-prof DIR]
//     [--columns: average column sizes] [--pg-stats: top statements per saver database]
//     [--savers agentstate,postgres: run only these (for a profile of one; no ratios then)]
//     [--ab: also AgentstateSaver B, by default with group commit off]
//     [--ab-env K=V,...: B server's environment] [--ab-main PATH: B server's dist/src/main.js]
//     [--ab-saver PATH: B saver's dist/index.js] [--ab-client PATH: B client's dist/index.js]
//     [--ab-no-session: --ab with B's client making unary checkpoint calls
//      (checkpointSession: false) and B's server as A's unless --ab-env says otherwise]
//     (A/B of a change: build the reference in a
//     worktree of its own under /work and pass its paths)
//     [--content padded|text: each message's 200 characters: the thread, the step and
//      'x' padding (default; Postgres' pglz squeezes the padding away), or words drawn
//      by a seeded generator from a 256-word vocabulary (compresses like prose)]
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import console from "node:console";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import process from "node:process";
import { langgraphSteps } from "./lib/langgraphStep.mjs";
import { cpuSeconds, startPostgres, startServer } from "./lib/procs.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PKG = path.join(REPO, "clients", "typescript-langgraph");
const need = createRequire(path.join(PKG, "package.json"));

const { values: o } = parseArgs({
  options: {
    levels: { type: "string", default: "1,16" },
    steps: { type: "string", default: "200" },
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "1" },
    warmup: { type: "string", default: "1" },
    "cpu-prof": { type: "string" },
    columns: { type: "boolean", default: false },
    ab: { type: "boolean", default: false },
    "ab-env": { type: "string" },
    "ab-main": { type: "string" },
    "ab-saver": { type: "string" },
    "ab-client": { type: "string" },
    "ab-no-session": { type: "boolean", default: false },
    "pg-stats": { type: "boolean", default: false },
    savers: { type: "string" },
    content: { type: "string", default: "padded" },
  },
});
const LEVELS = o.levels.split(",").map(Number);
const STEPS = Number(o.steps);
const SECONDS = Number(o.seconds);
const ROUNDS = Number(o.rounds);
const WARMUP = Number(o.warmup);
if (o["ab-no-session"]) o.ab = true;

const { AgentstateClient } = need("@agentstate/client");
// --ab with --ab-client: the B side's AgentstateClient from another build (its clients/typescript/dist/index.js).
const AgentstateClientB = o["ab-client"] ? need(path.resolve(o["ab-client"])).AgentstateClient : AgentstateClient;
const { AgentstateSaver } = need(path.join(PKG, "dist", "index.js"));
// --ab with --ab-saver: the B side's AgentstateSaver from another build (its dist/index.js).
const AgentstateSaverB = o["ab-saver"] ? need(path.resolve(o["ab-saver"])).AgentstateSaver : AgentstateSaver;
// --ab-env K=V,K=V: the B server's environment (default: group commit off).
const abEnv = Object.fromEntries(
  (o["ab-env"] ?? (o["ab-no-session"] ? "" : "AGENTSTATE_CHECKPOINT_BATCH=1"))
    .split(",")
    .filter((kv) => kv !== "")
    .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);
const { PostgresSaver } = need("@langchain/langgraph-checkpoint-postgres");
const { emptyCheckpoint, uuid6 } = need("@langchain/langgraph-checkpoint");

const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-bench-lg-"));
fs.chmodSync(runDir, 0o755);
const pg = await startPostgres(runDir, { statStatements: o["pg-stats"] });
await pg.createDatabase("agentstate");
await pg.createDatabase("lgpostgres");
const server = await startServer(
  path.join(REPO, "dist", "src", "main.js"),
  runDir,
  {
    DATABASE_URL: pg.url("agentstate"),
    REDIS_URL: "",
    REDLOCK_URLS: "",
    AGENTSTATE_HOST: "127.0.0.1",
    AGENTSTATE_PORT: "0",
    AGENTSTATE_METRICS_PORT: "-1",
    LOG_LEVEL: "warn",
  },
  { cpuProfDir: o["cpu-prof"] },
);
const client = new AgentstateClient(server.address, { deadlineMs: 60_000 });
// --ab: a second server (B) on its own database, in the same run: by default
// this build with group commit of checkpoint puts off (AGENTSTATE_CHECKPOINT_BATCH=1);
// --ab-env sets its environment instead, --ab-main runs another build's
// dist/src/main.js, --ab-saver takes the saver from another build.
let serverAlone;
let clientAlone;
if (o.ab) {
  await pg.createDatabase("agentstate_alone");
  serverAlone = await startServer(
    path.resolve(o["ab-main"] ?? path.join(REPO, "dist", "src", "main.js")),
    runDir,
    {
      DATABASE_URL: pg.url("agentstate_alone"),
      REDIS_URL: "",
      REDLOCK_URLS: "",
      AGENTSTATE_HOST: "127.0.0.1",
      AGENTSTATE_PORT: "0",
      AGENTSTATE_METRICS_PORT: "-1",
      LOG_LEVEL: "warn",
      ...abEnv,
    },
    { logName: "server-alone.log" },
  );
  clientAlone = new AgentstateClientB(serverAlone.address, {
    deadlineMs: 60_000,
    ...(o["ab-no-session"] && { checkpointSession: false }),
  });
}
const pgSaver = PostgresSaver.fromConnString(pg.url("lgpostgres"));
await pgSaver.setup();

const savers = {
  agentstate: {
    saver: (level) => new AgentstateSaver({ client, namespace: `bench-${level}`, strict: true }),
    db: "agentstate",
    tables: ["checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_write_chunks", "checkpoint_heads"],
    server: () => server,
  },
  ...(o.ab && {
    "agentstate-alone": {
      saver: (level) => new AgentstateSaverB({ client: clientAlone, namespace: `bench-${level}`, strict: true }),
      db: "agentstate_alone",
      tables: ["checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_write_chunks", "checkpoint_heads"],
      server: () => serverAlone,
    },
  }),
  postgres: {
    saver: () => pgSaver,
    db: "lgpostgres",
    tables: ["checkpoints", "checkpoint_blobs", "checkpoint_writes"],
  },
};

if (!["padded", "text"].includes(o.content)) throw new Error("--content: padded or text");
/** 256 words of 2 to 9 letters, from a fixed seed. */
const WORDS = (() => {
  let seed = 42;
  const next = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
  return Array.from({ length: 256 }, () =>
    Array.from({ length: 2 + Math.floor(next() * 8) }, () => String.fromCharCode(97 + Math.floor(next() * 26))).join(
      "",
    ),
  );
})();
/** Words for message i of a thread (the same for every saver and run). */
function words(thread, i) {
  let seed = i * 2654435761;
  for (const ch of thread) seed = (seed * 31 + ch.charCodeAt(0)) >>> 0;
  const next = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
  let out = `${thread} step ${i}`;
  while (out.length < 200) out += ` ${WORDS[Math.floor(next() * 256)]}`;
  return out.slice(0, 200);
}
const message = (thread, i) => ({
  role: i % 2 ? "ai" : "human",
  content: o.content === "text" ? words(thread, i) : `${thread} step ${i} `.padEnd(200, "x"),
});

const step = langgraphSteps(uuid6, message);

function median(xs) {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

/** Each put's and putWrites' time (ms) in the level being run. */
const latency = { put: [], putWrites: [] };

/** One thread of STEPS steps, as LangGraph's loop takes them (put, then the task's writes). */
async function runThread(saver, thread) {
  let prev = emptyCheckpoint();
  let config = { configurable: { thread_id: thread, checkpoint_ns: "" } };
  for (let i = 0; i < STEPS; i++) {
    const { checkpoint, newVersions, metadata, writes, taskId } = step(saver, prev, thread, i);
    const t0 = performance.now();
    config = await saver.put(config, checkpoint, metadata, newVersions);
    const t1 = performance.now();
    await saver.putWrites(config, writes, taskId);
    latency.put.push(t1 - t0);
    latency.putWrites.push(performance.now() - t1);
    prev = checkpoint;
  }
}

async function timed(seconds, workers, fn) {
  const end = Date.now() + seconds * 1000;
  let n = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (Date.now() < end) {
        await fn(w);
        n++;
      }
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

async function bytes(db, tables) {
  const rows = await pg.query(
    db,
    `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS b FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = ANY($1)`,
    [tables],
  );
  return Number(rows[0].b);
}

/** What each table, its TOAST and each index of both savers hold, per thread run (all rounds and levels). */
async function breakdown() {
  console.log(`\nBytes per thread by relation (${threadsRun} threads of ${STEPS} steps per saver):\n`);
  console.log("| saver | relation | KiB per thread |\n|---|---|---|");
  for (const [name, s] of Object.entries(savers)) {
    const rows = await pg.query(
      s.db,
      `SELECT c.relname AS rel, pg_relation_size(c.oid) + pg_relation_size(c.oid, 'fsm') + pg_relation_size(c.oid, 'vm') AS b,
              coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS toast
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relname = ANY($1)
       UNION ALL
       SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid), 0
       FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relname = ANY($1)
       ORDER BY 1`,
      [s.tables],
    );
    let total = 0;
    for (const r of rows) {
      const kib = (v) => (Number(v) / 1024 / threadsRun).toFixed(1);
      console.log(`| ${name} | ${r.rel} | ${kib(r.b)} |`);
      if (Number(r.toast) > 0) console.log(`| ${name} | ${r.rel} (TOAST) | ${kib(r.toast)} |`);
      total += Number(r.b) + Number(r.toast);
    }
    console.log(`| ${name} | **total** | ${(total / 1024 / threadsRun).toFixed(1)} |`);
  }
  if (o.columns) await columnSizes();
}

/** Average stored size of each column of the savers' tables (--columns). */
async function columnSizes() {
  for (const [name, s] of Object.entries(savers)) {
    for (const table of s.tables) {
      const cols = await pg.query(
        s.db,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        [table],
      );
      const sel = cols.map((c) => `avg(pg_column_size("${c.column_name}"))::int AS "${c.column_name}"`).join(", ");
      const rows = await pg.query(s.db, `SELECT count(*)::int AS rows, ${sel} FROM "${table}"`);
      console.log(`${name}.${table}: ${JSON.stringify(rows[0])}`);
    }
  }
  // The channel values as stored (migrations/0017): whole values and deltas, raw and as Postgres keeps them.
  for (const [name, s] of Object.entries(savers)) {
    if (!s.tables.includes("checkpoint_write_chunks")) continue;
    const rows = await pg.query(
      s.db,
      `SELECT base IS NOT NULL AS delta, count(*)::int AS n, sum(octet_length(data))::bigint AS raw,
              sum(pg_column_size(data))::bigint AS stored, sum(coalesce(bytes, octet_length(data)))::bigint AS whole
       FROM checkpoint_blobs WHERE chunk = 0 GROUP BY 1 ORDER BY 1`,
    );
    for (const r of rows) {
      console.log(
        `${name}.checkpoint_blobs ${r.delta ? "deltas" : "whole values"}: ${r.n} values of ${r.whole} B, stored ${r.raw} B raw, ${r.stored} B after pglz`,
      );
    }
  }
}

/** --pg-stats: each saver database's statements by total execution time (pg_stat_statements, whole run). */
async function statements() {
  await pg.query("postgres", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  for (const [name, s] of Object.entries(savers)) {
    const rows = await pg.query(
      "postgres",
      `SELECT calls, round(total_exec_time::numeric, 1) AS ms, round((total_exec_time / calls)::numeric, 3) AS ms_per_call,
              rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
       FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
       WHERE d.datname = $1 ORDER BY total_exec_time DESC LIMIT 8`,
      [s.db],
    );
    console.log(`\npg_stat_statements, ${name} (${s.db}), top 8 by total time:`);
    for (const r of rows)
      console.log(`  ${r.calls} calls ${r.ms} ms (${r.ms_per_call}/call) rows ${r.rows}: ${r.query}`);
  }
}

/** CPU seconds so far: the server, Postgres (postmaster and its backends), this process. */
function cpuNow(srv) {
  const self = process.cpuUsage();
  return {
    server: srv === undefined ? 0 : cpuSeconds(srv.pid),
    // Backends that exited are counted in the postmaster's reaped children.
    postgres: descendants(pg.pid).reduce((s, p) => s + cpuSeconds(p), cpuSeconds(pg.pid, true)),
    bench: (self.user + self.system) / 1e6,
  };
}

function descendants(pid) {
  const out = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      if (Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

const results = [];
let threadsRun = 0;
try {
  // Warm-up rounds first (numbered below 0), run as the measured ones and not
  // recorded: the first steps a process ever takes run before V8 has compiled
  // its hot code (the server's, and the savers' own in this process).
  for (let round = -WARMUP; round < ROUNDS; round++) {
    for (const level of LEVELS) {
      const order = Object.entries(savers).filter(([name]) => !o.savers || o.savers.split(",").includes(name));
      if (Math.abs(round) % 2 === 1) order.reverse();
      for (const [name, s] of order) {
        const saver = s.saver(level);
        const threads = Array.from({ length: level }, (_, i) => `bench-${round}-${level}-${name}-${i}`);
        const before = await bytes(s.db, s.tables);
        const cpu0 = cpuNow(s.server?.());
        latency.put = [];
        latency.putWrites = [];
        const t0 = performance.now();
        await Promise.all(threads.map((t) => runThread(saver, t)));
        const stepsPerS = (level * STEPS) / ((performance.now() - t0) / 1000);
        const cpu1 = cpuNow(s.server?.());
        // A saver that sends deltas counts the channel values' bytes, whole and as sent.
        const sent = saver.deltas?.stats;
        const stored = (await bytes(s.db, s.tables)) - before;
        const getTuple = await timed(SECONDS, level, (w) =>
          saver.getTuple({ configurable: { thread_id: threads[w] } }),
        );
        const list = await timed(SECONDS, level, async (w) => {
          for await (const _ of saver.list({ configurable: { thread_id: threads[w] } }, { limit: 10 })) void _;
        });
        const per1000 = (k) => ((cpu1[k] - cpu0[k]) * 1000) / (level * STEPS);
        const r = {
          round,
          saver: name,
          threads: level,
          stepsPerS,
          getTuple,
          list,
          bytesPerThread: stored / level,
          cpuServer: per1000("server"),
          cpuPostgres: per1000("postgres"),
          cpuBench: per1000("bench"),
          putMs: median(latency.put),
          putWritesMs: median(latency.putWrites),
          cpuAll: per1000("server") + per1000("postgres") + per1000("bench"),
          ...(sent && {
            valueBytesPerStep: sent.valueBytes / (level * STEPS),
            sentBytesPerStep: sent.sentBytes / (level * STEPS),
            deltasPerStep: sent.deltas / (level * STEPS),
            resent: sent.resent,
          }),
          load: os.loadavg()[0],
        };
        if (round >= 0) results.push(r);
        console.log(JSON.stringify(round >= 0 ? r : { warmup: true, ...r }));
      }
      threadsRun += level;
    }
  }
  await breakdown();
  if (o["pg-stats"]) await statements();
} finally {
  client.close();
  clientAlone?.close();
  await pgSaver.end();
  await server.stop();
  await serverAlone?.stop();
  await pg.stop();
  fs.rmSync(runDir, { recursive: true, force: true });
}

const loads = results.map((r) => r.load);
console.log(
  `\n${ROUNDS} round(s), medians; ratio = median of the per-round ratios; 1-min load average during the run ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)} on ${os.cpus().length} CPUs`,
);
console.log("\n| threads | metric | AgentstateSaver | PostgresSaver | ratio (min-max) |\n|---|---|---|---|---|");
for (const level of LEVELS) {
  const a = results.filter((r) => r.saver === "agentstate" && r.threads === level);
  const p = results.filter((r) => r.saver === "postgres" && r.threads === level);
  if (a.length === 0 || p.length === 0) continue;
  for (const [metric, key, fmt] of [
    ["steps/s (put + putWrites)", "stepsPerS", (v) => v.toFixed(0)],
    ["getTuple/s", "getTuple", (v) => v.toFixed(0)],
    ["list(limit 10)/s", "list", (v) => v.toFixed(0)],
    ["bytes per 200-step thread", "bytesPerThread", (v) => `${(v / 1024).toFixed(0)} KiB`],
    ["CPU s per 1000 steps: server", "cpuServer", (v) => v.toFixed(2)],
    ["CPU s per 1000 steps: Postgres", "cpuPostgres", (v) => v.toFixed(2)],
    ["CPU s per 1000 steps: bench (client)", "cpuBench", (v) => v.toFixed(2)],
    ["put ms (median)", "putMs", (v) => v.toFixed(1)],
    ["putWrites ms (median)", "putWritesMs", (v) => v.toFixed(1)],
    ["CPU s per 1000 steps: all three", "cpuAll", (v) => v.toFixed(2)],
  ]) {
    const ratios = a.map((r, i) => r[key] / p[i][key]);
    const ma = median(a.map((r) => r[key]));
    const mp = median(p.map((r) => r[key]));
    const rr = ROUNDS > 1 ? ` (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})` : "";
    console.log(
      `| ${level} | ${metric} | ${fmt(ma)} | ${fmt(mp)} | ${mp ? median(ratios).toFixed(2) + "x" + rr : "-"} |`,
    );
  }
}

// Channel value bytes per step, as put (whole) and as sent (deltas where they pay), for savers that count them.
for (const name of Object.keys(savers)) {
  for (const level of LEVELS) {
    const rs = results.filter((r) => r.saver === name && r.threads === level && r.valueBytesPerStep !== undefined);
    if (rs.length === 0) continue;
    console.log(
      `${name}, ${level} thread(s): channel values per step ${median(rs.map((r) => r.valueBytesPerStep)).toFixed(0)} bytes whole, ${median(rs.map((r) => r.sentBytesPerStep)).toFixed(0)} sent; ${median(rs.map((r) => r.deltasPerStep)).toFixed(2)} deltas per step; puts sent again whole: ${rs.reduce((n, r) => n + r.resent, 0)}`,
    );
  }
}

if (o.ab) {
  console.log(
    `\nA: this build; B: ${o["ab-main"] ?? "this build"}, saver ${o["ab-saver"] ?? "this build's"}, client ${o["ab-client"] ?? "this build's"}${o["ab-no-session"] ? " with checkpointSession: false" : ""}, env ${JSON.stringify(abEnv)}; same run:\n\n| threads | metric | A | B | A/B (min-max) |\n|---|---|---|---|---|`,
  );
  for (const level of LEVELS) {
    const a = results.filter((r) => r.saver === "agentstate" && r.threads === level);
    const b = results.filter((r) => r.saver === "agentstate-alone" && r.threads === level);
    if (a.length === 0 || b.length === 0) continue;
    for (const [metric, key, fmt] of [
      ["steps/s (put + putWrites)", "stepsPerS", (v) => v.toFixed(0)],
      ["getTuple/s", "getTuple", (v) => v.toFixed(0)],
      ["list(limit 10)/s", "list", (v) => v.toFixed(0)],
      ["CPU s per 1000 steps: server", "cpuServer", (v) => v.toFixed(2)],
      ["CPU s per 1000 steps: Postgres", "cpuPostgres", (v) => v.toFixed(2)],
      ["CPU s per 1000 steps: bench (client)", "cpuBench", (v) => v.toFixed(2)],
      ["put ms (median)", "putMs", (v) => v.toFixed(1)],
      ["putWrites ms (median)", "putWritesMs", (v) => v.toFixed(1)],
      ["CPU s per 1000 steps: all three", "cpuAll", (v) => v.toFixed(2)],
    ]) {
      if (a.length === 0 || !(key in a[0])) continue;
      const ratios = a.map((r, i) => r[key] / b[i][key]);
      console.log(
        `| ${level} | ${metric} | ${fmt(median(a.map((r) => r[key])))} | ${fmt(median(b.map((r) => r[key])))} | ${median(ratios).toFixed(2)}x (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}) |`,
      );
    }
  }
}
