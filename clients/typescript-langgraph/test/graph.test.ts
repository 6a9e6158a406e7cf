// AgentstateSaver under a real LangGraph graph (@langchain/langgraph): a
// deterministic three-node graph (no LLM) run on a thread, resumed after an
// interrupt, time-travelled to an earlier checkpoint and forked. Strict mode
// is on (the default): LangGraph's loop puts every checkpoint on top of the
// one it loaded, so no put is refused, and a deliberate fork passes
// agentstate_fork.
import { Annotation, END, MemorySaver, START, StateGraph, interrupt, Command } from "@langchain/langgraph";
import { saver } from "./live";

const State = Annotation.Root({
  log: Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] }),
  approved: Annotation<boolean>({ reducer: (_a, b) => b, default: () => false }),
});

function graph(checkpointer: ReturnType<typeof saver> | MemorySaver) {
  return new StateGraph(State)
    .addNode("plan", () => ({ log: ["plan"] }))
    .addNode("approve", () => ({ approved: interrupt("approve?") as boolean, log: ["approve"] }))
    .addNode("act", (s) => ({ log: [s.approved ? "act" : "skip"] }))
    .addEdge(START, "plan")
    .addEdge("plan", "approve")
    .addEdge("approve", "act")
    .addEdge("act", END)
    .compile({ checkpointer });
}

describe("AgentstateSaver under a LangGraph graph", () => {
  it("runs, interrupts, resumes, time-travels and forks like MemorySaver", async () => {
    const outcomes = [];
    for (const cp of [saver(), new MemorySaver()]) {
      const g = graph(cp);
      const thread = { configurable: { thread_id: "g1" } };
      await g.invoke({ log: ["start"] }, thread);
      const paused = await g.getState(thread);
      const resumed = await g.invoke(new Command({ resume: true }), thread);
      const history = [];
      for await (const s of g.getStateHistory(thread)) history.push(s);
      // Time travel: back to the checkpoint before "approve" ran, and take the other branch.
      const beforeApprove = history.find(
        (s) => s.next.includes("approve") && s.tasks.length > 0 && !s.values.approved,
      )!;
      const forkConfig = { configurable: { ...beforeApprove.config.configurable, agentstate_fork: true } };
      await g.invoke(null, forkConfig);
      const forked = await g.invoke(new Command({ resume: false }), thread);
      outcomes.push({ paused: paused.next, resumed: resumed.log, history: history.length, forked: forked.log });
    }
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(outcomes[0]).toEqual({
      paused: ["approve"],
      resumed: ["start", "plan", "approve", "act"],
      history: outcomes[1]!.history,
      forked: ["start", "plan", "approve", "skip"],
    });
  });
});
