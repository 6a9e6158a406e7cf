// AgentstateSaver sends channel values as deltas of the last value it put
// (ChannelValueDelta), against the live server: a 50-step thread whose message
// list grows sends deltas for the list (counted by the saver) and reads back
// identical checkpoints through a saver that sends every value whole; a put
// whose base the server no longer holds (the thread deleted by another
// client) is sent again whole, once; deltaCacheBytes 0 sends every value whole.
import type { Checkpoint } from "@langchain/langgraph-checkpoint";
import type { RunnableConfig } from "@langchain/core/runnables";
import { AgentstateSaver } from "../src";
import { client, saver } from "./live";
import { next } from "./nextCheckpoint";

/** A message as a chat model would return one, with 200 characters of content. */
const message = (thread: string, step: number) => ({
  role: step % 2 === 0 ? "user" : "assistant",
  content: `${thread} step ${step} `.padEnd(200, "x"),
  id: `${thread}-${step}`,
});

/** Step `n` of a LangGraph loop: the message list grows by one, the step counter changes. */
function step(prev: Checkpoint | undefined, thread: string, n: number, s: AgentstateSaver) {
  const messages = [...((prev?.channel_values.messages as unknown[] | undefined) ?? []), message(thread, n)];
  return next(prev, { messages, step: n }, s);
}

/** Runs steps from..to on a thread, each a put then a putWrites; returns the checkpoints and configs put. */
async function run(s: AgentstateSaver, thread: string, from: number, to: number, prev?: Checkpoint) {
  const put: { config: RunnableConfig; checkpoint: Checkpoint }[] = [];
  let config: RunnableConfig = { configurable: { thread_id: thread, checkpoint_ns: "" } };
  if (prev !== undefined) config = { configurable: { ...config.configurable, checkpoint_id: prev.id } };
  for (let n = from; n <= to; n++) {
    const { checkpoint, newVersions } = step(prev, thread, n, s);
    config = await s.put(config, checkpoint, { source: "loop", step: n, parents: {} }, newVersions);
    await s.putWrites(config, [["messages", message(thread, n + 1)]], `task-${n}`);
    put.push({ config, checkpoint });
    prev = checkpoint;
  }
  return put;
}

describe("AgentstateSaver: channel values as deltas", () => {
  it("a 50-step thread sends its growing list as deltas and reads back identical checkpoints", async () => {
    const s = saver();
    const whole = new AgentstateSaver({ client, namespace: s.namespace, deltaCacheBytes: 0 });
    const put = await run(s, "t50", 1, 50);
    // The list is sent whole at steps 1 (nothing to delta against) and 2 (its
    // delta would be over half the value), then as deltas from step 3, whole
    // again after 32 deltas (step 35); the step counter is too small to delta.
    expect(s.deltas.stats.deltas).toBe(47);
    expect(s.deltas.stats.resent).toBe(0);
    expect(s.deltas.stats.sentBytes * 5).toBeLessThan(s.deltas.stats.valueBytes);
    for (const { config, checkpoint } of put) {
      const got = await whole.getTuple(config);
      expect(got?.checkpoint.channel_values).toEqual(checkpoint.channel_values);
      expect(got?.checkpoint.channel_versions).toEqual(checkpoint.channel_versions);
    }
    expect(whole.deltas.stats.deltas).toBe(0);
    // The list's versions, newest first, through list() as well.
    const listed = [];
    for await (const t of whole.list({ configurable: { thread_id: "t50" } }, { limit: 50 })) listed.push(t);
    expect(listed.map((t) => t.checkpoint.channel_values)).toEqual(
      put.map((p) => p.checkpoint.channel_values).reverse(),
    );
  });

  it("a base the server no longer holds (thread deleted by another client): the put is sent again whole, once", async () => {
    const s = saver({ strict: false });
    const put = await run(s, "gone", 1, 5);
    expect(s.deltas.stats.deltas).toBe(3); // steps 3 to 5
    await client.deleteThread({ namespace: s.namespace, threadId: "gone" });
    const after = await run(s, "gone", 6, 7, put[4]!.checkpoint);
    expect(s.deltas.stats.resent).toBe(1);
    expect(s.deltas.stats.deltas).toBe(4); // step 6 sent again whole, step 7 a delta of it
    for (const { config, checkpoint } of after) {
      expect((await s.getTuple(config))?.checkpoint.channel_values).toEqual(checkpoint.channel_values);
    }
  });

  it("deltaCacheBytes 0: every value is sent whole", async () => {
    const s = saver({ deltaCacheBytes: 0 });
    const put = await run(s, "whole", 1, 5);
    expect(s.deltas.stats.deltas).toBe(0);
    expect(s.deltas.stats.sentBytes).toBe(s.deltas.stats.valueBytes);
    expect((await s.getTuple(put[4]!.config))?.checkpoint.channel_values).toEqual(put[4]!.checkpoint.channel_values);
  });
});
