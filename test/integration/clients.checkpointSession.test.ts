/**
 * The TypeScript client's checkpoint calls on one CheckpointService.Session
 * stream (CheckpointSession), against real server processes and real
 * Postgres: the same results and errors as the unary calls (the saver's
 * mapping reads code, agentstate-reason, agentstate-checkpoint-head,
 * agentstate-field), really on one stream; 64 concurrent calls of one client,
 * some failing, each answered to its own caller; a server SIGKILLed with
 * calls in flight (every caller answered, the next call on a new stream after
 * the restart); a server without Session (unary fallback); a stream refused at
 * open (the server's session bound: unary for those calls); a JWT expiring
 * while its stream is open (the call sent again on a new stream with the
 * fresh token); the local deadline
 * with the server process stopped (SIGSTOP); rotation of old streams.
 * Streams are counted by a grpc-js client interceptor on the client.
 */
import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import {
  InterceptingCall,
  Metadata,
  Server,
  ServerCredentials,
  status,
  type handleUnaryCall,
  type Interceptor,
  type ServiceError,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { AgentstateClient, type AgentstateClientOptions } from "../../clients/typescript/src/AgentstateClient";
import {
  CheckpointServiceService,
  SessionRequest,
  type GetCheckpointResponse,
  type PutCheckpointRequest,
  type SessionResponse,
} from "../../clients/typescript/src/gen/agentstate/v1/checkpoint";
import type { DeepPartial } from "../../clients/typescript/src/gen/agentstate/v1/common";
import { JwtKeys } from "../support/authFixture";
import { CheckpointClient } from "../support/checkpointClient";
import { eventually } from "../support/eventually";
import { ServerProcess } from "../support/ServerProcess";
import { startCluster, type Cluster } from "../support/startCluster";

const SESSION = "/agentstate.v1.CheckpointService/Session";
const UNARY = ["PutCheckpoint", "PutWrites", "GetCheckpoint"].map((m) => `/agentstate.v1.CheckpointService/${m}`);

/** Calls a client opened, by method path, and how each ended. */
class CallLog {
  readonly opened = new Map<string, number>();
  readonly ended: { path: string; code: status }[] = [];
  readonly interceptor: Interceptor = (options, nextCall) => {
    const path = options.method_definition.path;
    this.opened.set(path, (this.opened.get(path) ?? 0) + 1);
    return new InterceptingCall(nextCall(options), {
      start: (metadata, _listener, next) => {
        next(metadata, {
          onReceiveStatus: (st, nextStatus) => {
            this.ended.push({ path, code: st.code });
            nextStatus(st);
          },
        });
      },
    });
  };
  count(path: string): number {
    return this.opened.get(path) ?? 0;
  }
  unary(): number {
    return UNARY.reduce((n, p) => n + this.count(p), 0);
  }
}

const NS = "session";
const id = (i: number) => `ck-${String(i).padStart(4, "0")}`;
const thread = () => `t-${randomBytes(5).toString("hex")}`;

/** Step i of `threadId` (parent step i - 1), strict. */
function putReq(threadId: string, i: number, over: DeepPartial<PutCheckpointRequest> = {}) {
  const version = `${String(i).padStart(32, "0")}.5`;
  return {
    namespace: NS,
    threadId,
    checkpointNs: "",
    checkpointId: id(i),
    parentCheckpointId: i === 1 ? "" : id(i - 1),
    document: { type: "json", data: Buffer.from(JSON.stringify({ id: id(i) })) },
    metadataJson: Buffer.from(JSON.stringify({ step: i })),
    channelVersions: { messages: version },
    values: [{ channel: "messages", version, value: { type: "json", data: Buffer.from(`["m${i}"]`) } }],
    requireParentIsHead: true,
    ...over,
  } as DeepPartial<PutCheckpointRequest>;
}
const writesReq = (threadId: string, i: number, task: string) => ({
  namespace: NS,
  threadId,
  checkpointNs: "",
  checkpointId: id(i),
  taskId: task,
  writes: [{ channel: "out", value: { type: "json", data: Buffer.from(`"${task}"`) } }],
});

async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  assert.fail("expected the call to fail");
}

/** What the saver's error mapping (clients/typescript-langgraph/src/AgentstateSaver.ts, call()) reads. */
const meta = (e: ServiceError, key: string) => e.metadata?.get(key)[0];

/** A reply with the thread id and time taken out, to compare two threads' results. */
const sameShape = (r: GetCheckpointResponse) => {
  const c = r.checkpoint!;
  return { ...c, threadId: "", createTime: undefined };
};

