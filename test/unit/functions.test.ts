import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FUNCTIONS_DIR, readFunctions } from "../../src/store/postgres/functions";

// This file compiles to dist/test/unit/: the repo is three levels up.
const SOURCE_DIR = path.resolve(__dirname, "../../../src/store/postgres/functions");

describe("store/postgres functions: readFunctions (src/store/postgres/functions/)", () => {
  const functions = readFunctions(SOURCE_DIR);

  it("reads one file per function, each creating the function it is named after with CREATE OR REPLACE", () => {
    const files = fs.readdirSync(SOURCE_DIR).filter((f) => f.endsWith(".sql"));
    assert.deepEqual(functions.map((f) => `${f.name}.sql`).sort(), files.sort());
    for (const f of functions) {
      assert.equal(f.sql.match(/CREATE (OR REPLACE )?FUNCTION/g)?.length, 1, `${f.name}: one function per file`);
    }
    assert.ok(functions.some((f) => f.name === "agentstate_kv_write"));
    assert.ok(functions.some((f) => f.name === "agentstate_event_append"));
  });

  it("each file opens with a header comment naming the function", () => {
    for (const f of functions) assert.match(f.sql, new RegExp(`^-- ${f.creates}\\(`), f.name);
  });

  it("orders them dependencies first, and each names (Requires) the functions of the folder it calls", () => {
    const names = functions.map((f) => f.name);
    for (const [i, f] of functions.entries()) {
      const body = f.sql.replace(/^--.*$/gm, "");
      const called = names.filter((n) => n !== f.name && new RegExp(`\\b${n}\\(`).test(body));
      assert.deepEqual([...f.requires].sort(), called.sort(), `${f.name}: Requires line lists what it calls`);
      for (const r of f.requires) assert.ok(names.indexOf(r) < i, `${r} before ${f.name}`);
    }
  });

  it("the order is deterministic: by name where no dependency decides, and refuses cycles and unknown names", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fns-"));
    try {
      const fn = (name: string, requires?: string) =>
        fs.writeFileSync(
          path.join(dir, `${name}.sql`),
          `-- ${name}()\n${requires ? `-- Requires: ${requires}\n` : ""}CREATE OR REPLACE FUNCTION ${name}() RETURNS int LANGUAGE sql AS 'SELECT 1';\n`,
        );
      fn("agentstate_c");
      fn("agentstate_a", "agentstate_c, agentstate_b");
      fn("agentstate_b");
      fn("agentstate_d");
      assert.deepEqual(
        readFunctions(dir).map((f) => f.name),
        ["agentstate_b", "agentstate_c", "agentstate_a", "agentstate_d"],
      );
      fn("agentstate_b", "agentstate_a");
      assert.throws(() => readFunctions(dir), /cycle in Requires: agentstate_a -> agentstate_b -> agentstate_a/);
      fn("agentstate_b", "agentstate_zz");
      assert.throws(() => readFunctions(dir), /agentstate_b\.sql requires agentstate_zz, which has no file/);
      fs.writeFileSync(
        path.join(dir, "agentstate_b.sql"),
        "CREATE FUNCTION agentstate_b() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
      );
      assert.throws(() => readFunctions(dir), /must create the function agentstate_b with CREATE OR REPLACE FUNCTION/);
      fn("agentstate_b");
      fs.writeFileSync(path.join(dir, "kv write.sql"), "SELECT 1;\n");
      assert.throws(
        () => readFunctions(dir),
        /functions\/kv write\.sql: a function file is named agentstate_<name>\.sql/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a file <function>.<overload>.sql creates another signature of <function>, after the files it requires", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fns-"));
    try {
      const create = (file: string, fnName: string, params: string, requires?: string) =>
        fs.writeFileSync(
          path.join(dir, file),
          `-- ${fnName}(${params})\n${requires ? `-- Requires: ${requires}\n` : ""}` +
            `CREATE OR REPLACE FUNCTION ${fnName}(${params}) RETURNS int LANGUAGE sql AS 'SELECT 1';\n`,
        );
      create("agentstate_w.release3.sql", "agentstate_w", "p_ns text[]", "agentstate_w");
      create("agentstate_w.sql", "agentstate_w", "p_ns text");
      assert.deepEqual(
        readFunctions(dir).map((f) => [f.name, f.creates]),
        [
          ["agentstate_w", "agentstate_w"],
          ["agentstate_w.release3", "agentstate_w"],
        ],
      );
      create("agentstate_w.release3.sql", "agentstate_x", "p_ns text[]");
      assert.throws(() => readFunctions(dir), /agentstate_w\.release3\.sql: must create the function agentstate_w /);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const kv = functions.filter((f) => f.creates === "agentstate_kv_write").map((f) => f.name);
    assert.deepEqual(kv, ["agentstate_kv_write", "agentstate_kv_write.release3"]);
  });

  it("the build carries the same functions (dist/src/store/postgres/functions, which the server applies)", () => {
    assert.equal(FUNCTIONS_DIR, path.resolve(__dirname, "../../src/store/postgres/functions"));
    assert.deepEqual(readFunctions(), functions);
  });
});
