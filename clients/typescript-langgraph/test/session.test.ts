// The saver's calls on its client's Session stream (checkpointSession, on by
// default), against the live server: the documented errors come through it
// unchanged (CheckpointConflictError with the head, CheckpointInputError
// naming the field), and puts, putWrites and getTuple really ride one stream
// (counted by a grpc-js interceptor on the client), while list stays unary.
import { AgentstateClient, type AgentstateClientOptions } from "@agentstate/client";
import { emptyCheckpoint, uuid6, type Checkpoint } from "@langchain/langgraph-checkpoint";
import { AgentstateSaver, CheckpointConflictError, CheckpointInputError } from "../src";
import { freshNamespace } from "./live";

const SERVICE = "/agentstate.v1.CheckpointService/";
type Interceptor = NonNullable<AgentstateClientOptions["interceptors"]>[number];

function counted(): { opened: Map<string, number>; interceptor: Interceptor } {
  const opened = new Map<string, number>();
  const interceptor: Interceptor = (options, nextCall) => {
    const method = options.method_definition.path.replace(SERVICE, "");
    opened.set(method, (opened.get(method) ?? 0) + 1);
    return nextCall(options);
  };
  return { opened, interceptor };
}

function step(prev: Checkpoint | undefined, n: string, s: AgentstateSaver) {
  const base = prev ?? emptyCheckpoint();
  const v = s.getNextVersion(base.channel_versions.n as string | undefined);
  const checkpoint: Checkpoint = {
    ...base,
    id: uuid6(-1),
    ts: new Date().toISOString(),
    channel_values: { ...base.channel_values, n },
    channel_versions: { ...base.channel_versions, n: v },
  };
  return { checkpoint, newVersions: { n: v } };
}
const meta = (n: number) => ({ source: "loop" as const, step: n, parents: {} });

describe("AgentstateSaver on the client's Session stream", () => {
  it("conflicts and bad input give the documented errors; put, putWrites and getTuple go on one stream", async () => {
    const { opened, interceptor } = counted();
    const client = new AgentstateClient(process.env.AGENTSTATE_ADDRESS!, {
      deadlineMs: 30_000,
      interceptors: [interceptor],
    });
    try {
      const namespace = freshNamespace("lgsess");
      const a = new AgentstateSaver({ client, namespace });
      const b = new AgentstateSaver({ client, namespace });
      const thread = { configurable: { thread_id: "shared" } };
      const first = step(undefined, "0", a);
      const head = await a.put(thread, first.checkpoint, meta(-1), first.newVersions);
      await a.putWrites(head, [["n", "w"]], "task-1");
      const tuple = await b.getTuple(thread);
      expect(tuple?.pendingWrites).toEqual([["task-1", "n", "w"]]);
      // Both workers write the next step on the same parent: one wins, the other gets the head.
      const [sa, sb] = [step(tuple!.checkpoint, "a", a), step(tuple!.checkpoint, "b", b)];
      const outcomes = await Promise.allSettled([
        a.put(head, sa.checkpoint, meta(0), sa.newVersions),
        b.put(head, sb.checkpoint, meta(0), sb.newVersions),
      ]);
      const won = outcomes.findIndex((o) => o.status === "fulfilled");
      const lost = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
      expect(won).toBeGreaterThanOrEqual(0);
      expect(lost?.reason).toBeInstanceOf(CheckpointConflictError);
      expect((lost?.reason as CheckpointConflictError).head).toBe([sa, sb][won]!.checkpoint.id);
      // Bad input refused by the server, named.
      const bad = await a
        .put({ configurable: { thread_id: "x".repeat(2000) } }, sa.checkpoint, meta(0), sa.newVersions)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(bad).toBeInstanceOf(CheckpointInputError);
      expect((bad as CheckpointInputError).field).toBe("thread_id");
      expect(((bad as Error).cause as { code: number }).code).toBe(3);

      expect(opened.get("Session")).toBe(1);
      for (const unary of ["PutCheckpoint", "PutWrites", "GetCheckpoint"]) expect(opened.get(unary)).toBeUndefined();
    } finally {
      client.close();
    }
  });
});
