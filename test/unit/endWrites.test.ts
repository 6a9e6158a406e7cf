import * as assert from "node:assert/strict";
import { EndWrites, MAX_END_WRITES_PER_CALL, type EndWrite } from "../../src/store/redis/EndWrites";

type Arg = string | Buffer;

/** A cacheEndWrite that records its calls and answers each write with its revision (or as told). */
function fakeRedis(answer?: (args: Arg[]) => Promise<number[]>) {
  const calls: Arg[][] = [];
  return {
    calls,
    cacheEndWrite(...args: Arg[]): Promise<number[]> {
      calls.push(args);
      if (answer) return answer(args);
      const nKeys = Number(args[0]);
      const argv = args.slice(1 + nKeys);
      const codes: number[] = [];
      for (let i = 0; i < argv.length; i += 6) codes.push(Number(argv[i + 2]));
      return Promise.resolve(codes);
    },
  };
}

const shared = (ns: string) => ({ alive: "alive", known: `rev:${ns}`, armed: "armed" });
const write = (key: string, revision: number): EndWrite => ({
  entry: `${key}:e`,
  markers: `${key}:w`,
  token: `${key}:t`,
  writers: `${key}:lw`,
  aliveValue: "1:run",
  writerId: `w-${key}`,
  revision: String(revision),
  meta: "{}",
  bytes: Buffer.from(key),
  ttlMs: "1000",
});

describe("EndWrites: the end-writes of one turn in one script call per namespace", () => {
  it("writes ended in one turn share a call per namespace; each gets its own code", async () => {
    const redis = fakeRedis();
    const ends = new EndWrites(redis);
    const codes = await Promise.all([
      ends.end(shared("a"), write("k1", 11)),
      ends.end(shared("b"), write("k2", 12)),
      ends.end(shared("a"), write("k3", 13)),
    ]);
    assert.deepEqual(codes, [11, 12, 13]);
    assert.equal(redis.calls.length, 2);
    const [a] = redis.calls;
    assert.deepEqual(a!.slice(0, 12), ["11", "alive", "rev:a", "armed", "k1:e", "k1:w", "k1:t", "k1:lw", "k3:e", "k3:w", "k3:t", "k3:lw"]); // prettier-ignore
    assert.deepEqual(a!.slice(12, 15), ["1:run", "w-k1", "11"]);
  });

  it("writes of later turns go in later calls, and a long turn is split", async () => {
    const redis = fakeRedis();
    const ends = new EndWrites(redis);
    await ends.end(shared("a"), write("x", 1));
    await ends.end(shared("a"), write("y", 2));
    assert.equal(redis.calls.length, 2);
    const many = Array.from({ length: MAX_END_WRITES_PER_CALL + 1 }, (_, i) =>
      ends.end(shared("a"), write(`m${i}`, i)),
    );
    assert.deepEqual(await Promise.all(many), [...many.keys()]);
    assert.equal(redis.calls.length, 4);
  });

  it("a failed call (rejected, thrown, or answering too few codes) is each write's error", async () => {
    const cases: [() => Promise<number[]>, string[]][] = [
      [() => Promise.reject(new Error("down")), ["rejected", "rejected"]],
      [
        () => {
          throw new Error("thrown");
        },
        ["rejected", "rejected"],
      ],
      [() => Promise.resolve([1]), ["fulfilled", "rejected"]],
    ];
    for (const [answer, expected] of cases) {
      const ends = new EndWrites(fakeRedis(answer));
      const settled = await Promise.allSettled([
        ends.end(shared("a"), write("p", 1)),
        ends.end(shared("a"), write("q", 2)),
      ]);
      assert.deepEqual(
        settled.map((r) => r.status),
        expected,
      );
    }
  });
});
