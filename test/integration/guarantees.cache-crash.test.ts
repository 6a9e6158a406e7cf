/**
 * Guarantee 3, deterministically: a cached read is never stale, even when the
 * replica that wrote is killed between its commit and its cache update.
 *
 * Two replicas share one Postgres and one cache Redis; A reaches Redis through
 * toxiproxy, B directly. B first serves key k from the cache. A's
 * CompareAndSet then marks k in flight in Redis and waits inside its
 * transaction on a row lock the test holds; meanwhile B reads k (the old
 * version, which the write-in-flight marker keeps out of the cache). The test
 * black-holes A's Redis link, lets A commit (seen in Postgres), and kills A
 * with SIGKILL before it could update the cache or answer. Every read of k
 * through B must then return the new version: while the marker lives and after
 * it has expired, when B serves k from the cache again.
 *
 * Without the protection this fails: a begin-write that does not record the
 * marker lets B's read in the window fill the cache with the old version,
 * which B then serves after A's commit.
 */
import * as assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ToxiproxyServer } from "../faults/ToxiproxyServer";
import { backendWaitingOnLock } from "../support/backendWaitingOnLock";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { holdRowLock } from "../support/holdRowLock";
import { pgQuery } from "../support/pgQuery";
import { settle } from "../support/settle";
import type { Cluster, Replica } from "../support/startCluster";
import { startProxiedCacheCluster, type ProxiedCacheCluster } from "../support/startProxiedCacheCluster";

const NS = "g3crash";
const KEY = "k";
// Wide enough that the steps inside the write's window (it waits on a row lock
// within one statement: a few reads, a toxic added) never hit the statement
// timeout on a loaded machine. The marker's TTL follows it, and the case waits
// it out twice (a new epoch serves nothing for MARKER_TTL_MS, then the marker).
const STATEMENT_TIMEOUT_MS = 4_000;
const MARKER_TTL_MS = 2 * STATEMENT_TIMEOUT_MS;

interface Seen {
  version: number;
  value: string | undefined;
}

