/**
 * The audit trail (issue 16, part 6): every key write and appended event
 * records its principal and request id; AdminService.ListChanges and
 * `agentstate audit` answer who changed what and when, paged and filtered,
 * to admins of the namespace only, never with a value. Also: x-request-id is
 * validated and echoed; a replica of the previous release keeps writing
 * through the old function signatures during a rolling upgrade; the audit
 * query is served by the audit indexes. Real Postgres, real servers.
 */
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { Client } from "pg";
import type { ChangeQuery } from "../../src/domain/audit";
import { ChangeOp, type Change, type ListChangesResponse } from "../../src/gen/agentstate/v1/admin";
import { Logger } from "../../src/log/Logger";
import { createPool } from "../../src/store/postgres/createPool";
import { Janitor } from "../../src/store/postgres/Janitor";
import { migrate } from "../../src/store/postgres/migrate";
import { PostgresAuditLog } from "../../src/store/postgres/PostgresAuditLog";
import { byName, sql as statement } from "../../src/store/postgres/sql";
import { createToken } from "../support/authFixture";
import { pgQuery } from "../support/pgQuery";
import { METHODS, RpcByName } from "../support/rpcByName";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";

const CLI = path.resolve(__dirname, "../../src/cli/main.js");
const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");
const FIXTURES = path.resolve(__dirname, "../../../test/fixtures");
const NS = "demo";
/** A value no audit output may ever contain. */
const SECRET = "s3cret-value-never-in-the-audit";

interface Outcome {
  code: status;
  details: string;
  reply: unknown;
  /** The x-request-id the server sent back. */
  echoed: string | undefined;
}

/** Calls `rpc` with `bearer` and, when given, the x-request-id value(s); resolves with the echo too. */
function callWithId(
  rpc: RpcByName,
  name: string,
  req: unknown,
  bearer: string | undefined,
  requestId?: string | string[],
): Promise<Outcome> {
  const def = METHODS[name]!;
  const md = new Metadata();
  if (bearer !== undefined) md.set("authorization", `Bearer ${bearer}`);
  for (const id of requestId === undefined ? [] : [requestId].flat()) md.add("x-request-id", id);
  return new Promise((resolve) => {
    let echoed: string | undefined;
    const call = rpc.client.makeUnaryRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      def.fromPartial(req),
      md,
      { deadline: Date.now() + 10_000 },
      (err: ServiceError | null, reply?: unknown) =>
        resolve(
          err
            ? { code: err.code, details: err.details, reply: undefined, echoed }
            : { code: status.OK, details: "", reply, echoed },
        ),
    );
    call.on("metadata", (m: Metadata) => (echoed = m.get("x-request-id")[0] as string | undefined));
  });
}

/** `agentstate ARGS` against `server` with `token`; resolves with its exit code and output. */
function cli(
  server: ServerProcess,
  token: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        env: { PATH: process.env.PATH ?? "", AGENTSTATE_PORT: String(server.port), AGENTSTATE_TOKEN: token },
        timeout: 30_000,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
    ),
  );
}

const cas = (key: string, value = SECRET) => ({
  namespace: NS,
  key,
  expected: { any: true },
  value: Buffer.from(value),
});
const append = (stream: string, n: number) => ({
  namespace: NS,
  stream,
  expected: { any: true },
  events: Array.from({ length: n }, () => ({ id: "", type: "t", data: Buffer.from(SECRET), metadata: {} })),
});

/** Who, what and when of a change, as compared below. */
function brief(c: Change): string {
  const what = c.op === ChangeOp.CHANGE_OP_APPEND ? `stream ${c.stream}` : `key ${c.key}`;
  return `${ChangeOp[c.op]} ${what} r${c.revision} v${c.version} by ${c.principalRecorded ? c.principal : "-"} req ${c.requestId}`;
}