describe("TypeScript client: checkpoint calls on one Session stream (real server, real Postgres)", function () {
  this.timeout(180_000);
  let cluster: Cluster;
  const clients: AgentstateClient[] = [];
  const client = (opts: AgentstateClientOptions = {}, address = cluster.servers[0]!.address) => {
    const c = new AgentstateClient(address, opts);
    clients.push(c);
    return c;
  };

  before(async () => {
    cluster = await startCluster({ name: "checkpoint_session" });
  });
  after(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it("puts, putWrites and gets give what the unary calls give, all on one stream; a call with its own metadata goes by unary", async () => {
    const log = new CallLog();
    const sess = client({ interceptors: [log.interceptor] });
    const plain = client({ checkpointSession: false });
    const results = async (c: AgentstateClient, t: string) => {
      const out: unknown[] = [];
      for (let i = 1; i <= 3; i++) out.push(await c.putCheckpoint(putReq(t, i)));
      out.push(await c.putWrites(writesReq(t, 3, "task-a")));
      out.push(await c.putWrites(writesReq(t, 3, "task-a"))); // idempotent
      out.push(sameShape(await c.getCheckpoint({ namespace: NS, threadId: t })));
      out.push(sameShape(await c.getCheckpoint({ namespace: NS, threadId: t, checkpointId: id(2) })));
      out.push(await c.getCheckpoint({ namespace: NS, threadId: t, checkpointId: "nope" }));
      return out;
    };
    const [a, b] = [thread(), thread()];
    assert.deepEqual(await results(sess, a), await results(plain, b));
    assert.equal(log.count(SESSION), 1, "one Session stream");
    assert.equal(log.unary(), 0, "no unary checkpoint call");
    await sess.getCheckpoint({ namespace: NS, threadId: a }, { metadata: new Metadata() });
    assert.equal(log.count("/agentstate.v1.CheckpointService/GetCheckpoint"), 1);
    // The generated client's own session() still takes SessionRequest messages.
    const raw = sess.checkpoints.session(new Metadata(), {});
    raw.write(
      SessionRequest.fromPartial({ callId: 7, timeoutMs: 5000, getCheckpoint: { namespace: NS, threadId: a } }),
    );
    const [res] = (await once(raw, "data")) as [SessionResponse];
    raw.end();
    assert.equal(res.callId, 7);
    assert.equal(res.getCheckpoint?.checkpoint?.checkpointId, id(3));
  });

  it("64 concurrent calls of one client, some refused (strict conflicts, bad input): each caller gets its own outcome", async () => {
    const log = new CallLog();
    const c = client({ interceptors: [log.interceptor] });
    const threads = Array.from({ length: 64 }, () => thread());
    // Every thread but the first quarter has step 1 already.
    await Promise.all(threads.slice(16).map((t) => c.putCheckpoint(putReq(t, 1))));
    const outcomes = await Promise.all(
      threads.map(async (t, i) => {
        switch (i % 4) {
          case 0: // a new step on its own thread (a new thread for the first quarter)
            return i < 16
              ? assert.deepEqual(await c.putCheckpoint(putReq(t, 1)), { created: true, headCheckpointId: id(1) })
              : assert.equal((await c.putCheckpoint(putReq(t, 2))).headCheckpointId, id(2));
          case 1: // a read of its own thread
            if (i < 16) return assert.equal((await c.getCheckpoint({ namespace: NS, threadId: t })).found, false);
            return assert.equal((await c.getCheckpoint({ namespace: NS, threadId: t })).checkpoint?.threadId, t);
          case 2: {
            // a strict put whose parent is not the head: the saver's CheckpointConflictError, with the head
            if (i < 16) return assert.ok(await c.putWrites(writesReq(threads[20]!, 1, `task-${i}`)));
            const e = await failure(c.putCheckpoint(putReq(t, 3)));
            assert.equal(e.code, status.ABORTED, e.message);
            assert.equal(meta(e, "agentstate-reason"), "CHECKPOINT_CONFLICT");
            assert.equal(meta(e, "agentstate-checkpoint-head"), id(1));
            return assert.match(e.message, /^10 ABORTED: /);
          }
          default: {
            // bad input: the saver's CheckpointInputError, naming the field
            const e = await failure(c.putCheckpoint(putReq(t, 2, { threadId: "" })));
            assert.equal(e.code, status.INVALID_ARGUMENT, e.message);
            assert.equal(meta(e, "agentstate-field"), "thread_id");
            return assert.equal(e.message, `3 INVALID_ARGUMENT: ${e.details}`);
          }
        }
      }),
    );
    assert.equal(outcomes.length, 64);
    assert.equal(log.count(SESSION), 1, "one Session stream");
    assert.equal(log.unary(), 0);
    // Nothing of the refused calls was written.
    for (const [i, t] of threads.entries()) {
      if (i < 16 || i % 4 < 2) continue;
      const got = await c.getCheckpoint({ namespace: NS, threadId: t });
      assert.equal(got.checkpoint?.checkpointId, id(1), t);
    }
  });

  for (const [signal, how] of [
    ["SIGKILL", "killed (SIGKILL: the connection is lost)"],
    ["SIGTERM", "shut down (SIGTERM: calls in flight answered, later ones UNAVAILABLE, the stream ends UNAVAILABLE)"],
  ] as const)
    it(`the server ${how} with calls in flight: every caller gets a result or UNAVAILABLE; after the restart the next call succeeds on a new stream`, async () => {
      const server = await ServerProcess.start(cluster.env);
      const log = new CallLog();
      const c = client({ interceptors: [log.interceptor], deadlineMs: 60_000 }, server.address);
      let done = 0;
      const errors: ServiceError[] = [];
      const workers = Array.from({ length: 16 }, async () => {
        const t = thread();
        for (let i = 1; ; i++) {
          try {
            await c.putCheckpoint(putReq(t, i));
            await c.putWrites(writesReq(t, i, "task"));
            done++;
          } catch (e) {
            errors.push(e as ServiceError);
            return;
          }
        }
      });
      while (done < 50) await sleep(10);
      await server.kill(signal);
      // None hangs: each worker ends with its call's error, far before its deadline.
      const guard = new AbortController();
      const settled = await Promise.race([
        Promise.all(workers).then(() => true),
        sleep(30_000, false, { signal: guard.signal }),
      ]).finally(() => guard.abort());
      assert.ok(settled, "every call in flight was answered");
      assert.equal(errors.length, 16);
      for (const e of errors) assert.equal(e.code, status.UNAVAILABLE, e.message);
      const restarted = await ServerProcess.start({ ...cluster.env, AGENTSTATE_PORT: String(server.port) });
      try {
        const t = thread();
        assert.equal((await c.putCheckpoint(putReq(t, 1))).created, true);
        assert.equal((await c.getCheckpoint({ namespace: NS, threadId: t })).checkpoint?.checkpointId, id(1));
        assert.equal(log.count(SESSION), 2, "a new stream");
        assert.equal(log.unary(), 0);
      } finally {
        c.close();
        await restarted.stop();
      }
    });

  it("a server without Session (a forwarder serving only the unary calls): calls succeed by unary, Session is tried once", async () => {
    const upstream = new CheckpointClient(cluster.servers[0]!.address);
    const forwarder = new Server();
    const impl: UntypedServiceImplementation = {};
    for (const method of ["putCheckpoint", "putWrites", "getCheckpoint"] as const) {
      const forward: handleUnaryCall<unknown, unknown> = (call, cb) => {
        const fn = upstream.raw[method] as unknown as (
          req: unknown,
          md: Metadata,
          opts: object,
          cb: (err: ServiceError | null, res: unknown) => void,
        ) => void;
        fn.call(upstream.raw, call.request, new Metadata(), {}, (err, res) => cb(err, res));
      };
      impl[method] = forward;
    }
    forwarder.addService(CheckpointServiceService, impl); // Session: grpc-js answers UNIMPLEMENTED
    const port = await new Promise<number>((resolve, reject) =>
      forwarder.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const log = new CallLog();
    const c = client({ interceptors: [log.interceptor] }, `127.0.0.1:${port}`);
    try {
      const t = thread();
      const [first, second] = await Promise.all([
        c.putCheckpoint(putReq(t, 1)),
        c.getCheckpoint({ namespace: NS, threadId: t }),
      ]);
      assert.equal(first.created, true);
      assert.ok(second.found === false || second.checkpoint?.checkpointId === id(1));
      await c.putWrites(writesReq(t, 1, "task"));
      const e = await failure(c.putCheckpoint(putReq(t, 5)));
      assert.equal(meta(e, "agentstate-reason"), "CHECKPOINT_CONFLICT");
      assert.equal((await c.getCheckpoint({ namespace: NS, threadId: t })).checkpoint?.pendingWrites.length, 1);
      assert.equal(log.count(SESSION), 1, "Session tried once");
      assert.equal(log.unary(), 5, "the two calls that met UNIMPLEMENTED, then every call, by unary");
    } finally {
      c.close();
      upstream.close();
      forwarder.forceShutdown();
    }
  });

  it("a stream refused at open (AGENTSTATE_MAX_SESSIONS reached): the calls succeed by unary", async () => {
    const server = await ServerProcess.start({ ...cluster.env, AGENTSTATE_MAX_SESSIONS: "1" });
    const holderLog = new CallLog();
    const holder = client({ interceptors: [holderLog.interceptor] }, server.address);
    const log = new CallLog();
    const c = client({ interceptors: [log.interceptor] }, server.address);
    try {
      const t = thread();
      await holder.putCheckpoint(putReq(t, 1)); // holds the one session (closed only after ~1 s idle)
      const [put, got] = await Promise.all([
        c.putCheckpoint(putReq(t, 2)),
        c.getCheckpoint({ namespace: NS, threadId: t, checkpointId: id(1) }),
      ]);
      assert.equal(put.headCheckpointId, id(2));
      assert.equal(got.checkpoint?.checkpointId, id(1));
      assert.equal(holderLog.count(SESSION), 1);
      assert.equal(log.count(SESSION), 1, "one stream tried, refused");
      assert.equal(log.unary(), 2, "both calls by unary");
      assert.deepEqual(
        log.ended.filter((x) => x.path === SESSION).map((x) => x.code),
        [status.RESOURCE_EXHAUSTED],
      );
    } finally {
      c.close();
      holder.close();
      await server.stop();
    }
  });

  it("a JWT that expires while its stream is open: the call answered UNAUTHENTICATED is sent again on a new stream with the fresh token", async () => {
    const jwt = new JwtKeys();
    const server = await ServerProcess.start({
      ...cluster.env,
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_BOOTSTRAP_TOKEN: `boot-${randomBytes(16).toString("hex")}`,
      ...jwt.env(),
    });
    const grants = [{ namespace: NS, roles: ["read", "write"] }];
    let token = await jwt.sign("agent", grants, { expiresInS: 2 });
    const log = new CallLog();
    const c = client({ interceptors: [log.interceptor], token: () => token }, server.address);
    try {
      const t = thread();
      await c.putCheckpoint(putReq(t, 1));
      const expiresAt = Date.now() + 3000;
      token = await jwt.sign("agent", grants);
      // Calls every 100 ms keep the first stream busy (not idle-closed) until past the first token's expiry.
      let i = 1;
      while (Date.now() < expiresAt + 500) {
        assert.equal((await c.getCheckpoint({ namespace: NS, threadId: t })).checkpoint?.checkpointId, id(i));
        i++;
        assert.equal((await c.putCheckpoint(putReq(t, i))).headCheckpointId, id(i));
        await sleep(100);
      }
      assert.equal(log.count(SESSION), 2, "the stream of the expired token was replaced once");
      assert.equal(log.unary(), 0);
    } finally {
      c.close();
      await server.stop();
      jwt.remove();
    }
  });

  it("a call whose server is stalled (process stopped) rejects DEADLINE_EXCEEDED at its deadline; the next call succeeds on a new stream", async () => {
    const server = await ServerProcess.start(cluster.env);
    const log = new CallLog();
    const c = client({ interceptors: [log.interceptor] }, server.address);
    const t = thread();
    try {
      await c.putCheckpoint(putReq(t, 1));
      process.kill(server.pid!, "SIGSTOP");
      try {
        const started = performance.now();
        // Bounded here so that a missing local deadline fails the test instead of hanging it.
        const guard = new AbortController();
        const e = await Promise.race([
          failure(c.getCheckpoint({ namespace: NS, threadId: t }, { deadlineMs: 500 })),
          sleep(20_000, undefined, { signal: guard.signal }).then(() => assert.fail("no answer in 20 s")),
        ]).finally(() => guard.abort());
        assert.equal(e.code, status.DEADLINE_EXCEEDED, e.message);
        assert.equal(e.message, "4 DEADLINE_EXCEEDED: Deadline exceeded");
        assert.ok(performance.now() - started < 10_000, "ended by the local deadline, not by the server");
      } finally {
        process.kill(server.pid!, "SIGCONT");
      }
      assert.equal((await c.getCheckpoint({ namespace: NS, threadId: t })).checkpoint?.checkpointId, id(1));
      assert.equal(log.count(SESSION), 2, "the stream that missed a deadline took no new call");
    } finally {
      c.close();
      await server.stop();
    }
  });

  it("rotation: with sessionMaxAgeMs small, calls keep succeeding across new streams and the old ones are ended (OK)", async () => {
    const log = new CallLog();
    const c = client({ interceptors: [log.interceptor], sessionMaxAgeMs: 100 });
    const until = performance.now() + 1200;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const t = thread();
        for (let i = 1; performance.now() < until; i++) {
          assert.equal((await c.putCheckpoint(putReq(t, i))).headCheckpointId, id(i));
          await c.putWrites(writesReq(t, i, "task"));
        }
      }),
    );
    const opened = log.count(SESSION);
    assert.ok(opened >= 4, `streams opened: ${opened}`);
    // Every stream but the current one is half-closed by the client once its calls are answered, and ended OK by the server.
    const ended = await eventually(`${opened - 1} streams ended`, async () => {
      const e = log.ended.filter((x) => x.path === SESSION);
      return e.length >= opened - 1 && e;
    });
    assert.ok(
      ended.every((x) => x.code === status.OK),
      JSON.stringify(ended),
    );
    assert.equal(log.unary(), 0);
  });
});
