#!/usr/bin/env node
// Request bytes per LangGraph step on the wire (protobuf messages, before
// HTTP/2 framing) of AgentstateSaver: bench/langgraph.mjs's 200-step thread
// (a message list growing by a 200-character message per step, a step
// counter, a 4 KB context at step 0; then putWrites of two writes), through a
// saver whose client encodes each request with the generated encoder, counts
// its bytes and answers as the server would (no server, no network). With
// --saver another build's saver (its dist/index.js) is measured beside this one.
// Needs the clients built (the tsc commands in bench/langgraph.mjs's header).
//   node bench/experiments/checkpoint-wire-bytes.mjs [--steps 200] [--saver <ref>/clients/typescript-langgraph/dist/index.js]
import console from "node:console";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { langgraphSteps } from "../lib/langgraphStep.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const PKG = path.join(REPO, "clients", "typescript-langgraph");
const need = createRequire(path.join(PKG, "package.json"));
const gen = need(path.join(REPO, "clients", "typescript", "dist", "gen", "agentstate", "v1", "checkpoint.js"));
const { emptyCheckpoint, uuid6 } = need("@langchain/langgraph-checkpoint");
const { values: o } = parseArgs({ options: { steps: { type: "string", default: "200" }, saver: { type: "string" } } });
const STEPS = Number(o.steps);

/** A client that counts each request's encoded bytes and answers as a server that stored it. */
function countingClient() {
  const bytes = { put: 0, putWrites: 0 };
  return {
    bytes,
    async putCheckpoint(r) {
      const m = gen.PutCheckpointRequest.fromPartial(r);
      bytes.put += gen.PutCheckpointRequest.encode(m).finish().length;
      return { created: true, headCheckpointId: m.checkpointId };
    },
    async putWrites(r) {
      const m = gen.PutWritesRequest.fromPartial(r);
      bytes.putWrites += gen.PutWritesRequest.encode(m).finish().length;
      return { stored: m.writes.length };
    },
  };
}

const message = (thread, i) => ({ role: i % 2 ? "ai" : "human", content: `${thread} step ${i} `.padEnd(200, "x") });
const step = langgraphSteps(uuid6, message);

async function run(Saver, name) {
  const client = countingClient();
  const saver = new Saver({ client, namespace: "bench-1", strict: true });
  const thread = "bench-0-1-agentstate-0";
  let prev = emptyCheckpoint();
  let config = { configurable: { thread_id: thread, checkpoint_ns: "" } };
  for (let i = 0; i < STEPS; i++) {
    const { checkpoint, newVersions, metadata, writes, taskId } = step(saver, prev, thread, i);
    config = await saver.put(config, checkpoint, metadata, newVersions);
    await saver.putWrites(config, writes, taskId);
    prev = checkpoint;
  }
  const per = (n) => (n / STEPS).toFixed(0);
  console.log(
    `| ${name} | ${per(client.bytes.put)} | ${per(client.bytes.putWrites)} | ${per(client.bytes.put + client.bytes.putWrites)} |`,
  );
  return client.bytes.put + client.bytes.putWrites;
}

console.log(
  `${STEPS} steps, request bytes per step\n\n| saver | PutCheckpoint | PutWrites | both |\n|---|---|---|---|`,
);
const a = await run(need(path.join(PKG, "dist", "index.js")).AgentstateSaver, "this build");
if (o.saver) {
  const b = await run(need(path.resolve(o.saver)).AgentstateSaver, o.saver);
  console.log(`\nthis build / other: ${(a / b).toFixed(3)}x`);
}
