/**
 * Guarantee 3 beside a replica of a previous release (issue 19): a replica
 * of release 3 or older, still running in a rolling upgrade, does not say
 * under which cache identity it marked a write (it marks in its own cache
 * whether or not that cache owns the epoch; release 2 does not even
 * register), and calls agentstate_kv_write with the argument list of its
 * release. Simulated here as such a replica with another cache than the
 * owner's: writes through the old argument list (no p_marked_by), marked in
 * the current epoch, acknowledged after the wait that release computes from
 * the reply (bump_epoch and bump_prev_age_ms, with the same lease settings;
 * it knows nothing of wait_ms). Two replicas of this release share the owning
 * cache; readers through both must never see a version older than one the
 * old caller acknowledged before the read began.
 *
 * Without the owner check of p_marked_by (such a write counted as marked in
 * the owner's cache) the owner's replicas keep serving the replaced value.
 */
import * as assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "pg";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { startCluster, type Cluster } from "../support/startCluster";

const NS = "prevrel";
const KEYS = ["a", "b", "c"];
const LEASE_MS = 500;
const MARKER_TTL_MS = 2_000;

/** agentstate_kv_write as releases 2 and 3 call it (named notation, no p_marked_by). */
const OLD_CALL = `SELECT status, version, bump_epoch, bump_prev_age_ms FROM agentstate_kv_write(
  p_ns => $1::text[], p_key => $2::bytea[], p_op => $3::smallint[], p_value => $4::bytea[], p_ct => $5::text[],
  p_ttl_ms => $6::bigint[], p_exp_kind => $7::smallint[], p_exp_version => $8::bigint[],
  p_fence_name => $9::text[], p_fence_token => $10::bigint[], p_idem => $11::text[], p_fp => $12::bytea[],
  p_deadline_ms => $13::bigint[], p_marked_epoch => $14::bigint[], p_bump => $15::boolean[], p_wait => $16::boolean)`;

/** The wait after a bump of releases 2 and 3 (CacheEpoch.waitAfterBumpMs), with the replicas' settings. */
function oldWaitAfterBumpMs(prevAgeMs: number): number {
  const margin = 50 + LEASE_MS / 10;
  if (prevAgeMs + LEASE_MS + margin >= MARKER_TTL_MS) return LEASE_MS + margin;
  return Math.max(0, LEASE_MS - prevAgeMs) + margin;
}

describe("cache: a replica of a previous release writing beside the owning cache (issue 19)", function () {
  this.timeout(180_000);
  let cluster: Cluster | undefined;
  let pool: Pool | undefined;

  before(async () => {
    cluster = await startCluster({
      name: "prevrel",
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
    }>(
      OLD_CALL,
      [
        [NS], [Buffer.from(key)], [1], [Buffer.from(value)], ["application/octet-stream"], [null], [0], [null],
        [null], [null], [null], [null], [null], [Number(epoch.cache_epoch)], [false], true,
      ], // prettier-ignore
    );
    const row = r.rows[0]!;
    assert.equal(row.status, 1, "applied");
    if (row.bump_epoch !== null) await sleep(oldWaitAfterBumpMs(Number(row.bump_prev_age_ms)));
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
    assert.ok(writes >= 4 && reads > 200, `a real load: ${writes} old writes, ${reads} reads`);
    assert.ok((await hits()) > hitsBefore, "the owner's replicas served hits between the old replica's writes");
  });
});
