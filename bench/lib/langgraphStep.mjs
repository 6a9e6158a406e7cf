// The LangGraph step the checkpoint benches take (bench/langgraph.mjs,
// bench/experiments/checkpoint-wire-bytes.mjs), as LangGraph's loop makes it:
// checkpoint `i` of a thread changes a message list growing by one message and
// a step counter (and a 4 KB context at step 0), then the step's task writes
// the next message and step.

const CONTEXT = "c".repeat(4096);

/**
 * `uuid6` from @langchain/langgraph-checkpoint; `message(thread, i)` the
 * thread's message i. Returns `step(saver, prev, thread, i)`: the checkpoint
 * after `prev`, its new versions, its metadata, and the task's writes.
 */
export function langgraphSteps(uuid6, message) {
  return (saver, prev, thread, i) => {
    const changed = i === 0 ? { context: CONTEXT, messages: [], step: 0 } : {};
    changed.messages = [...(prev.channel_values.messages ?? []), message(thread, i)];
    changed.step = i;
    const channel_versions = { ...prev.channel_versions };
    const newVersions = {};
    for (const ch of Object.keys(changed)) {
      channel_versions[ch] = newVersions[ch] = saver.getNextVersion(prev.channel_versions[ch]);
    }
    const checkpoint = {
      ...prev,
      id: uuid6(-1),
      ts: new Date().toISOString(),
      channel_values: { ...prev.channel_values, ...changed },
      channel_versions,
      versions_seen: { agent: { ...channel_versions } },
    };
    const writes = [
      ["messages", message(thread, i + 1)],
      ["step", i + 1],
    ];
    return { checkpoint, newVersions, metadata: { source: "loop", step: i, parents: {} }, writes, taskId: `task-${i}` };
  };
}
