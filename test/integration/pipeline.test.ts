/**
 * The call pipeline (src/grpc/pipeline) over real gRPC on loopback, with
 * handlers written for the test instead of stores: one "rpc" line and one
 * metrics observation per call, with the code the caller saw; the
 * x-request-id echo; errors through the one table; and termination (caller
 * gone, shutdown) for unary and server-streaming calls alike.
 */
import * as assert from "node:assert/strict";
import { credentials, Metadata, Server, ServerCredentials, status, type ServiceError } from "@grpc/grpc-js";
import { abortError, AbortReason } from "../../src/errors/abort";
import { InvalidArgumentError } from "../../src/errors/errors";
import {
  EventServiceClient,
  EventServiceService,
  SubscribeRequest,
  type SubscribeResponse,
} from "../../src/gen/agentstate/v1/event";
import { GetRequest, GetResponse, KeyValueServiceClient, KeyValueServiceService } from "../../src/gen/agentstate/v1/kv";
import type { CallEnv } from "../../src/grpc/pipeline/context";
import { serverStream } from "../../src/grpc/pipeline/serverStream";
import { unary } from "../../src/grpc/pipeline/unary";
import { Logger } from "../../src/log/Logger";
import { eventually } from "../support/eventually";

const untilAborted = (s: AbortSignal) => new Promise<void>((r) => s.addEventListener("abort", () => r()));

