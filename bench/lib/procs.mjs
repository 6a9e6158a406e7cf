// The processes a benchmark run needs: its own Postgres, Redis servers, etcd
// and the agentstate server, each on a free loopback port with its data and
// log under the run directory. They are the test harness's (test/support,
// compiled by `npm run build` into dist/test/support): every child is
// registered so that a crash, Ctrl-C or a normal exit leaves nothing running.
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const SUPPORT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dist/test/support");

async function load(name) {
  try {
    return await import(path.join(SUPPORT, `${name}.js`));
  } catch (e) {
    if (e.code !== "ERR_MODULE_NOT_FOUND") throw e;
    throw new Error(`bench: ${path.join(SUPPORT, name)}.js is missing: run \`npm run build\` first`);
  }
}

const [
  { exitCleanups, runExitCleanups },
  { freePort },
  { PostgresProcess },
  { RedisProcess },
  { RedisClusterProcess },
  { EtcdProcess },
  { LoggedServerProcess },
  procfs,
] = await Promise.all(
  [
    "childProcesses",
    "freePort",
    "PostgresProcess",
    "RedisProcess",
    "RedisClusterProcess",
    "EtcdProcess",
    "LoggedServerProcess",
    "procfs",
  ].map(load),
);

export { freePort };
export const { childPids, cpuSeconds, rssMiB } = procfs;
export const etcdVersion = () => EtcdProcess.version();

/** SIGKILLs every child still running (Postgres with its backends, load generators). */
export const killAllSync = runExitCleanups;

/** Registers a child the harness did not start (a load generator): SIGKILLed if the run ends while it runs. */
export function killAtExit(child) {
  const kill = () => child.kill("SIGKILL");
  exitCleanups.add(kill);
  child.once("exit", () => exitCleanups.delete(kill));
  return child;
}

// The harness cleans up on these signals, then this ends the run with the
// usual code (and the "exit" hooks, which remove the run directory).
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(sig, () => {
    process.stderr.write(`\nbench: ${sig}: stopped everything it started\n`);
    process.exit(130);
  });
}

/**
 * initdb + postgres in <runDir>/pg, log <runDir>/postgres.log. Durable by
 * default (fsync and synchronous_commit on, as etcd fsyncs its WAL);
 * `fsync: false` turns both off. `statStatements` preloads pg_stat_statements.
 */
export function startPostgres(runDir, { fsync = true, statStatements = false } = {}) {
  const on = fsync ? "on" : "off";
  return PostgresProcess.start({
    dataDir: path.join(runDir, "pg"),
    logPath: path.join(runDir, "postgres.log"),
    settings: {
      shared_buffers: "256MB",
      fsync: on,
      synchronous_commit: on,
      full_page_writes: on,
      ...(statStatements ? { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "all" } : {}),
    },
  });
}

/** redis-server in <runDir>/<name>, log <runDir>/<name>.log. */
export function startRedis(runDir, name) {
  return RedisProcess.start({ dir: path.join(runDir, name), logPath: path.join(runDir, `${name}.log`) });
}

/**
 * A Redis Cluster of 3 masters without replicas (the test harness's
 * RedisClusterProcess: its own temporary directory, removed by destroy()).
 */
export function startRedisCluster() {
  return RedisClusterProcess.start({ masters: 3, replicasPerMaster: 0 });
}

/** etcd in <runDir>/etcd, log <runDir>/etcd.log. */
export function startEtcd(runDir) {
  return EtcdProcess.start({ dataDir: path.join(runDir, "etcd"), logPath: path.join(runDir, "etcd.log") });
}

/**
 * node <mainJs> (a build of dist/src/main.js) with the given environment;
 * stdout/stderr go to <runDir>/<logName> (one JSON line per RPC at
 * LOG_LEVEL=info). `cpuProfDir` runs it under --cpu-prof (the profile is
 * written when it exits on SIGTERM).
 */
export function startServer(mainJs, runDir, env, { cpuProfDir, logName = "server.log" } = {}) {
  return LoggedServerProcess.start({
    entry: mainJs,
    cwd: runDir,
    env,
    logPath: path.join(runDir, logName),
    nodeArgs: cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`] : [],
  });
}
