/**
 * Regressions for failures the edge fuzzing (fuzz.test.ts) led to, made
 * deterministic. Tests of bugs not yet fixed in src/ are `it.skip` with a
 * `// BUG:` comment; remove the `.skip` with the fix.
 */
import * as assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { fBytes, fVarint, message } from "../support/protoWire";
import { pgQuery } from "../support/pgQuery";
import { RawGrpcClient, type RawReply } from "../support/RawGrpcClient";
import { startCluster, type Cluster } from "../support/startCluster";

const NS = "fzreg";
const INVALID_UTF8 = Buffer.from([0x61, 0xff, 0xfe]);
const KV = "/agentstate.v1.KeyValueService";
const anyExpected = fBytes(3, message(fVarint(3, true)));

describe("fuzz regressions: strings must be valid UTF-8", function () {
  this.timeout(60_000);
  let cluster: Cluster;
  let raw: RawGrpcClient;

  before(async () => {
    cluster = await startCluster({ name: "fuzzreg" });
    raw = new RawGrpcClient(cluster.servers[0]!.address);
  });

  after(async () => {
    raw?.close();
    await cluster?.stop();
  });

  const footprint = async () =>
    JSON.stringify(
      await pgQuery(
        cluster.databaseUrl,
        `SELECT (SELECT count(*) FROM kv_history) AS h, (SELECT count(*) FROM events) AS e,
                (SELECT count(*) FROM idempotency_keys) AS i, (SELECT count(*) FROM fencing_tokens) AS f,
                (SELECT coalesce(jsonb_object_agg(namespace, revision), '{}') FROM namespace_revisions) AS r`,
      ),
    );

  const show = (r: RawReply) => `${status[r.code]}: ${r.details}`;

  it("invalid UTF-8 in any string field is refused INVALID_ARGUMENT and changes nothing", async () => {
    const cases: [string, string, Buffer][] = [
      ["CompareAndSet content_type", `${KV}/CompareAndSet`, message(fBytes(1, NS), fBytes(2, "k"), anyExpected, fBytes(5, INVALID_UTF8))],
      ["CompareAndSet idempotency_key", `${KV}/CompareAndSet`, message(fBytes(1, NS), fBytes(2, "k"), anyExpected, fBytes(7, INVALID_UTF8))],
      ["Delete idempotency_key", `${KV}/Delete`, message(fBytes(1, NS), fBytes(2, "k"), anyExpected, fBytes(4, INVALID_UTF8))],
      ["List prefix", `${KV}/List`, message(fBytes(1, NS), fBytes(2, INVALID_UTF8))],
      [
        "Lock owner",
        "/agentstate.v1.LockService/Lock",
        message(fBytes(1, NS), fBytes(2, "l"), fBytes(3, message(fVarint(1, 5))), fBytes(5, INVALID_UTF8)),
      ],
      [
        "AppendEvent events[0].type",
        "/agentstate.v1.EventService/AppendEvent",
        message(fBytes(1, NS), fBytes(2, "s"), fBytes(3, message(fVarint(1, true))), fBytes(4, message(fBytes(2, INVALID_UTF8)))),
      ],
      [
        "AppendEvent events[0].metadata",
        "/agentstate.v1.EventService/AppendEvent",
        message(
          fBytes(1, NS),
          fBytes(2, "s"),
          fBytes(3, message(fVarint(1, true))),
          fBytes(4, message(fBytes(2, "t"), fBytes(4, message(fBytes(1, "k"), fBytes(2, INVALID_UTF8))))),
        ),
      ],
    ]; // prettier-ignore
    const failures: string[] = [];
    for (const [what, path, payload] of cases) {
      const before = await footprint();
      const r = await raw.unary(path, payload);
      if (r.code !== status.INVALID_ARGUMENT) failures.push(`${what}: ${show(r)}`);
      else if (r.metadata.get("agentstate-field").length !== 1) failures.push(`${what}: no agentstate-field trailer`);
      if ((await footprint()) !== before) failures.push(`${what}: changed the store`);
    }
    const sub = await raw.serverStream(
      "/agentstate.v1.EventService/Subscribe",
      message(fBytes(1, NS), fBytes(3, INVALID_UTF8)),
      {
        cancelAfterMs: 1000,
      },
    );
    if (sub.code !== status.INVALID_ARGUMENT) failures.push(`Subscribe stream_prefix: ${show(sub)}`);
    assert.deepEqual(failures, []);
  });

  it("a key containing U+FFFD (valid UTF-8) is accepted", async () => {
    const r = await raw.unary(`${KV}/CompareAndSet`, message(fBytes(1, NS), fBytes(2, "a\uFFFDb"), anyExpected));
    assert.equal(r.code, status.OK, show(r));
  });
});
