#!/usr/bin/env node
// agentstate benchmarks: one command that starts everything it needs (its own
// Postgres, a cache Redis, three Redlock Redis masters, etcd, the agentstate
// server), runs ghz scenarios against the server and the baselines beside it
// (empty RPC, redis-benchmark, pgbench with the service's exact SQL, etcd), and
// prints one table with the ratios the Benchmarks issue sets as targets.
//
//   node bench/run.mjs                 # the default run (about 7 minutes)
//   node bench/run.mjs --help          # every option
//
// See BENCHMARKS.md for what each scenario does and how to read the numbers.
import { execFileSync, fork } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { parseArgs as parseCommandLine } from "node:util";
import { Buffer } from "node:buffer";
import { copyAssets } from "../scripts/copy-assets.mjs";
import { summarizeFile } from "./lib/cpuprofile.mjs";
import { goSubscribers } from "./lib/goSubscribers.mjs";
import { checkAll as checkPgbenchScripts, PGBENCH_DIR } from "./lib/pgbenchSql.mjs";
import {
  childPids,
  cpuSeconds,
  etcdVersion,
  freePort,
  killAllSync,
  killAtExit,
  rssMiB,
  startEtcd,
  startPostgres,
  startRedis,
  startRedisCluster,
  startServer,
} from "./lib/procs.mjs";
import { driver, driverSetup, findGhz, ghz, GHZ_VERSION, ghzVersion, pgbench, redisBenchmark } from "./lib/runners.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..");
const NS = "bench";
// Server B's database and Redis prefix with --ab-ref (else it shares A's).
const DB_B = "agentstate_b";
const PREFIX_B = "bench_b";
const VALUE = Buffer.alloc(64, "v");
const VALUE_B64 = VALUE.toString("base64");
const ETCD_PINNED = "3.4.23";

// ------------------------------------------------------------------- options

const HELP = `usage: node bench/run.mjs [options]

  --levels 1,16,64       closed-loop concurrency levels (default 1,16,64)
  --duration S           seconds per closed-loop run (default 3)
  --rate-duration S      seconds of the fixed-rate run at 50% of the peak (default 5; 0 skips them)
  --only LIST            scenario ids or groups (read,cas,lock,append; ns: CAS and Append over 1, 4 and 16
                         namespaces, run only when named) to run; "none" runs no scenario
  --soak                 also run the soak: mixed Get/CAS/Append load at a fixed rate, RSS sampled every 10 s
  --soak-minutes M       soak length (default 10)
  --fanout               also measure Subscribe: Postgres transactions/s and server CPU with 1000 idle
                         subscribers, and delivery latency of an append to 1 / 100 / 1000 subscribers of
                         one stream (on server B too with --ab-*); needs
                         --server-env AGENTSTATE_MAX_SUBSCRIBERS_PER_NAMESPACE=1000 or more
  --fanout-idle N        idle subscribers for --fanout (default 1000)
  --fanout-gap-ms MS     pause between the appends of the delivery measurement (default 200)
  --fanout-threads T     the delivery measurement's subscribers spread over T worker threads, each with
                         its own connection (default 0: all in this thread, over 4 connections)
  --fanout-procs P       ... or over P child processes, each with its own connection, receipts stamped on
                         the machine's monotonic clock (default 0)
  --fanout-rounds R      repeat the delivery measurement R times, A and B interleaved (default 1); with
                         --fanout-idle 0 the idle measurement is skipped
  --fanout-client C      the --fanout-procs children's client: grpc-js (default; the generated client of
                         the tests), http2 (Node's HTTP/2 client, gRPC framing by hand, the same
                         generated decoder; bench/lib/fanoutSubscribers.mjs) or go (grpc-go and the
                         generated code of clients/go, a goroutine per stream; bench/fanout-go)
  --fanout-counts LIST   subscriber counts of the delivery measurement (default 1,100,1000; the ratio
                         columns need 1 and 100 / 1000)
  --fanout-profile       CPU-profile server A (in process, bench/lib/cpuprofOnSignal.mjs) during the appends
                         of each round's largest --fanout-counts measurement; the report says where its
                         time went (round 1; every .cpuprofile is copied next to the report)
  --big                  also compare Get p99 on a --big-keys store with a 1k-key store (side by side,
                         two servers, measured alternately 3 times; medians)
  --big-keys N           keys for --big (default 10000000)
  --profile ID           instead of the suite: run scenario ID under node --cpu-prof with
                         pg_stat_statements and Redis commandstats, and print where the time goes
                         (default --levels 16 --duration 10 in this mode)
  --server build|dist    build: compile src/ privately into the run directory (default; never touches dist/);
                         dist: snapshot the repo's dist/ (run \`npm run build\` first)
  --pg-fsync on|off      Postgres fsync + synchronous_commit (default on, durable like etcd)
  --log-level L          server LOG_LEVEL (default info: one JSON line per RPC, as in production)
  --server-env K=V       extra server environment (repeatable), e.g. PG_POOL_MAX=40
  --ab-import FILE       A/B: also start server B with FILE preloaded (repeatable) and run every
                         agentstate scenario on A then on B, back to back (rows "<id>+B")
  --ab-env K=V           A/B: extra environment for server B only (repeatable), e.g. LOG_LEVEL=warn
  --ab-redis-cluster     A/B: server B is the same build with its cache on a 3-master Redis Cluster
                         (REDIS_URL=redis+cluster://, no replicas; the harness's RedisClusterProcess),
                         its own database and Redis prefix; A keeps the single cache Redis
  --redis-cluster        every server's cache on a 3-master Redis Cluster (e.g. with --ab-ref, to compare
                         two builds on a cluster)
  --ab-ref GITREF        A/B: server B is the server built from GITREF (git archive into the run
                         directory, built there with its own npm run build against this node_modules),
                         on the same Postgres and Redis but its own fresh database and Redis prefix
                         (its migrations may differ), e.g. --ab-ref origin/main
  --server-import FILE   preload FILE into the server (node --import; repeatable): the
                         bench/experiments/*.mjs patches measure a change without editing src/
  --out DIR              where results .md/.json go (default bench/results)
  --keep                 keep the run directory (logs, data) under /tmp
  --ghz-connections N    gRPC connections per ghz run (default 1; at most c), e.g. with
                         --ab-import bench/experiments/cluster-workers.mjs
`;

const OPTIONS = {
  levels: { type: "string" },
  duration: { type: "string" },
  "rate-duration": { type: "string", default: "5" },
  only: { type: "string" },
  soak: { type: "boolean", default: false },
  "soak-minutes": { type: "string", default: "10" },
  big: { type: "boolean", default: false },
  fanout: { type: "boolean", default: false },
  "fanout-idle": { type: "string", default: "1000" },
  "fanout-gap-ms": { type: "string", default: "200" },
  "fanout-threads": { type: "string", default: "0" },
  "fanout-procs": { type: "string", default: "0" },
  "fanout-rounds": { type: "string", default: "1" },
  "fanout-counts": { type: "string", default: "1,100,1000" },
  "fanout-client": { type: "string", default: "grpc-js" },
  "fanout-profile": { type: "boolean", default: false },
  "big-keys": { type: "string", default: "10000000" },
  profile: { type: "string" },
  server: { type: "string", default: "build" },
  "pg-fsync": { type: "string", default: "on" },
  "log-level": { type: "string", default: "info" },
  "server-env": { type: "string", multiple: true, default: [] },
  "ab-import": { type: "string", multiple: true, default: [] },
  "ab-env": { type: "string", multiple: true, default: [] },
  "ab-ref": { type: "string" },
  "ab-redis-cluster": { type: "boolean", default: false },
  "redis-cluster": { type: "boolean", default: false },
  "server-import": { type: "string", multiple: true, default: [] },
  out: { type: "string", default: path.join(HERE, "results") },
  keep: { type: "boolean", default: false },
  "ghz-connections": { type: "string", default: "1" },
  help: { type: "boolean", short: "h", default: false },
};

