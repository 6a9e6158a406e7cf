/**
 * Guarantee 3 after a cache epoch move (issue 15; migrations/0020). When a
 * namespace's epoch (or the store's) moves from E to E', a replica that read E
 * before the move still serves E's keys until its lease ends, while a replica
 * that has read E' marks its writes there: the truth saw them marked in the
 * current epoch and asked for no wait, so the write was acknowledged while the
 * first replica still served the key's older value from E: a Get after an
 * acknowledged write returned the value it replaced. Now each move records the
 * end of the leases on the replaced epoch, and changes made in the new one are
 * not acknowledged before it.
 *
 * Two replicas share the cache: Z leases for 9 s (it reads the epoch every
 * 3 s), Y for 0.3 s (every 0.1 s). Right after one of Z's lease reads
 * (seen as a jump of the owner's lease_until, or one under 300 ms ago), the
 * epoch is moved on the database; 0.5 s later Y, which has read the new
 * epoch, writes the key Z has cached (Z reads the epoch again only 3 s after
 * its last read); after Y's acknowledgement a Get through Z must return the
 * new value (and, after an append through Y, a revision at least the
 * append's).
 * Without the change it returned the old value, from Z's cache (both cases),
 * and the append case reported the revision from before the append.
 */
import * as assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { sql } from "../../src/store/postgres/sql";
import { ownerLeaseUntil as ownerLeaseUntilIn } from "../support/ownerLeaseUntil";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster, type Replica } from "../support/startCluster";

const NS = "movewait";
const LEGACY = "movewait-legacy";
const Z_LEASE_MS = 9000;

