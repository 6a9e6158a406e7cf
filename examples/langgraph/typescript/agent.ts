// A research-agent-like LangGraph graph without an LLM (tools simulated,
// every output deterministic), persisted in agentstate through AgentstateSaver.
//
//     plan -> tool -> tool -> tool -> summarise
//
// Commands (the thread is the agentstate checkpoint thread; see ../README.md):
//
//     node dist/agent.js run THREAD TOPIC [--block-at N]   start the thread, or resume it from its last checkpoint
//     node dist/agent.js history THREAD                    the thread's checkpoints, newest first
//     node dist/agent.js fork THREAD TOPIC                 time travel to the checkpoint after "plan", fork with another topic
//
// Every node appends one line to $EFFECTS_FILE before it returns (its side
// effect, as a real tool call would have one): a step that ran twice shows
// twice. `--block-at N` makes tool call N wait forever before its side effect
// (the driver kills the process there with SIGKILL).
import { createHash } from "node:crypto";
import { appendFileSync } from "node:fs";
import process from "node:process";
import { AgentstateClient } from "@agentstate/client";
import { AgentstateSaver, CheckpointConflictError } from "@agentstate/langgraph";
import type { BaseCheckpointSaver } from "@langchain/langgraph-checkpoint";
import type { RunnableConfig } from "@langchain/core/runnables";
import { Annotation, END, START, StateGraph, type StateSnapshot } from "@langchain/langgraph";

const NAMESPACE = "examples-langgraph-ts";

const State = Annotation.Root({
  topic: Annotation<string>(),
  queries: Annotation<string[]>(),
  findings: Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] }),
  summary: Annotation<string>(),
});
type S = typeof State.State;

export function planFor(topic: string): string[] {
  return [`${topic}: background`, `${topic}: open problems`, `${topic}: recent results`];
}

/** The simulated tool: a deterministic "search result" for a query. */
function searchTool(query: string): string {
  return `${query} -> doc-${createHash("sha256").update(query).digest("hex").slice(0, 8)}`;
}

function effect(config: RunnableConfig, line: string): void {
  appendFileSync(process.env.EFFECTS_FILE!, `${config.configurable?.thread_id} ${line}\n`);
}

function build(checkpointer: AgentstateSaver, blockAt: number | undefined) {
  return (
    new StateGraph(State)
      .addNode("plan", (s: S, config: RunnableConfig) => {
        effect(config, `plan ${s.topic}`);
        return { queries: planFor(s.topic) };
      })
      .addNode("tool", async (s: S, config: RunnableConfig) => {
        const call = s.findings.length + 1;
        if (call === blockAt) {
          process.stdout.write(`blocked: in tool call ${call}\n`);
          await new Promise((resolve) => setTimeout(resolve, 3_600_000));
        }
        const query = s.queries[call - 1];
        effect(config, `tool ${query}`);
        return { findings: [searchTool(query)] };
      })
      .addNode("summarise", (s: S, config: RunnableConfig) => {
        effect(config, "summarise");
        return { summary: `${s.topic}: ${s.findings.length} findings` };
      })
      .addEdge(START, "plan")
      .addEdge("plan", "tool")
      .addConditionalEdges("tool", (s: S) => (s.findings.length < s.queries.length ? "tool" : "summarise"), [
        "tool",
        "summarise",
      ])
      .addEdge("summarise", END)
      // The saver's channel versions are strings (they sort as text); compile's
      // type names the default, numbers.
      .compile({ checkpointer: checkpointer as unknown as BaseCheckpointSaver })
  );
}

/** Values as sorted-key JSON (the same line the Python example prints). */
function show(values: Record<string, unknown>): string {
  const item = (v: unknown) =>
    Array.isArray(v) ? `[${v.map((x) => JSON.stringify(x)).join(", ")}]` : JSON.stringify(v);
  const keys = Object.keys(values).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}: ${item(values[k])}`).join(", ")}}`;
}

function fail(message: string): never {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  const [command, thread] = argv;
  const blockAt = argv.includes("--block-at") ? Number(argv[argv.indexOf("--block-at") + 1]) : undefined;
  const client = new AgentstateClient(process.env.AGENTSTATE_ADDRESS ?? "127.0.0.1:50051");
  const graph = build(new AgentstateSaver({ client, namespace: NAMESPACE }), blockAt);
  const config = { configurable: { thread_id: thread } };
  // durability "sync": each step's checkpoint is stored before the next step starts.
  if (command === "run") {
    const state = await graph.getState(config);
    let final: Record<string, unknown>;
    if (state.next.length > 0) {
      console.log(`resume: from step ${state.metadata?.step}, next ${JSON.stringify(state.next)}`);
      final = await graph.invoke(null, { ...config, durability: "sync" });
    } else if (Object.keys(state.values).length > 0) {
      final = state.values;
    } else {
      console.log(`start: ${argv[2]}`);
      final = await graph.invoke({ topic: argv[2] }, { ...config, durability: "sync" });
    }
    console.log(`final: ${show(final)}`);
  } else if (command === "history") {
    for await (const s of graph.getStateHistory(config)) {
      console.log(
        `step ${s.metadata?.step}: next ${JSON.stringify(s.next)}, ${s.values.findings?.length ?? 0} findings`,
      );
    }
  } else if (command === "fork") {
    const history: StateSnapshot[] = [];
    for await (const s of graph.getStateHistory(config)) history.push(s);
    const head = history[0];
    // Time travel: the checkpoint taken after "plan", before any tool call.
    const then = history.find((s) => s.next.length === 1 && s.next[0] === "tool" && !s.values.findings?.length);
    if (!then) fail("no checkpoint after plan in the thread's history");
    const past = await graph.getState(then.config);
    console.log(`as of step ${past.metadata?.step}: ${show(past.values)}`);
    // Fork: a new checkpoint whose parent is that older one, with another topic
    // (and so another plan). Strict mode refuses a put whose parent is not the
    // thread's head (nothing is written) unless the config says it forks on purpose.
    const topic = argv[2];
    try {
      await graph.updateState(then.config, { topic, queries: planFor(topic) }, "plan");
      fail("strict mode let a put on an older checkpoint through without agentstate_fork");
    } catch (e) {
      if (!(e instanceof CheckpointConflictError)) throw e;
      if (e.head !== head.config.configurable?.checkpoint_id)
        fail(`the conflict names ${e.head} as the head, not the latest checkpoint`);
      console.log(`strict: without agentstate_fork the fork is refused, the head is step ${head.metadata?.step}`);
    }
    const forkConfig = { configurable: { ...then.config.configurable, agentstate_fork: true } };
    const forked = await graph.updateState(forkConfig, { topic, queries: planFor(topic) }, "plan");
    const forkPoint = await graph.getState(forked);
    const parent = forkPoint.parentConfig?.configurable?.checkpoint_id;
    if (parent !== then.config.configurable?.checkpoint_id)
      fail(`the fork's parent is ${parent}, not the checkpoint after plan`);
    console.log(
      `fork: parent is the checkpoint of step ${past.metadata?.step}, next ${JSON.stringify(forkPoint.next)}`,
    );
    const final = await graph.invoke(null, { ...forked, durability: "sync" });
    console.log(`final: ${show(final)}`);
    // The original branch is still there, unchanged.
    console.log(`original branch: ${show((await graph.getState(head.config)).values)}`);
  } else {
    fail(`unknown command ${command}`);
  }
  client.close();
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
