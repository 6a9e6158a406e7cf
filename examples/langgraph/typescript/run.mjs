#!/usr/bin/env node
// A LangGraph agent on agentstate that survives kill -9, then travels back in
// time and forks. No LLM: the "model" and the tools are deterministic
// functions, so the output is the same on every run.
//
//   AGENTSTATE_ADDRESS=127.0.0.1:50051 node examples/langgraph/typescript/run.mjs
//
// 1. A worker process runs the graph (planner -> searcher -> summarizer -> responder) on
//    a new thread. The search tool is slow; while it runs, the worker is
//    killed with SIGKILL.
// 2. A new process (this one) resumes the thread from agentstate: plan is not
//    run again, searcher and the rest are.
// 3. Time travel: back to the checkpoint taken after "planner", the plan is
//    changed there (a fork: strict mode needs configurable.agentstate_fork),
//    and the graph runs on from it. The thread's latest state is the fork's;
//    the first run's answer is still in its history.
//
// Modules come from clients/typescript-langgraph (npm ci there, and its build;
// .ci/clients does both).
import { spawn } from "node:child_process";
import console from "node:console";
import { createRequire } from "node:module";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG = path.resolve(HERE, "../../../clients/typescript-langgraph");
const need = createRequire(path.join(PKG, "package.json"));
const { AgentstateClient } = need("@agentstate/client");
const { AgentstateSaver } = need(path.join(PKG, "dist", "index.js"));
const { Annotation, END, START, StateGraph } = need("@langchain/langgraph");

const address = process.env.AGENTSTATE_ADDRESS ?? "127.0.0.1:50051";
const NAMESPACE = "demo-langgraph-example";

const State = Annotation.Root({
  question: Annotation(),
  plan: Annotation(),
  found: Annotation(),
  summary: Annotation(),
  answer: Annotation(),
  // Which nodes ran, in order, across every process that worked on the thread.
  ran: Annotation({ reducer: (a, b) => a.concat(b), default: () => [] }),
});

// The simulated tools: pure functions of their input.
const searchTool = (plan) => plan.split(" ").map((w) => `${w}:${w.length}`);
const summarizeTool = (found) => found.join(", ");

function buildGraph(checkpointer, { slowSearch }) {
  return new StateGraph(State)
    .addNode("planner", (s) => ({ plan: `look up ${s.question}`, ran: ["planner"] }))
    .addNode("searcher", async (s) => {
      if (slowSearch) {
        console.log("worker: search started");
        await new Promise(() => {}); // never ends: the worker is killed here
      }
      return { found: searchTool(s.plan), ran: ["searcher"] };
    })
    .addNode("summarizer", (s) => ({ summary: summarizeTool(s.found), ran: ["summarizer"] }))
    .addNode("responder", (s) => ({ answer: `${s.question}? ${s.summary}`, ran: ["responder"] }))
    .addEdge(START, "planner")
    .addEdge("planner", "searcher")
    .addEdge("searcher", "summarizer")
    .addEdge("summarizer", "responder")
    .addEdge("responder", END)
    .compile({ checkpointer });
}

const client = new AgentstateClient(address);
const saver = new AgentstateSaver({ client, namespace: NAMESPACE });

if (process.argv[2] === "worker") {
  // The worker: runs the graph until it is killed in the search tool.
  const thread = { configurable: { thread_id: process.argv[3] } };
  // durability "sync": each step's checkpoint is durable before the next step starts.
  await buildGraph(saver, { slowSearch: true }).invoke({ question: "agent state" }, { ...thread, durability: "sync" });
  process.exit(3); // not reached
}

const threadId = `run-${Date.now()}`;
const thread = { configurable: { thread_id: threadId } };

// 1. The worker, killed with SIGKILL while its search tool runs.
const worker = spawn(process.execPath, [fileURLToPath(import.meta.url), "worker", threadId], {
  stdio: ["ignore", "pipe", "inherit"],
  env: process.env,
});
await new Promise((resolve, reject) => {
  worker.stdout.on("data", (d) => {
    if (String(d).includes("search started")) resolve();
  });
  worker.once("exit", (code) => reject(new Error(`worker exited (${code}) before its search started`)));
});
worker.kill("SIGKILL");
await new Promise((resolve) => worker.once("exit", resolve));
console.log("killed the worker (SIGKILL) during search");

// 2. Resume from agentstate in this process.
const graph = buildGraph(saver, { slowSearch: false });
const before = await graph.getState(thread);
console.log("saved before the kill:", before.values.ran.join(" > "), "| next:", before.next.join(","));
const resumed = await graph.invoke(null, thread);
console.log("resumed:", resumed.ran.join(" > "));
console.log("answer:", resumed.answer);

// 3. Time travel to the checkpoint after "planner", change the plan there, run on (a fork).
let afterPlan;
for await (const s of graph.getStateHistory(thread)) {
  if (s.next.includes("searcher")) afterPlan = s;
}
const forkAt = { configurable: { ...afterPlan.config.configurable, agentstate_fork: true } };
const forked = await graph.updateState(forkAt, { plan: "look up durable checkpoints" }, "planner");
const result = await graph.invoke(null, { configurable: { ...forked.configurable, agentstate_fork: true } });
console.log("forked answer:", result.answer);
const latest = await graph.getState(thread);
console.log("latest state is the fork's:", latest.values.answer === result.answer);
let steps = 0;
let firstAnswerKept = false;
for await (const s of graph.getStateHistory(thread)) {
  steps++;
  if (s.values.answer === resumed.answer) firstAnswerKept = true;
}
console.log("first answer still in the history:", firstAnswerKept, `(${steps} checkpoints)`);

await saver.deleteThread(threadId);
client.close();
