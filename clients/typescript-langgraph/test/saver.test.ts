// AgentstateSaver beyond the official suite, against the live server: strict
// mode against forks (two workers on one thread), bad input, a channel value
// and a pending write above the server's value limit, the checkpoint size
// limit, prune / copy / delete-for-runs.
import type { Checkpoint } from "@langchain/langgraph-checkpoint";
import type { RunnableConfig } from "@langchain/core/runnables";
import { AgentstateSaver, CheckpointConflictError, CheckpointInputError } from "../src";
import { client, saver } from "./live";
import { next } from "./nextCheckpoint";

const meta = (step: number, extra: Record<string, unknown> = {}) => ({
  source: "loop" as const,
  step,
  parents: {},
  ...extra,
});

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("AgentstateSaver: strict mode (no silent forks)", () => {
  it("two workers on one thread, 10 steps: exactly one wins each step, the loser gets CheckpointConflictError with the winner as head", async () => {
    const a = saver();
    const b = new AgentstateSaver({ client, namespace: a.namespace }); // a second worker, same namespace
    const thread = { configurable: { thread_id: "shared" } };
    const first = next(undefined, { n: 0 }, a);
    let config: RunnableConfig = await a.put(thread, first.checkpoint, meta(-1), first.newVersions);
    for (let step = 0; step < 10; step++) {
      // Both workers read the head, then both try to write the next step on it.
      const [ta, tb] = await Promise.all([a.getTuple(thread), b.getTuple(thread)]);
      expect(ta?.config).toEqual(config);
      expect(tb?.config).toEqual(config);
      const steps = [next(ta!.checkpoint, { n: `a${step}` }, a), next(tb!.checkpoint, { n: `b${step}` }, b)];
      const outcomes = await Promise.allSettled([
        a.put(ta!.config, steps[0]!.checkpoint, meta(step), steps[0]!.newVersions),
        b.put(tb!.config, steps[1]!.checkpoint, meta(step), steps[1]!.newVersions),
      ]);
      const won = outcomes.findIndex((o) => o.status === "fulfilled");
      const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
      expect(won).toBeGreaterThanOrEqual(0);
      expect(lost).toHaveLength(1);
      const err = lost[0]!.reason;
      expect(err).toBeInstanceOf(CheckpointConflictError);
      expect((err as CheckpointConflictError).head).toBe(steps[won]!.checkpoint.id);
      expect((err as CheckpointConflictError).threadId).toBe("shared");
      config = (outcomes[won] as PromiseFulfilledResult<RunnableConfig>).value;
    }
    // One linear chain of 11 checkpoints: nothing was forked off and lost.
    const chain = await all(a.list(thread));
    expect(chain).toHaveLength(11);
    for (let i = 0; i < chain.length - 1; i++) expect(chain[i]!.parentConfig).toEqual(chain[i + 1]!.config);
    expect((await a.getTuple(thread))?.config).toEqual(config);
  });

  it("a deliberate fork (time travel) passes configurable.agentstate_fork; strict: false allows it too", async () => {
    const s = saver();
    const thread = { configurable: { thread_id: "t" } };
    const c0 = next(undefined, { x: 1 }, s);
    const cfg0 = await s.put(thread, c0.checkpoint, meta(0), c0.newVersions);
    const c1 = next(c0.checkpoint, { x: 2 }, s);
    await s.put(cfg0, c1.checkpoint, meta(1), c1.newVersions);
    const fork = next(c0.checkpoint, { x: 3 }, s);
    await expect(s.put(cfg0, fork.checkpoint, meta(1), fork.newVersions)).rejects.toBeInstanceOf(
      CheckpointConflictError,
    );
    const forked = { configurable: { ...cfg0.configurable, agentstate_fork: true } };
    await s.put(forked, fork.checkpoint, meta(1), fork.newVersions);
    expect((await s.getTuple(thread))?.checkpoint.channel_values).toEqual({ x: 3 });
    expect((await all(s.list(thread))).length).toBe(3);
  });
});

