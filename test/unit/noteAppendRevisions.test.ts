import * as assert from "node:assert/strict";
import { noteAppendRevisions } from "../../src/compose/noteAppendRevisions";
import type { AppendCommand, AppendOutcome, EventStore } from "../../src/domain/events";

const cmd = { namespace: "n", stream: "s", expected: { kind: "any" }, events: [], fence: undefined } as AppendCommand;

function outcome(applied: boolean, replayed: boolean): AppendOutcome {
  return { applied, replayed, currentVersion: 1, firstVersion: 1, firstPosition: 7, revision: 7 };
}

function storeAnswering(o: AppendOutcome): EventStore {
  return {
    append: async () => o,
    readStream: async () => [],
    streamVersion: async () => 3,
    readAfter: async () => [],
    latestPositions: async () => new Map(),
  };
}

/** No cache key base to compare (a namespace the cache has not seen). */
const noBase = () => undefined;

describe("noteAppendRevisions: the cache hears of an append before it is acknowledged", () => {
  it("notes the revision of an applied append in its namespace, and the append resolves only after the note has", async () => {
    const order: string[] = [];
    const store = noteAppendRevisions(
      storeAnswering(outcome(true, false)),
      async (namespace, revision) => {
        await new Promise((r) => setTimeout(r, 5));
        order.push(`noted ${namespace} ${revision}`);
      },
      noBase,
    );
    const o = await store.append(cmd);
    order.push("acknowledged");
    assert.deepEqual(order, ["noted n 7", "acknowledged"]);
    assert.equal(o.revision, 7);
  });

  it("hands the truth's wait (cacheWaitMs) to the note, and leaves it out of the reply", async () => {
    const waits: (number | undefined)[] = [];
    const store = noteAppendRevisions(
      storeAnswering({ ...outcome(true, false), cacheWaitMs: 1200 }),
      async (_ns, _r, w) => void waits.push(w),
      noBase,
    );
    const o = await store.append(cmd);
    assert.deepEqual(waits, [1200]);
    assert.equal("cacheWaitMs" in o, false);
  });

  it("reads the namespace's cache key base before the append is sent and hands it to the note", async () => {
    const order: string[] = [];
    const inner = storeAnswering(outcome(true, false));
    const store = noteAppendRevisions(
      { ...inner, append: async (...args) => (order.push("sent"), inner.append(...args)) },
      async (_ns, _r, _w, before) => void order.push(`noted with ${before}`),
      (ns) => (order.push(`key base of ${ns}`), "P:c:3.1"),
    );
    await store.append(cmd);
    assert.deepEqual(order, ["key base of n", "sent", "noted with P:c:3.1"]);
  });

  it("notes nothing for an append not applied or replayed", async () => {
    for (const o of [outcome(false, false), outcome(true, true)]) {
      const noted: number[] = [];
      const store = noteAppendRevisions(storeAnswering(o), async (_ns, r) => void noted.push(r), noBase);
      assert.deepEqual(await store.append(cmd), o);
      assert.deepEqual(noted, []);
    }
  });

  it("passes reads through", async () => {
    const store = noteAppendRevisions(storeAnswering(outcome(true, false)), async () => undefined, noBase);
    assert.equal(await store.streamVersion("n", "s"), 3);
    assert.deepEqual(await store.readStream("n", "s", 1, "forwards", 10), []);
    assert.deepEqual(await store.readAfter("n", { kind: "stream", stream: "s" }, 0, 10), []);
  });
});
