import * as assert from "node:assert/strict";
import { LockQueues } from "../../src/domain/lockQueues";
import { Semaphore } from "../../src/domain/semaphore";
import { LimitExceededError } from "../../src/errors/errors";

const caps = {
  perName: 2,
  perNameSetting: "AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME",
  perServer: 3,
  perServerSetting: "AGENTSTATE_MAX_LOCK_WAITERS",
};
const LONG = 60_000;
const limit = (setting: string) => (e: unknown) => e instanceof LimitExceededError && e.limit === setting;

describe("domain/lockQueues", () => {
  it("caps waiters per name and per server, naming the setting; leaving frees the place", () => {
    const q = new LockQueues(caps);
    const a1 = q.join("ns", "a");
    q.join("ns", "a");
    assert.throws(() => q.join("ns", "a"), limit("AGENTSTATE_MAX_LOCK_WAITERS_PER_NAME"));
    q.join("ns", "b");
    assert.throws(() => q.join("ns", "c"), limit("AGENTSTATE_MAX_LOCK_WAITERS"));
    assert.equal(q.waiting, 3);
    q.leave(a1);
    q.leave(a1); // idempotent
    assert.equal(q.waiting, 2);
    q.join("ns", "c");
    assert.equal(q.waitingOn("ns", "a"), 1);
  });

  it("only the head is woken by a release; when it leaves, the next becomes head in arrival order", async () => {
    const q = new LockQueues({ ...caps, perName: 10, perServer: 10 });
    const ac = new AbortController();
    const [w1, w2] = [q.join("ns", "a"), q.join("ns", "a")];
    const until = Date.now() + LONG;
    const order: string[] = [];
    const t1 = q.turn(w1, until, LONG, ac.signal).then((t) => order.push(`w1:${t}`));
    const t2 = q.turn(w2, until, LONG, ac.signal).then((t) => order.push(`w2:${t}`));
    q.wake("ns", "other"); // another name: nobody here moves
    q.wake("ns", "a");
    await t1;
    assert.deepEqual(order, ["w1:attempt"]);
    // The head got the lock: the release is spent; the next head waits for another.
    q.acquired(w1);
    q.leave(w1);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(order, ["w1:attempt"]);
    q.wake("ns", "a");
    await t2;
    assert.deepEqual(order, ["w1:attempt", "w2:attempt"]);
  });

  it("a release announced while the head is trying is not lost; a head that leaves without the lock passes it on", async () => {
    const q = new LockQueues({ ...caps, perName: 10, perServer: 10 });
    const ac = new AbortController();
    const until = Date.now() + LONG;
    const [w1, w2] = [q.join("ns", "a"), q.join("ns", "a")];
    q.wake("ns", "a"); // arrives while w1 is "trying" (not in turn())
    assert.equal(await q.turn(w1, until, LONG, ac.signal), "attempt");
    q.wake("ns", "a");
    // w1 gives up (its deadline) without taking the lock: w2 tries at once.
    const t2 = q.turn(w2, until, LONG, ac.signal);
    q.leave(w1);
    assert.equal(await t2, "attempt");
  });

  it("the head polls every pollMs without a release; a waiter's turn times out at `until` and on abort", async () => {
    const q = new LockQueues({ ...caps, perName: 10, perServer: 10 });
    const ac = new AbortController();
    const w1 = q.join("ns", "a");
    const w2 = q.join("ns", "a");
    assert.equal(await q.turn(w1, Date.now() + LONG, 30, ac.signal), "attempt");
    assert.equal(await q.turn(w2, Date.now() + 30, LONG, ac.signal), "timeout");
    const t = q.turn(w2, Date.now() + LONG, LONG, ac.signal);
    ac.abort();
    assert.equal(await t, "timeout");
  });
});

describe("domain/semaphore", () => {
  it("grants at most `permits` at once, in arrival order; an aborted taker leaves the line", async () => {
    const s = new Semaphore(1);
    const ac = new AbortController();
    const r1 = await s.take(ac.signal);
    assert.ok(r1);
    const gone = new AbortController();
    const p2 = s.take(gone.signal);
    const p3 = s.take(ac.signal);
    assert.equal(s.inUse, 1);
    gone.abort();
    assert.equal(await p2, undefined);
    r1();
    r1(); // idempotent
    const r3 = await p3;
    assert.ok(r3);
    assert.equal(s.inUse, 1);
    r3();
    assert.equal(s.inUse, 0);
  });
});
