#!/usr/bin/env node
// CPU per CheckpointService call, server and client, by call kind and payload
// size: which part of a LangGraph step's cost is per call (gRPC) and which per
// byte. 16 callers side by side, one agentstate server, one Postgres.
// --only REGEX: the kinds to run; --cpu-prof DIR: the server under --cpu-prof.
// --b-options JSON: a second client with these grpc-js channel options, run
// interleaved with the default one (rounds alternate the order).
//   node bench/experiments/checkpoint-call-cost.mjs [--calls 2000] [--callers 16] [--rounds 3] [--b-options '{...}']
import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import console from "node:console";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import process from "node:process";
import { cpuSeconds, startPostgres, startServer } from "../lib/procs.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const need = createRequire(path.join(REPO, "clients", "typescript-langgraph", "package.json"));
const { AgentstateClient } = need("@agentstate/client");
const { values: o } = parseArgs({
  options: {
    calls: { type: "string", default: "2000" },
    callers: { type: "string", default: "16" },
    rounds: { type: "string", default: "1" },
    "b-options": { type: "string" },
    only: { type: "string" },
    "cpu-prof": { type: "string" },
  },
});
const CALLS = Number(o.calls);
const CALLERS = Number(o.callers);

const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-bench-cc-"));
fs.chmodSync(runDir, 0o755);
const pg = await startPostgres(runDir);
await pg.createDatabase("agentstate");
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
const clients = { A: new AgentstateClient(server.address, { deadlineMs: 60_000 }) };
if (o["b-options"]) {
  clients.B = new AgentstateClient(server.address, { deadlineMs: 60_000, channelOptions: JSON.parse(o["b-options"]) });
}
const ns = "cc";
let seq = 0;
const id = () => String(++seq).padStart(12, "0");
const kinds = {
  "getCheckpoint (absent thread)": (w, client) => client.getCheckpoint({ namespace: ns, threadId: "absent" }),
  "putWrites, 2 x 100 B": (w, client) =>
    client.putWrites({
      namespace: ns,
      threadId: `t${w}`,
      checkpointId: "c",
      taskId: id(),
      writes: [0, 1].map((i) => ({ index: i, channel: "m", value: { type: "json", data: Buffer.alloc(100, 65) } })),
    }),
  "putWrites, 2 x 12 KB": (w, client) =>
    client.putWrites({
      namespace: ns,
      threadId: `t${w}`,
      checkpointId: "c",
      taskId: id(),
      writes: [0, 1].map((i) => ({ index: i, channel: "m", value: { type: "json", data: Buffer.alloc(12000, 65) } })),
    }),
};
try {
  console.log(`| call | client | calls/s | server CPU ms per call | client CPU ms per call |\n|---|---|---|---|---|`);
  for (let round = 0; round < Number(o.rounds); round++) {
    for (const [name, fn] of Object.entries(kinds).filter(([k]) => !o.only || new RegExp(o.only).test(k))) {
      const order = Object.entries(clients);
      if (round % 2 === 1) order.reverse();
      for (const [cname, client] of order) {
        for (let w = 0; w < CALLERS; w++) await fn(w, client); // warm
        const s0 = cpuSeconds(server.pid);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        let left = CALLS;
        await Promise.all(
          Array.from({ length: CALLERS }, async (_, w) => {
            while (left-- > 0) await fn(w, client);
          }),
        );
        const secs = (performance.now() - t0) / 1000;
        const c = process.cpuUsage(c0);
        const sv = cpuSeconds(server.pid) - s0;
        console.log(
          `| ${name} | ${cname} | ${(CALLS / secs).toFixed(0)} | ${((sv * 1000) / CALLS).toFixed(3)} | ${((c.user + c.system) / 1000 / CALLS).toFixed(3)} |`,
        );
      }
    }
  }
} finally {
  for (const c of Object.values(clients)) c.close();
  await server.stop();
  await pg.stop();
  fs.rmSync(runDir, { recursive: true, force: true });
}
