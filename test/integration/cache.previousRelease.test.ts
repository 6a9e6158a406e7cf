/**
 * Guarantee 3 beside a replica of a previous release (issue 19): a replica
 * of an older release, still running in a rolling upgrade, does not say
 * under which cache identity it marked a write, and calls
 * agentstate_kv_write with the argument list of its release (its statement,
 * verbatim, in test/fixtures/release<N>-statements): release 3 or older
 * (p_ns text[], no principal; it marks in its own cache whether or not that
 * cache owns the epoch; release 2 does not even register) through the
 * wrapper agentstate_kv_write.release3.sql, release 4 (scalar p_ns, principal
 * and request id, no p_marked_by: migrations/0018) through the parameter's
 * default. Simulated here as such a replica with another cache than the
 * owner's: writes through its statement, marked in the current epoch,
 * acknowledged after the wait that release computes from the reply (release
 * 3: bump_epoch and bump_prev_age_ms, with the same lease settings; release
 * 4 also waits wait_ms). Two replicas of this release share the owning
 * cache; readers through both must never see a version older than one the
 * old caller acknowledged before the read began.
 *
 * Without the owner check of p_marked_by (such a write counted as marked in
 * the owner's cache) the owner's replicas keep serving the replaced value.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "pg";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { startCluster, type Cluster } from "../support/startCluster";

const KEYS = ["a", "b", "c"];
const LEASE_MS = 500;
const MARKER_TTL_MS = 2_000;
const FIXTURES = path.resolve(__dirname, "../../../test/fixtures");

/** A previous release's KV write statement, verbatim, and its parameters for one put marked in `epoch`. */
interface OldRelease {
  release: number;
  statement: string;
  params(ns: string, key: string, value: string, epoch: number): unknown[];
  /** Whether it waits the reply's wait_ms (release 4) or knows only bump_epoch (releases 2 and 3). */
  knowsWaitMs: boolean;
}

const statement = (release: number) =>
  fs.readFileSync(path.join(FIXTURES, `release${release}-statements`, "kv_write.sql"), "utf8");

const OLD_RELEASES: OldRelease[] = [
  {
    release: 3,
    statement: statement(3),
    params: (ns, key, value, epoch) => [
      [ns], [Buffer.from(key)], [1], [Buffer.from(value)], ["application/octet-stream"], [null], [0], [null],
      [null], [null], [null], [null], [null], [epoch], [false], true,
    ], // prettier-ignore
    knowsWaitMs: false,
  },
  {
    release: 4,
    statement: statement(4),
    params: (ns, key, value, epoch) => [
      ns, [Buffer.from(key)], [1], [Buffer.from(value)], ["application/octet-stream"], [null], [0], [null],
      [null], [null], [null], [null], [null], [epoch], [false], [""], ["old-replica"], true,
    ], // prettier-ignore
    knowsWaitMs: true,
  },
];

/** The wait after a bump of releases 2 to 4 (CacheEpoch.waitAfterBumpMs), with the replicas' settings. */
function oldWaitAfterBumpMs(prevAgeMs: number): number {
  const margin = 50 + LEASE_MS / 10;
  if (prevAgeMs + LEASE_MS + margin >= MARKER_TTL_MS) return LEASE_MS + margin;
  return Math.max(0, LEASE_MS - prevAgeMs) + margin;
}

for (const old of OLD_RELEASES) {
  const NS = `prevrel${old.release}`;
  describe(`cache: a replica of release ${old.release} writing beside the owning cache (issue 19)`, function () {
    this.timeout(180_000);
    let cluster: Cluster | undefined;
    let pool: Pool | undefined;
    /** The old replica's writes that moved the epoch. */
    let moved = 0;

    before(async () => {
      cluster = await startCluster({
        name: `prevrel${old.release}`,
        redis: true,
        replicas: 2,
        env: {
          AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
          AGENTSTATE_CACHE_MARKER_TTL_MS: String(MARKER_TTL_MS),
          AGENTSTATE_CACHE_LEASE_MS: String(LEASE_MS),
        },
      });
      pool = new Pool({ connectionString: cluster.databaseUrl, max: 2 });
    });

    after(async () => {
      await pool?.end();
      await cluster?.stop();
    });

    /** One write as the old replica makes it: marked in its own cache in the epoch it believes current. */
    async function oldWrite(key: string, value: string): Promise<number> {
      const epoch = (await pool!.query<{ cache_epoch: string }>("SELECT cache_epoch FROM agentstate_state")).rows[0]!;
      const r = await pool!.query<{
        status: number;
        version: string;
        bump_epoch: string | null;
        bump_prev_age_ms: string | null;
        wait_ms: string | null;
      }>(old.statement, old.params(NS, key, value, Number(epoch.cache_epoch)));
      const row = r.rows[0]!;
      assert.equal(row.status, 1, "applied");
      // Counted as unmarked (no p_marked_by): it moved the owned epoch.
      if (row.bump_epoch !== null) moved++;
      let wait = old.knowsWaitMs && row.wait_ms !== null ? Number(row.wait_ms) + 50 : 0;
      if (row.bump_epoch !== null) wait = Math.max(wait, oldWaitAfterBumpMs(Number(row.bump_prev_age_ms)));
      await sleep(wait);
      return Number(row.version);
    }

    it("no read through the owner's replicas is older than a write the old replica acknowledged", async () => {
      assert.ok(cluster);
      const [c0, c1] = cluster.clients;
      for (const k of KEYS)
        await c0!.compareAndSet({ namespace: NS, key: k, expected: { any: true }, value: Buffer.from("seed") });
      const hits = async () =>
        (await Promise.all(cluster!.servers.map((s) => cacheReads(s)))).reduce((n, c) => n + c.hit, 0);
      await eventually(
        "both replicas serve from the cache",
        async () => {
          for (const c of [c0!, c1!]) for (const k of KEYS) await c.get({ namespace: NS, key: k });
          return (await hits()) > 20;
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );

      const acked = new Map(KEYS.map((k) => [k, 0]));
      const violations: string[] = [];
      let stopped = false;
      let reads = 0;
      let writes = 0;
      const reader = async (i: number) => {
        for (let n = 0; !stopped; n++) {
          const key = KEYS[(i + n) % KEYS.length]!;
          const floor = acked.get(key)!;
          const g = await cluster!.clients[i % 2]!.get({ namespace: NS, key });
          reads++;
          const v = g.found ? g.item!.version : 0;
          if (v < floor)
            violations.push(`replica ${i % 2} key ${key}: read version ${v} after ${floor} was acknowledged`);
        }
      };
      const writer = async () => {
        for (let n = 0; !stopped; n++) {
          const key = KEYS[n % KEYS.length]!;
          const v = await oldWrite(key, `old-${n}`);
          writes++;
          if (v > acked.get(key)!) acked.set(key, v);
          // Let the owner's replicas fill and serve again between the old replica's writes.
          await sleep(MARKER_TTL_MS + LEASE_MS);
          for (const c of [c0!, c1!]) await c.get({ namespace: NS, key });
        }
      };
      const hitsBefore = await hits();
      const loops = [writer(), ...[0, 1, 2, 3].map(reader)];
      await sleep(20_000);
      stopped = true;
      await Promise.all(loops);
      assert.deepEqual(violations.slice(0, 10), [], `${violations.length} stale reads`);
      assert.equal(moved, writes, "every write of the old replica moved the owned epoch");
      assert.ok(writes >= 4 && reads > 200, `a real load: ${writes} old writes, ${reads} reads`);
      assert.ok((await hits()) > hitsBefore, "the owner's replicas served hits between the old replica's writes");
    });
  });
}
