import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { readMigrations } from "../../src/store/postgres/migrate";

// This file compiles to dist/test/unit/: the repo is three levels up, the build two.
const SOURCE_DIR = path.resolve(__dirname, "../../../migrations");
const BUILT_DIR = path.resolve(__dirname, "../../migrations");

describe("store/postgres migrate: readMigrations (the repo's migrations/)", () => {
  const migrations = readMigrations(SOURCE_DIR);

  it("finds the migrations, starting with 0001_core", () => {
    assert.ok(migrations.length >= 1);
    assert.deepEqual(migrations[0] && { id: migrations[0].id, name: migrations[0].name }, { id: 1, name: "0001_core" });
    assert.match(migrations[0]!.sql, /CREATE TABLE kv \(/);
  });

  it("numbers them 1..N without gaps or duplicates, in order", () => {
    assert.deepEqual(
      migrations.map((m) => m.id),
      migrations.map((_, i) => i + 1),
    );
  });

  it("names each after its file, and reads every NNNN_name.sql file", () => {
    const files = fs
      .readdirSync(SOURCE_DIR)
      .filter((f) => f.endsWith(".sql"))
      .sort();
    assert.deepEqual(
      migrations.map((m) => `${m.name}.sql`),
      files,
      "every .sql file in migrations/ is a well-named migration",
    );
    for (const m of migrations) {
      assert.equal(m.sql, fs.readFileSync(path.join(SOURCE_DIR, `${m.name}.sql`), "utf8"));
      assert.ok(m.sql.trim().length > 0, `${m.name} is not empty`);
    }
  });

  it("hold schema only: the SQL functions live in src/store/postgres/functions/", () => {
    for (const m of migrations)
      assert.doesNotMatch(m.sql.replace(/--.*$/gm, ""), /CREATE (OR REPLACE )?FUNCTION/i, m.name);
  });

  it("the build carries the same migrations (dist/migrations, which the server loads)", () => {
    assert.deepEqual(readMigrations(BUILT_DIR), migrations);
  });
});
