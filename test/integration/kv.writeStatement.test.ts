/**
 * agentstate_kv_write called directly, with the batches whose handling its
 * leaner body (BENCHMARKS.md §6, "Fourth pass") takes shortcuts for: an
 * absent key's placeholder is not read again in phase 2, a row and its
 * history entry are written by one statement, and a batch that does not wait
 * locks a key's row and learns whether it exists in one statement. Each case
 * is run with p_wait true and false: the same key twice in one batch, a
 * delete then a re-create in one batch, a refused write on an absent key (no
 * placeholder left), and a key held by another transaction (busy, without
 * waiting, while the rest of the batch is written).
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { Pool } from "pg";
import { createPool } from "../../src/store/postgres/createPool";
import { migrate } from "../../src/store/postgres/migrate";
import { getTestEnv } from "../support/TestEnv";

const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");

// KvWriteStatus / KvWriteOp / KvExpectedKind (src/store/postgres/writeStatus.ts).
const APPLIED = 1;
const NOT_APPLIED = 2;
const BUSY = 8;
const PUT = 1;
const DELETE = 2;
const ANY = 0;
const ABSENT = 1;
const VERSION = 2;

interface W {
  key: string;
  op: number;
  kind: number;
  version?: number;
}

/** A result row, its numbers as numbers (bigint columns arrive as strings). */
interface Row {
  idx: number;
  status: number;
  revision: number | null;
  version: number | null;
  create_revision: number | null;
  mod_revision: number | null;
}

const num = (x: unknown): number | null => (x === null ? null : Number(x));

async function write(pool: Pool, ns: string, ws: W[], wait: boolean): Promise<Row[]> {
  const n = ws.length;
  const nulls = Array<null>(n).fill(null);
  const { rows } = await pool.query<Record<keyof Row, unknown>>(
    `SELECT idx, status, revision, version, create_revision, mod_revision FROM agentstate_kv_write(
       p_ns => $1::text, p_key => $2::bytea[], p_op => $3::smallint[], p_value => $4::bytea[], p_ct => $5::text[],
       p_ttl_ms => $6::bigint[], p_exp_kind => $7::smallint[], p_exp_version => $8::bigint[],
       p_fence_name => $9::text[], p_fence_token => $10::bigint[], p_idem => $11::text[], p_fp => $12::bytea[],
       p_deadline_ms => $13::bigint[], p_marked_epoch => $14::bigint[], p_bump => $15::boolean[],
       p_principal => $16::text[], p_request_id => $17::text[], p_wait => $18::boolean)`,
    [
      ns,
      ws.map((w) => Buffer.from(w.key)),
      ws.map((w) => w.op),
      ws.map((w) => Buffer.from(`v-${w.key}`)),
      ws.map(() => ""),
      nulls,
      ws.map((w) => w.kind),
      ws.map((w) => w.version ?? null),
      nulls,
      nulls,
      nulls,
      nulls,
      nulls,
      nulls,
      ws.map(() => false),
      ws.map(() => "test"),
      ws.map(() => "req"),
      wait,
    ],
  );
  return rows
    .map((r) => ({
      idx: Number(r.idx),
      status: Number(r.status),
      revision: num(r.revision),
      version: num(r.version),
      create_revision: num(r.create_revision),
      mod_revision: num(r.mod_revision),
    }))
    .sort((a, b) => a.idx - b.idx);
}

