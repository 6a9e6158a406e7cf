/**
 * Guarantee 6 at the gRPC edge, fuzzed with fast-check: random and malformed
 * requests to every method of KeyValueService, LockService and EventService,
 * sent as raw bytes (test/support/RawGrpcClient) so they can hold anything:
 * random bytes, protobuf with wrong wire types, truncated and unknown fields,
 * int64 beyond 2^53 and negative varints, invalid UTF-8, NUL, huge strings,
 * negative and overflowing durations, unknown enum values.
 *
 * For every reply: a proper gRPC status: OK or a documented code, never
 * INTERNAL (unless it says the request could not be parsed), UNKNOWN or a
 * crash; INVALID_ARGUMENT names a field (details and the agentstate-field
 * trailer); a request made invalid in exactly one field is refused naming that
 * field; a refused request leaves no trace in the store (row counts of kv,
 * kv_history, events, streams, idempotency_keys, locks, fencing_tokens, and the
 * namespaces' revisions, before and after); the server process is alive at the end
 * and logged no internal error or unhandled rejection.
 *
 * Runs against two deployments: Postgres only (locks in Postgres) and
 * Postgres + Redis (cache, Redlock). FUZZ_SEED=N and FUZZ_RUNS=N to replay or
 * fuzz longer.
 */
import * as assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import fc from "fast-check";
import { Client } from "pg";
import { CompareAndSetResponse, GetResponse } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import {
  encode,
  garbageRequest,
  isServerStreaming,
  methodPath,
  METHODS,
  MUTATIONS,
  randomBytesRequest,
  validRequest,
  type Method,
  type Mutation,
} from "../support/fuzzRequests";
import { fBytes, fVarint, message } from "../support/protoWire";
import { RawGrpcClient, type RawReply } from "../support/RawGrpcClient";
import { startCluster, type Cluster } from "../support/startCluster";

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

/** Codes a well-formed deployment may answer to arbitrary input (no faults are injected here). */
const DOCUMENTED = new Set<status>([
  status.OK,
  status.INVALID_ARGUMENT,
  status.FAILED_PRECONDITION,
  status.NOT_FOUND,
  status.RESOURCE_EXHAUSTED,
  // Lock waits and open subscriptions end by our deadline or our cancel.
  status.DEADLINE_EXCEEDED,
  status.CANCELLED,
]);

/** Refusals: the request must have changed nothing. */
const REFUSED = new Set<status>([
  status.INVALID_ARGUMENT,
  status.FAILED_PRECONDITION,
  status.NOT_FOUND,
  status.RESOURCE_EXHAUSTED,
]);

const PARSE_FAILURE = /pars|deserializ|decod/i;

function describeReply(r: RawReply): string {
  return `${status[r.code]}: ${r.details}`;
}

/** A reply is a proper status (see the file comment); returns a problem or undefined. */
function problemWith(r: RawReply): string | undefined {
  if (r.code === status.INTERNAL && PARSE_FAILURE.test(r.details)) return undefined;
  if (!DOCUMENTED.has(r.code)) return `undocumented status ${describeReply(r)}`;
  if (r.code === status.INVALID_ARGUMENT) {
    const field = r.metadata.get("agentstate-field")[0];
    if (typeof field !== "string" || field === "") return `INVALID_ARGUMENT without a field trailer: ${r.details}`;
    if (!r.details.includes(field)) return `INVALID_ARGUMENT details do not name ${field}: ${r.details}`;
  }
  return undefined;
}

interface Deployment {
  name: string;
  redis: boolean;
}

