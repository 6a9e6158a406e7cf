/**
 * Migration 0019 (a cache epoch per namespace) on a store of release 5, and
 * replicas of release 5 beside this release's through a rolling upgrade.
 * A release-5 replica keys every namespace by the store epoch alone, so the
 * database must never let it lease a store epoch in which a namespace's
 * epoch moved alone: while its registration may hold a lease
 * (`legacy_until`), every move is store-wide, and its renewal moves the store
 * epoch when a namespace has moved in the current one. The release-5 replica
 * is its calls as that release makes them: the lease call's five named
 * arguments and kv_write's nineteen (test/fixtures/release5-functions hold
 * its functions, which build the store before the migration). Real Postgres.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Pool } from "pg";
import type { WriteCommand } from "../../src/domain/types";
import { createPool } from "../../src/store/postgres/createPool";
import { migrate, readMigrations } from "../../src/store/postgres/migrate";
import { PostgresCacheEpochStore } from "../../src/store/postgres/PostgresCacheEpochStore";
import { PostgresKvStore } from "../../src/store/postgres/PostgresKvStore";
import { pgQuery } from "../support/pgQuery";
import { getTestEnv } from "../support/TestEnv";

/** The migrations the servers load: the copy in the build (dist/migrations). */
const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");
/** This file compiles to dist/test/integration/: the repo is three levels up. */
const RELEASE5_FUNCTIONS = path.resolve(__dirname, "../../../test/fixtures/release5-functions");

/** agentstate_cache_lease as release 5 calls it (its sql/cache_lease.sql). */
const OLD_LEASE = `SELECT * FROM agentstate_cache_lease(p_identity => $1::text, p_previous => $2::text,
  p_description => $3::text, p_lease_ms => $4::bigint, p_may_own => $5::boolean)`;

/** agentstate_kv_write as release 5 calls it (its sql/kv_write.sql): no p_marked_ns_epoch. */
const OLD_WRITE = `SELECT status, bump_epoch, bump_prev_age_ms, wait_ms FROM agentstate_kv_write(p_ns => $1::text,
  p_key => $2::bytea[], p_op => $3::smallint[], p_value => $4::bytea[], p_ct => $5::text[], p_ttl_ms => $6::bigint[],
  p_exp_kind => $7::smallint[], p_exp_version => $8::bigint[], p_fence_name => $9::text[],
  p_fence_token => $10::bigint[], p_idem => $11::text[], p_fp => $12::bytea[], p_deadline_ms => $13::bigint[],
  p_marked_epoch => $14::bigint[], p_bump => $15::boolean[], p_principal => $16::text[],
  p_request_id => $17::text[], p_wait => $18::boolean, p_marked_by => $19::text[])`;

const put = (namespace: string, key: string, value: string): WriteCommand => ({
  op: "put",
  namespace,
  key,
  value: Buffer.from(value),
  contentType: "",
  ttlMs: undefined,
  expected: { kind: "any" },
  idempotencyKey: undefined,
  fence: undefined,
});

interface NsRow {
  namespace: string;
  cache_move_epoch: string | null;
  cache_move_seq: string | null;
}