describe("grpc/pipeline over real gRPC (handlers without stores)", function () {
  this.timeout(20_000);
  const lines: Record<string, unknown>[] = [];
  const observed: string[] = [];
  const shutdown = new AbortController();
  const env: CallEnv = {
    log: new Logger("info", { service: "t" }, (l) => lines.push(JSON.parse(l) as Record<string, unknown>)),
    shutdown: shutdown.signal,
    observe: (rpc, code) => observed.push(`${rpc} ${code}`),
  };
  let server: Server;
  let kv: InstanceType<typeof KeyValueServiceClient>;
  let events: InstanceType<typeof EventServiceClient>;
  let n = 0;

  before(async () => {
    server = new Server();
    server.addService(KeyValueServiceService, {
      get: unary<GetRequest, GetResponse>("Get", env, async (req, ctx) => {
        switch (req.key) {
          case "invalid":
            throw new InvalidArgumentError("key", "is not to this test's liking");
          case "boom":
            throw new Error("a detail callers must not see");
          case "wait": // returns normally once the caller has gone, as a lock wait that times out does
            await untilAborted(ctx.signal);
            return GetResponse.fromPartial({ found: false });
          case "long-wait":
            await untilAborted(ctx.longWaitSignal);
            throw abortError(ctx.longWaitSignal, "nothing was done");
          default:
            return GetResponse.fromPartial({ header: { revision: 7 }, found: false });
        }
      }),
    });
    server.addService(EventServiceService, {
      // Like runSubscription: ends normally when told to stop.
      subscribe: serverStream<SubscribeRequest, SubscribeResponse>("Subscribe", env, 5_000, async (_req, ctx) => {
        await ctx.send({ caughtUp: { position: 1 } });
        await untilAborted(ctx.longWaitSignal);
      }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    kv = new KeyValueServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    events = new EventServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  });
  after(() => {
    kv?.close();
    events?.close();
    server?.forceShutdown();
  });

  /** Calls Get with a fresh x-request-id; resolves with the outcome, the echoed id and the id sent. */
  const get = (key: string, opts: { deadlineMs?: number; cancelAfterMs?: number } = {}) => {
    const requestId = `pipe-${++n}`;
    const md = new Metadata();
    md.set("x-request-id", requestId);
    return new Promise<{ err: ServiceError | null; echoed: unknown; requestId: string }>((resolve) => {
      let echoed: unknown;
      const callOpts = opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs };
      const call = kv.get(GetRequest.fromPartial({ namespace: "ns", key }), md, callOpts, (err) =>
        resolve({ err, echoed, requestId }),
      );
      call.on("metadata", (m: Metadata) => (echoed = m.get("x-request-id")[0]));
      if (opts.cancelAfterMs !== undefined) setTimeout(() => call.cancel(), opts.cancelAfterMs);
    });
  };

  /** The "rpc" line of the call with `requestId`, once the server has ended it. */
  const rpcLine = (requestId: string) =>
    eventually(`the rpc line of ${requestId}`, async () =>
      lines.find((l) => l.msg === "rpc" && l.request_id === requestId),
    );

  it("a call that returns: OK, the x-request-id echo, one rpc line and one observation", async () => {
    const before = observed.length;
    const { err, echoed, requestId } = await get("ok");
    assert.equal(err, null);
    assert.equal(echoed, requestId);
    const line = await rpcLine(requestId);
    assert.deepEqual(
      { ...line, time: undefined, ms: typeof line.ms },
      {
        level: "info",
        time: undefined,
        service: "t",
        request_id: requestId,
        rpc: "Get",
        code: "OK",
        ms: "number",
        msg: "rpc",
      },
    );
    assert.equal(lines.filter((l) => l.request_id === requestId).length, 1);
    assert.deepEqual(observed.slice(before), ["Get OK"]);
  });

  it("what a handler throws goes through the one table; an unknown error is INTERNAL, its detail logged only", async () => {
    const invalid = await get("invalid");
    assert.equal(invalid.err?.code, status.INVALID_ARGUMENT);
    assert.deepEqual(invalid.err?.metadata.get("agentstate-field"), ["key"]);
    assert.equal(invalid.echoed, invalid.requestId, "the echo goes with an error too");
    assert.equal((await rpcLine(invalid.requestId)).code, "INVALID_ARGUMENT");

    const boom = await get("boom");
    assert.equal(boom.err?.code, status.INTERNAL);
    assert.equal(boom.err?.details, "internal error");
    assert.equal((await rpcLine(boom.requestId)).code, "INTERNAL");
    const logged = lines.find((l) => l.msg === "internal error" && l.request_id === boom.requestId);
    assert.equal(logged?.error, "a detail callers must not see");
    assert.equal(logged?.rpc, "Get");
  });

  it("a unary call whose caller has gone counts with the code the caller saw, even if the handler then returns", async () => {
    const late = await get("wait", { deadlineMs: 300 });
    assert.equal(late.err?.code, status.DEADLINE_EXCEEDED);
    assert.equal((await rpcLine(late.requestId)).code, "DEADLINE_EXCEEDED");
    const cancelled = await get("wait", { cancelAfterMs: 200 });
    assert.equal(cancelled.err?.code, status.CANCELLED);
    assert.equal((await rpcLine(cancelled.requestId)).code, "CANCELLED");
    assert.ok(observed.includes("Get DEADLINE_EXCEEDED") && observed.includes("Get CANCELLED"));
  });

  /** Opens a subscription with a fresh x-request-id; resolves once it has ended. */
  const subscribe = (opts: { deadlineMs?: number; onFirst?: () => void } = {}) => {
    const requestId = `pipe-${++n}`;
    const md = new Metadata();
    md.set("x-request-id", requestId);
    const callOpts = opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs };
    const call = events.subscribe(SubscribeRequest.fromPartial({ namespace: "ns", stream: "s" }), md, callOpts);
    return new Promise<{ code: status; requestId: string }>((resolve) => {
      call.once("data", () => opts.onFirst?.());
      call.on("error", (e: ServiceError) => resolve({ code: e.code, requestId }));
      call.on("end", () => resolve({ code: status.OK, requestId }));
    });
  };

  it("a stream ended by its caller's deadline counts DEADLINE_EXCEEDED, not OK", async () => {
    const s = await subscribe({ deadlineMs: 500 });
    assert.equal(s.code, status.DEADLINE_EXCEEDED);
    assert.equal((await rpcLine(s.requestId)).code, "DEADLINE_EXCEEDED");
    assert.ok(observed.includes("Subscribe DEADLINE_EXCEEDED"));
  });

  it("shutdown ends long waits with UNAVAILABLE: a stream that then ends normally, and a unary wait", async () => {
    let first!: () => void;
    const started = new Promise<void>((r) => (first = r));
    const stream = subscribe({ onFirst: () => first() });
    const wait = get("long-wait");
    await started;
    shutdown.abort(new AbortReason("shutdown"));
    const [s, w] = await Promise.all([stream, wait]);
    assert.equal(s.code, status.UNAVAILABLE);
    assert.equal((await rpcLine(s.requestId)).code, "UNAVAILABLE");
    assert.equal(w.err?.code, status.UNAVAILABLE);
    assert.equal((await rpcLine(w.requestId)).code, "UNAVAILABLE");
  });
});
