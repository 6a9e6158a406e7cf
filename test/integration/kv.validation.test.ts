import * as assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import type { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import type { Consistency } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import { expectGrpcError } from "../support/expectGrpcError";
import { HealthClient } from "../support/HealthClient";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster } from "../support/startCluster";

const utf8 = (s: string) => Buffer.from(s, "utf8");
const MiB = 1024 * 1024;

interface Counts {
  kv: number;
  history: number;
  idempotency: number;
  revision: number;
}

interface Case {
  name: string;
  field: string;
  call: () => Promise<unknown>;
}

describe("KeyValueService: bad input is INVALID_ARGUMENT naming the field, and writes nothing", function () {
  this.timeout(60_000);
  const NS = "valid";
  let cluster: Cluster;
  /** Server with the default limits (1 MiB values). */
  let c: AgentstateClient;
  /** Server with AGENTSTATE_MAX_VALUE_BYTES=1024. */
  let small: AgentstateClient;

  before(async () => {
    cluster = await startCluster({ name: "kv_validation" });
    c = cluster.clients[0]!;
    small = (await cluster.addReplica({ AGENTSTATE_MAX_VALUE_BYTES: "1024" })).client;
  });
  after(async () => {
    await cluster?.stop();
  });

  async function counts(): Promise<Counts> {
    const rows = await pgQuery<Counts>(
      cluster.databaseUrl,
      `SELECT (SELECT count(*)::int FROM kv) AS kv, (SELECT count(*)::int FROM kv_history) AS history,
              (SELECT count(*)::int FROM idempotency_keys) AS idempotency,
              (SELECT coalesce(sum(revision), 0)::int FROM namespace_revisions) AS revision`,
    );
    return rows[0]!;
  }

  const put = { namespace: NS, key: "k", expected: { any: true }, value: utf8("v") };
  const long = (bytes: number) => "x".repeat(bytes);
  const cases: Case[] = [
    // Get
    { name: "Get: empty key", field: "key", call: () => c.get({ namespace: NS, key: "" }) },
    { name: "Get: key over 1024 bytes", field: "key", call: () => c.get({ namespace: NS, key: long(1025) }) },
    { name: "Get: key with NUL", field: "key", call: () => c.get({ namespace: NS, key: "a\u0000b" }) },
    { name: "Get: empty namespace", field: "namespace", call: () => c.get({ namespace: "", key: "k" }) },
    { name: "Get: namespace with upper case", field: "namespace", call: () => c.get({ namespace: "Valid", key: "k" }) },
    {
      name: "Get: namespace over 63 characters",
      field: "namespace",
      call: () => c.get({ namespace: "n".repeat(64), key: "k" }),
    },
    {
      name: "Get: unknown consistency value 7",
      field: "consistency",
      call: () => c.get({ namespace: NS, key: "k", consistency: 7 as Consistency }),
    },
    // CompareAndSet
    { name: "CAS: empty key", field: "key", call: () => c.compareAndSet({ ...put, key: "" }) },
    {
      name: "CAS: key over 1024 bytes (multi-byte)",
      field: "key",
      call: () => c.compareAndSet({ ...put, key: "日".repeat(342) }),
    },
    { name: "CAS: key with NUL", field: "key", call: () => c.compareAndSet({ ...put, key: "\u0000" }) },
    { name: "CAS: bad namespace", field: "namespace", call: () => c.compareAndSet({ ...put, namespace: "-bad" }) },
    {
      name: "CAS: value over AGENTSTATE_MAX_VALUE_BYTES=1024",
      field: "value",
      call: () => small.compareAndSet({ ...put, value: Buffer.alloc(1025), idempotencyKey: "too-big" }),
    },
    {
      name: "CAS: value over the default 1 MiB limit",
      field: "value",
      call: () => c.compareAndSet({ ...put, value: Buffer.alloc(MiB + 1), idempotencyKey: "too-big-default" }),
    },
    {
      name: "CAS: negative TTL",
      field: "ttl",
      call: () => c.compareAndSet({ ...put, ttl: { seconds: -1, nanos: 0 } }),
    },
    {
      name: "CAS: negative TTL nanos",
      field: "ttl",
      call: () => c.compareAndSet({ ...put, ttl: { seconds: 0, nanos: -5 } }),
    },
    { name: "CAS: zero TTL", field: "ttl", call: () => c.compareAndSet({ ...put, ttl: { seconds: 0, nanos: 0 } }) },
    {
      name: "CAS: expected unset",
      field: "expected",
      call: () => c.compareAndSet({ namespace: NS, key: "k", value: utf8("v") }),
    },
    {
      name: "CAS: two conditions set",
      field: "expected",
      call: () => c.compareAndSet({ ...put, expected: { version: 1, absent: true } }),
    },
    {
      name: "CAS: expected.absent=false",
      field: "expected.absent",
      call: () => c.compareAndSet({ ...put, expected: { absent: false } }),
    },
    {
      name: "CAS: expected.version=0",
      field: "expected.version",
      call: () => c.compareAndSet({ ...put, expected: { version: 0 } }),
    },
    {
      name: "CAS: expected.version<0",
      field: "expected.version",
      call: () => c.compareAndSet({ ...put, expected: { version: -3 } }),
    },
    {
      name: "CAS: idempotency key over 255 bytes",
      field: "idempotency_key",
      call: () => c.compareAndSet({ ...put, idempotencyKey: long(256) }),
    },
    {
      name: "CAS: content type over 255 bytes",
      field: "content_type",
      call: () => c.compareAndSet({ ...put, contentType: long(256) }),
    },
    {
      name: "CAS: fence token 0",
      field: "fence.token",
      call: () => c.compareAndSet({ ...put, fence: { lockName: "l", token: 0 } }),
    },
    {
      name: "CAS: fence with an empty lock name",
      field: "fence.lock_name",
      call: () => c.compareAndSet({ ...put, fence: { lockName: "", token: 1 } }),
    },
    // Delete
    { name: "Delete: expected unset", field: "expected", call: () => c.delete({ namespace: NS, key: "k" }) },
    {
      name: "Delete: empty key",
      field: "key",
      call: () => c.delete({ namespace: NS, key: "", expected: { any: true } }),
    },
    {
      name: "Delete: bad namespace",
      field: "namespace",
      call: () => c.delete({ namespace: "a b", key: "k", expected: { any: true } }),
    },
    {
      name: "Delete: idempotency key over 255 bytes",
      field: "idempotency_key",
      call: () => c.delete({ namespace: NS, key: "k", expected: { any: true }, idempotencyKey: long(256) }),
    },
    // List
    {
      name: "List: bad page_token",
      field: "page_token",
      call: () => c.list({ namespace: NS, pageToken: "not-a-token!" }),
    },
    { name: "List: limit over the maximum (1000)", field: "limit", call: () => c.list({ namespace: NS, limit: 1001 }) },
    { name: "List: negative limit", field: "limit", call: () => c.list({ namespace: NS, limit: -1 }) },
    { name: "List: bad namespace", field: "namespace", call: () => c.list({ namespace: "" }) },
    { name: "List: prefix with NUL", field: "prefix", call: () => c.list({ namespace: NS, prefix: "a\u0000" }) },
  ];

  describe("each case", () => {
    let before: Counts;
    let seed: number | undefined;

    it("seeds one key so that 'nothing changed' is measured against real state", async () => {
      const r = await c.compareAndSet({ ...put, value: utf8("seed") });
      assert.equal(r.applied, true);
      seed = r.item?.version;
      before = await counts();
    });

    for (const tc of cases) {
      it(`${tc.name} -> INVALID_ARGUMENT naming ${tc.field}`, async () => {
        const err = await expectGrpcError(tc.call(), status.INVALID_ARGUMENT, { field: tc.field });
        assert.ok(err.details.startsWith(`${tc.field}:`), `details start with the field: ${err.details}`);
      });
    }

    it("nothing was written by any rejected request", async () => {
      assert.deepEqual(await counts(), before);
      const got = await c.get({ namespace: NS, key: "k" });
      assert.equal(got.item?.version, seed);
      assert.equal(Buffer.from(got.item!.value).toString(), "seed");
    });
  });

  describe("malformed tokens and out-of-range numbers", () => {
    it("List: a page_token that decodes to JSON null -> INVALID_ARGUMENT naming page_token", async () => {
      const token = Buffer.from("null", "utf8").toString("base64url");
      await expectGrpcError(c.list({ namespace: NS, pageToken: token }), status.INVALID_ARGUMENT, {
        field: "page_token",
      });
    });

    // int64 fields beyond 2^53 cannot be JS numbers; the decode guard names the field.
    it("CAS: expected.version above 2^53 -> INVALID_ARGUMENT naming expected.version", async () => {
      await expectGrpcError(c.compareAndSet({ ...put, expected: { version: 2 ** 60 } }), status.INVALID_ARGUMENT, {
        field: "expected.version",
      });
    });
  });

  describe("limits are inclusive", () => {
    it("accepts a value of exactly AGENTSTATE_MAX_VALUE_BYTES and a key of exactly 1024 bytes", async () => {
      const atLimit = await small.compareAndSet({ ...put, key: "k".repeat(1024), value: Buffer.alloc(1024, 1) });
      assert.equal(atLimit.applied, true);
      assert.equal(atLimit.item?.value.length, 1024);
      const ik = await c.compareAndSet({ ...put, key: "limits-ik", idempotencyKey: long(255) });
      assert.equal(ik.applied, true);
    });

    it("an idempotency key first used by a rejected request is still fresh", async () => {
      const r = await small.compareAndSet({ ...put, key: "fresh", value: Buffer.alloc(10), idempotencyKey: "too-big" });
      assert.equal(r.applied, true);
      assert.equal(r.replayed, false);
    });
  });

  // Mocha runs a suite's own tests before its sub-suites: keep this in a suite of its own, last.
  describe("afterwards", () => {
    it("both servers are still healthy and serving after all of it", async () => {
      for (const [i, server] of cluster.servers.entries()) {
        assert.equal(server.running, true, `server ${i} is running`);
        const health = new HealthClient(server.address);
        try {
          assert.equal(await health.check(""), "SERVING");
          assert.equal(await health.check("agentstate.v1.KeyValueService"), "SERVING");
        } finally {
          health.close();
        }
        const got = await cluster.clients[i]!.get({ namespace: NS, key: "k" });
        assert.equal(got.found, true);
      }
      const internal = cluster.servers.flatMap((s) => s.logs()).filter((l) => l.level === "error");
      assert.deepEqual(internal, [], "no error was logged (no INTERNAL answers)");
    });
  });
});
