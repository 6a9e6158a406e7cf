import * as assert from "node:assert/strict";
import * as http2 from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { Client } from "pg";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { ReadStreamRequest } from "../../clients/typescript/src/gen/agentstate/v1/event";
import { GetRequest, KeyValueServiceClient } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import { expectGrpcError } from "../support/expectGrpcError";
import { startCluster, type Cluster } from "../support/startCluster";

describe("TypeScript client: AgentstateClient against a real server", function () {
  this.timeout(60_000);
  const NS = "client";
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster({ name: "client" });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("takes partial requests and returns typed replies", async () => {
    const c = cluster.clients[0]!;
    const put = await c.compareAndSet({ namespace: NS, key: "k", expected: { absent: true }, value: Buffer.from("v") });
    assert.equal(put.applied, true);
    assert.ok(put.item?.createTime instanceof Date);
    const got = await c.get({ namespace: NS, key: "k" });
    assert.equal(got.found, true);
    assert.equal(got.item?.version, 1);
    const list = await c.list({ namespace: NS });
    assert.deepEqual(
      list.items.map((i) => i.key),
      ["k"],
    );
    const del = await c.delete({ namespace: NS, key: "k", expected: { version: 1 } });
    assert.equal(del.applied, true);
  });

  it("errors are grpc-js ServiceErrors with code, details and trailer metadata", async () => {
    const err = await expectGrpcError(cluster.clients[0]!.get({ namespace: NS, key: "" }), status.INVALID_ARGUMENT, {
      field: "key",
    });
    assert.ok(err instanceof Error);
    assert.ok(err.metadata instanceof Metadata);
    assert.match(err.details, /^key: /);
  });

  it("passes request metadata through (x-request-id shows up in the server's log)", async () => {
    const md = new Metadata();
    md.set("x-request-id", "client-test-1");
    await cluster.clients[0]!.get({ namespace: NS, key: "k" }, { metadata: md });
    const line = await cluster.servers[0]!.waitForLog((l) => l.request_id === "client-test-1" && l.msg === "rpc");
    assert.equal(line.rpc, "Get");
  });

  it("echoes x-request-id in the response metadata, on success and on error, and makes one up when absent", async () => {
    const raw = new KeyValueServiceClient(cluster.servers[0]!.address, credentials.createInsecure());
    try {
      const headers = (req: GetRequest, md: Metadata) =>
        new Promise<{ md: Metadata; err: ServiceError | null }>((resolve) => {
          let got: Metadata | undefined;
          const call = raw.get(req, md, (err) => resolve({ md: got ?? new Metadata(), err }));
          call.on("metadata", (m: Metadata) => (got = m));
        });
      const md = new Metadata();
      md.set("x-request-id", "echo-ok-1");
      const ok = await headers(GetRequest.fromPartial({ namespace: NS, key: "k" }), md);
      assert.equal(ok.err, null);
      assert.deepEqual(ok.md.get("x-request-id"), ["echo-ok-1"]);
      const md2 = new Metadata();
      md2.set("x-request-id", "echo-bad-1");
      const bad = await headers(GetRequest.fromPartial({ namespace: NS, key: "" }), md2);
      assert.equal(bad.err?.code, status.INVALID_ARGUMENT);
      assert.deepEqual(bad.md.get("x-request-id"), ["echo-bad-1"]);
      const fresh = await headers(GetRequest.fromPartial({ namespace: NS, key: "k" }), new Metadata());
      const id = fresh.md.get("x-request-id")[0];
      assert.ok(typeof id === "string" && id.length > 0, "a request id is made up when the caller sends none");
      const line = await cluster.servers[0]!.waitForLog((l) => l.request_id === id && l.msg === "rpc");
      assert.equal(line.code, "OK");
    } finally {
      raw.close();
    }
  });

  it("sends x-request-id as a never-indexed header (a value new on every call must not churn HPACK tables)", async () => {
    // A raw HTTP/2 client: Node lists the headers that arrived with HPACK's
    // never-indexed flag under http2.sensitiveHeaders; grpc-js's client hides them.
    const session = http2.connect(`http://${cluster.servers[0]!.address}`);
    session.on("error", () => undefined);
    try {
      const unary = (path: string, body: Uint8Array) =>
        new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
          const req = session.request({
            ":method": "POST",
            ":path": path,
            "content-type": "application/grpc",
            te: "trailers",
          });
          req.on("response", resolve);
          req.on("error", reject);
          const frame = Buffer.alloc(5 + body.length);
          frame.writeUInt32BE(body.length, 1);
          frame.set(body, 5);
          req.end(frame);
          req.resume();
        });
      const unaryHeaders = await unary(
        "/agentstate.v1.KeyValueService/Get",
        GetRequest.encode(GetRequest.fromPartial({ namespace: NS, key: "k" })).finish(),
      );
      const streamHeaders = await unary(
        "/agentstate.v1.EventService/ReadStream",
        ReadStreamRequest.encode(ReadStreamRequest.fromPartial({ namespace: NS, stream: "none" })).finish(),
      );
      for (const [rpc, h] of [
        ["Get", unaryHeaders],
        ["ReadStream", streamHeaders],
      ] as const) {
        assert.equal(h[":status"], 200, rpc);
        assert.ok(typeof h["x-request-id"] === "string" && h["x-request-id"].length > 0, `${rpc}: x-request-id sent`);
        const never = (h as Record<symbol, unknown>)[http2.sensitiveHeaders];
        assert.ok(Array.isArray(never) && never.includes("x-request-id"), `${rpc}: x-request-id never-indexed`);
      }
    } finally {
      session.close();
    }
  });

  it("every call has a deadline: a call stuck on the server ends with DEADLINE_EXCEEDED", async () => {
    const c = new AgentstateClient(cluster.servers[0]!.address, { deadlineMs: 300 });
    const locker = new Client({ connectionString: cluster.databaseUrl });
    locker.on("error", () => undefined);
    await locker.connect();
    try {
      assert.equal(
        (await c.compareAndSet({ namespace: NS, key: "stuck", expected: { any: true }, value: Buffer.from("1") }))
          .applied,
        true,
      );
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM kv WHERE namespace = $1 AND key = $2 FOR UPDATE", [NS, Buffer.from("stuck")]);
      await expectGrpcError(
        c.compareAndSet({ namespace: NS, key: "stuck", expected: { any: true }, value: Buffer.from("2") }),
        status.DEADLINE_EXCEEDED,
      );
      await expectGrpcError(
        cluster.clients[0]!.compareAndSet(
          { namespace: NS, key: "stuck", expected: { any: true }, value: Buffer.from("3") },
          { deadlineMs: 200 },
        ),
        status.DEADLINE_EXCEEDED,
        {},
      );
    } finally {
      await locker.query("ROLLBACK").catch(() => undefined);
      await locker.end().catch(() => undefined);
      c.close();
    }
    // Reads are not blocked by the row lock and the server is fine.
    assert.equal((await cluster.clients[0]!.get({ namespace: NS, key: "stuck" })).found, true);
  });

  // Guarantee 7: work stops when the caller has gone. A CAS blocked on a row
  // lock past its caller's deadline rolls back instead of committing later.
  it("a write whose caller has gone is not applied once it unblocks", async () => {
    const c = cluster.clients[0]!;
    const locker = new Client({ connectionString: cluster.databaseUrl });
    locker.on("error", () => undefined);
    await locker.connect();
    try {
      await c.compareAndSet({ namespace: NS, key: "abandoned", expected: { absent: true }, value: Buffer.from("1") });
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM kv WHERE namespace = $1 AND key = $2 FOR UPDATE", [
        NS,
        Buffer.from("abandoned"),
      ]);
      await expectGrpcError(
        c.compareAndSet(
          { namespace: NS, key: "abandoned", expected: { any: true }, value: Buffer.from("late") },
          { deadlineMs: 200 },
        ),
        status.DEADLINE_EXCEEDED,
      );
      // The server learns the deadline as a relative timeout when the call
      // arrives, so its deadline can be a few ms after the client's. Release
      // the row only once the deadline has passed by either clock.
      await sleep(300);
      await locker.query("ROLLBACK");
    } finally {
      await locker.end().catch(() => undefined);
    }
    // Queued behind the abandoned write's row lock request, if that is still alive.
    const next = await c.compareAndSet({
      namespace: NS,
      key: "abandoned",
      expected: { version: 1 },
      value: Buffer.from("2"),
    });
    assert.equal(next.applied, true, `the abandoned write was applied: ${JSON.stringify(next.item)}`);
  });

  it("close() ends the channel: later calls fail instead of hanging", async () => {
    const c = new AgentstateClient(cluster.servers[0]!.address);
    await c.get({ namespace: NS, key: "k" });
    c.close();
    await assert.rejects(c.get({ namespace: NS, key: "k" }));
  });
});