describe("guarantee 3: a replica killed between commit and cache update leaves no stale cached read", function () {
  this.timeout(180_000);
  let setup: ProxiedCacheCluster | undefined;
  let toxi: ToxiproxyServer | undefined;
  let cluster: Cluster | undefined;
  let a: Replica;
  let b: Replica;

  before(async function () {
    this.timeout(600_000); // may install toxiproxy-server (pinned) on a fresh machine
    setup = await startProxiedCacheCluster({
      name: "g3crash",
      proxy: "redis-a",
      env: {
        AGENTSTATE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        AGENTSTATE_CACHE_MARKER_TTL_MS: String(MARKER_TTL_MS),
        AGENTSTATE_CACHE_LEASE_MS: "1000",
      },
      // A's Redis commands wait (up to a minute) instead of failing after the
      // default 500 ms, so a black-holed link holds A between commit and cache update.
      proxiedRedisTimeoutMs: 60_000,
    });
    ({ toxi, cluster, direct: b, proxied: a } = setup);
  });

  after(async () => {
    await setup?.stop();
  });

  async function readB(): Promise<Seen> {
    const g = await b.client.get({ namespace: NS, key: KEY });
    return g.found
      ? { version: g.item!.version, value: Buffer.from(g.item!.value).toString() }
      : { version: 0, value: undefined };
  }

  async function cacheEpoch(): Promise<number> {
    const rows = await pgQuery<{ cache_epoch: string }>(
      cluster!.databaseUrl,
      "SELECT cache_epoch FROM agentstate_state",
    );
    return Number(rows[0]?.cache_epoch);
  }

  it("reads through the surviving replica return the committed version, while the marker lives and after it expires", async () => {
    assert.ok(cluster && toxi);
    const db = cluster.databaseUrl;
    const created = await a.client.compareAndSet({
      namespace: NS,
      key: KEY,
      expected: { absent: true },
      value: Buffer.from("v1"),
    });
    assert.equal(created.applied, true);

    // B serves k from the cache (a new cache epoch serves nothing for MARKER_TTL_MS).
    await eventually(
      "replica B to serve k from the cache",
      async () => {
        const before = await cacheReads(b.server);
        const seen = await readB();
        const after = await cacheReads(b.server);
        assert.deepEqual(seen, { version: 1, value: "v1" });
        return after.hit > before.hit;
      },
      { timeoutMs: 4 * MARKER_TTL_MS, intervalMs: 200 },
    );
    const epoch = await cacheEpoch();

    // A's write marks k, then waits on the row lock inside its transaction.
    const release = await holdRowLock(db, "SELECT 1 FROM kv WHERE namespace = $1 FOR UPDATE", [NS]);
    let answered = false;
    const pending = settle(
      a.client.compareAndSet(
        { namespace: NS, key: KEY, expected: { version: 1 }, value: Buffer.from("v2") },
        { deadlineMs: 120_000 },
      ),
    ).then((r) => {
      answered = true;
      return r;
    });
    try {
      await backendWaitingOnLock(db);
      // Not committed yet: B reads the old version, and must not cache it.
      for (let i = 0; i < 3; i++) assert.deepEqual(await readB(), { version: 1, value: "v1" }, "read while in flight");
      await toxi.addToxic("redis-a", {
        name: "blackhole",
        type: "timeout",
        stream: "upstream",
        attributes: { timeout: 0 },
      });
    } finally {
      await release();
    }
    const letThrough = Date.now(); // A set its marker before this: before its backend began to wait

    await eventually(
      "A's write to commit in Postgres",
      async () => {
        const rows = await pgQuery<{ version: string; value: Buffer }>(
          db,
          "SELECT version, value FROM kv WHERE namespace = $1 AND key = $2",
          [NS, Buffer.from(KEY)],
        );
        const row = rows[0];
        return row !== undefined && Number(row.version) === 2 && row.value.toString() === "v2";
      },
      { timeoutMs: 30_000 },
    );
    assert.equal(answered, false, "A answered: it was not held between its commit and its cache update");
    await a.server.kill("SIGKILL");
    const outcome = await pending;
    assert.ok("err" in outcome, "A died before acknowledging the write");

    // While A's marker lives: every read through B returns the committed version.
    const duringMarker = await cacheReads(b.server);
    let reads = 0;
    while (Date.now() < letThrough + MARKER_TTL_MS + 1_000 || reads === 0) {
      const seen = await readB();
      reads++;
      assert.deepEqual(
        seen,
        { version: 2, value: "v2" },
        `read ${reads} through B, ${Date.now() - letThrough} ms after A's write was let through to commit, returned a stale version`,
      );
      await sleep(100);
    }
    const afterMarker = await cacheReads(b.server);
    assert.ok(afterMarker.bypass > duringMarker.bypass, "the write-in-flight marker kept B's reads off the cache");

    // After the marker expired: B fills and serves k from the cache again, with the committed version.
    const stale: Seen[] = [];
    await eventually(
      "replica B to serve k from the cache again",
      async () => {
        const before = await cacheReads(b.server);
        const seen = await readB();
        if (seen.version !== 2 || seen.value !== "v2") stale.push(seen);
        const after = await cacheReads(b.server);
        return after.hit > before.hit;
      },
      { timeoutMs: 4 * MARKER_TTL_MS, intervalMs: 100 },
    );
    assert.deepEqual(stale, [], "reads through B after the marker expired");

    // A took the marker path: it did not fall back to moving the cache epoch,
    // which would have kept B off the cache by another route.
    assert.equal(await cacheEpoch(), epoch, "the cache epoch did not move");
    assert.equal(b.server.running, true, `replica B crashed:\n${b.server.tail(30)}`);
  });
});