describe("cache: a write in an epoch younger than the leases on the one it replaced (issue 15)", function () {
  this.timeout(180_000);
  let cluster: Cluster | undefined;
  let z: Replica; // long lease: serves the replaced epoch for a while
  let y: Replica; // short lease: reads the new epoch at once

  before(async function () {
    this.timeout(120_000);
    cluster = await startCluster({
      name: "movewait",
      redis: true,
      replicas: 0,
      env: { AGENTSTATE_CACHE_MARKER_TTL_MS: "3000", AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000" },
    });
    z = await cluster.addReplica({ AGENTSTATE_CACHE_LEASE_MS: String(Z_LEASE_MS) });
    y = await cluster.addReplica({ AGENTSTATE_CACHE_LEASE_MS: "300" });
  });

  after(async () => {
    if (cluster) {
      await pgQuery(cluster.databaseUrl, "DELETE FROM cache_registrations WHERE identity = $1", [LEGACY]).catch(
        () => undefined,
      );
      await cluster.stop();
    }
  });

  const ownerLeaseUntil = () => ownerLeaseUntilIn(cluster!.databaseUrl);

  /** Ms since Z's last lease read: Z's reads set the owner's lease_until to their time + Z_LEASE_MS; Y's never reach it. */
  async function sinceZRead(): Promise<number> {
    const rows = await pgQuery<{ ms: number }>(
      cluster!.databaseUrl,
      `SELECT extract(epoch FROM clock_timestamp() - g.lease_until)::float8 * 1000 + $1 AS ms FROM cache_registrations g
       JOIN agentstate_state s ON s.id = 1 AND g.identity = s.cache_owner`,
      [Z_LEASE_MS],
    );
    return rows[0]?.ms ?? Number.POSITIVE_INFINITY;
  }

  /** Caches `key` = old on Z, then moves the epoch right after one of Z's lease reads. */
  async function cacheThenMove(key: string, move: () => Promise<unknown>): Promise<void> {
    await y.client.compareAndSet({ namespace: NS, key, expected: { any: true }, value: Buffer.from("old") });
    await eventually(
      "a cache hit on Z",
      async () => {
        const before = await cacheReads(z.server);
        await z.client.get({ namespace: NS, key });
        return (await cacheReads(z.server)).hit > before.hit;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    // Right after one of Z's lease reads: the last one if it was under 300 ms ago (a case starts
    // about when Z read, as the last case's write waited out Z's lease), else the next one.
    if ((await sinceZRead()) > 300) {
      // Z's lease reads push the owner's lease_until 9 s ahead; Y's (0.3 s) never do.
      const first = await ownerLeaseUntil();
      await eventually("a lease read by Z", async () => (await ownerLeaseUntil()) !== first, {
        timeoutMs: 30_000,
        intervalMs: 20,
      });
    }
    await move();
    await sleep(500); // Y has read the new epoch (every 0.1 s); Z reads it again only ~3 s after its last read
  }

  /** The same, then writes `key` = new through Y and Gets it through Z. */
  async function writeAfterMove(key: string, move: () => Promise<unknown>): Promise<string> {
    await cacheThenMove(key, move);
    // Acknowledged once Z's lease on the replaced epoch has ended (up to 9 s): past the client's default deadline.
    await y.client.compareAndSet(
      { namespace: NS, key, expected: { any: true }, value: Buffer.from("new") },
      { deadlineMs: 60_000 },
    );
    const got = await z.client.get({ namespace: NS, key });
    return got.item?.value.toString() ?? "(none)";
  }

  it("a namespace's epoch moved: a Get through the other replica after the write returns the new value", async () => {
    const value = await writeAfterMove("ns", () =>
      pgQuery(cluster!.databaseUrl, "SELECT * FROM agentstate_cache_move($1, false)", [NS]),
    );
    assert.equal(value, "new", "Z returned the value the acknowledged write replaced");
  });

  /** Moves the store epoch through agentstate_cache_move: a registration of release 5 makes every move store-wide (migrations/0019). */
  async function moveStoreEpoch(): Promise<void> {
    await pgQuery(
      cluster!.databaseUrl,
      `INSERT INTO cache_registrations (identity, description, registered_at, renewed_at, lease_until, legacy_until)
       VALUES ($1, 'test', now(), now(), now(), now() + interval '1 hour')`,
      [LEGACY],
    );
    const [before] = await pgQuery<{ e: string }>(
      cluster!.databaseUrl,
      "SELECT cache_epoch::text AS e FROM agentstate_state",
    );
    await pgQuery(cluster!.databaseUrl, "SELECT * FROM agentstate_cache_move($1, false)", [NS]);
    const [after] = await pgQuery<{ e: string }>(
      cluster!.databaseUrl,
      "SELECT cache_epoch::text AS e FROM agentstate_state",
    );
    assert.notEqual(after!.e, before!.e, "the store epoch moved");
    await pgQuery(cluster!.databaseUrl, "DELETE FROM cache_registrations WHERE identity = $1", [LEGACY]);
  }

  /** Moves the store epoch as a replica does when the old epoch's keys stay readable (an unsafe eviction policy: cache_epoch_bump with fence_leases). */
  async function bumpStoreEpoch(): Promise<void> {
    const [before] = await pgQuery<{ e: string }>(
      cluster!.databaseUrl,
      "SELECT cache_epoch::text AS e FROM agentstate_state",
    );
    await pgQuery(cluster!.databaseUrl, sql("cache_epoch_bump").text, [null, true]);
    const [after] = await pgQuery<{ e: string }>(
      cluster!.databaseUrl,
      "SELECT cache_epoch::text AS e FROM agentstate_state",
    );
    assert.notEqual(after!.e, before!.e, "the store epoch moved");
  }

  /** Caches a key on Z, moves the epoch, appends through Y; the revision a Get through Z then reports. */
  async function appendAfterMove(
    key: string,
    move: () => Promise<unknown>,
  ): Promise<{ appended: number; got: number }> {
    await cacheThenMove(key, move);
    const appended = await y.client.appendEvent(
      NS,
      "s",
      [{ type: "t", data: Buffer.from("x") }],
      { any: true },
      {
        deadlineMs: 60_000,
      },
    );
    const got = await z.client.get({ namespace: NS, key });
    return { appended: appended.header!.revision, got: got.header!.revision };
  }

  it("the store epoch moved (a replica of release 5 may hold a lease): the same", async () => {
    const value = await writeAfterMove("store", moveStoreEpoch);
    assert.equal(value, "new", "Z returned the value the acknowledged write replaced");
  });

  it("the store epoch bumped with its keys still readable (eviction policy turned unsafe): the same", async () => {
    const value = await writeAfterMove("bump", bumpStoreEpoch);
    assert.equal(value, "new", "Z returned the value the acknowledged write replaced");
  });

  for (const [slug, what, move] of [
    [
      "ns",
      "a namespace move",
      () => pgQuery(cluster!.databaseUrl, "SELECT * FROM agentstate_cache_move($1, false)", [NS]),
    ],
    ["store", "a store-wide move", () => moveStoreEpoch()],
    ["bump", "a store-wide bump", () => bumpStoreEpoch()],
  ] as const) {
    it(`an append noted in the new epoch after ${what}: a Get through the other replica reports a revision at least the append's`, async () => {
      const { appended, got } = await appendAfterMove(`append-${slug}`, move);
      assert.ok(got >= appended, `Get on Z reported revision ${got} after an append at ${appended} was acknowledged`);
    });
  }
});
