// Experiment (issue 16): what authentication costs the server per call. The
// same build serves Get (a cache hit) and CompareAndSet (a new key per call)
// in four shapes, one after the other on the same Postgres and Redis:
//   off    plaintext, AGENTSTATE_AUTH=off (the default)
//   token  plaintext, AGENTSTATE_AUTH=required, an API token on every call
//   tls    TLS, auth off (what TLS alone costs, for the mtls row)
//   mtls   mTLS + AGENTSTATE_AUTH=required, the client certificate mapped to a principal
// and reports the server's CPU per successful call (/proc/<pid>/stat before and
// after, the measure least disturbed by a shared machine), rps and p50/p99.
// Rounds alternate the shapes (off, token, tls, mtls, off, ...) and the table
// gives the median of the rounds.
//   npm run build && node bench/experiments/auth-ab.mjs [--seconds 8] [--rounds 3] [--concurrency 16]
//     [--rps N: a fixed rate for every shape] [--shapes off,token,tls,mtls]
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { Buffer } from "node:buffer";
import console from "node:console";
import { createRequire } from "node:module";
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

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "16" },
    // A fixed rate for every shape: CPU per call depends on load (batching), and
    // ghz itself is slower with metadata, so compare at the same rate too.
    rps: { type: "string" },
    shapes: { type: "string", default: "off,token,tls,mtls" },
  },
});
const seconds = Number(values.seconds);
const c = Number(values.concurrency);
const ghzBin = findGhz();
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
  return new Promise((resolve, reject) =>
    execFile(ghzBin, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && !stdout) return reject(new Error(`${err.message}\n${stderr}`));
      const r = JSON.parse(stdout);
      const lat = (p) => (r.latencyDistribution ?? []).find((d) => d.percentage === p)?.latency / 1e6;
      const codes = r.statusCodeDistribution ?? {};
      resolve({ ok: codes.OK ?? 0, codes, rps: (codes.OK ?? 0) / (r.total / 1e9), p50: lat(50), p99: lat(99) });
    }),
  );
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

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
      { cn: "bench-client", principal: "bench", grants: [{ namespace: "bench", roles: ["read", "write"] }] },
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
  const shapes = {
    off: { env: {}, ghz: ["--insecure"] },
    token: {
      env: { AGENTSTATE_AUTH: "required", AGENTSTATE_BOOTSTRAP_TOKEN: token },
      ghz: ["--insecure", "-m", JSON.stringify({ authorization: `Bearer ${token}` })],
    },
    tls: { env: tlsEnv, ghz: ["--cacert", ca.cert] },
    mtls: {
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
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [name, shape] of Object.entries(shapes).filter(([k]) => values.shapes.split(",").includes(k))) {
      const server = await ServerProcess.start({ ...base, ...shape.env });
      servers.push(server);
      const addr = server.address;
      // Create the hot key, then read it until it is served from the cache.
      await ghz(addr, scenarios["cas-new"][0], { ...scenarios["cas-new"][1], key: "hot" }, shape.ghz, { n: 1 });
      await ghz(addr, scenarios["get-hit"][0], scenarios["get-hit"][1], shape.ghz, { z: 3 });
      for (const [scenario, [call, data]] of Object.entries(scenarios)) {
        const cpu0 = cpuSeconds(server.pid);
        const r = await ghz(addr, call, data, shape.ghz);
        const cpuUs = ((cpuSeconds(server.pid) - cpu0) * 1e6) / Math.max(1, r.ok);
        const bad = Object.entries(r.codes).filter(([k]) => k !== "OK" && k !== "Canceled" && k !== "Unavailable");
        if (bad.length > 0) throw new Error(`${name} ${scenario}: ${JSON.stringify(r.codes)}`);
        ((results[name] ??= {})[scenario] ??= []).push({ cpuUs, rps: r.rps, p50: r.p50, p99: r.p99 });
        console.error(`round ${round + 1} ${name} ${scenario}: ${cpuUs.toFixed(1)} us/call, ${r.rps.toFixed(0)} rps`);
      }
      await server.stop();
      servers.pop();
    }
  }
  const lines = [
    `c = ${c}${values.rps ? ` at ${values.rps} calls/s` : ""}, ${seconds} s per run, median of ${values.rounds} rounds (server CPU from /proc; ratio vs off)`,
    "",
    "| scenario | shape | server CPU µs/call | vs off | rps | p50 ms | p99 ms |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const scenario of Object.keys(scenarios)) {
    const off = median(results.off[scenario].map((x) => x.cpuUs));
    for (const name of Object.keys(shapes).filter((k) => results[k])) {
      const xs = results[name][scenario];
      const cpu = median(xs.map((x) => x.cpuUs));
      lines.push(
        `| ${scenario} | ${name} | ${cpu.toFixed(1)} | ${(cpu / off).toFixed(3)} | ${median(xs.map((x) => x.rps)).toFixed(0)} | ${median(xs.map((x) => x.p50)).toFixed(2)} | ${median(xs.map((x) => x.p99)).toFixed(2)} |`,
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
