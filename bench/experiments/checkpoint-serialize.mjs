#!/usr/bin/env node
// CPU per PutCheckpoint request serialization in the TypeScript client:
// the generated requestSerialize (a new BinaryWriter per request, then a copy
// into a Buffer) against clients/typescript/src/serialize.ts (one writer
// reused, no copy). In process, no network; garbage collection included (the
// last 64 results are kept alive, as grpc-js holds requests in flight).
// Needs the client built (node_modules/.bin/tsc -p clients/typescript/tsconfig.json).
//   node bench/experiments/checkpoint-serialize.mjs [--requests 20000] [--bytes 23000]
import { Buffer } from "node:buffer";
import console from "node:console";
import { createRequire } from "node:module";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const need = createRequire(path.join(REPO, "clients", "typescript", "package.json"));
const gen = need(path.join(REPO, "clients", "typescript", "dist", "gen", "agentstate", "v1", "checkpoint.js"));
const { reusingSerializer } = need(path.join(REPO, "clients", "typescript", "dist", "serialize.js"));
const { values: o } = parseArgs({
  options: { requests: { type: "string", default: "20000" }, bytes: { type: "string", default: "23000" } },
});
const N = Number(o.requests);
const version = `${"0".repeat(31)}1.0123456789`;
const req = gen.PutCheckpointRequest.fromPartial({
  namespace: "bench-16",
  threadId: "bench-0-16-agentstate-3",
  checkpointId: "1f0d3c7e-1234-6000-8000-000000000000",
  parentCheckpointId: "1f0d3c7e-1234-6000-8000-000000000001",
  document: { type: "json", data: Buffer.alloc(520, 97) },
  metadataJson: Buffer.from('{"source":"loop","step":100,"parents":{}}'),
  channelVersions: { messages: version, step: version, context: version },
  values: [
    { channel: "messages", version, value: { type: "json", data: Buffer.alloc(Number(o.bytes), 120) } },
    { channel: "step", version, value: { type: "json", data: Buffer.from("100") } },
  ],
  requireParentIsHead: true,
});
const fns = {
  generated: gen.CheckpointServiceService.putCheckpoint.requestSerialize,
  reused: reusingSerializer(gen.PutCheckpointRequest),
};
if (!fns.generated(req).equals(fns.reused(req))) throw new Error("the two serializers disagree");
console.log(`| round | serializer | CPU us per request | wall us per request |\n|---|---|---|---|`);
for (let round = 0; round < 4; round++) {
  const order = Object.entries(fns);
  if (round % 2 === 1) order.reverse();
  for (const [name, fn] of order) {
    const keep = [];
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      keep.push(fn(req));
      if (keep.length > 64) keep.shift();
    }
    const c = process.cpuUsage(c0);
    console.log(
      `| ${round} | ${name} | ${((c.user + c.system) / N).toFixed(2)} | ${(((performance.now() - t0) * 1000) / N).toFixed(2)} |`,
    );
  }
}
