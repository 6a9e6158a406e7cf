import * as assert from "node:assert/strict";
import { GroupCommitQueue, type GroupCommitOptions } from "../../src/store/postgres/GroupCommitQueue";

interface Item {
  name: string;
  key: string;
  size: number;
  /** Set: the item has expired with this error. */
  gone?: Error;
  resolve(batchNo: number): void;
  reject(err: unknown): void;
}

/**
 * A queue whose batches the test ends by hand: `batches` lists every batch
 * started (by item name), `finish(n)` answers batch n (its items resolve with
 * n, or all reject with `err`).
 */
function harness(opts: Partial<GroupCommitOptions<Item>> = {}) {
  const batches: string[][] = [];
  const running = new Map<number, { batch: Item[]; done: () => void }>();
  const settled: Record<string, number | string> = {};
  const queue = new GroupCommitQueue<Item>({
    maxBatch: 100,
    maxInFlight: 1,
    run: (batch) =>
      new Promise<void>((done) => {
        running.set(batches.length, { batch, done });
        batches.push(batch.map((it) => it.name));
      }),
    ...opts,
  });
  const push = (name: string, fields: Partial<Pick<Item, "key" | "size" | "gone">> = {}) => {
    const p = new Promise<number>((resolve, reject) =>
      queue.push({ name, key: fields.key ?? name, size: fields.size ?? 0, gone: fields.gone, resolve, reject }),
    );
    p.then(
      (n) => (settled[name] = n),
      (e: Error) => (settled[name] = e.message),
    );
    return p;
  };
  const finish = async (n: number, err?: Error) => {
    const r = running.get(n);
    assert.ok(r, `batch ${n} is running`);
    running.delete(n);
    for (const it of r.batch) {
      if (err) it.reject(err);
      else it.resolve(n);
    }
    r.done();
    await settle();
  };
  return { batches, settled, push, finish, inFlight: () => running.size };
}

