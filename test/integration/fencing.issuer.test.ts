/**
 * FencingTokenIssuer against a real Postgres: tokens issued in batches are
 * still strictly increasing per name and durable, whatever the concurrency.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import type { Pool } from "pg";
import type { WriteCommand } from "../../src/domain/types";
import { createPool } from "../../src/store/postgres/createPool";
import { FencingTokenIssuer } from "../../src/store/postgres/FencingTokenIssuer";
import { migrate } from "../../src/store/postgres/migrate";
import { PostgresKvStore } from "../../src/store/postgres/PostgresKvStore";
import { eventually } from "../support/eventually";
import { holdRowLock } from "../support/holdRowLock";
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

  it("latest: reads asked for together share statements; each gets its own name's latest token", async () => {
    const issuer = new FencingTokenIssuer(pool);
    for (let i = 0; i < 3; i++) await issuer.issue("latest", "three");
    await issuer.issue("latest", "one");
    let statements = 0;
    const query = pool.query.bind(pool);
    const counting = Object.assign(Object.create(pool) as Pool, {
      query: ((...args: Parameters<Pool["query"]>) => {
        statements++;
        return (query as (...a: unknown[]) => unknown)(...args);
      }) as Pool["query"],
    });
    const reader = new FencingTokenIssuer(counting);
    const names = Array.from({ length: 40 }, (_, i) => ["three", "one", "never"][i % 3]!);
    const got = await Promise.all(names.map((n) => reader.latest("latest", n)));
    assert.deepEqual(
      got.map((t) => t.token),
      names.map((n) => ({ three: 3, one: 1, never: null })[n]),
    );
    assert.ok(statements <= 2, `40 reads asked for at once took ${statements} statements`);
    // Each reply carries its lock namespace's revision (0: no change in "latest" yet).
    const revision = (
      await pgQuery<{ r: string }>(
        url,
        "SELECT coalesce((SELECT revision FROM namespace_revisions WHERE namespace = 'latest'), 0) AS r",
      )
    )[0]!;
    assert.ok(got.every((t) => t.revision === Number(revision.r)));
    assert.equal((await reader.latest("other", "three")).token, null, "names are per namespace");
    // A read asked for after an issue returned sees that token (Unlock after Lock).
    const issued = await issuer.issue("latest", "one");
    assert.equal((await reader.latest("latest", "one")).token, issued.token);
  });

  it("a deadlock with a batch of fenced writes does not fail the tokens: the batch is issued again", async () => {
    // A batch of writes takes its fence rows FOR SHARE in key order, the
    // issuer takes them in name order: they can deadlock. Make the issuer the
    // one Postgres aborts (the shorter deadlock_timeout), then check it retries.
    const withDeadlockTimeout = (t: string) => `${url}?options=${encodeURIComponent(`-c deadlock_timeout=${t}`)}`;
    const tokenPool = createPool({ connectionString: withDeadlockTimeout("50ms"), max: 2, statementTimeoutMs: 20_000 });
    const kvPool = createPool({ connectionString: withDeadlockTimeout("10s"), max: 2, statementTimeoutMs: 20_000 });
    try {
      const issuer = new FencingTokenIssuer(tokenPool);
      const kv = new PostgresKvStore(kvPool, { batchMax: 64, batchesInFlight: 1, batchesMax: 4 });
      assert.equal((await issuer.issue("dl", "A")).token, 1);
      assert.equal((await issuer.issue("dl", "B")).token, 1);
      const put = (key: string, lockName?: string): WriteCommand => ({
        op: "put",
        namespace: "dl",
        key,
        value: Buffer.from("v"),
        contentType: "",
        ttlMs: undefined,
        expected: { kind: "any" },
        idempotencyKey: undefined,
        fence: lockName === undefined ? undefined : { lockName, token: 1 },
      });
      const waiting = (statement: string) =>
        eventually(`${statement} waiting for a lock`, async () => {
          const rows = await pgQuery(
            url,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1",
            [`-- ${statement}:%`],
          );
          return rows.length > 0;
        });

      const release = await holdRowLock(
        url,
        "SELECT 1 FROM fencing_tokens WHERE namespace = 'dl' AND name = 'B' FOR SHARE",
        [],
      );
      // Behind a batch for X, A and B share the next batch: it takes A, then waits for B.
      const x = issuer.issue("dl", "X");
      const tokens = Promise.all([issuer.issue("dl", "A"), issuer.issue("dl", "B")]);
      await x;
      await waiting("fencing_issue");
      // Behind a write of k0, k1 (fenced by B) and k2 (fenced by A) share the next batch:
      // it takes B FOR SHARE (as the holder does), then waits for A.
      const k0 = kv.write(put("k0"));
      const writes = Promise.all([kv.write(put("k1", "B")), kv.write(put("k2", "A"))]);
      await k0;
      await waiting("kv_write");
      await release(); // now the issuer waits for the writes and they for it
      const [a, b] = await tokens;
      assert.deepEqual([a.token, b.token], [2, 2]);
      assert.deepEqual(
        (await writes).map((w) => w.applied),
        [true, true],
      );
    } finally {
      await Promise.all([tokenPool.end(), kvPool.end()]);
    }
  });
});