function parseArgs(argv) {
  let v;
  try {
    ({ values: v } = parseCommandLine({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new Error(`${e.message}\n${HELP}`);
  }
  if (v.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const keyValues = (list) =>
    Object.fromEntries(list.map((kv) => [kv.split("=")[0], kv.split("=").slice(1).join("=")]));
  const o = {
    levels: (v.levels ?? "1,16,64").split(",").map(Number),
    duration: Number(v.duration ?? 3),
    rateDuration: Number(v["rate-duration"]),
    only: v.only?.split(","),
    soak: v.soak,
    soakMinutes: Number(v["soak-minutes"]),
    big: v.big,
    fanout: v.fanout,
    fanoutIdle: Number(v["fanout-idle"]),
    fanoutGapMs: Number(v["fanout-gap-ms"]),
    fanoutThreads: Number(v["fanout-threads"]),
    fanoutProcs: Number(v["fanout-procs"]),
    fanoutRounds: Number(v["fanout-rounds"]),
    fanoutCounts: v["fanout-counts"].split(",").map(Number),
    fanoutClient: v["fanout-client"],
    fanoutProfile: v["fanout-profile"],
    bigKeys: Number(v["big-keys"]),
    profile: v.profile,
    server: v.server,
    pgFsync: v["pg-fsync"] !== "off",
    logLevel: v["log-level"],
    serverEnv: keyValues(v["server-env"]),
    serverImport: v["server-import"].map((f) => path.resolve(f)),
    abImport: v["ab-import"].map((f) => path.resolve(f)),
    abEnv: keyValues(v["ab-env"]),
    abRef: v["ab-ref"],
    abRedisCluster: v["ab-redis-cluster"],
    redisCluster: v["redis-cluster"],
    out: path.resolve(v.out),
    keep: v.keep,
    ghzConnections: Number(v["ghz-connections"]),
  };
  if (o.abRedisCluster && (o.abRef || o.redisCluster))
    throw new Error("--ab-redis-cluster puts server B alone on a cluster: not with --ab-ref or --redis-cluster");
  if (!["build", "dist"].includes(o.server)) throw new Error("--server is build or dist");
  if (!Number.isInteger(o.ghzConnections) || o.ghzConnections < 1) throw new Error("--ghz-connections must be >= 1");
  if (o.profile) {
    if (v.levels === undefined) o.levels = [16];
    if (v.duration === undefined) o.duration = 10;
    o.rateDuration = 0;
  }
  if (o.levels.some((l) => !Number.isInteger(l) || l < 1)) throw new Error("--levels must be positive integers");
  return o;
}

// ----------------------------------------------------------------- scenarios
//
// kind "as": agentstate (RSS sampled around it); "base": a baseline.
// `vs`: baselines its throughput is divided by, at the same concurrency.

const ghzCall = (call, data) => (ctx, c, rps, tag) =>
  ghz(ctx.ghz, ctx.server.address, {
    call,
    data: typeof data === "function" ? data(tag) : data,
    concurrency: c,
    durationS: rps ? ctx.o.rateDuration : ctx.o.duration,
    rps,
    connections: ctx.o.ghzConnections,
  });
const asDriver =
  (op, extra = []) =>
  (ctx, c, rps, tag) =>
    driver(ctx.driver, {
      target: "agentstate",
      op,
      endpoint: ctx.server.address,
      concurrency: c,
      durationS: rps ? ctx.o.rateDuration : ctx.o.duration,
      rps,
      tag,
      extra,
    });
const etcdDriver = (op) => (ctx, c, rps, tag) =>
  driver(ctx.driver, {
    target: "etcd",
    op,
    endpoint: ctx.etcd.endpoint,
    concurrency: c,
    durationS: rps ? ctx.o.rateDuration : ctx.o.duration,
    rps,
    tag,
  });
const pgbenchScript = (script, mode, defines) => (ctx, c, rps, tag) =>
  pgbench(ctx.pg.binDir, {
    port: ctx.pg.port,
    db: "pgbench",
    script: path.join(PGBENCH_DIR, script),
    concurrency: c,
    durationS: rps ? ctx.o.rateDuration : ctx.o.duration,
    rps,
    logDir: path.join(ctx.runDir, "pgbench-logs"),
    name: tag.replace(/[^a-z0-9-]/gi, "_"),
    mode,
    defines,
  });
const redis = (test) => async (ctx, c) => {
  const perSecond = c === 1 ? 15000 : 50000;
  const r = await redisBenchmark({
    port: ctx.cache.port,
    concurrency: c,
    requests: Math.round(perSecond * ctx.o.duration),
  });
  return r[test];
};

const event = { type: "bench", data: VALUE_B64 };

export const SCENARIOS = [
  // ------------------------------------------------------------------ read
  {
    id: "health",
    group: "read",
    kind: "base",
    tool: "ghz",
    what: "empty RPC: grpc.health.v1.Health/Check on the agentstate server (transport ceiling)",
    onServer: true,
    run: ghzCall("grpc.health.v1.Health/Check", {}),
  },
  {
    id: "get-hit",
    group: "read",
    kind: "as",
    tool: "ghz",
    what: "Get of one pre-created 64-byte key, served from the Redis cache (default consistency)",
    run: ghzCall("agentstate.v1.KeyValueService/Get", { namespace: NS, key: "get/hit" }),
    vs: ["health", "etcd-range", "redis-get"],
  },
  {
    id: "get-hit-go",
    group: "read",
    kind: "as",
    tool: "go",
    what: "the same Get driven by the Go driver (same client harness as etcd-range)",
    run: asDriver("get", ["-key", "get/hit"]),
    vs: ["etcd-range"],
  },
  {
    id: "get-miss",
    group: "read",
    kind: "as",
    tool: "ghz",
    what: "Get of a distinct absent key per call: cache miss, Postgres read, cache fill",
    run: ghzCall("agentstate.v1.KeyValueService/Get", (tag) => ({
      namespace: NS,
      key: `miss/${tag}/{{.RequestNumber}}`,
    })),
    vs: ["health"],
  },
  {
    id: "get-db",
    group: "read",
    kind: "as",
    tool: "ghz",
    what: "Get of the warm key with consistency CONSISTENCY_DATABASE (Postgres, no cache)",
    run: ghzCall("agentstate.v1.KeyValueService/Get", {
      namespace: NS,
      key: "get/hit",
      consistency: "CONSISTENCY_DATABASE",
    }),
    vs: ["health"],
  },
  {
    id: "etcd-range",
    group: "read",
    kind: "base",
    tool: "go",
    what: "etcd Range of one key (linearizable, the default), Go driver",
    run: etcdDriver("range"),
  },
  {
    id: "redis-set",
    group: "read",
    kind: "base",
    tool: "redis-benchmark",
    what: "redis-benchmark SET, 64-byte value, no pipelining, on the cache Redis",
    run: redis("SET"),
    rate: false,
  },
  {
    id: "redis-get",
    group: "read",
    kind: "base",
    tool: "redis-benchmark",
    what: "redis-benchmark GET of that key",
    run: redis("GET"),
    rate: false,
  },
  // ------------------------------------------------------------------- cas
  {
    id: "cas-new",
    group: "cas",
    kind: "as",
    tool: "ghz",
    what: "CompareAndSet expected=any, a new key per call (uncontended), 64-byte value",
    run: ghzCall("agentstate.v1.KeyValueService/CompareAndSet", (tag) => ({
      namespace: NS,
      key: `cas/${tag}/{{.RequestNumber}}`,
      expected: { any: true },
      value: VALUE_B64,
    })),
    vs: ["pg-cas-new", "etcd-txn"],
  },
  {
    id: "cas-new-go",
    group: "cas",
    kind: "as",
    tool: "go",
    what: "the same CAS driven by the Go driver (same harness as etcd-txn)",
    run: asDriver("cas"),
    vs: ["etcd-txn", "pg-cas-new"],
  },
  {
    id: "pg-cas-new",
    group: "cas",
    kind: "base",
    tool: "pgbench",
    what: "pgbench: the service's CAS statement for a new key, one write per transaction, prepared (bench/pgbench/cas_new.sql)",
    run: pgbenchScript("cas_new.sql", "prepared"),
  },
  {
    id: "pg-cas-new-x10",
    group: "cas",
    kind: "base",
    tool: "pgbench",
    what: "pgbench: the service's CAS statement with a batch of ten new keys (experiments/cas_new_batch10.sql); rps = transactions",
    run: pgbenchScript("experiments/cas_new_batch10.sql", "prepared"),
    rate: false,
    perCall: 10,
    unit: "writes",
  },
  {
    id: "etcd-txn",
    group: "cas",
    kind: "base",
    tool: "go",
    what: "etcd Txn If(version>-1) Then(Put) Else(Get), a new key per call, Go driver",
    run: etcdDriver("txn"),
  },
  {
    id: "cas-hot",
    group: "cas",
    kind: "as",
    tool: "ghz",
    what: "CompareAndSet expected=any on one hot key from every worker",
    run: ghzCall("agentstate.v1.KeyValueService/CompareAndSet", {
      namespace: NS,
      key: "cas/hot",
      expected: { any: true },
      value: VALUE_B64,
    }),
    vs: ["pg-cas-hot", "etcd-txn-hot"],
  },
  {
    id: "cas-hot-go",
    group: "cas",
    kind: "as",
    tool: "go",
    what: "the same hot-key CAS driven by the Go driver",
    run: asDriver("cas-hot", ["-key", "cas/hot"]),
    vs: ["etcd-txn-hot", "pg-cas-hot"],
  },
  {
    id: "pg-cas-hot",
    group: "cas",
    kind: "base",
    tool: "pgbench",
    what: "pgbench: the service's CAS statement on one existing key, one write per transaction, prepared (bench/pgbench/cas_hot.sql)",
    run: pgbenchScript("cas_hot.sql", "prepared"),
  },
  {
    id: "etcd-txn-hot",
    group: "cas",
    kind: "base",
    tool: "go",
    what: "etcd Txn compare-and-put on one key, Go driver",
    run: etcdDriver("txn-hot"),
  },
  // ------------------------------------------------------------------ lock
  {
    id: "lock-unlock",
    group: "lock",
    kind: "as",
    tool: "go",
    what: "Lock (ttl 10s, no wait) then Unlock with its lock_id; one uncontended name per worker; Go driver",
    run: asDriver("lock-unlock"),
    vs: ["etcd-lock"],
  },
  {
    id: "lock-only",
    group: "lock",
    kind: "as",
    tool: "ghz",
    what: "Lock alone (ttl 2s, a new name per call, never unlocked: expires); ghz",
    run: ghzCall("agentstate.v1.LockService/Lock", (tag) => ({
      namespace: NS,
      name: `lk/${tag}/{{.RequestNumber}}`,
      ttl: "2s",
      owner: "bench",
    })),
  },
  {
    id: "etcd-lock",
    group: "lock",
    kind: "base",
    tool: "go",
    what: "etcd concurrency.Mutex Lock then Unlock, one session (lease) and name per worker, Go driver",
    run: etcdDriver("lock"),
  },
  // ---------------------------------------------------------------- append
  {
    id: "append-1",
    group: "append",
    kind: "as",
    tool: "ghz",
    what: "AppendEvent expected=any, 1 event of 64 bytes, one stream per worker",
    run: ghzCall("agentstate.v1.EventService/AppendEvent", (tag) => ({
      namespace: NS,
      stream: `s/${tag}/{{.WorkerID}}`,
      expected: { any: true },
      events: [event],
    })),
    vs: ["pg-append-1"],
  },
  {
    id: "pg-append-1",
    group: "append",
    kind: "base",
    tool: "pgbench",
    what: "pgbench: the service's append statement for one append of 1 event, committed alone (bench/pgbench/append_1.sql)",
    run: pgbenchScript("append_1.sql"),
  },
  {
    id: "append-10",
    group: "append",
    kind: "as",
    tool: "ghz",
    what: "AppendEvent expected=any, a batch of 10 events of 64 bytes, one stream per worker",
    run: ghzCall("agentstate.v1.EventService/AppendEvent", (tag) => ({
      namespace: NS,
      stream: `s10/${tag}/{{.WorkerID}}`,
      expected: { any: true },
      events: Array.from({ length: 10 }, () => event),
    })),
    vs: ["pg-append-10"],
    perCall: 10,
    unit: "events",
  },
  {
    id: "pg-append-10",
    group: "append",
    kind: "base",
    tool: "pgbench",
    what: "pgbench: the service's append statement for one append of 10 events, committed alone (bench/pgbench/append_10.sql)",
    run: pgbenchScript("append_10.sql"),
    perCall: 10,
    unit: "events",
  },
];

// Revisions per namespace (issue 15 part 2): CompareAndSet and AppendEvent
// spread over N namespaces (each call picks one at random), and pgbench
// running the same statements over the same N namespaces (-D nsn=N).
for (const n of [1, 4, 16]) {
  SCENARIOS.push(
    {
      id: `cas-new-ns${n}`,
      group: "ns",
      kind: "as",
      tool: "ghz",
      what: `CompareAndSet expected=any, a new key per call, over ${n} namespace(s) (one at random per call)`,
      run: ghzCall("agentstate.v1.KeyValueService/CompareAndSet", (tag) => ({
        namespace: `bench-ns{{randomInt 0 ${n}}}`,
        key: `cas/${tag}/{{.RequestNumber}}`,
        expected: { any: true },
        value: VALUE_B64,
      })),
      vs: [`pg-cas-new-ns${n}`],
    },
    {
      id: `pg-cas-new-ns${n}`,
      group: "ns",
      kind: "base",
      tool: "pgbench",
      what: `pgbench: the service's CAS statement for a new key over ${n} namespace(s) (bench/pgbench/cas_new_ns.sql)`,
      run: pgbenchScript("cas_new_ns.sql", "prepared", { nsn: n }),
    },
    {
      id: `append-1-ns${n}`,
      group: "ns",
      kind: "as",
      tool: "ghz",
      what: `AppendEvent expected=any, 1 event of 64 bytes, one stream per worker in each of ${n} namespace(s) (one at random per call)`,
      run: ghzCall("agentstate.v1.EventService/AppendEvent", (tag) => ({
        namespace: `bench-ns{{randomInt 0 ${n}}}`,
        stream: `s/${tag}/{{.WorkerID}}`,
        expected: { any: true },
        events: [event],
      })),
      vs: [`pg-append-1-ns${n}`],
    },
    {
      id: `pg-append-1-ns${n}`,
      group: "ns",
      kind: "base",
      tool: "pgbench",
      what: `pgbench: the service's append statement, 1 event, over ${n} namespace(s) (bench/pgbench/append_1_ns.sql)`,
      run: pgbenchScript("append_1_ns.sql", "prepared", { nsn: n }),
    },
  );
}

const GROUPS = ["read", "cas", "lock", "append", "ns"];

// Targets from the Benchmarks issue: ours / baseline throughput, at peak.
const TARGETS = [
  { name: "Get hit vs empty RPC", ours: "get-hit", base: "health", need: 0.8 },
  { name: "Get hit vs etcd Range (same Go harness)", ours: "get-hit-go", base: "etcd-range", need: 1.0 },
  { name: "CAS (new keys) vs pgbench same SQL", ours: "cas-new", base: "pg-cas-new", need: 1.0 },
  { name: "CAS (hot key) vs pgbench same SQL", ours: "cas-hot", base: "pg-cas-hot", need: 1.0 },
  { name: "CAS (new keys) vs etcd Txn (same Go harness)", ours: "cas-new-go", base: "etcd-txn", need: 1.0 },
  { name: "CAS (hot key) vs etcd Txn (same Go harness)", ours: "cas-hot-go", base: "etcd-txn-hot", need: 1.0 },
  { name: "Lock+Unlock vs etcd lock (same Go harness)", ours: "lock-unlock", base: "etcd-lock", need: 1.0 },
  { name: "(info) Get hit, ghz vs etcd Range, Go", ours: "get-hit", base: "etcd-range" },
  { name: "(info) Append 1 vs pgbench same SQL", ours: "append-1", base: "pg-append-1" },
  { name: "(info) Append 10 vs pgbench same SQL", ours: "append-10", base: "pg-append-10" },
  {
    name: "(info) pgbench 10 CAS per statement (writes/s) vs pgbench CAS",
    ours: "pg-cas-new-x10",
    base: "pg-cas-new",
    oursPerCall: 10,
  },
];

// ------------------------------------------------------------------ helpers

const log = (msg) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const fmt = (v, d = 0) => (v === undefined || Number.isNaN(v) ? "-" : v.toFixed(d));
const fmtMs = (v) => (v === undefined || Number.isNaN(v) ? "-" : v < 10 ? v.toFixed(2) : v.toFixed(1));
const fmtRatio = (v) => (v === undefined || !Number.isFinite(v) ? "-" : `${v.toFixed(2)}x`);

function sh(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts }).trim();
  } catch (e) {
    return `unavailable (${e.message.split("\n")[0]})`;
  }
}

function httpGet(url) {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(body));
    });
    req.on("error", () => resolve(undefined));
    req.setTimeout(2000, () => req.destroy());
  });
}

