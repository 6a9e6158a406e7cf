import * as assert from "node:assert/strict";
import { StoreUnavailableError, WriteContendedError } from "../../src/errors/errors";
import { runWriteBatch, type BatchRow, type WriteBatchSpec } from "../../src/store/postgres/runWriteBatch";

/** An item whose settlement is recorded. */
class Item {
  outcome: string | undefined;
  error: unknown;
  settled = 0;
  constructor(
    readonly name: string,
    readonly gone?: string,
  ) {}
  resolve(o: string): void {
    this.settled++;
    this.outcome = o;
  }
  reject(err: unknown): void {
    this.settled++;
    this.error = err;
  }
}

interface Row extends BatchRow {
  name: string;
}

const BUSY = 8;
const REFUSED = 9;

/** A spec whose statement answers per item from `answer`, recording every send. */
function spec(
  answer: (names: string[], wait: boolean, call: number) => number[] | Error,
  onError?: WriteBatchSpec<Item, Row, string>["onError"],
) {
  const sends: { names: string[]; wait: boolean }[] = [];
  const s: WriteBatchSpec<Item, Row, string> = {
    tooLate: (p) => (p.gone === undefined ? undefined : new Error(p.gone)),
    send: (batch, wait) => {
      const names = batch.map((p) => p.name);
      sends.push({ names, wait });
      const r = answer(names, wait, sends.length);
      if (r instanceof Error) return Promise.reject(r);
      return Promise.resolve(r.map((status, i) => ({ idx: i + 1, status, name: names[i]! })));
    },
    onError,
    busyStatus: BUSY,
    busyError: () => new WriteContendedError("busy"),
    settle: (p, row) => {
      if (row.status === REFUSED) throw new Error(`refused ${p.name}`);
      return `${p.name}:${row.status}`;
    },
  };
  return { s, sends };
}

const settled = () => new Promise((r) => setImmediate(r));
const pgError = (code: string) => Object.assign(new Error(code), { code });

describe("runWriteBatch: one statement per batch, each item settled once", () => {
  it("settles every item with its own row; a refusal fails only its item", async () => {
    const items = [new Item("a"), new Item("b"), new Item("c")];
    const { s, sends } = spec((names) => names.map((n) => (n === "b" ? REFUSED : 1)));
    await runWriteBatch(items, false, s);
    assert.deepEqual(sends, [{ names: ["a", "b", "c"], wait: false }]);
    assert.equal(items[0]!.outcome, "a:1");
    assert.match(String(items[1]!.error), /refused b/);
    assert.equal(items[2]!.outcome, "c:1");
    assert.ok(items.every((i) => i.settled === 1));
  });

  it("answers items whose caller has gone unsent", async () => {
    const items = [new Item("a"), new Item("late", "caller gone")];
    const { s, sends } = spec((names) => names.map(() => 1));
    await runWriteBatch(items, false, s);
    assert.deepEqual(sends, [{ names: ["a"], wait: false }]);
    assert.match(String(items[1]!.error), /caller gone/);
  });

  it("runs a busy item alone, waiting; still busy then, it is UNAVAILABLE", async () => {
    const items = [new Item("a"), new Item("held")];
    const { s, sends } = spec((names) => names.map((n) => (n === "held" ? BUSY : 1)));
    await runWriteBatch(items, false, s);
    await settled();
    assert.deepEqual(sends, [
      { names: ["a", "held"], wait: false },
      { names: ["held"], wait: true },
    ]);
    assert.equal(items[0]!.outcome, "a:1");
    assert.ok(items[1]!.error instanceof WriteContendedError);
    assert.equal(items[1]!.settled, 1);
  });

  it("sends the batch again after a deadlock", async () => {
    const items = [new Item("a"), new Item("b")];
    const { s, sends } = spec((names, _w, call) => (call === 1 ? pgError("40P01") : names.map(() => 1)));
    await runWriteBatch(items, false, s);
    assert.equal(sends.length, 2);
    assert.deepEqual(
      items.map((i) => i.outcome),
      ["a:1", "b:1"],
    );
  });

  it("a failure that is not the database being down is found by running each item alone", async () => {
    const items = [new Item("a"), new Item("bad"), new Item("c")];
    const { s, sends } = spec((names) => (names.includes("bad") ? new Error("boom") : names.map(() => 1)));
    await runWriteBatch(items, false, s);
    assert.deepEqual(
      sends.map((x) => x.names.join(",")),
      ["a,bad,c", "a", "bad", "c"],
    );
    assert.equal(items[0]!.outcome, "a:1");
    assert.ok(items[1]!.error instanceof Error);
    assert.equal(items[2]!.outcome, "c:1");
  });

  it("the database being unavailable fails the whole batch at once", async () => {
    const items = [new Item("a"), new Item("b")];
    const { s, sends } = spec(() => pgError("57P01")); // admin shutdown
    await runWriteBatch(items, false, s);
    assert.equal(sends.length, 1);
    assert.ok(items.every((i) => i.error instanceof StoreUnavailableError));
  });

  it("onError can ask for each item alone or for the batch again", async () => {
    const items = [new Item("a"), new Item("b")];
    let alone = 0;
    const { s, sends } = spec(
      (names) => {
        if (names.length > 1) return pgError("23505");
        return alone++ === 0 ? pgError("23505") : names.map(() => 1);
      },
      (err, size) => ((err as { code?: string }).code === "23505" ? (size > 1 ? "alone" : "retry") : undefined),
    );
    await runWriteBatch(items, false, s);
    assert.deepEqual(
      sends.map((x) => x.names.join(",")),
      ["a,b", "a", "b", "a"],
    );
    assert.deepEqual(
      items.map((i) => i.outcome),
      ["a:1", "b:1"],
    );
  });
});
