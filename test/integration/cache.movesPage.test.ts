/**
 * A lease read returns at most NS_MOVES_PAGE (5000) namespace moves
 * (agentstate_cache_lease, CacheEpoch.refresh). When more were made since the
 * last move a replica knew, it cannot know every namespace's epoch, so it
 * takes no lease from that read and moves the store epoch, which starts every
 * namespace afresh (guarantee 3: a namespace whose move it missed would be
 * served from its replaced epoch). Here 5001 moves are made in one statement
 * while a replica serves: the store epoch must move, and its hits resume
 * after. With the page check removed (row.movesMore ignored), the store epoch
 * stayed where it was.
 */
import * as assert from "node:assert/strict";
import { cacheReads } from "../support/cacheReads";
import { eventually } from "../support/eventually";
import { pgQuery } from "../support/pgQuery";
import { startCluster, type Cluster, type Replica } from "../support/startCluster";
import { NS_MOVES_PAGE } from "../../src/store/postgres/PostgresCacheEpochStore";

describe("cache: more namespace moves than one lease read returns (issue 15 part 4)", function () {
  this.timeout(120_000);
  let cluster: Cluster | undefined;
  let a: Replica;

  before(async function () {
    this.timeout(120_000);
    cluster = await startCluster({
      name: "movespage",
      redis: true,
      replicas: 0,
      env: {
        AGENTSTATE_CACHE_LEASE_MS: "600",
        AGENTSTATE_CACHE_MARKER_TTL_MS: "2000",
        AGENTSTATE_STATEMENT_TIMEOUT_MS: "1000",
      },
    });
    a = await cluster.addReplica();
  });

  after(async () => {
    await cluster?.stop();
  });

  const storeEpoch = async () =>
    Number(
      (await pgQuery<{ e: string }>(cluster!.databaseUrl, "SELECT cache_epoch::text AS e FROM agentstate_state"))[0]!.e,
    );
  const hit = async () => {
    const before = (await cacheReads(a.server)).hit;
    await a.client.get({ namespace: "page", key: "k" });
    return (await cacheReads(a.server)).hit > before;
  };

  it("the replica moves the store epoch instead of taking a lease, and serves again after", async () => {
    await a.client.compareAndSet({ namespace: "page", key: "k", expected: { any: true }, value: Buffer.from("v") });
    await eventually("a cache hit", hit, { timeoutMs: 30_000, intervalMs: 50 });
    const before = await storeEpoch();
    await pgQuery(
      cluster!.databaseUrl,
      "SELECT count(*) FROM generate_series(1, $1::int) g, LATERAL agentstate_cache_move('page-' || g, false)",
      [NS_MOVES_PAGE + 1],
    );
    await eventually("the store epoch moved", async () => (await storeEpoch()) > before, {
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    assert.ok(
      a.server.logs().some((l) => String(l.msg).includes("too many namespace epochs")),
      "the replica did not say why it moved the store epoch",
    );
    await eventually("cache hits again in the new store epoch", hit, { timeoutMs: 30_000, intervalMs: 50 });
  });
});