/** Sum of agentstate_cache_reads_total by outcome, from the server's /metrics (undefined if none). */
async function cacheReads(ctx, port = ctx.metricsPort) {
  if (!port) return undefined;
  const body = await httpGet(`http://127.0.0.1:${port}/metrics`);
  if (!body) return undefined;
  const out = {};
  for (const line of body.split("\n")) {
    const m = /^agentstate_cache_reads_total\{[^}]*outcome="([a-z_]+)"[^}]*\}\s+([\d.e+]+)/.exec(line);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  return Object.keys(out).length ? out : undefined;
}

function redisCmd(port, ...args) {
  return sh("redis-cli", ["-p", String(port), ...args]);
}

// --------------------------------------------------------------- the server

/** A private build of the current src/ (default) or a snapshot of dist/, under the run directory. */
function prepareServer(o, runDir) {
  const target = path.join(runDir, "dist");
  if (o.server === "dist") {
    if (!fs.existsSync(path.join(REPO, "dist", "src", "main.js"))) throw new Error("dist/ is missing: npm run build");
    fs.cpSync(path.join(REPO, "dist"), target, { recursive: true });
  } else {
    log("compiling src/ into the run directory (tsc; dist/ is not touched)");
    try {
      execFileSync(path.join(REPO, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.json", "--outDir", target], {
        cwd: REPO,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (e) {
      // Type errors elsewhere (tests, clients) still emit; only a missing server is fatal.
      if (!fs.existsSync(path.join(target, "src", "main.js"))) throw new Error(`tsc failed:\n${e.stdout}`);
      log("tsc reported type errors outside what the server needs; the server was emitted");
    }
  }
  copyAssets(target);
  return path.join(target, "src", "main.js");
}

/**
 * --ab-ref: the server as it was at a git ref, built privately under the run
 * directory: `git archive` of the ref, this checkout's node_modules linked in,
 * and the ref's own `npm run build` (generated code, assets, tsc). Like
 * --server build, type errors outside what the server needs do not stop it.
 */
function prepareRefServer(ref, runDir) {
  const commit = execFileSync("git", ["-C", REPO, "rev-parse", "--verify", `${ref}^{commit}`], {
    encoding: "utf8",
  }).trim();
  const dir = path.join(runDir, "ref");
  fs.mkdirSync(dir);
  log(`server B: building ${ref} (${commit.slice(0, 12)}) in ${dir}`);
  const tar = path.join(runDir, "ref.tar");
  execFileSync("git", ["-C", REPO, "archive", "--format=tar", "-o", tar, commit]);
  execFileSync("tar", ["-xf", tar, "-C", dir]);
  fs.rmSync(tar);
  fs.symlinkSync(path.join(REPO, "node_modules"), path.join(dir, "node_modules"), "dir");
  const mainJs = path.join(dir, "dist", "src", "main.js");
  try {
    execFileSync("npm", ["run", "build"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    if (!fs.existsSync(mainJs)) throw new Error(`building ${ref} failed:\n${e.stdout}\n${e.stderr}`);
    log(`server B: the build of ${ref} reported errors outside what the server needs; the server was emitted`);
  }
  return { mainJs, commit };
}

async function serverEnv(ctx, imports = ctx.o.serverImport) {
  const metricsPort = await freePort();
  if (!ctx.metricsPort) ctx.metricsPort = metricsPort;
  return {
    DATABASE_URL: ctx.pg.url("agentstate"),
    REDIS_URL: ctx.o.redisCluster ? ctx.redisCluster.url : ctx.cache.url,
    REDLOCK_URLS: ctx.redlock.map((r) => r.url).join(","),
    AGENTSTATE_REDIS_PREFIX: NS,
    AGENTSTATE_METRICS_PORT: String(metricsPort),
    LOG_LEVEL: ctx.o.logLevel,
    // node_modules of the repo, for the build under the run directory.
    NODE_PATH: path.join(REPO, "node_modules"),
    ...(imports.length ? { NODE_OPTIONS: imports.map((f) => `--import=${f}`).join(" ") } : {}),
    ...ctx.o.serverEnv,
  };
}

/** The server's cache is the Redis Cluster (--redis-cluster: every server; --ab-redis-cluster: B). */
function onCluster(ctx, server) {
  return Boolean(ctx.o.redisCluster || (ctx.o.abRedisCluster && server === ctx.serverB));
}

/** Server B has a database of its own (--ab-ref, --ab-redis-cluster). */
function ownDbB(ctx) {
  return Boolean(ctx.refB || ctx.o.abRedisCluster);
}

async function startAgentstate(ctx, opts = {}) {
  const envA = await serverEnv(ctx);
  if (ctx.o.fanoutProfile) {
    ctx.fanoutProfDir = path.join(ctx.runDir, "cpuprof-fanout");
    fs.mkdirSync(ctx.fanoutProfDir);
    const preload = `--import=${path.join(HERE, "lib", "cpuprofOnSignal.mjs")}`;
    envA.NODE_OPTIONS = envA.NODE_OPTIONS ? `${envA.NODE_OPTIONS} ${preload}` : preload;
    envA.BENCH_CPUPROF_DIR = ctx.fanoutProfDir;
  }
  ctx.server = await startServer(ctx.mainJs, ctx.runDir, envA, opts);
  log(`agentstate listening on ${ctx.server.address} (pid ${ctx.server.pid})`);
  if (ctx.o.abImport.length || Object.keys(ctx.o.abEnv).length || ctx.refB || ctx.o.abRedisCluster) {
    const env = { ...(await serverEnv(ctx, [...ctx.o.serverImport, ...ctx.o.abImport])), ...ctx.o.abEnv };
    ctx.metricsPortB = Number(env.AGENTSTATE_METRICS_PORT);
    if (ownDbB(ctx)) {
      // Another release may have other migrations and another cache or lock
      // layout, and a second cache must not share A's cache epoch (one cache
      // owns a database's epoch): its own database and Redis prefix keep A's
      // data out of its way.
      await ctx.pg.query("postgres", `CREATE DATABASE ${DB_B}`);
      Object.assign(env, { DATABASE_URL: ctx.pg.url(DB_B), AGENTSTATE_REDIS_PREFIX: PREFIX_B });
    }
    if (ctx.o.abRedisCluster) env.REDIS_URL = ctx.redisCluster.url;
    ctx.serverB = await startServer(ctx.refB?.mainJs ?? ctx.mainJs, ctx.runDir, env, { logName: "server-b.log" });
    log(`agentstate B (${abLabel(ctx)}) on ${ctx.serverB.address}`);
  }
}

/**
 * Waits until the server may serve Get from the cache: the cache epoch is
 * older than the write-marker TTL (15 s by default; a fresh epoch serves
 * nothing) and its alive key is in Redis; then warms the key.
 */
async function waitCacheServing(ctx, { db = "agentstate", prefix = NS, server = ctx.server } = {}) {
  const markerTtl = Number(ctx.o.serverEnv.AGENTSTATE_CACHE_MARKER_TTL_MS ?? 15000);
  const lease = Number(ctx.o.serverEnv.AGENTSTATE_CACHE_LEASE_MS ?? 2000);
  const until = Date.now() + markerTtl + 60000;
  let said = false;
  while (Date.now() < until) {
    const r = await ctx.pg.query(
      db,
      "SELECT cache_epoch, (extract(epoch FROM clock_timestamp() - cache_epoch_at) * 1000)::bigint AS age FROM agentstate_state WHERE id = 1",
    );
    const { cache_epoch: epoch, age } = r[0];
    // On a cluster the alive keys are spread over the slots: the hit share (server metrics) checks it instead.
    const alive = onCluster(ctx, server) ? "1" : redisCmd(ctx.cache.port, "EXISTS", `${prefix}:c:${epoch}:alive`);
    if (Number(age) > markerTtl + lease && alive === "1") {
      if (server !== ctx.server) return true;
      await driver(ctx.driver, {
        target: "agentstate",
        op: "get",
        endpoint: server.address,
        concurrency: 1,
        durationS: 0.5,
        tag: "warm",
        extra: ["-key", "get/hit"],
      });
      return true;
    }
    if (!said) {
      log(`waiting for the cache epoch to mature (${Math.ceil((markerTtl + lease - Number(age)) / 1000)} s)`);
      said = true;
    }
    await sleep(500);
  }
  log("WARNING: the cache never became servable: get-hit numbers are NOT cache hits");
  return false;
}

async function setupData(ctx) {
  // agentstate: the warm Get key and the hot CAS key (on server B too when it has a database of its own).
  for (const server of ownDbB(ctx) ? [ctx.server, ctx.serverB] : [ctx.server]) {
    for (const key of ["get/hit", "cas/hot"]) {
      await ghz(ctx.ghz, server.address, {
        call: "agentstate.v1.KeyValueService/CompareAndSet",
        data: { namespace: NS, key, expected: { any: true }, value: VALUE_B64 },
        concurrency: 1,
        durationS: 0.2,
      });
    }
  }
  // etcd: the Range key.
  await driverSetup(ctx.driver, {
    target: "etcd",
    op: "put-setup",
    endpoint: ctx.etcd.endpoint,
    extra: ["-key", "/bench/range"],
  });
}

async function setupPgbenchDb(ctx) {
  await ctx.pg.query("postgres", "CREATE DATABASE pgbench");
  // The schema and the SQL functions, as the server applies them (dependencies first).
  for (const f of fs.readdirSync(path.join(REPO, "migrations")).sort()) {
    if (f.endsWith(".sql")) await ctx.pg.query("pgbench", fs.readFileSync(path.join(REPO, "migrations", f), "utf8"));
  }
  const functions = await import(path.join(REPO, "dist", "src", "store", "postgres", "functions.js"));
  for (const fn of functions.readFunctions()) await ctx.pg.query("pgbench", fn.sql);
  await ctx.pg.query(
    "pgbench",
    `INSERT INTO kv (namespace, key, value, version, create_revision, mod_revision, created_at, updated_at)
     VALUES ('pgbench', convert_to('hot', 'UTF8'), $1, 1, 1, 1, now(), now())`,
    [VALUE],
  );
  await ctx.pg.query(
    "pgbench",
    "INSERT INTO streams (namespace, stream, version) SELECT 'pgbench', 'pgb-s-' || g, 0 FROM generate_series(0, 1023) g",
  );
}

// --------------------------------------------------------------- the runs

async function runOne(ctx, s, c, rps) {
  const tag = `${s.id}-${rps ? "r" : "c"}${c}-${Date.now().toString(36)}`;
  const isAs = s.kind === "as";
  // CPU seconds per call: a load-independent efficiency measure on a shared machine.
  // The "server" is the agentstate server, or etcd / Redis for their baselines.
  const serverPid =
    isAs || s.onServer
      ? ctx.server.pid
      : s.id.startsWith("etcd")
        ? ctx.etcd.pid
        : s.id.startsWith("redis")
          ? ctx.cache.pid
          : undefined;
  const onPg = isAs || s.tool === "pgbench";
  // Server B on a Redis Cluster: its cache is the cluster's nodes.
  const cachePids = onCluster(ctx, ctx.server) ? ctx.redisCluster.nodes.map((n) => n.pid) : [ctx.cache.pid];
  const redisPids = isAs ? [...cachePids, ...ctx.redlock.map((r) => r.pid)] : [];
  const redisCpu = () => redisPids.reduce((a, p) => a + cpuSeconds(p), 0);
  // Wake-ups per call, which load does not change: the server's read and write
  // syscalls (/proc/<pid>/io: read/readv, write/writev on every socket and the
  // log file) and the cache Redis servers' socket reads (INFO total_reads_processed).
  const cachePorts = onCluster(ctx, ctx.server) ? ctx.redisCluster.nodes.map((n) => n.port) : [ctx.cache.port];
  const redisReads = () => cachePorts.reduce((a, port) => a + redisStat(port, "total_reads_processed"), 0);
  const io0 = isAs ? procIo(ctx.server.pid) : undefined;
  const reads0 = isAs ? redisReads() : undefined;
  const before = isAs ? rssMiB(ctx.server.pid) : undefined;
  const cpu0 = serverPid ? cpuSeconds(serverPid) : undefined;
  const pg0 = onPg ? pgCpu(ctx) : undefined;
  const redis0 = redisCpu();
  let r;
  try {
    r = await s.run(ctx, c, rps, tag);
  } catch (e) {
    log(
      `${s.id} c=${c}${rps ? ` rate=${Math.round(rps)}` : ""} FAILED: ${e.message.split("\n").slice(0, 3).join(" | ")}`,
    );
    r = { rps: NaN, p50: NaN, p99: NaN, count: 0, errors: NaN, firstError: e.message.split("\n")[0] };
  }
  // pgbench's backends exit with it: let the postmaster reap them (their CPU
  // then shows in its cutime) before sampling.
  if (s.tool === "pgbench") await sleep(300);
  const after = isAs ? rssMiB(ctx.server.pid) : undefined;
  const perCall = (d) => (r.count > 0 ? (1000 * d) / r.count : undefined);
  const cpuMs = serverPid ? perCall(cpuSeconds(serverPid) - cpu0) : undefined;
  const pgMs = onPg ? perCall(pgCpu(ctx) - pg0) : undefined;
  const redisMs = isAs ? perCall(redisCpu() - redis0) : undefined;
  const io1 = isAs ? procIo(ctx.server.pid) : undefined;
  const syscalls =
    isAs && io0 && io1 && r.count > 0
      ? {
          read: (io1.syscr - io0.syscr) / r.count,
          write: (io1.syscw - io0.syscw) / r.count,
          redisReads: (redisReads() - reads0) / r.count,
        }
      : undefined;
  const row = {
    id: s.id,
    group: s.group,
    kind: s.kind,
    tool: s.tool,
    c,
    rate: rps,
    ...r,
    rssBefore: before,
    rssAfter: after,
    cpuMs,
    pgMs,
    redisMs,
    syscalls,
  };
  ctx.rows.push(row);
  log(
    `${s.id.padEnd(13)} ${rps ? `rate ${Math.round(rps)}/s c=${c}` : `c=${c}`}: ${fmt(r.rps)} rps, p50 ${fmtMs(r.p50)} ms, p99 ${fmtMs(r.p99)} ms` +
      (r.errors ? `, ${r.errors} errors (${r.firstError ?? "?"})` : "") +
      (isAs ? `, RSS ${fmt(before)}->${fmt(after)} MiB` : "") +
      (row.cpuMs !== undefined || row.pgMs !== undefined ? `, CPU ms/call ${cpuText(row)}` : "") +
      (syscalls ? `, syscalls/call ${syscallText(row)}` : ""),
  );
  return row;
}

function peak(ctx, id) {
  const rows = ctx.rows.filter((r) => r.id === id && !r.rate && Number.isFinite(r.rps));
  return rows.length ? Math.max(...rows.map((r) => r.rps)) : undefined;
}

/** Records the share of cache hits among the reads between two metrics samples. */
function hitShare(ctx, c, who, m0, m1) {
  if (!m0 || !m1) return;
  const d = Object.fromEntries(Object.keys(m1).map((k) => [k, (m1[k] ?? 0) - (m0[k] ?? 0)]));
  // "fill" counts misses that filled the cache: a sub-outcome, not a read.
  const total = Object.entries(d)
    .filter(([k]) => k !== "fill")
    .reduce((a, [, b]) => a + b, 0);
  ctx.hitShare.push({ c, who, hit: d.hit ?? 0, total, outcomes: d });
  log(`get-hit${who} c=${c}: cache outcomes ${JSON.stringify(d)}`);
}

async function runGroup(ctx, group, selected) {
  const list = SCENARIOS.filter((s) => s.group === group && selected.has(s.id));
  if (list.length === 0) return;
  log(`--- group ${group}: ${list.map((s) => s.id).join(", ")}`);
  if (group === "read" && list.some((s) => s.id.startsWith("get-hit"))) {
    ctx.cacheServing = await waitCacheServing(ctx);
    if (ownDbB(ctx)) {
      const b = { db: DB_B, prefix: PREFIX_B, server: ctx.serverB };
      // An older release may keep its cache epoch elsewhere: then B's get-hit rows may be misses.
      await waitCacheServing(ctx, b).catch((e) => log(`WARNING: server B's cache state unreadable: ${e.message}`));
    }
  }
  for (const c of ctx.o.levels) {
    for (const s of list) {
      const hit = s.id === "get-hit";
      const m0 = hit ? await cacheReads(ctx) : undefined;
      await runOne(ctx, s, c);
      if (hit) hitShare(ctx, c, "", m0, await cacheReads(ctx));
      if (ctx.serverB && s.kind === "as") {
        const b0 = hit ? await cacheReads(ctx, ctx.metricsPortB) : undefined;
        await onServerB(ctx, () => runOne(ctx, variantB(s), c));
        if (hit) hitShare(ctx, c, " (server B)", b0, await cacheReads(ctx, ctx.metricsPortB));
      }
    }
  }
  if (ctx.o.rateDuration > 0) {
    const c = Math.max(...ctx.o.levels);
    for (const s of list) {
      if (s.rate === false) continue;
      const p = peak(ctx, s.id);
      if (p) await runOne(ctx, s, c, p / 2);
      // The experiment at the same rate, for a latency comparison.
      if (p && ctx.serverB && s.kind === "as") await onServerB(ctx, () => runOne(ctx, variantB(s), c, p / 2));
    }
  }
}

// A/B: a second server B runs every agentstate scenario right after A, so
// that A and B see the same machine load. --ab-import/--ab-env: the same
// build, database, Redis and cache epoch, plus the preloaded experiment or
// environment; --ab-ref: the build of another git ref, on its own database.
function abLabel(ctx) {
  return [
    ...(ctx.refB ? [`git ${ctx.o.abRef} (${ctx.refB.commit.slice(0, 12)}), own database`] : []),
    ...(ctx.o.abRedisCluster ? ["cache on a 3-master Redis Cluster, own database"] : []),
    ...ctx.o.abImport.map((f) => `${path.relative(REPO, f)} preloaded`),
    ...Object.entries(ctx.o.abEnv).map(([k, v]) => `${k}=${v}`),
  ].join(", ");
}

function variantB(s) {
  return { ...s, id: `${s.id}+B`, vs: [s.id], what: `${s.what} [server B]` };
}

async function onServerB(ctx, fn) {
  const a = ctx.server;
  ctx.server = ctx.serverB;
  try {
    return await fn();
  } finally {
    ctx.server = a;
  }
}

function allScenarios(ctx) {
  return SCENARIOS.flatMap((s) => (ctx.serverB && s.kind === "as" ? [s, variantB(s)] : [s]));
}

// ------------------------------------------------------------------ reports

function ratioText(ctx, row, s) {
  if (!s.vs) return "";
  return s.vs
    .map((b) => {
      const base = ctx.rows.find((r) => r.id === b && r.c === row.c && !r.rate);
      return base && Number.isFinite(base.rps) && base.rps > 0 ? `${fmtRatio(row.rps / base.rps)} ${b}` : undefined;
    })
    .filter(Boolean)
    .join(", ");
}

/** The read and write syscall counts of a process (/proc/<pid>/io), or undefined. */
function procIo(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/io`, "utf8");
    return { syscr: Number(/syscr: (\d+)/.exec(text)?.[1]), syscw: Number(/syscw: (\d+)/.exec(text)?.[1]) };
  } catch {
    return undefined;
  }
}

/** A counter of a Redis server's INFO stats (0 when unreadable). */
function redisStat(port, name) {
  try {
    return Number(new RegExp(`^${name}:(\\d+)`, "m").exec(redisCmd(port, "INFO", "stats"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function syscallText(row) {
  const s = row.syscalls;
  return s ? `${s.read.toFixed(2)} · ${s.write.toFixed(2)} · ${s.redisReads.toFixed(2)}` : "";
}

function cpuText(row) {
  const f = (v) => (v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(3));
  if (row.cpuMs === undefined && row.pgMs === undefined) return "";
  return `${f(row.cpuMs)} · ${f(row.pgMs)} · ${f(row.redisMs)}`;
}

function mainTable(ctx) {
  const out = [];
  out.push(
    "| scenario | tool | c | rps | p50 ms | p99 ms | errors | throughput vs baseline (same c) | CPU ms/call: server · Postgres · Redis | server RSS MiB | syscalls/call: server read · write · cache Redis reads |",
  );
  out.push("|---|---|---|---:|---:|---:|---:|---|---|---|---|");
  for (const g of GROUPS) {
    for (const s of allScenarios(ctx).filter((x) => x.group === g)) {
      for (const row of ctx.rows.filter((r) => r.id === s.id)) {
        const label = s.kind === "base" ? `_${s.id}_` : `**${s.id}**`;
        const c = row.rate ? `${row.c} @ ${Math.round(row.rate)}/s (50%)` : String(row.c);
        const rss = row.rssBefore !== undefined ? `${fmt(row.rssBefore)} → ${fmt(row.rssAfter)}` : "";
        let ratio = row.rate ? "" : ratioText(ctx, row, s);
        if (s.perCall && Number.isFinite(row.rps)) {
          ratio = `${ratio ? `${ratio}; ` : ""}= ${fmt(row.rps * s.perCall)} ${s.unit}/s`;
        }
        const errs = row.errors ? `${row.errors}` : "0";
        out.push(
          `| ${label} | ${s.tool} | ${c} | ${fmt(row.rps)} | ${fmtMs(row.p50)} | ${fmtMs(row.p99)} | ${errs} | ${ratio} | ${cpuText(row)} | ${rss} | ${syscallText(row)} |`,
        );
      }
    }
  }
  return out.join("\n");
}

function targetsTable(ctx) {
  const out = [];
  out.push(
    "| target | ours | baseline | ratio per c (" + ctx.o.levels.join(" / ") + ") | ratio of peaks | need | verdict |",
  );
  out.push("|---|---|---|---|---:|---:|---|");
  for (const t of TARGETS) {
    const po = peak(ctx, t.ours) === undefined ? undefined : peak(ctx, t.ours) * (t.oursPerCall ?? 1);
    const pb = peak(ctx, t.base);
    if (po === undefined || pb === undefined) continue;
    const per = ctx.o.levels
      .map((c) => {
        const a = ctx.rows.find((r) => r.id === t.ours && r.c === c && !r.rate);
        const b = ctx.rows.find((r) => r.id === t.base && r.c === c && !r.rate);
        return a && b && b.rps > 0 ? ((a.rps * (t.oursPerCall ?? 1)) / b.rps).toFixed(2) : "-";
      })
      .join(" / ");
    const ratio = po / pb;
    const verdict = t.need === undefined ? "info" : ratio >= t.need ? "**met**" : "**missed**";
    out.push(
      `| ${t.name} | ${t.ours} ${fmt(po)}/s | ${t.base} ${fmt(pb)}/s | ${per} | ${fmtRatio(ratio)} | ${t.need === undefined ? "" : `≥ ${t.need}x`} | ${verdict} |`,
    );
  }
  if (ctx.soak) {
    const s = ctx.soak;
    out.push(
      `| RSS flat over a ${s.minutes}-minute soak | ${fmt(s.rssAt1, 1)} MiB at 1 min → ${fmt(s.rssEnd, 1)} MiB at end (max ${fmt(s.rssMax, 1)}) | | slope ${s.slope.toFixed(2)} MiB/min | ${fmtRatio(s.rssEnd / s.rssAt1)} | ≤ 1.10x | ${s.rssEnd / s.rssAt1 <= 1.1 ? "**met**" : "**missed**"} |`,
    );
  } else out.push("| RSS flat over a 10-minute soak | not run (--soak) | | | | | not run |");
  if (ctx.big) {
    for (const b of ctx.big) {
      out.push(
        `| Get p99, ${b.bigKeys}-key store vs 1k-key store: ${b.label} (median of 3) | p99 ${fmtMs(b.bigP99)} ms | p99 ${fmtMs(b.smallP99)} ms at 1k | | ${fmtRatio(b.bigP99 / b.smallP99)} | ≤ 1.2x | ${b.bigP99 / b.smallP99 <= 1.2 ? "**met**" : "**missed**"} |`,
      );
    }
  } else out.push("| Get p99 at 10M keys within 1.2x of 1k keys | not run (--big) | | | | | not run |");
  return out.join("\n");
}

function environment(ctx) {
  const cpu = os.cpus();
  const lines = [
    `- date: ${new Date().toISOString()}`,
    `- machine: ${cpu[0]?.model ?? "?"} × ${cpu.length} vCPU, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${os.release()}`,
    `- load average at start → end: ${ctx.loadStart} → ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} (other work shares this machine)`,
    `- agentstate: git ${ctx.git}, server ${ctx.o.server === "build" ? "compiled from the working tree" : "dist/ snapshot"}, LOG_LEVEL=${ctx.o.logLevel}${ctx.o.serverImport.length ? `, preloaded ${ctx.o.serverImport.map((f) => path.relative(REPO, f)).join(" ")}` : ""}${ctx.serverB ? `; rows "+B": a second server with ${abLabel(ctx)}` : ""}${
      Object.keys(ctx.o.serverEnv).length
        ? `, ${Object.entries(ctx.o.serverEnv)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")}`
        : ""
    }`,
    `- node ${process.version}; ${ctx.versions.pg}; redis ${ctx.versions.redis}; etcd ${ctx.versions.etcd}; ghz ${ctx.versions.ghz}; etcd client go.etcd.io/etcd/client/v3 ${ctx.versions.etcdClient}; ${ctx.versions.go}`,
    `- Postgres fsync=${ctx.o.pgFsync ? "on" : "off"} synchronous_commit=${ctx.o.pgFsync ? "on" : "off"}; etcd default (fsync on); Redis without persistence${ctx.o.redisCluster ? "; every server's cache on a 3-master Redis Cluster (--redis-cluster)" : ""}`,
    `- closed-loop runs ${ctx.o.duration} s each at c = ${ctx.o.levels.join(", ")}; fixed-rate runs ${ctx.o.rateDuration} s at 50% of the peak with c = ${Math.max(...ctx.o.levels)}`,
  ];
  if (ctx.cacheServing === false) lines.push("- WARNING: the cache never became servable; get-hit rows are not hits");
  for (const h of ctx.hitShare) {
    lines.push(
      `- get-hit${h.who ?? ""} c=${h.c}: ${h.total ? ((100 * h.hit) / h.total).toFixed(1) : "?"}% of Gets were cache hits (server metrics)`,
    );
  }
  return lines.join("\n");
}

// --------------------------------------------------------------- soak / big

async function soak(ctx) {
  const minutes = ctx.o.soakMinutes;
  const secs = Math.round(minutes * 60);
  const rate = (id, dflt) => Math.max(20, Math.round((peak(ctx, id) ?? dflt * 6) / 6));
  const loads = [
    { id: "get-hit", rps: rate("get-hit", 500) },
    { id: "cas-new", rps: rate("cas-new", 100) },
    { id: "append-1", rps: rate("append-1", 100) },
  ];
  log(`soak: ${minutes} min of ${loads.map((l) => `${l.id} @ ${l.rps}/s`).join(", ")}; RSS every 10 s`);
  const samples = [];
  const t0 = Date.now();
  const sampler = globalThis.setInterval(() => {
    samples.push({ t: (Date.now() - t0) / 60000, rss: rssMiB(ctx.server.pid) });
  }, 10000);
  samples.push({ t: 0, rss: rssMiB(ctx.server.pid) });
  const o = ctx.o;
  const saved = o.rateDuration;
  o.rateDuration = secs;
  const results = await Promise.all(
    loads.map((l) =>
      SCENARIOS.find((s) => s.id === l.id).run(ctx, 16, l.rps, `soak-${l.id}-${Date.now().toString(36)}`),
    ),
  );
  o.rateDuration = saved;
  globalThis.clearInterval(sampler);
  samples.push({ t: (Date.now() - t0) / 60000, rss: rssMiB(ctx.server.pid) });
  const after1 = samples.filter((s) => s.t >= 1);
  const n = after1.length;
  const mx = after1.reduce((a, s) => a + s.t, 0) / n;
  const my = after1.reduce((a, s) => a + s.rss, 0) / n;
  const slope =
    after1.reduce((a, s) => a + (s.t - mx) * (s.rss - my), 0) /
    Math.max(
      1e-9,
      after1.reduce((a, s) => a + (s.t - mx) ** 2, 0),
    );
  ctx.soak = {
    minutes,
    loads: loads.map((l, i) => ({ ...l, result: results[i] })),
    samples,
    rssAt1: after1[0]?.rss,
    rssEnd: samples[samples.length - 1].rss,
    rssMax: Math.max(...samples.map((s) => s.rss)),
    slope,
  };
  for (const [i, l] of loads.entries()) {
    const r = results[i];
    log(
      `soak ${l.id} @ ${l.rps}/s: ${fmt(r.rps)} rps, p50 ${fmtMs(r.p50)} ms, p99 ${fmtMs(r.p99)} ms, errors ${r.errors}`,
    );
  }
  log(`soak RSS: ${samples.map((s) => fmt(s.rss)).join(" ")}`);
}

/**
 * --big: two stores side by side, each served by its own server: the main
 * database with 1k keys in namespace "big", and database agentstate_big with
 * N keys (rows inserted with SQL: no history rows). Gets are measured on both
 * alternately, `rounds` times, and the medians compared, so that a slow
 * moment of the shared machine does not land on one side only.
 */
async function big(ctx) {
  const N = ctx.o.bigKeys;
  const rounds = 3;
  await ctx.pg.query("postgres", "CREATE DATABASE agentstate_big");
  const env = {
    ...(await serverEnv(ctx)),
    DATABASE_URL: ctx.pg.url("agentstate_big"),
    AGENTSTATE_REDIS_PREFIX: "bigstore",
  };
  const bigServer = await startServer(ctx.mainJs, ctx.runDir, env, { logName: "server-big.log" });
  try {
    const load = async (db, from, to) => {
      for (let a = from; a < to; a += 1_000_000) {
        const b = Math.min(to, a + 1_000_000) - 1;
        const t = Date.now();
        await ctx.pg.query(
          db,
          `INSERT INTO kv (namespace, key, value, version, create_revision, mod_revision, created_at, updated_at)
           SELECT 'big', convert_to('big/' || g, 'UTF8'), $1, 1, 1, 1, now(), now() FROM generate_series($2::bigint, $3::bigint) g`,
          [VALUE, a, b],
        );
        if (to - from > 1_000_000)
          log(`big: ${db}: loaded keys ${a}..${b} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
      }
      await ctx.pg.query(db, "VACUUM ANALYZE kv");
    };
    log(`big: a 1k-key store and a ${N}-key store side by side`);
    await load("agentstate", 0, 1000);
    await load("agentstate_big", 0, N);
    await waitCacheServing(ctx, { db: "agentstate_big", prefix: "bigstore", server: bigServer });
    const cases = [
      { id: "1k, random of 1k keys, default", server: ctx.server, n: 1000 },
      { id: "1k, random of 1k keys, database", server: ctx.server, n: 1000, db: true },
      { id: `${N}, the same 1k hot keys, default`, server: bigServer, n: 1000 },
      { id: `${N}, the same 1k hot keys, database`, server: bigServer, n: 1000, db: true },
      { id: `${N}, random of all keys, default`, server: bigServer, n: N },
      { id: `${N}, random of all keys, database`, server: bigServer, n: N, db: true },
    ];
    const run = (cs, durationS) =>
      ghz(ctx.ghz, cs.server.address, {
        call: "agentstate.v1.KeyValueService/Get",
        data: {
          namespace: "big",
          key: `big/{{randomInt 0 ${cs.n}}}`,
          ...(cs.db ? { consistency: "CONSISTENCY_DATABASE" } : {}),
        },
        concurrency: 16,
        durationS,
      });
    for (const cs of cases) await run(cs, 2); // warm: fills the caches with the hot keys
    const results = Object.fromEntries(cases.map((cs) => [cs.id, []]));
    for (let r = 0; r < rounds; r++) {
      for (const cs of cases) {
        const res = await run(cs, Math.max(4, ctx.o.duration));
        results[cs.id].push(res);
        log(`big round ${r + 1} ${cs.id}: ${fmt(res.rps)} rps, p50 ${fmtMs(res.p50)} ms, p99 ${fmtMs(res.p99)} ms`);
      }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const m = (id, k) => median(results[id].map((x) => x[k]));
    const [s1, s2, hotD, hotDb, allD, allDb] = cases.map((cs) => cs.id);
    ctx.big = [
      {
        label: "the same 1k hot keys, default consistency",
        bigKeys: N,
        smallP99: m(s1, "p99"),
        bigP99: m(hotD, "p99"),
      },
      {
        label: "the same 1k hot keys, CONSISTENCY_DATABASE",
        bigKeys: N,
        smallP99: m(s2, "p99"),
        bigP99: m(hotDb, "p99"),
      },
      { label: "random keys, default consistency", bigKeys: N, smallP99: m(s1, "p99"), bigP99: m(allD, "p99") },
      { label: "random keys, CONSISTENCY_DATABASE", bigKeys: N, smallP99: m(s2, "p99"), bigP99: m(allDb, "p99") },
    ];
    ctx.bigRaw = Object.fromEntries(
      cases.map((cs) => [
        cs.id,
        { p50: m(cs.id, "p50"), p99: m(cs.id, "p99"), rps: m(cs.id, "rps"), runs: results[cs.id] },
      ]),
    );
  } finally {
    await bigServer.stop();
  }
}

// ------------------------------------------------------------------ fanout

/**
 * --fanout, on server A (and B): (1) what idle subscribers cost: Postgres
 * transactions committed per second in the server's database
 * (pg_stat_database xact_commit) and the server's CPU, over 20 s with no
 * subscriber and then with N idle ones (one namespace, caught up, nothing
 * appended), each window read after the backends' 10 s stats flush delay
 * (skipped with --fanout-idle 0); (2) delivery: with 1, 100 and 1000
 * subscribers of one stream, 60 appends of 1 event, one at a time,
 * --fanout-gap-ms apart; latency from the append's send to each
 * subscriber's receipt, p50/p99 over every (subscriber, event), and the
 * server's CPU per append. --fanout-rounds R repeats (2) R times, A and B
 * interleaved (each round alternates which goes first, per subscriber
 * count), so both see the same moments of a loaded machine. The
 * subscribers' client is this process (4 connections), or T worker threads
 * (--fanout-threads), or P child processes (--fanout-procs).
 */
async function fanout(ctx) {
  const { EventClient } = await import(path.join(REPO, "dist", "test", "support", "eventClient.js"));
  const servers = [
    { label: "A", server: ctx.server, db: "agentstate" },
    ...(ctx.serverB ? [{ label: `B (${abLabel(ctx)})`, server: ctx.serverB, db: ctx.refB ? DB_B : "agentstate" }] : []),
  ];
  ctx.fanout = [];
  const ns = `fanout-${Date.now().toString(36)}`;
  for (const s of servers) {
    s.clients = Array.from({ length: 4 }, () => new EventClient(s.server.address, { ownChannel: true }));
    s.result = { label: s.label, idleSubscribers: ctx.o.fanoutIdle, delivery: [] };
    ctx.fanout.push(s.result);
  }
  try {
    if (ctx.o.fanoutIdle > 0) for (const s of servers) await fanoutIdle(ctx, s, `${ns}-idle`);
    for (let round = 0; round < ctx.o.fanoutRounds; round++) {
      for (const k of ctx.o.fanoutCounts) {
        for (const s of round % 2 ? [...servers].reverse() : servers) {
          const d = await fanoutDelivery(ctx, s, ns, `deliver-${k}-${round}`, k);
          s.result.delivery.push({ round, ...d });
          log(
            `fanout ${s.label} round ${round + 1}: ${k} subscriber(s): ${d.received}/${d.expected} received, p50 ${fmtMs(d.p50)} ms, p99 ${fmtMs(d.p99)} ms, server CPU ${fmtMs(d.cpuMsPerAppend)} ms per append, client CPU ${fmtMs(d.clientCpuMsPerAppend)} ms per append, load ${fmt(d.load, 1)}`,
          );
        }
      }
    }
  } finally {
    for (const s of servers) for (const c of s.clients) c.close();
  }
}

/** Postgres transactions/s and server CPU with no subscriber, then with --fanout-idle idle ones. */
async function fanoutIdle(ctx, { label, server, db, clients, result }, ns) {
  const commits = async () =>
    Number(
      (
        await ctx.pg.query(db, "SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()")
      )[0].n,
    );
  const idleWindow = async () => {
    await sleep(11000);
    const c0 = await commits();
    const cpu0 = cpuSeconds(server.pid);
    const t0 = Date.now();
    await sleep(20000);
    const wall = (Date.now() - t0) / 1000;
    const cpu = cpuSeconds(server.pid) - cpu0;
    await sleep(11000);
    return { txPerS: ((await commits()) - c0) / (wall + 11), cpuPct: (100 * cpu) / wall };
  };
  const subs = [];
  try {
    result.none = await idleWindow();
    const n = ctx.o.fanoutIdle;
    for (let i = 0; i < n; i++)
      subs.push(clients[i % clients.length].subscribe({ namespace: ns, stream: `idle-${i % 10}`, afterPosition: 0 }));
    await Promise.all(subs.map((x) => x.caughtUp));
    result.idle = await idleWindow();
    const { none, idle } = result;
    log(
      `fanout ${label}: ${n} idle subscribers: +${fmt(idle.txPerS - none.txPerS, 1)} tx/s (${fmt(none.txPerS, 1)} → ${fmt(idle.txPerS, 1)}), server CPU ${fmt(none.cpuPct, 1)}% → ${fmt(idle.cpuPct, 1)}%`,
    );
  } finally {
    for (const x of subs) x.cancel();
  }
}

/** Now on the clock every process of this machine shares (CLOCK_MONOTONIC, see lib/fanoutSubscribers.mjs), in ms. */
const monoMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * One delivery measurement: `k` subscribers of `stream` (in this thread, in
 * worker threads or in child processes), then FANOUT_APPENDS appends of one
 * event; what each subscriber received and when.
 */
async function fanoutDelivery(ctx, { server, clients }, ns, stream, k) {
  const APPENDS = 60;
  const clientJs = path.join(REPO, "dist", "test", "support", "eventClient.js");
  const req = { namespace: ns, stream, afterPosition: 0 };
  const recv = []; // [position, receipt (monoMs)]
  const threads = Math.min(ctx.o.fanoutThreads, k);
  const procs = threads > 0 ? 0 : Math.min(ctx.o.fanoutProcs, k);
  const share = (n, i) => Math.floor(k / n) + (i < k % n ? 1 : 0);
  // Worker threads stamp performance.timeOrigin + now (ms since the epoch): the parent subtracts the same.
  const workers = Array.from(
    { length: threads },
    (_, w) =>
      new Worker(FANOUT_WORKER, {
        eval: true,
        workerData: { clientJs, address: server.address, req, count: share(threads, w) },
      }),
  );
  const children = Array.from({ length: procs }, (_, i) =>
    ctx.o.fanoutClient === "go"
      ? goSubscribers(ctx.fanoutGo, { address: server.address, req, count: share(procs, i) })
      : fork(path.join(HERE, "lib", "fanoutSubscribers.mjs"), [
          JSON.stringify({
            clientJs,
            protoJs: path.join(REPO, "dist", "clients", "typescript", "src", "gen", "agentstate", "v1", "event.js"),
            address: server.address,
            req,
            count: share(procs, i),
            client: ctx.o.fanoutClient,
          }),
        ]),
  );
  for (const c of children) killAtExit(c);
  const clock = threads > 0 ? () => performance.timeOrigin + performance.now() : monoMs;
  const fromWorkers = workers.map(
    (w) =>
      new Promise((resolve, reject) => {
        w.on("message", (m) => (m.ready ? resolve() : recv.push(...m.recv.map((r) => [r.position, r.at]))));
        w.on("error", reject);
      }),
  );
  const fromChildren = children.map(
    (c) =>
      new Promise((resolve, reject) => {
        c.once("message", resolve);
        c.once("exit", (code) => reject(new Error(`fanout subscriber process exited (${code}) before it was ready`)));
      }),
  );
  const batch = Array.from({ length: threads + procs > 0 ? 0 : k }, (_, i) => {
    const sub = clients[i % clients.length].subscribe(req);
    sub.call.on("data", (m) => {
      if (m.event) recv.push([Number(m.event.position), clock()]);
    });
    return sub;
  });
  try {
    await Promise.all([...batch.map((x) => x.caughtUp), ...fromWorkers, ...fromChildren]);
    for (const c of children) c.removeAllListeners("exit");
    // The children's clock is this process's: each stamp falls between the ping's send and the pong's receipt.
    for (const c of children) {
      for (let i = 0; i < 3; i++) {
        const before = Number(process.hrtime.bigint());
        const { at } = await new Promise((resolve) => {
          c.once("message", resolve);
          c.send({ ping: before });
        });
        const after = Number(process.hrtime.bigint());
        if (at < before || at > after) throw new Error("fanout: a subscriber process's clock is not this process's");
      }
    }
    const sent = new Map();
    // The subscribers' CPU: the child processes', or this process's (which also makes the appends).
    const clientCpu = () =>
      procs > 0
        ? children.reduce((a, c) => a + cpuSeconds(c.pid), 0)
        : (process.cpuUsage().user + process.cpuUsage().system) / 1e6;
    const profiling = ctx.o.fanoutProfile && server === ctx.server && k === Math.max(...ctx.o.fanoutCounts);
    if (profiling) {
      process.kill(server.pid, "SIGUSR2"); // starts the profile (bench/lib/cpuprofOnSignal.mjs)
      await sleep(200);
    }
    const cpu0 = cpuSeconds(server.pid);
    const clientCpu0 = clientCpu();
    for (let e = 0; e < APPENDS; e++) {
      const t = clock();
      const r = await clients[0].appendEvent({
        namespace: ns,
        stream,
        expected: { any: true },
        events: [{ type: "bench", data: VALUE, metadata: {} }],
      });
      sent.set(Number(r.position), t);
      await sleep(ctx.o.fanoutGapMs);
    }
    // Each append's fan-out ended within its gap (at the rates measured here).
    const cpuMsPerAppend = ((cpuSeconds(server.pid) - cpu0) * 1000) / APPENDS;
    const clientCpuMsPerAppend = ((clientCpu() - clientCpu0) * 1000) / APPENDS;
    if (profiling) {
      const n = (ctx.fanoutProfiles ??= []).length + 1;
      const file = path.join(ctx.fanoutProfDir, `${n}.cpuprofile`);
      process.kill(server.pid, "SIGUSR2"); // stops it and writes <n>.cpuprofile
      for (let t = Date.now(); !fs.existsSync(`${file}.done`) && Date.now() - t < 30000;) await sleep(100);
      if (fs.existsSync(`${file}.done`)) ctx.fanoutProfiles.push({ file, subscribers: k, appends: APPENDS });
    }
    const until = Date.now() + 20000;
    if (threads > 0) {
      await sleep(2000);
      const done = workers.map((w) => new Promise((resolve) => w.once("exit", resolve)));
      for (const w of workers) w.postMessage("stop");
      await Promise.race([Promise.all(done), sleep(20000)]);
    }
    if (procs > 0) {
      await sleep(2000);
      const got = children.map(
        (c) =>
          new Promise((resolve) => {
            c.on("message", (m) => {
              if (m.recv) for (let i = 0; i < m.recv.length; i += 2) recv.push([m.recv[i], m.recv[i + 1] / 1e6]);
              if (m.recv) resolve();
            });
          }),
      );
      for (const c of children) c.send({ stop: true });
      await Promise.race([Promise.all(got), sleep(20000)]);
    }
    while (recv.length < APPENDS * k && Date.now() < until) await sleep(50);
    const lat = recv.map(([position, at]) => at - sent.get(position)).sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    return {
      subscribers: k,
      received: recv.length,
      expected: APPENDS * k,
      p50: q(0.5),
      p99: q(0.99),
      cpuMsPerAppend,
      clientCpuMsPerAppend,
      load: os.loadavg()[0],
    };
  } finally {
    for (const x of batch) x.cancel();
    for (const w of workers) await w.terminate();
    for (const c of children) c.kill();
  }
}

/** A --fanout-threads worker: `count` subscribers on a connection of its own; on "stop", posts what they received. */
const FANOUT_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { performance } = require("node:perf_hooks");
const { EventClient } = require(workerData.clientJs);
const client = new EventClient(workerData.address, { ownChannel: true });
const recv = [];
const subs = Array.from({ length: workerData.count }, () => {
  const sub = client.subscribe(workerData.req);
  sub.call.on("data", (m) => {
    if (m.event) recv.push({ position: Number(m.event.position), at: performance.timeOrigin + performance.now() });
  });
  return sub;
});
Promise.all(subs.map((s) => s.caughtUp)).then(() => parentPort.postMessage({ ready: true }));
parentPort.on("message", () => {
  for (const s of subs) s.cancel();
  client.close();
  parentPort.postMessage({ recv });
  parentPort.close();
});
`;

function fanoutTable(ctx) {
  const out = [];
  const withIdle = ctx.fanout.filter((f) => f.idle);
  if (withIdle.length) {
    out.push("| server | idle subscribers: + Postgres tx/s | + server CPU |", "|---|---|---|");
    for (const f of withIdle)
      out.push(
        `| ${f.label} | ${fmt(f.idle.txPerS - f.none.txPerS, 1)} (${fmt(f.none.txPerS, 1)} → ${fmt(f.idle.txPerS, 1)}) with ${f.idleSubscribers} | ${fmt(f.idle.cpuPct - f.none.cpuPct, 1)} points (${fmt(f.none.cpuPct, 1)}% → ${fmt(f.idle.cpuPct, 1)}%) |`,
      );
    out.push("");
  }
  const counts = ctx.o.fanoutCounts;
  const over = counts.includes(1) ? counts.filter((k) => k !== 1).reverse() : []; // ratio columns: p99 k / 1
  out.push(
    `| server | round | ${counts.map((k, i) => (i === 0 ? `delivery p50 / p99 (CPU per append: server · subscribers), ${k} subscriber${k === 1 ? "" : "s"}` : `${k}`)).join(" | ")} | ${over.map((k) => `p99 ${k} / 1`).join(" | ")}${over.length ? " | " : ""}load |`,
    `|---|---|${counts.map(() => "---|").join("")}${over.map(() => "---|").join("")}---|`,
  );
  const median = (xs) => {
    const a = [...xs].sort((x, y) => x - y);
    return a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
  };
  const cpus = (server, client) => `(${fmtMs(server)} · ${client === undefined ? "?" : fmtMs(client)} ms)`;
  for (const f of ctx.fanout) {
    const rounds = [...new Set(f.delivery.map((d) => d.round))];
    const cell = (d) =>
      `${fmtMs(d.p50)} / ${fmtMs(d.p99)} ms ${cpus(d.cpuMsPerAppend, d.clientCpuMsPerAppend)}${d.received < d.expected ? ` (${d.received}/${d.expected} received)` : ""}`;
    const ratios = new Map(over.map((k) => [k, []]));
    for (const r of rounds) {
      const d = (k) => f.delivery.find((x) => x.round === r && x.subscribers === k);
      for (const k of over) ratios.get(k).push(d(k).p99 / d(1).p99);
      const load = median(counts.map((k) => d(k).load));
      out.push(
        `| ${f.label} | ${r + 1} | ${counts.map((k) => cell(d(k))).join(" | ")} | ${over.map((k) => fmtRatio(d(k).p99 / d(1).p99)).join(" | ")}${over.length ? " | " : ""}${fmt(load, 1)} |`,
      );
    }
    if (rounds.length > 1) {
      const med = (k, key) => median(f.delivery.filter((x) => x.subscribers === k).map((x) => x[key]));
      const mcell = (k) =>
        `${fmtMs(med(k, "p50"))} / ${fmtMs(med(k, "p99"))} ms ${cpus(med(k, "cpuMsPerAppend"), med(k, "clientCpuMsPerAppend"))}`;
      out.push(
        `| ${f.label} | median of ${rounds.length} | ${counts.map(mcell).join(" | ")} | ${over.map((k) => fmtRatio(median(ratios.get(k)))).join(" | ")}${over.length ? " | " : ""} |`,
      );
    }
  }
  return out.join("\n");
}

/** --fanout-profile: where server A's time went during round 1's appends; every profile copied to --out. */
function fanoutProfileReport(ctx) {
  const [first] = ctx.fanoutProfiles;
  fs.mkdirSync(ctx.o.out, { recursive: true });
  ctx.fanoutProfiles.forEach((p, i) =>
    fs.copyFileSync(p.file, path.join(ctx.o.out, `${ctx.stamp}-fanout-${i + 1}.cpuprofile`)),
  );
  return [
    `### Server A's CPU profile during ${first.appends} appends to ${first.subscribers} subscribers (--fanout-profile, round 1)`,
    "",
    "```",
    summarizeFile(first.file, { top: 40 }),
    "```",
    "",
  ];
}