describe("migration 0019: namespace cache epochs on a release-5 store, and release-5 replicas beside (real Postgres)", function () {
  this.timeout(60_000);
  const pools: Pool[] = [];
  let dir: string;
  let url: string;

  after(async () => {
    await Promise.all(pools.map((p) => p.end()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const pool = () => {
    const p = createPool({ connectionString: url, max: 4, statementTimeoutMs: 10_000 });
    pools.push(p);
    return p;
  };
  const storeEpoch = async () =>
    Number((await pgQuery<{ cache_epoch: string }>(url, "SELECT cache_epoch FROM agentstate_state"))[0]!.cache_epoch);
  const nsRow = async (ns: string): Promise<NsRow | undefined> =>
    (
      await pgQuery<NsRow>(
        url,
        "SELECT namespace, cache_move_epoch::text, cache_move_seq::text FROM namespace_revisions WHERE namespace = $1",
        [ns],
      )
    )[0];

  it("a release-5 registration keeps every move store-wide until it lapses; then moves are per namespace", async () => {
    url = await (await getTestEnv()).freshDatabase("nsepochmig");
    // Release 5: the migrations before 0019 and its functions.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-release5-"));
    for (const m of readMigrations(MIGRATIONS_DIR).filter((m) => m.id < 19)) {
      fs.writeFileSync(path.join(dir, `${m.name}.sql`), m.sql);
    }
    const oldPool = pool();
    await migrate(oldPool, dir, { functionsDir: RELEASE5_FUNCTIONS, release: 5 });
    // A release-5 replica with a cache registers (and takes the epoch: it is alone), and writes.
    const oldLease = (leaseMs: number, identity = "old-cache") =>
      oldPool.query(OLD_LEASE, [identity, null, "release 5", leaseMs, true]);
    const first = (await oldLease(1500)).rows[0] as { epoch: number; owner: string };
    assert.equal(first.owner, "old-cache");
    const oldWrite = async (ns: string, bump: boolean, markedEpoch: number | null) =>
      (await oldPool.query<{ status: number; bump_epoch: number | null }>(OLD_WRITE, [
          ns, [Buffer.from("k")], [1], [Buffer.from("v")], [""], [null], [0], [null], [null], [null], [null], [null],
          [null], [markedEpoch], [bump], [""], [""], true, [markedEpoch === null ? null : "old-cache"],
        ])) // prettier-ignore
      .rows[0]!;
    assert.equal((await oldWrite("a", false, await storeEpoch())).status, 1);

    // This release migrates the store: the registration made before is a release-5 replica's.
    const applied = await migrate(pool(), MIGRATIONS_DIR);
    assert.ok(applied.includes("0019_cache_namespace_epochs"), `applied ${applied.join(", ")}`);
    const regs = await pgQuery<{ identity: string; legacy: boolean }>(
      url,
      "SELECT identity, legacy_until = lease_until AS legacy FROM cache_registrations",
    );
    assert.deepEqual(regs, [{ identity: "old-cache", legacy: true }]);

    const epochs = new PostgresCacheEpochStore(pool());
    const kv = new PostgresKvStore(pool(), { batchMax: 16, batchesInFlight: 1, batchesMax: 4 });

    // While it is live: a move of a namespace (the function, and a write that could not mark) is store-wide.
    let e = await storeEpoch();
    await epochs.moveNamespace("a");
    assert.equal(await storeEpoch(), e + 1, "a namespace move while a release-5 lease may be held moves the store");
    assert.equal((await nsRow("a"))?.cache_move_epoch ?? null, null);
    e = await storeEpoch();
    const bumped = await kv.write(put("b", "k", "v"), { cacheFence: { kind: "bump" } });
    assert.ok(bumped.epochBump, "the write that could not mark waits out the move");
    assert.equal(await storeEpoch(), e + 1, "a write that could not mark moves the store epoch");
    // The release-5 replica's own calls work against this release's functions, and its renewals change nothing.
    e = await storeEpoch();
    const renewed = (await oldLease(300)).rows[0] as { epoch: number; owner: string; others: string[] };
    assert.deepEqual([renewed.epoch, renewed.owner], [e, "old-cache"]);
    assert.equal((await oldWrite("a", false, e)).status, 1, "its marked write, in the store epoch, applies");
    assert.equal(
      await storeEpoch(),
      e,
      "a release-5 write marked in the current epoch (namespace epoch 0) moves nothing",
    );

    // Once its registration has lapsed, moves are per namespace. A cache of
    // this release registers (alone now: it takes the epoch, a new store epoch).
    await sleep(1700);
    const lease = (after: number, epoch: number) =>
      epochs.lease({
        identity: "new-cache",
        previous: undefined,
        description: "release 6",
        leaseMs: 60_000,
        mayOwn: true,
        nsMoves: { epoch, after },
      });
    let l = (await lease(0, e))!;
    assert.equal(l.owner, "new-cache");
    e = l.epoch;
    assert.equal(await storeEpoch(), e);
    await epochs.moveNamespace("a");
    assert.equal(await storeEpoch(), e, "the store epoch stays");
    const a1 = await nsRow("a");
    assert.equal(a1?.cache_move_epoch, String(e));
    const moveA = Number(a1?.cache_move_seq);
    assert.ok(moveA > 0);
    await kv.write(put("b", "k", "v2"), { cacheFence: { kind: "bump" } });
    assert.equal(await storeEpoch(), e);
    const moveB = Number((await nsRow("b"))?.cache_move_seq);
    assert.ok(moveB > moveA, "moves are numbered in order");

    // A lease read of this release lists the moves after the last it knows, in order.
    l = (await lease(0, e))!;
    assert.deepEqual(
      l.moves.map((m) => [m.namespace, m.nsEpoch]),
      [
        ["a", moveA],
        ["b", moveB],
      ],
    );
    assert.equal(l.movesMore, false);
    assert.deepEqual(
      (await lease(moveA, e))!.moves.map((m) => m.namespace),
      ["b"],
    );
    assert.deepEqual((await lease(moveB, e))!.moves, []);
    // A caller that knows an older store epoch gets the current one's moves from the first.
    assert.deepEqual(
      (await lease(moveB, e - 1))!.moves.map((m) => m.namespace),
      ["a", "b"],
    );
    // Bounded: at most p_ns_limit moves, and ns_more when there were more.
    const page = await pgQuery<{ ns_moved: string[]; ns_more: boolean }>(
      url,
      `SELECT ns_moved, ns_more FROM agentstate_cache_lease(p_identity => NULL, p_previous => NULL,
         p_description => 'page', p_lease_ms => 1, p_may_own => false, p_ns_epochs => true, p_ns_epoch => $1,
         p_ns_after => 0, p_ns_limit => 1)`,
      [e],
    );
    assert.deepEqual(page, [{ ns_moved: ["a"], ns_more: true }]);

    // Marked writes: one marked in the namespace's current epoch moves nothing; one marked in an older one moves it.
    await kv.write(put("b", "k", "v3"), { cacheFence: { kind: "bump" } });
    const b2 = Number((await nsRow("b"))?.cache_move_seq);
    const marked = (nsEpoch: number) =>
      kv.write(put("b", "k", "v4"), {
        cacheFence: { kind: "marked", epoch: e, nsEpoch, commitBy: performance.now() + 10_000, identity: "new-cache" },
      });
    const ok = await marked(b2);
    assert.equal(ok.epochBump, undefined, "marked in the namespace's current epoch: no move");
    assert.equal(Number((await nsRow("b"))?.cache_move_seq), b2);
    const stale = await marked(0);
    assert.ok(stale.epochBump, "marked in the namespace's replaced epoch: the write moves it");
    assert.ok(Number((await nsRow("b"))?.cache_move_seq) > b2);
    assert.equal(await storeEpoch(), e, "and only it");

    // A release-5 replica of the same cache (one Redis, one identity: no change of owner) renewing while
    // namespaces have moved in the store epoch moves the store epoch, so the epoch it leases holds no namespace
    // move; while it is live, moves are store-wide again.
    const back = (await oldLease(300, "new-cache")).rows[0] as { epoch: number; owner: string };
    assert.deepEqual([back.epoch, back.owner], [e + 1, "new-cache"]);
    await epochs.moveNamespace("c");
    assert.equal(await storeEpoch(), e + 2);
    assert.equal((await nsRow("c"))?.cache_move_epoch ?? null, null);
    // Its renewals while no namespace has moved in the store epoch leave it alone.
    assert.equal(((await oldLease(300, "new-cache")).rows[0] as { epoch: number }).epoch, e + 2);
  });
});
