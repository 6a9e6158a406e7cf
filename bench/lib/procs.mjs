// The processes a benchmark run needs: its own Postgres, Redis servers, etcd
// and the agentstate server, each on a free loopback port with its data under
// the run directory. Every child is registered so that a crash, Ctrl-C or a
// normal exit leaves nothing running.
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";

const live = new Set();

/** SIGKILLs every child still running (Postgres: SIGQUIT first, which kills its backends). */
export function killAllSync() {
  for (const p of live) {
    try {
      if (p.kind === "postgres") process.kill(p.child.pid, "SIGQUIT");
      else process.kill(p.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  if ([...live].some((p) => p.kind === "postgres")) {
    const until = Date.now() + 3000;
    while (Date.now() < until && [...live].some((p) => p.kind === "postgres" && alive(p.child.pid))) {
      execFileSync("sleep", ["0.1"]);
    }
    for (const p of live) {
      try {
        process.kill(p.child.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  live.clear();
}

function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

process.once("exit", killAllSync);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(sig, () => {
    process.stderr.write(`\nbench: ${sig}: stopping everything it started\n`);
    killAllSync();
    process.exit(130);
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

function track(kind, child, logPath) {
  const entry = { kind, child, logPath, exited: undefined };
  entry.exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(entry);
      resolve({ code, signal });
    });
    child.once("error", (err) => {
      live.delete(entry);
      resolve({ code: null, signal: null, error: err });
    });
  });
  live.add(entry);
  return entry;
}

function spawnLogged(kind, cmd, args, logPath, opts = {}) {
  const fd = fs.openSync(logPath, "a");
  try {
    const child = spawn(cmd, args, { stdio: ["ignore", fd, fd], ...opts });
    return track(kind, child, logPath);
  } finally {
    fs.closeSync(fd);
  }
}

function tail(file, n = 20) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "(no log)";
  }
}

async function stopEntry(entry, signal, timeoutMs = 15000) {
  if (!live.has(entry)) return;
  try {
    process.kill(entry.child.pid, signal);
  } catch {
    return;
  }
  const t = globalThis.setTimeout(() => {
    try {
      process.kill(entry.child.pid, "SIGKILL");
    } catch {
      // gone
    }
  }, timeoutMs);
  await entry.exited;
  globalThis.clearTimeout(t);
}

async function waitFor(what, probe, entry, timeoutMs = 30000) {
  const until = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < until) {
    if (!live.has(entry))
      throw new Error(`${what} exited during startup; log ${entry.logPath}:\n${tail(entry.logPath)}`);
    try {
      if (await probe()) return;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms (${last}); log ${entry.logPath}:\n${tail(entry.logPath)}`);
}

// ------------------------------------------------------------------ Postgres

export function findPgBin() {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const base = "/usr/lib/postgresql";
  const versions = fs.existsSync(base)
    ? fs
        .readdirSync(base)
        .filter((v) => fs.existsSync(path.join(base, v, "bin", "initdb")))
        .sort((a, b) => parseFloat(b) - parseFloat(a))
    : [];
  if (!versions[0]) throw new Error("no Postgres server binaries in /usr/lib/postgresql/*/bin (or set PG_BIN)");
  return path.join(base, versions[0], "bin");
}

/** uid/gid of the "postgres" user when running as root (Postgres refuses root). */
export function pgRunAs() {
  if (process.getuid() !== 0) return {};
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
}

/**
 * initdb + postgres. Durable by default (fsync and synchronous_commit on, as
 * etcd fsyncs its WAL); `fsync: false` turns both off.
 */
export async function startPostgres(runDir, { fsync = true, statStatements = false } = {}) {
  const bin = findPgBin();
  const runAs = pgRunAs();
  const dataDir = path.join(runDir, "pg");
  fs.mkdirSync(dataDir);
  if (runAs.uid !== undefined) fs.chownSync(dataDir, runAs.uid, runAs.gid);
  const env = { ...process.env, LC_ALL: "C", LANG: "C" };
  for (const k of ["PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS"]) delete env[k];
  execFileSync(
    path.join(bin, "initdb"),
    ["-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
    { cwd: dataDir, env, stdio: ["ignore", "pipe", "pipe"], ...runAs },
  );
  const port = await freePort();
  const logPath = path.join(runDir, "postgres.log");
  const args = [
    "-D", dataDir, "-p", String(port), "-k", dataDir,
    "-c", "listen_addresses=127.0.0.1",
    "-c", "max_connections=300",
    "-c", "shared_buffers=256MB",
    "-c", `fsync=${fsync ? "on" : "off"}`,
    "-c", `synchronous_commit=${fsync ? "on" : "off"}`,
    "-c", `full_page_writes=${fsync ? "on" : "off"}`,
    ...(statStatements ? ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=all"] : []),
  ]; // prettier-ignore
  const entry = spawnLogged("postgres", path.join(bin, "postgres"), args, logPath, { cwd: dataDir, env, ...runAs });
  const url = (db) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  await waitFor(
    "postgres",
    async () => {
      const c = new pg.Client({ connectionString: url("postgres"), connectionTimeoutMillis: 2000 });
      c.on("error", () => undefined);
      try {
        await c.connect();
        await c.query("SELECT 1");
        return true;
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    entry,
  );
  return {
    port,
    bin,
    url,
    pid: entry.child.pid,
    async query(db, text, values) {
      const c = new pg.Client({ connectionString: url(db) });
      c.on("error", () => undefined);
      await c.connect();
      try {
        return await c.query(text, values);
      } finally {
        await c.end();
      }
    },
    stop: () => stopEntry(entry, "SIGINT", 30000),
  };
}

// --------------------------------------------------------------------- Redis

export async function startRedis(runDir, name) {
  const port = await freePort();
  const dir = path.join(runDir, name);
  fs.mkdirSync(dir);
  const logPath = path.join(runDir, `${name}.log`);
  const args = [
    "--port", String(port), "--bind", "127.0.0.1",
    "--save", "", "--appendonly", "no", "--daemonize", "no",
    "--maxmemory-policy", "volatile-lru", "--dir", dir,
  ]; // prettier-ignore
  const entry = spawnLogged("redis", "redis-server", args, logPath, { cwd: dir });
  await waitFor(
    `redis ${name}`,
    () =>
      new Promise((resolve, reject) => {
        const s = net.connect(port, "127.0.0.1");
        s.once("error", reject);
        s.once("data", (d) => {
          s.destroy();
          resolve(d.toString().startsWith("+PONG"));
        });
        s.write("PING\r\n");
      }),
    entry,
  );
  return { port, url: `redis://127.0.0.1:${port}`, pid: entry.child.pid, stop: () => stopEntry(entry, "SIGTERM") };
}

// ---------------------------------------------------------------------- etcd

export function etcdVersion() {
  const out = execFileSync("etcd", ["--version"], { encoding: "utf8" });
  return /etcd Version: (\S+)/.exec(out)?.[1] ?? "unknown";
}

export async function startEtcd(runDir) {
  const port = await freePort();
  const peer = await freePort();
  const dataDir = path.join(runDir, "etcd");
  const logPath = path.join(runDir, "etcd.log");
  const client = `http://127.0.0.1:${port}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const args = [
    "--name", "bench", "--data-dir", dataDir,
    "--listen-client-urls", client, "--advertise-client-urls", client,
    "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl,
    "--initial-cluster", `bench=${peerUrl}`, "--initial-cluster-state", "new",
    "--logger", "zap", "--log-level", "warn",
  ]; // prettier-ignore
  const entry = spawnLogged("etcd", "etcd", args, logPath, { cwd: runDir });
  await waitFor(
    "etcd",
    () =>
      new Promise((resolve, reject) => {
        const s = net.connect(port, "127.0.0.1");
        s.once("error", reject);
        let body = "";
        s.on("data", (d) => (body += d.toString()));
        s.once("end", () => resolve(/"health":\s*"true"/.test(body)));
        s.write(`GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`);
      }),
    entry,
  );
  return { port, endpoint: `127.0.0.1:${port}`, pid: entry.child.pid, stop: () => stopEntry(entry, "SIGTERM") };
}

// --------------------------------------------------------- agentstate server

/**
 * node <mainJs> (a build of dist/src/main.js) with the given environment; stdout/stderr go to
 * server.log (one JSON line per RPC at LOG_LEVEL=info). `cpuProfDir` runs it
 * under --cpu-prof (the profile is written when it exits on SIGTERM).
 */
export async function startServer(mainJs, runDir, env, { cpuProfDir, logName = "server.log" } = {}) {
  const port = await freePort();
  const logPath = path.join(runDir, logName);
  const nodeArgs = cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`] : [];
  const entry = spawnLogged("server", process.execPath, [...nodeArgs, mainJs], logPath, {
    cwd: runDir,
    env: { ...process.env, AGENTSTATE_HOST: "127.0.0.1", AGENTSTATE_PORT: String(port), ...env },
  });
  let address;
  await waitFor(
    "agentstate server",
    async () => {
      const text = fs.readFileSync(logPath, "utf8");
      for (const line of text.split("\n")) {
        if (!line.startsWith("{")) continue;
        const o = JSON.parse(line);
        if (o.msg === "listening" && typeof o.address === "string") {
          address = o.address;
          return true;
        }
      }
      // Below LOG_LEVEL=info there is no "listening" line: the port accepting
      // connections means the gRPC server is bound (it serves right after).
      if (env.LOG_LEVEL && env.LOG_LEVEL !== "info" && env.LOG_LEVEL !== "debug") {
        const open = await new Promise((resolve) => {
          const sock = net.connect(port, "127.0.0.1");
          sock.once("connect", () => {
            sock.destroy();
            resolve(true);
          });
          sock.once("error", () => resolve(false));
        });
        if (open) {
          await sleep(200);
          address = `127.0.0.1:${port}`;
          return true;
        }
      }
      return false;
    },
    entry,
    60000,
  );
  return {
    address,
    pid: entry.child.pid,
    logPath,
    stop: () => stopEntry(entry, "SIGTERM", 20000),
  };
}

/** Resident set size of a process in MiB (VmRSS), or undefined when it is gone. */
export function rssMiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
