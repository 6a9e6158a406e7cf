// Experiment (issue 16): what authentication costs the server per call. The
// same build serves Get (a cache hit) and CompareAndSet (a new key per call)
// in four shapes, one after the other on the same Postgres and Redis:
//   off    plaintext, AGENTSTATE_AUTH=off (the default)
//   token  plaintext, AGENTSTATE_AUTH=required, an API token on every call
//   tls    TLS, auth off (what TLS alone costs, for the mtls row)
//   mtls   mTLS + AGENTSTATE_AUTH=required, the client certificate mapped to a principal
//   offmd  auth off, but the client sends the same authorization metadata as
//          token (the control: what sending the header costs the client and
//          the server, apart from checking it)
// and reports the server's CPU per successful call (/proc/<pid>/stat before and
// after, the measure least disturbed by a shared machine), the client's CPU per
// call (ghz's, polled from /proc; the node client's own process), rps and
// p50/p99. Rounds alternate the shapes (off, token, tls, mtls, off, ...) and
// the table gives the median of the rounds.
//   npm run build && node bench/experiments/auth-ab.mjs [--seconds 8] [--rounds 3] [--concurrency 16]
//     [--rps N: a fixed rate for every shape] [--shapes off,token,tls,mtls,offmd]
//     [--client ghz|node: ghz, or a grpc-js client in this process (one
//      channel, `concurrency` calls in flight, a Metadata per call as the
//      TypeScript client makes)]
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { Buffer } from "node:buffer";
import console from "node:console";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { clearInterval, setInterval, setTimeout } from "node:timers";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { findGhz } from "../lib/runners.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(import.meta.url);
const { PostgresProcess } = require(path.join(root, "dist/test/support/PostgresProcess.js"));
const { RedisProcess } = require(path.join(root, "dist/test/support/RedisProcess.js"));
const { ServerProcess } = require(path.join(root, "dist/test/support/ServerProcess.js"));
const { TestCerts } = require(path.join(root, "dist/test/support/testCerts.js"));
const { cpuSeconds } = require(path.join(root, "dist/test/support/procfs.js"));
const grpc = require("@grpc/grpc-js");
const kvpb = require(path.join(root, "dist/src/gen/agentstate/v1/kv.js"));

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "16" },
    // A fixed rate for every shape: CPU per call depends on load (batching), and
    // ghz itself is slower with metadata, so compare at the same rate too.
    rps: { type: "string" },
    shapes: { type: "string", default: "off,token,tls,mtls" },
    client: { type: "string", default: "ghz" },
    // Run the shapes at the same time (each its own server and client) instead of one after the other.
    together: { type: "boolean", default: false },
  },
});
if (!["ghz", "node"].includes(values.client)) throw new Error("--client must be ghz or node");
const seconds = Number(values.seconds);
const c = Number(values.concurrency);
const ghzBin = values.client === "ghz" ? findGhz() : "unused";
if (!ghzBin) throw new Error("ghz not found (go install github.com/bojand/ghz/cmd/ghz@v0.120.0)");
const protoset = path.join(root, "dist/src/gen/agentstate.binpb");

function ghz(address, call, data, extra, { n, z = seconds } = {}) {
  const load = n
    ? ["-n", String(n), "-c", "1"]
    : ["-c", String(c), "-z", `${z}s`, ...(values.rps ? ["--rps", values.rps] : [])];
  const args = [
    "--protoset", protoset, "--call", call, "-d", JSON.stringify(data), ...load,
    "--connections", "1", "--timeout", "20s", "--format", "json", ...extra, address,
  ]; // prettier-ignore
  return new Promise((resolve, reject) => {
    let clientCpu = 0;
    const child = execFile(ghzBin, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      clearInterval(poll);
      if (err && !stdout) return reject(new Error(`${err.message}\n${stderr}`));
      const r = JSON.parse(stdout);
      const lat = (p) => (r.latencyDistribution ?? []).find((d) => d.percentage === p)?.latency / 1e6;
      const codes = r.statusCodeDistribution ?? {};
      const ok = codes.OK ?? 0;
      resolve({ ok, codes, rps: ok / (r.total / 1e9), p50: lat(50), p99: lat(99), clientCpu });
    });
    // ghz's own CPU, polled (the last reading before it exits; a poll misses at most 100 ms of it).
    const poll = setInterval(() => (clientCpu = cpuSeconds(child.pid) || clientCpu), 100);
  });
}