describe("audit trail: who changed what, through ListChanges and `agentstate audit`", function () {
  this.timeout(180_000);
  const bootstrap = `agst_${randomBytes(32).toString("base64url")}`;
  let serverA: ServerProcess;
  let serverB: ServerProcess;
  let a: RpcByName;
  let b: RpcByName;
  let url: string;
  const tokens: Record<string, string> = {};
  /** The request id server A made up for alice's second write. */
  let madeUp: string;
  /** A time between the first changes and the rest. */
  let middle: Date;

  const listChanges = async (req: object, token = bootstrap, via = a): Promise<ListChangesResponse> => {
    const r = await via.call("ListChanges", { namespace: NS, limit: 1000, ...req }, token);
    assert.equal(r.code, status.OK, r.details);
    return r.reply as ListChangesResponse;
  };

  before(async () => {
    const env = await getTestEnv();
    url = await env.freshDatabase("audit");
    const common = { DATABASE_URL: url, AGENTSTATE_AUTH: "required", AGENTSTATE_BOOTSTRAP_TOKEN: bootstrap };
    [serverA, serverB] = await Promise.all([ServerProcess.start(common), ServerProcess.start(common)]);
    a = new RpcByName(serverA.address);
    b = new RpcByName(serverB.address);
    const grant = (roles: ("read" | "write" | "admin")[], prefix = "") => [{ namespace: NS, prefix, roles }];
    tokens.alice = (await createToken(a, bootstrap, "alice", grant(["read", "write"]))).token;
    tokens.bob = (await createToken(a, bootstrap, "bob", grant(["write"]))).token;
    tokens.reader = (await createToken(a, bootstrap, "reader", grant(["read"]))).token;
    tokens.jobsAdmin = (await createToken(a, bootstrap, "jobs-admin", grant(["admin"], "jobs/"))).token;
    tokens.otherAdmin = (
      await createToken(a, bootstrap, "other-admin", [{ namespace: "other", prefix: "", roles: ["admin"] }])
    ).token;

    // alice through A, bob through B, each with its own request ids; one write without an id.
    const w1 = await callWithId(a, "CompareAndSet", cas("cfg/model"), tokens.alice, "req-alice-1");
    assert.equal(w1.code, status.OK, w1.details);
    assert.equal(w1.echoed, "req-alice-1");
    const w2 = await callWithId(a, "CompareAndSet", cas("cfg/model"), tokens.alice);
    assert.equal(w2.code, status.OK, w2.details);
    assert.match(w2.echoed ?? "", /^[0-9a-f]{12}-[0-9a-z]+$/);
    madeUp = w2.echoed!;
    await new Promise((r) => setTimeout(r, 50));
    middle = new Date();
    await new Promise((r) => setTimeout(r, 50));
    const w3 = await callWithId(
      b,
      "Delete",
      { namespace: NS, key: "cfg/model", expected: { any: true } },
      tokens.bob,
      "req-bob-1",
    );
    assert.equal(w3.code, status.OK, w3.details);
    assert.equal(w3.echoed, "req-bob-1");
    const w4 = await callWithId(b, "AppendEvent", append("jobs/j1", 2), tokens.bob, "req-bob-2");
    assert.equal(w4.code, status.OK, w4.details);
  });

  after(async () => {
    a?.close();
    b?.close();
    await Promise.all([serverA?.stop(), serverB?.stop()]);
  });

  it("ListChanges names the principal and request id of every change, newest first, through either replica", async () => {
    const want = [
      "CHANGE_OP_APPEND stream jobs/j1 r5 v2 by bob req req-bob-2",
      "CHANGE_OP_APPEND stream jobs/j1 r4 v1 by bob req req-bob-2",
      "CHANGE_OP_DELETE key cfg/model r3 v2 by bob req req-bob-1",
      `CHANGE_OP_PUT key cfg/model r2 v2 by alice req ${madeUp}`,
      "CHANGE_OP_PUT key cfg/model r1 v1 by alice req req-alice-1",
    ];
    for (const via of [a, b]) {
      const page = await listChanges({}, bootstrap, via);
      assert.deepEqual(page.changes.map(brief), want);
      assert.equal(page.nextPageToken, "");
      for (const c of page.changes) assert.ok(c.time instanceof Date && Date.now() - c.time.getTime() < 120_000);
      // Who, what, when: never a value.
      assert.doesNotMatch(JSON.stringify(page), new RegExp(SECRET));
    }
    // The events read back exactly as appended: the audit columns are not in their metadata.
    const read = await a.call("ReadStream", { namespace: NS, stream: "jobs/j1" }, tokens.alice);
    assert.equal(read.code, status.OK, read.details);
    assert.deepEqual((read.reply as { event: { metadata: unknown } }).event.metadata, {});
  });

  it("filters: principal, key/stream prefix, since and until", async () => {
    const ops = (p: ListChangesResponse) => p.changes.map((c) => `${ChangeOp[c.op]} r${c.revision}`);
    assert.deepEqual(ops(await listChanges({ principal: "alice" })), ["CHANGE_OP_PUT r2", "CHANGE_OP_PUT r1"]);
    assert.deepEqual(ops(await listChanges({ principal: "nobody" })), []);
    assert.deepEqual(ops(await listChanges({ keyPrefix: "jobs/" })), ["CHANGE_OP_APPEND r5", "CHANGE_OP_APPEND r4"]);
    assert.deepEqual(ops(await listChanges({ keyPrefix: "cfg/", principal: "bob" })), ["CHANGE_OP_DELETE r3"]);
    assert.deepEqual(ops(await listChanges({ sinceTime: middle })), [
      "CHANGE_OP_APPEND r5",
      "CHANGE_OP_APPEND r4",
      "CHANGE_OP_DELETE r3",
    ]);
    assert.deepEqual(ops(await listChanges({ untilTime: middle })), ["CHANGE_OP_PUT r2", "CHANGE_OP_PUT r1"]);
    assert.deepEqual(ops(await listChanges({ sinceTime: new Date(Date.now() + 60_000) })), []);
  });

  it("pages: a bounded page size, an opaque token, every change exactly once", async () => {
    for (let i = 0; i < 12; i++) {
      const token = i % 3 === 0 ? tokens.bob : tokens.alice;
      const r = await callWithId(i % 2 ? a : b, "CompareAndSet", cas(`page/k${i % 4}`), token, `req-page-${i}`);
      assert.equal(r.code, status.OK, r.details);
    }
    const all = (await listChanges({})).changes.map(brief);
    assert.equal(all.length, 17);
    const paged: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const p = await listChanges({ limit: 5, pageToken });
      assert.ok(p.changes.length <= 5);
      paged.push(...p.changes.map(brief));
      pageToken = p.nextPageToken;
      pages++;
    } while (pageToken !== "");
    assert.deepEqual(paged, all);
    assert.equal(pages, 4);

    // A filtered page reads a bounded number of rows: with a budget of 3 rows per table, pages come
    // back short (even empty) with a next token, and together they are exactly the filtered list.
    const pool = createPool({ connectionString: url, max: 1, statementTimeoutMs: 5000 });
    try {
      const log = new PostgresAuditLog(pool, 3);
      const q: ChangeQuery = {
        namespace: NS,
        since: undefined,
        until: undefined,
        principal: "bob",
        prefix: "",
        limit: 2,
        after: undefined,
      };
      const got: string[] = [];
      let calls = 0;
      for (let after = undefined as ChangeQuery["after"]; ; calls++) {
        const page = await log.changes({ ...q, after });
        assert.ok(page.changes.length <= 2);
        got.push(...page.changes.map((c) => `${c.op} ${c.revision} ${c.requestId}`));
        if (page.next === undefined) break;
        after = page.next;
      }
      const bob = (await listChanges({ principal: "bob" })).changes;
      assert.deepEqual(
        got,
        bob.map((c) => `${ChangeOp[c.op].slice("CHANGE_OP_".length).toLowerCase()} ${c.revision} ${c.requestId}`),
      );
      assert.ok(calls > bob.length / 2, `${calls} calls: the budget did not cut any page`);
    } finally {
      await pool.end();
    }
  });

  it("bad requests are INVALID_ARGUMENT naming the field and limit", async () => {
    const bad = async (req: object, field: RegExp) => {
      const r = await a.call("ListChanges", { namespace: NS, ...req }, bootstrap);
      assert.equal(r.code, status.INVALID_ARGUMENT, JSON.stringify(req));
      assert.match(r.details, field);
    };
    await bad({ limit: 1001 }, /^limit: must be between 0 and 1000/);
    await bad({ limit: -1 }, /^limit:/);
    await bad({ namespace: "" }, /^namespace: is required/);
    await bad({ pageToken: "not-a-token" }, /^page_token:/);
    await bad({ principal: "p".repeat(129) }, /^principal: is 129 bytes, the limit is 128 bytes/);
    await bad({ keyPrefix: "k".repeat(1025) }, /^key_prefix: is 1025 bytes, the limit is 1024 bytes/);
    await bad({ sinceTime: new Date(2000), untilTime: new Date(1000) }, /^until_time:/);
  });

  it("only an admin of the namespace (or of the prefix asked for) may read it", async () => {
    for (const who of ["alice", "bob", "reader", "otherAdmin"]) {
      const r = await a.call("ListChanges", { namespace: NS }, tokens[who]);
      assert.equal(r.code, status.PERMISSION_DENIED, `${who}: ${r.details}`);
      assert.match(r.details, /ListChanges needs role "admin" on namespace "demo"/);
    }
    const none = await a.call("ListChanges", { namespace: NS });
    assert.equal(none.code, status.UNAUTHENTICATED);
    // An admin of jobs/ reads the changes under jobs/, not the whole namespace.
    assert.equal((await a.call("ListChanges", { namespace: NS }, tokens.jobsAdmin)).code, status.PERMISSION_DENIED);
    const jobs = await listChanges({ keyPrefix: "jobs/" }, tokens.jobsAdmin);
    assert.deepEqual(
      jobs.changes.map((c) => c.stream),
      ["jobs/j1", "jobs/j1"],
    );
    // Denials are logged without the credential, and counted by code.
    const line = await serverA.waitForLog(
      (l) => l.msg === "call denied" && l.rpc === "ListChanges" && l.principal === "reader",
    );
    assert.equal(line.namespace, NS);
    assert.equal(line.code, "PERMISSION_DENIED");
    const at = serverA.logs().find((l) => l.msg === "listening")!.metrics;
    const metrics = await (
      await fetch(`http://${at}/metrics`, { headers: { authorization: `Bearer ${bootstrap}` } })
    ).text();
    assert.match(metrics, /agentstate_auth_denied_total\{rpc="ListChanges",code="PERMISSION_DENIED"\} [5-9]/);
    assert.match(metrics, /agentstate_auth_denied_total\{rpc="ListChanges",code="UNAUTHENTICATED"\} 1/);
    for (const l of serverA.lines.concat(serverB.lines)) {
      assert.doesNotMatch(l, /agst_/, "a token in the log");
      assert.doesNotMatch(l, new RegExp(SECRET), "a value in the log");
    }
  });

  it("a caller's x-request-id must be 1 to 128 visible ASCII characters, one value: else INVALID_ARGUMENT, nothing written", async () => {
    const before = (await listChanges({})).changes.length;
    for (const id of ["x".repeat(129), "has space", "", ["one", "two"]]) {
      const r = await callWithId(a, "CompareAndSet", cas("cfg/bad-id"), tokens.alice, id);
      assert.equal(r.code, status.INVALID_ARGUMENT, JSON.stringify(id));
      assert.match(r.details, /^x-request-id: (must be 1 to 128 visible ASCII characters|send one value)/);
      assert.ok(r.echoed !== undefined && r.echoed !== id, "a made-up id is echoed instead");
    }
    const edge = await callWithId(a, "CompareAndSet", cas("cfg/ok-id"), tokens.alice, `~!${"z".repeat(126)}`);
    assert.equal(edge.code, status.OK, edge.details);
    const after = (await listChanges({})).changes;
    assert.equal(after.length, before + 1);
    assert.equal(after[0]!.requestId, `~!${"z".repeat(126)}`);
  });

  it("`agentstate audit` prints who changed what (table and --json), pages, filters, and refuses non-admins", async () => {
    const table = await cli(serverA, bootstrap, [
      "audit",
      "--namespace",
      NS,
      "--since",
      "1h",
      "--key-prefix",
      "cfg/model",
    ]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^TIME\s+REVISION\s+OP\s+KEY\/STREAM\/TARGET\s+VERSION\s+PRINCIPAL\s+REQUEST ID$/);
    assert.equal(lines.length, 4);
    assert.match(lines[1]!, /^\S+Z\s+3\s+delete\s+cfg\/model\s+2\s+bob\s+req-bob-1$/);
    assert.match(lines[2]!, new RegExp(`^\\S+Z\\s+2\\s+put\\s+cfg/model\\s+2\\s+alice\\s+${madeUp}$`));
    assert.match(lines[3]!, /^\S+Z\s+1\s+put\s+cfg\/model\s+1\s+alice\s+req-alice-1$/);

    const json = await cli(serverB, bootstrap, [
      "audit",
      "--namespace",
      NS,
      "--principal",
      "bob",
      "--key-prefix",
      "jobs/",
      "--json",
    ]);
    assert.equal(json.code, 0, json.stderr);
    const rows = json.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      rows.map(({ time: _t, ...r }) => r),
      [5, 4].map((revision) => ({
        revision,
        op: "append",
        stream: "jobs/j1",
        version: revision - 3,
        principal: "bob",
        request_id: "req-bob-2",
      })),
    );

    // Paging through the RPC: --limit caps what is printed and says that more is left.
    const all = await cli(serverA, bootstrap, ["audit", "--namespace", NS, "--limit", "1000", "--json"]);
    const total = all.stdout.trimEnd().split("\n").length;
    assert.equal(total, (await listChanges({})).changes.length);
    const some = await cli(serverA, bootstrap, ["audit", "--namespace", NS, "--limit", "3"]);
    assert.equal(some.code, 0, some.stderr);
    assert.equal(some.stdout.trimEnd().split("\n").length, 4);
    assert.match(some.stderr, /more changes than --limit 3/);
    const until = await cli(serverA, bootstrap, [
      "audit",
      "--namespace",
      NS,
      "--until",
      middle.toISOString(),
      "--json",
    ]);
    assert.deepEqual(
      until.stdout
        .trimEnd()
        .split("\n")
        .map((l) => (JSON.parse(l) as { revision: number }).revision),
      [2, 1],
    );
    for (const out of [table, json, all, some, until]) assert.doesNotMatch(out.stdout + out.stderr, new RegExp(SECRET));

    const denied = await cli(serverA, tokens.reader!, ["audit", "--namespace", NS]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /ListChanges needs role "admin" on namespace "demo"/);
    const usage = await cli(serverA, bootstrap, ["audit", "--since", "1h"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--namespace/);
    const badSince = await cli(serverA, bootstrap, ["audit", "--namespace", NS, "--since", "yesterday"]);
    assert.equal(badSince.code, 2);
    assert.match(badSince.stderr, /--since must be a duration before now/);
  });

  it("checkpoint and store changes record their principal and request id too (filters, pages; nothing on a denial)", async () => {
    const W = "work";
    const grant = [{ namespace: W, prefix: "", roles: ["read", "write"] as ("read" | "write")[] }];
    const carol = (await createToken(a, bootstrap, "carol", grant)).token;
    const dave = (await createToken(b, bootstrap, "dave", grant)).token;
    const ok = async (via: RpcByName, rpc: string, req: object, token: string, id: string) => {
      const r = await callWithId(via, rpc, { namespace: W, ...req }, token, id);
      assert.equal(r.code, status.OK, `${rpc}: ${r.details}`);
      return r.reply;
    };
    const checkpoint = (threadId: string, checkpointId: string, parent = "", run = "r0") => ({
      threadId,
      checkpointNs: "",
      checkpointId,
      parentCheckpointId: parent,
      document: { type: "json", data: Buffer.from(JSON.stringify({ secret: SECRET })) },
      metadataJson: Buffer.from(JSON.stringify({ run_id: run })),
      channelVersions: { c: "1" },
      values: [{ channel: "c", version: "1", value: { type: "json", data: Buffer.from(JSON.stringify(SECRET)) } }],
    });
    await ok(a, "PutCheckpoint", checkpoint("t1", "0001", "", "r1"), carol, "req-c-1");
    await ok(a, "PutCheckpoint", checkpoint("t1", "0002", "0001", "r2"), carol, "req-c-2");
    const writes = [{ index: 0, channel: "c", value: { type: "json", data: Buffer.from(JSON.stringify(SECRET)) } }];
    const putWrites = { threadId: "t1", checkpointId: "0002", taskId: "task", taskPath: "p", writes };
    await ok(b, "PutWrites", putWrites, dave, "req-d-1");
    await ok(b, "CopyThread", { sourceThreadId: "t1", targetThreadId: "t2" }, dave, "req-d-2");
    await ok(a, "PruneCheckpoints", { threadIds: ["t1"], keepLatest: 1 }, carol, "req-c-3");
    // Run r1 is left only in t2 (t1's checkpoint of it was pruned).
    await ok(b, "DeleteForRuns", { runIds: ["r1"] }, dave, "req-d-3");
    await ok(a, "DeleteThread", { threadId: "t1" }, carol, "req-c-4");
    const item = { path: ["mem", "u1"], key: "fact" };
    await ok(a, "PutItem", { ...item, valueJson: JSON.stringify({ s: SECRET }) }, carol, "req-c-5");
    await ok(b, "DeleteItem", item, dave, "req-d-4");
    // Changes that change nothing record nothing: a delete of nothing, a prune with nothing to remove.
    await ok(b, "DeleteItem", item, dave, "req-d-none");
    await ok(a, "DeleteThread", { threadId: "t1" }, carol, "req-c-none");
    await ok(a, "PruneCheckpoints", { threadIds: ["t2"], keepLatest: 5 }, carol, "req-c-none");
    // Denied calls write nothing (the reader has no grant on "work").
    for (const [rpc, req] of [
      ["PutItem", { ...item, valueJson: "{}" }],
      ["PutCheckpoint", checkpoint("t9", "0001")],
      ["DeleteThread", { threadId: "t2" }],
    ] as const) {
      const r = await callWithId(a, rpc, { namespace: W, ...req }, tokens.reader, "req-denied");
      assert.equal(r.code, status.PERMISSION_DENIED, `${rpc}: ${r.details}`);
    }
    // Group-committed puts (one batch statement when they meet) each record their own principal and id.
    await Promise.all(
      ["t3", "t4", "t5", "t6"].map((t, i) =>
        ok(i % 2 ? b : a, "PutCheckpoint", checkpoint(t, "0001"), i % 2 ? dave : carol, `req-batch-${t}`),
      ),
    );

    const line = (c: Change) =>
      `${ChangeOp[c.op]} ${c.target} by ${c.principalRecorded ? c.principal : "-"} req ${c.requestId}`;
    const page = await listChanges({ namespace: W });
    assert.equal(page.nextPageToken, "");
    const all = page.changes.map(line);
    assert.deepEqual(all.slice(0, 4).sort(), [
      "CHANGE_OP_CHECKPOINT_PUT t3//0001 by carol req req-batch-t3",
      "CHANGE_OP_CHECKPOINT_PUT t4//0001 by dave req req-batch-t4",
      "CHANGE_OP_CHECKPOINT_PUT t5//0001 by carol req req-batch-t5",
      "CHANGE_OP_CHECKPOINT_PUT t6//0001 by dave req req-batch-t6",
    ]);
    assert.deepEqual(all.slice(4), [
      "CHANGE_OP_ITEM_DELETE mem.u1/fact by dave req req-d-4",
      "CHANGE_OP_ITEM_PUT mem.u1/fact by carol req req-c-5",
      "CHANGE_OP_THREAD_DELETE t1 by carol req req-c-4",
      "CHANGE_OP_CHECKPOINT_DELETE_RUNS t2 by dave req req-d-3",
      "CHANGE_OP_CHECKPOINT_PRUNE t1 by carol req req-c-3",
      "CHANGE_OP_THREAD_COPY t2 by dave req req-d-2",
      "CHANGE_OP_CHECKPOINT_WRITES t1//0002 by dave req req-d-1",
      "CHANGE_OP_CHECKPOINT_PUT t1//0002 by carol req req-c-2",
      "CHANGE_OP_CHECKPOINT_PUT t1//0001 by carol req req-c-1",
    ]);
    for (const c of page.changes) {
      assert.equal(c.key, "");
      assert.equal(c.stream, "");
      assert.ok(c.time instanceof Date);
    }
    assert.doesNotMatch(JSON.stringify(page), new RegExp(SECRET));
    // Filters: principal, target prefix, both.
    const lines = async (req: object) => (await listChanges({ namespace: W, ...req })).changes.map(line);
    assert.deepEqual(
      await lines({ principal: "dave" }),
      all.filter((l) => l.includes(" by dave ")),
    );
    assert.equal((await lines({ principal: "dave" })).length, 6);
    assert.deepEqual(await lines({ keyPrefix: "mem." }), all.slice(4, 6));
    assert.deepEqual(await lines({ keyPrefix: "t1", principal: "carol" }), [
      "CHANGE_OP_THREAD_DELETE t1 by carol req req-c-4",
      "CHANGE_OP_CHECKPOINT_PRUNE t1 by carol req req-c-3",
      "CHANGE_OP_CHECKPOINT_PUT t1//0002 by carol req req-c-2",
      "CHANGE_OP_CHECKPOINT_PUT t1//0001 by carol req req-c-1",
    ]);
    // Pages of 3: every change exactly once, in the same order.
    const paged: string[] = [];
    let pageToken = "";
    do {
      const p = await listChanges({ namespace: W, limit: 3, pageToken });
      assert.ok(p.changes.length <= 3);
      paged.push(...p.changes.map(line));
      pageToken = p.nextPageToken;
    } while (pageToken !== "");
    assert.deepEqual(paged, all);
    // The audit rows and the changes commit together: nothing for the denied calls.
    const rows = await pgQuery(url, "SELECT count(*)::int AS n FROM audit_changes WHERE request_id = 'req-denied'");
    assert.deepEqual(rows, [{ n: 0 }]);
  });
});

