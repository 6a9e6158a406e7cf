// Experiment (issue 17, BENCHMARKS.md §7 third pass): what one message
// written to N grpc-js server streams costs the server's CPU with nothing of
// agentstate around it: no Postgres, no change feed, no call pipeline; the
// same generated EventService definition with encodeOnce (so one protobuf
// encoding per event, as the server does), one SubscribeResponse object per
// event written with call.write() to every stream, 100 streams per turn of the
// event loop (as ChangeFeed's wakeBatch). The subscribers are P child
// processes of bench/lib/fanoutSubscribers.mjs (http2 client; or, with
// FANOUT_GO=<a build of bench/fanout-go>, the Go subscribers), so the
// client's CPU is not this process's. The floor the server's own per-subscriber
// cost (bench/run.mjs --fanout: CPU per append at 1000 minus at 1, over 999)
// can be compared with.
//
//   npm run build && node bench/experiments/fanout-write-floor.mjs [N=1000] [EVENTS=200] [P=4]
import { fork } from "node:child_process";
import * as path from "node:path";
import { Buffer } from "node:buffer";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import { goSubscribers } from "../lib/goSubscribers.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");
const N = Number(process.argv[2] ?? 1000);
const EVENTS = Number(process.argv[3] ?? 200);
const P = Number(process.argv[4] ?? 4);
const BATCH = 100;

const { EventServiceService } = await import(path.join(REPO, "dist", "src", "gen", "agentstate", "v1", "event.js"));
const { encodeOnce } = await import(path.join(REPO, "dist", "src", "grpc", "codec", "encodeOnce.js"));

const calls = [];
const server = new grpc.Server();
server.addService(encodeOnce(EventServiceService, "subscribe"), {
  subscribe: (call) => {
    calls.push(call);
    call.write({ caughtUp: { position: 0 } });
  },
});
const port = await new Promise((resolve, reject) =>
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
    err ? reject(err) : resolve(p),
  ),
);
const address = `127.0.0.1:${port}`;
const share = (i) => Math.floor(N / P) + (i < N % P ? 1 : 0);
const req = { namespace: "ns", stream: "s", afterPosition: 0 };
const children = Array.from({ length: P }, (_, i) =>
  process.env.FANOUT_GO
    ? goSubscribers(process.env.FANOUT_GO, { address, req, count: share(i) })
    : fork(path.join(REPO, "bench", "lib", "fanoutSubscribers.mjs"), [
        JSON.stringify({
          protoJs: path.join(REPO, "dist", "clients", "typescript", "src", "gen", "agentstate", "v1", "event.js"),
          address,
          req,
          count: share(i),
          client: "http2",
        }),
      ]),
);
await Promise.all(children.map((c) => new Promise((resolve) => c.once("message", resolve))));

const data = Buffer.alloc(64, 1);
let pending = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let e = 1; e <= EVENTS; e++) {
  const msg = {
    event: {
      stream: "s",
      id: "00000000-0000-4000-8000-000000000000",
      type: "bench",
      data,
      metadata: {},
      streamVersion: e,
      position: e,
      createTime: new Date(),
    },
  };
  for (let i = 0; i < calls.length; i++) {
    if (i > 0 && i % BATCH === 0) await nextTurn();
    pending++;
    calls[i].write(msg, () => pending--);
  }
  while (pending > 0) await nextTurn();
  await sleep(20);
}
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const cpuMs = (cpu.user + cpu.system) / 1000;
const idle = 20 * EVENTS; // the pauses: this process's CPU then is timers only
process.stdout.write(
  `${N} streams, ${EVENTS} events: server CPU ${(cpuMs / EVENTS).toFixed(2)} ms per event, ` +
    `${((1000 * cpuMs) / EVENTS / N).toFixed(2)} µs per (stream, event) (wall ${((wall - idle) / EVENTS).toFixed(1)} ms per event outside the pauses)\n`,
);
for (const c of children) c.send({ stop: true });
await Promise.all(children.map((c) => new Promise((resolve) => c.once("exit", resolve))));
server.forceShutdown();
