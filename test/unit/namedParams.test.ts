import * as assert from "node:assert/strict";
import * as path from "node:path";
import { readFunctions } from "../../src/store/postgres/functions";
import { byName, paramNames, sql } from "../../src/store/postgres/sql";

// This file compiles to dist/test/unit/: the repo is three levels up.
const SOURCE_DIR = path.resolve(__dirname, "../../../src/store/postgres/functions");

/** The parameter names a function file declares, in order. */
function declaredParams(fn: string): string[] {
  const f = readFunctions(SOURCE_DIR).find((x) => x.name === fn);
  assert.ok(f, `functions/${fn}.sql`);
  const head = new RegExp(`CREATE OR REPLACE FUNCTION ${fn}\\(([\\s\\S]*?)\\) RETURNS`).exec(f.sql);
  assert.ok(head, `${fn}: signature found`);
  return [...head[1]!.replace(/--.*$/gm, "").matchAll(/^\s*(p_[a-z0-9_]+)\s/gm)].map((m) => m[1]!);
}

describe("store/postgres sql: parameters cross into SQL by name", () => {
  for (const [statement, fn] of [
    ["kv_write", "agentstate_kv_write"],
    ["event_append", "agentstate_event_append"],
    ["cache_lease", "agentstate_cache_lease"],
  ] as const) {
    it(`sql/${statement}.sql binds by name exactly the parameters ${fn} declares (the build's copy)`, () => {
      const declared = declaredParams(fn);
      assert.ok(declared.length >= 5);
      assert.deepEqual([...paramNames(sql(statement))].sort(), [...declared].sort());
    });
  }

  it("byName orders the values as the statement binds them, and refuses a missing or an unknown name", () => {
    const st = { name: "t_named", text: "-- $9 in a comment\nSELECT f(p_b => $2::int, p_a => $1::text)" };
    assert.deepEqual(paramNames(st), ["p_a", "p_b"]);
    assert.deepEqual(byName(st, { p_b: 2, p_a: "a" }), ["a", 2]);
    assert.throws(() => byName(st, { p_a: "a" }), /t_named takes p_a, p_b; given p_a/);
    assert.throws(() => byName(st, { p_a: "a", p_b: 2, p_c: 3 }), /given p_a, p_b, p_c/);
  });

  it("a value the statement uses beside the function is bound as `$N::type AS p_name`, and a bound $N may be used again", () => {
    const st = {
      name: "t_as",
      text: "WITH w AS (SELECT $3::text AS p_who), r AS (SELECT * FROM f(p_a => $1::text, p_b => $2::int))\nSELECT $1::text, w.p_who FROM r, w",
    };
    assert.deepEqual(paramNames(st), ["p_a", "p_b", "p_who"]);
    assert.deepEqual(byName(st, { p_who: "w", p_b: 2, p_a: "a" }), ["a", 2, "w"]);
    assert.throws(
      () => paramNames({ name: "t_as_twice", text: "SELECT f(p_a => $1), $1::text AS p_b" }),
      /bound twice/,
    );
  });

  it("a statement with a positional parameter, a gap or a parameter bound twice is refused", () => {
    assert.throws(() => paramNames({ name: "t_pos", text: "SELECT f(p_a => $1, $2)" }), /passed by name/);
    assert.throws(() => paramNames({ name: "t_gap", text: "SELECT f(p_a => $1, p_b => $3)" }), /passed by name/);
    assert.throws(() => paramNames({ name: "t_twice", text: "SELECT f(p_a => $1, p_b => $1)" }), /bound twice/);
  });
});
