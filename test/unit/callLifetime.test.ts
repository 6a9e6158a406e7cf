import * as assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { AbortReason } from "../../src/errors/abort";
import { CallLifetime, DEADLINE_SLACK_MS } from "../../src/grpc/pipeline/callLifetime";

/** The part of a grpc-js server call that CallLifetime uses. */
class FakeCall extends EventEmitter {
  cancelled = false;
  constructor(private readonly deadline: Date | number) {
    super();
  }
  getDeadline() {
    return this.deadline;
  }
  cancel() {
    this.cancelled = true;
    this.emit("cancelled", "cancelled");
  }
}

const kindOf = (s: AbortSignal) => (s.reason as AbortReason).kind;

describe("CallLifetime: the call's signal, made on first use", () => {
  it("adds no listener until the signal is read", () => {
    const call = new FakeCall(Infinity);
    const w = new CallLifetime(call);
    assert.equal(call.listenerCount("cancelled"), 0);
    assert.equal(w.deadline, undefined);
    assert.equal(w.signal.aborted, false);
    assert.equal(call.listenerCount("cancelled"), 1);
    w.dispose();
    assert.equal(call.listenerCount("cancelled"), 0);
  });

  it("aborts with 'cancelled' when the caller cancels after the signal was read", () => {
    const call = new FakeCall(Infinity);
    const w = new CallLifetime(call);
    const s = w.signal;
    call.cancel();
    assert.equal(s.aborted, true);
    assert.equal(kindOf(s), "cancelled");
    w.dispose();
  });

  it("a signal first read after the call was cancelled starts aborted", () => {
    const call = new FakeCall(Infinity);
    const w = new CallLifetime(call);
    call.cancel();
    assert.equal(w.signal.aborted, true);
    assert.equal(kindOf(w.signal), "cancelled");
    w.dispose();
  });

  it("a signal first read after the deadline starts aborted with 'deadline'", () => {
    const call = new FakeCall(new Date(Date.now() - 10));
    const w = new CallLifetime(call);
    assert.equal(w.signal.aborted, true);
    assert.equal(kindOf(w.signal), "deadline");
    w.dispose();
  });

  it("aborts with 'deadline' when the deadline passes", async () => {
    const call = new FakeCall(new Date(Date.now() + 20));
    const w = new CallLifetime(call);
    const s = w.signal;
    await new Promise<void>((resolve) => s.addEventListener("abort", () => resolve(), { once: true }));
    assert.equal(kindOf(s), "deadline");
    w.dispose();
  });

  it("gone(): undefined while the caller waits, then why it left, making no signal or listener", () => {
    const call = new FakeCall(Infinity);
    const w = new CallLifetime(call);
    assert.equal(w.gone(), undefined);
    call.cancel();
    assert.equal(w.gone()?.kind, "cancelled");
    assert.equal(call.listenerCount("cancelled"), 0, "gone() adds no listener");
    w.dispose();
  });

  it("gone(): 'deadline' once the deadline has passed, also when grpc-js reports it as a cancellation", () => {
    const past = new CallLifetime(new FakeCall(new Date(Date.now() - 10)));
    assert.equal(past.gone()?.kind, "deadline");
    const call = new FakeCall(new Date(Date.now() - 10));
    const w = new CallLifetime(call);
    call.cancel();
    assert.equal(w.gone()?.kind, "deadline");
    const future = new CallLifetime(new FakeCall(new Date(Date.now() + 60_000)));
    assert.equal(future.gone(), undefined);
  });

  it("a cancel that arrives just before the server's deadline is the caller's deadline (it counts from a later start)", () => {
    const near = new FakeCall(new Date(Date.now() + DEADLINE_SLACK_MS / 2));
    const w = new CallLifetime(near);
    near.cancel();
    assert.equal(w.gone()?.kind, "deadline");
    const early = new FakeCall(new Date(Date.now() + 60_000));
    const e = new CallLifetime(early);
    early.cancel();
    assert.equal(e.gone()?.kind, "cancelled");
  });

  it("gone() agrees with a signal already read", () => {
    const call = new FakeCall(Infinity);
    const w = new CallLifetime(call);
    const s = w.signal;
    call.cancel();
    assert.equal(s.aborted, true);
    assert.equal(w.gone(), s.reason);
    w.dispose();
  });
});