for (const dep of [
  { name: "Postgres only (locks in Postgres)", redis: false },
  { name: "Postgres + Redis (cache, Redlock)", redis: true },
] satisfies Deployment[]) {
  describe(`fuzz: the gRPC edge never breaks (guarantee 6), ${dep.name}`, function () {
    this.timeout(300_000);
    let cluster: Cluster;
    let raw: RawGrpcClient;
    let db: Client;

    before(async () => {
      cluster = await startCluster({
        name: "fuzz",
        redis: dep.redis,
        // Nothing but the requests may write while row counts are compared.
        env: { AGENTSTATE_JANITOR_INTERVAL_MS: String(24 * 3600 * 1000) },
      });
      raw = new RawGrpcClient(cluster.servers[0]!.address);
      db = new Client({ connectionString: cluster.databaseUrl });
      db.on("error", () => undefined);
      await db.connect();
    });

    after(async () => {
      raw?.close();
      await db?.end().catch(() => undefined);
      await cluster?.stop();
    });

    /** Everything a refused request must leave unchanged. */
    async function footprint(): Promise<string> {
      const r = await db.query(`SELECT
        (SELECT count(*) FROM kv) AS kv, (SELECT coalesce(sum(version), 0) FROM kv) AS kv_versions,
        (SELECT count(*) FROM kv_history) AS kv_history, (SELECT count(*) FROM events) AS events,
        (SELECT count(*) FROM streams) AS streams, (SELECT coalesce(sum(version), 0) FROM streams) AS stream_versions,
        (SELECT count(*) FROM idempotency_keys) AS idempotency_keys, (SELECT count(*) FROM locks) AS locks,
        (SELECT count(*) FROM fencing_tokens) AS fencing_tokens,
        (SELECT coalesce(sum(last_token), 0) FROM fencing_tokens) AS tokens,
        (SELECT coalesce(jsonb_object_agg(namespace, revision), '{}') FROM namespace_revisions) AS revisions`);
      return JSON.stringify(r.rows[0]);
    }

    async function send(m: Method, payload: Buffer): Promise<RawReply> {
      return isServerStreaming(m)
        ? raw.serverStream(methodPath(m), payload, { deadlineMs: 3000, cancelAfterMs: 300, maxMessages: 50 })
        : raw.unary(methodPath(m), payload, 3000);
    }

    /** Sends one request; asserts a proper status and, when refused, an unchanged store. */
    async function probe(m: Method, payload: Buffer, what: string): Promise<RawReply> {
      const before = await footprint();
      const r = await send(m, payload);
      const problem = problemWith(r);
      assert.equal(problem, undefined, `${m} (${what}, ${payload.length} bytes): ${problem}`);
      if (REFUSED.has(r.code)) {
        assert.equal(
          await footprint(),
          before,
          `${m} (${what}) was refused (${describeReply(r)}) but changed the store`,
        );
      }
      return r;
    }

    async function assertInvalid(m: Method, mut: Mutation, payload: Buffer) {
      const r = await probe(m, payload, mut.what);
      assert.equal(
        r.code,
        status.INVALID_ARGUMENT,
        `${m} with ${mut.what}: expected INVALID_ARGUMENT, got ${describeReply(r)}`,
      );
      assert.deepEqual(r.metadata.get("agentstate-field"), [mut.field], `${m} with ${mut.what}: ${r.details}`);
    }

    it("random bytes as the request of every method: a proper status, and no trace when refused", async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...METHODS), randomBytesRequest, async (m, payload) => {
          await probe(m, payload, "random bytes");
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });

    it("structurally random requests (edge values, wrong wire types, unknown and truncated fields): a proper status, and no trace when refused", async () => {
      const arb = fc.constantFrom(...METHODS).chain((m) => garbageRequest(m).map((p) => [m, p] as const));
      await fc.assert(
        fc.asyncProperty(arb, async ([m, payload]) => {
          await probe(m, payload, "random fields");
        }),
        { numRuns: RUNS * 3, seed: SEED },
      );
    });

    it("valid requests with random values: a proper status", async () => {
      const arb = fc.constantFrom(...METHODS).chain((m) => validRequest(m).map((f) => [m, f] as const));
      await fc.assert(
        fc.asyncProperty(arb, async ([m, f]) => {
          const r = await probe(m, encode(f), "valid");
          assert.notEqual(r.code, status.INVALID_ARGUMENT, `${m}: a valid request was refused: ${r.details}`);
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });

    it("every single-field violation of every method is refused INVALID_ARGUMENT naming that field, changing nothing", async () => {
      const base = Object.fromEntries(
        METHODS.map((m) => [m, fc.sample(validRequest(m), { numRuns: 1, seed: 42 })[0]!]),
      );
      for (const m of METHODS) {
        for (const mut of MUTATIONS[m]) await assertInvalid(m, mut, encode(mut.apply(base[m]!)));
      }
    });

    it("random valid requests made invalid in one random field: refused naming that field, changing nothing", async () => {
      const arb = fc
        .constantFrom(...METHODS)
        .chain((m) =>
          fc.tuple(fc.constant(m), validRequest(m), fc.constantFrom(...MUTATIONS[m].filter((x) => !x.heavy))),
        );
      await fc.assert(
        fc.asyncProperty(arb, async ([m, f, mut]) => {
          await assertInvalid(m, mut, encode(mut.apply(f)));
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });

    it("unknown fields are ignored: a valid request answers the same with unknown fields appended", async () => {
      const unknown = fc.array(
        fc.oneof(
          fc
            .tuple(fc.integer({ min: 100, max: 2 ** 29 - 1 }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }))
            .map(([n, v]) => fVarint(n, v)),
          fc
            .tuple(fc.integer({ min: 100, max: 2 ** 29 - 1 }), fc.uint8Array({ maxLength: 16 }))
            .map(([n, v]) => fBytes(n, v)),
        ),
        { minLength: 1, maxLength: 4 },
      );
      const reads: Method[] = ["Get", "List", "ReadStream"];
      const arb = fc.constantFrom(...reads).chain((m) => fc.tuple(fc.constant(m), validRequest(m), unknown));
      await fc.assert(
        fc.asyncProperty(arb, async ([m, f, extra]) => {
          const plain = await probe(m, encode(f), "valid");
          const withUnknown = await probe(m, Buffer.concat([encode(f), ...extra]), "valid + unknown fields");
          assert.equal(withUnknown.code, plain.code, `${m}: ${describeReply(plain)} vs ${describeReply(withUnknown)}`);
          if (m === "Get" && plain.code === status.OK) {
            const a = GetResponse.decode(plain.messages[0]!);
            const b = GetResponse.decode(withUnknown.messages[0]!);
            assert.deepEqual(b.item, a.item);
          }
        }),
        { numRuns: Math.ceil(RUNS / 2), seed: SEED },
      );
    });

    it("a written key keeps its exact bytes: huge, edge and unicode values round-trip; the value limit is exact", async () => {
      const put = (key: string, value: Buffer) =>
        send(
          "CompareAndSet",
          message(fBytes(1, "fz"), fBytes(2, key), fBytes(3, message(fVarint(3, true))), fBytes(4, value)),
        );
      const atLimit = Buffer.alloc(1024 * 1024, 0xfe);
      const ok = await put("limit", atLimit);
      assert.equal(ok.code, status.OK, describeReply(ok));
      assert.deepEqual(Buffer.from(CompareAndSetResponse.decode(ok.messages[0]!).item!.value), atLimit);
      const before = await footprint();
      const over = await put("limit", Buffer.alloc(1024 * 1024 + 1));
      assert.equal(over.code, status.INVALID_ARGUMENT, describeReply(over));
      assert.equal(await footprint(), before);
      // Beyond the transport limit (4 MiB + 64 KiB): refused by grpc-js before any handler runs.
      const huge = await put("huge", Buffer.alloc(6 * 1024 * 1024));
      assert.equal(huge.code, status.RESOURCE_EXHAUSTED, describeReply(huge));
      assert.equal(await footprint(), before);
    });

    it("hundreds of malformed requests at once: proper statuses, and the server stays up and logs no internal error", async () => {
      const samples = fc.sample(
        fc.oneof(
          fc.constantFrom(...METHODS).chain((m) => garbageRequest(m).map((p) => [m, p] as const)),
          fc.constantFrom(...METHODS).chain((m) => randomBytesRequest.map((p) => [m, p] as const)),
        ),
        { numRuns: 300, seed: SEED ?? 7 },
      );
      const replies = await Promise.all(samples.map(([m, p]) => send(m, p)));
      const problems = replies.map(problemWith).filter((p) => p !== undefined);
      assert.deepEqual(problems.slice(0, 5), []);
      const server = cluster.servers[0]!;
      assert.equal(server.running, true, `the server exited:\n${server.tail(40)}`);
      const g = await send("Get", message(fBytes(1, "fz"), fBytes(2, "alive")));
      assert.equal(g.code, status.OK, describeReply(g));
      const bad = server
        .logs()
        .filter((l) => l.msg === "internal error" || l.msg === "unhandled rejection" || l.level === "error");
      assert.deepEqual(bad.slice(0, 5), [], "the server logged internal errors");
    });

    it("the store still answers after the whole run: the server process is alive", async () => {
      const server = cluster.servers[0]!;
      assert.equal(server.running, true);
      const r = await send("List", message(fBytes(1, "fz")));
      assert.equal(r.code, status.OK, describeReply(r));
    });
  });
}