describe("audit trail: rolling upgrade from release 3, auth off, and the audit indexes", function () {
  this.timeout(180_000);
  const dirs: string[] = [];
  const servers: ServerProcess[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it("a release-3 replica's calls (old argument lists) still work beside this release's, their changes unattributed", async () => {
    const url = await (await getTestEnv()).freshDatabase("audit_rolling");
    // The database as release 3 left it: migrations 0001..0011 and release 3's functions.
    const old = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-release3-"));
    dirs.push(old);
    for (const f of fs.readdirSync(MIGRATIONS_DIR)) {
      if (/^00(0\d|1[01])_/.test(f)) fs.copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(old, f));
    }
    const pool = createPool({ connectionString: url, max: 2, statementTimeoutMs: 10_000 });
    try {
      await migrate(pool, old, { functionsDir: path.join(FIXTURES, "release3-functions"), release: 3 });
      // This release upgrades it (as its first replica starts); the old overloads stay.
      const later = fs
        .readdirSync(MIGRATIONS_DIR)
        .filter((f) => /^\d{4}_.*\.sql$/.test(f) && Number(f.slice(0, 4)) > 11)
        .sort()
        .map((f) => f.replace(/\.sql$/, ""));
      assert.equal(later[0], "0012_audit");
      assert.deepEqual(await migrate(pool, MIGRATIONS_DIR), later);
      const overloads = await pgQuery<{ proname: string; n: string }>(
        url,
        `SELECT proname, count(*)::text AS n FROM pg_proc
          WHERE proname IN ('agentstate_kv_write', 'agentstate_event_append') GROUP BY proname ORDER BY proname`,
      );
      assert.deepEqual(overloads, [
        { proname: "agentstate_event_append", n: "2" },
        { proname: "agentstate_kv_write", n: "2" },
      ]);

      // A release-3 replica's statements, exactly as it sends them.
      const statement = (name: string) => ({
        name: `release3_${name}`,
        text: fs.readFileSync(path.join(FIXTURES, "release3-statements", `${name}.sql`), "utf8"),
      });
      const kvWrite = statement("kv_write");
      const w = await pool.query<{ status: number; revision: string }>(
        kvWrite,
        byName(kvWrite, {
          p_ns: [NS],
          p_key: [Buffer.from("old/k")],
          p_op: [1],
          p_value: [Buffer.from("v")],
          p_ct: [""],
          p_ttl_ms: [null],
          p_exp_kind: [0],
          p_exp_version: [null],
          p_fence_name: [null],
          p_fence_token: [null],
          p_idem: [null],
          p_fp: [null],
          p_deadline_ms: [null],
          p_marked_epoch: [null],
          p_bump: [false],
          p_wait: true,
        }),
      );
      assert.equal(w.rows[0]!.status, 1); // applied
      const eventAppend = statement("event_append");
      const e = await pool.query<{ status: number }>(
        eventAppend,
        byName(eventAppend, {
          p_ns: [NS],
          p_stream: ["old-stream"],
          p_exp_kind: [0],
          p_exp_version: [null],
          p_count: [1],
          p_ids: [randomUUID()],
          p_types: ["t"],
          p_data: [Buffer.from("d")],
          p_metadata: ["{}"],
          p_fp: [Buffer.alloc(32)],
          p_fence_name: [null],
          p_fence_token: [null],
          p_deadline_ms: [null],
          p_wait: true,
        }),
      );
      assert.equal(e.rows[0]!.status, 1); // appended
    } finally {
      await pool.end();
    }

    // A replica of this release on the same database records who it writes for.
    const admin = `agst_${randomBytes(32).toString("base64url")}`;
    const server = await ServerProcess.start({
      DATABASE_URL: url,
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_BOOTSTRAP_TOKEN: admin,
    });
    servers.push(server);
    const rpc = new RpcByName(server.address);
    try {
      const r = await callWithId(rpc, "CompareAndSet", cas("old/k", "v2"), admin, "req-new");
      assert.equal(r.code, status.OK, r.details);
      const page = (await rpc.call("ListChanges", { namespace: NS }, admin)).reply as ListChangesResponse;
      assert.deepEqual(page.changes.map(brief), [
        "CHANGE_OP_PUT key old/k r3 v2 by bootstrap-admin req req-new",
        "CHANGE_OP_APPEND stream old-stream r2 v1 by - req ",
        "CHANGE_OP_PUT key old/k r1 v1 by - req ",
      ]);
    } finally {
      rpc.close();
    }
  });

  it("with auth off, changes are recorded as made by the anonymous principal '' with their request ids", async () => {
    const url = await (await getTestEnv()).freshDatabase("audit_anon");
    const server = await ServerProcess.start({ DATABASE_URL: url });
    servers.push(server);
    const rpc = new RpcByName(server.address);
    try {
      const w = await callWithId(rpc, "CompareAndSet", cas("k"), undefined, "anon-1");
      assert.equal(w.code, status.OK, w.details);
      const e = await callWithId(rpc, "AppendEvent", append("s", 1), undefined);
      assert.equal(e.code, status.OK, e.details);
      assert.deepEqual(await pgQuery(url, "SELECT principal, request_id FROM kv_history"), [
        { principal: "", request_id: "anon-1" },
      ]);
      assert.deepEqual(await pgQuery(url, "SELECT principal, request_id FROM events"), [
        { principal: "", request_id: e.echoed },
      ]);
    } finally {
      rpc.close();
    }
  });

  it("ListChanges' query is served by the audit indexes (EXPLAIN over 60k changes in 30 namespaces)", async () => {
    const url = await (await getTestEnv()).freshDatabase("audit_explain");
    const pool = createPool({ connectionString: url, max: 1, statementTimeoutMs: 60_000 });
    try {
      await migrate(pool, MIGRATIONS_DIR);
    } finally {
      await pool.end();
    }
    const db = new Client({ connectionString: url });
    await db.connect();
    try {
      await db.query(`
        INSERT INTO kv_history (revision, namespace, key, op, version, created_at, principal, request_id)
        SELECT g / 30 * 2, 'ns' || (g % 30), convert_to('k' || (g % 1000), 'UTF8'), 1, 1,
               now() - (60000 - g) * interval '1 second', 'p' || (g % 7), 'r' || g
        FROM generate_series(1, 30000) g;
        INSERT INTO events (position, namespace, stream, stream_version, event_id, type, data, fingerprint,
                            created_at, principal, request_id)
        SELECT g / 30 * 2 + 1, 'ns' || (g % 30), 's' || g, 1, gen_random_uuid(), 't', '\\x00', '\\x00',
               now() - (60000 - g) * interval '1 second', 'p' || (g % 7), 'r' || g
        FROM generate_series(1, 30000) g;
        ANALYZE kv_history; ANALYZE events;`);
      const text = fs.readFileSync(path.resolve(__dirname, "../../src/store/postgres/sql/audit_changes.sql"), "utf8");
      await db.query(
        `PREPARE audit_q(text, timestamptz, timestamptz, bigint, bigint, text, text, int, int) AS ${text}`,
      );
      const plans: string[] = [];
      for (const mode of ["force_custom_plan", "force_generic_plan"]) {
        await db.query(`SET plan_cache_mode = ${mode}`);
        for (const args of [
          "'ns3', '-infinity', 'infinity', NULL, NULL, NULL, '', 101, 101",
          "'ns3', now() - interval '2 hours', now() - interval '1 hour', NULL, NULL, 'p2', 'k1', 5000, 101",
          `'ns3', '-infinity', 'infinity', ${(Date.now() - 3_600_000) * 1000}, 500, NULL, '', 101, 101`,
        ]) {
          const r = await db.query<{ "QUERY PLAN": string }>(`EXPLAIN EXECUTE audit_q(${args})`);
          const plan = r.rows.map((x) => x["QUERY PLAN"]).join("\n");
          plans.push(plan);
          assert.match(plan, /Index Scan Backward using kv_history_audit on kv_history/, `${mode}\n${plan}`);
          assert.match(plan, /Index Scan Backward using events_audit on events/, `${mode}\n${plan}`);
          assert.match(plan, /Index Scan Backward using audit_changes_pkey on audit_changes/, `${mode}\n${plan}`);
          assert.doesNotMatch(plan, /Seq Scan/, `${mode}\n${plan}`);
        }
      }
    } finally {
      await db.end();
    }
  });

  it("the janitor trims audit_changes past AGENTSTATE_HISTORY_RETENTION_SECONDS, oldest first, in bounded batches, by its created_at index", async () => {
    const url = await (await getTestEnv()).freshDatabase("audit_retention");
    const pool = createPool({ connectionString: url, max: 2, statementTimeoutMs: 60_000 });
    const db = new Client({ connectionString: url });
    try {
      await migrate(pool, MIGRATIONS_DIR);
      await db.connect();
      // 12,000 changes older than the hour's retention (2 h to 5.3 h old) and 300
      // within it (up to 50 min old), over 30 namespaces.
      await db.query(`
        INSERT INTO audit_changes (namespace, created_at, op, target, principal, request_id)
        SELECT 'ns' || (g % 30), now() - interval '2 hours' - g * interval '1 second', 5, 't' || g, 'p', 'r' || g
        FROM generate_series(1, 12000) g;
        INSERT INTO audit_changes (namespace, created_at, op, target, principal, request_id)
        SELECT 'ns' || (g % 30), now() - g * interval '10 seconds', 11, 'recent' || g, 'p', 'r' || g
        FROM generate_series(1, 300) g;
        ANALYZE audit_changes;`);
      const count = async (where: string) =>
        Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM audit_changes WHERE ${where}`)).rows[0]!.n);

      // The statement finds the oldest rows over every namespace through audit_changes_created_at.
      const text = fs.readFileSync(
        path.resolve(__dirname, "../../src/store/postgres/sql/audit_changes_trim.sql"),
        "utf8",
      );
      await db.query(`PREPARE trim_q(bigint, int) AS ${text}`);
      for (const mode of ["force_custom_plan", "force_generic_plan"]) {
        await db.query(`SET plan_cache_mode = ${mode}`);
        const plan = (await db.query<{ "QUERY PLAN": string }>("EXPLAIN EXECUTE trim_q(3600, 500)")).rows
          .map((x) => x["QUERY PLAN"])
          .join("\n");
        assert.match(plan, /Index Scan using audit_changes_created_at on audit_changes/, `${mode}\n${plan}`);
        assert.doesNotMatch(plan, /Seq Scan/, `${mode}\n${plan}`);
      }

      // One statement removes one batch, the oldest rows.
      const one = await pool.query(statement("audit_changes_trim"), [3600, 100]);
      assert.equal(one.rowCount, 100);
      assert.equal(await count("target LIKE 't%' AND substr(target, 2)::int > 11900"), 0, "the 100 oldest went");
      assert.equal(await count("true"), 12_200);

      // A janitor pass drains at most 100 batches: 100 × 50 rows, then the rest next pass.
      const janitor = new Janitor(
        pool,
        {
          intervalMs: 60_000,
          historyRetentionSeconds: 3600,
          idempotencyTtlSeconds: 3600,
          eventRetentionSeconds: 0,
          streamMaxEvents: 0,
          batchSize: 50,
        },
        new Logger("error", {}, () => undefined),
      );
      assert.equal((await janitor.runOnce()).audit, 5000);
      assert.equal((await janitor.runOnce()).audit, 5000);
      assert.equal((await janitor.runOnce()).audit, 1900);
      assert.equal((await janitor.runOnce()).audit, 0);
      assert.equal(await count("created_at < now() - interval '1 hour'"), 0, "every change past the retention went");
      assert.equal(await count("target LIKE 'recent%'"), 300, "every change within the retention stayed");

      // Retention 0 keeps everything.
      await db.query(`UPDATE audit_changes SET created_at = created_at - interval '10 years'`);
      const keepAll = new Janitor(
        pool,
        {
          intervalMs: 60_000,
          historyRetentionSeconds: 0,
          idempotencyTtlSeconds: 3600,
          eventRetentionSeconds: 0,
          streamMaxEvents: 0,
        },
        new Logger("error", {}, () => undefined),
      );
      assert.equal((await keepAll.runOnce()).audit, 0);
      assert.equal(await count("true"), 300);
    } finally {
      await db.end();
      await pool.end();
    }
  });
});
