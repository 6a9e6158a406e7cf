/**
 * The TypeScript client's CheckpointSession without a server: its streams are
 * stand-ins that record what the session writes and answer what the test
 * says, so every rule of the session (results by call_id, call ids that wrap
 * and skip ids in flight, local deadlines, aborts, stream ends, the fallback
 * to unary, the in-flight bound, rotation, close) is checked exactly. The
 * same rules against a real server: test/integration/clients.checkpointSession.test.ts.
 */
import * as assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { Metadata, status, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import {
  CheckpointSession,
  type CheckpointSessionOptions,
  type SessionDuplex,
  type SessionMethod,
} from "../../clients/typescript/src/CheckpointSession";
import {
  GetCheckpointRequest,
  PutWritesRequest,
  SessionRequest,
  type SessionResponse,
} from "../../clients/typescript/src/gen/agentstate/v1/checkpoint";
import { serviceError, sessionStatusError } from "../../clients/typescript/src/serviceError";

/** A Session stream as grpc-js hands it out, driven by the test. */
class FakeStream extends EventEmitter {
  readonly sent: SessionRequest[] = [];
  halfClosed = false;
  cancelled = false;
  write(bytes: Uint8Array): boolean {
    this.sent.push(SessionRequest.decode(bytes));
    return true;
  }
  end(): void {
    this.halfClosed = true;
  }
  cancel(): void {
    this.cancelled = true;
    this.finish(status.CANCELLED, "Cancelled on client");
  }
  answer(res: Partial<SessionResponse> & { callId: number }): void {
    this.emit("data", res);
  }
  /** The stream's status, then the end of its reading (as grpc-js: status first). */
  finish(code: status, details = ""): void {
    const st: StatusObject = { code, details, metadata: new Metadata() };
    if (code !== status.OK) this.emit("error", serviceError(code, details));
    this.emit("status", st);
    this.emit("end");
  }
  idOf(i: number): number {
    return this.sent[i]!.callId;
  }
}

const get = (threadId: string) => GetCheckpointRequest.fromPartial({ namespace: "ns", threadId });
const reply = (threadId: string) => ({ checkpoint: { threadId } }) as SessionResponse["getCheckpoint"];

function harness(opts: Partial<CheckpointSessionOptions> = {}) {
  const streams: FakeStream[] = [];
  const unary: { method: SessionMethod; request: unknown; deadlineMs: number | undefined }[] = [];
  const session = new CheckpointSession({
    open: () => {
      const s = new FakeStream();
      streams.push(s);
      return s as unknown as SessionDuplex;
    },
    unary: (method, request, options) => {
      unary.push({ method, request, deadlineMs: options.deadlineMs });
      return Promise.resolve({ unary: true } as never);
    },
    deadlineMs: 10_000,
    encode: (req) => SessionRequest.encode(req).finish(),
    maxSendBytes: 4096,
    ...opts,
  });
  return { session, streams, unary };
}

async function rejectsWith(p: Promise<unknown>, code: status): Promise<ServiceError> {
  let caught: ServiceError | undefined;
  await assert.rejects(p, (e: ServiceError) => {
    caught = e;
    return true;
  });
  assert.equal(caught?.code, code, caught?.message);
  return caught!;
}

describe("client: CheckpointSession (calls as messages on one Session stream)", () => {
  it("sends every call on one stream and answers each caller with its own result, in any order", async () => {
    const { session, streams } = harness();
    const calls = ["a", "b", "c"].map((t) => session.call("getCheckpoint", get(t)));
    assert.equal(streams.length, 1);
    const s = streams[0]!;
    assert.deepEqual(
      s.sent.map((r) => r.getCheckpoint?.threadId),
      ["a", "b", "c"],
    );
    assert.equal(new Set(s.sent.map((r) => r.callId)).size, 3, "distinct call ids");
    assert.ok(
      s.sent.every((r) => r.timeoutMs > 9_000 && r.timeoutMs <= 10_000),
      "the deadline goes as timeout_ms",
    );
    for (const i of [2, 0, 1]) s.answer({ callId: s.idOf(i), getCheckpoint: reply(["a", "b", "c"][i]!) });
    const got = await Promise.all(calls);
    assert.deepEqual(
      got.map((r) => r.checkpoint?.threadId),
      ["a", "b", "c"],
    );
    // A result for an id nothing waits for is dropped.
    s.answer({ callId: 999, getCheckpoint: reply("x") });
    session.close();
  });

  it("call ids wrap past 2^32 - 1 and skip ids still in flight", async () => {
    const { session, streams } = harness();
    const first = session.call("getCheckpoint", get("first"));
    const s = streams[0]!;
    const held = s.idOf(0); // 1, in flight
    (session as unknown as { nextId: number }).nextId = 0xffff_fffe;
    const more = [session.call("getCheckpoint", get("x")), session.call("getCheckpoint", get("y"))];
    const more2 = session.call("getCheckpoint", get("z"));
    assert.deepEqual(
      s.sent.slice(1).map((r) => r.callId),
      [0xffff_ffff, 0, held + 1],
    );
    for (const r of s.sent) s.answer({ callId: r.callId, getCheckpoint: reply(r.getCheckpoint!.threadId) });
    await Promise.all([first, ...more, more2]);
    session.close();
  });

  it("a call answered with a status rejects with grpc-js's ServiceError shape, metadata included", async () => {
    const { session, streams } = harness();
    const p = session.call("putWrites", PutWritesRequest.fromPartial({ namespace: "ns" }));
    const s = streams[0]!;
    s.answer({
      callId: s.idOf(0),
      status: {
        code: status.ABORTED,
        message: "checkpoint conflict: the parent is not the head",
        metadata: { "agentstate-reason": "CHECKPOINT_CONFLICT", "agentstate-checkpoint-head": "ck-7", "Bad Key!": "x" },
      },
    });
    const e = await rejectsWith(p, status.ABORTED);
    assert.ok(e instanceof Error);
    assert.equal(e.message, "10 ABORTED: checkpoint conflict: the parent is not the head");
    assert.equal(e.details, "checkpoint conflict: the parent is not the head");
    assert.ok(e.metadata instanceof Metadata);
    assert.deepEqual(e.metadata.get("agentstate-reason"), ["CHECKPOINT_CONFLICT"]);
    assert.deepEqual(e.metadata.get("agentstate-checkpoint-head"), ["ck-7"]);
    assert.equal(Object.keys(e.metadata.getMap()).length, 2, "a key grpc-js would refuse is left out");
    // The same shape grpc-js gives a unary call's failure.
    const direct = sessionStatusError({ code: status.INVALID_ARGUMENT, message: "thread_id: required", metadata: {} });
    assert.equal(direct.message, "3 INVALID_ARGUMENT: thread_id: required");
    session.close();
  });

  it("a call past its deadline rejects DEADLINE_EXCEEDED; its late result is dropped; the stream takes no new calls", async () => {
    const { session, streams } = harness({ deadlineMs: 30 });
    const p = session.call("getCheckpoint", get("slow"));
    await rejectsWith(p, status.DEADLINE_EXCEEDED);
    const s = streams[0]!;
    s.answer({ callId: s.idOf(0), status: { code: status.DEADLINE_EXCEEDED, message: "late", metadata: {} } });
    assert.ok(s.halfClosed, "the stream that missed a deadline is half-closed once its calls are answered");
    const next = session.call("getCheckpoint", get("next"), { deadlineMs: 1000 });
    assert.equal(streams.length, 2, "the next call opens a new stream");
    streams[1]!.answer({ callId: streams[1]!.idOf(0), getCheckpoint: reply("next") });
    assert.equal((await next).checkpoint?.threadId, "next");
    session.close();
  });

  it("a deadline past what a timer holds (Infinity) is none: timeout_ms 0, no local expiry", async () => {
    const { session, streams } = harness();
    const p = session.call("getCheckpoint", get("a"), { deadlineMs: Infinity });
    await sleep(10);
    const s = streams[0]!;
    assert.equal(s.sent[0]!.timeoutMs, 0);
    s.answer({ callId: s.idOf(0), getCheckpoint: reply("a") });
    assert.equal((await p).checkpoint?.threadId, "a");
    session.close();
  });

  it("a call past its deadline on a full stream: that stream, given up by all its callers, is cancelled; calls waiting for room go on a new one", async () => {
    const { session, streams } = harness({ maxCalls: 1 });
    const stuck = session.call("getCheckpoint", get("stuck"), { deadlineMs: 20 });
    const waiting = session.call("getCheckpoint", get("waiting"), { deadlineMs: 5_000 });
    assert.equal(streams.length, 1);
    assert.equal(streams[0]!.sent.length, 1, "the second call waits for room");
    await rejectsWith(stuck, status.DEADLINE_EXCEEDED);
    assert.equal(
      streams[0]!.cancelled,
      true,
      "a stream nobody waits on is cancelled (it would keep the process alive)",
    );
    assert.equal(streams.length, 2, "the waiting call opened a new stream");
    const s = streams[1]!;
    assert.equal(s.sent[0]!.getCheckpoint?.threadId, "waiting");
    s.answer({ callId: s.idOf(0), getCheckpoint: reply("waiting") });
    assert.equal((await waiting).checkpoint?.threadId, "waiting");
    session.close();
  });

  it("an aborted call rejects CANCELLED at once, as the unary call does; its id stays taken until the server answers", async () => {
    const { session, streams } = harness();
    const ac = new AbortController();
    const p = session.call("getCheckpoint", get("a"), { signal: ac.signal });
    const reason = new Error("stop");
    ac.abort(reason);
    await assert.rejects(p, (e: ServiceError) => e.code === status.CANCELLED);
    const s = streams[0]!;
    (session as unknown as { nextId: number }).nextId = 0; // the next id would be the aborted call's
    const q = session.call("getCheckpoint", get("b"));
    assert.notEqual(s.idOf(1), s.idOf(0));
    s.answer({ callId: s.idOf(0), getCheckpoint: reply("a") }); // dropped
    s.answer({ callId: s.idOf(1), getCheckpoint: reply("b") });
    assert.equal((await q).checkpoint?.threadId, "b");
    await assert.rejects(
      session.call("getCheckpoint", get("c"), { signal: AbortSignal.abort(reason) }),
      (e) => e === reason,
    );
    session.close();
  });

  for (const [how, code, want] of [
    ["breaks (UNAVAILABLE)", status.UNAVAILABLE, status.UNAVAILABLE],
    ["is reset (INTERNAL)", status.INTERNAL, status.INTERNAL],
    ["ends OK", status.OK, status.UNAVAILABLE],
  ] as const) {
    it(`the stream ${how}: calls without a result reject ${status[want]}; the next call opens a new stream`, async () => {
      const { session, streams } = harness();
      const done = session.call("getCheckpoint", get("done"));
      const lost = [
        session.call("getCheckpoint", get("l1")),
        session.call("putWrites", PutWritesRequest.fromPartial({})),
      ];
      const s = streams[0]!;
      s.answer({ callId: s.idOf(0), getCheckpoint: reply("done") });
      s.finish(code, "gone");
      assert.equal((await done).checkpoint?.threadId, "done");
      for (const p of lost) await rejectsWith(p, want);
      const next = session.call("getCheckpoint", get("next"));
      assert.equal(streams.length, 2);
      streams[1]!.answer({ callId: streams[1]!.idOf(0), getCheckpoint: reply("next") });
      await next;
      session.close();
    });
  }

  it("UNIMPLEMENTED before any result (a server without Session): the calls go by unary, and every later one", async () => {
    const { session, streams, unary } = harness();
    const calls = [session.call("getCheckpoint", get("a")), session.call("getCheckpoint", get("b"))];
    streams[0]!.finish(
      status.UNIMPLEMENTED,
      "The server does not implement the method /agentstate.v1.CheckpointService/Session",
    );
    assert.deepEqual(await Promise.all(calls), [{ unary: true }, { unary: true }]);
    assert.equal(session.active, false);
    await session.call("putWrites", PutWritesRequest.fromPartial({}));
    assert.equal(streams.length, 1, "never tries again");
    assert.deepEqual(
      unary.map((u) => u.method),
      ["getCheckpoint", "getCheckpoint", "putWrites"],
    );
    assert.ok(unary[0]!.deadlineMs! <= 10_000 && unary[0]!.deadlineMs! > 9_000, "with what is left of the deadline");
    session.close();
  });

  it("UNIMPLEMENTED after results came is the stream's status, not a fallback", async () => {
    const { session, streams, unary } = harness();
    const a = session.call("getCheckpoint", get("a"));
    const b = session.call("getCheckpoint", get("b"));
    const s = streams[0]!;
    s.answer({ callId: s.idOf(0), getCheckpoint: reply("a") });
    s.finish(status.UNIMPLEMENTED, "odd");
    await a;
    await rejectsWith(b, status.UNIMPLEMENTED);
    assert.equal(unary.length, 0);
    assert.equal(session.active, true);
    session.close();
  });

  it("a stream refused at open (RESOURCE_EXHAUSTED, the server's session bound): its calls go by unary, and new ones for a while", async () => {
    const { session, streams, unary } = harness();
    const calls = [session.call("getCheckpoint", get("a")), session.call("getCheckpoint", get("b"))];
    streams[0]!.finish(status.RESOURCE_EXHAUSTED, "sessions: AGENTSTATE_MAX_SESSIONS (1) reached");
    assert.deepEqual(await Promise.all(calls), [{ unary: true }, { unary: true }]);
    await session.call("getCheckpoint", get("c"));
    assert.equal(streams.length, 1, "no stream tried again at once");
    assert.equal(unary.length, 3);
    assert.equal(session.active, true, "not off for good");
    session.close();
  });

  it("a stream broken by a reply over the message limit (RESOURCE_EXHAUSTED): each call without a result gets its own outcome by unary", async () => {
    const { session, streams, unary } = harness();
    const a = session.call("getCheckpoint", get("a"));
    const big = session.call("getCheckpoint", get("big"));
    const s = streams[0]!;
    s.answer({ callId: s.idOf(0), getCheckpoint: reply("a") });
    s.finish(status.RESOURCE_EXHAUSTED, "Received message larger than max (5000000 vs. 4259840)");
    assert.equal((await a).checkpoint?.threadId, "a");
    assert.deepEqual(await big, { unary: true });
    assert.deepEqual(
      unary.map((u) => (u.request as GetCheckpointRequest).threadId),
      ["big"],
    );
    // The next call opens a new stream at once: the server did not refuse one.
    const next = session.call("getCheckpoint", get("next"));
    assert.equal(streams.length, 2);
    streams[1]!.answer({ callId: streams[1]!.idOf(0), getCheckpoint: reply("next") });
    await next;
    session.close();
  });

  it("a request over the send limit is not sent on the stream (it would end it): it goes by unary", async () => {
    const { session, streams, unary } = harness({ maxSendBytes: 100 });
    const small = session.call("getCheckpoint", get("a"));
    const big = session.call("getCheckpoint", get("b".repeat(200)));
    assert.equal(streams[0]!.sent.length, 1);
    assert.deepEqual(await big, { unary: true });
    assert.equal(unary.length, 1);
    const s = streams[0]!;
    s.answer({ callId: s.idOf(0), getCheckpoint: reply("a") });
    await small;
    session.close();
  });

  it("a call answered UNAUTHENTICATED (stale credentials) is sent once more on a new stream; a second one is its answer", async () => {
    const { session, streams } = harness();
    const unauth = { code: status.UNAUTHENTICATED, message: "token expired", metadata: {} };
    const a = session.call("getCheckpoint", get("a"));
    const b = session.call("getCheckpoint", get("b"));
    const [old] = streams;
    old!.answer({ callId: old!.idOf(0), status: unauth });
    assert.equal(streams.length, 2, "a new stream, opened with the token of the moment");
    assert.equal(streams[1]!.sent[0]!.getCheckpoint?.threadId, "a");
    old!.answer({ callId: old!.idOf(1), status: unauth });
    assert.equal(old!.halfClosed, true, "the old stream takes no new call and is half-closed");
    const fresh = streams[1]!;
    assert.deepEqual(
      fresh.sent.map((r) => r.getCheckpoint?.threadId),
      ["a", "b"],
    );
    fresh.answer({ callId: fresh.idOf(0), getCheckpoint: reply("a") });
    fresh.answer({ callId: fresh.idOf(1), status: unauth });
    assert.equal((await a).checkpoint?.threadId, "a");
    await rejectsWith(b, status.UNAUTHENTICATED);
    session.close();
  });

  it("at most maxCalls calls in flight per stream; later calls wait, first in first out", async () => {
    const { session, streams } = harness({ maxCalls: 2 });
    const calls = ["a", "b", "c", "d"].map((t) => session.call("getCheckpoint", get(t)));
    const s = streams[0]!;
    assert.equal(s.sent.length, 2);
    s.answer({ callId: s.idOf(1), getCheckpoint: reply("b") });
    assert.deepEqual(
      s.sent.map((r) => r.getCheckpoint?.threadId),
      ["a", "b", "c"],
    );
    s.answer({ callId: s.idOf(0), getCheckpoint: reply("a") });
    s.answer({ callId: s.idOf(2), getCheckpoint: reply("c") });
    s.answer({ callId: s.idOf(3), getCheckpoint: reply("d") });
    assert.deepEqual(
      (await Promise.all(calls)).map((r) => r.checkpoint?.threadId),
      ["a", "b", "c", "d"],
    );
    assert.equal(streams.length, 1);
    session.close();
  });

  it("a waiting call whose deadline passes rejects DEADLINE_EXCEEDED and is never sent", async () => {
    const { session, streams } = harness({ maxCalls: 1 });
    const a = session.call("getCheckpoint", get("a"));
    const b = session.call("getCheckpoint", get("b"), { deadlineMs: 20 });
    await rejectsWith(b, status.DEADLINE_EXCEEDED);
    const s = streams[0]!;
    s.answer({ callId: s.idOf(0), getCheckpoint: reply("a") });
    await a;
    assert.equal(s.sent.length, 1);
    session.close();
  });

  it("rotation: a stream older than maxAgeMs takes no new calls and is half-closed once its calls are answered", async () => {
    const { session, streams } = harness({ maxAgeMs: 20 });
    const a = session.call("getCheckpoint", get("a"));
    await sleep(30);
    const b = session.call("getCheckpoint", get("b"));
    assert.equal(streams.length, 2, "the old stream took no new call");
    const [old, fresh] = [streams[0]!, streams[1]!];
    assert.equal(old.halfClosed, false, "not while a call is in flight on it");
    old.answer({ callId: old.idOf(0), getCheckpoint: reply("a") });
    assert.equal(old.halfClosed, true);
    old.finish(status.OK);
    fresh.answer({ callId: fresh.idOf(0), getCheckpoint: reply("b") });
    await Promise.all([a, b]);
    assert.equal(session.openStreams, 1);
    session.close();
  });

  it("close(): calls in flight and waiting reject CANCELLED; the stream is cancelled", async () => {
    const { session, streams } = harness({ maxCalls: 1 });
    const calls = [session.call("getCheckpoint", get("a")), session.call("getCheckpoint", get("b"))];
    session.close();
    for (const p of calls) await rejectsWith(p, status.CANCELLED);
    assert.equal(streams[0]!.cancelled, true);
    assert.equal(session.openStreams, 0);
  });
});
