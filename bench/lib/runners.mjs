// Load generators, each returning the same shape:
//   { rps, p50, p99, count, errors, firstError }   (latencies in ms)
// rps counts successful calls (or transactions) per second.
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { killAtExit } from "./procs.mjs";

export const GHZ_VERSION = "v0.120.0";

function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, ...opts }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\n${stderr}`.trimEnd();
        reject(err);
      } else resolve({ stdout, stderr });
    });
    killAtExit(child);
  });
}

/** ghz on PATH, $GHZ, or ~/go/bin/ghz. */
export function findGhz() {
  const candidates = [process.env.GHZ, path.join(os.homedir(), "go", "bin", "ghz")];
  for (const dir of (process.env.PATH ?? "").split(":")) candidates.push(path.join(dir, "ghz"));
  return candidates.find((c) => c && fs.existsSync(c));
}

/** The module version ghz was built from (`go install ...@v0.120.0` leaves "dev" in --version). */
export function ghzVersion(ghz) {
  try {
    const info = execFileSync("go", ["version", "-m", ghz], { encoding: "utf8" });
    return /^\s*mod\s+github\.com\/bojand\/ghz\s+(\S+)/m.exec(info)?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * One ghz run against `address` (server reflection supplies the schema).
 * `data` is the JSON request, ghz templates ({{.RequestNumber}}, {{.WorkerID}}) allowed.
 */
export async function ghz(bin, address, { call, data, concurrency, durationS, rps, connections = 1 }) {
  const args = [
    "--insecure",
    "--call", call,
    "-d", JSON.stringify(data ?? {}),
    "-c", String(concurrency),
    "-z", `${durationS}s`,
    "--connections", String(Math.min(concurrency, connections)),
    "--timeout", "20s",
    "--format", "json",
    ...(rps ? ["--rps", String(Math.max(1, Math.round(rps)))] : []),
    address,
  ]; // prettier-ignore
  const { stdout } = await run(bin, args);
  const r = JSON.parse(stdout);
  const codes = r.statusCodeDistribution ?? {};
  const ok = codes.OK ?? 0;
  const totalS = r.total / 1e9;
  const lat = (p) => (r.latencyDistribution ?? []).find((d) => d.percentage === p)?.latency / 1e6;
  // ghz -z cancels the calls in flight when the time is up and counts them as
  // errors (at most one per worker): those are not the server's.
  const cut = /closed network connection|client connection is closing|context canceled/;
  const errs = Object.entries(r.errorDistribution ?? {});
  const cutOff = Math.min(
    concurrency,
    errs.filter(([m]) => cut.test(m)).reduce((a, [, v]) => a + v, 0),
  );
  const errors =
    Object.entries(codes)
      .filter(([k]) => k !== "OK")
      .reduce((a, [, v]) => a + v, 0) - cutOff;
  const firstError = errs.find(([m]) => !cut.test(m))?.[0];
  return { rps: ok / totalS, p50: lat(50), p99: lat(99), count: ok, errors, firstError };
}

/** The Go driver in bench/etcd-driver (built by run.mjs). */
export async function driver(bin, { target, op, endpoint, concurrency, durationS, rps, tag, extra = [] }) {
  const args = [
    "-target", target, "-op", op, "-endpoint", endpoint,
    "-c", String(concurrency), "-d", `${durationS}s`, "-tag", tag,
    ...(rps ? ["-rps", String(Math.round(rps))] : []),
    ...extra,
  ]; // prettier-ignore
  const { stdout } = await run(bin, args);
  const r = JSON.parse(stdout.trim().split("\n").pop());
  return { rps: r.rps, p50: r.p50_ms, p99: r.p99_ms, count: r.count, errors: r.errors, firstError: r.first_error };
}

export async function driverSetup(bin, { target, op, endpoint, extra = [] }) {
  await run(bin, ["-target", target, "-op", op, "-endpoint", endpoint, ...extra]);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return undefined;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round((sorted.length * p) / 100) - 1));
  return sorted[i];
}

/**
 * pgbench with a custom script, by default with the extended query protocol
 * (what node-pg uses: an unnamed statement parsed and planned on every call;
 * mode "prepared" prepares each statement once per connection), and a
 * per-transaction log for p50/p99.
 */
export async function pgbench(
  pgBin,
  { port, db, script, concurrency, durationS, rps, logDir, name, mode = "extended", defines = {} },
) {
  fs.mkdirSync(logDir, { recursive: true });
  const prefix = path.join(logDir, name);
  const jobs = Math.min(concurrency, os.cpus().length);
  const args = [
    "-h", "127.0.0.1", "-p", String(port), "-U", "postgres",
    "-n", "-M", mode, "-f", script,
    "-c", String(concurrency), "-j", String(jobs),
    "-T", String(Math.max(1, Math.round(durationS))),
    "-l", `--log-prefix=${prefix}`,
    ...Object.entries(defines).flatMap(([k, v]) => ["-D", `${k}=${v}`]),
    ...(rps ? ["-R", String(Math.max(1, Math.round(rps)))] : []),
    db,
  ]; // prettier-ignore
  const { stdout } = await run(path.join(pgBin, "pgbench"), args, { cwd: logDir });
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0);
  const lats = [];
  for (const f of fs.readdirSync(logDir)) {
    if (!f.startsWith(`${name}.`)) continue;
    const file = path.join(logDir, f);
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      const cols = line.split(" ");
      if (cols.length >= 6) lats.push(Number(cols[2]) / 1000);
    }
    fs.rmSync(file);
  }
  lats.sort((a, b) => a - b);
  return { rps: tps, p50: percentile(lats, 50), p99: percentile(lats, 99), count: lats.length, errors: failed };
}

/**
 * redis-benchmark GET and SET of one 64-byte key at `concurrency` clients
 * (no pipelining), in database 1 of the given Redis.
 */
export async function redisBenchmark({ port, concurrency, requests }) {
  const args = [
    "-h", "127.0.0.1", "-p", String(port), "--dbnum", "1",
    "-c", String(concurrency), "-n", String(requests), "-d", "64",
    "-t", "set,get", "--csv",
  ]; // prettier-ignore
  const { stdout } = await run("redis-benchmark", args);
  const out = {};
  for (const line of stdout.trim().split("\n").slice(1)) {
    const cols = line.split(",").map((c) => c.replace(/"/g, ""));
    out[cols[0]] = { rps: Number(cols[1]), p50: Number(cols[4]), p99: Number(cols[6]), count: requests, errors: 0 };
  }
  return out;
}