// ------------------------------------------------------------------ profile

async function profile(ctx, id) {
  const s = SCENARIOS.find((x) => x.id === id);
  if (!s) throw new Error(`--profile: no scenario ${id} (one of ${SCENARIOS.map((x) => x.id).join(", ")})`);
  const profDir = path.join(ctx.runDir, "cpuprof");
  fs.mkdirSync(profDir);
  await ctx.pg.query("agentstate", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  await startAgentstate(ctx, { cpuProfDir: profDir });
  await setupData(ctx);
  if (s.id.startsWith("get-hit")) ctx.cacheServing = await waitCacheServing(ctx);
  // Warm up, then reset the counters the report reads.
  await s.run(ctx, ctx.o.levels[0], undefined, `warm-${Date.now().toString(36)}`);
  await ctx.pg.query("agentstate", "SELECT pg_stat_statements_reset()");
  for (const r of [ctx.cache, ...ctx.redlock]) redisCmd(r.port, "CONFIG", "RESETSTAT");
  const cpuBefore = cpuSeconds(ctx.server.pid);
  const pgCpuBefore = pgCpu(ctx);
  const t0 = Date.now();
  for (const c of ctx.o.levels) await runOne(ctx, s, c);
  const wall = (Date.now() - t0) / 1000;
  const cpu = cpuSeconds(ctx.server.pid) - cpuBefore;
  const pgc = pgCpu(ctx) - pgCpuBefore;
  const report = [];
  report.push(`# profile of ${id} (${s.what}) at c=${ctx.o.levels.join(",")}, ${ctx.o.duration} s each`);
  report.push("");
  report.push(
    `CPU over ${wall.toFixed(1)} s wall: agentstate server ${cpu.toFixed(1)} s (${((100 * cpu) / wall).toFixed(0)}% of one core), Postgres (all backends) ${pgc.toFixed(1)} s (${((100 * pgc) / wall).toFixed(0)}%)`,
  );
  const rows = ctx.rows.filter((r) => r.id === id);
  const calls = rows.reduce((a, r) => a + (r.count ?? 0), 0);
  if (calls)
    report.push(
      `server CPU per call: ${((1000 * cpu) / calls).toFixed(3)} ms; Postgres CPU per call: ${((1000 * pgc) / calls).toFixed(3)} ms`,
    );
  report.push("", "## pg_stat_statements (top 12 by total time)", "");
  const st = await ctx.pg.query(
    "agentstate",
    `SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
            round((total_plan_time)::numeric, 1) AS plan_ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'agentstate')
      ORDER BY total_exec_time DESC LIMIT 12`,
  );
  report.push("| calls | total ms | mean ms | query |", "|---:|---:|---:|---|");
  for (const r of st)
    report.push(`| ${r.calls} | ${r.total_ms} | ${r.mean_ms} | \`${r.query.replace(/\|/g, "\\|")}\` |`);
  report.push("", "## Redis commandstats (cache; redlock master 1)", "");
  for (const [name, r] of [
    ["cache", ctx.cache],
    ["redlock-1", ctx.redlock[0]],
  ]) {
    const stats = redisCmd(r.port, "INFO", "commandstats")
      .split("\n")
      .filter((l) => l.startsWith("cmdstat_"))
      .map((l) => l.trim());
    report.push(`${name}:`, ...stats.map((l) => `    ${l}`));
  }
  const slow = redisCmd(ctx.cache.port, "SLOWLOG", "LEN");
  report.push(`cache SLOWLOG entries (over 10 ms): ${slow}`);
  await ctx.server.stop();
  ctx.server = undefined;
  const prof = fs.readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
  report.push("", "## node --cpu-prof of the server", "", "```");
  report.push(prof ? summarizeFile(path.join(profDir, prof)) : "(no profile written)");
  report.push("```");
  if (prof) {
    fs.mkdirSync(ctx.o.out, { recursive: true });
    fs.copyFileSync(path.join(profDir, prof), path.join(ctx.o.out, `${ctx.stamp}-${id}.cpuprofile`));
  }
  return report.join("\n");
}

/**
 * CPU seconds of Postgres: the postmaster, its live children (backends,
 * walwriter...) and, through cutime/cstime, the children that have exited.
 */
function pgCpu(ctx) {
  const pid = ctx.pg.pid;
  return cpuSeconds(pid, true) + childPids(pid).reduce((a, c) => a + cpuSeconds(c), 0);
}

// --------------------------------------------------------------------- main

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!["grpc-js", "http2", "go"].includes(o.fanoutClient))
    throw new Error(`--fanout-client: grpc-js, http2 or go, not ${o.fanoutClient}`);
  if (o.fanoutClient !== "grpc-js" && o.fanoutProcs === 0)
    throw new Error(`--fanout-client ${o.fanoutClient} needs --fanout-procs`);
  const started = Date.now();
  const problems = checkPgbenchScripts();
  if (problems.length) {
    throw new Error(
      `bench/pgbench/*.sql no longer match the service's SQL:\n  ${problems.join("\n  ")}\nrun: node bench/lib/pgbenchSql.mjs --write`,
    );
  }
  const ghzBin = findGhz();
  if (!ghzBin) throw new Error(`ghz not found: go install github.com/bojand/ghz/cmd/ghz@${GHZ_VERSION}`);
  const ghzV = ghzVersion(ghzBin);
  if (ghzV !== GHZ_VERSION) log(`WARNING: ghz ${ghzV}, the pinned version is ${GHZ_VERSION}`);
  const etcdV = etcdVersion();
  if (etcdV !== ETCD_PINNED)
    log(`WARNING: etcd ${etcdV}; the published numbers used Debian's etcd-server ${ETCD_PINNED}`);

  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-bench-"));
  fs.chmodSync(runDir, 0o755); // Postgres runs as "postgres" and needs to reach its data dir
  // Also on Ctrl-C or a crash (lib/procs.mjs stops the processes first).
  process.on("exit", () => {
    if (!o.keep) fs.rmSync(runDir, { recursive: true, force: true });
  });
  const ctx = {
    o,
    runDir,
    rows: [],
    hitShare: [],
    ghz: ghzBin,
    stamp: new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19),
    loadStart: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" "),
    git: sh("git", ["-C", REPO, "describe", "--always", "--dirty"]),
  };
  log(`run directory ${runDir}`);
  try {
    log("building the Go driver (bench/etcd-driver)");
    ctx.driver = path.join(runDir, "etcd-driver");
    execFileSync("go", ["build", "-o", ctx.driver, "."], { cwd: path.join(HERE, "etcd-driver"), stdio: "inherit" });
    if (o.fanout && o.fanoutClient === "go") {
      log("building the Go subscribers (bench/fanout-go)");
      ctx.fanoutGo = path.join(runDir, "fanout-go");
      execFileSync("go", ["build", "-o", ctx.fanoutGo, "."], { cwd: path.join(HERE, "fanout-go"), stdio: "inherit" });
    }
    ctx.mainJs = prepareServer(o, runDir);
    if (o.abRef) ctx.refB = prepareRefServer(o.abRef, runDir);

    log("starting Postgres, Redis (cache + 3 Redlock masters), etcd");
    ctx.pg = await startPostgres(runDir, { fsync: o.pgFsync, statStatements: Boolean(o.profile) });
    [ctx.cache, ...ctx.redlock] = await Promise.all(
      ["redis-cache", "redlock-1", "redlock-2", "redlock-3"].map((n) => startRedis(runDir, n)),
    );
    ctx.etcd = await startEtcd(runDir);
    if (o.abRedisCluster || o.redisCluster) {
      log(`starting a Redis Cluster of 3 masters (${o.redisCluster ? "every server's" : "server B's"} cache)`);
      ctx.redisCluster = await startRedisCluster();
    }
    await ctx.pg.query("postgres", "CREATE DATABASE agentstate");
    await setupPgbenchDb(ctx);
    ctx.versions = {
      pg: (await ctx.pg.query("postgres", "SELECT version()"))[0].version.split(" on ")[0],
      redis: /v=(\S+)/.exec(sh("redis-server", ["--version"]))?.[1],
      etcd: etcdV,
      ghz: ghzV,
      etcdClient: /go\.etcd\.io\/etcd\/client\/v3 (\S+)/.exec(
        fs.readFileSync(path.join(HERE, "etcd-driver", "go.mod"), "utf8"),
      )?.[1],
      go: sh("go", ["version"]),
    };

    if (o.profile) {
      const report = await profile(ctx, o.profile);
      process.stdout.write(`\n${report}\n`);
      fs.mkdirSync(o.out, { recursive: true });
      const file = path.join(o.out, `${ctx.stamp}-profile-${o.profile}.md`);
      fs.writeFileSync(file, report + "\n");
      log(`profile report written to ${path.relative(REPO, file)}`);
      return;
    }

    await startAgentstate(ctx);
    await setupData(ctx);
    ctx.rssStart = rssMiB(ctx.server.pid);

    const selected = new Set(
      SCENARIOS.filter((s) => (!o.only ? s.group !== "ns" : o.only.includes(s.id) || o.only.includes(s.group))).map(
        (s) => s.id,
      ),
    );
    if (selected.size > 0) {
      log("warm-up (not reported)");
      for (const id of ["health", "cas-new", "get-db"]) {
        const sc = SCENARIOS.find((s) => s.id === id);
        await sc.run(ctx, 16, undefined, `warm-${id}-${Date.now().toString(36)}`);
        if (ctx.serverB)
          await onServerB(ctx, () => sc.run(ctx, 16, undefined, `warmb-${id}-${Date.now().toString(36)}`));
      }
    }
    for (const g of GROUPS) await runGroup(ctx, g, selected);
    if (o.soak) await soak(ctx);
    if (o.big) await big(ctx);
    if (o.fanout) await fanout(ctx);
    ctx.rssEnd = rssMiB(ctx.server.pid);
    const fanoutProfile = ctx.fanoutProfiles?.length ? fanoutProfileReport(ctx) : [];

    const md = [
      `## Results (${new Date().toISOString().slice(0, 10)})`,
      "",
      environment(ctx),
      `- server RSS: ${fmt(ctx.rssStart)} MiB after setup → ${fmt(ctx.rssEnd)} MiB at the end; total run ${((Date.now() - started) / 60000).toFixed(1)} min`,
      "",
      "### Targets",
      "",
      targetsTable(ctx),
      "",
      ...(ctx.fanout ? ["### Subscribe fan-out (--fanout)", "", fanoutTable(ctx), ""] : []),
      ...fanoutProfile,
      "### All runs",
      "",
      "Bold: agentstate; italics: baselines. rps counts successful calls; latencies are per call (ms).",
      "",
      mainTable(ctx),
      "",
    ].join("\n");
    process.stdout.write(`\n${md}\n`);
    fs.mkdirSync(o.out, { recursive: true });
    const base = path.join(o.out, ctx.stamp);
    fs.writeFileSync(`${base}.md`, md);
    fs.writeFileSync(
      `${base}.json`,
      JSON.stringify(
        {
          options: o,
          versions: ctx.versions,
          git: ctx.git,
          rows: ctx.rows,
          soak: ctx.soak,
          big: ctx.bigRaw,
          fanout: ctx.fanout,
        },
        null,
        1,
      ),
    );
    log(`results written to ${path.relative(REPO, base)}.md and .json`);
  } finally {
    log("stopping everything");
    if (ctx.server) await ctx.server.stop();
    if (ctx.serverB) await ctx.serverB.stop();
    await ctx.etcd?.stop();
    await ctx.redisCluster?.destroy();
    for (const r of [ctx.cache, ...(ctx.redlock ?? [])]) await r?.stop();
    await ctx.pg?.stop();
    killAllSync();
    if (!o.keep) fs.rmSync(runDir, { recursive: true, force: true });
    else log(`kept ${runDir}`);
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.stack ?? e}\n`);
  killAllSync();
  process.exit(1);
});
