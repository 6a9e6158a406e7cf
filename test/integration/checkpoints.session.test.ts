/**
 * CheckpointService.Session against real server processes and real Postgres:
 * each call on the stream is its unary RPC (same reply, same status and
 * agentstate-* trailers, same access rule per call with the stream's
 * credentials), answered by call id whatever order calls finish in; the
 * bounds (calls in flight per stream, open streams per server), a duplicate
 * call id and a call carrying no request are refused on their own, changing
 * nothing; a call's timeout ends it DEADLINE_EXCEEDED; a half-close answers
 * the calls in flight then ends OK; shutdown answers the calls in flight,
 * refuses later ones UNAVAILABLE and ends the stream UNAVAILABLE; a message
 * that does not decode ends the stream with INVALID_ARGUMENT. (Replies a caller
 * leaves unread: test/unit/sessionAdapter.test.ts.)
 */
import * as assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { credentials, Metadata, status, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import {
  CheckpointServiceClient,
  type DeepPartial,
  SessionRequest,
  type SessionResponse,
  type PutCheckpointRequest,
} from "../../clients/typescript/src/gen/agentstate/v1/checkpoint";
import { createToken } from "../support/authFixture";
import { CheckpointClient } from "../support/checkpointClient";
import { holdRowLock } from "../support/holdRowLock";
import { pgQuery } from "../support/pgQuery";
import { RpcByName } from "../support/rpcByName";
import { startCluster, type Cluster } from "../support/startCluster";

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

function putReq(
  ns: string,
  thread: string,
  id: string,
  parent: string,
  strict = false,
): DeepPartial<PutCheckpointRequest> {
  return {
    namespace: ns,
    threadId: thread,
    checkpointNs: "",
    checkpointId: id,
    parentCheckpointId: parent,
    document: { type: "json", data: json({ id }) },
    metadataJson: json({ step: 1 }),
    channelVersions: { messages: id },
    values: [{ channel: "messages", version: id, value: { type: "json", data: json([id]) } }],
    requireParentIsHead: strict,
  };
}

/** A raw Session stream: calls by id, results matched by id, how the stream ended. */
class RawSession {
  readonly stream: ClientDuplexStream<SessionRequest, SessionResponse>;
  readonly ended: Promise<ServiceError | null>;
  private readonly waiting = new Map<number, (r: SessionResponse) => void>();
  readonly unmatched: SessionResponse[] = [];
  /** Sees each result first; true keeps it from the call waiting on its id. */
  intercept: ((r: SessionResponse) => boolean) | undefined;

  constructor(
    readonly client: CheckpointServiceClient,
    md = new Metadata(),
  ) {
    this.stream = client.session(md);
    this.stream.on("data", (r: SessionResponse) => {
      if (this.intercept?.(r)) return;
      const w = this.waiting.get(r.callId);
      if (w === undefined) {
        this.unmatched.push(r);
        return;
      }
      this.waiting.delete(r.callId);
      w(r);
    });
    this.ended = new Promise((resolve) => {
      this.stream.on("error", (e: ServiceError) => resolve(e));
      this.stream.on("status", (s: { code: status }) => {
        if (s.code === status.OK) resolve(null);
      });
    });
  }

  /** Sends a call; resolves with its result (a second call with an id in flight resolves the first waiter). */
  call(req: DeepPartial<SessionRequest>): Promise<SessionResponse> {
    const msg = SessionRequest.fromPartial(req);
    const p = new Promise<SessionResponse>((resolve) => this.waiting.set(msg.callId, resolve));
    this.stream.write(msg);
    return p;
  }

  /** Sends a call without waiting for its result. */
  send(req: DeepPartial<SessionRequest>): void {
    this.stream.write(SessionRequest.fromPartial(req));
  }
}

function newClient(address: string): CheckpointServiceClient {
  return new CheckpointServiceClient(address, credentials.createInsecure());
}

describe("CheckpointService.Session: unary calls on one stream (real server, real Postgres)", function () {
  this.timeout(180_000);
  let cluster: Cluster;
  let client: CheckpointServiceClient;
  let unary: CheckpointClient;
  const count = async (ns: string) =>
    Number(
      (
        await pgQuery<{ n: string }>(
          cluster.databaseUrl,
          "SELECT count(*) AS n FROM checkpoints WHERE namespace = $1",
          [ns],
        )
      )[0]!.n,
    );

  before(async () => {
    cluster = await startCluster({
      name: "checkpoints_session",
      env: { AGENTSTATE_MAX_SESSION_CALLS: "4", AGENTSTATE_MAX_SESSIONS: "3" },
    });
    client = newClient(cluster.servers[0]!.address);
    unary = new CheckpointClient(cluster.servers[0]!.address);
  });
  after(async () => {
    client?.close();
    unary?.close();
    await cluster?.stop();
  });

  it("answers puts, writes and gets as the unary calls do, errors with the same code and trailers", async () => {
    const ns = "session-same";
    const t = randomUUID();
    const s = new RawSession(client);
    const p1 = await s.call({ callId: 1, putCheckpoint: putReq(ns, t, "ck-1", "") });
    assert.deepEqual(p1.putCheckpoint, { created: true, headCheckpointId: "ck-1" });
    const w = await s.call({
      callId: 2,
      putWrites: {
        namespace: ns,
        threadId: t,
        checkpointId: "ck-1",
        taskId: "task",
        writes: [{ index: 0, channel: "messages", value: { type: "json", data: json("w") } }],
      },
    });
    assert.deepEqual(w.putWrites, { stored: 1 });
    const viaSession = await s.call({ callId: 3, getCheckpoint: { namespace: ns, threadId: t } });
    const viaUnary = await unary.get({ namespace: ns, threadId: t });
    assert.equal(viaSession.getCheckpoint?.found, true);
    assert.deepEqual(viaSession.getCheckpoint, viaUnary);
    assert.equal(viaSession.getCheckpoint?.checkpoint?.pendingWrites.length, 1);

    // A strict put whose parent is not the head: ABORTED with the head, as the unary call answers.
    const conflict = await s.call({ callId: 4, putCheckpoint: putReq(ns, t, "ck-2", "ck-0", true) });
    const unaryConflict = await unary.put(putReq(ns, t, "ck-2", "ck-0", true)).then(
      () => assert.fail("the unary put was refused"),
      (e: ServiceError) => e,
    );
    assert.equal(conflict.status?.code, status.ABORTED);
    assert.equal(unaryConflict.code, status.ABORTED);
    assert.equal(conflict.status?.message, unaryConflict.details);
    assert.deepEqual(conflict.status?.metadata, {
      "agentstate-reason": "CHECKPOINT_CONFLICT",
      "agentstate-checkpoint-head": "ck-1",
    });
    assert.equal(unaryConflict.metadata.get("agentstate-checkpoint-head")[0], "ck-1");

    // Bad input: INVALID_ARGUMENT naming the field, nothing written.
    const bad = await s.call({ callId: 5, putCheckpoint: { ...putReq(ns, t, "", "ck-1") } });
    assert.equal(bad.status?.code, status.INVALID_ARGUMENT);
    assert.equal(bad.status?.metadata["agentstate-field"], "checkpoint_id");
    assert.equal(await count(ns), 1);
    s.stream.end();
    assert.equal(await s.ended, null, "a half-close with nothing in flight ends OK");
    assert.deepEqual(s.unmatched, []);
  });

  it("72 calls on three streams, 12 in flight at a time, some refused: every result goes to its own call", async () => {
    const ns = "session-many";
    const sessions = Array.from({ length: 3 }, () => new RawSession(client));
    const threads = Array.from({ length: 16 }, () => randomUUID());
    // Per stream at most 4 in flight (the limit here): each stream runs its calls 4 at a time.
    const results = await Promise.all(
      sessions.map(async (s, si) => {
        const out: [number, SessionResponse][] = [];
        for (let round = 0; round < 6; round++) {
          const batch = Array.from({ length: 4 }, (_, j) => {
            const n = si * 100 + round * 4 + j;
            const t = threads[n % threads.length]!;
            // Every third call is a strict put whose parent is not the head: refused.
            const req =
              n % 3 === 0
                ? putReq(ns, t, `bad-${n}`, "no-such-parent", true)
                : putReq(ns, t, `ck-${String(n).padStart(4, "0")}`, "");
            return s.call({ callId: n, putCheckpoint: req }).then((r) => [n, r] as [number, SessionResponse]);
          });
          out.push(...(await Promise.all(batch)));
        }
        return out;
      }),
    );
    let ok = 0;
    for (const [n, r] of results.flat()) {
      assert.equal(r.callId, n);
      if (n % 3 === 0) {
        assert.equal(r.status?.code, status.ABORTED, `call ${n}`);
      } else {
        assert.equal(r.status, undefined, `call ${n}: ${JSON.stringify(r.status)}`);
        assert.equal(r.putCheckpoint?.created, true);
        ok++;
      }
    }
    assert.equal(await count(ns), ok);
    for (const s of sessions) {
      s.stream.end();
      assert.equal(await s.ended, null);
    }
  });

  it("refuses on its own, changing nothing: a call past the in-flight limit, a duplicate call id, a call with no request", async () => {
    const ns = "session-limits";
    const blocked = randomUUID();
    await unary.put(putReq(ns, blocked, "ck-0", ""));
    const release = await holdRowLock(
      cluster.databaseUrl,
      "SELECT 1 FROM checkpoint_heads WHERE namespace = $1 AND thread_id = $2 FOR UPDATE",
      [ns, blocked],
    );
    const s = new RawSession(client);
    let held: Promise<SessionResponse>[];
    try {
      // Four puts wait on the held head row: the stream's limit.
      held = [1, 2, 3, 4].map((i) => s.call({ callId: i, putCheckpoint: putReq(ns, blocked, `ck-${i}`, "") }));
      const other = randomUUID();
      const fifth = await s.call({ callId: 5, putCheckpoint: putReq(ns, other, "ck-x", "") });
      assert.equal(fifth.status?.code, status.RESOURCE_EXHAUSTED);
      assert.match(fifth.status!.message, /AGENTSTATE_MAX_SESSION_CALLS/);
      assert.match(fifth.status!.message, /limit is 4/);
      // The same id as a call in flight: refused; the call in flight is not touched.
      const dup = new Promise<SessionResponse>((resolve) => {
        s.intercept = (r) => {
          s.intercept = undefined;
          resolve(r);
          return true;
        };
      });
      s.send({ callId: 2, getCheckpoint: { namespace: ns, threadId: other } });
      const dupResult = await dup;
      assert.equal(dupResult.callId, 2);
      assert.equal(dupResult.status?.code, status.INVALID_ARGUMENT);
      assert.equal(dupResult.status?.metadata["agentstate-field"], "call_id");
    } finally {
      await release();
    }
    for (const r of await Promise.all(held)) assert.equal(r.status, undefined, JSON.stringify(r.status));
    // A call carrying no request, then one carrying two: INVALID_ARGUMENT naming `call`; the stream goes on.
    const none = await s.call({ callId: 6 });
    assert.equal(none.status?.code, status.INVALID_ARGUMENT);
    assert.equal(none.status?.metadata["agentstate-field"], "call");
    const two = await s.call({
      callId: 7,
      getCheckpoint: { namespace: ns, threadId: blocked },
      putCheckpoint: putReq(ns, blocked, "ck-two", ""),
    });
    assert.equal(two.status?.code, status.INVALID_ARGUMENT);
    const after = await s.call({ callId: 8, getCheckpoint: { namespace: ns, threadId: blocked } });
    assert.equal(after.getCheckpoint?.checkpoint?.checkpointId, "ck-4");
    // ck-0..ck-4 on the blocked thread; nothing of the fifth call, the duplicate or the two-call message.
    assert.equal(await count(ns), 5);
    s.stream.end();
    assert.equal(await s.ended, null);
  });

  it("a call's timeout ends it DEADLINE_EXCEEDED; a half-close answers the calls in flight, then ends OK", async () => {
    const ns = "session-timeout";
    const t = randomUUID();
    await unary.put(putReq(ns, t, "ck-0", ""));
    const release = await holdRowLock(
      cluster.databaseUrl,
      "SELECT 1 FROM checkpoint_heads WHERE namespace = $1 AND thread_id = $2 FOR UPDATE",
      [ns, t],
    );
    const s = new RawSession(client);
    let waiting: Promise<SessionResponse>;
    try {
      const late = await s.call({ callId: 1, timeoutMs: 300, putCheckpoint: putReq(ns, t, "ck-late", "") });
      assert.equal(late.status?.code, status.DEADLINE_EXCEEDED, JSON.stringify(late.status));
      // A put with no timeout waits; the half-close does not end the stream before it is answered.
      waiting = s.call({ callId: 2, putCheckpoint: putReq(ns, t, "ck-1", "") });
      s.stream.end();
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await release();
    }
    // The timed-out put was already sent to Postgres, so it may still be applied, as a unary call
    // past its deadline may: its caller was told the outcome is unknown (DEADLINE_EXCEEDED).
    assert.equal((await waiting).putCheckpoint?.created, true);
    assert.equal(await s.ended, null);
  });

  it("bounds open streams per server (AGENTSTATE_MAX_SESSIONS), RESOURCE_EXHAUSTED naming it", async () => {
    const open = Array.from({ length: 3 }, () => new RawSession(client));
    // Each is open once it answered a call.
    await Promise.all(open.map((s, i) => s.call({ callId: i, getCheckpoint: { namespace: "x", threadId: "t" } })));
    const fourth = new RawSession(client);
    const e = await fourth.ended;
    assert.equal(e?.code, status.RESOURCE_EXHAUSTED);
    assert.match(e!.details, /AGENTSTATE_MAX_SESSIONS/);
    open[0]!.stream.end();
    await open[0]!.ended;
    const again = new RawSession(client);
    const r = await again.call({ callId: 1, getCheckpoint: { namespace: "x", threadId: "t" } });
    assert.equal(r.getCheckpoint?.found, false);
    for (const s of [...open.slice(1), again]) {
      s.stream.end();
      await s.ended;
    }
  });

  it("a message that does not decode ends the stream with INVALID_ARGUMENT naming the field", async () => {
    // SessionRequest{call_id: 1, put_checkpoint: {namespace: <0xff>}}: not UTF-8.
    const raw = client as unknown as {
      makeBidiStreamRequest: (
        path: string,
        ser: (b: Buffer) => Buffer,
        de: (b: Buffer) => Buffer,
        md: Metadata,
      ) => ClientDuplexStream<Buffer, Buffer>;
    };
    const stream = raw.makeBidiStreamRequest(
      "/agentstate.v1.CheckpointService/Session",
      (b) => b,
      (b) => b,
      new Metadata(),
    );
    const ended = new Promise<ServiceError>((resolve) => stream.on("error", resolve));
    stream.on("data", () => assert.fail("no result for a message that does not decode"));
    stream.write(Buffer.from([0x08, 0x01, 0x1a, 0x03, 0x0a, 0x01, 0xff]));
    const e = await ended;
    assert.equal(e.code, status.INVALID_ARGUMENT);
    assert.match(e.details, /put_checkpoint\.namespace/);
  });
});

describe("CheckpointService.Session: auth per call, shutdown (real server, real Postgres)", function () {
  this.timeout(180_000);
  let cluster: Cluster;
  const admin = `agst_${randomBytes(32).toString("base64url")}`;

  before(async () => {
    cluster = await startCluster({
      name: "checkpoints_session_auth",
      env: { AGENTSTATE_AUTH: "required", AGENTSTATE_BOOTSTRAP_TOKEN: admin },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("needs a principal to open; checks each call against its own access rule with the stream's credentials", async () => {
    const address = cluster.servers[0]!.address;
    const client = newClient(address);
    try {
      const anonymous = new RawSession(client);
      assert.equal((await anonymous.ended)?.code, status.UNAUTHENTICATED);

      const rpc = new RpcByName(address);
      const writer = await createToken(rpc, admin, "writer", [{ namespace: "mine", roles: ["write", "read"] }]);
      const reader = await createToken(rpc, admin, "reader", [{ namespace: "theirs", roles: ["read"] }]);
      rpc.close();
      const md = new Metadata();
      md.set("authorization", `Bearer ${writer.token}`);
      const s = new RawSession(client, md);
      const t = randomUUID();
      const mine = await s.call({ callId: 1, putCheckpoint: putReq("mine", t, "ck-1", "") });
      assert.equal(mine.putCheckpoint?.created, true);
      const theirs = await s.call({ callId: 2, putCheckpoint: putReq("theirs", t, "ck-1", "") });
      assert.equal(theirs.status?.code, status.PERMISSION_DENIED);
      assert.match(theirs.status!.message, /PutCheckpoint needs role "write" on namespace "theirs"/);
      const read = await s.call({ callId: 3, getCheckpoint: { namespace: "mine", threadId: t } });
      assert.equal(read.getCheckpoint?.found, true);
      s.stream.end();
      assert.equal(await s.ended, null);

      // A reader of "theirs" may read there and write nowhere.
      const rmd = new Metadata();
      rmd.set("authorization", `Bearer ${reader.token}`);
      const r = new RawSession(client, rmd);
      const denied = await r.call({ callId: 1, putCheckpoint: putReq("theirs", t, "ck-1", "") });
      assert.equal(denied.status?.code, status.PERMISSION_DENIED);
      const got = await r.call({ callId: 2, getCheckpoint: { namespace: "theirs", threadId: t } });
      assert.equal(got.getCheckpoint?.found, false);
      r.stream.end();
      await r.ended;
      const rows = await pgQuery<{ n: string }>(
        cluster.databaseUrl,
        "SELECT count(*) AS n FROM checkpoints WHERE namespace = 'theirs'",
      );
      assert.equal(rows[0]!.n, "0");
    } finally {
      client.close();
    }
  });

  it("shutdown: the call in flight is answered, a call after is refused UNAVAILABLE, the stream ends UNAVAILABLE", async () => {
    const server = cluster.servers[0]!;
    const client = newClient(server.address);
    const md = new Metadata();
    md.set("authorization", `Bearer ${admin}`);
    const ns = "session-shutdown";
    const t = randomUUID();
    const s = new RawSession(client, md);
    assert.equal((await s.call({ callId: 1, putCheckpoint: putReq(ns, t, "ck-0", "") })).status, undefined);
    const release = await holdRowLock(
      cluster.databaseUrl,
      "SELECT 1 FROM checkpoint_heads WHERE namespace = $1 AND thread_id = $2 FOR UPDATE",
      [ns, t],
    );
    let inFlight: Promise<SessionResponse>;
    try {
      inFlight = s.call({ callId: 2, putCheckpoint: putReq(ns, t, "ck-1", "") });
      await new Promise((r) => setTimeout(r, 200));
      server.kill("SIGTERM").catch(() => undefined);
      await server.waitForLog((l) => l.msg === "shutting down", 10_000);
      await new Promise((r) => setTimeout(r, 200));
      const refused = await s.call({ callId: 3, putCheckpoint: putReq(ns, randomUUID(), "ck-x", "") });
      assert.equal(refused.status?.code, status.UNAVAILABLE, JSON.stringify(refused.status));
    } finally {
      await release();
    }
    assert.deepEqual((await inFlight).putCheckpoint, { created: true, headCheckpointId: "ck-1" });
    const e = await s.ended;
    assert.equal(e?.code, status.UNAVAILABLE);
    client.close();
    const rows = await pgQuery<{ id: string }>(
      cluster.databaseUrl,
      "SELECT checkpoint_id AS id FROM checkpoints WHERE namespace = $1 ORDER BY checkpoint_id",
      [ns],
    );
    assert.deepEqual(
      rows.map((r) => r.id),
      ["ck-0", "ck-1"],
    );
  });
});
