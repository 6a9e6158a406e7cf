/**
 * Migration 0006 (revisions per namespace) on a store written by release 1
 * (one store-wide revision): the migrations before it and release 1's SQL
 * functions (kept as fixtures in test/fixtures/release1-functions) build the
 * store, writes in three namespaces interleave, then this release migrates
 * it. Every revision and position must be renumbered per namespace in its
 * old order, idempotent replays must answer with the renumbered revisions,
 * and new writes must continue each namespace's sequence. Real Postgres.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Pool } from "pg";
import type { AppendCommand, AppendOutcome } from "../../src/domain/events";
import { requestFingerprint } from "../../src/domain/fingerprint";
import type { WriteCommand, WriteOutcome } from "../../src/domain/types";
import { createPool } from "../../src/store/postgres/createPool";
import { migrate, readMigrations } from "../../src/store/postgres/migrate";
import { PostgresEventStore } from "../../src/store/postgres/PostgresEventStore";
import { PostgresKvStore } from "../../src/store/postgres/PostgresKvStore";
import { pgQuery } from "../support/pgQuery";
import { getTestEnv } from "../support/TestEnv";

/** The migrations the servers load: the copy in the build (dist/migrations). */
const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");
/** This file compiles to dist/test/integration/: the repo is three levels up. */
const RELEASE1_FUNCTIONS = path.resolve(__dirname, "../../../test/fixtures/release1-functions");

const put = (namespace: string, key: string, value: string, extra: Partial<WriteCommand> = {}): WriteCommand => ({
  op: "put",
  namespace,
  key,
  value: Buffer.from(value),
  contentType: "",
  ttlMs: undefined,
  expected: { kind: "any" },
  idempotencyKey: undefined,
  fence: undefined,
  ...extra,
});

const append = (namespace: string, stream: string, ids: string[]): AppendCommand => ({
  namespace,
  stream,
  expected: { kind: "any" },
  events: ids.map((id) => ({ id, type: "t", data: Buffer.from(id), metadata: {} })),
  fence: undefined,
});

/**
 * agentstate_event_append with this release's parameters, running release 1's
 * (the changes go unattributed): this code's event store appends through it
 * on release 1. (KV writes go through release1Write below instead.)
 */
const RELEASE1_EVENT_WRAPPER = `
CREATE FUNCTION agentstate_event_append(p_ns text, p_stream text[], p_exp_kind smallint[], p_exp_version bigint[],
  p_count int[], p_ids uuid[], p_types text[], p_data bytea[], p_metadata jsonb[], p_fp bytea[],
  p_fence_name text[], p_fence_token bigint[], p_deadline_ms bigint[], p_principal text[], p_request_id text[],
  p_wait boolean) RETURNS SETOF agentstate_event_append_result
LANGUAGE sql AS $$
  SELECT * FROM agentstate_event_append(p_ns => array_fill(p_ns, ARRAY[cardinality(p_stream)]),
    p_stream => p_stream, p_exp_kind => p_exp_kind, p_exp_version => p_exp_version, p_count => p_count,
    p_ids => p_ids, p_types => p_types, p_data => p_data, p_metadata => p_metadata, p_fp => p_fp,
    p_fence_name => p_fence_name, p_fence_token => p_fence_token, p_deadline_ms => p_deadline_ms, p_wait => p_wait)
$$;`;

/**
 * A KV write as a release-1 replica sends it: agentstate_kv_write with that
 * release's argument list (later releases add parameters, which such a
 * caller does not send). Returns what this test reads of the outcome.
 */
async function release1Write(
  pool: Pool,
  cmd: WriteCommand,
): Promise<Pick<WriteOutcome, "applied" | "replayed" | "revision">> {
  const r = await pool.query<{ status: number; revision: string }>(
    `SELECT status, revision FROM agentstate_kv_write(p_ns => $1::text[], p_key => $2::bytea[], p_op => $3::smallint[],
       p_value => $4::bytea[], p_ct => $5::text[], p_ttl_ms => $6::bigint[], p_exp_kind => $7::smallint[],
       p_exp_version => $8::bigint[], p_fence_name => $9::text[], p_fence_token => $10::bigint[], p_idem => $11::text[],
       p_fp => $12::bytea[], p_deadline_ms => $13::bigint[], p_marked_epoch => $14::bigint[], p_bump => $15::boolean[],
       p_wait => $16::boolean)`,
    [
      [cmd.namespace], [Buffer.from(cmd.key)], [cmd.op === "put" ? 1 : 2],
      [cmd.op === "put" ? cmd.value : null], [cmd.op === "put" ? cmd.contentType : null], [null],
      [cmd.expected.kind === "absent" ? 1 : 0], [null], [null], [null], [cmd.idempotencyKey ?? null],
      [cmd.idempotencyKey === undefined ? null : requestFingerprint(cmd)], [null], [null], [false], true,
    ], // prettier-ignore
  );
  const row = r.rows[0]!;
  assert.ok([1, 2, 3].includes(row.status), `status ${row.status}`);
  return { applied: row.status === 1, replayed: row.status === 3, revision: Number(row.revision) };
}

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