describe("agentstate_kv_write: the batches its shortcuts are about (real Postgres)", () => {
  let pool: Pool;

  before(async () => {
    const url = await (await getTestEnv()).freshDatabase("kv_write_statement");
    pool = createPool({ connectionString: url, max: 4, statementTimeoutMs: 10_000 });
    await migrate(pool, MIGRATIONS_DIR);
  });

  after(async () => {
    await pool?.end();
  });

  const history = async (ns: string, key: string): Promise<{ op: number; version: number; revision: number }[]> =>
    (
      await pool.query<{ op: number; version: number; revision: number }>(
        "SELECT op::int, version::int, revision::int FROM kv_history WHERE namespace = $1 AND key = $2 ORDER BY revision",
        [ns, Buffer.from(key)],
      )
    ).rows;
  const placeholders = async (ns: string): Promise<number> =>
    Number(
      (await pool.query<{ n: string }>("SELECT count(*) AS n FROM kv WHERE namespace = $1 AND version = 0", [ns]))
        .rows[0]!.n,
    );
  const revision = async (ns: string): Promise<number> =>
    (await pool.query<{ revision: number }>("SELECT revision::int FROM namespace_revisions WHERE namespace = $1", [ns]))
      .rows[0]!.revision;

  for (const wait of [true, false]) {
    describe(`p_wait ${wait}`, () => {
      const ns = `ws-${wait}`;

      it("an absent key written twice in one batch: created at version 1, then 2, each with its history entry", async () => {
        const rows = await write(
          pool,
          ns,
          [
            { key: "a", op: PUT, kind: ANY },
            { key: "a", op: PUT, kind: VERSION, version: 1 },
          ],
          wait,
        );
        assert.deepEqual(
          rows.map((r) => [r.status, r.version, r.create_revision, r.mod_revision]),
          [
            [APPLIED, 1, rows[0]!.revision, rows[0]!.revision],
            [APPLIED, 2, rows[0]!.revision, rows[1]!.revision],
          ],
        );
        assert.equal(rows[1]!.revision, rows[0]!.revision! + 1);
        assert.deepEqual(
          (await history(ns, "a")).map((h) => [h.op, h.version, h.revision]),
          [
            [PUT, 1, rows[0]!.revision],
            [PUT, 2, rows[1]!.revision],
          ],
        );
        assert.equal(await revision(ns), rows[1]!.revision);
        assert.equal(await placeholders(ns), 0);
      });

      it("expected absent twice in one batch: the first creates, the second is refused with the item", async () => {
        const rows = await write(
          pool,
          ns,
          [
            { key: "b", op: PUT, kind: ABSENT },
            { key: "b", op: PUT, kind: ABSENT },
          ],
          wait,
        );
        assert.deepEqual(
          rows.map((r) => [r.status, r.version]),
          [
            [APPLIED, 1],
            [NOT_APPLIED, 1],
          ],
        );
        assert.equal((await history(ns, "b")).length, 1);
        assert.equal(await revision(ns), rows[0]!.revision);
      });

      it("a delete then a re-create in one batch: a new incarnation at version 1, both in the history", async () => {
        await write(pool, ns, [{ key: "c", op: PUT, kind: ANY }], wait);
        const rows = await write(
          pool,
          ns,
          [
            { key: "c", op: DELETE, kind: ANY },
            { key: "c", op: PUT, kind: ABSENT },
          ],
          wait,
        );
        assert.deepEqual(
          rows.map((r) => r.status),
          [APPLIED, APPLIED],
        );
        assert.equal(rows[1]!.version, 1);
        assert.equal(rows[1]!.create_revision, rows[1]!.revision);
        assert.deepEqual(
          (await history(ns, "c")).map((h) => [h.op, h.version]),
          [
            [PUT, 1],
            [DELETE, 1],
            [PUT, 1],
          ],
        );
        const kv = await pool.query<{ version: number; create_revision: number }>(
          "SELECT version::int, create_revision::int FROM kv WHERE namespace = $1 AND key = $2",
          [ns, Buffer.from("c")],
        );
        assert.deepEqual(kv.rows, [{ version: 1, create_revision: rows[1]!.revision }]);
      });

      it("a refused write on an absent key leaves no row, no history and the revision as it was", async () => {
        const before = await revision(ns);
        const rows = await write(
          pool,
          ns,
          [
            { key: "d", op: PUT, kind: VERSION, version: 5 },
            { key: "e", op: DELETE, kind: ANY },
          ],
          wait,
        );
        assert.deepEqual(
          rows.map((r) => [r.status, r.revision]),
          [
            [NOT_APPLIED, before],
            [APPLIED, before],
          ],
        );
        assert.equal(await placeholders(ns), 0);
        const left = await pool.query("SELECT 1 FROM kv WHERE namespace = $1 AND key = ANY ($2::bytea[])", [
          ns,
          [Buffer.from("d"), Buffer.from("e")],
        ]);
        assert.equal(left.rowCount, 0);
        assert.equal((await history(ns, "d")).length + (await history(ns, "e")).length, 0);
        assert.equal(await revision(ns), before);
      });

      // (A waiting batch waits for such a key: kv.batch's "a key held by another transaction".)
      if (!wait)
        it("a key another transaction holds: busy without waiting, the rest of the batch written", async () => {
          await write(pool, ns, [{ key: "held", op: PUT, kind: ANY }], wait);
          const holder = await pool.connect();
          try {
            await holder.query("BEGIN");
            await holder.query("SELECT 1 FROM kv WHERE namespace = $1 AND key = $2 FOR UPDATE", [
              ns,
              Buffer.from("held"),
            ]);
            const rows = await write(
              pool,
              ns,
              [
                { key: "free", op: PUT, kind: ANY },
                { key: "held", op: PUT, kind: ANY },
              ],
              wait,
            );
            assert.deepEqual(
              rows.map((r) => [r.status, r.version]),
              [
                [APPLIED, 1],
                [BUSY, null],
              ],
            );
            assert.equal((await history(ns, "held")).length, 1);
          } finally {
            await holder.query("ROLLBACK");
            holder.release();
          }
        });
    });
  }
});
