// LangGraph's own conformance suite (@langchain/langgraph-checkpoint-validation
// 1.1.x) through its programmatic entry (its CLI is broken in 1.1.1), against
// the live server. Each checkpointer gets a fresh namespace. The suite puts
// checkpoints without a parent onto threads that have some (it expects a
// fork-tolerant saver), so it runs with strict: false; strict mode has its
// own tests (saver.test.ts).
import { validate } from "@langchain/langgraph-checkpoint-validation";
import { saver } from "./live";

validate({
  checkpointerName: "AgentstateSaver",
  createCheckpointer: async () => saver({ strict: false }),
  destroyCheckpointer: async (s) => {
    // Every thread the suite used lives in the saver's own namespace: list them, delete them.
    const threads = new Set<string>();
    for await (const t of s.list({})) threads.add(String(t.config.configurable?.thread_id));
    for (const t of threads) await s.deleteThread(t);
  },
  beforeAllTimeout: 60_000,
});