describe("AgentstateSaver: bad input is refused with CheckpointInputError, nothing written", () => {
  it("missing thread_id or checkpoint_id, wrong types, metadata that is not an object, an id over the limits", async () => {
    const s = saver();
    const c = next(undefined, { x: 1 }, s);
    const cases: [() => Promise<unknown>, string][] = [
      [() => s.put({ configurable: {} }, c.checkpoint, meta(0), c.newVersions), "thread_id"],
      [() => s.put({}, c.checkpoint, meta(0), c.newVersions), "configurable"],
      [() => s.putWrites({ configurable: { thread_id: "t" } }, [["ch", 1]], "task"), "checkpoint_id"],
      // Wrong types, refused by the saver:
      [() => s.put({ configurable: { thread_id: { a: 1 } } }, c.checkpoint, meta(0), c.newVersions), "thread_id"],
      [
        () => s.put({ configurable: { thread_id: "t", checkpoint_ns: ["x"] } }, c.checkpoint, meta(0), c.newVersions),
        "checkpoint_ns",
      ],
      [
        () => s.put({ configurable: { thread_id: "t" } }, { ...c.checkpoint, id: 7 as never }, meta(0), c.newVersions),
        "checkpoint_id",
      ],
      [
        () => s.put({ configurable: { thread_id: "t" } }, c.checkpoint, "meta" as never, c.newVersions),
        "metadata_json",
      ],
      [
        () => s.putWrites({ configurable: { thread_id: "t", checkpoint_id: "c" } }, [["ch", 1, 2] as never], "task"),
        "writes",
      ],
      [
        () => s.putWrites({ configurable: { thread_id: "t", checkpoint_id: "c" } }, [[3, 1] as never], "task"),
        "writes",
      ],
      [() => s.putWrites({ configurable: { thread_id: "t", checkpoint_id: "c" } }, [["ch", 1]], 5 as never), "task_id"],
      [() => s.getTuple({ configurable: { thread_id: true } }), "thread_id"],
      // Refused by the server (INVALID_ARGUMENT on the wire):
      [
        () => s.put({ configurable: { thread_id: "x".repeat(2000) } }, c.checkpoint, meta(0), c.newVersions),
        "thread_id",
      ],
      [
        () => s.put({ configurable: { thread_id: "t" } }, c.checkpoint, [1, 2] as never, c.newVersions),
        "metadata_json",
      ],
      [
        () => s.put({ configurable: { thread_id: "t" } }, { ...c.checkpoint, id: "" }, meta(0), c.newVersions),
        "checkpoint_id",
      ],
    ];
    for (const [call, field] of cases) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, field).toBeInstanceOf(CheckpointInputError);
      expect((err as CheckpointInputError).field).toBe(field);
    }
    expect(await all(s.list({}))).toHaveLength(0);
  });

  it("what the server refuses carries its INVALID_ARGUMENT as the cause", async () => {
    const s = saver();
    const c = next(undefined, { x: 1 }, s);
    const cases: [() => Promise<unknown>, string][] = [
      [() => s.put({ configurable: { thread_id: "t\u0000" } }, c.checkpoint, meta(0), c.newVersions), "thread_id"],
      [
        () => s.putWrites({ configurable: { thread_id: "t", checkpoint_id: "c" } }, [["", 1]], "task"),
        "writes[0].channel",
      ],
      [() => s.getTuple({ configurable: { thread_id: "t", checkpoint_id: "c".repeat(2000) } }), "checkpoint_id"],
    ];
    for (const [call, field] of cases) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, field).toBeInstanceOf(CheckpointInputError);
      expect((err as CheckpointInputError).field).toBe(field);
      expect(((err as Error).cause as { code: number }).code).toBe(3);
    }
    expect(await all(s.list({}))).toHaveLength(0);
  });

  it("the server answers INVALID_ARGUMENT naming the field (what the saver maps)", async () => {
    const err = await client
      .putCheckpoint({ namespace: "lg-wire", threadId: "", checkpointId: "c", document: { type: "json" } })
      .then(
        () => undefined,
        (e: unknown) => e as { code: number; metadata: { get(k: string): unknown[] } },
      );
    expect(err?.code).toBe(3);
    expect(err?.metadata.get("agentstate-field")).toEqual(["thread_id"]);
  });
});

