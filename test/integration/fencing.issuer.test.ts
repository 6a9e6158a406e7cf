/**
 * FencingTokenIssuer against a real Postgres: tokens issued in batches are
 * still strictly increasing per name and durable, whatever the concurrency.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { Pool } from "pg";
import { createPool } from "../../src/store/postgres/createPool";
import { FencingTokenIssuer } from "../../src/store/postgres/FencingTokenIssuer";
import { migrate } from "../../src/store/postgres/migrate";
import { pgQuery } from "../support/pgQuery";
import { getTestEnv } from "../support/TestEnv";

const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");

describe("fencing tokens issued in batches (real Postgres)", function () {
  this.timeout(60_000);
  let pool: Pool;
  let url: string;

  before(async () => {
    url = await (await getTestEnv()).freshDatabase("fencing_issuer");
    pool = createPool({ connectionString: url, max: 4, statementTimeoutMs: 5000 });
    await migrate(pool, MIGRATIONS_DIR);
  });
  after(async () => {
    await pool?.end();
  });

  it("one name issued many times at once: 1..n, in call order, each once", async () => {
    const issuer = new FencingTokenIssuer(pool);
    const got = await Promise.all(Array.from({ length: 25 }, () => issuer.issue("ns", "same")));
    assert.deepEqual(
      got.map((t) => t.token),
      Array.from({ length: 25 }, (_, i) => i + 1),
    );
  });

  it("many names at once share statements; each name's tokens keep increasing, across issuers", async () => {
    const a = new FencingTokenIssuer(pool);
    const b = new FencingTokenIssuer(pool);
    const names = Array.from({ length: 60 }, (_, i) => `n${i}`);
    const first = await Promise.all(names.map((n, i) => (i % 2 ? a : b).issue("ns", n)));
    assert.ok(first.every((t) => t.token === 1));
    const second = await Promise.all(names.map((n, i) => (i % 2 ? b : a).issue("ns", n)));
    assert.ok(second.every((t) => t.token === 2));
    const other = await a.issue("other-ns", "n0");
    assert.equal(other.token, 1, "names are per namespace");
    const rows = await pgQuery<{ n: number }>(
      url,
      "SELECT count(*)::int AS n FROM fencing_tokens WHERE namespace = 'ns' AND name LIKE 'n%' AND last_token = 2",
    );
    assert.equal(rows[0]!.n, 60, "durable in Postgres");
  });
});
