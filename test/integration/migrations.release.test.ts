/**
 * The rolling-upgrade guard (src/store/postgres/migrate.ts): the database
 * records the release its schema and functions are at; an older server
 * refuses to start and changes nothing, the same release is a no-op, a newer
 * one applies migrations and functions and records its release, and
 * concurrent starters are safe. Against real Postgres.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Pool } from "pg";
import { createPool } from "../../src/store/postgres/createPool";
import { FUNCTIONS_DIR, readFunctions } from "../../src/store/postgres/functions";
import { migrate, readMigrations, ReleaseMismatchError, type MigrateOptions } from "../../src/store/postgres/migrate";
import { RELEASE } from "../../src/store/postgres/release";
import { byName, paramNames, sql } from "../../src/store/postgres/sql";
import { pgQuery } from "../support/pgQuery";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";

/** The migrations the servers load: the copy in the build (dist/migrations). */
const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");
const R = RELEASE.number;
/** This file compiles to dist/test/integration/: the repo is three levels up. */
const FIXTURES = path.resolve(__dirname, "../../../test/fixtures");

interface ProcRow {
  proname: string;
  xmin: string;
  prosrc: string;
}

describe("migrations: the release guard for rolling upgrades (real Postgres)", function () {
  this.timeout(60_000);
  const pools: Pool[] = [];
  const tmpDirs: string[] = [];
  let url: string;

  const pool = (): Pool => {
    const p = createPool({ connectionString: url, max: 2, statementTimeoutMs: 5000 });
    pools.push(p);
    return p;
  };
  const run = (opts?: MigrateOptions) => migrate(pool(), MIGRATIONS_DIR, opts);
  const procs = () =>
    pgQuery<ProcRow>(
      url,
      "SELECT proname, xmin::text AS xmin, prosrc FROM pg_proc WHERE proname LIKE 'agentstate\\_%' ORDER BY proname, oid",
    );
  const releaseRow = async () =>
    await pgQuery<{ release: number; migration: number; sha256: string; applied_at: Date }>(
      url,
      "SELECT release, migration, sha256, applied_at FROM agentstate_release",
    );
  const ledger = () => pgQuery<{ id: number }>(url, "SELECT id FROM agentstate_migrations ORDER BY id");

  /** A copy of the build's functions/ in which agentstate_item_json carries `marker` in its body. */
  const functionsWithMarker = (marker: string): string => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-functions-"));
    tmpDirs.push(dir);
    fs.cpSync(FUNCTIONS_DIR, dir, { recursive: true });
    const file = path.join(dir, "agentstate_item_json.sql");
    fs.writeFileSync(
      file,
      fs.readFileSync(file, "utf8").replace("SELECT jsonb_build_object(", `-- ${marker}\n  SELECT jsonb_build_object(`),
    );
    return dir;
  };

  beforeEach(async () => {
    url = await (await getTestEnv()).freshDatabase("release");
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end()));
    for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it("a new database gets every migration and function, and records this release", async () => {
    const migrations = readMigrations(MIGRATIONS_DIR);
    assert.deepEqual(
      await run(),
      migrations.map((m) => m.name),
    );
    assert.deepEqual(
      (await procs()).map((p) => p.proname),
      readFunctions()
        .map((f) => f.creates)
        .sort(),
    );
    const [row] = await releaseRow();
    assert.equal(row?.release, R);
    assert.equal(row?.migration, migrations.at(-1)!.id);
    assert.match(row?.sha256 ?? "", /^[0-9a-f]{64}$/);
  });

  it("the statements that call the write functions bind exactly the parameters Postgres has for them", async () => {
    await run();
    for (const [statement, fn] of [
      ["kv_write", "agentstate_kv_write"],
      ["event_append", "agentstate_event_append"],
      ["checkpoint_put", "agentstate_checkpoint_put"],
    ]) {
      // This release's signature: the one with the most parameters (a previous
      // release's, kept for its replicas in a rolling upgrade, has fewer).
      const [row] = await pgQuery<{ names: string[] }>(
        url,
        "SELECT proargnames AS names FROM pg_proc WHERE proname = $1 ORDER BY pronargs DESC",
        [fn],
      );
      // Input parameters only (p_*): a RETURNS TABLE's columns are listed too, as OUT arguments.
      const inputs = row!.names.filter((n) => n.startsWith("p_"));
      // What the statement passes to the function (`p_name => $N`; a statement may bind values of
      // its own beside, `$N::type AS p_name`, such as the audit trail's principal and request id).
      const passed = [
        ...sql(statement!)
          .text.replace(/--.*$/gm, "")
          .matchAll(/\b(p_[a-z0-9_]+)\s*=>/g),
      ].map((m) => m[1]!);
      assert.deepEqual(passed.sort(), inputs.sort(), fn);
      assert.ok(
        passed.every((n) => paramNames(sql(statement!)).includes(n)),
        fn,
      );
    }
  });

  it("the previous release's kv_write call (p_ns per write) runs each namespace's writes through this release's, in order", async () => {
    await run();
    // Release 3's statement exactly as its replicas send it (test/fixtures/release3-statements).
    const st = {
      name: "release3_kv_write",
      text: fs.readFileSync(path.join(FIXTURES, "release3-statements", "kv_write.sql"), "utf8"),
    };
    const p = pool();
    const rows = await p.query<{ idx: number; status: number; revision: string; version: string | null }>(
      st,
      byName(st, {
        p_ns: ["b", "a", "b", "a"],
        p_key: ["x", "x", "x", "y"].map((k) => Buffer.from(k)),
        p_op: [1, 1, 1, 1],
        p_value: ["b1", "a1", "b2", "a2"].map((v) => Buffer.from(v)),
        p_ct: ["", "", "", ""],
        p_ttl_ms: [null, null, null, null],
        p_exp_kind: [0, 0, 1, 0], // the third expects b/x absent: written by the first, so not applied
        p_exp_version: [null, null, null, null],
        p_fence_name: [null, null, null, null],
        p_fence_token: [null, null, null, null],
        p_idem: [null, null, null, null],
        p_fp: [null, null, null, null],
        p_deadline_ms: [null, null, null, null],
        p_marked_epoch: [null, null, null, null],
        p_bump: [false, false, false, false],
        p_wait: true,
      }),
    );
    assert.deepEqual(
      rows.rows.map((r) => [r.idx, r.status, Number(r.revision), r.version === null ? null : Number(r.version)]),
      [
        [1, 1, 1, 1], // applied: b's revision 1
        [2, 1, 1, 1], // applied: a's revision 1
        [3, 2, 1, 1], // not applied: b/x as the first write left it
        [4, 1, 2, 1], // applied: a's revision 2
      ],
    );
    const history = await pgQuery<{ ns: string; rev: string; principal: string | null; request_id: string | null }>(
      url,
      "SELECT namespace AS ns, revision AS rev, principal, request_id FROM kv_history ORDER BY namespace, revision",
    );
    assert.deepEqual(
      history.map((h) => [h.ns, Number(h.rev), h.principal, h.request_id]),
      [
        ["a", 1, null, null],
        ["a", 2, null, null],
        ["b", 1, null, null],
      ],
    );
  });

  it("the same release again changes nothing: no migration, no function replaced, the release row untouched", async () => {
    await run();
    const before = { procs: await procs(), release: await releaseRow() };
    assert.deepEqual(await run(), []);
    assert.deepEqual({ procs: await procs(), release: await releaseRow() }, before);
  });

  it("an older server refuses to start with a clear message, and the newer functions stay as they are", async () => {
    // The database at release R+1, as a newer server would leave it.
    await run({ release: R + 1, functionsDir: functionsWithMarker("release R+1") });
    const before = { procs: await procs(), release: await releaseRow(), ledger: await ledger() };
    assert.match(before.procs.find((p) => p.proname === "agentstate_item_json")!.prosrc, /release R\+1/);

    await assert.rejects(
      run(),
      (err: Error) =>
        err instanceof ReleaseMismatchError &&
        err.message === `database is at release ${R + 1}, this server is release ${R}; upgrade the server`,
    );
    assert.deepEqual({ procs: await procs(), release: await releaseRow(), ledger: await ledger() }, before);
  });

  it("a real server of the older release exits at start with that message", async () => {
    await run({ release: R + 1 });
    await assert.rejects(
      ServerProcess.start({ DATABASE_URL: url }),
      new RegExp(`database is at release ${R + 1}, this server is release ${R}; upgrade the server`),
    );
  });

  it("a newer server replaces the functions and records its release; then the older one refuses", async () => {
    await run();
    assert.deepEqual(await run({ release: R + 1, functionsDir: functionsWithMarker("newer") }), []);
    assert.match((await procs()).find((p) => p.proname === "agentstate_item_json")!.prosrc, /newer/);
    assert.equal((await releaseRow())[0]?.release, R + 1);
    await assert.rejects(run(), ReleaseMismatchError);
  });

  it("the same release number with other content refuses (a changed release needs a new number)", async () => {
    await run();
    const before = await procs();
    await assert.rejects(
      run({ functionsDir: functionsWithMarker("edited without a bump") }),
      (err: Error) => err instanceof ReleaseMismatchError && /database is at release \d+ with other/.test(err.message),
    );
    assert.deepEqual(await procs(), before);
  });

  it("a database from before releases were recorded gets its functions replaced in place and the release recorded", async () => {
    await run();
    // As main left databases: migrations and functions, no release row.
    await pgQuery(url, "DROP TABLE agentstate_release");
    const before = await procs();
    assert.deepEqual(await run(), []);
    const after = await procs();
    assert.deepEqual(
      after.map((p) => [p.proname, p.prosrc]),
      before.map((p) => [p.proname, p.prosrc]),
    );
    assert.ok(
      after.every((p, i) => p.xmin !== before[i]!.xmin),
      "every function was replaced",
    );
    assert.equal((await releaseRow())[0]?.release, R);
  });

  it("concurrent starters of one release: one applies everything, the others nothing, and all start", async () => {
    const results = await Promise.all(Array.from({ length: 4 }, () => run()));
    const names = readMigrations(MIGRATIONS_DIR).map((m) => m.name);
    assert.deepEqual(
      results.filter((r) => r.length > 0),
      [names],
    );
    assert.equal((await ledger()).length, names.length);
    assert.equal((await releaseRow()).length, 1);
  });

  it("an older and a newer server starting together end at the newer release, never the older", async () => {
    for (let round = 0; round < 3; round++) {
      url = await (await getTestEnv()).freshDatabase("release_race");
      const [older, newer] = await Promise.allSettled([
        run(),
        run({ release: R + 1, functionsDir: functionsWithMarker("newer") }),
      ]);
      assert.equal(newer.status, "fulfilled");
      if (older.status === "rejected") assert.ok(older.reason instanceof ReleaseMismatchError);
      assert.equal((await releaseRow())[0]?.release, R + 1);
      assert.match((await procs()).find((p) => p.proname === "agentstate_item_json")!.prosrc, /newer/);
    }
  });
});