/** Lets every queued promise callback run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe("store/postgres GroupCommitQueue", () => {
  it("sends the first item at once and gathers the items that arrive meanwhile into the next batch", async () => {
    const h = harness();
    h.push("a");
    h.push("b");
    h.push("c");
    assert.deepEqual(h.batches, [["a"]]);
    await h.finish(0);
    assert.deepEqual(h.batches, [["a"], ["b", "c"]]);
    await h.finish(1);
    assert.deepEqual(h.settled, { a: 0, b: 1, c: 1 });
  });

  it("takes at most maxBatch items, in arrival order", async () => {
    const h = harness({ maxBatch: 2 });
    for (const n of ["x", "a", "b", "c", "d", "e"]) h.push(n);
    await h.finish(0);
    assert.deepEqual(h.batches[1], ["a", "b"]);
    await h.finish(1);
    assert.deepEqual(h.batches[2], ["c", "d"]);
    await h.finish(2);
    assert.deepEqual(h.batches[3], ["e"]);
  });

  it("runs a batch sorted by compare", async () => {
    const h = harness({ compare: (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) });
    for (const n of ["x", "c", "a", "b"]) h.push(n);
    await h.finish(0);
    assert.deepEqual(h.batches[1], ["a", "b", "c"]);
  });

  it("never puts two items with one batch key in a batch; the later waits, in order, for the next", async () => {
    const h = harness({ batchKey: (it) => (it.key === "-" ? undefined : it.key) });
    h.push("x");
    h.push("k1", { key: "k" });
    h.push("j1", { key: "j" });
    h.push("k2", { key: "k" });
    h.push("n1", { key: "-" });
    h.push("n2", { key: "-" });
    h.push("k3", { key: "k" });
    h.push("j2", { key: "j" });
    await h.finish(0);
    assert.deepEqual(h.batches[1], ["k1", "j1", "n1", "n2"], "items without a key never conflict");
    await h.finish(1);
    assert.deepEqual(h.batches[2], ["k2", "j2"]);
    await h.finish(2);
    assert.deepEqual(h.batches[3], ["k3"]);
    await h.finish(3);
    assert.deepEqual(h.settled, { x: 0, k1: 1, j1: 1, n1: 1, n2: 1, k2: 2, j2: 2, k3: 3 });
  });

  it("never puts one flight key in two batches in flight, but lets one batch hold it many times", async () => {
    const h = harness({ maxInFlight: 2, flightKey: (it) => it.key });
    h.push("k1", { key: "k" });
    h.push("k2", { key: "k" });
    h.push("j1", { key: "j" });
    h.push("k3", { key: "k" });
    assert.deepEqual(h.batches, [["k1"], ["j1"]], "k2 waits while k is in flight, j1 passes it");
    await h.finish(1);
    assert.deepEqual(h.batches, [["k1"], ["j1"]], "k is still in flight: no batch to start");
    await h.finish(0);
    assert.deepEqual(h.batches[2], ["k2", "k3"]);
    h.push("k4", { key: "k" });
    h.push("j2", { key: "j" });
    assert.deepEqual(h.batches[3], ["j2"]);
    await h.finish(2);
    assert.deepEqual(h.batches[4], ["k4"]);
  });

  it("runs at most maxInFlight batches at once and starts the next as one ends", async () => {
    const h = harness({ maxInFlight: 2, maxBatch: 1 });
    for (const n of ["a", "b", "c", "d"]) h.push(n);
    assert.deepEqual(h.batches, [["a"], ["b"]]);
    assert.equal(h.inFlight(), 2);
    await h.finish(1);
    assert.deepEqual(h.batches, [["a"], ["b"], ["c"]]);
    assert.equal(h.inFlight(), 2);
    await h.finish(0);
    assert.deepEqual(h.batches, [["a"], ["b"], ["c"], ["d"]]);
    assert.equal(h.inFlight(), 2);
    await h.finish(2);
    await h.finish(3);
    assert.equal(h.inFlight(), 0);
    assert.deepEqual(h.settled, { a: 0, b: 1, c: 2, d: 3 });
  });

  it("a failing batch rejects only its own items, and the queue goes on", async () => {
    const h = harness({ maxInFlight: 2, maxBatch: 2 });
    for (const n of ["a", "b", "c", "d", "e"]) h.push(n);
    assert.deepEqual(h.batches, [["a"], ["b"]]);
    await h.finish(0);
    assert.deepEqual(h.batches[2], ["c", "d"]);
    await h.finish(2, new Error("boom"));
    assert.deepEqual(h.settled, { a: 0, c: "boom", d: "boom" }, "b, in the other batch in flight, is not touched");
    assert.deepEqual(h.batches[3], ["e"]);
    await h.finish(1);
    await h.finish(3);
    assert.deepEqual(h.settled, { a: 0, b: 1, c: "boom", d: "boom", e: 3 });
  });

  it("a run that throws rejects its batch's unsettled items, and the queue goes on", async () => {
    let calls = 0;
    const queue = new GroupCommitQueue<Item>({
      maxBatch: 10,
      maxInFlight: 1,
      run: async (batch) => {
        calls++;
        if (calls === 2) {
          batch[0]!.resolve(2); // settled before the failure: stays settled
          throw new Error("bug");
        }
        for (const it of batch) it.resolve(calls);
      },
    });
    const results: Record<string, string | number> = {};
    const push = (name: string) =>
      new Promise<number>((resolve, reject) => queue.push({ name, key: name, size: 0, resolve, reject })).then(
        (n) => (results[name] = n),
        (e: Error) => (results[name] = e.message),
      );
    await Promise.all([push("a"), push("b"), push("c")]);
    await push("d");
    // a goes alone; b and c gather into the second batch, which throws after settling b.
    assert.deepEqual(results, { a: 1, b: 2, c: "bug", d: 3 });
  });

  it("rejects an expired item when reached, without sending it", async () => {
    const h = harness({ expired: (it) => it.gone });
    h.push("x");
    h.push("a", { gone: new Error("too late") });
    h.push("b");
    await h.finish(0);
    assert.deepEqual(h.batches[1], ["b"]);
    await h.finish(1);
    assert.deepEqual(h.settled, { x: 0, a: "too late", b: 1 });
  });

  it("stops a batch before the item that would take it over maxWeight; a heavy first item goes alone", async () => {
    const h = harness({ weight: (it) => it.size, maxWeight: 10 });
    h.push("x");
    h.push("a", { size: 4 });
    h.push("b", { size: 7 });
    h.push("c", { size: 1 });
    h.push("big", { size: 50 });
    h.push("d", { size: 1 });
    await h.finish(0);
    assert.deepEqual(h.batches[1], ["a"], "stops at b: c, which would still fit, does not pass it");
    await h.finish(1);
    assert.deepEqual(h.batches[2], ["b", "c"]);
    await h.finish(2);
    assert.deepEqual(h.batches[3], ["big"]);
    await h.finish(3);
    assert.deepEqual(h.batches[4], ["d"]);
  });

  it("a batch may weigh exactly maxWeight", async () => {
    const h = harness({ weight: (it) => it.size, maxWeight: 10 });
    h.push("x");
    h.push("a", { size: 4 });
    h.push("b", { size: 6 });
    h.push("c", { size: 1 });
    await h.finish(0);
    assert.deepEqual(h.batches[1], ["a", "b"]);
  });
  describe("partitions (one batch = one namespace)", () => {
    const byPrefix = (it: Item) => it.name[0]!;

    it("never mixes partitions in a batch, and runs batches of different partitions at once", async () => {
      const h = harness({ maxInFlight: 4, maxInFlightPerPartition: 1, partition: byPrefix });
      h.push("a1");
      h.push("b1");
      h.push("a2");
      h.push("b2");
      h.push("a3");
      assert.deepEqual(h.batches, [["a1"], ["b1"]], "each partition's first item goes at once, side by side");
      await h.finish(0);
      assert.deepEqual(h.batches[2], ["a2", "a3"], "a's next batch holds only a's items");
      await h.finish(1);
      assert.deepEqual(h.batches[3], ["b2"]);
      await h.finish(2);
      await h.finish(3);
      assert.deepEqual(h.settled, { a1: 0, b1: 1, a2: 2, a3: 2, b2: 3 });
    });

    it("one partition never has more than maxInFlightPerPartition batches, whatever slots are free", async () => {
      const h = harness({ maxInFlight: 8, maxInFlightPerPartition: 2, maxBatch: 1, partition: byPrefix });
      for (const n of ["a1", "a2", "a3", "a4", "b1"]) h.push(n);
      assert.deepEqual(h.batches, [["a1"], ["a2"], ["b1"]]);
      assert.equal(h.inFlight(), 3);
      await h.finish(0);
      assert.deepEqual(h.batches[3], ["a3"]);
      assert.equal(h.inFlight(), 3);
    });

    it("at most maxInFlight batches in all; waiting partitions take turns, the one served longest ago first", async () => {
      const h = harness({ maxInFlight: 1, maxInFlightPerPartition: 1, maxBatch: 1, partition: byPrefix });
      for (const n of ["a1", "a2", "a3", "b1", "b2", "c1"]) h.push(n);
      assert.deepEqual(h.batches, [["a1"]]);
      for (let i = 0; i < 5; i++) await h.finish(i);
      assert.deepEqual(h.batches, [["a1"], ["b1"], ["c1"], ["a2"], ["b2"], ["a3"]]);
    });

    it("a partition whose every item is held by a flight key keeps its turn and lets the others pass", async () => {
      const h = harness({
        maxInFlight: 3,
        maxInFlightPerPartition: 2,
        partition: byPrefix,
        flightKey: (it) => it.key,
      });
      h.push("a1", { key: "k" });
      h.push("a2", { key: "k" });
      h.push("b1", { key: "j" });
      assert.deepEqual(h.batches, [["a1"], ["b1"]], "a2 waits for its key, b1 is not held up by it");
      await h.finish(0);
      assert.deepEqual(h.batches[2], ["a2"]);
    });
  });
});
