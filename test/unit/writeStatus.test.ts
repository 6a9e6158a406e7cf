import * as assert from "node:assert/strict";
import * as path from "node:path";
import { readFunctions } from "../../src/store/postgres/functions";
import {
  CheckpointPutBatchStatus,
  CheckpointPutStatus,
  CheckpointWritesStatus,
  EventAppendStatus,
  EventExpectedKind,
  KvExpectedKind,
  KvWriteOp,
  KvWriteStatus,
} from "../../src/store/postgres/writeStatus";

// This file compiles to dist/test/unit/: the repo is three levels up.
const SOURCE_DIR = path.resolve(__dirname, "../../../src/store/postgres/functions");

/** PascalCase member -> its plpgsql constant: `c_` + prefix + snake_case. */
const constantName = (prefix: string, member: string) =>
  `c_${prefix}${member.replace(/(?<!^)([A-Z])/g, "_$1").toLowerCase()}`;

/** The `c_name CONSTANT smallint := N;` declarations of a function file. */
function smallintConstants(sql: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of sql.matchAll(/^\s*(c_[a-z0-9_]+) CONSTANT smallint := (-?\d+);/gm)) {
    assert.ok(!out.has(m[1]!), `${m[1]} declared twice`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Each function's constant sets: prefix ('' for statuses) and the TypeScript object they mirror. */
const CONTRACT: Record<string, [string, Record<string, number>][]> = {
  agentstate_kv_write: [
    ["", KvWriteStatus],
    ["op_", KvWriteOp],
    ["expect_", KvExpectedKind],
  ],
  agentstate_event_append: [
    ["", EventAppendStatus],
    ["expect_", EventExpectedKind],
  ],
  agentstate_checkpoint_put: [["", CheckpointPutStatus]],
  agentstate_checkpoint_writes_put: [["", CheckpointWritesStatus]],
  agentstate_checkpoint_put_batch: [["", CheckpointPutBatchStatus]],
};

describe("store/postgres writeStatus: the TypeScript codes and the functions' plpgsql constants agree", () => {
  const functions = new Map(readFunctions(SOURCE_DIR).map((f) => [f.name, f.sql]));

  it("names the conversion: Applied -> c_applied, NoStream -> c_expect_no_stream", () => {
    assert.equal(constantName("", "Applied"), "c_applied");
    assert.equal(constantName("", "IdempotencyKeyReused"), "c_idempotency_key_reused");
    assert.equal(constantName("expect_", "NoStream"), "c_expect_no_stream");
  });

  for (const [fn, sets] of Object.entries(CONTRACT)) {
    it(`${fn}: every constant is a member with its value, and every member a constant`, () => {
      const sql = functions.get(fn);
      assert.ok(sql !== undefined, `functions/${fn}.sql exists`);
      const declared = smallintConstants(sql);
      const expected = new Map<string, number>();
      for (const [prefix, members] of sets) {
        for (const [member, value] of Object.entries(members)) expected.set(constantName(prefix, member), value);
      }
      assert.deepEqual(
        [...declared].sort(),
        [...expected].sort(),
        `the smallint constants of functions/${fn}.sql mirror src/store/postgres/writeStatus.ts`,
      );
    });

    it(`${fn}: statuses are set and compared by name, never as bare numbers`, () => {
      const body = functions.get(fn)!.replace(/--.*$/gm, "");
      assert.doesNotMatch(body, /(status|st\[i\]) (:=|=|<>) \d/);
      assert.doesNotMatch(body, /ROW\(i, \d/);
    });
  }

  it("within a set, every value is distinct", () => {
    for (const set of [KvWriteStatus, KvWriteOp, KvExpectedKind, EventAppendStatus, EventExpectedKind]) {
      const values = Object.values(set);
      assert.equal(new Set(values).size, values.length);
    }
  });
});