describe("migration 0006: a release-1 store renumbered per namespace (real Postgres)", function () {
  this.timeout(60_000);
  const pools: Pool[] = [];
  let dir: string;

  after(async () => {
    await Promise.all(pools.map((p) => p.end()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("keeps each namespace's order, replays consistently, and new writes continue each sequence", async () => {
    const url = await (await getTestEnv()).freshDatabase("nsrev");
    const pool = () => {
      const p = createPool({ connectionString: url, max: 4, statementTimeoutMs: 10_000 });
      pools.push(p);
      return p;
    };

    // Release 1: the migrations before 0006 and its functions.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-release1-"));
    for (const m of readMigrations(MIGRATIONS_DIR).filter((m) => m.id < 6)) {
      fs.writeFileSync(path.join(dir, `${m.name}.sql`), m.sql);
    }
    const oldPool = pool();
    await migrate(oldPool, dir, { functionsDir: RELEASE1_FUNCTIONS, release: 1 });
    // This code appends as release 4 declares agentstate_event_append (scalar
    // p_ns, principal and request id: migrations/0012); on release 1 that is a
    // wrapper of release 1's, which this release's function replaces in place.
    await pgQuery(url, RELEASE1_EVENT_WRAPPER);
    const kv = new PostgresKvStore(oldPool);
    const ev = new PostgresEventStore(oldPool);

    // Interleaved changes in a, b, c, one at a time (store revisions 1, 2, ...).
    // `changes` records each change's store revision per namespace, in order.
    const changes: Record<string, number[]> = { a: [], b: [], c: [] };
    const w = async (cmd: WriteCommand) => {
      const o = await release1Write(oldPool, cmd);
      if (o.applied && !o.replayed) changes[cmd.namespace]!.push(o.revision);
      return o;
    };
    const ap = async (cmd: AppendCommand) => {
      const o = await ev.append(cmd);
      const first = o.firstPosition;
      for (let i = 0; i < cmd.events.length; i++) changes[cmd.namespace]!.push(first + i);
      return o;
    };
    await w(put("a", "k1", "a1"));
    await w(put("b", "k1", "b1"));
    await ap(append("c", "s", [uuid(1), uuid(2)]));
    const aIdem = put("a", "k2", "a2", { idempotencyKey: "ia" });
    const aIdemFirst = await w(aIdem);
    await w(put("b", "k1", "b1'"));
    await w({ ...put("a", "k1", ""), op: "delete" } as WriteCommand);
    await w(put("c", "x", "c1"));
    // Not applied (k1 exists): its reply carries the store revision then (8) and b's k1.
    const bIdem = put("b", "k1", "never", { expected: { kind: "absent" }, idempotencyKey: "ib" });
    const bIdemFirst = await w(bIdem);
    assert.equal(bIdemFirst.applied, false);
    await ap(append("a", "s", [uuid(3)]));
    await w(put("b", "k2", "b2"));
    await ap(append("c", "s", [uuid(4)]));
    await w(put("a", "k1", "a1 again"));

    const all = Object.values(changes).flat();
    assert.deepEqual(
      [...all].sort((x, y) => x - y),
      Array.from({ length: all.length }, (_, i) => i + 1),
      "release 1 numbered every change store-wide",
    );
    const renumbered = (ns: string, old: number) => changes[ns]!.filter((r) => r <= old).length;

    // This release migrates the store (another replica, its own pool). The
    // writes below go on through `oldPool`, whose connections prepared the
    // write statements against release 1's functions, as a replica's do
    // through a rolling upgrade: where a function's result type changed, the
    // first run on each such connection is refused ("cached plan must not
    // change result type") and the batch is sent again on a new connection.
    const applied = await migrate(pool(), MIGRATIONS_DIR);
    assert.ok(applied.includes("0006_namespace_revisions"), `applied ${applied.join(", ")}`);

    const nsRevs = await pgQuery<{ namespace: string; revision: string }>(
      url,
      "SELECT namespace, revision FROM namespace_revisions ORDER BY namespace",
    );
    assert.deepEqual(
      nsRevs.map((r) => [r.namespace, Number(r.revision)]),
      Object.entries(changes).map(([ns, revs]) => [ns, revs.length]),
    );
    const history = await pgQuery<{ namespace: string; revision: string; key: string }>(
      url,
      "SELECT namespace, revision, convert_from(key, 'UTF8') AS key FROM kv_history ORDER BY namespace, revision",
    );
    const events = await pgQuery<{ namespace: string; position: string; event_id: string }>(
      url,
      "SELECT namespace, position, event_id::text FROM events ORDER BY namespace, position",
    );
    // Each namespace's history rows and events, together, are 1..n in the old order.
    for (const ns of ["a", "b", "c"]) {
      const got = [
        ...history.filter((h) => h.namespace === ns).map((h) => Number(h.revision)),
        ...events.filter((e) => e.namespace === ns).map((e) => Number(e.position)),
      ].sort((x, y) => x - y);
      assert.deepEqual(
        got,
        Array.from({ length: changes[ns]!.length }, (_, i) => i + 1),
        `namespace ${ns}`,
      );
    }
    assert.deepEqual(
      events.map((e) => [e.namespace, Number(e.position), e.event_id]),
      [
        ["a", 4, uuid(3)],
        ["c", 1, uuid(1)],
        ["c", 2, uuid(2)],
        ["c", 4, uuid(4)],
      ],
    );
    const keys = await pgQuery<{ namespace: string; key: string; cr: string; mr: string }>(
      url,
      `SELECT namespace, convert_from(key, 'UTF8') AS key, create_revision AS cr, mod_revision AS mr
       FROM kv ORDER BY namespace, key`,
    );
    assert.deepEqual(
      keys.map((k) => [k.namespace, k.key, Number(k.cr), Number(k.mr)]),
      [
        ["a", "k1", 5, 5],
        ["a", "k2", 2, 2],
        ["b", "k1", 1, 2],
        ["b", "k2", 3, 3],
        ["c", "x", 3, 3],
      ],
    );

    // Idempotent retries replay the first reply, renumbered.
    const aReplay = await kv.write(aIdem);
    assert.equal(aReplay.replayed, true);
    assert.equal(aIdemFirst.revision, 5, "store revision of a's put under 'ia'");
    assert.equal(aReplay.revision, 2);
    assert.deepEqual([aReplay.item?.createRevision, aReplay.item?.modRevision], [2, 2]);
    const bReplay: WriteOutcome = await kv.write(bIdem);
    assert.equal(bReplay.replayed, true);
    assert.equal(bReplay.applied, false);
    assert.equal(bReplay.revision, renumbered("b", bIdemFirst.revision));
    assert.equal(bReplay.revision, 2, "b's revision when 'ib' was answered: its 2 changes then");
    assert.deepEqual([bReplay.item?.createRevision, bReplay.item?.modRevision, bReplay.item?.version], [1, 2, 2]);
    const cReplay: AppendOutcome = await ev.append(append("c", "s", [uuid(1), uuid(2)]));
    assert.equal(cReplay.replayed, true);
    assert.equal(cReplay.firstPosition, 1);

    // Reads report the namespace's revision; new writes continue each sequence.
    assert.equal((await kv.get("a", "k1")).revision, 5);
    assert.equal((await kv.get("b", "k1")).revision, 3);
    assert.equal((await kv.get("nobody", "k")).revision, 0, "a namespace never written is at 0");
    assert.equal((await kv.write(put("a", "k3", "new"))).revision, 6);
    assert.equal((await kv.write(put("b", "k3", "new"))).revision, 4);
    const cNew = await ev.append(append("c", "s", [uuid(5)]));
    assert.deepEqual([cNew.firstPosition, cNew.firstVersion, cNew.revision], [5, 4, 5]);
    assert.equal((await kv.write(put("c", "x", "c2"))).revision, 6);
    // A release-1 replica's write still works after the upgrade (through the previous
    // release's signature, agentstate_kv_write.release3.sql) and continues c's sequence.
    assert.equal((await release1Write(oldPool, put("c", "y", "old"))).revision, 7);
  });
});
