import * as assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import type { ChangeOp } from "../../src/domain/audit";
import { AUDIT_OPS } from "../../src/store/postgres/PostgresAuditLog";
import { KvWriteOp } from "../../src/store/postgres/writeStatus";

// This file compiles to dist/test/unit/: the repo is three levels up.
const SQL_DIR = path.resolve(__dirname, "../../../src/store/postgres/sql");

/** Every statement that records an audit row, and the operation it records. */
const STATEMENT_OPS: Record<string, ChangeOp> = {
  checkpoint_put: "checkpoint_put",
  checkpoint_put_batch: "checkpoint_put",
  checkpoint_writes_put: "checkpoint_writes",
  checkpoint_writes_put_small: "checkpoint_writes",
  checkpoint_writes_put_small_batch: "checkpoint_writes",
  checkpoint_delete_thread: "thread_delete",
  checkpoint_copy_thread: "thread_copy",
  checkpoint_prune: "checkpoint_prune",
  checkpoint_delete_for_runs: "checkpoint_delete_runs",
  store_put: "item_put",
  store_delete: "item_delete",
};

/** The op literals a statement writes into `table`: the second value of each INSERT's SELECT list. */
function insertedOps(sqlText: string, table: string): number[] {
  const re = new RegExp(`INSERT INTO ${table} \\(([^)]*)\\)\\s*SELECT ([^\\n]*)`, "g");
  const ops: number[] = [];
  for (const m of sqlText.matchAll(re)) {
    const columns = m[1]!.split(",").map((c) => c.trim());
    const values = m[2]!.split(",").map((v) => v.trim());
    const at = columns.indexOf("op");
    assert.ok(at >= 0, `an INSERT INTO ${table} without an op column`);
    const literal = /^\d+$/.exec(values[at] ?? "");
    assert.ok(literal, `INSERT INTO ${table}: op is not a literal in "${m[2]}"`);
    ops.push(Number(literal[0]));
  }
  return ops;
}

const byOp = (op: ChangeOp) =>
  Object.entries(AUDIT_OPS)
    .filter(([, name]) => name === op)
    .map(([n]) => Number(n));

describe("store/postgres audit ops: the numbers the statements write and the names ListChanges reports agree", () => {
  const files = readdirSync(SQL_DIR).filter((f) => f.endsWith(".sql"));

  it("every statement that inserts into audit_changes is listed here, and writes its operation's number", () => {
    const writers = files
      .map((f) => f.replace(/\.sql$/, ""))
      .filter((name) => /INSERT INTO audit_changes/.test(readFileSync(path.join(SQL_DIR, `${name}.sql`), "utf8")));
    assert.deepEqual(writers.sort(), Object.keys(STATEMENT_OPS).sort());
    for (const name of writers) {
      const ops = insertedOps(readFileSync(path.join(SQL_DIR, `${name}.sql`), "utf8"), "audit_changes");
      assert.ok(ops.length > 0, `${name}: no op literal found`);
      for (const op of ops) assert.equal(AUDIT_OPS[op], STATEMENT_OPS[name], `${name} writes op ${op}`);
    }
  });

  it("each operation has one number; the key writes and the expiry sweep use the table's numbers", () => {
    for (const op of new Set(Object.values(AUDIT_OPS))) assert.equal(byOp(op).length, 1, `${op} has one number`);
    assert.equal(AUDIT_OPS[KvWriteOp.Put], "put");
    assert.equal(AUDIT_OPS[KvWriteOp.Delete], "delete");
    const sweep = insertedOps(readFileSync(path.join(SQL_DIR, "kv_expire_sweep.sql"), "utf8"), "kv_history");
    assert.deepEqual(
      sweep.map((op) => AUDIT_OPS[op]),
      ["expire"],
    );
  });
});