/** The same load from a grpc-js client in this process: `c` calls in flight on one channel. */
async function nodeLoad(address, call, data, shape, { n, z = seconds } = {}) {
  const method = call.slice(call.lastIndexOf(".") + 1);
  const Req = method === "Get" ? kvpb.GetRequest : kvpb.CompareAndSetRequest;
  const Res = method === "Get" ? kvpb.GetResponse : kvpb.CompareAndSetResponse;
  const client = new grpc.Client(address, shape.node.creds());
  const path = `/agentstate.v1.KeyValueService/${method}`;
  const codes = {};
  const lats = [];
  const workers = n ? 1 : c;
  const end = Date.now() + z * 1000;
  const interval = values.rps && !n ? (workers * 1000) / Number(values.rps) : 0;
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  let seq = 0;
  const one = (w, i) =>
    new Promise((resolve) => {
      const md = new grpc.Metadata();
      if (shape.node.bearer) md.set("authorization", `Bearer ${shape.node.bearer}`);
      const d =
        method === "Get"
          ? data
          : {
              ...data,
              key: data.key.replace("{{.RequestNumber}}", String(i)).replace("{{.WorkerID}}", String(w)),
              value: Buffer.from(data.value, "base64"),
            };
      const started = performance.now();
      client.makeUnaryRequest(
        path,
        (m) => Buffer.from(Req.encode(Req.fromPartial(m)).finish()),
        (b) => Res.decode(b),
        d,
        md,
        { deadline: Date.now() + 20_000 },
        (err) => {
          const code = err ? grpc.status[err.code] : "OK";
          codes[code] = (codes[code] ?? 0) + 1;
          lats.push(performance.now() - started);
          resolve();
        },
      );
    });
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      let next = Date.now() + (interval * w) / workers;
      for (let k = 0; n ? k < n : Date.now() < end; k++) {
        if (interval) {
          const wait = next - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          next += interval;
        }
        await one(w, seq++);
      }
    }),
  );
  const secs = (Date.now() - t0) / 1000;
  const used = process.cpuUsage(cpu0);
  client.close();
  lats.sort((a, b) => a - b);
  const ok = codes.OK ?? 0;
  return {
    ok,
    codes,
    rps: ok / secs,
    p50: lats[Math.floor(lats.length * 0.5)],
    p99: lats[Math.floor(lats.length * 0.99)],
    clientCpu: (used.user + used.system) / 1e6,
  };
}

const load = (address, call, data, shape, opts) =>
  values.client === "node" ? nodeLoad(address, call, data, shape, opts) : ghz(address, call, data, shape.ghz, opts);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** The ratio to off within each round (the same machine conditions), as "median (min-max)". */
function paired(offs, xs) {
  const ratios = xs.map((x) => x.cpuUs / offs.find((o) => o.round === x.round).cpuUs);
  return `${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`;
}

