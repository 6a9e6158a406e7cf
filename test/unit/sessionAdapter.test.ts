/**
 * The session adapter (src/grpc/pipeline/session.ts) against a stand-in
 * stream. A stream cancelled while its authentication is pending gives its
 * slot back (AGENTSTATE_MAX_SESSIONS). When the transport refuses more replies (write returns false), it
 * stops reading the caller's calls (pause) until the transport drains
 * (resume), so a caller that reads no replies cannot queue them in server
 * memory. Over a real connection this holds as long as the caller's HTTP/2
 * stream stops taking data; a Node 24 client that pauses its stream still
 * takes replies into its own memory, so the server never has to hold them.
 */
import * as assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { Metadata, type ServerDuplexStream } from "@grpc/grpc-js";
import { Logger } from "../../src/log/Logger";
import { StreamSlots } from "../../src/domain/streamSlots";
import { InvalidArgumentError } from "../../src/errors/errors";
import type { Principal } from "../../src/domain/principals";
import type { CallAuth } from "../../src/grpc/pipeline/context";
import { session, type SessionRoute } from "../../src/grpc/pipeline/session";

interface Req {
  callId: number;
  timeoutMs: number;
}
interface Res {
  callId: number;
  ok?: boolean;
}

/** A ServerDuplexStream stand-in whose transport takes `room` replies before it refuses more. */
class FakeStream extends EventEmitter {
  readonly metadata = new Metadata();
  cancelled = false;
  paused = false;
  pauses = 0;
  readonly written: Res[] = [];
  constructor(public room: number) {
    super();
  }
  sendMetadata(): void {}
  getAuthContext() {
    return {};
  }
  getDeadline() {
    return Infinity;
  }
  write(res: Res): boolean {
    this.written.push(res);
    return this.written.length < this.room;
  }
  isPaused(): boolean {
    return this.paused;
  }
  pause(): this {
    this.paused = true;
    this.pauses++;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  end(): void {}
}

describe("grpc/pipeline/session: the stream slot, and replies the caller leaves unread", () => {
  const newSlots = () =>
    new StreamSlots({ what: "Session streams", perServer: 10, perServerSetting: "AGENTSTATE_MAX_SESSIONS" });
  const route: SessionRoute<Res> = {
    rpc: "PutWrites",
    handler: async () => ({}),
    reply: (callId) => ({ callId, ok: true }),
  };
  const start = (stream: FakeStream, auth?: CallAuth, slots = newSlots()) =>
    session<Req, Res>(
      { log: new Logger("error", {}, () => undefined), shutdown: new AbortController().signal, auth },
      {
        rpc: "Session",
        maxCalls: 1000,
        maxCallsSetting: "AGENTSTATE_MAX_SESSION_CALLS",
        slots,
        route: (req) => (req.callId >= 0 ? { route, request: {} } : new InvalidArgumentError("call", "none")),
        statusReply: (callId) => ({ callId }),
      },
    )(stream as unknown as ServerDuplexStream<Req, Res>);
  const settle = () => new Promise((r) => setImmediate(r));

  it("pauses when a reply is refused by the transport, and resumes when it drains", async () => {
    const stream = new FakeStream(3);
    start(stream);
    for (let i = 0; i < 5; i++) stream.emit("data", { callId: i, timeoutMs: 0 });
    await settle();
    assert.equal(stream.written.length, 5, "every call answered");
    assert.equal(stream.paused, true, "reading stopped once the transport refused a reply");
    assert.equal(stream.pauses, 1, "paused once, not once per refused reply");
    stream.room = Infinity;
    stream.emit("drain");
    assert.equal(stream.paused, false, "reading resumed on drain");
  });

  it("does not pause while the transport takes every reply", async () => {
    const stream = new FakeStream(Infinity);
    start(stream);
    for (let i = 0; i < 50; i++) stream.emit("data", { callId: i, timeoutMs: 0 });
    await settle();
    assert.equal(stream.written.length, 50);
    assert.equal(stream.pauses, 0);
  });

  it("a stream cancelled while its authentication is pending gives its slot back", async () => {
    const slots = newSlots();
    let admit!: (p: Principal) => void;
    const auth: CallAuth = { admit: () => new Promise<Principal>((r) => (admit = r)) };
    const stream = new FakeStream(Infinity);
    start(stream, auth, slots);
    assert.equal(slots.open, 1, "the slot is taken at open");
    stream.cancelled = true;
    stream.emit("cancelled");
    admit({ name: "p", grants: [] } as unknown as Principal);
    await settle();
    assert.equal(slots.open, 0, "the slot is free again");
    assert.equal(stream.listenerCount("data"), 0, "no call is read from a cancelled stream");
  });
});
