#!/usr/bin/env node
// What a call costs grpc-js itself, unary against a message on an open
// bidirectional stream (why CheckpointService.Session exists): an echo server
// in a child process (no handler work, payload in, 16 bytes out), the same
// payload sent N times as unary calls or as messages on streams, at a given
// concurrency (one stream per concurrent caller). Prints calls/s and the CPU
// per call of the server process and of this (client) process.
//
//   node bench/experiments/grpc-unary-vs-stream.mjs [--calls 4000] [--conc 1,16] [--bytes 2500] [--rounds 2]
import { Buffer } from "node:buffer";
import { fork } from "node:child_process";
import console from "node:console";
import { createRequire } from "node:module";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = fileURLToPath(import.meta.url);
const grpc = createRequire(path.join(path.dirname(HERE), "..", "..", "package.json"))("@grpc/grpc-js");
const id = (b) => b;
const method = (name, stream) => ({
  path: `/bench.Echo/${name}`,
  requestStream: stream,
  responseStream: stream,
  requestSerialize: id,
  requestDeserialize: id,
  responseSerialize: id,
  responseDeserialize: id,
});
const DEF = { unary: method("Unary", false), bidi: method("Bidi", true) };

if (process.argv[2] === "--server") {
  const s = new grpc.Server();
  s.addService(DEF, {
    unary: (call, cb) => cb(null, call.request.subarray(0, 16)),
    bidi: (call) => {
      call.on("data", (m) => call.write(m.subarray(0, 16)));
      call.on("end", () => call.end());
    },
  });
  s.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.send({ port });
  });
  process.on("message", (m) => m === "cpu" && process.send({ cpu: process.cpuUsage() }));
  process.on("disconnect", () => process.exit(0));
} else {
  const { values: o } = parseArgs({
    options: {
      calls: { type: "string", default: "4000" },
      conc: { type: "string", default: "1,16" },
      bytes: { type: "string", default: "2500" },
      rounds: { type: "string", default: "2" },
    },
  });
  const N = Number(o.calls);
  const server = fork(HERE, ["--server"]);
  const port = await new Promise((r) => server.once("message", (m) => r(m.port)));
  const serverCpu = () =>
    new Promise((r) => {
      server.once("message", (m) => r(m.cpu.user + m.cpu.system));
      server.send("cpu");
    });
  const Client = grpc.makeGenericClientConstructor(DEF, "Echo");
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const payload = Buffer.alloc(Number(o.bytes), 1);
  const unary = async (conc) => {
    let left = N;
    await Promise.all(
      Array.from({ length: conc }, async () => {
        while (left-- > 0) {
          await new Promise((res, rej) =>
            client.unary(payload, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) =>
              e ? rej(e) : res(r),
            ),
          );
        }
      }),
    );
  };
  const stream = async (conc) => {
    let left = N;
    const streams = Array.from({ length: conc }, () => {
      const s = client.bidi(new grpc.Metadata());
      const waiting = [];
      s.on("data", () => waiting.shift()());
      return { s, waiting };
    });
    await Promise.all(
      streams.map(async ({ s, waiting }) => {
        while (left-- > 0) {
          await new Promise((res) => {
            waiting.push(res);
            s.write(payload);
          });
        }
      }),
    );
    await Promise.all(streams.map(({ s }) => new Promise((r) => (s.on("status", r), s.end()))));
  };
  console.log("| round | concurrency | kind | calls/s | server CPU us per call | client CPU us per call |");
  console.log("|---|---|---|---|---|---|");
  for (let round = 1; round <= Number(o.rounds); round++) {
    for (const conc of o.conc.split(",").map(Number)) {
      for (const [kind, fn] of [
        ["unary", unary],
        ["stream message", stream],
      ]) {
        const s0 = await serverCpu();
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await fn(conc);
        const ms = performance.now() - t0;
        const s1 = await serverCpu();
        const c1 = process.cpuUsage(c0);
        const row = [round, conc, kind, ((N / ms) * 1000).toFixed(0), ((s1 - s0) / N).toFixed(0)];
        console.log(`| ${row.join(" | ")} | ${((c1.user + c1.system) / N).toFixed(0)} |`);
      }
    }
  }
  client.close();
  server.disconnect();
}