const pg = await PostgresProcess.start();
const redis = await RedisProcess.start();
const certs = new TestCerts();
const servers = [];
try {
  const ca = certs.ca("ca");
  const leaf = certs.leaf("server", ca);
  const clientCa = certs.ca("client-ca");
  const client = certs.leaf("bench-client", clientCa, "bench-client");
  const principals = path.join(certs.dir, "principals.json");
  fs.writeFileSync(
    principals,
    JSON.stringify([
      { cn: "bench-client", principal: "bench", grants: [{ namespace: "bench*", roles: ["read", "write"] }] },
    ]),
  );
  const token = `agst_${randomBytes(32).toString("base64url")}`;
  await pg.createDatabase("auth_ab");
  const base = {
    DATABASE_URL: pg.url("auth_ab"),
    REDIS_URL: redis.url,
    AGENTSTATE_REDIS_PREFIX: "authab",
    AGENTSTATE_METRICS_PORT: "-1",
    LOG_LEVEL: "info",
  };
  const tlsEnv = { AGENTSTATE_TLS_CERT_FILE: leaf.cert, AGENTSTATE_TLS_KEY_FILE: leaf.key };
  const plain = () => grpc.credentials.createInsecure();
  const tlsCreds = () => grpc.credentials.createSsl(fs.readFileSync(ca.cert));
  const mtlsCreds = () =>
    grpc.credentials.createSsl(fs.readFileSync(ca.cert), fs.readFileSync(client.key), fs.readFileSync(client.cert));
  const withToken = ["--insecure", "-m", JSON.stringify({ authorization: `Bearer ${token}` })];
  const shapes = {
    off: { env: {}, ghz: ["--insecure"], node: { creds: plain } },
    token: {
      env: { AGENTSTATE_AUTH: "required", AGENTSTATE_BOOTSTRAP_TOKEN: token },
      ghz: withToken,
      node: { creds: plain, bearer: token },
    },
    tls: { env: tlsEnv, ghz: ["--cacert", ca.cert], node: { creds: tlsCreds } },
    offmd: { env: {}, ghz: withToken, node: { creds: plain, bearer: token } },
    mtls: {
      node: { creds: mtlsCreds },
      env: {
        ...tlsEnv,
        AGENTSTATE_TLS_CLIENT_CA_FILE: clientCa.cert,
        AGENTSTATE_AUTH: "required",
        AGENTSTATE_BOOTSTRAP_TOKEN: token,
        AGENTSTATE_AUTH_CERT_PRINCIPALS_FILE: principals,
      },
      ghz: ["--cacert", ca.cert, "--cert", client.cert, "--key", client.key],
    },
  };
  const results = {}; // shape -> scenario -> [{cpuUs, rps, p50, p99}]
  const value = Buffer.alloc(64, 7).toString("base64");
  const scenarios = {
    "get-hit": ["agentstate.v1.KeyValueService.Get", { namespace: "bench", key: "hot" }],
    "cas-new": [
      "agentstate.v1.KeyValueService.CompareAndSet",
      { namespace: "bench", key: "k-{{.RequestNumber}}-{{.WorkerID}}", expected: { any: true }, value },
    ],
  };
  const selected = Object.entries(shapes).filter(([k]) => values.shapes.split(",").includes(k));
  // --together: a namespace per shape, so the shapes' servers share no row.
  const nsOf = (name) => (values.together ? `bench-${name}` : "bench");
  const record = (round, name, scenario, cpuUs, r) => {
    const bad = Object.entries(r.codes).filter(([k]) => k !== "OK" && k !== "Canceled" && k !== "Unavailable");
    if (bad.length > 0) throw new Error(`${name} ${scenario}: ${JSON.stringify(r.codes)}`);
    const clientUs = (r.clientCpu * 1e6) / Math.max(1, r.ok);
    ((results[name] ??= {})[scenario] ??= []).push({ round, cpuUs, clientUs, rps: r.rps, p50: r.p50, p99: r.p99 });
    console.error(
      `round ${round + 1} ${name} ${scenario}: server ${cpuUs.toFixed(1)} us/call, client ${clientUs.toFixed(1)} us/call, ${r.rps.toFixed(0)} rps, load ${loadavg()[0].toFixed(1)}`,
    );
  };
  const warm = async (addr, name, shape) => {
    // Create the hot key, then read it until it is served from the cache.
    const ns = nsOf(name);
    await load(addr, scenarios["cas-new"][0], { ...scenarios["cas-new"][1], namespace: ns, key: "hot" }, shape, {
      n: 1,
    });
    await load(addr, scenarios["get-hit"][0], { ...scenarios["get-hit"][1], namespace: ns }, shape, { z: 3 });
  };
  for (let round = 0; round < Number(values.rounds); round++) {
    if (values.together) {
      // Every shape at once, each with its own server and client, so that all
      // see the same machine load (the paired design for a shared machine).
      const running = await Promise.all(
        selected.map(async ([name, shape]) => ({
          name,
          shape,
          server: await ServerProcess.start({ ...base, ...shape.env }),
        })),
      );
      servers.push(...running.map((r) => r.server));
      await Promise.all(running.map((r) => warm(r.server.address, r.name, r.shape)));
      for (const [scenario, [call, data]] of Object.entries(scenarios)) {
        const cpu0 = running.map((r) => cpuSeconds(r.server.pid));
        const rs = await Promise.all(
          running.map((r) => load(r.server.address, call, { ...data, namespace: nsOf(r.name) }, r.shape)),
        );
        running.forEach((r, i) =>
          record(round, r.name, scenario, ((cpuSeconds(r.server.pid) - cpu0[i]) * 1e6) / Math.max(1, rs[i].ok), rs[i]),
        );
      }
      await Promise.all(running.map((r) => r.server.stop()));
      servers.length = 0;
      continue;
    }
    for (const [name, shape] of selected) {
      const server = await ServerProcess.start({ ...base, ...shape.env });
      servers.push(server);
      const addr = server.address;
      await warm(addr, name, shape);
      for (const [scenario, [call, data]] of Object.entries(scenarios)) {
        const cpu0 = cpuSeconds(server.pid);
        const r = await load(addr, call, data, shape);
        record(round, name, scenario, ((cpuSeconds(server.pid) - cpu0) * 1e6) / Math.max(1, r.ok), r);
      }
      await server.stop();
      servers.pop();
    }
  }
  const lines = [
    `${values.client}, c = ${c}${values.rps ? ` at ${values.rps} calls/s` : ""}, ${seconds} s per run, median of ${values.rounds} rounds (server CPU from /proc; ratio vs off); load average at the end ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
    "",
    "| scenario | shape | server CPU µs/call | vs off | vs off, per round (median; range) | client CPU µs/call | rps | p50 ms | p99 ms |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const scenario of Object.keys(scenarios)) {
    const off = median(results.off[scenario].map((x) => x.cpuUs));
    for (const name of Object.keys(shapes).filter((k) => results[k])) {
      const xs = results[name][scenario];
      const cpu = median(xs.map((x) => x.cpuUs));
      lines.push(
        `| ${scenario} | ${name} | ${cpu.toFixed(1)} | ${(cpu / off).toFixed(3)} | ${paired(results.off[scenario], xs)} | ${median(xs.map((x) => x.clientUs)).toFixed(1)} | ${median(xs.map((x) => x.rps)).toFixed(0)} | ${median(xs.map((x) => x.p50)).toFixed(2)} | ${median(xs.map((x) => x.p99)).toFixed(2)} |`,
      );
    }
  }
  console.log(lines.join("\n"));
} finally {
  for (const s of servers) await s.stop().catch(() => undefined);
  await redis.destroy();
  await pg.destroy();
  certs.remove();
}