describe("AgentstateSaver: large checkpoints and retention", () => {
  it("a channel value above the server's value limit (1 MiB) round-trips", async () => {
    const s = saver();
    const big = "x".repeat(2_500_000);
    const c = next(undefined, { big, small: 1 }, s);
    const cfg = await s.put({ configurable: { thread_id: "big" } }, c.checkpoint, meta(0), c.newVersions);
    const t = await s.getTuple(cfg);
    expect((t?.checkpoint.channel_values.big as string).length).toBe(big.length);
    expect(t?.checkpoint.channel_values.big === big).toBe(true);
    expect(t?.checkpoint.channel_values.small).toBe(1);
  });

  it("a pending write above the server's value limit (1 MiB) is stored in chunks and read back whole", async () => {
    const s = saver();
    const c = next(undefined, { small: 1 }, s);
    const cfg = await s.put({ configurable: { thread_id: "bigw" } }, c.checkpoint, meta(0), c.newVersions);
    // 3 MiB: three times the value limit (a string: serde's JSON keeps it as it is).
    const big = Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => String.fromCharCode(97 + ((i * 31) % 26))).join(
      "",
    );
    await s.putWrites(
      cfg,
      [
        ["blob", big],
        ["text", "small"],
        ["n", 1],
      ],
      "task-1",
    );
    const t = await s.getTuple(cfg);
    expect(t?.pendingWrites?.map(([task, ch]) => [task, ch])).toEqual([
      ["task-1", "blob"],
      ["task-1", "text"],
      ["task-1", "n"],
    ]);
    expect(t!.pendingWrites![0]![2] === big).toBe(true);
    expect(t!.pendingWrites!.slice(1)).toEqual([
      ["task-1", "text", "small"],
      ["task-1", "n", 1],
    ]);
    const listed = await all(s.list({ configurable: { thread_id: "bigw" } }));
    expect(listed[0]!.pendingWrites).toEqual(t!.pendingWrites);
  });

  it("metadata above the server's value limit (1 MiB) round-trips, and list filters on it", async () => {
    const s = saver();
    const c = next(undefined, { x: 1 }, s);
    const note = "m".repeat(1_500_000);
    const cfg = await s.put({ configurable: { thread_id: "meta" } }, c.checkpoint, meta(0, { note }), c.newVersions);
    expect(((await s.getTuple(cfg))?.metadata as { note?: string }).note === note).toBe(true);
    const found = await all(s.list({ configurable: { thread_id: "meta" } }, { filter: { source: "loop" } }));
    expect(found.map((t) => t.checkpoint.id)).toEqual([c.checkpoint.id]);
  });

  it("a putWrites that would take a checkpoint past the size one read returns is refused (RESOURCE_EXHAUSTED), nothing written", async () => {
    const s = saver();
    const c = next(undefined, { small: 1 }, s);
    const cfg = await s.put({ configurable: { thread_id: "limit" } }, c.checkpoint, meta(0), c.newVersions);
    const chunk = (ch: string) => "z".repeat(1_500_000) + ch;
    await s.putWrites(cfg, [["a", chunk("a")]], "task-a");
    await s.putWrites(cfg, [["b", chunk("b")]], "task-b");
    const err = await s.putWrites(cfg, [["c", chunk("c")]], "task-c").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointInputError);
    expect((err as CheckpointInputError).field).toBe("writes");
    expect((err as Error).message).toMatch(/AGENTSTATE_MAX_APPEND_BYTES/);
    expect(((err as Error).cause as { code: number }).code).toBe(8);
    const t = await s.getTuple(cfg);
    expect(t?.pendingWrites?.map(([task]) => task)).toEqual(["task-a", "task-b"]);
  });

  it("prune keeps exactly the latest checkpoint per checkpoint namespace (keep_latest), or none (delete)", async () => {
    const s = saver();
    const ids: Record<string, string[]> = { "": [], child: [] };
    for (const ns of ["", "child"]) {
      let cfg: RunnableConfig = { configurable: { thread_id: "p", checkpoint_ns: ns } };
      let prev: Checkpoint | undefined;
      for (let i = 0; i < 4; i++) {
        const c = next(prev, { i }, s);
        cfg = await s.put(cfg, c.checkpoint, meta(i), c.newVersions);
        await s.putWrites(cfg, [["i", i]], `task-${i}`);
        ids[ns]!.push(c.checkpoint.id);
        prev = c.checkpoint;
      }
    }
    await s.prune(["p"], "keep_latest");
    for (const ns of ["", "child"]) {
      const left = await all(s.list({ configurable: { thread_id: "p", checkpoint_ns: ns } }));
      expect(left.map((t) => t.checkpoint.id)).toEqual([ids[ns]![3]]);
      expect(left[0]!.checkpoint.channel_values).toEqual({ i: 3 });
      expect(left[0]!.pendingWrites).toEqual([["task-3", "i", 3]]);
    }
    await s.prune(["p"], "delete");
    expect(await all(s.list({ configurable: { thread_id: "p" } }))).toHaveLength(0);
  });

  it("copyThread copies everything; deleteForRuns removes a run's checkpoints", async () => {
    const s = saver();
    const c0 = next(undefined, { v: "a" }, s);
    const cfg0 = await s.put(
      { configurable: { thread_id: "src" } },
      c0.checkpoint,
      meta(0, { run_id: "r1" }),
      c0.newVersions,
    );
    const c1 = next(c0.checkpoint, { v: "b" }, s);
    await s.put(cfg0, c1.checkpoint, meta(1, { run_id: "r2" }), c1.newVersions);
    await s.copyThread("src", "dst");
    const copied = await all(s.list({ configurable: { thread_id: "dst" } }));
    expect(copied.map((t) => t.checkpoint.channel_values)).toEqual([{ v: "b" }, { v: "a" }]);
    await s.deleteForRuns(["r2"]);
    const left = await all(s.list({}));
    expect(left.map((t) => t.metadata?.run_id)).toEqual(["r1", "r1"]);
  });
});
